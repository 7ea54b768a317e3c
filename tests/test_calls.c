/* Conditions (mk_cond_*), the read that never suspends (mk_net_try_read), and exactly which calls
 * a hook may make: the calls issue 11 adds or states. On hub: links, so no root is needed.
 *
 * Checks inside tasks record their first failure in (mkt_failed) (see test_sched.c), and every
 * test asserts it is empty once mk_run has returned. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

#define MS 1000000ULL

static void setup(void)
{
	mkt_failed[0] = '\0';
}

/* ---------------------------------------------------------------------------------------- */
/*  Conditions                                                                              */
/* ---------------------------------------------------------------------------------------- */

struct waiter {
	mk_cond *c;
	uint64_t deadline;
	int result;
	int order; /* when it woke, among the waiters */
	int *next_order;
};

static intptr_t wait_task(void *arg)
{
	struct waiter *w = arg;

	w->result = mk_cond_wait(w->c, w->deadline);
	w->order = (*w->next_order)++;
	return 0;
}

static int main_signal(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_cond *c;
	struct waiter w[3];
	mk_task *t[3];
	int next = 0;

	CHECK_INT(mk_cond_new(&c), ==, 0);
	/* Nobody waits: nothing is woken, and nothing is remembered. */
	CHECK_INT(mk_cond_signal(c), ==, 0);
	CHECK_INT(mk_cond_broadcast(c), ==, 0);
	CHECK_INT(mk_cond_wait(c, mk_clock_monotonic() + 5 * MS), ==, -ETIMEDOUT);

	for (int i = 0; i < 3; i++) {
		w[i] = (struct waiter){
		    .c = c, .deadline = MK_FOREVER, .result = 1, .next_order = &next};
		CHECK_INT(mk_task_spawn(&t[i], "waiter", wait_task, &w[i]), ==, 0);
	}
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(next, ==, 0); /* all parked */
	CHECK_INT(mk_cond_free(c), ==, -EBUSY);

	/* signal wakes the first waiter only, and it runs once the caller suspends. */
	CHECK_INT(mk_cond_signal(c), ==, 1);
	CHECK_INT(next, ==, 0);
	CHECK_INT(mk_yield(), ==, 0);
	CHECK_INT(next, ==, 1);
	CHECK_INT(w[0].result, ==, 0);
	CHECK_INT(w[0].order, ==, 0);
	CHECK_INT(w[1].result, ==, 1);

	/* broadcast wakes the rest, in the order they waited. */
	CHECK_INT(mk_cond_broadcast(c), ==, 2);
	for (int i = 0; i < 3; i++)
		CHECK_INT(mk_task_await(t[i], NULL), ==, 0);
	CHECK_INT(w[1].result, ==, 0);
	CHECK_INT(w[2].result, ==, 0);
	CHECK_INT(w[1].order, ==, 1);
	CHECK_INT(w[2].order, ==, 2);
	CHECK_INT(mk_cond_signal(c), ==, 0);
	CHECK_INT(mk_cond_free(c), ==, 0);

	CHECK_INT(mk_cond_new(NULL), ==, -EINVAL);
	CHECK_INT(mk_cond_free(NULL), ==, -EINVAL);
	CHECK_INT(mk_cond_wait(NULL, MK_FOREVER), ==, -EINVAL);
	CHECK_INT(mk_cond_signal(NULL), ==, -EINVAL);
	CHECK_INT(mk_cond_broadcast(NULL), ==, -EINVAL);
	return 0;
}

START_TEST(signal_and_broadcast)
{
	MKT_RUN_OK(main_signal, NULL, NULL);
}
END_TEST

static intptr_t flag_task(void *arg)
{
	*(int *)arg = 1;
	return 0;
}

