/* The scheduler: task order, yield, sleep, await, cancel, hooks, stacks, clocks, idling.
 *
 * Checks made inside tasks record their first failure in (mkt_failed) instead of calling ck_assert:
 * Check's assertions longjmp in CK_FORK=no mode, and a longjmp from a task stack to the test's
 * stack is undefined. Every test asserts (mkt_failed) is empty once mk_run has returned. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mkhost.h"
#include "noprobe.h"
#include "testlib.h"

#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define MS  1000000ULL
#define SEC 1000000000ULL

/* How late a sleep may wake. A correctness bound (a wakeup that waits for an unrelated event or a
 * coarse timer fails it), kept loose for loaded two-CPU machines and for Valgrind. */
#define LATE_NS (RUNNING_ON_VALGRIND ? 1000 * MS : 100 * MS)

/* Run (fn) as main with no arguments; check it returned (expect) and no CHECK failed. */
#define RUN(fn, arg, expect)                                                                       \
	do {                                                                                       \
		int r_ = mkt_run(fn, arg, NULL);                                                   \
		ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);                                   \
		ck_assert_int_eq(r_, expect);                                                      \
	} while (0)

static char trace[4096];
static size_t trace_len;

static void trace_add(char c)
{
	if (trace_len < sizeof(trace) - 1)
		trace[trace_len++] = c;
	trace[trace_len] = '\0';
}

static void setup(void)
{
	mkt_failed[0] = '\0';
	trace[0] = '\0';
	trace_len = 0;
}

static uint64_t elapsed_since(uint64_t t0)
{
	return mk_clock_monotonic() - t0;
}

/* ---------------------------------------------------------------------------------------- */
/*  Order and yield                                                                         */
/* ---------------------------------------------------------------------------------------- */

static intptr_t append_task(void *arg)
{
	trace_add((char)(intptr_t)arg);
	return (intptr_t)arg;
}

static mk_task *grandchild;

static intptr_t spawning_task(void *arg)
{
	CHECK_INT(mk_task_spawn(&grandchild, "grandchild", append_task, (void *)(intptr_t)'C'), ==,
	          0);
	trace_add((char)(intptr_t)arg);
	return 0;
}

static int main_order(int argc, char **argv, void *arg)
{
	mk_task *t[3];
	intptr_t r;

	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_task_spawn(&t[i], NULL, append_task, (void *)(intptr_t)('A' + i)), ==,
		          0);
	CHECK_STR(trace, ""); /* spawning does not suspend */
	CHECK_INT(mk_yield(), ==, 0);
	CHECK_STR(trace, "ABC");
	for (int i = 0; i < 3; i++) {
		r = -1;
		CHECK_INT(mk_task_await(t[i], &r), ==, 0);
		CHECK_INT(r, ==, 'A' + i);
	}

	/* A task spawned by a task starts after the tasks already runnable, main included. */
	trace_len = 0;
	trace[0] = '\0';
	CHECK_INT(mk_task_spawn(&t[0], NULL, spawning_task, (void *)(intptr_t)'A'), ==, 0);
	CHECK_INT(mk_task_spawn(&t[1], NULL, append_task, (void *)(intptr_t)'B'), ==, 0);
	CHECK_INT(mk_yield(), ==, 0);
	CHECK_STR(trace, "AB");
	CHECK_INT(mk_yield(), ==, 0);
	CHECK_STR(trace, "ABC");
	CHECK_INT(mk_task_await(t[0], NULL), ==, 0);
	CHECK_INT(mk_task_await(t[1], NULL), ==, 0);
	CHECK_INT(mk_task_await(grandchild, NULL), ==, 0);

	/* mk_sleep(0) is mk_yield(). */
	trace_len = 0;
	trace[0] = '\0';
	CHECK_INT(mk_task_spawn(&t[0], NULL, append_task, (void *)(intptr_t)'Z'), ==, 0);
	CHECK_INT(mk_sleep(0), ==, 0);
	CHECK_STR(trace, "Z");
	CHECK_INT(mk_task_await(t[0], NULL), ==, 0);
	return 0;
}

START_TEST(spawn_order)
{
	RUN(main_order, NULL, 0);
}
END_TEST

#define FAIR_TASKS  5
#define FAIR_ROUNDS 20

static intptr_t yielder(void *arg)
{
	for (int k = 0; k < FAIR_ROUNDS; k++) {
		trace_add((char)('0' + (intptr_t)arg));
		CHECK_INT(mk_yield(), ==, 0);
	}
	return 0;
}

static int main_fair(int argc, char **argv, void *arg)
{
	mk_task *t[FAIR_TASKS];
	char expect[FAIR_TASKS * FAIR_ROUNDS + 1];

	for (int i = 0; i < FAIR_TASKS; i++)
		CHECK_INT(mk_task_spawn(&t[i], NULL, yielder, (void *)(intptr_t)i), ==, 0);
	for (int i = 0; i < FAIR_TASKS; i++)
		CHECK_INT(mk_task_await(t[i], NULL), ==, 0);
	for (int k = 0; k < FAIR_ROUNDS; k++)
		for (int i = 0; i < FAIR_TASKS; i++)
			expect[k * FAIR_TASKS + i] = (char)('0' + i);
	expect[FAIR_TASKS * FAIR_ROUNDS] = '\0';
	CHECK_STR(trace, expect);
	return 0;
}

