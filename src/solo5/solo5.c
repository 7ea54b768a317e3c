/* The Solo5 guest calls, on mkhost's devices and event loop.
 *
 * A Solo5 program is a single thread of control that polls: solo5_net_read() never waits, and
 * solo5_yield() is the one place where it waits, for a deadline or for a frame on any of its net
 * devices. It runs as mk_run's main task. Each acquired net device has:
 *   - a stash: frames read ahead, so that "ready" means the next solo5_net_read() succeeds;
 *   - a watcher task, parked in mk_net_read_bigstring() on the device, so that waiting for frames
 *     on several devices at once is just mkhost's own device wait, once per device. It reads
 *     into a buffer of its own, appends the frame to the stash and wakes the program if it sits
 *     in solo5_yield(); then it sleeps until the stash is empty again.
 * The stash holds two frames at most: the program reads one ahead (solo5_yield looks at every
 * device) only when the stash is empty, and the watcher may be parked in a read that began then
 * and brings a second. Frames stay in order: they enter the stash in the order they leave the
 * device, and solo5_net_read() empties the stash before it reads the device.
 *
 * The Solo5 API has no context argument, so the state is one static record: one Solo5 program per
 * process, as on every Solo5 target.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host.h"
#include "internal.h"
#include "mkhost.h"
#include "solo5.h"

#define MAX_DEVICES 64 /* a handle set has 64 bits */

struct device {
	enum mk__solo5_kind kind;
	bool acquired;
	/* net */
	mk_net *net;
	struct mk_net_config cfg;
	size_t frame_max;
	uint8_t *slot[2]; /* the stash, a queue of frames read ahead */
	size_t len[2];
	unsigned head, count;
	uint8_t *spare; /* the watcher's buffer */
	mk_task *watcher;
	bool watcher_idle; /* parked until the stash is emptied */
	bool failed;       /* the watcher met a device error and stopped */
	/* block */
	mk_block *block;
};

static struct {
	struct device dev[MAX_DEVICES];
	size_t n_dev;
	mk_task *app;     /* the task running solo5_app_main, or NULL */
	bool app_waiting; /* parked in solo5_yield */
	jmp_buf leave;    /* back to mk__solo5_run_app */
	int status;
	bool stopped;
} s5;

/* ---- the end ------------------------------------------------------------------------------ */

static bool in_app(void)
{
	return s5.app != NULL && mk_task_self() == s5.app;
}

/* Unwind the program back to mk__solo5_run_app, which returns to mk_run: devices are closed and
 * captures completed exactly as when solo5_app_main() returns. Outside the program's task (a
 * constructor, an atexit handler) there is nothing to unwind to, and exit(3) is all there is. */
static void __attribute__((noreturn)) leave(int status)
{
	if (!in_app())
		exit(status);
	s5.status = status;
	longjmp(s5.leave, 1);
}

/* Solo5's words on the way out: an "info" line unless --solo5:quiet, as Solo5's log() prints it. */
static void say(const char *msg, size_t len)
{
	if (mk__solo5_quiet)
		return;
	if (write(STDERR_FILENO, msg, len) < 0) {
		/* nowhere left to say it */
	}
}

void solo5_exit(int status)
{
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "Solo5: solo5_exit(%d) called\n", status);

	say(msg, (size_t)n);
	leave(status);
}

void solo5_abort(void)
{
	static const char msg[] = "Solo5: solo5_abort() called\n";

	say(msg, sizeof(msg) - 1);
	leave(SOLO5_EXIT_ABORT);
}

/* The stack protector of code built by mkhost-solo5-cc (-mstack-protector-guard=global), for a
 * unikernel without one of its own: the toolchain points its __stack_chk_guard and
 * __stack_chk_fail at these. main() gives the guard a random value before the unikernel runs;
 * until then it holds Solo5's recognisable terminator value. */
uintptr_t mk__solo5_stack_chk_guard = 0x00deadbeef0d0a00;

/* The stack is corrupt: nothing on it can be trusted, so there is no unwinding back to mk_run,
 * only Solo5's line and its exit status, as Solo5 does. */
