/* Attaching to TAP interfaces through /dev/net/tun, and checking descriptors handed over as @FD.
 *
 * Like Solo5's tenders: never create an interface (TUNSETIFF would create a missing one if we
 * had CAP_NET_ADMIN, so the interface is looked up first and checked again after), refuse one
 * that is down, read the MTU from the kernel, and turn the offloads off so that no frame is ever
 * larger than mtu + 14.
 *
 * What an interface is comes from the kernel's rtnetlink answer (RTM_GETLINK): its index, flags,
 * MTU, and for TUN/TAP devices their type and whether frames carry a packet information or virtio
 * header. TUNGETIFF cannot tell the last: it reports IFF_NOFILTER, which is the same bit as
 * IFF_NO_PI, whenever no socket filter is attached.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* After a process that registered a TAP with io_uring exits, the kernel drops its reference
 * asynchronously: attaching fails with EBUSY for ~30 ms. Retry that long and a margin more. */
#define BUSY_RETRY_NS (200 * 1000000LL)
#define BUSY_STEP_NS  (5 * 1000000L)

#define CREATE_HINT "ip tuntap add dev %s mode tap user $USER && ip link set dev %s up"

/* The fix to name when a descriptor could not be had. */
static const char *out_of_fds_fix(int err)
{
	return err == EMFILE || err == ENFILE ? "; close descriptors or raise the limit (ulimit -n)"
	                                      : "";
}

/* ---- interface names in sentences ------------------------------------------------------ */

/* An interface name as text that can be printed and pasted: bytes other than letters, digits
 * and ._-@+= are written \xHH; (shell) adds $'...' around such a name, so that it is one word of
 * a shell command that means the same bytes. */
struct shown {
	char text[4 * IFNAMSIZ + 8];
};

static const char *show(struct shown *out, const char *iface, bool shell)
{
	bool plain = iface[0] != '\0';
	size_t k = 0;

	for (const char *p = iface; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("._-@+=", *p) == NULL)
			plain = false;
	if (plain) {
		snprintf(out->text, sizeof(out->text), "%.*s", IFNAMSIZ * 4, iface);
		return out->text;
	}
	if (shell)
		k += (size_t)snprintf(out->text + k, sizeof(out->text) - k, "$'");
	for (const char *p = iface; *p != '\0' && k + 8 < sizeof(out->text); p++) {
		unsigned char c = (unsigned char)*p;
		if (isalnum(c) || strchr("._-@+=", c) != NULL)
			out->text[k++] = (char)c;
		else
			k += (size_t)snprintf(out->text + k, sizeof(out->text) - k, "\\x%02x", c);
	}
	out->text[k] = '\0';
	if (shell)
		snprintf(out->text + k, sizeof(out->text) - k, "'");
	return out->text;
}

/* The kernel's rule (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or space. */
static int check_name(const char *name, const char *iface)
{
	struct shown sh;
	bool bad = iface[0] == '\0' || strlen(iface) >= IFNAMSIZ || strcmp(iface, ".") == 0 ||
	           strcmp(iface, "..") == 0;

	for (const char *p = iface; *p != '\0'; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p))
			bad = true;
	if (!bad)
		return 0;
	return mk__fail(
	    -EINVAL,
	    "net device '%s': '%s' cannot be an interface name (1 to 15 bytes, no "
	    "'/', ':' or spaces); give the name of a TAP interface, as ip link shows it",
	    name, show(&sh, iface, false));
}

/* ---- what the kernel says about an interface ------------------------------------------ */

struct iface_info {
	unsigned index;
	unsigned flags; /* IFF_UP, ... */
	unsigned mtu;
	char kind[16]; /* "tun" for TUN/TAP interfaces; "" for a physical one */
	int tun_type;  /* IFF_TAP or IFF_TUN; 0 when the kernel does not say (before 4.15) */
	int pi;        /* 1: frames carry a packet information header; -1 unknown */
	int vnet_hdr;  /* 1: frames carry a virtio header; -1 unknown */
};

static int route_socket(void)
{
	return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
}

