/* --net:NAME=slirp[,OPTIONS]: user-mode networking through libslirp, as QEMU's "-netdev user".
 *
 * The device is plugged into a virtual network 10.0.2.0/24 with QEMU's addresses: the gateway
 * 10.0.2.2 (it answers ARP, ping and DHCP, handing out 10.0.2.15 first) and a DNS forwarder
 * 10.0.2.3. Each device has a Slirp instance of its own. Frames the program writes go to
 * slirp_input; frames slirp emits are queued for the device's readers (at most SLIRP_QUEUE, more
 * are dropped and counted in rx_drops) and the readers are woken with mk__net_notify().
 *
 * Options, comma-separated after "slirp,":
 *   hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT  forward a host port to the
 *            program (repeatable, up to SLIRP_FWD_MAX). HOSTADDR defaults to 127.0.0.1 (QEMU's
 *            default is every address), GUESTADDR to the first DHCP address.
 *   net=A.B.C.D/N   the virtual network (prefix 8 to 27); gateway .2, DNS .3, DHCP from .15.
 *   mtu=N           the MTU of the device and of slirp (68 to 65521; 1500).
 *   restrict=on|off outside access (on: there is none; the default).
 *
 * Outside access. libslirp's own "restricted" mode cannot be used for "no outside access": it
 * drops every UDP datagram from the guest but DHCP and TFTP (even the replies on a UDP hostfwd),
 * and every TCP connection the guest opens, to the host's loopback too, so the program could not
 * reach a service on 127.0.0.1. So with restrict=on (the default) libslirp runs unrestricted
 * behind a filter on the one way in, the frames the program writes: ARP is let through (slirp
 * answers it), and IPv4 only when it goes to the gateway address (which slirp maps to the host's
 * 127.0.0.1: its loopback services, the replies on hostfwd connections, ping) or is a DHCP
 * request. Everything else (other addresses, DNS, which slirp would forward to the host's
 * resolver, IPv6) is refused and counted in tx_drops. Host forwarding may then listen on loopback
 * addresses only. restrict=off is QEMU's default: the program reaches whatever the host reaches.
 *
 * Slirp's sockets are watched by a library task per device ("slirp:NAME"). In a loop it asks
 * slirp for the descriptors it wants (slirp_pollfds_fill), polls them without blocking, lets
 * slirp handle what is ready (slirp_pollfds_poll) and fires due slirp timers; when nothing was
 * ready it sleeps until the earliest of slirp's own timeout and its timers, or until one of the
 * descriptors is ready. To wait on many descriptors with one request of the event loop, they are
 * mirrored into an epoll set of the device, level-triggered, and the task arms a readiness poll
 * on that set. A write from the program (slirp may have opened a socket or set a timer for it)
 * and slirp's notify wake the task too. Cost: per round, one poll(2) and one epoll_ctl(2) per
 * descriptor slirp watches (the set is re-synchronised every time, because slirp closes and
 * reopens sockets, and a descriptor number can come back as another socket); no timer ticks
 * while idle. The task ends when mk_run cancels it at shutdown.
 *
 * Not with --sandbox: slirp opens sockets while the program runs. libslirp keeps a few globals
 * (its idea of the time, the host's DNS address); devices of one thread are fine, slirp devices
 * on two threads at once are not supported. Like QEMU, opening a slirp device ignores SIGPIPE if
 * nothing else handles it, so that a host peer closing a forwarded connection cannot kill the
 * program.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#ifdef MK_HAVE_SLIRP

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#define SLIRP_QUEUE   256 /* frames from slirp waiting for the readers */
#define SLIRP_FWD_MAX 16  /* hostfwd= options per device */
#define SLIRP_MTU_MAX 65521

struct stimer {
	struct stimer *next;
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms; /* on the monotonic clock; -1 when not armed */
};

struct fwd {
	bool udp;
	bool guest_default; /* GUESTADDR was empty: the first DHCP address */
	struct in_addr host, guest;
	int host_port, guest_port;
	char text[96]; /* the option, for messages */
};

