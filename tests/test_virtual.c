/* Virtual time (--clock=virtual, mk_config.clock): the clocks stand still while tasks run and jump
 * to the next deadline when all wait; timers fire in deadline order, ties in the order they were
 * set; devices that live in real time are refused; a run is the same run every time for a seed.
 *
 * Checks inside tasks record their first failure in (mkt_failed), and every test asserts it is
 * empty once mk_run has returned. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

#define US   1000ULL
#define MS   1000000ULL
#define SEC  1000000000ULL
#define HOUR (3600 * SEC)

/* 2000-01-01T00:00:00Z, where a virtual wall clock starts */
#define EPOCH_NS (946684800ULL * SEC)

#define RUN(fn, arg, ...)                                                                          \
	do {                                                                                       \
		int r_ = mkt_run(fn, arg, __VA_ARGS__);                                            \
		ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);                                   \
		ck_assert_int_eq(r_, 0);                                                           \
	} while (0)

static void setup(void)
{
	mkt_failed[0] = '\0';
}

/* ---------------------------------------------------------------------------------------- */
/*  The clock                                                                               */
/* ---------------------------------------------------------------------------------------- */

static intptr_t spin_a_little(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++)
		mk_yield();
	return 0;
}

static int main_hour(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	uint64_t mono = mk_clock_monotonic(), wall = mk_clock_wall();
	mk_task *t;

	CHECK_INT(mono, ==, 0);
	CHECK_INT(wall, ==, EPOCH_NS);
	/* Runnable tasks: the clock does not move, however long they take in real time. */
	CHECK_INT(mk_task_spawn(&t, "spin", spin_a_little, NULL), ==, 0);
	for (int i = 0; i < 1000; i++)
		CHECK_INT(mk_yield(), ==, 0);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);
	CHECK_INT(mk_clock_monotonic(), ==, 0);
	/* One hour of sleep: exactly one hour later, at once. */
	CHECK_INT(mk_sleep(HOUR), ==, 0);
	CHECK_INT(mk_clock_monotonic(), ==, HOUR);
	CHECK_INT(mk_clock_wall(), ==, EPOCH_NS + HOUR);
	return 0;
}

START_TEST(hour_in_milliseconds)
{
	uint64_t t0 = mk_clock_monotonic(); /* outside mk_run: the real clock */

	RUN(main_hour, NULL, "--clock=virtual", NULL);
	uint64_t real = mk_clock_monotonic() - t0;
	ck_assert_msg(real < 10 * MS, "one virtual hour took %llu us of real time",
	              (unsigned long long)(real / US));
}
END_TEST

START_TEST(config_selects_it)
{
	struct mk_config cfg = {.clock = MK_CLOCK_VIRTUAL};
	char *argv[] = {"test", NULL};

	ck_assert_int_eq(mk_run_config(&cfg, 1, argv, main_hour, NULL), 0);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
}
END_TEST

/* With --clock=real on the command line the program's MK_CLOCK_VIRTUAL is overridden. */
static int main_real(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	CHECK(mk_clock_monotonic() > HOUR || mk_clock_wall() > EPOCH_NS + 3650 * 24 * HOUR);
	return 0;
}