static void parse_tun_data(const struct rtattr *data, struct iface_info *out)
{
	int len = (int)RTA_PAYLOAD(data);

	for (const struct rtattr *a = RTA_DATA(data); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		uint8_t v = RTA_PAYLOAD(a) >= 1 ? *(const uint8_t *)RTA_DATA(a) : 0;
		if (a->rta_type == IFLA_TUN_TYPE)
			out->tun_type = v;
		else if (a->rta_type == IFLA_TUN_PI)
			out->pi = v;
		else if (a->rta_type == IFLA_TUN_VNET_HDR)
			out->vnet_hdr = v;
	}
}

static void parse_linkinfo(const struct rtattr *info, struct iface_info *out)
{
	int len = (int)RTA_PAYLOAD(info);

	for (const struct rtattr *a = RTA_DATA(info); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_INFO_KIND)
			snprintf(out->kind, sizeof(out->kind), "%.*s", (int)RTA_PAYLOAD(a),
			         (const char *)RTA_DATA(a));
		else if (a->rta_type == IFLA_INFO_DATA && strcmp(out->kind, "tun") == 0)
			parse_tun_data(a, out);
	}
}

/* Ask the kernel about (iface) through the rtnetlink socket (sock). Returns 0, -ENODEV when there
 * is no such interface, or another negative errno value. */
static int query_iface(int sock, const char *iface, struct iface_info *out)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		char attrs[RTA_SPACE(IFNAMSIZ)];
	} req;
	size_t namelen = strlen(iface) + 1;
	struct rtattr *name = (struct rtattr *)req.attrs;
	union {
		struct nlmsghdr nh;
		char bytes[16384];
	} *ans = malloc(sizeof(*ans));
	ssize_t got;
	int err = 0;

	if (ans == NULL)
		return -ENOMEM;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi) + RTA_SPACE(namelen));
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.ifi.ifi_family = AF_UNSPEC;
	name->rta_type = IFLA_IFNAME;
	name->rta_len = (unsigned short)RTA_LENGTH(namelen);
	memcpy(RTA_DATA(name), iface, namelen);
	memset(out, 0, sizeof(*out));
	out->pi = out->vnet_hdr = -1;
	/* The kernel answers a request for one link before send() returns. */
	if (send(sock, &req, req.nh.nlmsg_len, 0) < 0 ||
	    (got = recv(sock, ans, sizeof(*ans), MSG_DONTWAIT)) < 0) {
		err = -errno;
		goto out;
	}
	if (!NLMSG_OK(&ans->nh, (unsigned)got)) {
		err = -EIO;
	} else if (ans->nh.nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(&ans->nh);
		err = e->error != 0 ? e->error : -EIO;
	} else if (ans->nh.nlmsg_type != RTM_NEWLINK) {
		err = -EIO;
	} else {
		const struct ifinfomsg *ifi = NLMSG_DATA(&ans->nh);
		int len = (int)IFLA_PAYLOAD(&ans->nh);
		out->index = (unsigned)ifi->ifi_index;
		out->flags = ifi->ifi_flags;
		for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
			if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= 4)
				memcpy(&out->mtu, RTA_DATA(a), 4);
			else if (a->rta_type == IFLA_LINKINFO)
				parse_linkinfo(a, out);
		}
	}
out:
	free(ans);
	return err;
}

/* A name "tapN" that no interface has yet, for the fix of a sentence. */
static void free_tap_name(int sock, char name[IFNAMSIZ])
{
	struct iface_info info;

	for (int i = 0; i < 100; i++) {
		snprintf(name, IFNAMSIZ, "tap%d", i);
		if (query_iface(sock, name, &info) == -ENODEV)
			return;
	}
	snprintf(name, IFNAMSIZ, "mktap0");
}

static int query_error(const char *name, const char *iface, int err)
{
	struct shown sh, cmd;

	show(&cmd, iface, true);
	if (err == -ENODEV)
		return mk__fail(
		    -ENODEV,
		    "net device '%s': interface '%s' does not exist; create it with: " CREATE_HINT,
		    name, show(&sh, iface, false), cmd.text, cmd.text);
	return mk__fail(err, "net device '%s': cannot query interface '%s': %s%s", name,
	                show(&sh, iface, false), strerror(-err), out_of_fds_fix(-err));
}

/* The interface (iface) must exist, be a TAP, and be up; store its index and MTU. (sock) is an
 * rtnetlink socket. */
