/* The io_uring backend. Submissions are batched and go in with the wait, so a blocking wait is
 * one system call, and queued writes (send) ride along with it.
 *
 * Receiving: readiness is a single-shot POLL_ADD armed only after a read(2) found the device
 * empty: measured here, a multishot poll made that path 2.6-3x slower, because it completes for
 * every frame even while the reader is busy draining. With MKHOST_URING_RX=ring, where the kernel
 * has IORING_OP_READ_MULTISHOT (Linux 6.7), a TAP is read instead by one multishot read into a
 * ring of provided buffers (rx_*): frames arrive as completions, many per system call, with no
 * read(2) each. That wins only where a system call is dear; on the machine it was measured on it
 * lost on every row, so it is not the default. */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RING_ENTRIES 256

/* Not in liburing 2.3's headers: the opcode of Linux 6.7's multishot read. */
#define OP_READ_MULTISHOT 49

struct uring_loop {
	struct io_uring ring;
	bool read_multishot; /* the kernel has OP_READ_MULTISHOT and rings are allowed */
	bool sealed;         /* no register operation any more (--sandbox) */
	int next_group;      /* buffer group id of the next receive ring */
	unsigned sends;      /* writes queued and not yet submitted */
};

static struct io_uring *ring_of(struct mk__loop *l)
{
	return &((struct uring_loop *)l->impl)->ring;
}

/* Hand the submission queue to the kernel. Every submission but a wait's goes through here, so
 * that (sends) counts only the writes still queued; uring_wait takes the count itself. */
static void submit(struct mk__loop *l)
{
	struct uring_loop *u = l->impl;

	io_uring_submit(&u->ring);
	u->sends = 0;
}

static struct io_uring_sqe *get_sqe(struct mk__loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring_of(l));

	if (sqe == NULL) {
		/* The submission queue is full: hand it to the kernel and take a fresh entry. */
		submit(l);
		sqe = io_uring_get_sqe(ring_of(l));
	}
	return sqe;
}

