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
#include <time.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define US   1000ULL
#define MS   1000000ULL
#define SEC  1000000000ULL
#define HOUR (3600 * SEC)

/* 2000-01-01T00:00:00Z, where a virtual wall clock starts */
#define EPOCH_NS (946684800ULL * SEC)

static void setup(void)
{
	mkt_failed[0] = '\0';
}

/* ---------------------------------------------------------------------------------------- */
/*  The clock                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* The kernel's clock: inside a virtual run, mk_clock_monotonic is the virtual one. */
static uint64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

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
	uint64_t t0 = real_ns();
	CHECK_INT(mk_sleep(HOUR), ==, 0);
	*(uint64_t *)arg = real_ns() - t0;
	CHECK_INT(mk_clock_monotonic(), ==, HOUR);
	CHECK_INT(mk_clock_wall(), ==, EPOCH_NS + HOUR);
	return 0;
}

START_TEST(hour_in_milliseconds)
{
	uint64_t real = 0;

	MKT_RUN_OK(main_hour, &real, "--clock=virtual", NULL);
	ck_assert_msg(real < (RUNNING_ON_VALGRIND ? 1000 : 10) * MS,
	              "one virtual hour took %llu us of real time",
	              (unsigned long long)(real / US));
}
END_TEST

START_TEST(config_selects_it)
{
	struct mk_config cfg = {.clock = MK_CLOCK_VIRTUAL};
	char *argv[] = {"test", NULL};

	uint64_t real = 0;
	ck_assert_int_eq(mk_run_config(&cfg, 1, argv, main_hour, &real), 0);
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
	MKT_RUN_OK(main_order, NULL, "--clock=virtual", NULL);
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

	MKT_RUN_OK(main_macs, &x, "--clock=virtual", "--net:a=hub:l", "--net:b=hub:l", NULL);
	MKT_RUN_OK(main_macs, &y, "--clock=virtual", "--net:a=hub:l", "--net:b=hub:l", "--",
	           "b-first", NULL);
	MKT_RUN_OK(main_macs, &z, "--clock=virtual", "--seed=7", "--net:a=hub:l", "--net:b=hub:l",
	           NULL);
	MKT_RUN_OK(main_macs, &w, "--seed=7", "--net:a=hub:l", "--net:b=hub:l",
	           NULL); /* real clock */
	ck_assert_mem_eq(&x, &y, sizeof(x));
	ck_assert_mem_eq(&z, &w, sizeof(z));
	ck_assert_int_ne(memcmp(&x, &z, sizeof(x)), 0);
	ck_assert_int_ne(memcmp(x.a, x.b, 6), 0);
	ck_assert_uint_eq(x.a[0] & 3, 2); /* unicast, locally administered */
	/* Without a seed, on the real clock: from the kernel, different every run. */
	MKT_RUN_OK(main_macs, &r1, "--net:a=hub:l", "--net:b=hub:l", NULL);
	MKT_RUN_OK(main_macs, &r2, "--net:a=hub:l", "--net:b=hub:l", NULL);
	ck_assert_int_ne(memcmp(&r1, &r2, sizeof(r1)), 0);
}
END_TEST

/* Connect "a" in a virtual run given (arg); the result and the sentence. */
struct connect_result {
	int rc;
	char error[1024];
};

static int connect_main(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	struct connect_result *r = arg;
	mk_net *n;

	r->rc = mk_net_connect("a", &n, NULL);
	snprintf(r->error, sizeof(r->error), "%s", r->rc != 0 ? mk_last_error() : "");
	return 0;
}

static struct connect_result connect_with(const char *arg)
{
	struct connect_result r = {1, ""};

	ck_assert_int_eq(mkt_run(connect_main, &r, "--clock=virtual", arg, NULL), 0);
	return r;
}

/* ---------------------------------------------------------------------------------------- */
/*  The simulated network: latency, rate, partitions, links                                 */
/* ---------------------------------------------------------------------------------------- */