struct slink {
	mk_net *net;
	Slirp *slirp;
	bool restricted;
	struct in_addr vnet, vmask, vhost, vdhcp, vdns;
	/* frames from slirp to the program */
	uint8_t *q[SLIRP_QUEUE];
	size_t qlen[SLIRP_QUEUE];
	size_t head, len;
	/* the task that drives slirp */
	mk_task *pump;
	struct stimer *timers;
	struct pollfd *pfd; /* what slirp_pollfds_fill asked for this round */
	size_t npfd, cap_pfd;
	int *watched; /* the descriptors in the epoll set */
	size_t nwatched, cap_watched;
	int ep;
	struct mk__io ep_io;
};

static const struct mk__link_ops slirp_ops;

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static size_t frame_max(const mk_net *n)
{
	return n->cfg.mtu + MK_ETHER_HEADER;
}

static void wake_pump(struct slink *L)
{
	if (L->pump != NULL && L->pump->state == MK__PARKED)
		mk__wake(L->net->sched, L->pump, 0);
}

/* ---- callbacks from slirp ------------------------------------------------------------- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slink *L = opaque;
	mk_net *n = L->net;
	size_t i;

	if (L->len == SLIRP_QUEUE || len > frame_max(n)) {
		n->stats.rx_drops++; /* as a NIC whose ring is full; TCP retransmits */
		return (ssize_t)len;
	}
	i = (L->head + L->len) % SLIRP_QUEUE;
	if (L->q[i] == NULL && (L->q[i] = malloc(frame_max(n))) == NULL) {
		n->stats.rx_drops++;
		return (ssize_t)len;
	}
	memcpy(L->q[i], buf, len);
	L->qlen[i] = len;
	L->len++;
	mk__net_notify(n);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	/* A malformed frame from the program: slirp drops it. mk_run prints nothing at run time,
	 * and a capture (--net-pcap) shows the frame. */
	(void)msg;
	(void)opaque;
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)mk_clock_monotonic();
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct slink *L = opaque;
	struct stimer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		abort(); /* libslirp has no way to hear of a failure here (it aborts on its own) */
	t->cb = cb;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = L->timers;
	L->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slink *L = opaque;

	for (struct stimer **tp = &L->timers; *tp != NULL; tp = &(*tp)->next)
		if (*tp == timer) {
			*tp = ((struct stimer *)timer)->next;
			free(timer);
			return;
		}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	((struct stimer *)timer)->expire_ms = expire_ms;
	wake_pump(opaque); /* it may be due before the task's deadline */
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	/* Every round asks slirp for its descriptors afresh. */
	(void)fd;
	(void)opaque;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	wake_pump(opaque);
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_new = cb_timer_new,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
};

