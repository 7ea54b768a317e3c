/* time: the two clocks and solo5_yield's deadlines, with no device. Prints the wall clock in
 * seconds for the runner to compare with the host's, then "time: ok". */
#include "solo5.h"
#include "util.h"

#define MS 1000000ull

int solo5_app_main(const struct solo5_start_info *si)
{
	solo5_handle_set_t set;
	solo5_time_t t0, t1, prev;
	(void)si;

	prev = solo5_clock_monotonic();
	for (int i = 0; i < 1000; i++) {
		solo5_time_t t = solo5_clock_monotonic();
		t_check(t >= prev, "the monotonic clock never goes back");
		prev = t;
	}
	t_puts("wall: ");
	t_putu(solo5_clock_wall() / 1000000000ull);
	t_puts("\n");

	/* A deadline in the future: no earlier than it, and not much later. */
	for (int i = 0; i < 5; i++) {
		t0 = solo5_clock_monotonic();
		set = ~(solo5_handle_set_t)0;
		solo5_yield(t0 + 50 * MS, &set);
		t1 = solo5_clock_monotonic();
		t_check(t1 >= t0 + 50 * MS, "yield waits until its deadline");
		t_check(t1 < t0 + 1000 * MS, "yield returns soon after its deadline");
		t_check(set == 0, "no device is ready when there is none");
	}

	/* Deadlines now or past: at once. */
	t0 = solo5_clock_monotonic();
	for (int i = 0; i < 1000; i++) {
		set = ~(solo5_handle_set_t)0;
		solo5_yield(0, &set);
		t_check(set == 0, "yield(0) reports nothing");
		solo5_yield(solo5_clock_monotonic(), (solo5_handle_set_t *)0);
	}
	t1 = solo5_clock_monotonic();
	t_check(t1 - t0 < 500 * MS, "2000 yields with past deadlines take no time");

	/* A short one, below the millisecond. */
	t0 = solo5_clock_monotonic();
	solo5_yield(t0 + 200000, &set);
	t_check(solo5_clock_monotonic() >= t0 + 200000, "yield honours sub-millisecond deadlines");

	if (t_failures == 0)
		t_puts("time: ok\n");
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
