/* --net:NAME=unix:PATH[,mtu=N]: a cable between two programs through a Unix socket at PATH.
 *
 * One frame is one message of an AF_UNIX SOCK_SEQPACKET connection: message boundaries are kept,
 * frames are never merged or split, and no privilege is needed. Plain datagram sockets
 * (SOCK_DGRAM) were the first idea and were rejected: an unconnected datagram socket queues at
 * most net.unix.max_dgram_qlen messages (10 by default, a sysctl only root can change), so any
 * burst of more than ~11 frames is dropped; a connected one survives no restart (the survivor
 * stays connected to the dead socket and refuses the new peer with EPERM until it happens to
 * send). A seqpacket connection is limited by the sender's buffer only (~90 full frames) and
 * reports a vanished peer as end-of-file.
 *
 * Who creates and who removes the socket file:
 * - Each end, when it starts and whenever it loses its peer, tries to connect to PATH. If that
 *   works it is the connecting end. If nobody listens there, it becomes the listening end: it
 *   binds PATH (creating the socket file) and listens.
 * - A socket file nobody listens on (connect says ECONNREFUSED: its program crashed or was
 *   killed) is stale: it is removed and bound again. This connect-or-listen step runs under an
 *   flock(2) of PATH's directory, so two programs starting together never both remove and bind.
 *   A file at PATH that is not a socket is never removed: connect fails and says so.
 * - The listening end removes PATH when the device closes, if PATH is still the file it bound.
 * - When the listening end goes away, the connecting end sees end-of-file and takes over: it
 *   connects again or, finding nobody, listens on PATH itself. So either side may restart, any
 *   number of times, in any order.
 * While no peer is connected, writes are refused (counted in tx_drops), as on an unplugged cable.
 * Not with --sandbox: accepting and reconnecting at run time need system calls it forbids.
 * A cable has two ends: a third program on the same PATH has its connection closed at once.
 *
 * The descriptor the scheduler polls is an epoll instance holding the listening socket and the
 * connection, so the device keeps one descriptor while its sockets come and go.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

struct ulink {
	struct sockaddr_un addr;
	char dir[PATH_MAX];
	int ep;    /* epoll set: lsock and conn; the device's descriptor */
	int lsock; /* listening socket, or -1 */
	int conn;  /* the connection to the peer, or -1 */
	dev_t dev; /* the socket file we bound, to remove only our own */
	ino_t ino;
};

