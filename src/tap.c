/* Attaching to TAP interfaces through /dev/net/tun, and checking descriptors handed over as @FD.
 *
 * Like Solo5's tenders: never create an interface (TUNSETIFF would create a missing one if we
 * had CAP_NET_ADMIN, so the interface is looked up first and checked again after), refuse one
 * that is down, read the MTU from the kernel, and turn the offloads off so that no frame is ever
 * larger than mtu + 14.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
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

static int ctl_socket(void)
{
	return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

/* The interface must be up; store its MTU. */
static int check_iface(const char *name, const char *iface, unsigned *mtu)
{
	struct ifreq ifr;
	int sock = ctl_socket();
	int err = 0;

	if (sock < 0)
		return mk__fail(-errno, "net device '%s': cannot query interface '%s': %s%s", name,
		                iface, strerror(errno), out_of_fds_fix(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0)
		err = mk__fail(
		    -ENODEV,
		    "net device '%s': interface '%s' does not exist; create it with: " CREATE_HINT,
		    name, iface, iface, iface);
	else if (!(ifr.ifr_flags & IFF_UP))
		err = mk__fail(-ENETDOWN,
		               "net device '%s': interface '%s' is down; bring it up with: "
		               "ip link set dev %s up",
		               name, iface, iface);
	else if (ioctl(sock, SIOCGIFMTU, &ifr) != 0)
		err = mk__fail(-errno, "net device '%s': cannot read the MTU of '%s': %s", name,
		               iface, strerror(errno));
	else
		*mtu = (unsigned)ifr.ifr_mtu;
	close(sock);
	return err;
}

static void sleep_ns(long ns)
{
	struct timespec ts = {0, ns};

	nanosleep(&ts, NULL);
}

static int set_iff(const char *name, const char *iface, int fd)
{
	struct ifreq ifr;
	long long waited = 0;

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
			return mk__fail(
			    -EBUSY,
			    "net device '%s': interface '%s' is attached by another process; "
			    "stop it or use another TAP",
			    name, iface);
		if (errno == EPERM || errno == EACCES)
			return mk__fail(
			    -EPERM,
			    "net device '%s': no permission to attach to '%s'; create it for "
			    "your user with: ip tuntap add dev %s mode tap user $USER, or run "
			    "as root",
			    name, iface, iface);
		if (errno == EINVAL)
			return mk__fail(
			    -EINVAL,
			    "net device '%s': interface '%s' is not a TAP interface; create a "
			    "TAP with: " CREATE_HINT,
			    name, iface, iface, iface);
		return mk__fail(-errno, "net device '%s': cannot attach to '%s': %s", name, iface,
		                strerror(errno));
	}
	return 0;
}

static int open_iface(const char *name, const char *iface, int *fd_out, unsigned *mtu)
{
	unsigned index;
	int fd, err;

	if (strlen(iface) >= IFNAMSIZ)
		return mk__fail(-EINVAL,
		                "net device '%s': '%s' is longer than an interface name can be",
		                name, iface);
	err = check_iface(name, iface, mtu);
	if (err != 0)
		return err;
	index = if_nametoindex(iface);
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
	if (err == 0 && if_nametoindex(iface) != index)
		err = mk__fail(-ENODEV,
		               "net device '%s': interface '%s' disappeared while attaching; "
		               "create it with: " CREATE_HINT,
		               name, iface, iface, iface);
	if (err != 0) {
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

static int check_fd(const char *name, int fd, int *fd_out, unsigned *mtu)
{
	struct ifreq ifr;
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return mk__fail(-EBADF,
		                "net device '%s': descriptor %d is not open; the parent must "
		                "pass the TAP descriptor open, without O_CLOEXEC",
		                name, fd);
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) != 0)
		return mk__fail(-EINVAL,
		                "net device '%s': descriptor %d is not a TAP descriptor; open "
		                "/dev/net/tun and attach it with TUNSETIFF first",
		                name, fd);
	if (!(ifr.ifr_flags & IFF_TAP) || !(ifr.ifr_flags & IFF_NO_PI))
		return mk__fail(-EINVAL,
		                "net device '%s': descriptor %d is attached to '%s' without "
		                "IFF_TAP | IFF_NO_PI; attach it as a TAP with no packet "
		                "information header",
		                name, fd, ifr.ifr_name);
	int err = check_iface(name, ifr.ifr_name, mtu);
	if (err != 0)
		return err;
	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
		return mk__fail(-errno,
		                "net device '%s': cannot make descriptor %d non-blocking: %s", name,
		                fd, strerror(errno));
	*fd_out = fd;
	return 0;
}

/* One frame into (dst). A frame longer than mtu + 14 would be cut short by the kernel without a
 * word (the MTU was raised after connect): one byte read beyond that shows it, and the frame is
 * dropped. */
static ssize_t tap_read(mk_net *n, uint8_t *dst, size_t cap)
{
	size_t max = n->cfg.mtu + MK_ETHER_HEADER;
	uint8_t spill;
	struct iovec iov[2] = {{dst, cap}, {&spill, 1}};

	for (;;) {
		/* read(2) copies faster than readv(2) (~50 ns a frame here), so the spill byte
		 * comes from the caller's buffer when it has one to spare. */
		ssize_t r = cap > max ? read(n->fd, dst, max + 1) : readv(n->fd, iov, 2);
		if (r >= 0)
			return (size_t)r > max ? 0 : r;
		if (errno != EINTR)
			return errno == EBADFD ? -ENODEV : -errno;
	}
}

static ssize_t tap_write(mk_net *n, const uint8_t *frame, size_t len)
{
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
	close(n->fd);
}

static const struct mk__link_ops tap_ops = {
    .kind = "tap",
    .read = tap_read,
    .write = tap_write,
    .close = tap_close,
};

int mk__tap_link_open(mk_net *n, const struct mk__netarg *a)
{
	unsigned mtu = 0;
	int fd = -1;
	int err = a->value ? open_iface(a->name, a->value, &fd, &mtu)
	                   : check_fd(a->name, a->fd, &fd, &mtu);

	if (err != 0)
		return err;
	/* Without offloads the kernel segments and checksums everything before it reaches us, so
	 * a frame is never larger than the MTU. Kernels without IFF_VNET_HDR support ignore it. */
	ioctl(fd, TUNSETOFFLOAD, 0);
	n->link = &tap_ops;
	n->fd = fd;
	n->cfg.mtu = mtu;
	return 0;
}

void mk__random_mac(uint8_t mac[6])
{
	if (getrandom(mac, 6, 0) != 6) {
		uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
		memcpy(mac, &x, 6);
	}
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
}
