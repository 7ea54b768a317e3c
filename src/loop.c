/* Choosing the event loop backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int backend_from_env(int backend)
{
	const char *env = getenv("MKHOST_BACKEND");

	if (env == NULL || *env == '\0')
		return backend;
	if (strcmp(env, "epoll") == 0)
		return MK_BACKEND_EPOLL;
	if (strcmp(env, "io_uring") == 0)
		return MK_BACKEND_IO_URING;
	if (strcmp(env, "auto") == 0)
		return MK_BACKEND_AUTO;
	return -1;
}

int mk__loop_init(struct mk__loop *l, int backend, bool sealable, bool from_args)
{
	int b = from_args ? backend : backend_from_env(backend);

	memset(l, 0, sizeof(*l));
	if (b < 0)
		return mk__fail(-EINVAL, "MKHOST_BACKEND='%s' is not one of epoll, io_uring, auto",
		                getenv("MKHOST_BACKEND"));
	if (b == MK_BACKEND_EPOLL)
		return mk__loop_epoll_init(l);

	int err = mk__loop_uring_init(l, sealable);
	if (err == 0)
		return 0;
	if (b == MK_BACKEND_IO_URING)
		return mk__fail(-ENOSYS, "io_uring is unavailable (%s) and %s asks for it",
		                strerror(-err),
		                from_args ? "--backend=io_uring" : "MKHOST_BACKEND or mk_config");
	fprintf(stderr, "mkhost: io_uring unavailable (%s), using epoll\n", strerror(-err));
	return mk__loop_epoll_init(l);
}
