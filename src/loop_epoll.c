/* The epoll backend, for systems where io_uring is disabled (kernel.io_uring_disabled, seccomp
 * profiles of container runtimes). EPOLLONESHOT gives the same single-shot readiness as the
 * io_uring backend's POLL_ADD. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

static int epfd_of(struct mk__loop *l)
{
	return (int)(intptr_t)l->impl;
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

	if (timeout_ns < 0)
		ms = -1;
	else if (timeout_ns > (int64_t)INT_MAX * 1000000)
		ms = INT_MAX;
	else /* round up: waking early only costs another round */
		ms = (int)((timeout_ns + 999999) / 1000000);
	int n = epoll_wait(epfd_of(l), evs, 64, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct mk__io *io = evs[i].data.ptr;
		io->armed = false;
		l->pending--;
		io->done(io, (int)evs[i].events);
	}
	return n;
}

static void epoll_fini(struct mk__loop *l)
{
	close(epfd_of(l));
}

static const struct mk__loop_ops epoll_ops = {
	.name = "epoll",
	.poll_in = epoll_poll_in,
	.forget = epoll_forget,
	.wait = epoll_wait_ns,
	.fini = epoll_fini,
};

int mk__loop_epoll_init(struct mk__loop *l)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return -errno;
	l->ops = &epoll_ops;
	l->impl = (void *)(intptr_t)fd;
	return 0;
}
