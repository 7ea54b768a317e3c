/* hello: the console, the cmdline and the heap; and the ways a program ends.
 *
 * It prints its cmdline and heap size, writes to both ends of the heap, then ends as its cmdline
 * asks: "exit N" calls solo5_exit(N), "abort" calls solo5_abort(), "return N" returns N, anything
 * else returns SOLO5_EXIT_SUCCESS. */
#include "solo5.h"
#include "util.h"

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix != '\0' && *s == *prefix)
		s++, prefix++;
	return *prefix == '\0';
}

static int number(const char *s)
{
	int v = 0;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

int solo5_app_main(const struct solo5_start_info *si)
{
	volatile uint8_t *heap = (volatile uint8_t *)si->heap_start;

	t_puts("Hello, world\n");
	t_puts("cmdline: [");
	t_puts(si->cmdline);
	t_puts("]\n");
	t_puts("heap: ");
	t_putu(si->heap_size >> 20);
	t_puts(" MiB\n");
	heap[0] = 1;
	heap[si->heap_size - 1] = 2;
	t_check(heap[0] == 1 && heap[si->heap_size - 1] == 2, "heap ends are writable");
#if __STDC_HOSTED__
	/* built against glibc (the pkg-config line), the thread pointer is glibc's */
	t_check(solo5_set_tls_base(0) == SOLO5_R_EUNSPEC, "solo5_set_tls_base is refused");
#else
	/* built by mkhost-solo5-cc, it is the unikernel's, and 0 is where it starts */
	t_check(solo5_set_tls_base(0) == SOLO5_R_OK, "solo5_set_tls_base is taken");
#endif
	solo5_console_write("", 0);

	if (starts_with(si->cmdline, "exit "))
		solo5_exit(number(si->cmdline + 5));
	if (t_streq(si->cmdline, "abort"))
		solo5_abort();
	if (starts_with(si->cmdline, "return "))
		return number(si->cmdline + 7);
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
