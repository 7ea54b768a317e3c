#include "endpoint.h"

#include <errno.h>
#include <liburing.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchlib.h"
#include "mkhost.h"

#define WRITE_TAG ((uint64_t)1 << 32)

struct ep {
	enum ep_impl impl;
	const char *iface;
	size_t frame_max;
	uint8_t mac[6];
	int refused; /* frames the kernel refused since the last ep_flush */
	/* mkhost */
	mk_net *net;
	uint8_t *rxbuf;
	/* read, epoll, uring */
	int fd;
	int epfd;
	/* uring */
	struct io_uring ring;
	uint8_t *bufs[EP_URING_DEPTH];
	int depth; /* reads kept in flight */
	bool reads_armed;
	int rearm;                 /* the read buffer handed out last, re-armed on the next call */
	int ready[EP_URING_DEPTH]; /* completed reads not yet handed out: buffer index */
	int ready_res[EP_URING_DEPTH];
	unsigned ready_head, ready_len;
	unsigned writes_queued;      /* prepared, not yet submitted */
	unsigned writes_outstanding; /* submitted or queued, not yet completed */
};

static const char *const impl_names[] = {"mkhost",       "read",              "epoll",        "uring",
                                         "mkhost-batch", "mkhost-busypoll50", "mkhost-rxring"};

enum ep_impl ep_impl_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(impl_names) / sizeof(impl_names[0]); i++)
		if (strcmp(name, impl_names[i]) == 0)
			return (enum ep_impl)i;
	bench_die("unknown implementation '%s' (mkhost, mkhost-batch, mkhost-busypoll50, "
	          "mkhost-rxring, read, epoll or uring)",
	          name);
}

const char *ep_impl_name(enum ep_impl impl)
{
	return impl_names[impl];
}

const uint8_t *ep_mac(const struct ep *e)
{
	return e->mac;
}

size_t ep_frame_max(const struct ep *e)
{
	return e->frame_max;
}

static unsigned iface_mtu(const char *iface)
{
	struct ifreq ifr;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	if (sock < 0 || ioctl(sock, SIOCGIFMTU, &ifr) != 0)
		bench_die("read the MTU of %s: %s", iface, strerror(errno));
	close(sock);
	return (unsigned)ifr.ifr_mtu;
}

/* ---- uring -------------------------------------------------------------------------------- */

static struct io_uring_sqe *uring_sqe(struct ep *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

	if (sqe == NULL) {
		io_uring_submit(&e->ring);
		e->writes_queued = 0;
		sqe = io_uring_get_sqe(&e->ring);
	}
	if (sqe == NULL)
		bench_die("io_uring submission queue full");
	return sqe;
}

static void uring_arm_read(struct ep *e, int idx)
{
	struct io_uring_sqe *sqe = uring_sqe(e);

	io_uring_prep_read(sqe, e->fd, e->bufs[idx], (unsigned)e->frame_max, (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, (uint64_t)idx);
}

static void uring_complete(struct ep *e, struct io_uring_cqe *cqe)
{
	uint64_t tag = io_uring_cqe_get_data64(cqe);

	if (tag & WRITE_TAG) {
		e->writes_outstanding--;
		if (cqe->res != (int)(tag & 0xffffffffu))
			e->refused++;
	} else {
		unsigned slot = (e->ready_head + e->ready_len) % EP_URING_DEPTH;
		e->ready[slot] = (int)tag;
		e->ready_res[slot] = cqe->res;
		e->ready_len++;
	}
	io_uring_cqe_seen(&e->ring, cqe);
}

static void uring_reap(struct ep *e)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&e->ring, &cqe) == 0)
		uring_complete(e, cqe);
}