#define ETHERTYPE_TEST 0x88b6

/* A broadcast test frame of (len) bytes carrying (seq). */
static size_t frame(uint8_t *f, size_t len, uint32_t seq)
{
	memset(f, 0, len);
	memset(f, 0xff, 6);
	f[12] = ETHERTYPE_TEST >> 8;
	f[13] = ETHERTYPE_TEST & 0xff;
	memcpy(f + 14, &seq, 4);
	return len;
}

static uint32_t seq_of(const uint8_t *f)
{
	uint32_t seq;

	memcpy(&seq, f + 14, 4);
	return seq;
}

static intptr_t echo_back(void *arg)
{
	mk_net *n = arg;
	uint8_t f[1514];

	for (;;) {
		ssize_t len = mk_net_read_bigstring(n, f, sizeof(f), 0, sizeof(f));
		if (len < 0)
			return 0;
		mk_net_write_bigstring(n, f, sizeof(f), 0, (size_t)len);
	}
}

/* Both ports 25 ms from the switch (a frame takes its sender's latency): a round trip takes
 * exactly 2 x 25 ms. */
static int main_latency(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_net *a, *b;
	mk_task *t;
	uint8_t f[1514];

	CHECK_INT(mk_net_connect("a", &a, NULL), ==, 0);
	CHECK_INT(mk_net_connect("b", &b, NULL), ==, 0);
	CHECK_INT(mk_task_spawn(&t, "echo", echo_back, b), ==, 0);
	for (uint32_t i = 0; i < 5; i++) {
		uint64_t t0 = mk_clock_monotonic();
		CHECK_INT(mk_net_write_bigstring(a, f, sizeof(f), 0, frame(f, 100, i)), ==, 100);
		CHECK_INT(mk_net_read_bigstring(a, f, sizeof(f), 0, sizeof(f)), ==, 100);
		CHECK_INT(seq_of(f), ==, i);
		CHECK_INT(mk_clock_monotonic() - t0, ==, 50 * MS);
	}
	mk_task_cancel(t);
	mk_task_await(t, NULL);
	return 0;
}

START_TEST(hub_latency)
{
	MKT_RUN_OK(main_latency, NULL, "--clock=virtual", "--net:a=hub:l,latency=25000",
	           "--net:b=hub:l,latency=25000,mtu=1500", NULL);
}
END_TEST

struct rate_run {
	uint64_t last_at;
	unsigned got;
	struct mk_net_stats a;
};

static intptr_t count_frames(void *arg)
{
	struct rate_run *r = arg;
	mk_net *b;
	uint8_t f[1514];

	if (mk_net_connect("b", &b, NULL) != 0)
		return 1;
	for (;;) {
		if (mk_net_read_bigstring(b, f, sizeof(f), 0, sizeof(f)) < 0)
			return 0;
		r->got++;
		r->last_at = mk_clock_monotonic();
	}
}

/* A 1 Mbit/s cable takes 10 ms for each 1250-byte frame: 100 back-to-back frames arrive over a
 * second, the last at 1 s + the latency; 300 at once overflow the 256-frame queue. */
static int main_rate(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	struct rate_run *r = arg;
	mk_net *a;
	mk_task *t;
	uint8_t f[1514];

	CHECK_INT(mk_net_connect("a", &a, NULL), ==, 0);
	CHECK_INT(mk_task_spawn(&t, "count", count_frames, r), ==, 0);
	CHECK_INT(mk_yield(), ==, 0);
	for (uint32_t i = 0; i < 100; i++)
		CHECK_INT(mk_net_write_bigstring(a, f, sizeof(f), 0, frame(f, 1250, i)), ==, 1250);
	CHECK_INT(mk_sleep(5 * SEC), ==, 0);
	CHECK_INT(r->got, ==, 100);
	CHECK_INT(r->last_at, ==, 1000 * MS + 5 * MS);
	int refused = 0;
	for (uint32_t i = 0; i < 300; i++)
		refused += mk_net_write_bigstring(a, f, sizeof(f), 0, frame(f, 1250, i)) == 0;
	CHECK_INT(refused, ==, 300 - 256);
	CHECK_INT(mk_sleep(10 * SEC), ==, 0);
	CHECK_INT(r->got, ==, 100 + 256);
	mk_net_stats(a, &r->a);
	mk_task_cancel(t);
	mk_task_await(t, NULL);
	return 0;
}

