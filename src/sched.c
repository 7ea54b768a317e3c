/* Tasks: spawn, await, cancel, yield, and the parking that every suspending call goes through.
 *
 * One scheduler per thread (mk__sched_current). A task is parked by switching to the
 * scheduler's context; whoever wakes it (a timer, a device, an ending task, a cancel) puts it at
 * the tail of the run queue with a wake code. The run loop itself lives in run.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Thread_local struct mk__sched *mk__sched_current;

struct mk__sched *mk__sched_task(void)
{
	struct mk__sched *s = mk__sched_current;

	return (s != NULL && s->current != NULL) ? s : NULL;
}

/* ---- queues --------------------------------------------------------------------------- */

void mk__runq_push(struct mk__sched *s, struct mk_task *t)
{
	t->run_next = NULL;
	if (s->run_tail != NULL)
		s->run_tail->run_next = t;
	else
		s->run_head = t;
	s->run_tail = t;
	s->run_len++;
}

struct mk_task *mk__runq_pop(struct mk__sched *s)
{
	struct mk_task *t = s->run_head;

	if (t == NULL)
		return NULL;
	s->run_head = t->run_next;
	if (s->run_head == NULL)
		s->run_tail = NULL;
	s->run_len--;
	return t;
}

void mk__waitq_push(struct mk__waitq *q, struct mk_task *t)
{
	t->wq_next = NULL;
	t->wq_prev = q->tail;
	if (q->tail != NULL)
		q->tail->wq_next = t;
	else
		q->head = t;
	q->tail = t;
	t->waitq = q;
}

void mk__waitq_remove(struct mk__waitq *q, struct mk_task *t)
{
	if (t->wq_prev != NULL)
		t->wq_prev->wq_next = t->wq_next;
	else
		q->head = t->wq_next;
	if (t->wq_next != NULL)
		t->wq_next->wq_prev = t->wq_prev;
	else
		q->tail = t->wq_prev;
	t->wq_prev = t->wq_next = NULL;
	t->waitq = NULL;
}

struct mk_task *mk__waitq_pop(struct mk__waitq *q)
{
	struct mk_task *t = q->head;

	if (t != NULL)
		mk__waitq_remove(q, t);
	return t;
}

/* ---- parking -------------------------------------------------------------------------- */

static void task_end(struct mk__sched *s, struct mk_task *t);

struct mk_task *mk__round_next(struct mk__sched *s)
{
	struct mk_task *t;

	while (s->round_left > 0 && (t = mk__runq_pop(s)) != NULL) {
		s->round_left--;
		if (!t->started && t->cancelled) {
			task_end(s, t); /* cancelled before it started: it never starts */
			continue;
		}
		return t;
	}
	return NULL;
}

/* At the end of a round with tasks still runnable, the task that ends it does what the
 * scheduler would do between rounds: poll for events without blocking (tasks are runnable, so
 * the scheduler would not block either) and fire due timers. Then the next round starts
 * without two switches through the scheduler. Not when hooks must run (they run outside any
 * task), nor when the program is ending. */
static struct mk_task *next_round(struct mk__sched *s)
{
	if (s->run_len == 0 || s->hooks != NULL || s->stopping || s->main_task->state == MK__DONE)
		return NULL;
	if (s->loop.ops->wait(&s->loop, 0) < 0)
		return NULL; /* the scheduler meets the error again and reports it */
	if (s->heap_len > 0)
		mk__timer_fire(s, mk_clock_monotonic());
	s->round_left = s->run_len;
	return mk__round_next(s);
}

/* The running task (on fiber (from)) stops running. The next task of the round gets the CPU
 * directly, one switch instead of two through the scheduler; at the end of the round the
 * scheduler takes over to poll for events. */
static void switch_out(struct mk__sched *s, struct mk__fiber *from)
{
	struct mk_task *next = mk__round_next(s);

	if (next == NULL)
		next = next_round(s);
	if (next == NULL) {
		mk__fiber_suspend(s, from);
		return;
	}
	next->started = true;
	next->state = MK__RUNNING;
	s->current = next;
	if (next->fiber != from) /* a task that yields alone goes on at once */
		mk__fiber_switch(from, next->fiber);
}

int mk__park(struct mk__sched *s)
{
	struct mk_task *t = s->current;

	t->state = MK__PARKED;
	t->wake_code = 0;
	switch_out(s, t->fiber);
	if (t->cancelled && !t->uncancellable_park)
		return -ECANCELED;
	return t->wake_code;
}

void mk__wake(struct mk__sched *s, struct mk_task *t, int code)
{
	if (t->state != MK__PARKED)
		return;
	if (t->waitq != NULL)
		mk__waitq_remove(t->waitq, t);
	if (t->heap_index != 0)
		mk__timer_remove(s, t);
	t->wake_code = code;
	t->state = MK__RUNNABLE;
	mk__runq_push(s, t);
}