/* ---- the task that drives slirp ------------------------------------------------------- */

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct slink *L = opaque;
	short ev = 0;

	if (L->npfd == L->cap_pfd) {
		size_t cap = L->cap_pfd ? L->cap_pfd * 2 : 16;
		struct pollfd *p = realloc(L->pfd, cap * sizeof(*p));
		if (p == NULL)
			return -1; /* slirp then never asks for this index */
		L->pfd = p;
		L->cap_pfd = cap;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	L->pfd[L->npfd] = (struct pollfd){.fd = fd, .events = ev};
	return (int)L->npfd++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct slink *L = opaque;
	short re;
	int r = 0;

	if (idx < 0 || (size_t)idx >= L->npfd)
		return 0;
	re = L->pfd[idx].revents;
	if (re & POLLIN)
		r |= SLIRP_POLL_IN;
	if (re & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (re & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (re & POLLERR)
		r |= SLIRP_POLL_ERR;
	if (re & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

/* Fire the slirp timers that are due; their callbacks may change or free any timer. */
static void run_timers(struct slink *L)
{
	int64_t now_ms = (int64_t)(mk_clock_monotonic() / 1000000);
	bool fired;

	do {
		fired = false;
		for (struct stimer *t = L->timers; t != NULL; t = t->next)
			if (t->expire_ms >= 0 && t->expire_ms <= now_ms) {
				t->expire_ms = -1;
				t->cb(t->cb_opaque);
				fired = true;
				break;
			}
	} while (fired);
}

/* The monotonic time (ns) of the earliest armed slirp timer, or UINT64_MAX. */
static uint64_t next_timer(struct slink *L)
{
	uint64_t due = UINT64_MAX;

	for (struct stimer *t = L->timers; t != NULL; t = t->next)
		if (t->expire_ms >= 0 && (uint64_t)t->expire_ms * 1000000 < due)
			due = (uint64_t)t->expire_ms * 1000000;
	return due;
}

/* Make the epoll set hold exactly the descriptors of this round, with their events. */
static void sync_watched(struct slink *L)
{
	for (size_t i = 0; i < L->nwatched; i++) {
		bool keep = false;
		for (size_t j = 0; j < L->npfd && !keep; j++)
			keep = L->pfd[j].fd == L->watched[i];
		if (!keep)
			epoll_ctl(L->ep, EPOLL_CTL_DEL, L->watched[i],
			          NULL); /* may be closed: fine */
	}
	L->nwatched = 0;
	for (size_t j = 0; j < L->npfd; j++) {
		struct epoll_event ev = {.events = (uint32_t)L->pfd[j].events,
		                         .data.fd = L->pfd[j].fd};
		int fd = L->pfd[j].fd;
		if (epoll_ctl(L->ep, EPOLL_CTL_MOD, fd, &ev) != 0 &&
		    (errno != ENOENT || epoll_ctl(L->ep, EPOLL_CTL_ADD, fd, &ev) != 0))
			continue;
		if (L->nwatched == L->cap_watched) {
			size_t cap = L->cap_watched ? L->cap_watched * 2 : 16;
			int *w = realloc(L->watched, cap * sizeof(*w));
			if (w == NULL) {
				epoll_ctl(L->ep, EPOLL_CTL_DEL, fd, NULL);
				continue;
			}
			L->watched = w;
			L->cap_watched = cap;
		}
		L->watched[L->nwatched++] = fd;
	}
}

static void on_ep_ready(struct mk__io *io, int res)
{
	(void)res;
	wake_pump((struct slink *)((char *)io - offsetof(struct slink, ep_io)));
}

static intptr_t pump(void *arg)
{
	struct slink *L = arg;
	struct mk__sched *s = L->net->sched;

	for (;;) {
		uint32_t timeout_ms = UINT32_MAX;
		uint64_t now, due;
		int r;

		L->npfd = 0;
		slirp_pollfds_fill(L->slirp, &timeout_ms, cb_add_poll, L);
		r = poll(L->pfd, L->npfd, 0);
		slirp_pollfds_poll(L->slirp, r < 0, cb_get_revents, L);
		run_timers(L);
		if (r > 0) {
			/* More may be ready: look again, after the other tasks had their turn. */
			if (mk_yield() == -ECANCELED)
				return 0;
			continue;
		}
		sync_watched(L);
		if (L->nwatched > 0 && !L->ep_io.armed &&
		    s->loop.ops->poll_in(&s->loop, &L->ep_io) != 0 && timeout_ms > 10)
			timeout_ms = 10; /* the loop took no request: look again soon */
		now = mk_clock_monotonic();
		due = next_timer(L);
		if (timeout_ms != UINT32_MAX && now + (uint64_t)timeout_ms * 1000000 < due)
			due = now + (uint64_t)timeout_ms * 1000000;
		if (due == UINT64_MAX)
			r = mk__park(s);
		else
			r = due > now ? mk_sleep(due - now) : mk_yield();
		if (r == -ECANCELED)
			return 0;
	}
}

/* ---- the link ------------------------------------------------------------------------- */

/* With outside access off: may the program's frame go into slirp? See the top of the file. */
static bool frame_allowed(const struct slink *L, const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + MK_ETHER_HEADER;
	size_t iplen = len - MK_ETHER_HEADER, ihl;
	uint32_t dst;

	if (get16(f + 12) == 0x0806)
		return true; /* ARP: slirp answers it, nothing leaves */
	if (get16(f + 12) != 0x0800 || iplen < 20 || (ip[0] >> 4) != 4)
		return false;
	memcpy(&dst, ip + 16, 4);
	if (dst == L->vhost.s_addr)
		return true;
	ihl = (size_t)(ip[0] & 15) * 4;
	/* DHCP: UDP to port 67, the first fragment (the only one with the port) */
	return ip[9] == 17 && (get16(ip + 6) & 0x1fff) == 0 && ihl >= 20 && iplen >= ihl + 4 &&
	       get16(ip + ihl + 2) == 67;
}

static ssize_t slirp_link_write(mk_net *n, const uint8_t *frame, size_t len)
{
	struct slink *L = n->link_state;

	if (L->restricted && !frame_allowed(L, frame, len))
		return -EACCES; /* counted in tx_drops */
	slirp_input(L->slirp, frame, (int)len);
	wake_pump(L); /* slirp may have opened a socket or set a timer */
	return (ssize_t)len;
}

static ssize_t slirp_link_read(mk_net *n, uint8_t *dst, size_t cap)
{
	struct slink *L = n->link_state;
	size_t i = L->head, len;

	if (L->len == 0)
		return -EAGAIN;
	L->head = (L->head + 1) % SLIRP_QUEUE;
	L->len--;
	len = L->qlen[i];
	if (len > cap)
		return 0;
	memcpy(dst, L->q[i], len);
	return (ssize_t)len;
}

static void slirp_link_close(mk_net *n)
{
	struct slink *L = n->link_state;

	/* From net_open's error path the task exists and has not run: it must never run on freed
	 * state. At mk_run's teardown every task has been freed already (and mk__sched_current
	 * is NULL), so it is not touched. */
	if (L->pump != NULL && mk__sched_current == n->sched)
		mk__task_cancel(n->sched, L->pump);
	if (L->slirp != NULL)
		slirp_cleanup(L->slirp); /* closes its sockets, frees its timers */
	while (L->timers != NULL)
		cb_timer_free(L->timers, L);
	for (size_t i = 0; i < SLIRP_QUEUE; i++)
		free(L->q[i]);
	if (L->ep >= 0)
		close(L->ep);
	free(L->pfd);
	free(L->watched);
	free(L);
}

static const struct mk__link_ops slirp_ops = {
    .kind = "slirp",
    .read = slirp_link_read,
    .write = slirp_link_write,
    .close = slirp_link_close,
};

/* ---- options -------------------------------------------------------------------------- */

static int bad_option(const char *dev, const char *opt, size_t len, const char *why)
{
	return mk__fail(-EINVAL, "net device '%s': slirp option '%.*s' %s", dev, (int)len, opt,
	                why);
}

static bool parse_port(const char *s, int *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || v == 0 || v > 65535)
		return false;
	*out = (int)v;
	return true;
}

/* [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, as QEMU writes it. */
static bool parse_hostfwd(const char *v, size_t len, struct fwd *f)
{
	char buf[sizeof(f->text)], *haddr, *hport, *gaddr, *gport, *c;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, v, len);
	buf[len] = '\0';
	if ((c = strchr(buf, ':')) == NULL)
		return false;
	*c = '\0';
	haddr = c + 1;
	if (strcmp(buf, "udp") == 0)
		f->udp = true;
	else if (strcmp(buf, "tcp") != 0 && buf[0] != '\0')
		return false;
	if ((c = strchr(haddr, '-')) == NULL)
		return false;
	*c = '\0';
	gaddr = c + 1;
	if ((c = strchr(haddr, ':')) == NULL)
		return false;
	*c = '\0';
	hport = c + 1;
	if ((c = strchr(gaddr, ':')) == NULL)
		return false;
	*c = '\0';
	gport = c + 1;
	if (!parse_port(hport, &f->host_port) || !parse_port(gport, &f->guest_port))
		return false;
	if (haddr[0] == '\0')
		f->host.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, haddr, &f->host) != 1)
		return false;
	f->guest_default = gaddr[0] == '\0';
	return f->guest_default || inet_pton(AF_INET, gaddr, &f->guest) == 1;
}

