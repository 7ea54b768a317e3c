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
	bool armed;       /* waiting for completion: set by poll_in, cleared before done */
	bool epoll_added; /* epoll: the fd is in the interest list */
};

struct mk__loop_ops;

enum mk__file_op { MK__FILE_READ, MK__FILE_WRITE, MK__FILE_FSYNC };

struct mk__loop {
	const struct mk__loop_ops *ops;
	void *impl;
	unsigned pending; /* requests armed and not yet completed */
};

struct mk__loop_ops {
	const char *name;
	/* Arm a one-shot wait for (io->fd) to become readable. */
	int (*poll_in)(struct mk__loop *l, struct mk__io *io);
	/* Start a positioned read or write of buf[0, len) at (off), or an fsync, on (io->fd).
	 * The epoll backend does it synchronously and reports it at the next wait. */
	int (*file)(struct mk__loop *l, struct mk__io *io, enum mk__file_op op, void *buf,
	            size_t len, uint64_t off);
	/* Forget a readiness wait before its fd is closed. */
	void (*forget)(struct mk__loop *l, struct mk__io *io);
	/* Dispatch completions. timeout_ns < 0 blocks until one arrives, 0 never blocks.
	 * Returns how many were dispatched, or a negative errno value. */
	int (*wait)(struct mk__loop *l, int64_t timeout_ns);
	/* Allow from now on only the operations above (for --sandbox): io_uring requests bypass
	 * seccomp, so the ring itself must refuse the others. */
	int (*seal)(struct mk__loop *l);
	void (*fini)(struct mk__loop *l);
};

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