static int seqpacket(void)
{
	return socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static void ep_add(struct ulink *u, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void set_conn(struct ulink *u, int fd)
{
	u->conn = fd;
	ep_add(u, fd);
}

static void drop_conn(struct ulink *u)
{
	if (u->conn < 0)
		return;
	epoll_ctl(u->ep, EPOLL_CTL_DEL, u->conn, NULL);
	close(u->conn);
	u->conn = -1;
}

/* Bind and listen on the path; called with the directory locked and the path free. */
static int listen_on(struct ulink *u)
{
	struct stat st;
	int fd = seqpacket();

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&u->addr, sizeof(u->addr)) != 0 || listen(fd, 4) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (stat(u->addr.sun_path, &st) == 0) {
		u->dev = st.st_dev;
		u->ino = st.st_ino;
	}
	u->lsock = fd;
	ep_add(u, fd);
	return 0;
}

/* Connect to the peer listening on the path, or listen there. Returns 0 or a negative errno
 * value: -EEXIST when the path is not a socket, -EADDRINUSE when the peer has no room. */
static int attach(struct ulink *u)
{
	int lock = open(u->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = seqpacket(), err = 0;
	struct stat st;

	if (fd < 0 || lock < 0) {
		err = -errno;
		goto out;
	}
	flock(lock, LOCK_EX);
	if (connect(fd, (struct sockaddr *)&u->addr, sizeof(u->addr)) == 0) {
		set_conn(u, fd);
		fd = -1;
	} else if (errno == ECONNREFUSED || errno == ENOENT) {
		if (errno == ECONNREFUSED) {
			if (lstat(u->addr.sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
				err = -EEXIST;
				goto out;
			}
			unlink(u->addr.sun_path); /* stale: its listener is gone */
		}
		err = listen_on(u);
	} else {
		err = errno == EAGAIN ? -EADDRINUSE : -errno;
	}
out:
	if (fd >= 0)
		close(fd);
	if (lock >= 0)
		close(lock); /* releases the lock */
	return err;
}

/* Take a waiting connection: the peer if we have none, else a third end, which is closed. */
static void accept_pending(struct ulink *u)
{
	for (;;) {
		int c = accept4(u->lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0)
			return;
		if (u->conn < 0)
			set_conn(u, c);
		else
			close(c);
	}
}

/* The peer went away: a listening end waits for the next one; a connecting end connects again
 * or listens itself. */
static void peer_gone(struct ulink *u)
{
	drop_conn(u);
	if (u->lsock < 0)
		attach(u); /* on failure, the next write or read tries again */
}

/* A connection to the peer, made or taken now if there is none: true when there is one. */
static bool connected(struct ulink *u)
{
	if (u->conn < 0) {
		if (u->lsock >= 0)
			accept_pending(u);
		else
			attach(u);
	}
	return u->conn >= 0;
}

static ssize_t unix_read(mk_net *n, uint8_t *dst, size_t cap)
{
	struct ulink *u = n->link_state;

	for (int round = 0; round < 4; round++) {
		if (!connected(u))
			return -EAGAIN;
		ssize_t r = recv(u->conn, dst, cap, MSG_DONTWAIT | MSG_TRUNC);
		if (r > 0)
			return (size_t)r > cap ? 0 : r; /* too long: dropped, net.c counts it */
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			/* a third end knocking would keep the poll firing: take it and drop it */
			if (u->lsock >= 0)
				accept_pending(u);
			return -EAGAIN;
		}
		peer_gone(u); /* end-of-file or reset */
	}
	return -EAGAIN;
}

static ssize_t unix_write(mk_net *n, const uint8_t *frame, size_t len)
{
	struct ulink *u = n->link_state;

	for (int tries = 0; tries < 2; tries++) {
		if (!connected(u))
			return -ENOTCONN;
		ssize_t r = send(u->conn, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		if (errno != EPIPE && errno != ECONNRESET && errno != ENOTCONN)
			return -errno;
		peer_gone(u);
	}
	return -ENOTCONN;
}

/* "mtu=N" options of the links that have no interface to ask: unix, hub, slirp. */
int mk__link_parse_mtu(const char *name, const char *opt, unsigned *mtu)
{
	char *end;
	unsigned long v;

	if (strncmp(opt, "mtu=", 4) != 0)
		return mk__fail(-EINVAL,
		                "net device '%s': unknown option '%s'; the only option is "
		                "mtu=N",
		                name, opt);
	errno = 0;
	v = strtoul(opt + 4, &end, 10);
	if (opt[4] < '0' || opt[4] > '9' || *end != '\0' || errno != 0 || v < 68 || v > 65535)
		return mk__fail(-EINVAL,
		                "net device '%s': mtu '%s' must be a number from 68 to "
		                "65535",
		                name, opt + 4);
	*mtu = (unsigned)v;
	return 0;
}

static void unix_close(mk_net *n)
{
	struct ulink *u = n->link_state;
	struct stat st;

	drop_conn(u);
	if (u->lsock >= 0) {
		if (stat(u->addr.sun_path, &st) == 0 && st.st_dev == u->dev && st.st_ino == u->ino)
			unlink(u->addr.sun_path);
		close(u->lsock);
	}
	close(u->ep);
	free(u);
}

static const struct mk__link_ops unix_ops = {
    .kind = "unix",
    .read = unix_read,
    .write = unix_write,
    .close = unix_close,
};

int mk__unix_link_open(mk_net *n, const struct mk__netarg *a)
{
	const char *spec = a->value + strlen("unix:");
	const char *comma = strchr(spec, ',');
	size_t plen = comma ? (size_t)(comma - spec) : strlen(spec);
	unsigned mtu = 1500;
	struct ulink *u;
	int err;

	if (comma != NULL) {
		err = mk__link_parse_mtu(a->name, comma + 1, &mtu);
		if (err != 0)
			return err;
	}
	if (n->sched->args.sandbox)
		return mk__fail(-EINVAL,
		                "net device '%s': a unix: link accepts and reconnects while "
		                "the program runs, which --sandbox forbids; use a TAP or "
		                "hub: with --sandbox",
		                a->name);
	if (plen == 0)
		return mk__fail(-EINVAL,
		                "net device '%s': unix: needs a path, e.g. "
		                "--net:%s=unix:/tmp/cable.sock",
		                a->name, a->name);
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
	if (plen >= sizeof(u->addr.sun_path)) {
		free(u);
		return mk__fail(-ENAMETOOLONG,
		                "net device '%s': the socket path '%.*s' is longer than the %zu "
		                "bytes a Unix socket address holds; use a shorter one",
		                a->name, (int)plen, spec, sizeof(u->addr.sun_path) - 1);
	}
	u->addr.sun_family = AF_UNIX;
	memcpy(u->addr.sun_path, spec, plen);
	snprintf(u->dir, sizeof(u->dir), "%s", u->addr.sun_path);
	char *slash = strrchr(u->dir, '/');
	if (slash == NULL)
		snprintf(u->dir, sizeof(u->dir), ".");
	else if (slash == u->dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	u->lsock = u->conn = -1;
	u->ep = epoll_create1(EPOLL_CLOEXEC);
	if (u->ep < 0) {
		err = -errno;
		free(u);
		return mk__fail(err, "net device '%s': epoll_create1: %s", a->name, strerror(-err));
	}
	err = attach(u);
	if (err != 0) {
		drop_conn(u);
		close(u->ep);
		free(u);
		if (err == -EEXIST)
			return mk__fail(-EEXIST,
			                "net device '%s': '%.*s' exists and is not a socket; "
			                "remove it or choose another path",
			                a->name, (int)plen, spec);
		if (err == -EADDRINUSE)
			return mk__fail(-EADDRINUSE,
			                "net device '%s': the cable '%.*s' already has two "
			                "ends",
			                a->name, (int)plen, spec);
		return mk__fail(err, "net device '%s': cannot attach to the socket '%.*s': %s",
		                a->name, (int)plen, spec, strerror(-err));
	}
	n->link = &unix_ops;
	n->link_state = u;
	n->fd = u->ep;
	n->cfg.mtu = mtu;
	return 0;
}