static int check_iface(int sock, const char *name, const char *iface, struct iface_info *info)
{
	struct shown sh, cmd;
	int err = query_iface(sock, iface, info);

	if (err != 0)
		return query_error(name, iface, err);
	show(&sh, iface, false);
	show(&cmd, iface, true);
	if (strcmp(info->kind, "tun") != 0 || info->tun_type == IFF_TUN) {
		char other[IFNAMSIZ], what[48];
		free_tap_name(sock, other);
		if (info->kind[0] == '\0')
			snprintf(what, sizeof(what), "a physical or loopback interface");
		else if (strcmp(info->kind, "tun") == 0)
			snprintf(what, sizeof(what), "a TUN, which carries IP packets");
		else
			snprintf(what, sizeof(what), "a %s interface", info->kind);
		return mk__fail(
		    -EINVAL,
		    "net device '%s': interface '%s' is not a TAP interface (it is %s); "
		    "give a TAP instead, e.g. create one with: " CREATE_HINT
		    ", and start with --net:%s=%s",
		    name, sh.text, what, other, other, name, other);
	}
	if (!(info->flags & IFF_UP))
		return mk__fail(-ENETDOWN,
		                "net device '%s': interface '%s' is down; bring it up with: "
		                "ip link set dev %s up",
		                name, sh.text, cmd.text);
	return 0;
}

/* The net device of this program whose TAP descriptor is (fd), or is attached to (iface). */
static const mk_net *tap_user(const mk_net *self, int fd, const char *iface);

static void sleep_ns(long ns)
{
	struct timespec ts = {0, ns};

	nanosleep(&ts, NULL);
}

static int set_iff(const char *name, const char *iface, int fd)
{
	struct ifreq ifr;
	struct shown sh, cmd;
	long long waited = 0;

	show(&sh, iface, false);
	show(&cmd, iface, true);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	while (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		if (errno == EBUSY && waited < BUSY_RETRY_NS) {
			sleep_ns(BUSY_STEP_NS);
			waited += BUSY_STEP_NS;
			continue;
		}
		if (errno == EBUSY)
			return mk__fail(-EBUSY,
			                "net device '%s': interface '%s' is attached by another "
			                "process (or another mk_run of this one); stop it or use "
			                "another TAP",
			                name, sh.text);
		if (errno == EPERM || errno == EACCES)
			return mk__fail(
			    -EPERM,
			    "net device '%s': no permission to attach to '%s'; create it for "
			    "your user with: ip tuntap add dev %s mode tap user $USER, or run "
			    "as root",
			    name, sh.text, cmd.text);
		if (errno == EINVAL)
			return mk__fail(
			    -EINVAL,
			    "net device '%s': interface '%s' is not a TAP interface; "
			    "give a TAP interface, made with ip tuntap add ... mode tap",
			    name, sh.text);
		return mk__fail(-errno, "net device '%s': cannot attach to '%s': %s", name, sh.text,
		                strerror(errno));
	}
	return 0;
}

static int in_use_error(const char *name, const char *iface, const mk_net *other)
{
	struct shown sh;

	return mk__fail(-EBUSY,
	                "net device '%s': interface '%s' is already net device '%s' of this "
	                "program; give each device a TAP of its own",
	                name, show(&sh, iface, false), other->name);
}

static int attach_iface(const mk_net *n, int sock, const char *iface, int *fd_out, unsigned *mtu)
{
	const char *name = n->name;
	struct iface_info info, again;
	const mk_net *other;
	struct shown sh, cmd;
	int fd, err;

	err = check_iface(sock, name, iface, &info);
	if (err != 0)
		return err;
	other = tap_user(n, -1, iface);
	if (other != NULL)
		return in_use_error(name, iface, other);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENOENT)
			return mk__fail(-ENODEV,
			                "net device '%s': /dev/net/tun is missing; load the tun "
			                "module (modprobe tun)",
			                name);
		if (err == -EMFILE || err == -ENFILE)
			return mk__fail(err, "net device '%s': cannot open /dev/net/tun: %s%s",
			                name, strerror(-err), out_of_fds_fix(-err));
		return mk__fail(-EACCES,
		                "net device '%s': cannot open /dev/net/tun: %s; run as root, "
		                "or hand the program an open TAP with --net:%s=@FD",
		                name, strerror(-err), name);
	}
	err = set_iff(name, iface, fd);
	if (err == 0) {
		/* Had it been deleted meanwhile, TUNSETIFF made a new one: same name, new index. */
		int q = query_iface(sock, iface, &again);
		show(&sh, iface, false);
		show(&cmd, iface, true);
		if (q == -ENODEV || (q == 0 && again.index != info.index))
			err =
			    mk__fail(-ENODEV,
			             "net device '%s': interface '%s' disappeared while attaching; "
			             "create it with: " CREATE_HINT,
			             name, sh.text, cmd.text, cmd.text);
		else if (q != 0)
			err = query_error(name, iface, q);
	}
	if (err != 0) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	*mtu = info.mtu;
	return 0;
}

