/* Time: the clocks, mk_sleep, and the heap of sleeping tasks ordered by deadline. The event loop
 * sleeps in the kernel until the earliest deadline at most. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mk_clock_monotonic(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t mk_clock_wall(void)
{
	return clock_ns(CLOCK_REALTIME);
}

/* heap_index is the position + 1, so that 0 means "not in the heap". */
static void heap_set(struct mk__sched *s, size_t i, struct mk_task *t)
{
	s->heap[i] = t;
	t->heap_index = i + 1;
}

static void sift_up(struct mk__sched *s, size_t i)
{
	struct mk_task *t = s->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (s->heap[parent]->deadline <= t->deadline)
			break;
		heap_set(s, i, s->heap[parent]);
		i = parent;
	}
	heap_set(s, i, t);
}

static void sift_down(struct mk__sched *s, size_t i)
{
	struct mk_task *t = s->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= s->heap_len)
			break;
		if (child + 1 < s->heap_len &&
		    s->heap[child + 1]->deadline < s->heap[child]->deadline)
			child++;
		if (t->deadline <= s->heap[child]->deadline)
			break;
		heap_set(s, i, s->heap[child]);
		i = child;
	}
	heap_set(s, i, t);
}

static int timer_add(struct mk__sched *s, struct mk_task *t)
{
	if (s->heap_len == s->heap_cap) {
		size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
		struct mk_task **heap = realloc(s->heap, cap * sizeof(*heap));
		if (heap == NULL)
			return -ENOMEM;
		s->heap = heap;
		s->heap_cap = cap;
	}
	s->heap[s->heap_len++] = t;
	sift_up(s, s->heap_len - 1);
	return 0;
}

void mk__timer_remove(struct mk__sched *s, struct mk_task *t)
{
	size_t i = t->heap_index - 1;
	struct mk_task *last = s->heap[--s->heap_len];

	t->heap_index = 0;
	if (i == s->heap_len)
		return;
	heap_set(s, i, last);
	sift_up(s, i);
	sift_down(s, last->heap_index - 1);
}

int64_t mk__timer_timeout(struct mk__sched *s, uint64_t now)
{
	if (s->heap_len == 0)
		return -1;
	uint64_t deadline = s->heap[0]->deadline;
	if (deadline <= now)
		return 0;
	return deadline - now > INT64_MAX ? INT64_MAX : (int64_t)(deadline - now);
}

void mk__timer_fire(struct mk__sched *s, uint64_t now)
{
	while (s->heap_len > 0 && s->heap[0]->deadline <= now)
		mk__wake(s, s->heap[0], 0); /* mk__wake takes it out of the heap */
}

int mk__timer_arm(struct mk__sched *s, struct mk_task *t, uint64_t deadline)
{
	t->deadline = deadline;
	return timer_add(s, t);
}

int mk_sleep(uint64_t ns)
{
	struct mk__sched *s = mk__sched_task();
	struct mk_task *t;
	int err;

	if (s == NULL)
		return -EPERM;
	if (ns == 0)
		return mk_yield();
	t = s->current;
	if (t->cancelled)
		return -ECANCELED;
	uint64_t now = mk_clock_monotonic();
	t->deadline = ns > UINT64_MAX - now ? UINT64_MAX : now + ns; /* never wraps into the past */
	err = timer_add(s, t);
	if (err != 0)
		return err;
	return mk__park(s);
}