START_TEST(yield_round_robin)
{
	RUN(main_fair, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  mk_run, names, calls outside a task                                                     */
/* ---------------------------------------------------------------------------------------- */

static int main_value(int argc, char **argv, void *arg)
{
	CHECK_INT(argc, ==, 1);
	CHECK_STR(argv[0], "test");
	CHECK(argv[1] == NULL);
	return (int)(intptr_t)arg;
}

static int main_argv(int argc, char **argv, void *arg)
{
	CHECK_INT(argc, ==, 3);
	CHECK_STR(argv[1], "x");
	CHECK_STR(argv[2], "--y");
	CHECK(argv[3] == NULL);
	return 0;
}

START_TEST(run_returns_main_value)
{
	RUN(main_value, (void *)(intptr_t)42, 42);
	RUN(main_value, (void *)(intptr_t)0, 0);
	RUN(main_value, (void *)(intptr_t)-3, -3);
	int r = mkt_run(main_argv, NULL, "x", "--y", NULL);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(r, 0);
}
END_TEST

static int main_nested(int argc, char **argv, void *arg)
{
	int *ran = arg;
	(*ran)++;
	if (*ran == 1)
		CHECK_INT(mkt_run(main_nested, arg, NULL), ==, -EBUSY);
	return 5;
}

START_TEST(run_nested_is_ebusy)
{
	int ran = 0;
	RUN(main_nested, &ran, 5);
	ck_assert_int_eq(ran, 1);
}
END_TEST

static intptr_t name_task(void *arg)
{
	const char *expect = arg;
	mk_task *self = mk_task_self();
	CHECK(self != NULL);
	CHECK_STR(mk_task_name(self), expect);
	return 0;
}

static int main_names(int argc, char **argv, void *arg)
{
	mk_task *self = mk_task_self(), *t;
	char name[64];
	char long_name[41];

	CHECK(self != NULL);
	CHECK_STR(mk_task_name(self), "main");

	/* The name is copied at spawn. */
	snprintf(name, sizeof(name), "worker");
	CHECK_INT(mk_task_spawn(&t, name, name_task, "worker"), ==, 0);
	snprintf(name, sizeof(name), "changed");
	CHECK_STR(mk_task_name(t), "worker");
	CHECK(mk_task_self() == self);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);

	CHECK_INT(mk_task_spawn(&t, NULL, name_task, ""), ==, 0);
	CHECK_STR(mk_task_name(t), "");
	CHECK_INT(mk_task_await(t, NULL), ==, 0);

	/* Up to 31 bytes are kept. */
	memset(long_name, 'n', 40);
	long_name[40] = '\0';
	CHECK_INT(mk_task_spawn(&t, long_name, name_task, long_name + 9), ==, 0);
	CHECK_INT(strlen(mk_task_name(t)), ==, 31);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);

	CHECK_INT(mk_task_spawn(NULL, "x", name_task, ""), ==, -EINVAL);
	CHECK_INT(mk_task_spawn(&t, "x", NULL, NULL), ==, -EINVAL);
	return 0;
}

START_TEST(task_self_and_name)
{
	RUN(main_names, NULL, 0);
}
END_TEST

static int hook_calls;

static void count_hook(void *arg)
{
	int *n = arg;
	(*n)++;
}

static intptr_t never_runs(void *arg)
{
	int *flag = arg;
	*flag = 1;
	return 1;
}

/* Every call that needs a task, made where there is none. */
static void check_outside(int line)
{
	mk_task *t = NULL;
	mk_net *n = NULL;
	int flag = 0;

	if (mk_yield() != -EPERM)
		mkt_failf(line, "mk_yield() outside: %d, expected -EPERM", mk_yield());
	if (mk_sleep(0) != -EPERM || mk_sleep(MS) != -EPERM)
		mkt_failf(line, "mk_sleep outside: %d, expected -EPERM", mk_sleep(MS));
	if (mk_task_spawn(&t, "x", never_runs, &flag) != -EPERM)
		mkt_failf(line, "mk_task_spawn outside did not return -EPERM");
	if (mk_hook_add(count_hook, &hook_calls) != NULL)
		mkt_failf(line, "mk_hook_add outside returned a hook");
	if (mk_task_self() != NULL)
		mkt_failf(line, "mk_task_self() outside is not NULL");
	if (mk_backend_name() != NULL)
		mkt_failf(line, "mk_backend_name() outside is \"%s\"", mk_backend_name());
	if (mk_net_connect("svc", &n, NULL) != -EPERM)
		mkt_failf(line, "mk_net_connect outside did not return -EPERM");
}

static void *thread_outside(void *arg)
{
	check_outside(*(int *)arg);
	return NULL;
}

static int main_outside(int argc, char **argv, void *arg)
{
	/* Another thread is outside mk_run too, even while it runs. */
	pthread_t th;
	int line = __LINE__;
	CHECK_INT(pthread_create(&th, NULL, thread_outside, &line), ==, 0);
	CHECK_INT(pthread_join(th, NULL), ==, 0);
	CHECK(mk_backend_name() != NULL);
	CHECK(mk_task_self() != NULL);
	return 0;
}

START_TEST(calls_outside_a_task)
{
	check_outside(__LINE__);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	RUN(main_outside, NULL, 0);
	check_outside(__LINE__); /* and after mk_run has returned */
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(hook_calls, 0);
}
END_TEST

static int main_backend(int argc, char **argv, void *arg)
{
	const char *expect = arg;
	const char *name = mk_backend_name();
	CHECK(name != NULL);
	if (!name)
		return 0;
	if (expect)
		CHECK_STR(name, expect);
	else
		CHECK(strcmp(name, "io_uring") == 0 || strcmp(name, "epoll") == 0);
	return 0;
}

START_TEST(backend_name)
{
	const char *env = getenv("MKHOST_BACKEND");
	char *argv[] = {"test", NULL};
	struct mk_config cfg = {0};

	RUN(main_backend, (void *)env, 0);
	if (!env)
		return;
	/* The environment overrides the configuration. */
	cfg.backend = strcmp(env, "epoll") == 0 ? MK_BACKEND_IO_URING : MK_BACKEND_EPOLL;
	ck_assert_int_eq(mk_run_config(&cfg, 1, argv, main_backend, (void *)env), 0);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);

	/* Without it, the configuration decides. */
	char *saved = strdup(env);
	unsetenv("MKHOST_BACKEND");
	cfg.backend = MK_BACKEND_EPOLL;
	int r1 = mk_run_config(&cfg, 1, argv, main_backend, "epoll");
	cfg.backend = MK_BACKEND_IO_URING;
	int r2 = mk_run_config(&cfg, 1, argv, main_backend, "io_uring");
	setenv("MKHOST_BACKEND", saved, 1);
	free(saved);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(r1, 0);
	ck_assert_msg(r2 == 0 || r2 == -ENOSYS, "mk_run_config(io_uring) = %d", r2);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Time                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int main_sleep_bounds(int argc, char **argv, void *arg)
{
	static const uint64_t durations[] = {0,      1,      1000,    100000,  MS,
	                                     2 * MS, 5 * MS, 10 * MS, 20 * MS, 50 * MS};
	for (int rep = 0; rep < 2; rep++) {
		for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
			uint64_t ns = durations[i];
			uint64_t before = mk_clock_monotonic();
			int r = mk_sleep(ns);
			uint64_t after = mk_clock_monotonic();
			CHECK_INT(r, ==, 0);
			if (after < before + ns)
				mkt_failf(__LINE__, "mk_sleep(%llu) woke %llu ns early",
				          (unsigned long long)ns,
				          (unsigned long long)(before + ns - after));
			if (after - before >= ns + LATE_NS)
				mkt_failf(__LINE__, "mk_sleep(%llu) took %llu ns",
				          (unsigned long long)ns,
				          (unsigned long long)(after - before));
		}
	}
	return 0;
}

