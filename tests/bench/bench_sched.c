/* bench-sched: the scheduler's own costs, printed as JSON lines (see benchlib.h).
 *
 *   bench-sched switch COUNT    ns per task switch: two tasks mk_yield to each other COUNT times;
 *                               beside it, swapcontext(3) between two contexts (impl "ucontext")
 *   bench-sched spawn COUNT     ns per mk_task_spawn + mk_task_await of a task that returns at
 *                               once (its stack comes from the pool); beside it,
 *                               pthread_create + pthread_join (impl "pthread")
 *   bench-sched sleepers COUNT  COUNT tasks that all sleep: time to start them all, resident
 *                               memory they add (VmRSS), and the time to wake and await them all
 *
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time: on a shared machine
 * the wall clock also counts the time other processes had the CPU, which says nothing about
 * mkhost. Only the wake-up of the sleepers is wall time, as it includes waiting for the timer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "benchlib.h"
#include "mkhost.h"

#define DEADLINE_S 120
/* How long the sleepers sleep, from the first spawn: longer than starting them all takes. */
#define SLEEP_NS_PER_TASK 20000ull
#define SLEEP_NS_MIN      50000000ull

static unsigned long count;

static uint64_t cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Resident memory of this process, in bytes, from /proc/self/status. */
static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kib = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = strtoull(line + 6, NULL, 10);
	fclose(f);
	return kib * 1024;
}

/* ---- switch ------------------------------------------------------------------------------- */

static intptr_t yielder(void *arg)
{
	uint64_t *ns = arg;
	uint64_t t0 = cpu_now();

	for (unsigned long i = 0; i < count; i++)
		mk_yield();
	if (ns != NULL)
		*ns = cpu_now() - t0;
	return 0;
}

static int switch_main(int argc, char **argv, void *arg)
{
	mk_task *a, *b;
	uint64_t ns = 0;

	(void)argc, (void)argv, (void)arg;
	if (mk_task_spawn(&a, "a", yielder, &ns) != 0 || mk_task_spawn(&b, "b", yielder, NULL) != 0)
		bench_die("spawn failed");
	mk_task_await(a, NULL);
	mk_task_await(b, NULL);
	/* Each of a's yields lets b run once: two switches from task to task per iteration. */
	bench_result("sched", "switch", "mkhost", "ns", (double)ns / (2.0 * count));
	return 0;
}

static ucontext_t uc_main, uc_other;

static void uc_body(void)
{
	for (;;)
		swapcontext(&uc_other, &uc_main);
}

static void switch_ucontext(void)
{
	static char stack[64 * 1024];

	getcontext(&uc_other);
	uc_other.uc_stack.ss_sp = stack;
	uc_other.uc_stack.ss_size = sizeof(stack);
	uc_other.uc_link = NULL;
	makecontext(&uc_other, uc_body, 0);
	uint64_t t0 = cpu_now();
	for (unsigned long i = 0; i < count; i++)
		swapcontext(&uc_main, &uc_other);
	uint64_t t1 = cpu_now();
	bench_result("sched", "switch", "ucontext", "ns", (double)(t1 - t0) / (2.0 * count));
}

/* ---- spawn + await -------------------------------------------------------------------------- */

static intptr_t nothing(void *arg)
{
	return (intptr_t)arg;
}

static int spawn_main(int argc, char **argv, void *arg)
{
	mk_task *t;

	(void)argc, (void)argv, (void)arg;
	for (int i = 0; i < 1000; i++) { /* fill the stack pool */
		mk_task_spawn(&t, NULL, nothing, NULL);
		mk_task_await(t, NULL);
	}
	uint64_t t0 = cpu_now();
	for (unsigned long i = 0; i < count; i++) {
		if (mk_task_spawn(&t, NULL, nothing, NULL) != 0)
			bench_die("spawn failed");
		mk_task_await(t, NULL);
	}
	uint64_t t1 = cpu_now();
	bench_result("sched", "spawn_await", "mkhost", "ns", (double)(t1 - t0) / count);
	return 0;
}

static void *thread_nothing(void *arg)
{
	return arg;
}

