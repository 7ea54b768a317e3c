/* Time: the clocks, mk_sleep, and the heap of sleeping tasks ordered by deadline. The event loop
 * sleeps in the kernel until the earliest deadline at most; with a virtual clock (run.c) it
 * moves the clock to that deadline instead. */
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

/* Wall time at the start of a virtual clock: 2000-01-01T00:00:00Z. */
#define VIRTUAL_WALL_EPOCH (946684800ULL * 1000000000ULL)

uint64_t mk_clock_monotonic(void)
{
	struct mk__sched *s = mk__sched_current;

	if (s != NULL && s->virtual_clock)
		return s->vnow;
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t mk_clock_wall(void)
{
	struct mk__sched *s = mk__sched_current;

	if (s != NULL && s->virtual_clock)
		return VIRTUAL_WALL_EPOCH + s->vnow;
	return clock_ns(CLOCK_REALTIME);
}

/* Whether (a) fires before (b): by deadline, then in the order the timers were set, so that the
 * schedule never depends on the heap's layout. */
static bool before(const struct mk_task *a, const struct mk_task *b)
{
	return a->deadline < b->deadline ||
	       (a->deadline == b->deadline && a->timer_seq < b->timer_seq);
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
		if (!before(t, s->heap[parent]))
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
		if (child + 1 < s->heap_len && before(s->heap[child + 1], s->heap[child]))
			child++;
		if (!before(s->heap[child], t))
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
	t->timer_seq = s->timer_seq++;
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