static int main_deadline(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_cond *c;
	mk_task *t;
	int ran = 0, next = 0;

	CHECK_INT(mk_cond_new(&c), ==, 0);

	/* A deadline that has passed: -ETIMEDOUT at once, no other task runs. */
	CHECK_INT(mk_task_spawn(&t, "flag", flag_task, &ran), ==, 0);
	CHECK_INT(mk_cond_wait(c, mk_clock_monotonic()), ==, -ETIMEDOUT);
	CHECK_INT(mk_cond_wait(c, 0), ==, -ETIMEDOUT);
	CHECK_INT(ran, ==, 0);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);

	/* A deadline in the future: not before it. */
	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(mk_cond_wait(c, t0 + 20 * MS), ==, -ETIMEDOUT);
	CHECK_INT(mk_clock_monotonic() - t0, >=, 20 * MS);

	/* Signalled before its deadline: 0, and the deadline no longer concerns it: the same task
	 * waiting again with no deadline is not woken when the old one passes. */
	struct waiter w = {
	    .c = c, .deadline = mk_clock_monotonic() + 30 * MS, .result = 1, .next_order = &next};
	CHECK_INT(mk_task_spawn(&t, "timed", wait_task, &w), ==, 0);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(mk_cond_signal(c), ==, 1);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);
	CHECK_INT(w.result, ==, 0);
	CHECK(mk_clock_monotonic() < w.deadline);
	w.deadline = MK_FOREVER;
	w.result = 1;
	CHECK_INT(mk_task_spawn(&t, "forever", wait_task, &w), ==, 0);
	CHECK_INT(mk_sleep(50 * MS), ==, 0);
	CHECK_INT(w.result, ==, 1); /* still waiting */
	CHECK_INT(mk_cond_signal(c), ==, 1);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);
	CHECK_INT(w.result, ==, 0);
	CHECK_INT(mk_cond_free(c), ==, 0);
	return 0;
}

START_TEST(deadline)
{
	MKT_RUN_OK(main_deadline, NULL, NULL);
}
END_TEST

static int main_cancel(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_cond *c;
	mk_task *t;
	int next = 0;

	CHECK_INT(mk_cond_new(&c), ==, 0);
	/* Cancelled while waiting, with or without a deadline: -ECANCELED, off the queue. */
	for (int timed = 0; timed < 2; timed++) {
		struct waiter w = {.c = c, .result = 1, .next_order = &next};
		w.deadline = timed ? mk_clock_monotonic() + 1000 * MS : MK_FOREVER;
		CHECK_INT(mk_task_spawn(&t, "waiter", wait_task, &w), ==, 0);
		CHECK_INT(mk_sleep(5 * MS), ==, 0);
		CHECK_INT(mk_task_cancel(t), ==, 0);
		CHECK_INT(mk_task_await(t, NULL), ==, -ECANCELED);
		CHECK_INT(w.result, ==, -ECANCELED);
		CHECK_INT(mk_cond_signal(c), ==, 0); /* nobody left on it */
	}
	CHECK_INT(mk_cond_free(c), ==, 0);
	return 0;
}

static int main_cancel_self(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_cond *c;

	CHECK_INT(mk_cond_new(&c), ==, 0);
	CHECK_INT(mk_task_cancel(mk_task_self()), ==, 0);
	/* Cancelled before the call: at once, even with a deadline long passed. */
	CHECK_INT(mk_cond_wait(c, MK_FOREVER), ==, -ECANCELED);
	CHECK_INT(mk_cond_wait(c, 0), ==, -ECANCELED);
	CHECK_INT(mk_cond_free(c), ==, 0);
	return 0;
}

START_TEST(cancel)
{
	MKT_RUN_OK(main_cancel, NULL, NULL);
	MKT_RUN_OK(main_cancel_self, NULL, NULL);
}
END_TEST

/* A waiter still parked when main returns is cancelled like any task. */
static int main_left_waiting(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv;
	static struct waiter w;
	static int next;
	mk_task *t;

	CHECK_INT(mk_cond_new(&w.c), ==, 0);
	w.deadline = MK_FOREVER;
	w.result = 1;
	w.next_order = &next;
	*(struct waiter **)arg = &w;
	CHECK_INT(mk_task_spawn(&t, "left", wait_task, &w), ==, 0);
	CHECK_INT(mk_yield(), ==, 0);
	return 0;
}

