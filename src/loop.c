/* Choosing the event loop backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

static int backend_named(const char *name)
{
	if (strcmp(name, "epoll") == 0)
		return MK_BACKEND_EPOLL;
	if (strcmp(name, "io_uring") == 0)
		return MK_BACKEND_IO_URING;
	if (strcmp(name, "auto") == 0)
		return MK_BACKEND_AUTO;
	return -1;
}

int mk__loop_init(struct mk__loop *l, int backend, bool sealable, enum mk__backend_source from)
{
	const char *env = getenv("MKHOST_BACKEND");
	const char *asks = "--backend=io_uring";
	int b = backend;

	memset(l, 0, sizeof(*l));
	if (from != MK__BACKEND_FROM_ARGS) {
		if (env != NULL && *env != '\0') {
			b = backend_named(env);
			asks = "MKHOST_BACKEND=io_uring";
		} else {
			asks = "mk_config.backend = MK_BACKEND_IO_URING";
		}
	}
	if (b < 0)
		return mk__fail(-EINVAL, "MKHOST_BACKEND='%s' is not one of epoll, io_uring, auto",
		                env);
	/* Read by the io_uring backend (loop_uring.c); checked here, whatever the backend, so that
	 * a mistyped value is never silently taken for the default. */
	const char *rx = getenv("MKHOST_URING_RX");
	if (rx != NULL && *rx != '\0' && strcmp(rx, "ring") != 0 && strcmp(rx, "poll") != 0)
		return mk__fail(-EINVAL,
		                "MKHOST_URING_RX='%s' is not one of ring, poll (poll, the default: a "
		                "poll, then read(2); ring: a multishot read into a buffer ring, Linux "
		                "6.7+)",
		                rx);
	if (b == MK_BACKEND_EPOLL)
		return mk__loop_epoll_init(l);
	if (b == MK_BACKEND_AUTO && RUNNING_ON_VALGRIND) {
		/* Valgrind holds signals back while a thread is in io_uring_enter, so an idle
		 * program would never see SIGTERM or SIGINT. */
		fprintf(stderr, "mkhost: under valgrind, using epoll (valgrind delays signals "
		                "during io_uring_enter); --backend=io_uring to insist\n");
		return mk__loop_epoll_init(l);
	}

	int err = mk__loop_uring_init(l, sealable);
	if (err == 0)
		return 0;
	if (b == MK_BACKEND_IO_URING)
		return mk__fail(-ENOSYS, "io_uring is unavailable (%s) and %s asks for it; leave it "
		                "out (or say auto) to fall back to epoll",
		                strerror(-err), asks);
	fprintf(stderr, "mkhost: io_uring unavailable (%s), using epoll\n", strerror(-err));
	return mk__loop_epoll_init(l);
}
