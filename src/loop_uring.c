/* The io_uring backend. Readiness is a single-shot POLL_ADD armed only after a read found the
 * device empty: measured here, a multishot poll made the path 2.6-3x slower, because it
 * completes for every frame even while the reader is busy draining. Submissions are batched
 * and go in with the wait, so a blocking wait is one system call. */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RING_ENTRIES 256

static struct io_uring *ring_of(struct mk__loop *l)
{
	return l->impl;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (sqe == NULL) {
		/* The submission queue is full: hand it to the kernel and take a fresh entry. */
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static int uring_poll_in(struct mk__loop *l, struct mk__io *io)
{
	struct io_uring_sqe *sqe = get_sqe(ring_of(l));

	if (sqe == NULL)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, io->fd, POLLIN);
	io_uring_sqe_set_data(sqe, io);
	io->armed = true;
	l->pending++;
	return 0;
}

static int uring_file(struct mk__loop *l, struct mk__io *io, enum mk__file_op op, void *buf,
                      size_t len, uint64_t off)
{
	struct io_uring_sqe *sqe = get_sqe(ring_of(l));

	if (sqe == NULL)
		return -EBUSY;
	if (op == MK__FILE_READ)
		io_uring_prep_read(sqe, io->fd, buf, (unsigned)len, off);
	else if (op == MK__FILE_WRITE)
		io_uring_prep_write(sqe, io->fd, buf, (unsigned)len, off);
	else
		io_uring_prep_fsync(sqe, io->fd, 0);
	io_uring_sqe_set_data(sqe, io);
	io->armed = true;
	l->pending++;
	return 0;
}

static void uring_forget(struct mk__loop *l, struct mk__io *io)
{
	struct io_uring_sqe *sqe;

	if (!io->armed)
		return;
	io->armed = false;
	l->pending--;
	/* The removed poll completes with -ECANCELED; reap() ignores it. */
	sqe = get_sqe(ring_of(l));
	if (sqe != NULL) {
		io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)io);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(ring_of(l));
	}
}

static int reap(struct mk__loop *l)
{
	struct io_uring *ring = ring_of(l);
	struct io_uring_cqe *cqes[64];
	int total = 0;
	unsigned n;

	while ((n = io_uring_peek_batch_cqe(ring, cqes, 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct mk__io *io = io_uring_cqe_get_data(cqes[i]);
			int res = cqes[i]->res;

			io_uring_cqe_seen(ring, cqes[i]);
			/* A removed poll completes with -ECANCELED and its data is stale. */
			if (io == NULL || !io->armed)
				continue;
			io->armed = false;
			l->pending--;
			io->done(io, res);
			total++;
		}
	}
	return total;
}

static int uring_wait(struct mk__loop *l, int64_t timeout_ns)
{
	struct io_uring *ring = ring_of(l);
	struct io_uring_cqe *cqe;
	int err;

	if (timeout_ns == 0) {
		/* Tasks are runnable: enter the kernel only to submit, or when it flags completions
		 * waiting to be posted; otherwise just look at the completion queue. */
		if (io_uring_sq_ready(ring) > 0)
			io_uring_submit_and_get_events(ring);
		else if (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN)
			io_uring_get_events(ring);
		return reap(l);
	}
	if (timeout_ns < 0) {
		err = io_uring_submit_and_wait_timeout(ring, &cqe, 1, NULL, NULL);
	} else {
		struct __kernel_timespec ts = {
		    .tv_sec = timeout_ns / 1000000000,
		    .tv_nsec = timeout_ns % 1000000000,
		};
		err = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
	}
	if (err < 0 && err != -ETIME && err != -EINTR && err != -EAGAIN && err != -EBUSY)
		return err;
	return reap(l);
}

/* Cancel what is still armed and reap it before the ring goes. A request left in the ring holds
 * its file until the kernel's deferred teardown of the ring, which under load takes seconds:
 * meanwhile the TAP stays attached and the next program to attach it gets EBUSY. Bounded:
 * 200 ms at most. */
static void cancel_all(struct mk__loop *l)
{
	struct io_uring *ring = ring_of(l);
	struct io_uring_sqe *sqe;
	unsigned cancelled = 0, reaped = 0;
	bool answered = false;

	if (l->pending == 0 || (sqe = get_sqe(ring)) == NULL)
		return;
	io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data(sqe, &cancelled); /* tells the cancel's own completion apart */
	io_uring_submit(ring);
	for (int round = 0; round < 20 && (!answered || reaped < cancelled); round++) {
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
		struct io_uring_cqe *cqe;
		if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) != 0)
			continue;
		if (io_uring_cqe_get_data(cqe) == &cancelled) {
			answered = true;
			if (cqe->res < 0) {
				io_uring_cqe_seen(ring, cqe);
				break; /* no CANCEL_ANY (before 5.19): the ring's own teardown does
				          it */
			}
			cancelled = (unsigned)cqe->res;
		} else {
			reaped++;
		}
		io_uring_cqe_seen(ring, cqe);
	}
}

static void uring_fini(struct mk__loop *l)
{
	cancel_all(l);
	io_uring_queue_exit(ring_of(l));
	free(l->impl);
	l->impl = NULL;
}

static int uring_seal(struct mk__loop *l)
{
	static const __u8 allowed[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE,
	                               IORING_OP_READ,     IORING_OP_WRITE,
	                               IORING_OP_FSYNC,    IORING_OP_ASYNC_CANCEL};
	struct io_uring_restriction res[sizeof(allowed)];
	int err;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < sizeof(allowed); i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = allowed[i];
	}
	/* No register operation is listed, so none is allowed once the ring is enabled. The raw
	 * register call: Debian's liburing 2.3 does not export the wrappers. */
	err = io_uring_register((unsigned)ring_of(l)->ring_fd, IORING_REGISTER_RESTRICTIONS, res,
	                        sizeof(allowed));
	if (err == 0)
		err = io_uring_register((unsigned)ring_of(l)->ring_fd, IORING_REGISTER_ENABLE_RINGS,
		                        NULL, 0);
	return err < 0 ? err : 0;
}

static const struct mk__loop_ops uring_ops = {
    .name = "io_uring",
    .poll_in = uring_poll_in,
    .file = uring_file,
    .forget = uring_forget,
    .wait = uring_wait,
    .seal = uring_seal,
    .fini = uring_fini,
};

int mk__loop_uring_init(struct mk__loop *l, bool sealable)
{
	struct io_uring *ring = calloc(1, sizeof(*ring));
	unsigned disabled = sealable ? IORING_SETUP_R_DISABLED : 0;
	int err;

	if (ring == NULL)
		return -ENOMEM;
	/* One thread issues everything, and completions need not interrupt it: they wait for its
	 * next system call, and the TASKRUN flag tells the non-blocking reap (liburing's peek) when
	 * one is due. Older kernels reject these flags, so try without them too. */
	err = io_uring_queue_init(RING_ENTRIES, ring,
	                          disabled | IORING_SETUP_SINGLE_ISSUER |
	                              IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
	if (err == -EINVAL)
		err = io_uring_queue_init(RING_ENTRIES, ring, disabled);
	if (err == 0 && !(ring->features & IORING_FEAT_EXT_ARG)) {
		/* Without EXT_ARG a timed wait needs a timeout request of its own; kernels that old
		 * (before 5.11) get the epoll backend instead. */
		io_uring_queue_exit(ring);
		err = -ENOSYS;
	}
	if (err < 0) {
		free(ring);
		return err;
	}
	l->ops = &uring_ops;
	l->impl = ring;
	return 0;
}