#if defined(__has_attribute) && __has_attribute(no_stack_protector)
__attribute__((no_stack_protector))
#endif
void mk__solo5_stack_chk_fail(void)
{
	mk__solo5_tls_host(); /* the unikernel's thread pointer may be in place */
	static const char msg[] = "Solo5: ABORT: Stack corruption detected\n";

	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nowhere left to say it */
	}
	_exit(SOLO5_EXIT_ABORT);
}

/* mkhost cancelled the program (SIGINT or SIGTERM): it cannot be asked to return, so unwind it. */
static void __attribute__((noreturn)) leave_stopped(void)
{
	struct mk__sched *s = mk__sched_current;

	s5.stopped = true;
	leave(s != NULL ? s->stopped_by : 0);
}

int mk__solo5_run_app(const struct solo5_start_info *info, int *status)
{
	s5.app = mk_task_self();
	s5.stopped = false;
	if (setjmp(s5.leave) == 0)
		s5.status = mk__solo5_tls_call_app(info);
	mk__solo5_tls_host();
	s5.app = NULL;
	s5.app_waiting = false;
	*status = s5.status;
	return s5.stopped ? -EINTR : 0;
}

/* A unikernel built by mkhost-solo5-cc calls tls.c's instead; this one is for programs built
 * against glibc, whose thread pointer is glibc's (see solo5.h). */
solo5_result_t solo5_set_tls_base(uintptr_t base)
{
	(void)base;
	return SOLO5_R_EUNSPEC;
}

/* ---- console and clocks ------------------------------------------------------------------ */

void solo5_console_write(const char *buf, size_t size)
{
	while (buf != NULL && size > 0) {
		ssize_t r = write(STDOUT_FILENO, buf, size);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return; /* best effort, as documented */
		buf += r;
		size -= (size_t)r;
	}
}

solo5_time_t solo5_clock_monotonic(void)
{
	return mk_clock_monotonic();
}

solo5_time_t solo5_clock_wall(void)
{
	return mk_clock_wall();
}

/* ---- devices ----------------------------------------------------------------------------- */

static struct device *device(solo5_handle_t h, enum mk__solo5_kind kind)
{
	if (h >= s5.n_dev || s5.dev[h].kind != kind || !s5.dev[h].acquired)
		return NULL;
	return &s5.dev[h];
}

static void free_buffers(struct device *d)
{
	free(d->slot[0]);
	free(d->slot[1]);
	free(d->spare);
}

static struct device *find(enum mk__solo5_kind kind, const char *name)
{
	for (size_t i = 0; i < s5.n_dev; i++) {
		struct device *d = &s5.dev[i];
		if (d->kind != kind)
			continue;
		if (strcmp(kind == MK__SOLO5_NET ? mk_net_name(d->net) : mk_block_name(d->block),
		           name) == 0)
			return d;
	}
	return NULL;
}

int mk__solo5_attach(enum mk__solo5_kind kind, const char *name)
{
	struct device *d;
	int err;

	if (find(kind, name) != NULL)
		return 0;
	if (s5.n_dev == MAX_DEVICES)
		return -ENOSPC;
	d = &s5.dev[s5.n_dev];
	memset(d, 0, sizeof(*d));
	d->kind = kind;
	if (kind == MK__SOLO5_BLOCK) {
		err = mk_block_connect(name, &d->block);
	} else {
		err = mk_net_connect(name, &d->net, &d->cfg);
		if (err == 0) {
			d->frame_max = d->cfg.mtu + SOLO5_NET_HLEN;
			d->slot[0] = malloc(d->frame_max);
			d->slot[1] = malloc(d->frame_max);
			d->spare = malloc(d->frame_max);
			if (d->slot[0] == NULL || d->slot[1] == NULL || d->spare == NULL)
				err = -ENOMEM;
		}
	}
	if (err != 0) {
		free_buffers(d);
		return err;
	}
	s5.n_dev++;
	return 0;
}

void mk__solo5_detach_all(void)
{
	for (size_t i = 0; i < s5.n_dev; i++)
		free_buffers(&s5.dev[i]);
	memset(&s5.dev, 0, sizeof(s5.dev));
	s5.n_dev = 0;
}