static ssize_t uring_recv(struct ep *e, uint8_t **frame)
{
	if (!e->reads_armed) {
		for (int i = 0; i < e->depth; i++)
			uring_arm_read(e, i);
		e->reads_armed = true;
	}
	if (e->rearm >= 0) {
		uring_arm_read(e, e->rearm);
		e->rearm = -1;
	}
	for (;;) {
		/* Queued writes go to the kernel before a frame is handed out: the caller may
		 * reuse the buffer a write points at as soon as this returns. */
		if (e->ready_len == 0 || e->writes_queued > 0) {
			int err = io_uring_submit_and_wait(&e->ring, e->ready_len == 0 ? 1 : 0);
			if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY)
				return err;
			e->writes_queued = 0;
		}
		uring_reap(e);
		if (e->ready_len == 0)
			continue;
		int idx = e->ready[e->ready_head];
		int res = e->ready_res[e->ready_head];
		e->ready_head = (e->ready_head + 1) % EP_URING_DEPTH;
		e->ready_len--;
		if (res == -EAGAIN || res == -EINTR || res == -ECANCELED) {
			uring_arm_read(e, idx);
			continue;
		}
		if (res < 0)
			return res;
		e->rearm = idx;
		*frame = e->bufs[idx];
		return res;
	}
}

static int uring_flush(struct ep *e)
{
	while (e->writes_outstanding > 0) {
		int err = io_uring_submit_and_wait(&e->ring, 1);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY)
			bench_die("io_uring_submit_and_wait: %s", strerror(-err));
		e->writes_queued = 0;
		uring_reap(e);
	}
	return 0;
}

static int uring_send(struct ep *e, const uint8_t *frame, size_t len)
{
	struct io_uring_sqe *sqe = uring_sqe(e);

	io_uring_prep_write(sqe, e->fd, frame, (unsigned)len, (uint64_t)-1);
	io_uring_sqe_set_data64(sqe, WRITE_TAG | len);
	e->writes_queued++;
	e->writes_outstanding++;
	if (e->writes_outstanding >= EP_URING_BATCH)
		uring_flush(e);
	return 0;
}

static int uring_setup(struct ep *e)
{
	/* The same set-up flags as mkhost's own ring: one issuer, task work run at our next
	 * system call rather than by interrupting us. */
	int err = io_uring_queue_init(4 * EP_URING_DEPTH + 2 * EP_URING_BATCH, &e->ring,
	                              IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN);
	if (err == -EINVAL)
		err = io_uring_queue_init(4 * EP_URING_DEPTH + 2 * EP_URING_BATCH, &e->ring, 0);
	if (err < 0)
		bench_die("io_uring_queue_init: %s", strerror(-err));
	for (int i = 0; i < EP_URING_DEPTH; i++) {
		e->bufs[i] = malloc(e->frame_max);
		if (e->bufs[i] == NULL)
			bench_die("out of memory");
	}
	e->rearm = -1;
	const char *depth = getenv("MKBENCH_URING_DEPTH");
	e->depth = depth ? (int)bench_ulong(depth, "MKBENCH_URING_DEPTH") : EP_URING_DEPTH;
	if (e->depth < 1 || e->depth > EP_URING_DEPTH)
		bench_die("MKBENCH_URING_DEPTH must be 1..%d", EP_URING_DEPTH);
	return 0;
}

/* ---- read and epoll ------------------------------------------------------------------------ */