/* A.B.C.D/N with N from 8 to 27 (the DHCP range starts at .15) and no host bits. */
static bool parse_net(const char *v, size_t len, struct slink *L)
{
	char buf[32], *slash, *end;
	unsigned long prefix;
	uint32_t mask;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, v, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) == NULL)
		return false;
	*slash = '\0';
	errno = 0;
	prefix = strtoul(slash + 1, &end, 10);
	if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || prefix < 8 || prefix > 27)
		return false;
	if (inet_pton(AF_INET, buf, &L->vnet) != 1)
		return false;
	mask = ~0u << (32 - prefix);
	if ((ntohl(L->vnet.s_addr) & ~mask) != 0)
		return false;
	L->vmask.s_addr = htonl(mask);
	return true;
}

static int parse_options(const char *dev, const char *opts, struct slink *L, struct fwd *fwds,
                         size_t *nfwd)
{
	const char *o = opts;

	while (o != NULL && *o != '\0') {
		const char *comma = strchr(o, ',');
		size_t len = comma ? (size_t)(comma - o) : strlen(o);
		const char *eq = memchr(o, '=', len);
		size_t klen = eq ? (size_t)(eq - o) : len;
		const char *v = eq ? eq + 1 : o + len;
		size_t vlen = len - klen - (eq ? 1 : 0);

		if (klen == 7 && strncmp(o, "hostfwd", 7) == 0) {
			struct fwd *f = &fwds[*nfwd];
			if (*nfwd == SLIRP_FWD_MAX)
				return bad_option(dev, o, len,
				                  "is one too many: at most 16 hostfwd= "
				                  "per device");
			memset(f, 0, sizeof(*f));
			if (!parse_hostfwd(v, vlen, f))
				return bad_option(
				    dev, o, len,
				    "is malformed; write hostfwd=PROTOCOL:HOSTADDR:"
				    "HOSTPORT-GUESTADDR:GUESTPORT with tcp or udp and ports "
				    "from 1 to 65535, e.g. hostfwd=tcp:127.0.0.1:8080-:80");
			snprintf(f->text, sizeof(f->text), "%.*s", (int)len, o);
			(*nfwd)++;
		} else if (klen == 3 && strncmp(o, "net", 3) == 0) {
			if (!parse_net(v, vlen, L))
				return bad_option(dev, o, len,
				                  "is not a network; write an IPv4 network with a "
				                  "prefix from 8 to 27 and no host bits, e.g. "
				                  "net=10.0.2.0/24");
		} else if (klen == 3 && strncmp(o, "mtu", 3) == 0) {
			char buf[32];
			snprintf(buf, sizeof(buf), "%.*s", (int)(len < 31 ? len : 31), o);
			int err = mk__link_parse_mtu(dev, buf, &L->net->cfg.mtu);
			if (err != 0)
				return err;
			if (L->net->cfg.mtu > SLIRP_MTU_MAX)
				return bad_option(dev, o, len,
				                  "is too large: slirp takes at most "
				                  "mtu=65521");
		} else if (klen == 8 && strncmp(o, "restrict", 8) == 0) {
			if (vlen == 2 && strncmp(v, "on", 2) == 0)
				L->restricted = true;
			else if (vlen == 3 && strncmp(v, "off", 3) == 0)
				L->restricted = false;
			else
				return bad_option(dev, o, len,
				                  "must be restrict=on (no outside "
				                  "access, the default) or restrict=off");
		} else {
			return bad_option(dev, o, len,
			                  "is unknown; the options are hostfwd=, net=, mtu= and "
			                  "restrict=, e.g. slirp,hostfwd=tcp:127.0.0.1:8080-:80");
		}
		o = comma ? comma + 1 : NULL;
	}
	return 0;
}