START_TEST(sleep_never_early_nor_very_late)
{
	RUN(main_sleep_bounds, NULL, 0);
}
END_TEST

#define SLEEPERS 20

struct sleeper {
	uint64_t ns, deadline, woke;
	int rank;
};

static int wake_count;

static intptr_t sleeper_task(void *arg)
{
	struct sleeper *s = arg;
	s->deadline = mk_clock_monotonic() + s->ns;
	CHECK_INT(mk_sleep(s->ns), ==, 0);
	s->woke = mk_clock_monotonic();
	s->rank = wake_count++;
	return 0;
}

static int main_sleepers(int argc, char **argv, void *arg)
{
	struct sleeper s[SLEEPERS];
	mk_task *t[SLEEPERS];

	wake_count = 0;
	for (int i = 0; i < SLEEPERS; i++) {
		s[i] = (struct sleeper){.ns = (uint64_t)((i * 7) % SLEEPERS + 1) * 2 * MS};
		CHECK_INT(mk_task_spawn(&t[i], NULL, sleeper_task, &s[i]), ==, 0);
	}
	for (int i = 0; i < SLEEPERS; i++)
		CHECK_INT(mk_task_await(t[i], NULL), ==, 0);
	CHECK_INT(wake_count, ==, SLEEPERS);
	for (int i = 0; i < SLEEPERS; i++) {
		CHECK_INT(s[i].woke, >=, s[i].deadline);
		for (int j = 0; j < SLEEPERS; j++)
			if (s[i].deadline < s[j].deadline && s[i].rank > s[j].rank)
				mkt_failf(__LINE__,
				          "sleeper %d (%llu ms) woke after sleeper %d (%llu ms)", i,
				          (unsigned long long)(s[i].ns / MS), j,
				          (unsigned long long)(s[j].ns / MS));
	}
	return 0;
}

static intptr_t busy_yielder(void *arg)
{
	int *stop = arg;
	intptr_t n = 0;
	while (!*stop && n < 100000000 && mk_yield() == 0)
		n++;
	return n;
}

static int main_sleep_among_yielders(int argc, char **argv, void *arg)
{
	int stop = 0;
	mk_task *t[3];

	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_task_spawn(&t[i], NULL, busy_yielder, &stop), ==, 0);
	/* Always-runnable tasks must not keep a sleeper from waking. */
	for (int i = 0; i < 5; i++) {
		uint64_t before = mk_clock_monotonic();
		CHECK_INT(mk_sleep(10 * MS), ==, 0);
		uint64_t took = elapsed_since(before);
		CHECK_INT(took, >=, 10 * MS);
		if (took >= 10 * MS + LATE_NS)
			mkt_failf(__LINE__, "a 10 ms sleep among yielding tasks took %llu ms",
			          (unsigned long long)(took / MS));
	}
	stop = 1;
	for (int i = 0; i < 3; i++) {
		intptr_t n = 0;
		CHECK_INT(mk_task_await(t[i], &n), ==, 0);
		CHECK_INT(n, >, 0);
	}
	return 0;
}

START_TEST(sleep_among_yielders)
{
	RUN(main_sleep_among_yielders, NULL, 0);
}
END_TEST

START_TEST(sleepers_wake_in_deadline_order)
{
	RUN(main_sleepers, NULL, 0);
}
END_TEST

