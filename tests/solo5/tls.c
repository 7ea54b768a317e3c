/* tls: the thread pointer belongs to the unikernel, as on Solo5 (built by mkhost-solo5-cc).
 *   (nothing)  lay out two TLS blocks, switch between them, and check the thread-local
 *              variables in each, across yields (mkhost runs its tasks in between)
 *   fault      read %fs:0 before setting a thread pointer: it must fault, there is none */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "solo5.h"

static __thread int counter = 5; /* .tdata */
static __thread char zeros[100]; /* .tbss */
static __thread uint64_t marks[4] = {1, 2, 3, 4};

static int fails;
static int constructed;

/* A constructor runs before solo5_app_main, with glibc's thread pointer still in place: its
 * solo5_* calls must work there too. */
__attribute__((constructor)) static void early(void)
{
	solo5_console_write("tls: constructor ran\n", 21);
	constructed = solo5_clock_monotonic() != 0;
}

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("tls: FAIL: %s\n", what);
		fails++;
	}
}

static uintptr_t read_fs0(void)
{
	uintptr_t v;

	__asm__ volatile("mov %%fs:0, %0" : "=r"(v));
	return v;
}

static uintptr_t block(void)
{
	uintptr_t p = (uintptr_t)malloc(solo5_tls_size() + 64);

	return (p + 63) & ~(uintptr_t)63;
}

static void yield_a_little(void)
{
	for (int i = 0; i < 20; i++)
		solo5_yield(solo5_clock_monotonic() + 100000, NULL);
}

int solo5_app_main(const struct solo5_start_info *si)
{
	solo5_handle_t h;
	struct solo5_net_info info;
	uintptr_t a, b;

	uk_heap_init(si->heap_start, si->heap_size);
	if (strcmp(si->cmdline, "fault") == 0) {
		puts("tls: reading %fs:0 with no thread pointer");
		printf("tls: read %lx, no fault\n", (unsigned long)read_fs0());
		return 1;
	}
	check(constructed, "the constructor's solo5 calls worked");
	check(solo5_net_acquire("a", &h, &info) == SOLO5_R_OK, "the hub device is there");
	check(solo5_tls_size() >= sizeof(int) + 100 + 4 * 8 + 8, "the block holds the variables");
	a = block();
	b = block();
	check(solo5_tls_init(0) == SOLO5_R_EINVAL, "no block at 0");
	check(solo5_tls_init(a + 1) == SOLO5_R_EINVAL, "a misaligned block is refused");
	check(solo5_tls_init(a) == SOLO5_R_OK && solo5_tls_init(b) == SOLO5_R_OK, "blocks set up");
	check(solo5_set_tls_base(solo5_tls_tp_offset(a)) == SOLO5_R_OK,
	      "the thread pointer is set");
	check(read_fs0() == solo5_tls_tp_offset(a), "%fs:0 points to itself");
	check(counter == 5 && marks[3] == 4, ".tdata is copied");
	int zero = 1;
	for (size_t i = 0; i < sizeof(zeros); i++)
		zero &= zeros[i] == 0;
	check(zero, ".tbss is zeroed");
	counter = 1;
	marks[0] = 100;
	yield_a_little();
	check(counter == 1 && marks[0] == 100, "block a holds across yields");
	check(solo5_set_tls_base(solo5_tls_tp_offset(b)) == SOLO5_R_OK, "switched to block b");
	check(counter == 5 && marks[0] == 1, "block b has its own variables");
	counter = 2;
	yield_a_little();
	check(solo5_set_tls_base(solo5_tls_tp_offset(a)) == SOLO5_R_OK, "back to block a");
	check(counter == 1 && marks[0] == 100, "block a is as it was left");
	solo5_set_tls_base(solo5_tls_tp_offset(b));
	check(counter == 2, "block b is as it was left");
	printf("tls: block of %d bytes, %d failed checks\n", (int)solo5_tls_size(), fails);
	if (fails == 0)
		puts("tls: ok");
	return fails == 0 ? 0 : 1;
}