/* ---- net --------------------------------------------------------------------------------- */

static intptr_t watch(void *arg)
{
	struct device *d = arg;
	struct mk__sched *s = mk__sched_current;

	for (;;) {
		if (d->count != 0) {
			d->watcher_idle = true;
			int r = mk__park(s);
			d->watcher_idle = false;
			if (r == -ECANCELED)
				return 0;
			continue;
		}
		ssize_t r = mk_net_read_bigstring(d->net, d->spare, d->frame_max, 0, d->frame_max);
		if (r == -ECANCELED)
			return 0;
		if (r < 0) {
			/* The device failed; solo5_net_read() reports it to the program. */
			d->failed = true;
			return 0;
		}
		/* The read began with the stash empty, and the program adds to it only when it is
		 * empty: there is room. Swap buffers rather than copy. */
		unsigned tail = (d->head + d->count) % 2;
		uint8_t *b = d->slot[tail];
		d->slot[tail] = d->spare;
		d->spare = b;
		d->len[tail] = (size_t)r;
		d->count++;
		if (s5.app_waiting)
			mk__wake(s, s5.app, 0);
	}
}

solo5_result_t solo5_net_acquire(const char *name, solo5_handle_t *handle,
                                 struct solo5_net_info *info)
{
	struct device *d;
	char task_name[32];

	if (name == NULL || handle == NULL || info == NULL)
		return SOLO5_R_EINVAL;
	d = find(MK__SOLO5_NET, name);
	if (d == NULL || d->acquired)
		return SOLO5_R_EINVAL;
	snprintf(task_name, sizeof(task_name), "solo5 net %s", name);
	if (mk_task_spawn(&d->watcher, task_name, watch, d) != 0)
		return SOLO5_R_EUNSPEC;
	d->acquired = true;
	*handle = (solo5_handle_t)(d - s5.dev);
	memcpy(info->mac_address, d->cfg.mac, SOLO5_NET_ALEN);
	info->mtu = d->cfg.mtu;
	return SOLO5_R_OK;
}

solo5_result_t solo5_net_write(solo5_handle_t handle, const uint8_t *buf, size_t size)
{
	struct device *d = device(handle, MK__SOLO5_NET);

	if (d == NULL || buf == NULL || size < SOLO5_NET_HLEN || size > d->frame_max)
		return SOLO5_R_EINVAL;
	/* 0 means the host refused the frame: a drop, which Solo5 keeps silent. */
	return mk_net_write_bigstring(d->net, buf, size, 0, size) >= 0 ? SOLO5_R_OK
	                                                               : SOLO5_R_EUNSPEC;
}

solo5_result_t solo5_net_read(solo5_handle_t handle, uint8_t *buf, size_t size, size_t *read_size)
{
	struct device *d = device(handle, MK__SOLO5_NET);
	ssize_t r;

	if (d == NULL || buf == NULL || read_size == NULL || size < d->frame_max)
		return SOLO5_R_EINVAL;
	if (d->count != 0) {
		memcpy(buf, d->slot[d->head], d->len[d->head]);
		*read_size = d->len[d->head];
		d->head = (d->head + 1) % 2;
		d->count--;
		if (d->count == 0 && d->watcher_idle)
			mk__wake(mk__sched_current, d->watcher, 0);
		return SOLO5_R_OK;
	}
	r = mk_net_try_read(d->net, buf, size, 0, size);
	if (r == -EAGAIN)
		return SOLO5_R_AGAIN;
	if (r < 0)
		return SOLO5_R_EUNSPEC;
	*read_size = (size_t)r;
	return SOLO5_R_OK;
}