static int uring_poll_in(struct mk__loop *l, struct mk__io *io)
{
	struct io_uring_sqe *sqe = get_sqe(l);

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
	struct io_uring_sqe *sqe = get_sqe(l);

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

static int uring_send(struct mk__loop *l, struct mk__io *io, const void *buf, size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	/* Offset -1: a TAP is a stream, written at its "current position". */
	io_uring_prep_write(sqe, io->fd, buf, (unsigned)len, (__u64)-1);
	io_uring_sqe_set_data(sqe, io);
	io->multishot = false;
	io->armed = true;
	l->pending++;
	((struct uring_loop *)l->impl)->sends++;
	return 0;
}

static int uring_rx_open(struct mk__loop *l, struct mk__rxbufs *b, unsigned count, size_t size)
{
	struct uring_loop *u = l->impl;
	struct io_uring_buf_reg reg;
	struct io_uring_buf_ring *br = NULL;
	size_t ring_bytes = count * sizeof(struct io_uring_buf);
	int err;

	/* After the seal a register call would be refused, by seccomp first: no ring then. */
	if (!u->read_multishot || u->sealed)
		return -EOPNOTSUPP;
	memset(b, 0, sizeof(*b));
	if (posix_memalign((void **)&br, 4096, ring_bytes < 4096 ? 4096 : ring_bytes) != 0 ||
	    (b->mem = calloc(count, size)) == NULL) {
		free(br);
		return -ENOMEM;
	}
	io_uring_buf_ring_init(br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (__u64)(uintptr_t)br;
	reg.ring_entries = count;
	reg.bgid = (__u16)u->next_group;
	err = io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (err < 0) {
		free(b->mem);
		free(br);
		b->mem = NULL;
		return err == -EINVAL ? -EOPNOTSUPP : err;
	}
	b->size = size;
	b->count = count;
	b->ring = br;
	b->group = u->next_group++;
	for (unsigned i = 0; i < count; i++)
		io_uring_buf_ring_add(br, mk__rxbufs_at(b, i), (unsigned)size, (unsigned short)i,
		                      io_uring_buf_ring_mask(count), (int)i);
	io_uring_buf_ring_advance(br, (int)count);
	return 0;
}

static int uring_rx_arm(struct mk__loop *l, struct mk__io *io, struct mk__rxbufs *b)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (sqe == NULL)
		return -EBUSY;
	/* Length 0: each read takes a whole buffer. */
	io_uring_prep_rw(OP_READ_MULTISHOT, sqe, io->fd, NULL, 0, (__u64)-1);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = (__u16)b->group;
	io_uring_sqe_set_data(sqe, io);
	io->multishot = true;
	io->armed = true;
	l->pending++;
	return 0;
}

static void uring_rx_recycle(struct mk__rxbufs *b, unsigned id)
{
	struct io_uring_buf_ring *br = b->ring;

	io_uring_buf_ring_add(br, mk__rxbufs_at(b, id), (unsigned)b->size, (unsigned short)id,
	                      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(br, 1);
}

static void uring_rx_close(struct mk__loop *l, struct mk__rxbufs *b)
{
	if (b->ring == NULL)
		return;
	if (l->impl != NULL)
		io_uring_unregister_buf_ring(ring_of(l), b->group);
	free(b->ring);
	free(b->mem);
	memset(b, 0, sizeof(*b));
}

static bool uring_due(struct mk__loop *l)
{
	struct io_uring *ring = ring_of(l);

	return io_uring_cq_ready(ring) > 0 ||
	       (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN) != 0;
}

static void uring_forget(struct mk__loop *l, struct mk__io *io)
{
	struct io_uring_sqe *sqe;

	if (!io->armed)
		return;
	io->armed = false;
	l->pending--;
	/* The removed poll (or read) completes with -ECANCELED; reap() ignores it. */
	sqe = get_sqe(l);
	if (sqe != NULL) {
		if (io->multishot)
			io_uring_prep_cancel64(sqe, (__u64)(uintptr_t)io, 0);
		else
			io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)io);
		io_uring_sqe_set_data(sqe, NULL);
		submit(l);
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

			uint32_t flags = cqes[i]->flags;

			io_uring_cqe_seen(ring, cqes[i]);
			/* A removed poll completes with -ECANCELED and its data is stale. */
			if (io == NULL || !io->armed)
				continue;
			if (!io->multishot || !(flags & IORING_CQE_F_MORE)) {
				io->armed = false;
				l->pending--;
			}
			io->cflags = flags;
			io->done(io, res);
			total++;
		}
	}
	return total;
}

/* A wait that dispatched something, or that could block, is one where the program may have
 * learned something new about its devices (loop.h: waits). */
static int counted(struct mk__loop *l, int n, int64_t timeout_ns)
{
	if (n != 0 || timeout_ns != 0)
		l->waits++;
	return n;
}

static int uring_wait(struct mk__loop *l, int64_t timeout_ns)
{
	struct uring_loop *u = l->impl;
	struct io_uring *ring = ring_of(l);
	struct io_uring_cqe *cqe;
	/* Queued writes to a TAP complete as they are submitted: a blocking wait that submits them
	 * counts their completions and waits for one event more, instead of returning for them
	 * and going to sleep again in a second system call. Only when something else is armed:
	 * otherwise nothing more may come. */
	unsigned sends = u->sends, want = l->pending > sends ? sends + 1 : 1;
	int err;

	u->sends = 0;
	if (timeout_ns == 0) {
		/* Tasks are runnable: enter the kernel only to submit, or when it flags completions
		 * waiting to be posted; otherwise just look at the completion queue. */
		if (io_uring_sq_ready(ring) > 0)
			io_uring_submit_and_get_events(ring);
		else if (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN)
			io_uring_get_events(ring);
		return counted(l, reap(l), timeout_ns);
	}
	if (timeout_ns < 0) {
		err = io_uring_submit_and_wait_timeout(ring, &cqe, want, NULL, NULL);
	} else {
		struct __kernel_timespec ts = {
		    .tv_sec = timeout_ns / 1000000000,
		    .tv_nsec = timeout_ns % 1000000000,
		};
		err = io_uring_submit_and_wait_timeout(ring, &cqe, want, &ts, NULL);
	}
	if (err < 0 && err != -ETIME && err != -EINTR && err != -EAGAIN && err != -EBUSY)
		return err;
	return counted(l, reap(l), timeout_ns);
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

	if (l->pending == 0 || (sqe = get_sqe(l)) == NULL)
		return;
	io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	io_uring_sqe_set_data(sqe, &cancelled); /* tells the cancel's own completion apart */
	submit(l);
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
	/* Queued writes go to the kernel before anything is cancelled: a TAP takes them at once. */
	if (io_uring_sq_ready(ring_of(l)) > 0)
		submit(l);
	cancel_all(l);
	io_uring_queue_exit(ring_of(l));
	free(l->impl);
	l->impl = NULL;
}