static int open_iface(const mk_net *n, const char *iface, int *fd_out, unsigned *mtu)
{
	int err = check_name(n->name, iface);
	int sock;

	if (err != 0)
		return err;
	sock = route_socket();
	if (sock < 0)
		return query_error(n->name, iface, -errno);
	err = attach_iface(n, sock, iface, fd_out, mtu);
	close(sock);
	return err;
}

static int check_fd(const mk_net *n, int fd, int *fd_out, unsigned *mtu)
{
	const char *name = n->name;
	struct iface_info info;
	struct ifreq ifr;
	struct shown sh;
	const mk_net *other;
	int flags = fcntl(fd, F_GETFL);
	int sock, err;

	if (flags < 0)
		return mk__fail(-EBADF,
		                "net device '%s': descriptor %d is not open; the parent must "
		                "pass the TAP descriptor open, without O_CLOEXEC",
		                name, fd);
	other = tap_user(n, fd, NULL);
	if (other != NULL)
		return mk__fail(-EBUSY,
		                "net device '%s': descriptor %d is already net device '%s' of this "
		                "program; give each device a TAP descriptor of its own",
		                name, fd, other->name);
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) != 0)
		return mk__fail(-EINVAL,
		                "net device '%s': descriptor %d is not a TAP descriptor; open "
		                "/dev/net/tun and attach it with TUNSETIFF first",
		                name, fd);
	show(&sh, ifr.ifr_name, false);
	if (!(ifr.ifr_flags & IFF_TAP))
		return mk__fail(
		    -EINVAL,
		    "net device '%s': descriptor %d is attached to '%s', which is not a "
		    "TAP (it carries IP packets); attach it with IFF_TAP | IFF_NO_PI",
		    name, fd, sh.text);
	/* A copy (dup) of another device's descriptor, or another queue of its interface. */
	other = tap_user(n, -1, ifr.ifr_name);
	if (other != NULL)
		return mk__fail(-EBUSY,
		                "net device '%s': descriptor %d is attached to '%s', which net "
		                "device '%s' of this program already uses; give each device a TAP "
		                "of its own",
		                name, fd, sh.text, other->name);
	sock = route_socket();
	if (sock < 0)
		return query_error(name, ifr.ifr_name, -errno);
	err = check_iface(sock, name, ifr.ifr_name, &info);
	close(sock);
	if (err != 0)
		return err;
	if (info.pi == 1 || info.vnet_hdr == 1 || (ifr.ifr_flags & IFF_VNET_HDR))
		return mk__fail(-EINVAL,
		                "net device '%s': descriptor %d is attached to '%s' with %s: every "
		                "frame would carry a %d-byte header; attach it with IFF_TAP | "
		                "IFF_NO_PI and nothing else",
		                name, fd, sh.text,
		                info.pi == 1 ? "a packet information header (no IFF_NO_PI)"
		                             : "IFF_VNET_HDR",
		                info.pi == 1 ? 4 : 10);
	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return mk__fail(-errno,
		                "net device '%s': cannot make descriptor %d non-blocking: %s", name,
		                fd, strerror(errno));
	*fd_out = fd;
	*mtu = info.mtu;
	return 0;
}

/* ---- reading and writing through io_uring ----------------------------------------------
 *
 * With the io_uring backend and MKHOST_URING_RX=ring, a TAP is read by one multishot read into a
 * ring of buffers the kernel fills by itself (Linux 6.7+; loop.h's rx_*): frames arrive many per system call and wait here,
 * in the order the kernel gave them, for the readers. Once the ring is armed every frame comes
 * through it, never by read(2), so no frame can overtake another. Where the kernel has no
 * multishot read, readiness is a single-shot poll and each frame one read(2), as with epoll.
 *
 * With --tx-batch=N (mk_config.tx_batch), writes are copied into one of N slots and queued
 * (loop.h's send): they go to the kernel with the scheduler's next wait, when the task suspends
 * or yields, or when the slots run out, many in one system call. The kernel takes a frame
 * written to a TAP at once, so the slot is free again after that system call. Without it, each
 * write is one write(2), done when the call returns. */

