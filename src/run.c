/* mk_run: set up a scheduler, run the first task, drive the loop, tear everything down.
 *
 * One round of the loop: run the tasks that are runnable now (tasks made runnable during the
 * round wait for the next one, so a yielding task cannot starve the event poll), poll for events
 * without blocking if tasks are runnable, or else sleep in the kernel until an event or the
 * earliest deadline; then fire due timers and run the hooks.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_STACK (256 * 1024)

struct main_call {
	mk_main_fn fn;
	int argc;
	char **argv;
	void *arg;
};

static intptr_t main_task(void *p)
{
	struct main_call *m = p;

	return m->fn(m->argc, m->argv, m->arg);
}

static void run_round(struct mk__sched *s)
{
	struct mk_task *t;

	s->round_left = s->run_len;
	while ((t = mk__round_next(s)) != NULL)
		mk__task_run(s, t);
	if (s->pool_len > mk__fiber_pool_max())
		mk__fiber_pool_trim(s, mk__fiber_pool_max());
}

static void cancel_all(struct mk__sched *s)
{
	s->stopping = true;
	for (struct mk_task *t = s->all; t != NULL; t = t->all_next)
		mk__task_cancel(s, t);
}

/* Busy-polling, when configured (busy_poll_us): before sleeping in the kernel, poll for events
 * without blocking for up to busy_poll_us, giving the CPU away between polls (sched_yield), so
 * that a peer on the same core (ping, say) can run and answer; a plain spin would take the CPU
 * it needs. Adaptive: only while recent sleeps were about that short, so an idle program does
 * not spin. Returns the events dispatched. */
static int busy_poll(struct mk__sched *s, int64_t timeout, uint64_t start)
{
	uint64_t spin = (uint64_t)s->busy_poll_us * 1000u, now = start;

	if (s->idle_avg_ns > spin)
		return 0;
	if (timeout >= 0 && (uint64_t)timeout < spin)
		spin = (uint64_t)timeout;
	while (now - start < spin) {
		int n = s->loop.ops->wait(&s->loop, 0);
		if (n != 0)
			return n;
		sched_yield();
		now = mk_clock_monotonic();
	}
	return 0;
}

/* Wait for events; with busy-polling, the time from going idle to the first event (spin and
 * sleep together) feeds the average that decides whether to spin next time. */
static int wait_events(struct mk__sched *s, int64_t timeout)
{
	uint64_t start;
	int n;

	if (timeout == 0 || s->busy_poll_us == 0)
		return s->loop.ops->wait(&s->loop, timeout);
	start = mk_clock_monotonic();
	n = busy_poll(s, timeout, start);
	if (n == 0)
		n = s->loop.ops->wait(&s->loop, timeout);
	s->idle_avg_ns = (s->idle_avg_ns * 7 + (mk_clock_monotonic() - start)) / 8;
	return n;
}

/* Run until (stop) holds. Returns 0, -EDEADLK when every task waits on another and nothing can
 * wake them, or an error of the event loop. */
static int run_until(struct mk__sched *s, bool (*stop)(struct mk__sched *))
{
	while (!stop(s)) {
		run_round(s);
		if (stop(s))
			break;
		/* The clock is read only when a timer needs it: it is most of a round's cost. */
		int64_t timeout = s->run_len > 0    ? 0
		                  : s->heap_len > 0 ? mk__timer_timeout(s, mk_clock_monotonic())
		                                    : -1;
		if (s->virtual_clock && timeout > 0) {
			/* Every task waits and nothing from outside can come: nothing happens before
			 * the earliest deadline, so the clock goes there at once. */
			s->vnow = s->heap[0]->deadline;
			timeout = 0;
		}
		unsigned waits = s->loop.pending - (s->stop_io.armed ? 1 : 0);
		if (timeout < 0 && waits == 0) {
			cancel_all(s);
			if (s->run_len == 0)
				return -EDEADLK;
			continue;
		}
		int n = wait_events(s, timeout);
		if (n < 0)
			return n;
		if (s->heap_len > 0)
			mk__timer_fire(s, mk_clock_monotonic());
		mk__hooks_run(s);
	}
	return 0;
}

static struct mk_task *main_of(struct mk__sched *s)
{
	return s->main_task;
}

static bool main_ended(struct mk__sched *s)
{
	return main_of(s)->state == MK__DONE;
}

static bool all_ended(struct mk__sched *s)
{
	return s->live_tasks == 0;
}

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) / page * page;
}

static void sched_free(struct mk__sched *s)
{
	while (s->all != NULL) {
		if (s->all->fiber != NULL) /* a task left behind by a deadlock */
			mk__fiber_put(s, s->all->fiber);
		mk__task_free(s, s->all);
	}
	mk__hooks_free(s);
	if (s->loop.ops != NULL)
		s->loop.ops->fini(&s->loop);
	mk__stop_remove(s);
	/* Close the TAPs after the ring: the ring holds references to them. */
	mk__net_close_all(s);
	mk__block_close_all(s);
	mk__overflow_guard_remove(s);
	mk__fiber_sched_fini(s);
	mk__args_free(&s->args);
	free(s->heap);
	free(s);
}

