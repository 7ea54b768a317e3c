/* bench-httpd-poll: the HTTP server of examples/httpd.c (the same code: this file includes it)
 * on the same lwIP, driven by a plain poll(2) loop on a TAP instead of by mkhost, so that
 * scripts/bench can show what mkhost and libmkhost-lwip cost against the simplest loop.
 *
 *   bench-httpd-poll IFACE MAC IPV4[/PREFIX] [BODY-BYTES]
 *
 * It does what libmkhost-lwip does and nothing more: lwip_init() with no tcpip thread, a netif
 * whose linkoutput writes a frame (one write(2); a chain copied first, as the glue's
 * mk_net_write_into does), frames read one by one into heap pbufs (PBUF_RAM: Debian's pool
 * buffers are too small for a whole frame) of MTU + 15 bytes, frames for other unicast addresses
 * dropped, and sys_check_timeouts() when sys_timeouts_sleeptime() says a timeout is due. Its
 * TIME_WAIT handling is the glue's own file (src/lwip/timewait.c, built into this program): a
 * newer SYN replaces an entry, and the entries are bounded at the glue's default of 4096, so the
 * runs without keep-alive compare the same TCP. lwIP's clock is Debian's sys_now
 * (CLOCK_MONOTONIC), where the glue's reads mkhost's clock: the same time with the real clock.
 *
 * It serves until it is killed, or for at most DEADLINE_S seconds. */
#define HTTPD_NO_MAIN
#include "httpd.c"

#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "benchlib.h"
#include "glue.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/timeouts.h"

#define DEADLINE_S 120
#define BATCH      64 /* frames read in a row before the timers are looked at again */

struct tap {
	int fd;
	unsigned mtu;
	uint8_t mac[6];
	uint8_t *tx; /* a chain is copied here before its write */
};

/* timewait.c reports a bad argument to mk_lwip_set_time_wait_max through this; not called. */
int lw_fail(int err, const char *fmt, ...)
{
	return err;
}

static unsigned tap_mtu(const char *iface)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	if (s < 0 || ioctl(s, SIOCGIFMTU, &ifr) != 0)
		bench_die("the MTU of %s: %s", iface, strerror(errno));
	close(s);
	return (unsigned)ifr.ifr_mtu;
}

static err_t linkoutput(struct netif *netif, struct pbuf *p)
{
	struct tap *t = netif->state;
	const void *frame = p->payload;

	if (p->next != NULL) {
		pbuf_copy_partial(p, t->tx, p->tot_len, 0);
		frame = t->tx;
	}
	/* Refused by the kernel: a frame lost on the wire, as for the glue; TCP sends it again. */
	ssize_t n = write(t->fd, frame, p->tot_len);
	return n < 0 && errno != ENOBUFS && errno != EAGAIN ? ERR_IF : ERR_OK;
}

static err_t netif_setup(struct netif *netif)
{
	struct tap *t = netif->state;

	netif->name[0] = 'p';
	netif->name[1] = 'l';
	netif->hwaddr_len = ETH_HWADDR_LEN;
	memcpy(netif->hwaddr, t->mac, ETH_HWADDR_LEN);
	netif->mtu = (u16_t)t->mtu;
	netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
	netif->output = etharp_output;
	netif->linkoutput = linkoutput;
	return ERR_OK;
}

/* Read the frames waiting on the TAP (at most BATCH) into lwIP. */
static void drain(struct tap *t, struct netif *netif)
{
	u16_t size = (u16_t)(t->mtu + 14 + 1); /* one byte more: a frame cut short shows */

	for (int i = 0; i < BATCH; i++) {
		struct pbuf *p = pbuf_alloc(PBUF_RAW, size, PBUF_RAM);
		if (p == NULL)
			return; /* out of memory: the TAP's queue keeps the frames meanwhile */
		ssize_t n = read(t->fd, p->payload, size);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			pbuf_free(p);
			return;
		}
		if (n < 0)
			bench_die("read: %s", strerror(errno));
		const uint8_t *f = p->payload;
		if (n < 14 || n >= size || ((f[0] & 1) == 0 && memcmp(f, t->mac, 6) != 0)) {
			pbuf_free(p);
			continue;
		}
		pbuf_realloc(p, (u16_t)n);
		lw_tw_before_input(f, (size_t)n);
		if (netif->input(p, netif) != ERR_OK)
			pbuf_free(p);
		lw_tw_after_input();
	}
}

int main(int argc, char **argv)
{
	struct tap t;
	struct netif netif;
	char addr[32];
	struct in_addr ip;
	unsigned prefix = 24;

	bench_prog = "bench-httpd-poll";
	bench_deadline(DEADLINE_S);
	if (argc < 4 || argc > 5)
		bench_die("usage: bench-httpd-poll IFACE MAC IPV4[/PREFIX] [BODY-BYTES]");
	if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &t.mac[0], &t.mac[1], &t.mac[2],
	           &t.mac[3], &t.mac[4], &t.mac[5]) != 6)
		bench_die("'%s' is not a MAC address: write 02:6d:6b:00:00:0a", argv[2]);
	snprintf(addr, sizeof(addr), "%s", argv[3]);
	char *slash = strchr(addr, '/');
	if (slash != NULL) {
		*slash = 0;
		prefix = (unsigned)bench_ulong(slash + 1, "prefix");
	}
	if (inet_pton(AF_INET, addr, &ip) != 1 || prefix < 1 || prefix > 30)
		bench_die("'%s' is not an IPv4 address: write A.B.C.D or A.B.C.D/PREFIX", argv[3]);
	if (argc == 5 && strspn(argv[4], "0123456789") != strlen(argv[4]))
		bench_die("the body is a size in bytes: '%s'", argv[4]);
	if (httpd_content(argc == 5 ? argv[4] : NULL) != 0)
		return 2;

	t.mtu = tap_mtu(argv[1]);
	t.fd = bench_tap_open(argv[1], 1);
	t.tx = malloc(t.mtu + 14);
	if (t.tx == NULL)
		bench_die("out of memory");

	lwip_init();
	ip4_addr_t a, m, g;
	ip4_addr_set_u32(&a, ip.s_addr);
	ip4_addr_set_u32(&m, htonl(~0u << (32 - prefix)));
	ip4_addr_set_u32(&g, 0);
	if (netif_add(&netif, &a, &m, &g, &t, netif_setup, netif_input) == NULL)
		bench_die("lwIP refused the netif");
	netif_set_default(&netif);
	netif_set_link_up(&netif);
	netif_set_up(&netif);
	if (httpd_listen() == NULL)
		bench_die("lwIP has no memory for the listener");
	printf("bench-httpd-poll: http://%s:%d/ on %s, mtu %u, serving a body of %zu bytes\n", addr,
	       PORT, argv[1], t.mtu, body_len);
	fflush(stdout);

	struct pollfd pfd = {.fd = t.fd, .events = POLLIN};
	for (;;) {
		u32_t ms = sys_timeouts_sleeptime();
		if (ms == 0) {
			sys_check_timeouts();
			continue;
		}
		int r = poll(&pfd, 1, ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE ? -1 : (int)ms);
		if (r < 0 && errno != EINTR)
			bench_die("poll: %s", strerror(errno));
		if (r > 0)
			drain(&t, &netif);
	}
}