static int uring_seal(struct mk__loop *l)
{
	static const __u8 allowed[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE,
	                               IORING_OP_READ,     IORING_OP_WRITE,
	                               IORING_OP_FSYNC,    IORING_OP_ASYNC_CANCEL,
	                               OP_READ_MULTISHOT};
	struct io_uring_restriction res[sizeof(allowed)];
	/* The multishot read only where the kernel knows it: it refuses unknown opcodes. */
	size_t n = sizeof(allowed) - (((struct uring_loop *)l->impl)->read_multishot ? 0 : 1);
	int err;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < n; i++) {
		res[i].opcode = IORING_RESTRICTION_SQE_OP;
		res[i].sqe_op = allowed[i];
	}
	/* No register operation is listed, so none is allowed once the ring is enabled. The raw
	 * register call: Debian's liburing 2.3 does not export the wrappers. */
	err = io_uring_register((unsigned)ring_of(l)->ring_fd, IORING_REGISTER_RESTRICTIONS, res,
	                        (unsigned)n);
	if (err == 0)
		err = io_uring_register((unsigned)ring_of(l)->ring_fd, IORING_REGISTER_ENABLE_RINGS,
		                        NULL, 0);
	((struct uring_loop *)l->impl)->sealed = true;
	return err < 0 ? err : 0;
}

static const struct mk__loop_ops uring_ops = {
    .name = "io_uring",
    .poll_in = uring_poll_in,
    .file = uring_file,
    .send = uring_send,
    .rx_open = uring_rx_open,
    .rx_arm = uring_rx_arm,
    .rx_recycle = uring_rx_recycle,
    .rx_close = uring_rx_close,
    .due = uring_due,
    .forget = uring_forget,
    .wait = uring_wait,
    .seal = uring_seal,
    .fini = uring_fini,
};

/* Whether receive rings are used: MKHOST_URING_RX=ring asks for them (mk__loop_init refuses
 * values other than ring and poll), and the kernel has the multishot read (Linux 6.7). Not by
 * default: which wins depends on the machine. On a 2-vCPU Intel VM with cheap system calls the
 * ring cost more than a read(2) per frame on every row; on an AMD VM where a system call costs
 * ~1 us it drained 3x faster (README, "Performance"). */
static bool has_read_multishot(struct io_uring *ring)
{
	const char *rx = getenv("MKHOST_URING_RX");
	struct io_uring_probe *p;
	bool ok;

	if (rx == NULL || strcmp(rx, "ring") != 0)
		return false;
	p = io_uring_get_probe_ring(ring);
	if (p == NULL)
		return false;
	ok = p->last_op >= OP_READ_MULTISHOT && io_uring_opcode_supported(p, OP_READ_MULTISHOT);
	io_uring_free_probe(p);
	return ok;
}

int mk__loop_uring_init(struct mk__loop *l, bool sealable)
{
	struct uring_loop *u = calloc(1, sizeof(*u));
	struct io_uring *ring = u != NULL ? &u->ring : NULL;
	unsigned disabled = sealable ? IORING_SETUP_R_DISABLED : 0;
	int err;

	if (u == NULL)
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
		free(u);
		return err;
	}
	u->read_multishot = has_read_multishot(ring);
	u->next_group = 1;
	l->ops = &uring_ops;
	l->impl = u;
	return 0;
}
