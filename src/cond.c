/* Conditions: a queue of parked tasks that another task, or a hook, wakes.
 *
 * A waiter is parked on the condition's wait queue and, with a deadline, in the timer heap too.
 * Whichever comes first wakes it, and mk__wake takes it out of both. A signal wakes with code 1,
 * the timer with 0, a cancel with -ECANCELED: that is how the waiter tells them apart.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

#define WOKEN_BY_SIGNAL 1

struct mk_cond {
	struct mk__sched *sched;
	struct mk__waitq waiters;
};

int mk_cond_new(mk_cond **out)
{
	struct mk__sched *s = mk__sched_current;
	mk_cond *c;

	if (s == NULL)
		return -EPERM;
	if (out == NULL)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->sched = s;
	*out = c;
	return 0;
}

int mk_cond_free(mk_cond *c)
{
	if (c == NULL)
		return -EINVAL;
	if (c->sched != mk__sched_current)
		return -EPERM;
	if (c->waiters.head != NULL)
		return -EBUSY;
	free(c);
	return 0;
}

int mk_cond_wait(mk_cond *c, uint64_t deadline)
{
	struct mk__sched *s = mk__sched_task();
	struct mk_task *t;
	int err;

	if (c == NULL)
		return -EINVAL;
	if (s == NULL || c->sched != s)
		return -EPERM;
	t = s->current;
	if (t->cancelled)
		return -ECANCELED;
	if (deadline != MK_FOREVER) {
		if (deadline <= mk_clock_monotonic())
			return -ETIMEDOUT;
		err = mk__timer_arm(s, t, deadline);
		if (err != 0)
			return err;
	}
	mk__waitq_push(&c->waiters, t);
	err = mk__park(s);
	if (err == WOKEN_BY_SIGNAL)
		return 0;
	return err < 0 ? err : -ETIMEDOUT;
}

static int wake(mk_cond *c, bool all)
{
	struct mk__sched *s = mk__sched_current;
	int n = 0;

	if (c == NULL)
		return -EINVAL;
	if (s == NULL || c->sched != s)
		return -EPERM;
	while (c->waiters.head != NULL && (all || n == 0)) {
		mk__wake(s, c->waiters.head, WOKEN_BY_SIGNAL); /* takes it off the queue */
		n++;
	}
	return n;
}

int mk_cond_signal(mk_cond *c)
{
	return wake(c, false);
}

int mk_cond_broadcast(mk_cond *c)
{
	return wake(c, true);
}