START_TEST(outside_run)
{
	mk_cond *c = NULL;
	struct waiter *w = NULL;

	ck_assert_int_eq(mk_cond_new(&c), -EPERM);
	MKT_RUN_OK(main_left_waiting, &w, NULL);
	ck_assert_int_eq(w->result, -ECANCELED);
	ck_assert_int_eq(mk_cond_signal(w->c), -EPERM);
	ck_assert_int_eq(mk_cond_wait(w->c, MK_FOREVER), -EPERM);
	ck_assert_int_eq(mk_cond_free(w->c), -EPERM); /* not its thread's scheduler any more */
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  mk_net_try_read                                                                         */
/* ---------------------------------------------------------------------------------------- */

static size_t fill_frame(void *buf, size_t len, void *ctx)
{
	uint8_t *f = buf;

	memset(f, 0xff, 6);         /* broadcast */
	memset(f + 6, 0x02, 6);     /* a locally administered source */
	f[12] = 0x88, f[13] = 0xb5; /* local experimental ethertype */
	memset(f + 14, *(uint8_t *)ctx, len - 14);
	return len;
}

static void send_mark(mk_net *n, uint8_t mark)
{
	CHECK_INT(mk_net_write_into(n, 60, fill_frame, &mark), ==, 60);
}

struct reader {
	mk_net *net;
	uint8_t buf[2048];
	ssize_t got;
};

static intptr_t read_task(void *arg)
{
	struct reader *r = arg;

	r->got = mk_net_read_bigstring(r->net, r->buf, sizeof(r->buf), 0, sizeof(r->buf));
	return 0;
}

static int main_try_read(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	struct mk_net_config cfg;
	struct mk_net_stats st;
	mk_net *a, *b;
	uint8_t buf[2048];
	mk_task *t;
	int ran = 0;

	CHECK_INT(mk_net_connect("a", &a, NULL), ==, 0);
	CHECK_INT(mk_net_connect("b", &b, &cfg), ==, 0);
	size_t room = cfg.mtu + 14;

	/* Nothing waiting: -EAGAIN at once; no other task ran meanwhile. */
	CHECK_INT(mk_task_spawn(&t, "flag", flag_task, &ran), ==, 0);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 0, room), ==, -EAGAIN);
	CHECK_INT(ran, ==, 0);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);

	/* Frames waiting: one per call, in order, at (off), counted; then -EAGAIN. */
	send_mark(a, 0xa1);
	send_mark(a, 0xa2);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 100, room), ==, 60);
	CHECK_INT(buf[100 + 14], ==, 0xa1);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 0, sizeof(buf)), ==, 60);
	CHECK_INT(buf[14], ==, 0xa2);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 0, room), ==, -EAGAIN);
	CHECK_INT(mk_net_stats(b, &st), ==, 0);
	CHECK_INT(st.rx_frames, ==, 2);
	CHECK_INT(st.rx_bytes, ==, 120);

	/* Bad buffers: -EINVAL, nothing consumed. */
	send_mark(a, 0xa3);
	CHECK_INT(mk_net_try_read(b, NULL, sizeof(buf), 0, room), ==, -EINVAL);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 0, room - 1), ==, -EINVAL);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), sizeof(buf) - room + 1, room), ==, -EINVAL);
	CHECK_INT(mk_net_try_read(NULL, buf, sizeof(buf), 0, room), ==, -EINVAL);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 0, room), ==, 60);
	CHECK_INT(buf[14], ==, 0xa3);

	/* A reader parked on the device: a frame taken by try_read is not delivered to it, and it
	 * still gets the next one. */
	struct reader r = {.net = b};
	CHECK_INT(mk_task_spawn(&t, "reader", read_task, &r), ==, 0);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	send_mark(a, 0xb1);
	CHECK_INT(mk_net_try_read(b, buf, sizeof(buf), 0, room), ==, 60);
	CHECK_INT(buf[14], ==, 0xb1);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(r.got, ==, 0);
	send_mark(a, 0xb2);
	CHECK_INT(mk_task_await(t, NULL), ==, 0);
	CHECK_INT(r.got, ==, 60);
	CHECK_INT(r.buf[14], ==, 0xb2);
	return 0;
}