static ssize_t fd_recv(struct ep *e, uint8_t **frame)
{
	for (;;) {
		ssize_t n = read(e->fd, e->rxbuf, e->frame_max);
		if (n >= 0) {
			*frame = e->rxbuf;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		struct epoll_event ev;
		if (epoll_wait(e->epfd, &ev, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

static int fd_send(struct ep *e, const uint8_t *frame, size_t len)
{
	for (;;) {
		ssize_t n = write(e->fd, frame, len);
		if (n == (ssize_t)len)
			return 0;
		if (n >= 0) {
			e->refused++;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			e->refused++;
			return 0;
		}
		struct pollfd p = {.fd = e->fd, .events = POLLOUT};
		poll(&p, 1, -1);
	}
}

/* ---- mkhost -------------------------------------------------------------------------------- */

struct mk_call {
	struct ep *e;
	int (*body)(struct ep *e, void *arg);
	void *arg;
};

static int mk_main(int argc, char **argv, void *p)
{
	struct mk_call *c = p;
	struct mk_net_config cfg;

	(void)argc, (void)argv;
	if (mk_net_connect("bench", &c->e->net, &cfg) != 0)
		bench_die("%s", mk_last_error());
	memcpy(c->e->mac, cfg.mac, 6);
	c->e->frame_max = cfg.mtu + MK_ETHER_HEADER;
	c->e->rxbuf = malloc(c->e->frame_max + 1); /* + 1: mkhost's faster read, see mkhost.h */
	if (c->e->rxbuf == NULL)
		bench_die("out of memory");
	return c->body(c->e, c->arg);
}

/* ---- the three calls ----------------------------------------------------------------------- */

ssize_t ep_recv(struct ep *e, uint8_t **frame)
{
	switch (e->impl) {
	case EP_MKHOST: {
		ssize_t n =
		    mk_net_read_bigstring(e->net, e->rxbuf, e->frame_max + 1, 0, e->frame_max + 1);
		*frame = e->rxbuf;
		return n;
	}
	case EP_URING:
		return uring_recv(e, frame);
	default:
		return fd_recv(e, frame);
	}
}

int ep_send(struct ep *e, const uint8_t *frame, size_t len)
{
	switch (e->impl) {
	case EP_MKHOST: {
		ssize_t n = mk_net_write_bigstring(e->net, frame, len, 0, len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			e->refused++;
		return 0;
	}
	case EP_URING:
		return uring_send(e, frame, len);
	default:
		return fd_send(e, frame, len);
	}
}

int ep_flush(struct ep *e)
{
	int refused;

	if (e->impl == EP_URING)
		uring_flush(e);
	refused = e->refused;
	e->refused = 0;
	return refused;
}

int ep_run(enum ep_impl impl, const char *iface, unsigned busy_poll_us,
           int (*body)(struct ep *e, void *arg), void *arg)
{
	struct ep *e = calloc(1, sizeof(*e));

	if (e == NULL)
		bench_die("out of memory");
	unsigned tx_batch = impl == EP_MKHOST_BATCH ? 64 : 0;

	if (impl == EP_MKHOST_BUSYPOLL && busy_poll_us == 0)
		busy_poll_us = 50;
	if (impl == EP_MKHOST_RXRING && setenv("MKHOST_URING_RX", "ring", 1) != 0)
		bench_die("setenv: %s", strerror(errno));
	if (impl == EP_MKHOST_BATCH || impl == EP_MKHOST_BUSYPOLL || impl == EP_MKHOST_RXRING)
		impl = EP_MKHOST;
	e->impl = impl;
	e->iface = iface;
	e->fd = e->epfd = -1;
	if (impl == EP_MKHOST) {
		/* A fixed MAC, the one the baselines use, so that neighbour and bridge tables stay
		 * right from one run to the next. */
		char arg0[] = "bench", dev[128], mac[] = "--net-mac:bench=02:6d:6b:00:00:0a";
		snprintf(dev, sizeof(dev), "--net:bench=%s", iface);
		char *argv[] = {arg0, dev, mac, NULL};
		struct mk_config cfg = {.busy_poll_us = busy_poll_us, .tx_batch = tx_batch};
		struct mk_call call = {e, body, arg};
		int rc = mk_run_config(&cfg, 3, argv, mk_main, &call);
		if (rc < 0)
			bench_die("mk_run: %s", mk_strerror(rc));
		return rc;
	}
	memcpy(e->mac, bench_mac_a, 6);
	e->frame_max = iface_mtu(iface) + 14;
	e->fd = bench_tap_open(iface, impl != EP_READ);
	if (impl == EP_URING) {
		uring_setup(e);
	} else {
		e->rxbuf = malloc(e->frame_max);
		if (e->rxbuf == NULL)
			bench_die("out of memory");
	}
	if (impl == EP_EPOLL) {
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = e->fd};
		e->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (e->epfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->fd, &ev) != 0)
			bench_die("epoll: %s", strerror(errno));
	}
	return body(e, arg);
}