static void spawn_pthread(void)
{
	unsigned long n = count / 10 > 0 ? count / 10 : 1; /* threads are slower: fewer of them */
	pthread_t t;

	/* The process's CPU time: the threads' own time counts too. */
	uint64_t t0 = bench_cpu_ns();
	for (unsigned long i = 0; i < n; i++) {
		if (pthread_create(&t, NULL, thread_nothing, NULL) != 0)
			bench_die("pthread_create failed");
		pthread_join(t, NULL);
	}
	uint64_t t1 = bench_cpu_ns();
	bench_result("sched", "spawn_await", "pthread", "ns", (double)(t1 - t0) / n);
}

/* ---- sleepers -------------------------------------------------------------------------------- */

static uint64_t wake_at;

static intptr_t sleeper(void *arg)
{
	uint64_t now = mk_clock_monotonic();

	(void)arg;
	return mk_sleep(wake_at > now ? wake_at - now : 0);
}

static int sleepers_main(int argc, char **argv, void *arg)
{
	mk_task **tasks = malloc(count * sizeof(*tasks));
	char variant[32];

	(void)argc, (void)argv, (void)arg;
	if (tasks == NULL)
		bench_die("out of memory");
	uint64_t rss0 = rss_bytes();
	uint64_t c0 = cpu_now(), t0 = mk_clock_monotonic();
	wake_at = t0 + (count * SLEEP_NS_PER_TASK > SLEEP_NS_MIN ? count * SLEEP_NS_PER_TASK
	                                                         : SLEEP_NS_MIN);
	for (unsigned long i = 0; i < count; i++) {
		int err = mk_task_spawn(&tasks[i], NULL, sleeper, NULL);
		if (err != 0)
			bench_die("spawn of task %lu failed: %s", i, mk_strerror(err));
	}
	mk_yield(); /* every task runs once, up to its sleep, before this returns */
	uint64_t c1 = cpu_now(), t1 = mk_clock_monotonic();
	uint64_t rss1 = rss_bytes();
	if (t1 > wake_at)
		fprintf(stderr, "bench-sched: starting the tasks took longer than their sleep\n");
	for (unsigned long i = 0; i < count; i++)
		mk_task_await(tasks[i], NULL);
	uint64_t t2 = mk_clock_monotonic();

	snprintf(variant, sizeof(variant), "sleepers_%lu", count);
	bench_result("sched", variant, "mkhost", "start_ms", (double)(c1 - c0) / 1e6);
	bench_result("sched", variant, "mkhost", "wake_await_ms",
	             (double)(t2 - (t1 > wake_at ? t1 : wake_at)) / 1e6);
	bench_result("sched", variant, "mkhost", "rss_mib", (double)rss1 / (1 << 20));
	bench_result("sched", variant, "mkhost", "bytes_per_task",
	             (double)(rss1 > rss0 ? rss1 - rss0 : 0) / count);
	free(tasks);
	return 0;
}

int main(int argc, char **argv)
{
	char arg0[] = "bench-sched";
	char *mk_argv[] = {arg0, NULL};

	bench_prog = "bench-sched";
	bench_deadline(DEADLINE_S);
	if (argc != 3)
		bench_die("usage: bench-sched switch|spawn|sleepers COUNT");
	count = bench_ulong(argv[2], "count");
	if (count == 0)
		bench_die("COUNT must be at least 1");
	int rc;
	if (strcmp(argv[1], "switch") == 0) {
		rc = mk_run(1, mk_argv, switch_main, NULL);
		switch_ucontext();
	} else if (strcmp(argv[1], "spawn") == 0) {
		rc = mk_run(1, mk_argv, spawn_main, NULL);
		spawn_pthread();
	} else if (strcmp(argv[1], "sleepers") == 0) {
		rc = mk_run(1, mk_argv, sleepers_main, NULL);
	} else {
		bench_die("usage: bench-sched switch|spawn|sleepers COUNT");
	}
	if (rc != 0)
		bench_die("mk_run: %s", mk_strerror(rc));
	return 0;
}