#define RX_RING_BYTES (256 * 1024) /* the receive buffers of one device, about */
#define RX_MIN 16
#define RX_MAX 128

struct tap_tx {
	struct mk__io io; /* first: the completion gives it back */
	mk_net *n;
	struct tap_tx *next_free;
	size_t len;
	uint8_t *buf;
};

struct tap {
	/* receiving */
	bool rx_ring;   /* frames come through the ring from now on */
	bool rx_noring; /* the loop has no ring to offer: poll and read(2) */
	struct mk__rxbufs bufs;
	uint32_t *ready; /* frames received, oldest first: buffer id << 16 | length */
	unsigned ready_head, ready_len;
	int rx_err; /* the multishot read failed: told to the next reader */
	/* writing */
	struct tap_tx *tx; /* tx_batch slots, allocated at the first write */
	struct tap_tx *tx_free;
	unsigned tx_busy;  /* queued or in the kernel */
	bool tx_noqueue;   /* the loop cannot queue writes: write(2) each */
};

static const struct mk__link_ops tap_ops;

static struct tap *tap_of(const mk_net *n)
{
	return n->link_state;
}

static struct mk__loop *loop_of(const mk_net *n)
{
	return &n->sched->loop;
}

static void on_ring(struct mk__io *io, int res)
{
	mk_net *n = (mk_net *)((char *)io - offsetof(struct mk_net, poll));
	struct tap *t = tap_of(n);

	if (mk__io_has_buffer(io)) {
		unsigned id = mk__io_buffer(io);
		if (res >= 0 && t->ready_len < t->bufs.count) {
			unsigned slot = (t->ready_head + t->ready_len++) & (t->bufs.count - 1);
			t->ready[slot] = (uint32_t)id << 16 | (uint32_t)res;
		} else {
			loop_of(n)->ops->rx_recycle(&t->bufs, id);
		}
	} else if (res < 0 && res != -ENOBUFS && res != -ECANCELED && res != -EINTR &&
	           res != -EAGAIN) {
		t->rx_err = res; /* the read ended: the next reader hears why */
	}
	mk__net_notify(n);
}

/* Set up the ring at the first wait: a device only written to never has one. */
static int ring_open(mk_net *n, struct tap *t)
{
	struct mk__loop *l = loop_of(n);
	size_t size = n->cfg.mtu + MK_ETHER_HEADER + 1; /* + 1: a longer frame shows */
	unsigned count = RX_MIN;

	while (count < RX_MAX && (size_t)count * 2 * size <= RX_RING_BYTES)
		count *= 2;
	if (l->ops->rx_open == NULL || l->ops->rx_open(l, &t->bufs, count, size) != 0) {
		t->rx_noring = true; /* no ring (kernel before 6.7, or no memory): poll and read */
		return 0;
	}
	t->ready = calloc(count, sizeof(*t->ready));
	if (t->ready == NULL) {
		l->ops->rx_close(l, &t->bufs);
		t->rx_noring = true;
		return 0;
	}
	t->rx_ring = true;
	n->poll.done = on_ring;
	return 0;
}

static int tap_arm(mk_net *n)
{
	struct tap *t = tap_of(n);
	struct mk__loop *l = loop_of(n);

	if (!t->rx_ring && !t->rx_noring)
		ring_open(n, t);
	if (t->rx_ring)
		return l->ops->rx_arm(l, &n->poll, &t->bufs);
	return l->ops->poll_in(l, &n->poll);
}

bool mk__tap_rx_ring(const mk_net *n)
{
	return n->link == &tap_ops && tap_of(n)->rx_ring;
}

static bool tap_queued(const mk_net *n)
{
	return tap_of(n)->ready_len > 0;
}