START_TEST(hub_rate)
{
	struct rate_run r = {0};

	MKT_RUN_OK(main_rate, &r, "--clock=virtual", "--net:a=hub:l,rate=1,latency=5000",
	           "--net:b=hub:l", NULL);
	ck_assert_uint_eq(r.a.tx_drops, 300 - 256);
	ck_assert_uint_eq(r.a.tx_frames, 100 + 256);
}
END_TEST

START_TEST(hub_bad_options)
{
	static const char *const bad[][2] = {
	    {"--net:a=hub:l,latency=x", "latency 'x' must be a whole number of microseconds"},
	    {"--net:a=hub:l,latency=1.5", "latency '1.5'"},
	    {"--net:a=hub:l,latency=3600000001", "latency '3600000001'"},
	    {"--net:a=hub:l,rate=0", "rate '0' must be a number of Mbit/s above 0"},
	    {"--net:a=hub:l,rate=1.2345678", "rate '1.2345678'"},
	    {"--net:a=hub:l,rate=", "rate ''"},
	    {"--net:a=hub:l,speed=1", "unknown hub: option 'speed=1'; the options are mtu=N, "
	                              "latency=US and rate=MBIT"},
	    {"--net:a=hub:l,mtu=10", "mtu '10' must be a number from 68"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct connect_result r = connect_with(bad[i][0]);
		ck_assert_msg(r.rc == -EINVAL, "%s: %d", bad[i][0], r.rc);
		ck_assert_msg(strstr(r.error, bad[i][1]) != NULL, "%s: %s", bad[i][0], r.error);
	}
	struct connect_result ok = connect_with("--net:a=hub:l,rate=0.5,latency=0,mtu=9000");
	ck_assert_int_eq(ok.rc, 0);
}
END_TEST

struct lan3 {
	mk_net *n[3];
	struct mk_net_stats st[3];
	unsigned got[3];
};

/* Each of a, b, c broadcasts one frame; who heard whom. */
static void round_of_broadcasts(struct lan3 *l, unsigned heard[3][3])
{
	uint8_t f[1514];

	memset(heard, 0, sizeof(unsigned) * 9);
	for (uint32_t i = 0; i < 3; i++)
		mk_net_write_bigstring(l->n[i], f, sizeof(f), 0, frame(f, 60, i));
	for (int j = 0; j < 3; j++)
		while (mk_net_try_read(l->n[j], f, sizeof(f), 0, sizeof(f)) > 0)
			heard[j][seq_of(f)]++;
}

static int main_partition(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	struct lan3 *l = arg;
	const char *names[3] = {"a", "b", "c"};
	unsigned heard[3][3];

	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_net_connect(names[i], &l->n[i], NULL), ==, 0);
	round_of_broadcasts(l, heard);
	CHECK(heard[0][1] == 1 && heard[0][2] == 1 && heard[1][0] == 1 && heard[2][1] == 1);

	CHECK_INT(mk_hub_partition("l", "a|b,c"), ==, 0);
	round_of_broadcasts(l, heard);
	CHECK(heard[0][1] == 0 && heard[0][2] == 0 && heard[1][0] == 0 && heard[2][0] == 0);
	CHECK(heard[1][2] == 1 && heard[2][1] == 1);

	/* The ports not named form one more group: c alone. */
	CHECK_INT(mk_hub_partition("l", "a,b"), ==, 0);
	round_of_broadcasts(l, heard);
	CHECK(heard[0][1] == 1 && heard[1][0] == 1 && heard[2][0] == 0 && heard[0][2] == 0);

	CHECK_INT(mk_hub_heal("l"), ==, 0);
	round_of_broadcasts(l, heard);
	CHECK(heard[0][2] == 1 && heard[2][0] == 1 && heard[1][2] == 1);

	/* b unplugged: its writes are refused, what is sent to it is lost. */
	CHECK_INT(mk_net_set_link(l->n[1], 0), ==, 0);
	round_of_broadcasts(l, heard);
	CHECK(heard[1][0] == 0 && heard[1][2] == 0 && heard[0][1] == 0 && heard[0][2] == 1);
	CHECK_INT(mk_net_set_link(l->n[1], 0), ==, 0); /* already down: no change, no event */
	CHECK_INT(mk_net_set_link(l->n[1], 1), ==, 0);
	round_of_broadcasts(l, heard);
	CHECK(heard[1][0] == 1 && heard[0][1] == 1);

	/* Bad arguments: nothing changes. */
	CHECK_INT(mk_hub_partition("nosuch", "a|b"), ==, -ENOENT);
	CHECK_HAS(mk_last_error(), "hub LAN 'nosuch': no connected device");
	CHECK_INT(mk_hub_partition("l", "a||b"), ==, -EINVAL);
	CHECK_HAS(mk_last_error(), "has an empty group");
	CHECK_INT(mk_hub_partition("l", ""), ==, -EINVAL);
	CHECK_INT(mk_hub_partition("l", "a|x"), ==, -EINVAL);
	CHECK_HAS(mk_last_error(), "'x' in 'a|x' is not a connected device of this LAN");
	CHECK_INT(mk_hub_partition("l", "a|b,a"), ==, -EINVAL);
	CHECK_HAS(mk_last_error(), "'a' is named twice");
	CHECK_INT(mk_hub_partition("l", "a,|b"), ==, -EINVAL);
	CHECK_INT(mk_hub_partition(NULL, "a"), ==, -EINVAL);
	CHECK_INT(mk_hub_partition("l", NULL), ==, -EINVAL);
	CHECK_INT(mk_hub_heal(NULL), ==, -EINVAL);
	CHECK_INT(mk_net_set_link(NULL, 0), ==, -EINVAL);
	CHECK_INT(mk_net_set_link(l->n[0], 2), ==, -EINVAL);
	round_of_broadcasts(l, heard);
	CHECK(heard[0][1] == 1 && heard[0][2] == 1 && heard[2][1] == 1);
	for (int i = 0; i < 3; i++)
		mk_net_stats(l->n[i], &l->st[i]);
	return 0;
}