/* Fill the empty stashes from their devices, without waiting; the set of full ones. */
static solo5_handle_set_t look_ahead(void)
{
	solo5_handle_set_t ready = 0;

	for (size_t i = 0; i < s5.n_dev; i++) {
		struct device *d = &s5.dev[i];
		if (d->kind != MK__SOLO5_NET || !d->acquired)
			continue;
		/* Not when solo5_net_read() found the device empty since the loop last looked: the
		 * program goes on to wait, and its watcher brings what comes. */
		if (d->count == 0 && !d->failed && !mk__net_known_empty(d->net)) {
			ssize_t r = mk_net_try_read(d->net, d->slot[d->head], d->frame_max, 0,
			                            d->frame_max);
			if (r > 0) {
				d->len[d->head] = (size_t)r;
				d->count = 1;
			}
		}
		if (d->count != 0)
			ready |= (solo5_handle_set_t)1 << i;
	}
	return ready;
}

/* Outside mk_run there are no devices and nothing else to run: sleep the thread. */
static void sleep_until(solo5_time_t deadline)
{
	struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void solo5_yield(solo5_time_t deadline, solo5_handle_set_t *ready_set)
{
	solo5_handle_set_t ready;
	uint64_t now;
	int r;

	if (!in_app()) {
		sleep_until(deadline);
		if (ready_set != NULL)
			*ready_set = 0;
		return;
	}
	ready = look_ahead();
	now = mk_clock_monotonic();
	if (ready == 0 && deadline > now) {
		s5.app_waiting = true;
		r = mk_sleep(deadline - now); /* a watcher with a frame cuts it short */
		s5.app_waiting = false;
	} else {
		/* Even with work at hand, let the event loop and the hooks run once: links driven
		 * by the loop must not starve behind a program that always finds a frame. */
		r = mk_yield();
	}
	if (r == -ECANCELED)
		leave_stopped();
	ready = look_ahead();
	if (ready_set != NULL)
		*ready_set = ready;
}

/* ---- block ------------------------------------------------------------------------------- */

solo5_result_t solo5_block_acquire(const char *name, solo5_handle_t *handle,
                                   struct solo5_block_info *info)
{
	struct device *d;

	if (name == NULL || handle == NULL || info == NULL)
		return SOLO5_R_EINVAL;
	d = find(MK__SOLO5_BLOCK, name);
	if (d == NULL || d->acquired)
		return SOLO5_R_EINVAL;
	d->acquired = true;
	*handle = (solo5_handle_t)(d - s5.dev);
	info->capacity = mk_block_length(d->block);
	info->block_size = mk_block_sector_size(d->block);
	return SOLO5_R_OK;
}

/* The checks Solo5 makes before any transfer: whole sectors, inside the device. */
static struct device *block_range(solo5_handle_t handle, solo5_off_t offset, const void *buf,
                                  size_t size)
{
	struct device *d = device(handle, MK__SOLO5_BLOCK);
	uint64_t sector, length;

	if (d == NULL || buf == NULL)
		return NULL;
	sector = mk_block_sector_size(d->block);
	length = mk_block_length(d->block);
	if (size == 0 || size % sector != 0 || offset % sector != 0 || offset > length ||
	    size > length - offset)
		return NULL;
	return d;
}

solo5_result_t solo5_block_write(solo5_handle_t handle, solo5_off_t offset, const uint8_t *buf,
                                 size_t size)
{
	struct device *d = block_range(handle, offset, buf, size);
	size_t sector;

	if (d == NULL)
		return SOLO5_R_EINVAL;
	sector = mk_block_sector_size(d->block);
	for (size_t done = 0; done < size; done += sector) {
		int err = mk_block_atomic_write(d->block, offset + done, buf, size, done);
		if (err != 0)
			return SOLO5_R_EUNSPEC;
	}
	return SOLO5_R_OK;
}

solo5_result_t solo5_block_read(solo5_handle_t handle, solo5_off_t offset, uint8_t *buf,
                                size_t size)
{
	struct device *d = block_range(handle, offset, buf, size);
	size_t sector;

	if (d == NULL)
		return SOLO5_R_EINVAL;
	sector = mk_block_sector_size(d->block);
	for (size_t done = 0; done < size; done += sector) {
		int err = mk_block_atomic_read(d->block, offset + done, buf, size, done);
		if (err != 0)
			return SOLO5_R_EUNSPEC;
	}
	return SOLO5_R_OK;
}