/* The oldest frame the ring received, into (dst). */
static ssize_t ring_read(mk_net *n, struct tap *t, uint8_t *dst)
{
	struct mk__loop *l = loop_of(n);
	size_t max = n->cfg.mtu + MK_ETHER_HEADER;

	if (t->ready_len == 0) {
		if (t->rx_err != 0) {
			int err = t->rx_err; /* the read ended: say why, and go again next time */
			t->rx_err = 0;
			return err == -EBADFD ? -ENODEV : err;
		}
		/* Frames the kernel has for us are fetched now, one system call for all of them:
		 * those waiting to be posted (due), or, when the read is not armed (the first read,
		 * or every buffer was taken and is back now), those the new read takes at once. */
		bool fetch = l->ops->due(l);
		if (!n->poll.armed) {
			int err = l->ops->rx_arm(l, &n->poll, &t->bufs);
			if (err != 0)
				return err;
			fetch = true;
		}
		if (fetch) {
			int err = l->ops->wait(l, 0);
			if (err < 0)
				return err;
		}
		if (t->ready_len == 0)
			return -EAGAIN;
	}
	uint32_t e = t->ready[t->ready_head];
	unsigned id = e >> 16;
	size_t len = e & 0xffff;
	t->ready_head = (t->ready_head + 1) & (t->bufs.count - 1);
	t->ready_len--;
	ssize_t r = len > max ? 0 : (ssize_t)len; /* longer than mtu + 14: dropped */
	if (r > 0)
		memcpy(dst, mk__rxbufs_at(&t->bufs, id), len);
	l->ops->rx_recycle(&t->bufs, id);
	return r;
}

static void on_sent(struct mk__io *io, int res)
{
	struct tap_tx *x = (struct tap_tx *)io;
	mk_net *n = x->n;
	struct tap *t = tap_of(n);

	if (res != (int)x->len) {
		/* Counted as sent when it was queued; the kernel refused it. */
		n->stats.tx_drops++;
		if (n->stats.tx_frames > 0) {
			n->stats.tx_frames--;
			n->stats.tx_bytes -= x->len;
		}
	}
	x->next_free = t->tx_free;
	t->tx_free = x;
	t->tx_busy--;
}

static bool tx_setup(mk_net *n, struct tap *t)
{
	size_t max = n->cfg.mtu + MK_ETHER_HEADER;
	unsigned slots = n->sched->tx_batch;
	uint8_t *mem;

	if (slots == 0 || loop_of(n)->ops->send == NULL) {
		t->tx_noqueue = true;
		return false;
	}
	t->tx = calloc(slots, sizeof(*t->tx));
	mem = malloc(slots * max);
	if (t->tx == NULL || mem == NULL) {
		free(t->tx);
		free(mem);
		t->tx = NULL;
		t->tx_noqueue = true; /* write(2) each, as without io_uring */
		return false;
	}
	for (unsigned i = 0; i < slots; i++) {
		t->tx[i].io.fd = n->fd;
		t->tx[i].io.done = on_sent;
		t->tx[i].n = n;
		t->tx[i].buf = mem + i * max;
		t->tx[i].next_free = i + 1 < slots ? &t->tx[i + 1] : NULL;
	}
	t->tx_free = &t->tx[0];
	return true;
}

/* Queue the frame; false when it must be written at once instead. */
static bool tx_queue(mk_net *n, struct tap *t, const uint8_t *frame, size_t len)
{
	struct mk__loop *l = loop_of(n);
	struct tap_tx *x;

	if (t->tx_noqueue || (t->tx == NULL && !tx_setup(n, t)))
		return false;
	if (t->tx_free == NULL && l->ops->wait(l, 0) < 0)
		return false;
	x = t->tx_free;
	if (x == NULL)
		return false; /* every slot still in the kernel: write(2), after them */
	memcpy(x->buf, frame, len);
	x->len = len;
	if (l->ops->send(l, &x->io, x->buf, len) != 0)
		return false;
	t->tx_free = x->next_free;
	t->tx_busy++;
	return true;
}

static void tap_flush(mk_net *n)
{
	struct tap *t = tap_of(n);

	if (t->tx_busy > 0)
		loop_of(n)->ops->wait(loop_of(n), 0);
}

/* One frame into (dst). A frame longer than mtu + 14 would be cut short by the kernel without a
 * word (the MTU was raised after connect): one byte read beyond that shows it, and the frame is
 * dropped. */