START_TEST(partitions_and_links)
{
	struct lan3 l;

	memset(&l, 0, sizeof(l));
	MKT_RUN_OK(main_partition, &l, "--clock=virtual", "--net:a=hub:l", "--net:b=hub:l",
	           "--net:c=hub:l", NULL);
	/* a's broadcasts lost to partitions and unplugged b: 2 (a|b,c) + 1 (a,b|c) + 1 (b down) */
	ck_assert_uint_eq(l.st[0].cut_drops, 4);
	ck_assert_uint_eq(l.st[1].tx_drops, 1); /* its write while unplugged */
	/* partition, partition, heal for all; b's link down and up for b */
	ck_assert_uint_eq(l.st[0].link_events, 3);
	ck_assert_uint_eq(l.st[1].link_events, 5);
	ck_assert_uint_eq(l.st[2].link_events, 3);
	/* outside mk_run */
	ck_assert_int_eq(mk_hub_partition("l", "a|b"), -EPERM);
	ck_assert_int_eq(mk_hub_heal("l"), -EPERM);
	ck_assert_int_eq(mk_net_set_link(l.n[0], 1), -EPERM);
}
END_TEST

/* a sends b a frame every millisecond for 30 ms; the schedule cuts them apart from 10 to 20 ms
 * and unplugs b from 25 to 27 ms. At equal times the schedule (set up before main) goes first. */