/* A virtual clock runs only devices whose every event it makes itself: hub: links. The others
 * are refused before anything is opened. */
static int check_virtual_devices(const struct mk__args *a)
{
	for (size_t i = 0; i < a->n_nets; i++) {
		const struct mk__netarg *n = &a->nets[i];
		if (n->value != NULL && strncmp(n->value, "hub:", 4) == 0)
			continue;
		return mk__fail(-EINVAL,
		                "net device '%s' (--net:%s=%s): with --clock=virtual only hub: "
		                "links may be given, as a TAP, a descriptor, unix: and slirp "
		                "deliver frames in real time, which a simulated clock cannot "
		                "order; use --net:%s=hub:LAN, or run without --clock=virtual",
		                n->name, n->name, n->value != NULL ? n->value : "@FD", n->name);
	}
	if (a->n_blocks > 0)
		return mk__fail(-EINVAL,
		                "block device '%s': with --clock=virtual no block device may be "
		                "given, as a file's reads and writes complete in real time; run "
		                "without --clock=virtual",
		                a->blocks[0].name);
	return 0;
}

static int sched_setup(struct mk__sched *s, const struct mk_config *cfg)
{
	const struct mk__tuning *t = &s->args.tuning; /* the command line wins */
	int err;

	err = mk__tuning_check_config(cfg);
	if (err != 0)
		return err;
	s->stack_size = page_round(t->stack_size            ? t->stack_size
	                           : cfg && cfg->stack_size ? cfg->stack_size
	                                                    : DEFAULT_STACK);
	s->busy_poll_us = t->has_busy_poll ? t->busy_poll_us : cfg ? cfg->busy_poll_us : 0;
	s->tx_batch = t->has_tx_batch ? t->tx_batch : cfg ? cfg->tx_batch : 0;
	s->virtual_clock = (t->has_clock ? t->clock : cfg ? cfg->clock : MK_CLOCK_REAL) ==
	                   MK_CLOCK_VIRTUAL;
	s->seed = t->has_seed ? t->seed : cfg ? cfg->seed : 0;
	s->seeded = s->virtual_clock || t->has_seed || s->seed != 0;
	if (s->virtual_clock) {
		err = check_virtual_devices(&s->args);
		if (err != 0)
			return err;
		s->busy_poll_us = 0; /* nothing to poll for: the clock jumps */
	}
	if (t->has_backend)
		err = mk__loop_init(&s->loop, (int)t->backend, s->args.sandbox,
		                    MK__BACKEND_FROM_ARGS);
	else
		err = mk__loop_init(&s->loop, cfg ? (int)cfg->backend : MK_BACKEND_AUTO,
		                    s->args.sandbox, MK__BACKEND_FROM_CONFIG);
	if (err != 0)
		return err;
	err = mk__fiber_sched_init(s);
	if (err == 0)
		err = mk__stop_install(s);
	if (err == 0)
		err = mk__overflow_guard_install(s);
	return err;
}

/* --sandbox: open the devices as a tender does, then close the door. Without it, the ring
 * stays disabled and unusable, so seal it even if there is nothing to open. */
static int sandbox(struct mk__sched *s)
{
	int err = mk__net_open_all(s);

	if (err == 0)
		err = mk__block_open_all(s);
	return err != 0 ? err : mk__sandbox_enter(s);
}

int mk_run_config(const struct mk_config *cfg, int argc, char **argv, mk_main_fn main, void *arg)
{
	struct main_call call = {main, argc, argv, arg};
	struct mk__sched *s;
	int err;

	if (mk__sched_current != NULL)
		return -EBUSY;
	if (main == NULL || argc < 0 || (argc > 0 && argv == NULL))
		return -EINVAL;
	mk__clear_error();
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->stop_io.fd = -1;
	err = mk__args_parse(&s->args, &call.argc, argv);
	if (err == 0)
		err = sched_setup(s, cfg);
	if (err == 0)
		mk__sched_current = s;
	if (err == 0 && s->args.sandbox)
		err = sandbox(s);
	if (err == 0)
		err = mk__hub_schedule_start(s);
	if (err == 0)
		err = mk__task_new(s, &s->main_task, "main", main_task, &call);
	if (err == 0) {
		err = run_until(s, main_ended);
		cancel_all(s);
		int end = run_until(s, all_ended);
		if (err == 0)
			err = end;
		if (err == 0)
			err = s->stopped_by ? -EINTR : (int)s->main_task->result;
	} else if (*mk_last_error() != '\0') {
		fprintf(stderr, "mkhost: %s\n", mk_last_error());
	}
	mk__sched_current = NULL;
	sched_free(s);
	return err;
}

int mk_run(int argc, char **argv, mk_main_fn main, void *arg)
{
	return mk_run_config(NULL, argc, argv, main, arg);
}

const char *mk_backend_name(void)
{
	struct mk__sched *s = mk__sched_current;

	return s != NULL ? s->loop.ops->name : NULL;
}
