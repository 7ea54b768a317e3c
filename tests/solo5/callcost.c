/* callcost: what a solo5_* call costs, for the figures in the README (a benchmark: it prints, it
 * never fails). Built both ways, it shows the thread-pointer switch: solo5-callcost (against
 * glibc, no switch) and uk-callcost (by mkhost-solo5-cc, two switches per call).
 * cmdline: the number of calls (default 1000000). */
#include "solo5.h"
#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
	uint64_t n = 0, t0, t1, sink = 0;
	solo5_handle_set_t ready;

	for (const char *p = si->cmdline; *p >= '0' && *p <= '9'; p++)
		n = n * 10 + (uint64_t)(*p - '0');
	if (n == 0)
		n = 1000000;
	t0 = solo5_clock_monotonic();
	for (uint64_t i = 0; i < n; i++)
		sink += solo5_clock_monotonic();
	t1 = solo5_clock_monotonic();
	t_puts("solo5_clock_monotonic: ");
	t_putu((t1 - t0) * 1000 / n);
	t_puts(" ps per call\n");
	t0 = solo5_clock_monotonic();
	for (uint64_t i = 0; i < n / 10; i++)
		solo5_yield(0, &ready);
	t1 = solo5_clock_monotonic();
	t_puts("solo5_yield(0): ");
	t_putu((t1 - t0) * 1000 / (n / 10));
	t_puts(" ps per call\n");
	return sink == 0;
}
