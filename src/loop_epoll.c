/* The epoll backend, for systems where io_uring is disabled (kernel.io_uring_disabled, seccomp
 * profiles of container runtimes). EPOLLONESHOT gives the same single-shot readiness as the
 * io_uring backend's POLL_ADD. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

struct epoll_loop {
	int epfd;
	struct mk__io *done_head, *done_tail; /* file operations done, not yet dispatched */
};

static struct epoll_loop *impl_of(struct mk__loop *l)
{
	return l->impl;
}

static int epfd_of(struct mk__loop *l)
{
	return impl_of(l)->epfd;
}

/* No asynchronous file I/O without io_uring: do it now, report it at the next wait. */
static int epoll_file(struct mk__loop *l, struct mk__io *io, enum mk__file_op op, void *buf,
                      size_t len, uint64_t off)
{
	struct epoll_loop *e = impl_of(l);
	ssize_t r;

	do {
		if (op == MK__FILE_READ)
			r = pread(io->fd, buf, len, (off_t)off);
		else if (op == MK__FILE_WRITE)
			r = pwrite(io->fd, buf, len, (off_t)off);
		else
			r = fsync(io->fd);
	} while (r < 0 && errno == EINTR);
	io->res = r < 0 ? -errno : (int)r;
	io->next = NULL;
	if (e->done_tail != NULL)
		e->done_tail->next = io;
	else
		e->done_head = io;
	e->done_tail = io;
	io->armed = true;
	l->pending++;
	return 0;
}

static int dispatch_files(struct mk__loop *l)
{
	struct epoll_loop *e = impl_of(l);
	struct mk__io *io = e->done_head;
	int n = 0;

	e->done_head = e->done_tail = NULL;
	while (io != NULL) {
		struct mk__io *next = io->next;
		io->armed = false;
		l->pending--;
		io->done(io, io->res);
		io = next;
		n++;
	}
	return n;
}

static int epoll_poll_in(struct mk__loop *l, struct mk__io *io)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.ptr = io};
	int op = io->epoll_added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (epoll_ctl(epfd_of(l), op, io->fd, &ev) != 0)
		return -errno;
	io->epoll_added = true;
	io->armed = true;
	l->pending++;
	return 0;
}

static void epoll_forget(struct mk__loop *l, struct mk__io *io)
{
	if (io->epoll_added)
		epoll_ctl(epfd_of(l), EPOLL_CTL_DEL, io->fd, NULL);
	io->epoll_added = false;
	if (io->armed)
		l->pending--;
	io->armed = false;
}

static int epoll_wait_ns(struct mk__loop *l, int64_t timeout_ns)
{
	struct epoll_event evs[64];
	int ms;

	if (impl_of(l)->done_head != NULL)
		timeout_ns = 0;
	if (timeout_ns < 0)
		ms = -1;
	else if (timeout_ns > (int64_t)INT_MAX * 1000000)
		ms = INT_MAX;
	else /* round up: waking early only costs another round */
		ms = (int)((timeout_ns + 999999) / 1000000);
	int files = dispatch_files(l);
	int n = epoll_wait(epfd_of(l), evs, 64, ms);
	/* One that dispatched something, or could block, may have taught something new (loop.h). */
	if (n != 0 || files != 0 || ms != 0)
		l->waits++;
	if (n < 0)
		return errno == EINTR ? files : -errno;
	for (int i = 0; i < n; i++) {
		struct mk__io *io = evs[i].data.ptr;
		io->armed = false;
		l->pending--;
		io->done(io, (int)evs[i].events);
	}
	return n + files;
}

static void epoll_fini(struct mk__loop *l)
{
	close(epfd_of(l));
	free(l->impl);
	l->impl = NULL;
}

static int epoll_seal(struct mk__loop *l)
{
	(void)l; /* epoll_wait and epoll_ctl are system calls: seccomp covers them */
	return 0;
}

static const struct mk__loop_ops epoll_ops = {
    .name = "epoll",
    .poll_in = epoll_poll_in,
    .file = epoll_file,
    .forget = epoll_forget,
    .wait = epoll_wait_ns,
    .seal = epoll_seal,
    .fini = epoll_fini,
};

int mk__loop_epoll_init(struct mk__loop *l)
{
	struct epoll_loop *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return -ENOMEM;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		int err = -errno;
		free(e);
		return err;
	}
	l->ops = &epoll_ops;
	l->impl = e;
	return 0;
}