/* ---- tasks ---------------------------------------------------------------------------- */

static void all_insert(struct mk__sched *s, struct mk_task *t)
{
	t->all_prev = NULL;
	t->all_next = s->all;
	if (s->all != NULL)
		s->all->all_prev = t;
	s->all = t;
}

static void all_remove(struct mk__sched *s, struct mk_task *t)
{
	if (t->all_prev != NULL)
		t->all_prev->all_next = t->all_next;
	else
		s->all = t->all_next;
	if (t->all_next != NULL)
		t->all_next->all_prev = t->all_prev;
}

void mk__task_free(struct mk__sched *s, struct mk_task *t)
{
	all_remove(s, t);
	free(t);
}

/* The end of a task, on its own fiber or (for a task cancelled before it started) in the
 * scheduler. */
static void task_end(struct mk__sched *s, struct mk_task *t)
{
	t->state = MK__DONE;
	s->live_tasks--;
	if (t->awaiter != NULL)
		mk__wake(s, t->awaiter, 0);
	mk__fiber_put(s, t->fiber);
	t->fiber = NULL;
}

void mk__task_body(struct mk__sched *s, struct mk__fiber *f, struct mk_task *t)
{
	t->result = t->fn(t->arg);
	task_end(s, t); /* (f) is back in the pool: a spawn may hand it a new task */
	switch_out(s, f);
}

void mk__task_run(struct mk__sched *s, struct mk_task *t)
{
	t->started = true;
	t->state = MK__RUNNING;
	s->current = t;
	mk__fiber_resume(s, t->fiber);
	s->current = NULL;
}

int mk__task_new(struct mk__sched *s, struct mk_task **out, const char *name, mk_task_fn fn,
                 void *arg)
{
	struct mk_task *t = calloc(1, sizeof(*t));
	int err;

	if (t == NULL)
		return -ENOMEM;
	err = mk__fiber_get(s, &t->fiber);
	if (err != 0) {
		free(t);
		return err;
	}
	mk__fiber_set_task(t->fiber, t);
	if (name != NULL) {
		strncpy(t->name, name, sizeof(t->name) - 1);
	}
	t->fn = fn;
	t->arg = arg;
	t->state = MK__NEW;
	t->cancelled = s->stopping; /* spawned during shutdown: never starts */
	all_insert(s, t);
	s->live_tasks++;
	mk__runq_push(s, t);
	*out = t;
	return 0;
}

void mk__task_cancel(struct mk__sched *s, struct mk_task *t)
{
	if (t->state == MK__DONE || t->cancelled)
		return;
	t->cancelled = true;
	if (t->state == MK__PARKED && !t->uncancellable_park)
		mk__wake(s, t, -ECANCELED);
}

int mk_task_spawn(mk_task **out, const char *name, mk_task_fn fn, void *arg)
{
	struct mk__sched *s = mk__sched_current;

	if (s == NULL)
		return -EPERM;
	if (out == NULL || fn == NULL)
		return -EINVAL;
	return mk__task_new(s, out, name, fn, arg);
}

int mk_task_await(mk_task *t, intptr_t *result)
{
	struct mk__sched *s = mk__sched_task();
	struct mk_task *self;
	int rc;

	if (s == NULL)
		return -EPERM;
	self = s->current;
	if (t == NULL || t == self || t->awaited)
		return -EINVAL;
	t->awaited = true;
	if (t->state != MK__DONE) {
		t->awaiter = self;
		self->uncancellable_park = true;
		mk__park(s);
		self->uncancellable_park = false;
	}
	if (result != NULL)
		*result = t->result;
	rc = t->cancelled ? -ECANCELED : 0;
	mk__task_free(s, t);
	return rc;
}

int mk_task_cancel(mk_task *t)
{
	struct mk__sched *s = mk__sched_current;

	if (s == NULL)
		return -EPERM;
	if (t == NULL)
		return -EINVAL;
	mk__task_cancel(s, t);
	return 0;
}

int mk_yield(void)
{
	struct mk__sched *s = mk__sched_task();
	struct mk_task *t;

	if (s == NULL)
		return -EPERM;
	t = s->current;
	if (t->cancelled)
		return -ECANCELED;
	t->state = MK__RUNNABLE;
	mk__runq_push(s, t);
	switch_out(s, t->fiber);
	return t->cancelled ? -ECANCELED : 0;
}

mk_task *mk_task_self(void)
{
	struct mk__sched *s = mk__sched_current;

	return s != NULL ? s->current : NULL;
}

const char *mk_task_name(const mk_task *t)
{
	return t != NULL ? t->name : "";
}