static ssize_t tap_read(mk_net *n, uint8_t *dst, size_t cap)
{
	size_t max = n->cfg.mtu + MK_ETHER_HEADER;
	struct tap *t = tap_of(n);
	uint8_t spill;

	if (__builtin_expect(!t->rx_noring, 0)) {
		if (!t->rx_ring)
			ring_open(n, t);
		if (t->rx_ring)
			return ring_read(n, t, dst);
	}
	/* io_uring: a readiness poll is armed (a read found the TAP empty) and the kernel has
	 * flagged nothing since: a frame's arrival fires the poll, which the kernel flags at once
	 * (due), before the poll is dispatched. So the TAP is still empty: say so without a
	 * read(2). This spares the failing read(2)s of a program that polls while a task of its
	 * own waits on the device (the Solo5 layer). epoll cannot tell without a system call. */
	if (n->poll.armed && loop_of(n)->ops->due != NULL && !loop_of(n)->ops->due(loop_of(n)))
		return -EAGAIN;
	for (;;) {
		/* read(2) copies faster than readv(2) (~50 ns a frame here), so the spill byte
		 * comes from the caller's buffer when it has one to spare. */
		ssize_t r;
		if (cap > max) {
			r = read(n->fd, dst, max + 1);
		} else {
			struct iovec iov[2] = {{dst, cap}, {&spill, 1}};
			r = readv(n->fd, iov, 2);
		}
		if (r >= 0)
			return (size_t)r > max ? 0 : r;
		if (errno != EINTR)
			return errno == EBADFD ? -ENODEV : -errno;
	}
}

static ssize_t tap_write(mk_net *n, const uint8_t *frame, size_t len)
{
	if (tx_queue(n, tap_of(n), frame, len))
		return (ssize_t)len;
	for (;;) {
		ssize_t w = write(n->fd, frame, len);
		if (w >= 0)
			return (size_t)w == len ? w : -EIO;
		if (errno != EINTR)
			return -errno;
	}
}

static void tap_close(mk_net *n)
{
	struct tap *t = tap_of(n);

	close(n->fd);
	if (t == NULL)
		return;
	/* The ring is gone by now (mk_run ends it first), its reads cancelled and its writes
	 * done: the buffers are ours again. */
	if (t->rx_ring)
		loop_of(n)->ops->rx_close(loop_of(n), &t->bufs);
	free(t->ready);
	if (t->tx != NULL)
		free(t->tx[0].buf);
	free(t->tx);
	free(t);
	n->link_state = NULL;
}

static const struct mk__link_ops tap_ops = {
    .kind = "tap",
    .read = tap_read,
    .write = tap_write,
    .close = tap_close,
    .arm = tap_arm,
    .queued = tap_queued,
    .flush = tap_flush,
};

static const mk_net *tap_user(const mk_net *self, int fd, const char *iface)
{
	for (const mk_net *m = self->sched->nets; m != NULL; m = m->next) {
		struct ifreq ifr;
		if (m == self || m->link != &tap_ops)
			continue;
		if (fd >= 0 && m->fd == fd)
			return m;
		memset(&ifr, 0, sizeof(ifr));
		if (iface != NULL && ioctl(m->fd, TUNGETIFF, &ifr) == 0 &&
		    strcmp(ifr.ifr_name, iface) == 0)
			return m;
	}
	return NULL;
}

int mk__tap_link_open(mk_net *n, const struct mk__netarg *a)
{
	unsigned mtu = 0;
	int fd = -1;
	int err = a->value ? open_iface(n, a->value, &fd, &mtu) : check_fd(n, a->fd, &fd, &mtu);

	if (err != 0)
		return err;
	/* Without offloads the kernel segments and checksums everything before it reaches us, so
	 * a frame is never larger than the MTU. Kernels without IFF_VNET_HDR support ignore it. */
	ioctl(fd, TUNSETOFFLOAD, 0);
	n->link_state = calloc(1, sizeof(struct tap));
	if (n->link_state == NULL) {
		close(fd);
		return mk__fail(-ENOMEM, "net device '%s': out of memory", n->name);
	}
	n->link = &tap_ops;
	n->fd = fd;
	n->cfg.mtu = mtu;
	/* With --sandbox the loop is sealed before the first read: set the ring up now. */
	if (n->sched->args.sandbox)
		ring_open(n, tap_of(n));
	return 0;
}