static int main_schedule(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	uint32_t *got = arg;
	mk_net *a, *b;
	uint8_t f[1514];

	CHECK_INT(mk_net_connect("a", &a, NULL), ==, 0);
	CHECK_INT(mk_net_connect("b", &b, NULL), ==, 0);
	for (uint32_t ms = 0; ms < 30; ms++) {
		CHECK_INT(mk_clock_monotonic(), ==, ms * MS);
		mk_net_write_bigstring(a, f, sizeof(f), 0, frame(f, 60, ms));
		while (mk_net_try_read(b, f, sizeof(f), 0, sizeof(f)) > 0)
			got[seq_of(f)] = 1;
		mk_sleep(MS);
	}
	return 0;
}

START_TEST(schedule_from_the_command_line)
{
	uint32_t got[30] = {0};

	MKT_RUN_OK(main_schedule, got, "--clock=virtual", "--net:a=hub:l", "--net:b=hub:l",
	           "--net:c=hub:l", "--net-partition:l=10ms-20ms:a|b", "--net-down:b=25ms-27ms",
	           NULL);
	for (int ms = 0; ms < 30; ms++)
		ck_assert_msg(got[ms] == !((ms >= 10 && ms < 20) || (ms >= 25 && ms < 27)),
		              "the frame of %d ms: %s", ms, got[ms] ? "arrived" : "lost");
}
END_TEST