START_TEST(try_read)
{
	MKT_RUN_OK(main_try_read, NULL, "--net:a=hub:x", "--net:b=hub:x", NULL);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  What a hook may call                                                                    */
/* ---------------------------------------------------------------------------------------- */

struct hook_case {
	mk_net *a, *b;
	mk_block *blk;
	mk_task *parked;  /* a task of main's, parked: the hook cancels it */
	mk_task *spawned; /* spawned by the hook */
	mk_hook *self, *added;
	int spawned_ran;
	int calls;
	/* results, by call */
	ssize_t w_big, w_str, w_into, try_read, read_big, read_bytes;
	int stats, spawn, cancel, yield, sleep, await, cond_new, cond_signal, cond_bcast, cond_wait,
	    cond_free, hook_add, hook_remove, connect, b_aread, b_awrite, b_read, b_write, b_flush,
	    bconnect;
	const char *name;
	mk_task *self_task;
};

static void noop_hook(void *arg)
{
	(void)arg;
}

static void everything_hook(void *arg)
{
	struct hook_case *h = arg;
	uint8_t frame[2048] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 2, 2, 2, 2, 2, 0x88, 0xb5};
	uint8_t sector[512];
	struct mk_net_stats st;
	mk_cond *c = NULL;
	mk_net *cnet = NULL;
	mk_block *b2 = NULL;
	uint8_t mark = 7;

	if (h->calls++ > 0)
		return;
	/* Allowed: they do not suspend. */
	h->w_big = mk_net_write_bigstring(h->a, frame, sizeof(frame), 0, 60);
	h->w_str = mk_net_write_string(h->a, frame, sizeof(frame), 0, 60);
	h->w_into = mk_net_write_into(h->a, 60, fill_frame, &mark);
	h->try_read = mk_net_try_read(h->b, frame, sizeof(frame), 0, sizeof(frame));
	h->stats = mk_net_stats(h->b, &st);
	h->name = mk_net_name(h->b);
	h->spawn = mk_task_spawn(&h->spawned, "from-hook", flag_task, &h->spawned_ran);
	h->cancel = mk_task_cancel(h->parked);
	h->cond_new = mk_cond_new(&c);
	h->cond_signal = mk_cond_signal(c);
	h->cond_bcast = mk_cond_broadcast(c);
	h->cond_wait = mk_cond_wait(c, MK_FOREVER);
	h->cond_free = mk_cond_free(c);
	h->added = mk_hook_add(noop_hook, NULL);
	h->hook_remove = mk_hook_remove(h->self);
	h->connect = mk_net_connect("c", &cnet, NULL);
	h->bconnect = mk_block_connect("missing", &b2);
	h->b_awrite = mk_block_atomic_write(h->blk, 512, frame, sizeof(frame), 0);
	h->b_aread = mk_block_atomic_read(h->blk, 512, sector, sizeof(sector), 0);
	h->self_task = mk_task_self();
	/* Refused: they would suspend. */
	h->yield = mk_yield();
	h->sleep = mk_sleep(MS);
	h->await = mk_task_await(h->spawned, NULL);
	h->read_big = mk_net_read_bigstring(h->b, frame, sizeof(frame), 0, sizeof(frame));
	h->read_bytes = mk_net_read_bytes(h->b, frame, sizeof(frame), 0, sizeof(frame));
	h->b_read = mk_block_read(h->blk, 0, sector, sizeof(sector), 0);
	h->b_write = mk_block_write(h->blk, 0, sector, sizeof(sector), 0);
	h->b_flush = mk_block_flush(h->blk);
	if (sector[0] != 0xff)
		h->b_aread = -1000; /* the sector read is not the one written */
}

static intptr_t park_task(void *arg)
{
	(void)arg;
	return mk_sleep(10000 * MS);
}

