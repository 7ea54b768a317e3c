/* tasks: spawn tasks, let them sleep, collect what they return, and cancel one.
 *
 * Build (meson builds it as build/examples/tasks), or by hand after `ninja -C build`:
 *   cc -O2 -Iinclude examples/tasks.c build/src/libmkhost.a -luring -o tasks
 * Run: ./tasks      (no devices needed)
 *
 * Tasks are cooperative: each runs until it suspends (here in mk_sleep), and everything happens
 * on one thread, so the tasks need no locks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include "mkhost.h"

#define MS 1000000ull /* nanoseconds */

struct job {
	const char *name;
	uint64_t sleep_ms;
	intptr_t value; /* what the task returns once it has slept */
	mk_task *task;
};

static double since_ms(uint64_t start)
{
	return (double)(mk_clock_monotonic() - start) / (double)MS;
}

static intptr_t sleeper(void *arg)
{
	struct job *job = arg;

	/* A cancelled task sees -ECANCELED from the call it is suspended in; C has no unwinding,
	 * so it is up to the task to stop and say what it managed to do. */
	if (mk_sleep(job->sleep_ms * MS) == -ECANCELED)
		return -1;
	return job->value;
}

static int run(int argc, char **argv, void *arg)
{
	struct job jobs[] = {
	    {"short", 50, 1, NULL},
	    {"medium", 100, 2, NULL},
	    {"long", 150, 3, NULL},
	    {"forever", 60 * 1000, 4, NULL}, /* would take a minute: cancelled below */
	};
	size_t njobs = sizeof(jobs) / sizeof(jobs[0]);
	uint64_t start = mk_clock_monotonic();

	(void)argc;
	(void)argv;
	(void)arg;
	for (size_t i = 0; i < njobs; i++) {
		int err = mk_task_spawn(&jobs[i].task, jobs[i].name, sleeper, &jobs[i]);
		if (err < 0) {
			/* mk_run cancels the tasks spawned so far when we return */
			fprintf(stderr, "tasks: spawn %s: %s\n", jobs[i].name, mk_strerror(err));
			return 1;
		}
	}
	printf("spawned %zu tasks on the %s backend\n", njobs, mk_backend_name());

	/* The tasks have not started yet: they run once this one suspends, here in mk_sleep. */
	mk_sleep(20 * MS);
	mk_task_cancel(jobs[3].task);
	printf("%6.1f ms: cancelled '%s'\n", since_ms(start), jobs[3].name);

	/* Awaiting in spawn order; the sleeps overlap, so the whole run takes about as long as
	 * the longest one (150 ms), not the sum. */
	for (size_t i = 0; i < njobs; i++) {
		intptr_t result;
		int err = mk_task_await(jobs[i].task, &result);
		printf("%6.1f ms: '%s' %s, returned %" PRIdPTR "\n", since_ms(start), jobs[i].name,
		       err == -ECANCELED ? "was cancelled" : "finished", result);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc = mk_run(argc, argv, run, NULL);
	if (rc < 0) {
		fprintf(stderr, "tasks: %s\n", mk_strerror(rc));
		return 1;
	}
	return rc;
}
