/* The event loop: the one place that waits for the kernel. Two backends implement it, io_uring
 * (loop_uring.c) and epoll (loop_epoll.c); the scheduler sees only this interface. */
#ifndef MKHOST_LOOP_H
#define MKHOST_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One outstanding request. (done) runs in the scheduler when it completes, with the poll mask,
 * the byte count of a file operation, or a negative errno value. */
struct mk__io {
	void (*done)(struct mk__io *io, int res);
	struct mk__io *next; /* epoll: completed file operations waiting for dispatch */
	int res;
	int fd;
	uint32_t cflags;  /* io_uring: the completion's flags (IORING_CQE_F_*), set before done */
	bool armed;       /* waiting for completion: set when armed, cleared before the last done */
	bool multishot;   /* io_uring: one request, many completions (rx_arm) */
	bool epoll_added; /* epoll: the fd is in the interest list */
};

/* Receive buffers the kernel fills by itself: io_uring's provided-buffer ring. (count) buffers
 * of (size) bytes; the completion of a multishot read names the one it filled. */
struct mk__rxbufs {
	uint8_t *mem;  /* count * size bytes */
	size_t size;
	unsigned count; /* a power of two */
	void *ring;     /* the ring of free buffers shared with the kernel */
	int group;      /* its buffer group id */
};

/* The buffer a multishot read filled, from its completion's flags. */
static inline uint8_t *mk__rxbufs_at(const struct mk__rxbufs *b, unsigned id)
{
	return b->mem + (size_t)id * b->size;
}

struct mk__loop_ops;

enum mk__file_op { MK__FILE_READ, MK__FILE_WRITE, MK__FILE_FSYNC };

struct mk__loop {
	const struct mk__loop_ops *ops;
	void *impl;
	unsigned pending; /* requests armed and not yet completed */
	uint64_t waits;   /* waits that dispatched something or could block: a device read empty
	                     before the last of them may have frames now */
};

struct mk__loop_ops {
	const char *name;
	/* Arm a one-shot wait for (io->fd) to become readable. */
	int (*poll_in)(struct mk__loop *l, struct mk__io *io);
	/* Start a positioned read or write of buf[0, len) at (off), or an fsync, on (io->fd).
	 * The epoll backend does it synchronously and reports it at the next wait. */
	int (*file)(struct mk__loop *l, struct mk__io *io, enum mk__file_op op, void *buf,
	            size_t len, uint64_t off);
	/* Queue a write of buf[0, len) to (io->fd), a stream (a TAP): it goes to the kernel with the
	 * next wait, many writes in one system call, and done() gets the byte count or a negative
	 * errno value. NULL where writes cannot be queued (epoll): the caller writes at once. */
	int (*send)(struct mk__loop *l, struct mk__io *io, const void *buf, size_t len);
	/* Receive rings, where the kernel has a multishot read (io_uring, Linux 6.7+); NULL where
	 * it has not. rx_open sets up (b) or returns a negative errno value (-EOPNOTSUPP: the
	 * kernel has none). rx_arm starts a multishot read of (io->fd) into (b): each frame is one
	 * completion, its length as (res) and its buffer in io->cflags (mk__io_buffer); it stays
	 * armed while io->armed. It ends with -ENOBUFS when every buffer is taken. rx_recycle gives
	 * a buffer back. rx_close cancels nothing: forget the read first. */
	int (*rx_open)(struct mk__loop *l, struct mk__rxbufs *b, unsigned count, size_t size);
	int (*rx_arm)(struct mk__loop *l, struct mk__io *io, struct mk__rxbufs *b);
	void (*rx_recycle)(struct mk__rxbufs *b, unsigned id);
	void (*rx_close)(struct mk__loop *l, struct mk__rxbufs *b);
	/* Whether completions are waiting to be dispatched (in the queue or still to be posted):
	 * wait(0) would find something. Cheap, no system call. */
	bool (*due)(struct mk__loop *l);
	/* Forget a readiness wait (or a multishot read) before its fd is closed. */
	void (*forget)(struct mk__loop *l, struct mk__io *io);
	/* Dispatch completions. timeout_ns < 0 blocks until one arrives, 0 never blocks.
	 * Returns how many were dispatched, or a negative errno value. */
	int (*wait)(struct mk__loop *l, int64_t timeout_ns);
	/* Allow from now on only the operations above (for --sandbox): io_uring requests bypass
	 * seccomp, so the ring itself must refuse the others. */
	int (*seal)(struct mk__loop *l);
	void (*fini)(struct mk__loop *l);
};

/* The buffer a receive completion names, and whether it names one. */
static inline bool mk__io_has_buffer(const struct mk__io *io)
{
	return (io->cflags & 1u) != 0; /* IORING_CQE_F_BUFFER */
}
static inline unsigned mk__io_buffer(const struct mk__io *io)
{
	return io->cflags >> 16; /* IORING_CQE_BUFFER_SHIFT */
}

/* Who chose the backend: the sentence refusing it names that. */
enum mk__backend_source {
	MK__BACKEND_FROM_ARGS,   /* --backend=NAME */
	MK__BACKEND_FROM_CONFIG, /* mk_config.backend, unless MKHOST_BACKEND is set */
};
/* Set up the backend named by (backend), a value of enum mk_backend. The environment variable
 * MKHOST_BACKEND overrides it unless it comes from the command line (--backend=). AUTO is epoll
 * under valgrind. Prints one line on stderr when it falls back to epoll. */
int mk__loop_init(struct mk__loop *l, int backend, bool sealable, enum mk__backend_source from);

/* (sealable): the ring starts disabled and only seal() enables it, with its restrictions. */
int mk__loop_uring_init(struct mk__loop *l, bool sealable);
int mk__loop_epoll_init(struct mk__loop *l);

#endif