static struct in_addr host_of(struct in_addr net, uint32_t host)
{
	return (struct in_addr){.s_addr = htonl(ntohl(net.s_addr) | host)};
}

static int add_forwards(const char *dev, struct slink *L, struct fwd *fwds, size_t nfwd)
{
	for (size_t i = 0; i < nfwd; i++) {
		struct fwd *f = &fwds[i];
		char addr[INET_ADDRSTRLEN];
		if (f->guest_default)
			f->guest = L->vdhcp;
		if ((f->guest.s_addr & L->vmask.s_addr) != L->vnet.s_addr)
			return mk__fail(-EINVAL,
			                "net device '%s': slirp option '%s': the guest "
			                "address is not in the virtual network",
			                dev, f->text);
		if (L->restricted && (ntohl(f->host.s_addr) >> 24) != 127)
			return mk__fail(-EINVAL,
			                "net device '%s': slirp option '%s': with outside "
			                "access off, forwarded ports listen on loopback "
			                "addresses only (127.x.x.x); add restrict=off to "
			                "listen on %s",
			                dev, f->text,
			                inet_ntop(AF_INET, &f->host, addr, sizeof(addr)));
		errno = 0;
		if (slirp_add_hostfwd(L->slirp, f->udp, f->host, f->host_port, f->guest,
		                      f->guest_port) != 0) {
			int err = errno != 0 ? -errno : -EADDRINUSE;
			return mk__fail(err,
			                "net device '%s': slirp option '%s': cannot listen on "
			                "%s:%d: %s",
			                dev, f->text,
			                inet_ntop(AF_INET, &f->host, addr, sizeof(addr)),
			                f->host_port, strerror(-err));
		}
	}
	return 0;
}