START_TEST(clocks)
{
	uint64_t wall = mk_clock_wall();
	long long now = (long long)time(NULL);
	long long wall_s = (long long)(wall / SEC);
	ck_assert_msg(wall_s >= now - 1 && wall_s <= now + 1, "mk_clock_wall %llu vs time() %lld",
	              (unsigned long long)wall, now);

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t mono = mk_clock_monotonic();
	uint64_t ref = (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
	ck_assert_msg(mono >= ref && mono - ref < SEC, "mk_clock_monotonic %llu vs %llu",
	              (unsigned long long)mono, (unsigned long long)ref);

	uint64_t prev = mk_clock_monotonic(), t = prev;
	for (int i = 0; i < 100000 && t >= prev; i++) {
		prev = t;
		t = mk_clock_monotonic();
	}
	ck_assert_msg(t >= prev, "monotonic clock went back: %llu after %llu",
	              (unsigned long long)t, (unsigned long long)prev);
}
END_TEST

START_TEST(strings)
{
	ck_assert_str_eq(mk_version(), "0.1.0");
	const char *s = mk_strerror(-ECANCELED);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_gt(strlen(s), 0);
	ck_assert_ptr_nonnull(mk_strerror(0));
	ck_assert_ptr_nonnull(mk_strerror(-EINVAL));
	ck_assert_ptr_nonnull(mk_strerror(-123456));
	ck_assert_str_ne(mk_strerror(-ECANCELED), mk_strerror(-EINVAL));
}
END_TEST

static int main_idle(int argc, char **argv, void *arg)
{
	unsigned long long cpu0 = mkt_cpu_ns();
	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(mk_sleep(500 * MS), ==, 0);
	unsigned long long cpu = mkt_cpu_ns() - cpu0;
	CHECK_INT(elapsed_since(t0), >=, 500 * MS);
	if (cpu >= 50 * MS)
		mkt_failf(__LINE__, "sleeping 500 ms used %llu ms of CPU", cpu / MS);
	return 0;
}

START_TEST(idle_sleeps_in_kernel)
{
	RUN(main_idle, NULL, 0);
}
END_TEST

/* With busy-polling on, an idle program still sleeps in the kernel (the poll is adaptive: long
 * waits turn it off), and short sleeps, whose deadline falls inside the spin, wake on time. */
static int main_busy_idle(int argc, char **argv, void *arg)
{
	for (int i = 0; i < 50; i++) { /* deadlines shorter than the spin */
		uint64_t t0 = mk_clock_monotonic();
		CHECK_INT(mk_sleep(100 * 1000), ==, 0);
		CHECK_INT(elapsed_since(t0), >=, 100 * 1000);
	}
	for (int i = 0; i < 10; i++) /* long waits teach it that the program is idle */
		CHECK_INT(mk_sleep(100 * MS), ==, 0);
	unsigned long long cpu0 = mkt_cpu_ns();
	for (int i = 0; i < 5; i++) /* a plain 50 ms spin in each would cost 250 ms of CPU */
		CHECK_INT(mk_sleep(100 * MS), ==, 0);
	unsigned long long cpu = mkt_cpu_ns() - cpu0;
	if (cpu >= 50 * MS)
		mkt_failf(__LINE__, "idle with busy_poll_us = 50000: %llu ms of CPU in 500 ms",
		          cpu / MS);
	return 0;
}

START_TEST(busy_poll_adapts)
{
	struct mk_config cfg = {.busy_poll_us = 50000};
	char *argv[] = {"test", NULL};
	int r = mk_run_config(&cfg, 1, argv, main_busy_idle, NULL);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(r, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Await                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static intptr_t return_arg(void *arg)
{
	return (intptr_t)arg;
}

struct ending {
	int done;
	intptr_t value;
	uint64_t sleep_ns;
};

static intptr_t ending_task(void *arg)
{
	struct ending *e = arg;
	if (e->sleep_ns)
		CHECK_INT(mk_sleep(e->sleep_ns), ==, 0);
	e->done = 1;
	return e->value;
}

static mk_task *awaited;

static intptr_t await_awaited(void *arg)
{
	intptr_t r = -1;
	CHECK_INT(mk_task_await(awaited, &r), ==, 0);
	return r;
}

static intptr_t await_self(void *arg)
{
	return mk_task_await(mk_task_self(), NULL);
}

static int main_await(int argc, char **argv, void *arg)
{
	mk_task *t, *u;
	intptr_t r = -1;

	CHECK_INT(mk_task_spawn(&t, NULL, return_arg, (void *)(intptr_t)1234), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, 0);
	CHECK_INT(r, ==, 1234);

	CHECK_INT(mk_task_spawn(&t, NULL, return_arg, (void *)(intptr_t)-5), ==, 0);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);

	/* A task that has ended already. */
	struct ending e = {.value = 77};
	CHECK_INT(mk_task_spawn(&t, NULL, ending_task, &e), ==, 0);
	for (int i = 0; i < 100 && !e.done; i++)
		mk_yield();
	CHECK_INT(e.done, ==, 1);
	r = -1;
	CHECK_INT(mk_task_await(t, &r), ==, 0);
	CHECK_INT(r, ==, 77);

	/* A task that sleeps first. */
	e = (struct ending){.value = 8, .sleep_ns = 20 * MS};
	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(mk_task_spawn(&t, NULL, ending_task, &e), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, 0);
	CHECK_INT(e.done, ==, 1);
	CHECK_INT(r, ==, 8);
	CHECK_INT(elapsed_since(t0), >=, 20 * MS);

	CHECK_INT(mk_task_await(NULL, &r), ==, -EINVAL);
	CHECK_INT(mk_task_await(mk_task_self(), &r), ==, -EINVAL);

	CHECK_INT(mk_task_spawn(&t, NULL, await_self, NULL), ==, 0);
	r = 0;
	CHECK_INT(mk_task_await(t, &r), ==, 0);
	CHECK_INT(r, ==, -EINVAL);

	/* A task someone else is awaiting. */
	e = (struct ending){.value = 5, .sleep_ns = 20 * MS};
	CHECK_INT(mk_task_spawn(&awaited, NULL, ending_task, &e), ==, 0);
	CHECK_INT(mk_task_spawn(&u, NULL, await_awaited, NULL), ==, 0);
	CHECK_INT(mk_yield(), ==, 0); /* u is now waiting for (awaited) */
	CHECK_INT(mk_task_await(awaited, &r), ==, -EINVAL);
	r = -1;
	CHECK_INT(mk_task_await(u, &r), ==, 0);
	CHECK_INT(r, ==, 5);
	return 0;
}

START_TEST(await)
{
	RUN(main_await, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Cancel                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct victim {
	int started, woke;
	int sleep_r, yield_r, sleep2_r, sleep0_r, await_r;
	uint64_t sleep_ns, woke_at, after_at;
};

static intptr_t sleeping_victim(void *arg)
{
	struct victim *v = arg;
	v->started = 1;
	v->sleep_r = mk_sleep(v->sleep_ns);
	v->woke_at = mk_clock_monotonic();
	v->woke = 1;
	/* From now on every suspending call fails at once. */
	v->yield_r = mk_yield();
	v->sleep2_r = mk_sleep(10 * SEC);
	v->sleep0_r = mk_sleep(0);
	v->after_at = mk_clock_monotonic();
	return 99;
}

static int main_cancel_sleeping(int argc, char **argv, void *arg)
{
	uint64_t sleep_ns = *(uint64_t *)arg;
	struct victim v = {.sleep_ns = sleep_ns};
	mk_task *t;
	intptr_t r = -1;

	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(mk_task_spawn(&t, "victim", sleeping_victim, &v), ==, 0);
	CHECK_INT(mk_sleep(10 * MS), ==, 0);
	CHECK_INT(v.started, ==, 1);
	CHECK_INT(v.woke, ==, 0);
	uint64_t cancelled_at = mk_clock_monotonic();
	CHECK_INT(mk_task_cancel(t), ==, 0);
	CHECK_INT(v.woke, ==, 0); /* cancel does not suspend */
	CHECK_INT(mk_task_cancel(t), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, -ECANCELED);
	CHECK_INT(r, ==, 99);
	CHECK_INT(v.sleep_r, ==, -ECANCELED);
	CHECK_INT(v.yield_r, ==, -ECANCELED);
	CHECK_INT(v.sleep2_r, ==, -ECANCELED);
	CHECK_INT(v.sleep0_r, ==, -ECANCELED);
	if (v.woke_at - cancelled_at >= LATE_NS)
		mkt_failf(__LINE__, "cancelled sleep ended %llu ms after the cancel",
		          (unsigned long long)((v.woke_at - cancelled_at) / MS));
	if (v.after_at - v.woke_at >= LATE_NS)
		mkt_failf(__LINE__, "suspending calls after the cancel took %llu ms",
		          (unsigned long long)((v.after_at - v.woke_at) / MS));
	CHECK_INT(elapsed_since(t0), <, SEC);
	return 0;
}

START_TEST(cancel_sleeping)
{
	uint64_t ten_s = 10 * SEC;
	RUN(main_cancel_sleeping, &ten_s, 0);
}
END_TEST

START_TEST(cancel_sleeping_forever)
{
	/* A deadline that overflows must not turn into one in the past. */
	uint64_t forever = UINT64_MAX;
	RUN(main_cancel_sleeping, &forever, 0);
}
END_TEST

static intptr_t yield_until_cancelled(void *arg)
{
	intptr_t n = 0;
	while (n < 1000000 && mk_yield() == 0)
		n++;
	return n;
}

static int main_cancel_yielding(int argc, char **argv, void *arg)
{
	mk_task *t;
	intptr_t r = -1;

	CHECK_INT(mk_task_spawn(&t, NULL, yield_until_cancelled, NULL), ==, 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_yield(), ==, 0);
	CHECK_INT(mk_task_cancel(t), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, -ECANCELED);
	CHECK(r >= 2 && r <= 4); /* it ran once per main's yield */
	return 0;
}

START_TEST(cancel_yielding)
{
	RUN(main_cancel_yielding, NULL, 0);
}
END_TEST

static int main_cancel_unstarted(int argc, char **argv, void *arg)
{
	mk_task *t;
	int flag = 0;
	intptr_t r = -1;

	CHECK_INT(mk_task_spawn(&t, NULL, never_runs, &flag), ==, 0);
	CHECK_INT(mk_task_cancel(t), ==, 0);
	CHECK_INT(mk_task_cancel(t), ==, 0);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, -ECANCELED);
	CHECK_INT(r, ==, 0);
	CHECK_INT(flag, ==, 0);

	/* Awaited straight away, before the scheduler ever looked at it. */
	CHECK_INT(mk_task_spawn(&t, NULL, never_runs, &flag), ==, 0);
	CHECK_INT(mk_task_cancel(t), ==, 0);
	r = -1;
	CHECK_INT(mk_task_await(t, &r), ==, -ECANCELED);
	CHECK_INT(r, ==, 0);
	CHECK_INT(flag, ==, 0);
	return 0;
}

START_TEST(cancel_before_start)
{
	RUN(main_cancel_unstarted, NULL, 0);
}
END_TEST

static int main_cancel_ended(int argc, char **argv, void *arg)
{
	mk_task *t;
	struct ending e = {.value = 3};
	intptr_t r = -1;

	CHECK_INT(mk_task_spawn(&t, NULL, ending_task, &e), ==, 0);
	for (int i = 0; i < 100 && !e.done; i++)
		mk_yield();
	CHECK_INT(e.done, ==, 1);
	CHECK_INT(mk_task_cancel(t), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, 0);
	CHECK_INT(r, ==, 3);
	CHECK_INT(mk_task_cancel(NULL), ==, -EINVAL);
	return 0;
}

START_TEST(cancel_ended)
{
	RUN(main_cancel_ended, NULL, 0);
}
END_TEST

struct awaiter {
	struct ending *target_state;
	mk_task *target;
	int await_r, target_done_then, yield_r;
	intptr_t result;
};

static intptr_t awaiter_task(void *arg)
{
	struct awaiter *a = arg;
	a->await_r = mk_task_await(a->target, &a->result);
	a->target_done_then = a->target_state->done;
	a->yield_r = mk_yield();
	return 6;
}

static intptr_t self_cancelling_awaiter(void *arg)
{
	CHECK_INT(mk_task_cancel(mk_task_self()), ==, 0);
	CHECK_INT(mk_yield(), ==, -ECANCELED);
	return awaiter_task(arg);
}

static int main_cancel_awaiter(int argc, char **argv, void *arg)
{
	struct ending e = {.value = 9, .sleep_ns = 50 * MS};
	struct awaiter a = {.target_state = &e};
	mk_task *w;
	intptr_t r = -1;

	/* Cancelled while waiting: the wait goes on until the target ends. */
	CHECK_INT(mk_task_spawn(&a.target, NULL, ending_task, &e), ==, 0);
	CHECK_INT(mk_task_spawn(&w, NULL, awaiter_task, &a), ==, 0);
	CHECK_INT(mk_sleep(10 * MS), ==, 0);
	CHECK_INT(mk_task_cancel(w), ==, 0);
	CHECK_INT(mk_task_await(w, &r), ==, -ECANCELED);
	CHECK_INT(r, ==, 6);
	CHECK_INT(a.await_r, ==, 0);
	CHECK_INT(a.result, ==, 9);
	CHECK_INT(a.target_done_then, ==, 1);
	CHECK_INT(a.yield_r, ==, -ECANCELED);

	/* Already cancelled when it starts waiting: await still waits (its -ECANCELED means the
	 * target was cancelled, and the target must be freed by someone). */
	e = (struct ending){.value = 4, .sleep_ns = 30 * MS};
	a = (struct awaiter){.target_state = &e};
	CHECK_INT(mk_task_spawn(&a.target, NULL, ending_task, &e), ==, 0);
	CHECK_INT(mk_task_spawn(&w, NULL, self_cancelling_awaiter, &a), ==, 0);
	r = -1;
	CHECK_INT(mk_task_await(w, &r), ==, -ECANCELED);
	CHECK_INT(r, ==, 6);
	CHECK_INT(a.await_r, ==, 0);
	CHECK_INT(a.result, ==, 4);
	CHECK_INT(a.target_done_then, ==, 1);
	return 0;
}

START_TEST(cancel_awaiter)
{
	RUN(main_cancel_awaiter, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  main returning with children alive                                                      */
/* ---------------------------------------------------------------------------------------- */

struct shutdown {
	int started, finished, sleep_cancelled, unexpected;
	mk_task *sleeper;
};

static intptr_t shutdown_sleeper(void *arg)
{
	struct shutdown *s = arg;
	s->started++;
	if (mk_sleep(10 * SEC) == -ECANCELED)
		s->sleep_cancelled++;
	else
		s->unexpected++;
	s->finished++;
	return 0;
}

static intptr_t shutdown_yielder(void *arg)
{
	struct shutdown *s = arg;
	s->started++;
	int n = 0;
	while (n < 10000000 && mk_yield() == 0)
		n++;
	if (n == 10000000)
		s->unexpected++;
	s->finished++;
	return 0;
}

static intptr_t shutdown_awaiter(void *arg)
{
	struct shutdown *s = arg;
	s->started++;
	int r = mk_task_await(s->sleeper, NULL);
	if (r != -ECANCELED)
		s->unexpected++;
	s->finished++;
	return 0;
}

static intptr_t shutdown_never(void *arg)
{
	struct shutdown *s = arg;
	s->started++;
	s->finished++;
	return 0;
}

static int main_leaves_children(int argc, char **argv, void *arg)
{
	struct shutdown *s = arg;
	mk_task *t;

	for (int i = 0; i < 10; i++)
		CHECK_INT(mk_task_spawn(&t, "sleeper", shutdown_sleeper, s), ==, 0);
	CHECK_INT(mk_task_spawn(&s->sleeper, "awaited", shutdown_sleeper, s), ==, 0);
	CHECK_INT(mk_task_spawn(&t, "awaiter", shutdown_awaiter, s), ==, 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(mk_task_spawn(&t, "yielder", shutdown_yielder, s), ==, 0);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(s->started, ==, 17);
	CHECK_INT(s->finished, ==, 0);
	/* These never start. */
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_task_spawn(&t, "never", shutdown_never, s), ==, 0);
	return 7;
}

START_TEST(main_return_cancels_children)
{
	struct shutdown s = {0};
	uint64_t t0 = mk_clock_monotonic();
	RUN(main_leaves_children, &s, 7);
	ck_assert_int_eq(s.started, 17);
	ck_assert_int_eq(s.finished, 17);
	ck_assert_int_eq(s.sleep_cancelled, 11);
	ck_assert_int_eq(s.unexpected, 0);
	ck_assert_uint_lt(elapsed_since(t0), 2 * SEC);
}
END_TEST

/* A task spawned during the shutdown (here by a cancelled child) is cancelled at once: it never
 * starts, so it cannot hold mk_run up. */
static int late_started;

static intptr_t late_sleeper(void *arg)
{
	late_started = 1;
	mk_sleep(10 * SEC);
	return 0;
}

static intptr_t spawner_on_cancel(void *arg)
{
	mk_task *late;
	if (mk_sleep(10 * SEC) == -ECANCELED &&
	    mk_task_spawn(&late, "late", late_sleeper, NULL) == 0)
		CHECK_INT(mk_task_await(late, NULL), ==, -ECANCELED);
	return 0;
}

static int main_leaves_spawner(int argc, char **argv, void *arg)
{
	mk_task *t;
	CHECK_INT(mk_task_spawn(&t, "spawner", spawner_on_cancel, NULL), ==, 0);
	CHECK_INT(mk_yield(), ==, 0);
	return 4;
}

START_TEST(spawn_during_shutdown_never_starts)
{
	uint64_t t0 = mk_clock_monotonic();
	late_started = 0;
	RUN(main_leaves_spawner, NULL, 4);
	ck_assert_int_eq(late_started, 0);
	ck_assert_uint_lt(elapsed_since(t0), 2 * SEC);
}
END_TEST

static mk_task *main_handle;

static intptr_t await_main(void *arg)
{
	return mk_task_await(main_handle, NULL);
}

static int main_deadlock(int argc, char **argv, void *arg)
{
	mk_task *t;
	main_handle = mk_task_self();
	CHECK_INT(mk_task_spawn(&t, "waits-for-main", await_main, NULL), ==, 0);
	mk_task_await(t, NULL);
	mkt_failf(__LINE__, "main's await of a task awaiting main returned");
	return 0;
}

START_TEST(run_deadlock)
{
	/* Two tasks awaiting each other: nothing can wake them, cancelling does not help. */
	uint64_t t0 = mk_clock_monotonic();
	RUN(main_deadlock, NULL, -EDEADLK);
	ck_assert_uint_lt(elapsed_since(t0), 2 * SEC);
}
END_TEST

static mk_hook *leftover_hook;
static int leftover_calls;

static int main_leave_hook(int argc, char **argv, void *arg)
{
	leftover_hook = mk_hook_add(count_hook, &leftover_calls);
	CHECK(leftover_hook != NULL);
	CHECK_INT(mk_sleep(MS), ==, 0);
	return 1;
}

static int main_sleep_a_bit(int argc, char **argv, void *arg)
{
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_sleep(MS), ==, 0);
	return 2;
}

START_TEST(run_twice)
{
	/* A second mk_run starts clean: the first one's hooks are gone. */
	RUN(main_leave_hook, NULL, 1);
	int calls = leftover_calls;
	ck_assert_int_gt(calls, 0);
	RUN(main_sleep_a_bit, NULL, 2);
	ck_assert_int_eq(leftover_calls, calls);
	RUN(main_order, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Hooks                                                                                   */
/* ---------------------------------------------------------------------------------------- */

struct self_remover {
	mk_hook *self, *other;
	int calls, remove_r, other_remove_r;
	int *other_calls, other_calls_at_removal;
};

static void self_removing_hook(void *arg)
{
	struct self_remover *s = arg;
	s->calls++;
	if (s->calls == 1) {
		s->remove_r = mk_hook_remove(s->self);
		if (s->other) {
			s->other_remove_r = mk_hook_remove(s->other);
			s->other_calls_at_removal = *s->other_calls;
		}
	}
}

struct suspender {
	int calls;
	int yield_r, sleep_r, sleep0_r, await_r;
	mk_task *self;
};

static void suspending_hook(void *arg)
{
	struct suspender *s = arg;
	s->calls++;
	s->yield_r = mk_yield();
	s->sleep_r = mk_sleep(MS);
	s->sleep0_r = mk_sleep(0);
	s->self = mk_task_self();
}

static int main_hooks(int argc, char **argv, void *arg)
{
	int count = 0;
	mk_hook *h = mk_hook_add(count_hook, &count);

	CHECK(h != NULL);
	CHECK_INT(count, ==, 0); /* adding does not run it */
	for (int i = 0; i < 5; i++)
		CHECK_INT(mk_sleep(2 * MS), ==, 0);
	CHECK_INT(count, >=, 5); /* each sleep needs at least one poll */
	CHECK_INT(mk_hook_remove(h), ==, 0);
	int before = count;
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_sleep(2 * MS), ==, 0);
	CHECK_INT(count, ==, before);

	/* A hook removing itself, then one removing itself and another. */
	struct self_remover s = {0};
	s.self = mk_hook_add(self_removing_hook, &s);
	CHECK(s.self != NULL);
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_sleep(2 * MS), ==, 0);
	CHECK_INT(s.calls, ==, 1);
	CHECK_INT(s.remove_r, ==, 0);

	int other_calls = 0;
	s = (struct self_remover){.other_calls = &other_calls};
	s.self = mk_hook_add(self_removing_hook, &s);
	s.other = mk_hook_add(count_hook, &other_calls);
	CHECK(s.self != NULL && s.other != NULL);
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_sleep(2 * MS), ==, 0);
	CHECK_INT(s.calls, ==, 1);
	CHECK_INT(s.remove_r, ==, 0);
	CHECK_INT(s.other_remove_r, ==, 0);
	CHECK_INT(other_calls, ==, s.other_calls_at_removal);

	/* Hooks are not tasks. */
	struct suspender sus = {.yield_r = 1, .sleep_r = 1, .sleep0_r = 1};
	sus.self = mk_task_self();
	h = mk_hook_add(suspending_hook, &sus);
	CHECK(h != NULL);
	CHECK_INT(mk_sleep(2 * MS), ==, 0);
	CHECK_INT(mk_hook_remove(h), ==, 0);
	CHECK_INT(sus.calls, >, 0);
	CHECK_INT(sus.yield_r, ==, -EPERM);
	CHECK_INT(sus.sleep_r, ==, -EPERM);
	CHECK_INT(sus.sleep0_r, ==, -EPERM);
	CHECK(sus.self == NULL);

	CHECK(mk_hook_add(NULL, NULL) == NULL);
	CHECK_INT(mk_hook_remove(NULL), ==, -EINVAL);
	return 0;
}

START_TEST(hooks)
{
	RUN(main_hooks, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Many tasks                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Under Valgrind, which is some fifty times slower, fewer: the point there is memory errors. */
#define MANY (RUNNING_ON_VALGRIND ? 2000 : 100000)

static intptr_t yield_once(void *arg)
{
	if (mk_yield() != 0)
		return -1000000000;
	return (intptr_t)arg;
}

static intptr_t sleep_10ms(void *arg)
{
	uint64_t t0 = mk_clock_monotonic();
	if (mk_sleep(10 * MS) != 0)
		return 0;
	return elapsed_since(t0) >= 10 * MS;
}

static long max_map_count(void)
{
	long n = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

/* Spawn MANY tasks running (fn) at once, await them all; return the sum of their results. */
static long long spawn_many(mk_task_fn fn)
{
	mk_task **t = calloc(MANY, sizeof(*t));
	long spawned = 0;
	long long sum = 0;
	int bad = 0;

	CHECK(t != NULL);
	if (!t)
		return -1;
	for (; spawned < MANY; spawned++) {
		int r = mk_task_spawn(&t[spawned], NULL, fn, (void *)(intptr_t)spawned);
		if (r != 0) {
			mkt_failf(__LINE__, "spawning task %ld of %d: %s (vm.max_map_count is %ld)",
			          spawned, MANY, mk_strerror(r), max_map_count());
			break;
		}
	}
	for (long i = 0; i < spawned; i++) {
		intptr_t res = 0;
		if (mk_task_await(t[i], &res) != 0)
			bad++;
		sum += res;
	}
	CHECK_INT(bad, ==, 0);
	free(t);
	return sum;
}

static int main_many_yield(int argc, char **argv, void *arg)
{
	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(spawn_many(yield_once), ==, (long long)MANY * (MANY - 1) / 2);
	fprintf(stderr, "%d tasks spawned, yielded, awaited in %llu ms\n", MANY,
	        (unsigned long long)(elapsed_since(t0) / MS));
	return 0;
}

START_TEST(many_tasks_yield)
{
	RUN(main_many_yield, NULL, 0);
}
END_TEST

static int main_many_sleep(int argc, char **argv, void *arg)
{
	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(spawn_many(sleep_10ms), ==, MANY);
	uint64_t ms = elapsed_since(t0) / MS;
	fprintf(stderr, "%d tasks slept 10 ms concurrently in %llu ms\n", MANY,
	        (unsigned long long)ms);
	CHECK_INT(ms, <, 30000); /* they sleep together, not one after the other */
	return 0;
}

START_TEST(many_tasks_sleep)
{
	RUN(main_many_sleep, NULL, 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Stacks                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static volatile unsigned unbounded = UINT_MAX;

/* About (kib) KiB of stack: each frame holds a 1 KiB array whose address the next frame uses,
 * so the compiler can neither shrink the frames nor turn the recursion into a loop. */
static __attribute__((noinline)) int use_stack(unsigned kib, volatile char *parent)
{
	volatile char frame[1024];
	frame[0] = (char)kib;
	frame[sizeof(frame) - 1] = parent ? parent[0] : 0;
	if (kib <= 1)
		return frame[0];
	return use_stack(kib - 1, frame) + frame[sizeof(frame) - 1];
}

static intptr_t stack_user(void *arg)
{
	use_stack((unsigned)(uintptr_t)arg, NULL);
	return 1;
}

static int main_stack(int argc, char **argv, void *arg)
{
	mk_task *t;
	intptr_t r = 0;
	CHECK_INT(mk_task_spawn(&t, "stack", stack_user, arg), ==, 0);
	CHECK_INT(mk_task_await(t, &r), ==, 0);
	CHECK_INT(r, ==, 1);
	return 0;
}

static int run_with_stack(size_t stack_size, unsigned kib)
{
	struct mk_config cfg = {.stack_size = stack_size};
	char *argv[] = {"test", NULL};
	return mk_run_config(&cfg, 1, argv, main_stack, (void *)(uintptr_t)kib);
}

START_TEST(stack_sizes)
{
	ck_assert_int_eq(run_with_stack(64 * 1024, 48), 0);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(run_with_stack(64 * 1024 + 1, 48), 0); /* rounded up to pages */
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(run_with_stack(0, 200), 0); /* the default, 256 KiB */
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
}
END_TEST

struct overflow_case {
	size_t stack_size;
	const char *name; /* of the task that overflows; "main" for main itself */
	unsigned kib;     /* how much stack it uses */
};

static intptr_t overflow_task(void *arg)
{
	const struct overflow_case *oc = arg;
	use_stack(oc->kib, NULL);
	return 0;
}

static int main_overflow(int argc, char **argv, void *arg)
{
	const struct overflow_case *oc = arg;
	mk_task *t;

	if (strcmp(oc->name, "main") == 0) {
		use_stack(oc->kib, NULL);
		return 0;
	}
	if (mk_task_spawn(&t, oc->name, overflow_task, arg) != 0)
		return 3;
	return mk_task_await(t, NULL) == 0 ? 0 : 4;
}

static int child_overflow(void *arg)
{
	const struct overflow_case *oc = arg;
	struct mk_config cfg = {.stack_size = oc->stack_size};
	char *argv[] = {"test", NULL};
	int r = mk_run_config(&cfg, 1, argv, main_overflow, arg);
	return r < 0 ? 100 : r;
}

static void check_overflow_caught(const struct overflow_case *oc)
{
	struct mkt_captured c;
	mkt_run_captured(STDERR_FILENO, child_overflow, (void *)oc, &c);
	ck_assert_msg((WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT) ||
	                  (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0),
	              "overflowing task '%s': child %s %d, stderr: %s", oc->name,
	              WIFSIGNALED(c.status) ? "killed by signal" : "exited with",
	              WIFSIGNALED(c.status) ? WTERMSIG(c.status) : WEXITSTATUS(c.status), c.text);
	ck_assert_msg(strstr(c.text, "stack overflow") != NULL,
	              "no \"stack overflow\" on stderr: %s", c.text);
	ck_assert_msg(strstr(c.text, oc->name) != NULL, "task name \"%s\" not on stderr: %s",
	              oc->name, c.text);
}

START_TEST(stack_overflow_caught)
{
	struct overflow_case deep = {.name = "deep", .kib = unbounded};
	check_overflow_caught(&deep);
}
END_TEST

START_TEST(stack_overflow_in_main)
{
	struct overflow_case oc = {.name = "main", .kib = unbounded};
	check_overflow_caught(&oc);
}
END_TEST

START_TEST(stack_size_honoured)
{
	/* A small configured stack overflows where the default would not ... */
	struct overflow_case small = {.stack_size = 64 * 1024, .name = "small", .kib = 100};
	check_overflow_caught(&small);

	/* ... and a large one holds what the default could not (600 KiB rather than more, so that
	 * AddressSanitizer's larger frames fit too). */
	struct overflow_case big = {.stack_size = 1024 * 1024, .name = "big", .kib = 600};
	struct mkt_captured c;
	mkt_run_captured(STDERR_FILENO, child_overflow, &big, &c);
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
	              "600 KiB on a 1 MiB stack: status 0x%x, stderr: %s", c.status, c.text);
}
END_TEST

/* A frame far larger than the stack, whose first write would land past the guard below the
 * stack: the task that owns it is reported, never another task's stack overwritten. The tests
 * are built with -fstack-clash-protection, as mkhost's pkg-config flags build a program: the
 * frame is probed page by page and the first probe past the stack hits its guard. Code built
 * without the flag (tests/noprobe.c) is caught for frames up to the guard's size. */
static __attribute__((noinline)) int probed_frame(void)
{
	volatile char big[1024 * 1024]; /* four times the default stack, four guards */

	big[0] = 1; /* its far end first */
	big[sizeof(big) - 1] = 2;
	return big[0] + big[sizeof(big) - 1];
}

#define PARKED     8
#define PARKED_KIB 16
#define CANARY     0x5a

/* Fills some of its stack and sleeps there; a write into it shows when it wakes. */
static intptr_t parked_task(void *arg)
{
	volatile char mine[PARKED_KIB * 1024];

	for (size_t i = 0; i < sizeof(mine); i++)
		mine[i] = CANARY;
	mk_sleep(100 * MS);
	for (size_t i = 0; i < sizeof(mine); i++)
		if (mine[i] != CANARY) {
			fprintf(stderr, "a parked task's stack was overwritten\n");
			return 1;
		}
	return 0;
}

static intptr_t huge_task(void *arg)
{
	const bool *probed = arg;

	/* The parked tasks, whose stacks were mapped after (below) this one, fill theirs. */
	mk_yield();
	return *probed ? probed_frame() : mkt_noprobe_frame();
}

static int main_huge_frame(int argc, char **argv, void *arg)
{
	mk_task *huge, *parked[PARKED];
	intptr_t r, bad = 0;

	if (mk_task_spawn(&huge, "huge", huge_task, arg) != 0)
		return 3;
	for (int i = 0; i < PARKED; i++)
		if (mk_task_spawn(&parked[i], "parked", parked_task, NULL) != 0)
			return 3;
	if (mk_task_await(huge, NULL) != 0)
		return 4;
	for (int i = 0; i < PARKED; i++)
		if (mk_task_await(parked[i], &r) != 0 || r != 0)
			bad++;
	return bad != 0 ? 5 : 0;
}

static int child_huge_frame(void *arg)
{
	const bool *probed = arg;
	/* Unprobed: a frame smaller than the guard, larger than what is left of a 64 KiB stack. */
	struct mk_config cfg = {.stack_size = *probed ? 0 : 64 * 1024};
	char *argv[] = {"test", NULL};
	int r = mk_run_config(&cfg, 1, argv, main_huge_frame, arg);
	return r < 0 ? 100 : r;
}

static void check_huge_frame_caught(bool probed)
{
	struct mkt_captured c;

	mkt_run_captured(STDERR_FILENO, child_huge_frame, &probed, &c);
	ck_assert_msg(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT,
	              "a %s frame: child %s %d, stderr: %s", probed ? "1 MiB" : "192 KiB unprobed",
	              WIFSIGNALED(c.status) ? "killed by signal" : "exited with",
	              WIFSIGNALED(c.status) ? WTERMSIG(c.status) : WEXITSTATUS(c.status), c.text);
	ck_assert_msg(strstr(c.text, "stack overflow in task 'huge'") != NULL,
	              "no \"stack overflow in task 'huge'\" on stderr: %s", c.text);
}

START_TEST(huge_frame_caught)
{
	check_huge_frame_caught(true);
}
END_TEST

START_TEST(unprobed_frame_caught)
{
	check_huge_frame_caught(false);
}
END_TEST

static Suite *sched_suite(void)
{
	Suite *s = suite_create("sched");
	struct {
		const char *name;
		const TTest *test;
		double timeout;
	} tests[] = {
	    {"order", spawn_order, 10},
	    {"yield", yield_round_robin, 10},
	    {"run_value", run_returns_main_value, 10},
	    {"run_nested", run_nested_is_ebusy, 10},
	    {"run_twice", run_twice, 10},
	    {"run_deadlock", run_deadlock, 10},
	    {"names", task_self_and_name, 10},
	    {"outside", calls_outside_a_task, 10},
	    {"backend", backend_name, 10},
	    {"sleep_bounds", sleep_never_early_nor_very_late, 20},
	    {"sleep_order", sleepers_wake_in_deadline_order, 10},
	    {"sleep_busy", sleep_among_yielders, 10},
	    {"clocks", clocks, 10},
	    {"strings", strings, 10},
	    {"idle", idle_sleeps_in_kernel, 10},
	    {"await", await, 10},
	    {"cancel_sleeping", cancel_sleeping, 10},
	    {"cancel_forever", cancel_sleeping_forever, 10},
	    {"cancel_yielding", cancel_yielding, 10},
	    {"cancel_unstarted", cancel_before_start, 10},
	    {"cancel_ended", cancel_ended, 10},
	    {"cancel_awaiter", cancel_awaiter, 10},
	    {"main_return", main_return_cancels_children, 10},
	    {"spawn_during_shutdown", spawn_during_shutdown_never_starts, 10},
	    {"busy_poll_adapts", busy_poll_adapts, 30},
	    {"hooks", hooks, 10},
	    {"many_yield", many_tasks_yield, 40},
	    {"many_sleep", many_tasks_sleep, 40},
	    {"stack_sizes", stack_sizes, 10},
	    {"stack_overflow", stack_overflow_caught, 30},
	    {"stack_overflow_main", stack_overflow_in_main, 30},
	    {"stack_size_honoured", stack_size_honoured, 30},
	    {"huge_frame", huge_frame_caught, 30},
	    {"unprobed_frame", unprobed_frame_caught, 30},
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		TCase *tc = tcase_create(tests[i].name);
		tcase_add_checked_fixture(tc, setup, NULL);
		tcase_set_timeout(tc, tests[i].timeout);
		tcase_add_test(tc, tests[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	mkt_skip_without_backend();
	return mkt_run_suite(sched_suite(), false);
}