START_TEST(bad_schedules)
{
	static const char *const bad[][2] = {
	    {"--net-partition:l=10s:a|b", "write the interval as FROM-TO"},
	    {"--net-partition:l=20s-10s:a|b", "FROM before TO"},
	    {"--net-partition:l=1x-2s:a|b", "write the interval as FROM-TO"},
	    {"--net-partition:l=1s-2s", "expected --net-partition:LAN=FROM-TO:GROUPS"},
	    {"--net-partition:l=1s-2s:", "expected --net-partition:LAN=FROM-TO:GROUPS"},
	    {"--net-partition:nolan=1s-2s:a|b", "no device of the command line is on hub LAN"},
	    {"--net-partition:l=1s-2s:a|zz", "'zz' in 'a|zz' is not a device on hub LAN 'l'"},
	    {"--net-down:zz=1s-2s", "there is no hub: device 'zz'"},
	    {"--net-down:b=1s-2s:x", "expected --net-down:NAME=FROM-TO"},
	    {"--net-Down:b=1s-2s", "did you mean --net-down:b=1s-2s?"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ran = 0;
		int rc = mkt_run(main_must_not_run, NULL, "--net:a=hub:l", "--net:b=hub:l",
		                 bad[i][0], NULL);
		ck_assert_msg(rc == -EINVAL, "%s: %d", bad[i][0], rc);
		ck_assert_int_eq(ran, 0);
		ck_assert_msg(strstr(mk_last_error(), bad[i][1]) != NULL, "%s: %s", bad[i][0],
		              mk_last_error());
	}
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  The same seed, the same run: examples/sim-ping, twice                                    */
/* ---------------------------------------------------------------------------------------- */

#define SIM_PING MK_BUILD_DIR "/examples/sim-ping"

static char scratch[] = "/tmp/mkhost-virtual-XXXXXX";

/* Run sim-ping with (args); its stdout goes to (out), its capture of n0 to (pcap). Returns its
 * exit status, and the real time it took in (*real_ns). */
static int sim_ping(const char *args, const char *out, const char *pcap, uint64_t *took)
{
	uint64_t t0 = real_ns();
	int st = mkt_sh("%s %s --net-pcap:n0=%s --net-pcap:n1=%s.1 >%s 2>/dev/null", SIM_PING, args,
	                pcap, pcap, out);
	*took = real_ns() - t0;
	return st;
}

START_TEST(same_seed_same_run)
{
	char out[4][300], pcap[4][300];
	uint64_t real;

	ck_assert_ptr_nonnull(mkdtemp(scratch));
	for (int i = 0; i < 4; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/out%d", scratch, i);
		snprintf(pcap[i], sizeof(pcap[i]), "%s/n0-%d.pcap", scratch, i);
	}
	ck_assert_int_eq(sim_ping("20 120 10% --seed=1", out[0], pcap[0], &real), 0);
	ck_assert_int_eq(sim_ping("20 120 10% --seed=1", out[1], pcap[1], &real), 0);
	ck_assert_int_eq(sim_ping("20 120 10% --seed=2", out[2], pcap[2], &real), 0);
	ck_assert_int_eq(mkt_sh("cmp -s %s %s && cmp -s %s %s && cmp -s %s.1 %s.1", out[0], out[1],
	                        pcap[0], pcap[1], pcap[0], pcap[1]),
	                 0);
	ck_assert_int_ne(mkt_sh("cmp -s %s %s", out[0], out[2]), 0);
	ck_assert_int_ne(mkt_sh("cmp -s %s %s", pcap[0], pcap[2]), 0);
	/* The capture's timestamps are virtual: the first frame at 2000-01-01T00:00:00. */
	ck_assert_int_eq(
	    mkt_sh("test \"$(od -An -tu4 -j24 -N4 %s | tr -d ' ')\" = 946684800", pcap[0]), 0);
	/* A partition is noted in the capture. */
	ck_assert_int_eq(
	    sim_ping("4 30 0% '--net-partition:lan=10s-20s:n0,n1|n2,n3'", out[3], pcap[3], &real),
	    0);
	ck_assert_int_eq(mkt_sh("grep -aq 'mkhost: partition lan: n0,n1|n2,n3' %s && "
	                        "grep -aq 'mkhost: heal lan' %s",
	                        pcap[3], pcap[3]),
	                 0);
	/* n1 pings n2 across the cut: the 10 pings sent while it lasts are lost */
	ck_assert_int_eq(mkt_sh("grep -q '^n1: pings 30, replies 20,' %s", out[3]), 0);
	mkt_sh("rm -rf %s", scratch);
}
END_TEST

/* 100 nodes, each pinging another, 10% loss, 10 virtual minutes: every frame accounted for, in
 * well under a minute of real time. */
START_TEST(hundred_nodes_ten_minutes)
{
	char dir[] = "/tmp/mkhost-virtual-XXXXXX", out[300], pcap[300];
	uint64_t real;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(pcap, sizeof(pcap), "%s/n0.pcap", dir);
	ck_assert_int_eq(sim_ping("100 600 10%", out, pcap, &real), 0);
	ck_assert_int_eq(mkt_sh("grep -q '^frames: sent [0-9]* = received [0-9]* + dropped "
	                        "[0-9]*$' %s && grep -q '^virtual time: 602.000 s$' %s",
	                        out, out),
	                 0);
	ck_assert_int_eq(mkt_sh("test $(grep -c '^n[0-9]*: pings 600, ' %s) = 100", out), 0);
	ck_assert_msg(real < 60 * SEC, "took %llu ms", (unsigned long long)(real / MS));
	fprintf(stderr, "100 nodes, 600 virtual seconds: %llu ms of real time (%.0fx)\n",
	        (unsigned long long)(real / MS), 602.0 * SEC / (double)real);
	mkt_sh("rm -rf %s", dir);
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

	TCase *net = tcase_create("net");
	tcase_set_timeout(net, 120);
	tcase_add_checked_fixture(net, setup, NULL);
	tcase_add_test(net, hub_latency);
	tcase_add_test(net, hub_rate);
	tcase_add_test(net, hub_bad_options);
	tcase_add_test(net, partitions_and_links);
	tcase_add_test(net, schedule_from_the_command_line);
	tcase_add_test(net, bad_schedules);
	tcase_add_test(net, same_seed_same_run);
	tcase_add_test(net, hundred_nodes_ten_minutes);
	suite_add_tcase(s, net);

	return mkt_run_suite(s, false);
}