static int main_hook_calls(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	struct hook_case h = {.w_big = 1, .w_str = 1, .w_into = 1, .try_read = 1};
	struct mk_net_stats st;

	CHECK_INT(mk_net_connect("a", &h.a, NULL), ==, 0);
	CHECK_INT(mk_net_connect("b", &h.b, NULL), ==, 0);
	CHECK_INT(mk_block_connect("disk", &h.blk), ==, 0);
	CHECK_INT(mk_task_spawn(&h.parked, "parked", park_task, NULL), ==, 0);
	CHECK_INT(mk_yield(), ==, 0);
	h.self = mk_hook_add(everything_hook, &h);
	CHECK(h.self != NULL);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(mk_sleep(5 * MS), ==, 0);
	CHECK_INT(h.calls, ==, 1); /* it removed itself */

	CHECK_INT(h.w_big, ==, 60);
	CHECK_INT(h.w_str, ==, 60);
	CHECK_INT(h.w_into, ==, 60);
	CHECK_INT(h.try_read, ==, 60); /* the hub delivered a's first frame to b at once */
	CHECK_INT(h.stats, ==, 0);
	CHECK_STR(h.name, "b");
	CHECK_INT(h.spawn, ==, 0);
	CHECK_INT(h.cancel, ==, 0);
	CHECK_INT(h.cond_new, ==, 0);
	CHECK_INT(h.cond_signal, ==, 0);
	CHECK_INT(h.cond_bcast, ==, 0);
	CHECK_INT(h.cond_free, ==, 0);
	CHECK(h.added != NULL);
	CHECK_INT(h.hook_remove, ==, 0);
	CHECK_INT(h.connect, ==, 0);
	CHECK_INT(h.bconnect, ==, -ENOENT); /* connect runs there, and says what is wrong */
	CHECK_INT(h.b_awrite, ==, 0);
	CHECK_INT(h.b_aread, ==, 0);
	CHECK(h.self_task == NULL);

	CHECK_INT(h.cond_wait, ==, -EPERM);
	CHECK_INT(h.yield, ==, -EPERM);
	CHECK_INT(h.sleep, ==, -EPERM);
	CHECK_INT(h.await, ==, -EPERM);
	CHECK_INT(h.read_big, ==, -EPERM);
	CHECK_INT(h.read_bytes, ==, -EPERM);
	CHECK_INT(h.b_read, ==, -EPERM);
	CHECK_INT(h.b_write, ==, -EPERM);
	CHECK_INT(h.b_flush, ==, -EPERM);

	/* What the allowed calls did is done: the spawned task ran, the parked one was cancelled,
	 * and b received the three frames (one taken by the hook's try_read). */
	CHECK_INT(mk_task_await(h.spawned, NULL), ==, 0);
	CHECK_INT(h.spawned_ran, ==, 1);
	CHECK_INT(mk_task_await(h.parked, NULL), ==, -ECANCELED);
	CHECK_INT(mk_net_stats(h.b, &st), ==, 0);
	CHECK_INT(st.rx_frames, ==, 1);
	CHECK_INT(mk_hook_remove(h.added), ==, 0);
	return 0;
}

START_TEST(hook_calls)
{
	char disk[] = "/tmp/mkt-calls-XXXXXX";
	char arg[64];
	int fd = mkstemp(disk);
	uint8_t zero[4096] = {0};

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, zero, sizeof(zero)), sizeof(zero));
	close(fd);
	snprintf(arg, sizeof(arg), "--block:disk=%s", disk);
	int r = mkt_run(main_hook_calls, NULL, "--net:a=hub:x", "--net:b=hub:x", "--net:c=hub:y",
	                arg, NULL);
	unlink(disk);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(r, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("calls");
	TCase *tc = tcase_create("calls");

	mkt_skip_without_backend();
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, signal_and_broadcast);
	tcase_add_test(tc, deadline);
	tcase_add_test(tc, cancel);
	tcase_add_test(tc, outside_run);
	tcase_add_test(tc, try_read);
	tcase_add_test(tc, hook_calls);
	suite_add_tcase(s, tc);
	return mkt_run_suite(s, false);
}