int mk__slirp_link_open(mk_net *n, const struct mk__netarg *a)
{
	const char *opts = a->value + strlen("slirp");
	struct fwd fwds[SLIRP_FWD_MAX];
	size_t nfwd = 0;
	struct slink *L;
	SlirpConfig cfg;
	struct sigaction sa;
	char task_name[32];
	int err;

	if (*opts != '\0' && *opts != ',')
		return mk__tap_link_open(n, a); /* an interface whose name starts with "slirp" */
	if (n->sched->args.sandbox)
		return mk__fail(-EINVAL,
		                "net device '%s': a slirp link opens sockets while the "
		                "program runs, which --sandbox forbids; use a TAP or hub: "
		                "with --sandbox",
		                a->name);
	L = calloc(1, sizeof(*L));
	if (L == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
	L->net = n;
	L->ep = -1;
	L->restricted = true;
	inet_pton(AF_INET, "10.0.2.0", &L->vnet);
	inet_pton(AF_INET, "255.255.255.0", &L->vmask);
	n->cfg.mtu = 1500;
	n->link_state = L;
	n->link = &slirp_ops;
	err = parse_options(a->name, *opts == ',' ? opts + 1 : NULL, L, fwds, &nfwd);
	if (err != 0)
		goto fail;
	L->vhost = host_of(L->vnet, 2);
	L->vdns = host_of(L->vnet, 3);
	L->vdhcp = host_of(L->vnet, 15);
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	if (L->ep < 0) {
		err = mk__fail(-errno, "net device '%s': epoll_create1: %s", a->name,
		               strerror(errno));
		goto fail;
	}
	L->ep_io.fd = L->ep;
	L->ep_io.done = on_ep_ready;
	cfg = (SlirpConfig){
	    .version = 1,
	    .restricted = 0, /* see the top of the file: the filter in slirp_link_write instead */
	    .in_enabled = true,
	    .vnetwork = L->vnet,
	    .vnetmask = L->vmask,
	    .vhost = L->vhost,
	    .in6_enabled = false,
	    .vdhcp_start = L->vdhcp,
	    .vnameserver = L->vdns,
	    .if_mtu = n->cfg.mtu,
	    .if_mru = n->cfg.mtu,
	};
	L->slirp = slirp_new(&cfg, &slirp_callbacks, L);
	if (L->slirp == NULL) {
		err = mk__fail(-ENOMEM, "net device '%s': libslirp could not start", a->name);
		goto fail;
	}
	err = add_forwards(a->name, L, fwds, nfwd);
	if (err != 0)
		goto fail;
	snprintf(task_name, sizeof(task_name), "slirp:%s", a->name);
	err = mk__task_new(n->sched, &L->pump, task_name, pump, L);
	if (err != 0) {
		err = mk__fail(err, "net device '%s': cannot start its slirp task: %s", a->name,
		               mk_strerror(err));
		goto fail;
	}
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	n->fd = -1;
	return 0;
fail:
	slirp_link_close(n);
	n->link = NULL;
	n->link_state = NULL;
	return err;
}

#else /* built without libslirp */

int mk__slirp_link_open(mk_net *n, const struct mk__netarg *a)
{
	const char *opts = a->value + strlen("slirp");

	if (*opts != '\0' && *opts != ',')
		return mk__tap_link_open(n, a); /* an interface whose name starts with "slirp" */
	return mk__fail(-ENOTSUP,
	                "net device '%s': this build of mkhost has no libslirp, so "
	                "--net:%s=slirp is not available; install libslirp-dev "
	                "(apt-get install libslirp-dev) and build again "
	                "(meson setup --reconfigure build && ninja -C build)",
	                a->name, a->name);
}

#endif