START_TEST(command_line_wins)
{
	struct mk_config cfg = {.clock = MK_CLOCK_VIRTUAL};
	char *argv[] = {"test", "--clock=real", NULL};

	ck_assert_int_eq(mk_run_config(&cfg, 2, argv, main_real, NULL), 0);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Timers                                                                                  */
/* ---------------------------------------------------------------------------------------- */

#define SLEEPERS 64

struct order {
	int woke[SLEEPERS];
	int n;
	uint64_t at[SLEEPERS];
};

static struct order order;
static uint64_t deadline_of[SLEEPERS];

static intptr_t sleeper(void *arg)
{
	int i = (int)(intptr_t)arg;

	if (mk_sleep(deadline_of[i]) != 0)
		return 1;
	order.at[order.n] = mk_clock_monotonic();
	order.woke[order.n++] = i;
	return 0;
}

/* Deadlines with many ties, set in a scrambled order: they must fire by deadline, and equal
 * deadlines in the order their timers were set (the order the tasks ran, which is spawn order). */
static int main_order(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_task *t[SLEEPERS];

	memset(&order, 0, sizeof(order));
	for (int i = 0; i < SLEEPERS; i++) {
		deadline_of[i] = (uint64_t)((i * 37) % 5 + 1) * MS; /* five distinct deadlines */
		CHECK_INT(mk_task_spawn(&t[i], "sleeper", sleeper, (void *)(intptr_t)i), ==, 0);
	}
	for (int i = 0; i < SLEEPERS; i++)
		CHECK_INT(mk_task_await(t[i], NULL), ==, 0);
	CHECK_INT(order.n, ==, SLEEPERS);
	for (int k = 1; k < SLEEPERS; k++) {
		int a = order.woke[k - 1], b = order.woke[k];
		CHECK(deadline_of[a] < deadline_of[b] ||
		      (deadline_of[a] == deadline_of[b] && a < b));
		CHECK_INT(order.at[k], ==, deadline_of[b]); /* woken exactly at its deadline */
	}
	return 0;
}

START_TEST(timers_in_order)
{
	RUN(main_order, NULL, "--clock=virtual", NULL);
}
END_TEST


/* A program whose tasks all wait on each other ends with -EDEADLK, as on the real clock, once
 * the timers set before are spent: the clock does not run on forever. */
static mk_task *main_handle;

static intptr_t await_main(void *arg)
{
	(void)arg;
	mk_sleep(10 * SEC);
	return mk_task_await(main_handle, NULL);
}

static int main_deadlock(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	mk_task *t;

	main_handle = mk_task_self();
	CHECK_INT(mk_task_spawn(&t, "waits-for-main", await_main, NULL), ==, 0);
	mk_task_await(t, NULL);
	*(uint64_t *)arg = mk_clock_monotonic();
	return 0;
}

START_TEST(deadlock_still_detected)
{
	uint64_t at = 0;

	ck_assert_int_eq(mkt_run(main_deadlock, &at, "--clock=virtual", NULL), -EDEADLK);
	ck_assert_uint_eq(at, 0); /* main never got past its await */
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Devices that live in real time                                                          */
/* ---------------------------------------------------------------------------------------- */

static int ran;

static int main_must_not_run(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	ran = 1;
	return 0;
}

static const struct {
	const char *arg, *says;
} real_devices[] = {
    {"--net:a=tap0", "net device 'a' (--net:a=tap0): with --clock=virtual only hub: links"},
    {"--net:a=@0", "net device 'a' (--net:a=@FD)"},
    {"--net:a=unix:/tmp/x", "use --net:a=hub:LAN, or run without --clock=virtual"},
    {"--net:a=slirp", "net device 'a' (--net:a=slirp)"},
    {"--block:d=/nonexistent", "block device 'd': with --clock=virtual no block device"},
};

START_TEST(real_devices_refused)
{
	ran = 0;
	int rc = mkt_run(main_must_not_run, NULL, "--clock=virtual", "--net:h=hub:x",
	                 real_devices[_i].arg, NULL);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_int_eq(ran, 0);
	ck_assert_msg(strstr(mk_last_error(), real_devices[_i].says) != NULL, "%s",
	              mk_last_error());
}
END_TEST

START_TEST(bad_clock_options)
{
	static const char *const bad[][2] = {
	    {"--clock=simulated", "the clock is real or virtual"},
	    {"--clock=", "the clock is real or virtual"},
	    {"--seed=x", "write the seed as a whole number"},
	    {"--seed=-1", "write the seed as a whole number"},
	    {"--seed=18446744073709551616", "write the seed as a whole number"},
	    {"--Clock=virtual", "did you mean --clock=virtual?"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ran = 0;
		ck_assert_int_eq(mkt_run(main_must_not_run, NULL, bad[i][0], NULL), -EINVAL);
		ck_assert_int_eq(ran, 0);
		ck_assert_msg(strstr(mk_last_error(), bad[i][1]) != NULL, "%s: %s", bad[i][0],
		              mk_last_error());
	}
	struct mk_config cfg = {.clock = (enum mk_clock)5};
	char *argv[] = {"test", NULL};
	ck_assert_int_eq(mk_run_config(&cfg, 1, argv, main_must_not_run, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mk_last_error(), "mk_config.clock is 5"));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Seeds                                                                                   */
/* ---------------------------------------------------------------------------------------- */

struct macs {
	uint8_t a[6], b[6];
};

static int main_macs(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	struct macs *m = arg;
	struct mk_net_config cfg;
	mk_net *n;
	/* Connected in the order the last argument says, to show that the order does not matter. */
	bool b_first = argc > 1 && strcmp(argv[1], "b-first") == 0;

	CHECK_INT(mk_net_connect(b_first ? "b" : "a", &n, &cfg), ==, 0);
	memcpy(b_first ? m->b : m->a, cfg.mac, 6);
	CHECK_INT(mk_net_connect(b_first ? "a" : "b", &n, &cfg), ==, 0);
	memcpy(b_first ? m->a : m->b, cfg.mac, 6);
	return 0;
}

START_TEST(seeded_macs)
{
	struct macs x, y, z, w, r1, r2;

	RUN(main_macs, &x, "--clock=virtual", "--net:a=hub:l", "--net:b=hub:l", NULL);
	RUN(main_macs, &y, "--clock=virtual", "--net:a=hub:l", "--net:b=hub:l", "--", "b-first");
	RUN(main_macs, &z, "--clock=virtual", "--seed=7", "--net:a=hub:l", "--net:b=hub:l", NULL);
	RUN(main_macs, &w, "--seed=7", "--net:a=hub:l", "--net:b=hub:l", NULL); /* real clock */
	ck_assert_mem_eq(&x, &y, sizeof(x));
	ck_assert_mem_eq(&z, &w, sizeof(z));
	ck_assert_int_ne(memcmp(&x, &z, sizeof(x)), 0);
	ck_assert_int_ne(memcmp(x.a, x.b, 6), 0);
	ck_assert_uint_eq(x.a[0] & 3, 2); /* unicast, locally administered */
	/* Without a seed, on the real clock: from the kernel, different every run. */
	RUN(main_macs, &r1, "--net:a=hub:l", "--net:b=hub:l", NULL);
	RUN(main_macs, &r2, "--net:a=hub:l", "--net:b=hub:l", NULL);
	ck_assert_int_ne(memcmp(&r1, &r2, sizeof(r1)), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("virtual");
	TCase *tc = tcase_create("clock");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, hour_in_milliseconds);
	tcase_add_test(tc, config_selects_it);
	tcase_add_test(tc, command_line_wins);
	tcase_add_test(tc, timers_in_order);
	tcase_add_test(tc, deadlock_still_detected);
	tcase_add_loop_test(tc, real_devices_refused, 0,
	                    sizeof(real_devices) / sizeof(real_devices[0]));
	tcase_add_test(tc, bad_clock_options);
	tcase_add_test(tc, seeded_macs);
	suite_add_tcase(s, tc);

	return mkt_run_suite(s, false);
}
