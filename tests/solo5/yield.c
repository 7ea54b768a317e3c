/* yield: the unikernel's globals and FPU state survive solo5_yield(), while mkhost runs its own
 * tasks (with --net:a=hub:lan, the device's watcher) in between.
 *
 * It sets SSE rounding toward zero (MXCSR) and the x87 precision to 24 bits, as a unikernel may,
 * and checks after each of 1,000 yields that both are still set, that 1.0 / 10.0 still rounds
 * its way, and that its .data and .bss hold what it left there. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "solo5.h"

#define ROUNDS        1000
#define MXCSR_CONTROL 0xffc0u /* not the sticky exception flags, which divisions set */

static uint64_t counters[64];        /* .bss */
static char motto[32] = "unchanged"; /* .data */

static unsigned get_mxcsr(void)
{
	unsigned v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static void set_mxcsr(unsigned v)
{
	__asm__ volatile("ldmxcsr %0" : : "m"(v) : "memory");
}

static unsigned short get_fpucw(void)
{
	unsigned short v;
	__asm__ volatile("fnstcw %0" : "=m"(v));
	return v;
}

static void set_fpucw(unsigned short v)
{
	__asm__ volatile("fldcw %0" : : "m"(v) : "memory");
}

/* Read from memory at run time, so that the compiler cannot fold the division under its own
 * assumption of the default rounding. */
static volatile double one = 1.0, ten = 10.0;

static double tenth(void)
{
	return one / ten;
}

int solo5_app_main(const struct solo5_start_info *si)
{
	solo5_handle_t h;
	struct solo5_net_info info;
	int have_net = solo5_net_acquire("a", &h, &info) == SOLO5_R_OK;
	unsigned mxcsr = (get_mxcsr() & ~0x6000u) | 0x6000u;         /* RC = toward zero */
	unsigned short cw = (unsigned short)(get_fpucw() & ~0x300u); /* PC = single precision */
	volatile double nearest = tenth(), zero; /* stored, so computed where written */
	int fails = 0;

	(void)si;
	set_mxcsr(mxcsr);
	set_fpucw(cw);
	zero = tenth();
	if (zero == nearest) {
		puts("yield: FAIL: rounding toward zero changed nothing");
		return 1;
	}
	for (int i = 0; i < ROUNDS; i++) {
		counters[i % 64] += (uint64_t)i;
		solo5_yield(solo5_clock_monotonic() + (i % 100 == 0 ? 100000 : 0), NULL);
		fails += (get_mxcsr() & MXCSR_CONTROL) != (mxcsr & MXCSR_CONTROL);
		fails += get_fpucw() != cw;
		fails += tenth() != zero;
	}
	uint64_t sum = 0;
	for (int i = 0; i < 64; i++)
		sum += counters[i];
	fails += sum != (uint64_t)ROUNDS * (ROUNDS - 1) / 2;
	fails += strcmp(motto, "unchanged") != 0;
	printf("yield: %d rounds%s, %d failed checks\n", ROUNDS,
	       have_net ? " with a net device" : "", fails);
	if (fails == 0)
		puts("yield: ok");
	return fails == 0 ? 0 : 1;
}
