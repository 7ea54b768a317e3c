/* --net:NAME=slirp: user-mode networking through libslirp, without root.
 *
 * The program under test is a tiny IPv4 host written here: a DHCP client (DISCOVER, OFFER,
 * REQUEST, ACK), ARP for the gateway, UDP to a service on the host. The host side is a thread
 * of the same test process on 127.0.0.1. Network safety: every datagram goes to the gateway
 * address, which slirp maps to 127.0.0.1, to a port the test itself bound there, or is one that
 * the restriction must stop before slirp sees it (and, aimed at 127.0.0.1, it would still stay
 * on this machine if the restriction failed). Nothing is ever sent to another address.
 *
 * Like the links suite it runs as nobody with no capability (re-executed under setpriv when
 * started as root). Built without libslirp, the whole suite is skipped and says why.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

/* The ARP and ICMP echo responder of examples/ping-serve.c: the guest answers ARP with it. */
#define PING_SERVE_NO_MAIN
#include "../examples/ping-serve.c"

#define MS         1000000ULL
#define FRAME_MAX  1514
#define UDPH_LEN   8
#define GUEST_PORT 40000
#define RXQ        64

static const uint8_t ip_gateway[4] = {10, 0, 2, 2};
static const uint8_t ip_dns[4] = {10, 0, 2, 3};
static const uint8_t ip_first[4] = {10, 0, 2, 15};
static const uint8_t ip_any[4] = {0, 0, 0, 0};
static const uint8_t ip_bcast[4] = {255, 255, 255, 255};
static const uint8_t ip_loopback[4] = {127, 0, 0, 1};
static const uint8_t mac_bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---------------------------------------------------------------------------------------- */
/*  The host side: UDP services on 127.0.0.1, in threads                                     */
/* ---------------------------------------------------------------------------------------- */

/* A UDP socket bound to 127.0.0.1 on a port the kernel chose; its port goes to (*port). */
static int udp_loopback(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A port of 127.0.0.1 that was free a moment ago. */
static uint16_t free_port(void)
{
	uint16_t port;

	close(udp_loopback(&port));
	return port;
}

struct echo_server {
	int fd;
	uint16_t port;
	pthread_t thread;
	atomic_bool stop;
	atomic_uint datagrams;
	atomic_bool foreign_peer; /* a datagram came from somewhere other than 127.0.0.1 */
};

static void *echo_thread(void *arg)
{
	struct echo_server *e = arg;
	uint8_t buf[2048];

	while (!atomic_load(&e->stop)) {
		struct pollfd p = {.fd = e->fd, .events = POLLIN};
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = recvfrom(e->fd, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);
		if (n < 0)
			continue;
		if (peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
			atomic_store(&e->foreign_peer, true);
		atomic_fetch_add(&e->datagrams, 1);
		sendto(e->fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
	}
	return NULL;
}

static void echo_start(struct echo_server *e)
{
	memset(e, 0, sizeof(*e));
	e->fd = udp_loopback(&e->port);
	ck_assert_int_eq(pthread_create(&e->thread, NULL, echo_thread, e), 0);
}

static void echo_stop(struct echo_server *e)
{
	atomic_store(&e->stop, true);
	pthread_join(e->thread, NULL);
	close(e->fd);
}

/* ---------------------------------------------------------------------------------------- */
/*  The guest: frames in and out                                                             */
/* ---------------------------------------------------------------------------------------- */

struct guest {
	mk_net *net;
	struct mk_net_config cfg;
	struct ps_host ps; /* our MAC and address, for the ARP answers */
	uint8_t gw_mac[6];
	uint8_t q[RXQ][FRAME_MAX]; /* frames that ps_handle_frame did not answer */
	size_t qlen[RXQ];
	unsigned head, len;
	mk_task *rx;
};

/* Read every frame: answer ARP (and ping) for our address, queue the rest for main. */
static intptr_t rx_task(void *arg)
{
	struct guest *g = arg;
	uint8_t f[FRAME_MAX], out[FRAME_MAX];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(g->net, f, sizeof(f), 0, sizeof(f));
		if (n < 0)
			return n == -ECANCELED ? 0 : n;
		size_t r = ps_handle_frame(&g->ps, f, (size_t)n, out, sizeof(out));
		if (r > 0) {
			mk_net_write_bigstring(g->net, out, sizeof(out), 0, r);
			continue;
		}
		if (g->len == RXQ) { /* main fell behind: forget the oldest */
			g->head = (g->head + 1) % RXQ;
			g->len--;
		}
		unsigned i = (g->head + g->len) % RXQ;
		memcpy(g->q[i], f, (size_t)n);
		g->qlen[i] = (size_t)n;
		g->len++;
	}
}

static int guest_start(struct guest *g, const char *dev)
{
	int err = mk_net_connect(dev, &g->net, &g->cfg);

	if (err != 0) {
		fprintf(stderr, "connect: %s\n", mk_last_error());
		return err;
	}
	memcpy(g->ps.mac, g->cfg.mac, 6);
	return mk_task_spawn(&g->rx, "rx", rx_task, g);
}

typedef bool (*frame_match)(const uint8_t *f, size_t len, const void *ctx);

/* The next received frame that (match) accepts, copied into (out); frames before it are
 * dropped. Returns its length, or 0 when none came within (timeout_ns). */
static size_t wait_frame(struct guest *g, frame_match match, const void *ctx, uint8_t *out,
                         uint64_t timeout_ns)
{
	uint64_t end = mk_clock_monotonic() + timeout_ns;

	while (mk_clock_monotonic() < end) {
		while (g->len > 0) {
			unsigned i = g->head;
			size_t n = g->qlen[i];
			g->head = (g->head + 1) % RXQ;
			g->len--;
			if (match(g->q[i], n, ctx)) {
				memcpy(out, g->q[i], n);
				return n;
			}
		}
		if (mk_sleep(MS) != 0)
			return 0;
	}
	return 0;
}

/* An IPv4/UDP frame (UDP checksum 0: none, which IPv4 allows) with (payload). */
static size_t udp_frame(uint8_t *f, const uint8_t smac[6], const uint8_t dmac[6],
                        const uint8_t sip[4], const uint8_t dip[4], uint16_t sport, uint16_t dport,
                        const void *payload, size_t plen)
{
	uint8_t *ip = f + ETHH_LEN, *udp = ip + IPH_MINLEN;
	static uint16_t id;

	memcpy(f + ETHH_DST, dmac, 6);
	memcpy(f + ETHH_SRC, smac, 6);
	put16(f + ETHH_TYPE, ETHERTYPE_IPV4);
	memset(ip, 0, IPH_MINLEN);
	ip[IPH_VIHL] = 0x45;
	put16(ip + IPH_TOTLEN, (uint16_t)(IPH_MINLEN + UDPH_LEN + plen));
	put16(ip + IPH_ID, ++id);
	ip[IPH_TTL] = 64;
	ip[IPH_PROTO] = IPPROTO_UDP;
	memcpy(ip + IPH_SRC, sip, 4);
	memcpy(ip + IPH_DST, dip, 4);
	put16(ip + IPH_CSUM, inet_checksum(ip, IPH_MINLEN));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(UDPH_LEN + plen));
	put16(udp + 6, 0);
	memcpy(udp + UDPH_LEN, payload, plen);
	return ETHH_LEN + IPH_MINLEN + UDPH_LEN + plen;
}

/* The UDP datagram in f[0, len): its addresses, ports and payload, or false. */
struct udp_view {
	const uint8_t *src, *dst; /* IPv4 addresses */
	uint16_t sport, dport;
	const uint8_t *data;
	size_t dlen;
};

static bool udp_parse(const uint8_t *f, size_t len, struct udp_view *u)
{
	const uint8_t *ip = f + ETHH_LEN;
	size_t ihl, total;

	if (len < ETHH_LEN + IPH_MINLEN || get16(f + ETHH_TYPE) != ETHERTYPE_IPV4)
		return false;
	ihl = (size_t)(ip[IPH_VIHL] & 15) * 4;
	total = get16(ip + IPH_TOTLEN);
	if (ip[IPH_VIHL] >> 4 != 4 || ip[IPH_PROTO] != IPPROTO_UDP || ihl < IPH_MINLEN ||
	    total > len - ETHH_LEN || total < ihl + UDPH_LEN || inet_checksum(ip, ihl) != 0)
		return false;
	u->src = ip + IPH_SRC;
	u->dst = ip + IPH_DST;
	u->sport = get16(ip + ihl);
	u->dport = get16(ip + ihl + 2);
	u->data = ip + ihl + UDPH_LEN;
	u->dlen = total - ihl - UDPH_LEN;
	return get16(ip + ihl + 4) == total - ihl;
}

static int send_udp(struct guest *g, const uint8_t dmac[6], const uint8_t sip[4],
                    const uint8_t dip[4], uint16_t sport, uint16_t dport, const void *payload,
                    size_t plen)
{
	uint8_t f[FRAME_MAX];
	size_t n = udp_frame(f, g->cfg.mac, dmac, sip, dip, sport, dport, payload, plen);

	return mk_net_write_bigstring(g->net, f, sizeof(f), 0, n) == (ssize_t)n ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/*  DHCP and ARP                                                                             */
/* ---------------------------------------------------------------------------------------- */

enum {
	BOOTP_OP = 0,
	BOOTP_HTYPE = 1,
	BOOTP_HLEN = 2,
	BOOTP_XID = 4,
	BOOTP_FLAGS = 10,
	BOOTP_YIADDR = 16,
	BOOTP_CHADDR = 28,
	BOOTP_COOKIE = 236,
	BOOTP_OPTIONS = 240,
	DHCP_DISCOVER = 1,
	DHCP_OFFER = 2,
	DHCP_REQUEST = 3,
	DHCP_ACK = 5,
};

struct lease {
	uint8_t ip[4], server[4], router[4], dns[4];
};

static size_t dhcp_message(uint8_t *m, const uint8_t mac[6], uint32_t xid, int type,
                           const struct lease *offer)
{
	size_t o = BOOTP_OPTIONS;

	memset(m, 0, 300);
	m[BOOTP_OP] = 1; /* request */
	m[BOOTP_HTYPE] = 1;
	m[BOOTP_HLEN] = 6;
	memcpy(m + BOOTP_XID, &xid, 4);
	put16(m + BOOTP_FLAGS, 0x8000); /* answer by broadcast: we have no address yet */
	memcpy(m + BOOTP_CHADDR, mac, 6);
	memcpy(m + BOOTP_COOKIE, "\x63\x82\x53\x63", 4);
	m[o++] = 53; /* message type */
	m[o++] = 1;
	m[o++] = (uint8_t)type;
	if (offer != NULL) {
		m[o++] = 50; /* requested address */
		m[o++] = 4;
		memcpy(m + o, offer->ip, 4);
		o += 4;
		m[o++] = 54; /* server identifier */
		m[o++] = 4;
		memcpy(m + o, offer->server, 4);
		o += 4;
	}
	m[o++] = 55; /* parameters: subnet mask, router, DNS */
	m[o++] = 3;
	m[o++] = 1;
	m[o++] = 3;
	m[o++] = 6;
	m[o++] = 255;
	return o < 300 ? 300 : o; /* BOOTP's minimum size */
}

/* The DHCP message type of a reply to (xid), filling (*l); 0 if it is not one. */
static int dhcp_reply(const uint8_t *f, size_t len, uint32_t xid, struct lease *l)
{
	struct udp_view u;
	int type = 0;

	if (!udp_parse(f, len, &u) || u.sport != 67 || u.dport != 68 || u.dlen < BOOTP_OPTIONS ||
	    u.data[BOOTP_OP] != 2 || memcmp(u.data + BOOTP_XID, &xid, 4) != 0 ||
	    memcmp(u.data + BOOTP_COOKIE, "\x63\x82\x53\x63", 4) != 0)
		return 0;
	memset(l, 0, sizeof(*l));
	memcpy(l->ip, u.data + BOOTP_YIADDR, 4);
	for (size_t o = BOOTP_OPTIONS; o < u.dlen && u.data[o] != 255;) {
		uint8_t code = u.data[o];
		if (code == 0) {
			o++;
			continue;
		}
		if (o + 2 > u.dlen || o + 2 + u.data[o + 1] > u.dlen)
			break;
		const uint8_t *v = u.data + o + 2;
		uint8_t vlen = u.data[o + 1];
		if (code == 53 && vlen == 1)
			type = v[0];
		else if (code == 54 && vlen == 4)
			memcpy(l->server, v, 4);
		else if (code == 3 && vlen >= 4)
			memcpy(l->router, v, 4);
		else if (code == 6 && vlen >= 4)
			memcpy(l->dns, v, 4);
		o += 2 + vlen;
	}
	return type;
}

struct dhcp_wait {
	uint32_t xid;
	int type;
};

static bool match_dhcp(const uint8_t *f, size_t len, const void *ctx)
{
	const struct dhcp_wait *w = ctx;
	struct lease l;

	return dhcp_reply(f, len, w->xid, &l) == w->type;
}

/* DISCOVER, OFFER, REQUEST, ACK: the lease goes to (*l). Returns 0 or the failing step. */
static int dhcp(struct guest *g, struct lease *l)
{
	uint8_t m[400], f[FRAME_MAX];
	struct dhcp_wait w = {.xid = 0x6d6b6873, .type = DHCP_OFFER};
	struct lease offer;
	size_t n;

	n = dhcp_message(m, g->cfg.mac, w.xid, DHCP_DISCOVER, NULL);
	if (send_udp(g, mac_bcast, ip_any, ip_bcast, 68, 67, m, n) != 0)
		return 1;
	n = wait_frame(g, match_dhcp, &w, f, 5000 * MS);
	if (n == 0 || dhcp_reply(f, n, w.xid, &offer) != DHCP_OFFER)
		return 2;
	n = dhcp_message(m, g->cfg.mac, w.xid, DHCP_REQUEST, &offer);
	if (send_udp(g, mac_bcast, ip_any, ip_bcast, 68, 67, m, n) != 0)
		return 3;
	w.type = DHCP_ACK;
	n = wait_frame(g, match_dhcp, &w, f, 5000 * MS);
	if (n == 0 || dhcp_reply(f, n, w.xid, l) != DHCP_ACK)
		return 4;
	return memcmp(l->ip, offer.ip, 4) == 0 ? 0 : 5;
}

static bool match_arp_reply(const uint8_t *f, size_t len, const void *ctx)
{
	const uint8_t *arp = f + ETHH_LEN;

	return len >= ETHH_LEN + ARPH_LEN && get16(f + ETHH_TYPE) == ETHERTYPE_ARP &&
	       get16(arp + ARPH_OPER) == 2 && memcmp(arp + ARPH_SPA, ctx, 4) == 0;
}

/* "Who has (ip)?"; the answer's hardware address goes to mac. */
static int arp_resolve(struct guest *g, const uint8_t ip[4], uint8_t mac[6])
{
	uint8_t f[FRAME_MAX] = {0}, *arp = f + ETHH_LEN;
	size_t n = ETHH_LEN + ARPH_LEN;

	memcpy(f + ETHH_DST, mac_bcast, 6);
	memcpy(f + ETHH_SRC, g->cfg.mac, 6);
	put16(f + ETHH_TYPE, ETHERTYPE_ARP);
	put16(arp + ARPH_HTYPE, 1);
	put16(arp + ARPH_PTYPE, ETHERTYPE_IPV4);
	arp[ARPH_HLEN] = 6;
	arp[ARPH_PLEN] = 4;
	put16(arp + ARPH_OPER, 1);
	memcpy(arp + ARPH_SHA, g->cfg.mac, 6);
	memcpy(arp + ARPH_SPA, g->ps.ip, 4);
	memcpy(arp + ARPH_TPA, ip, 4);
	if (mk_net_write_bigstring(g->net, f, sizeof(f), 0, 60) != 60)
		return -1;
	n = wait_frame(g, match_arp_reply, ip, f, 5000 * MS);
	if (n == 0)
		return -1;
	memcpy(mac, arp + ARPH_SHA, 6);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/*  DHCP, ARP for the gateway, UDP to a service on the host's loopback                       */
/* ---------------------------------------------------------------------------------------- */

struct udp_want {
	const uint8_t *src;
	uint16_t sport, dport;
	const char *payload;
};

static bool match_udp(const uint8_t *f, size_t len, const void *ctx)
{
	const struct udp_want *w = ctx;
	struct udp_view u;

	return udp_parse(f, len, &u) && memcmp(u.src, w->src, 4) == 0 && u.sport == w->sport &&
	       u.dport == w->dport && u.dlen == strlen(w->payload) &&
	       memcmp(u.data, w->payload, u.dlen) == 0;
}

struct host_run {
	struct echo_server *echo;
	const char *note; /* what failed, for the report */
};

#define FAIL(r, what)                                                                              \
	do {                                                                                       \
		(r)->note = (what);                                                                \
		return 1;                                                                          \
	} while (0)

static int dhcp_udp_main(int argc, char **argv, void *arg)
{
	struct host_run *r = arg;
	struct guest g = {0};
	struct lease l;
	uint8_t f[FRAME_MAX];
	struct mk_net_stats st;
	int step;

	if (guest_start(&g, "net") != 0)
		FAIL(r, "connect");
	if (g.cfg.mtu != 1500)
		FAIL(r, "mtu is not 1500");
	step = dhcp(&g, &l);
	if (step != 0) {
		fprintf(stderr, "DHCP step %d failed\n", step);
		FAIL(r, "DHCP");
	}
	if (memcmp(l.ip, ip_first, 4) != 0 || memcmp(l.server, ip_gateway, 4) != 0 ||
	    memcmp(l.router, ip_gateway, 4) != 0 || memcmp(l.dns, ip_dns, 4) != 0) {
		fprintf(stderr, "lease %u.%u.%u.%u from %u.%u.%u.%u, router %u.%u.%u.%u\n", l.ip[0],
		        l.ip[1], l.ip[2], l.ip[3], l.server[0], l.server[1], l.server[2],
		        l.server[3], l.router[0], l.router[1], l.router[2], l.router[3]);
		FAIL(r, "lease is not QEMU's 10.0.2.15 from 10.0.2.2");
	}
	memcpy(g.ps.ip, l.ip, 4);
	if (arp_resolve(&g, ip_gateway, g.gw_mac) != 0)
		FAIL(r, "ARP for the gateway");
	for (int i = 0; i < 20; i++) {
		char msg[64];
		struct udp_want w = {ip_gateway, r->echo->port, GUEST_PORT + (uint16_t)i, msg};
		snprintf(msg, sizeof(msg), "mkhost slirp datagram %d", i);
		if (send_udp(&g, g.gw_mac, g.ps.ip, ip_gateway, w.dport, w.sport, msg,
		             strlen(msg)) != 0)
			FAIL(r, "write");
		if (wait_frame(&g, match_udp, &w, f, 5000 * MS) == 0)
			FAIL(r, "no echo from the UDP service on 127.0.0.1");
	}
	mk_net_stats(g.net, &st);
	if (st.tx_drops != 0 || st.rx_drops != 0 || st.tx_frames < 23 || st.rx_frames < 23)
		FAIL(r, "statistics");
	return 0;
}

START_TEST(dhcp_arp_udp_to_host)
{
	struct echo_server echo;
	struct host_run r = {&echo, NULL};

	echo_start(&echo);
	int rc = mkt_run(dhcp_udp_main, &r, "--net:net=slirp", (char *)NULL);
	echo_stop(&echo);
	ck_assert_msg(rc == 0, "failed: %s (rc %d)", r.note ? r.note : "?", rc);
	ck_assert_uint_eq(atomic_load(&echo.datagrams), 20);
	ck_assert(!atomic_load(&echo.foreign_peer));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  restrict: only the gateway address and DHCP get in                                       */
/* ---------------------------------------------------------------------------------------- */

struct restrict_run {
	struct echo_server *echo;
	bool restricted;
	const char *note;
};

static int restrict_main(int argc, char **argv, void *arg)
{
	struct restrict_run *r = arg;
	struct guest g = {0};
	struct mk_net_stats before, after;
	uint8_t f[FRAME_MAX];
	const char *msg = "straight to 127.0.0.1";
	struct udp_want w = {ip_loopback, r->echo->port, GUEST_PORT, msg};

	memcpy(g.ps.ip, ip_first, 4);
	if (guest_start(&g, "net") != 0)
		FAIL(r, "connect");
	if (arp_resolve(&g, ip_gateway, g.gw_mac) != 0)
		FAIL(r, "ARP for the gateway");
	mk_net_stats(g.net, &before);
	/* Not through the gateway's address: to 127.0.0.1 itself, which slirp would pass on as it
	 * is. Even a failed restriction keeps this on the machine. */
	if (send_udp(&g, g.gw_mac, g.ps.ip, ip_loopback, GUEST_PORT, r->echo->port, msg,
	             strlen(msg)) != 0 &&
	    !r->restricted)
		FAIL(r, "write");
	size_t n = wait_frame(&g, match_udp, &w, f, (r->restricted ? 300 : 5000) * MS);
	mk_net_stats(g.net, &after);
	if (r->restricted) {
		if (n != 0)
			FAIL(r, "an answer came through the restriction");
		if (after.tx_drops != before.tx_drops + 1)
			FAIL(r, "the refused frame is not counted in tx_drops");
	} else if (n == 0) {
		FAIL(r, "restrict=off: no answer from 127.0.0.1");
	}
	return 0;
}

START_TEST(restrict_on_and_off)
{
	struct echo_server echo;
	struct restrict_run r = {&echo, _i == 0, NULL};

	echo_start(&echo);
	int rc = mkt_run(restrict_main, &r,
	                 r.restricted ? "--net:net=slirp" : "--net:net=slirp,restrict=off",
	                 (char *)NULL);
	echo_stop(&echo);
	ck_assert_msg(rc == 0, "restrict=%s: %s (rc %d)", r.restricted ? "on" : "off",
	              r.note ? r.note : "?", rc);
	ck_assert_uint_eq(atomic_load(&echo.datagrams), r.restricted ? 0 : 1);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  hostfwd=udp: the host reaches a service of the program                                   */
/* ---------------------------------------------------------------------------------------- */

struct fwd_client {
	uint16_t port; /* the forwarded host port */
	pthread_t thread;
	atomic_bool done;
	atomic_uint answered;
	unsigned want;
};

/* Send numbered datagrams to 127.0.0.1:port until (want) came back intact, for 10 s at most. The
 * first ones may be lost while slirp learns where the program is. */
static void *fwd_client_thread(void *arg)
{
	struct fwd_client *c = arg;
	struct sockaddr_in to = {.sin_family = AF_INET,
	                         .sin_port = htons(c->port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unsigned next = 0;

	for (int tries = 0; fd >= 0 && tries < 200 && next < c->want; tries++) {
		char msg[64], back[64];
		int len = snprintf(msg, sizeof(msg), "forwarded %u", next);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to));
		while (poll(&p, 1, 50) > 0) {
			ssize_t n = recv(fd, back, sizeof(back), 0);
			if (n == len && memcmp(back, msg, (size_t)len) == 0) {
				atomic_store(&c->answered, ++next);
				break;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	atomic_store(&c->done, true);
	return NULL;
}

/* The program: a UDP echo service on 10.0.2.15:7, until the host side is done. */
static int fwd_main(int argc, char **argv, void *arg)
{
	struct fwd_client *c = arg;
	struct guest g = {0};
	uint8_t f[FRAME_MAX];
	struct udp_view u;

	memcpy(g.ps.ip, ip_first, 4);
	if (guest_start(&g, "net") != 0)
		return 1;
	ck_assert_int_eq(pthread_create(&c->thread, NULL, fwd_client_thread, c), 0);
	while (!atomic_load(&c->done)) {
		if (g.len == 0) {
			if (mk_sleep(MS) != 0)
				return 2;
			continue;
		}
		size_t n = g.qlen[g.head];
		memcpy(f, g.q[g.head], n);
		g.head = (g.head + 1) % RXQ;
		g.len--;
		if (!udp_parse(f, n, &u) || u.dport != 7 || memcmp(u.dst, g.ps.ip, 4) != 0)
			continue;
		/* The host's 127.0.0.1 appears as the gateway's address. */
		if (memcmp(u.src, ip_gateway, 4) != 0)
			return 3;
		if (send_udp(&g, f + ETHH_SRC, g.ps.ip, u.src, 7, u.sport, u.data, u.dlen) != 0)
			return 4;
	}
	pthread_join(c->thread, NULL);
	return 0;
}

START_TEST(hostfwd_udp)
{
	struct fwd_client c = {.port = free_port(), .want = 10};
	char arg[128];

	snprintf(arg, sizeof(arg), "--net:net=slirp,hostfwd=udp:127.0.0.1:%u-:7", c.port);
	int rc = mkt_run(fwd_main, &c, arg, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(atomic_load(&c.answered), c.want);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  hostfwd=tcp: the host connects to a TCP echo service of the program                      */
/* ---------------------------------------------------------------------------------------- */

enum { TCP_FIN = 1, TCP_SYN = 2, TCP_PSH = 8, TCP_ACK = 16, TCPH_LEN = 20 };

/* One connection of a TCP echo server with a fixed window, just enough for the test: no
 * retransmission (nothing is lost between the program and slirp), no options. */
struct tcp_echo {
	struct guest *g;
	uint8_t peer_mac[6], peer_ip[4];
	uint16_t port, peer_port;
	uint32_t snd_nxt, rcv_nxt;
	bool closed;
};

static int tcp_send(struct tcp_echo *t, uint8_t flags, const uint8_t *data, size_t len)
{
	uint8_t f[FRAME_MAX], pseudo[12 + TCPH_LEN + FRAME_MAX];
	uint8_t *ip = f + ETHH_LEN, *tcp = ip + IPH_MINLEN;
	size_t tlen = TCPH_LEN + len;

	memcpy(f + ETHH_DST, t->peer_mac, 6);
	memcpy(f + ETHH_SRC, t->g->cfg.mac, 6);
	put16(f + ETHH_TYPE, ETHERTYPE_IPV4);
	memset(ip, 0, IPH_MINLEN + TCPH_LEN);
	ip[IPH_VIHL] = 0x45;
	put16(ip + IPH_TOTLEN, (uint16_t)(IPH_MINLEN + tlen));
	ip[IPH_TTL] = 64;
	ip[IPH_PROTO] = IPPROTO_TCP;
	memcpy(ip + IPH_SRC, t->g->ps.ip, 4);
	memcpy(ip + IPH_DST, t->peer_ip, 4);
	put16(ip + IPH_CSUM, inet_checksum(ip, IPH_MINLEN));
	put16(tcp, t->port);
	put16(tcp + 2, t->peer_port);
	put16(tcp + 4, (uint16_t)(t->snd_nxt >> 16));
	put16(tcp + 6, (uint16_t)t->snd_nxt);
	put16(tcp + 8, (uint16_t)(t->rcv_nxt >> 16));
	put16(tcp + 10, (uint16_t)t->rcv_nxt);
	tcp[12] = (TCPH_LEN / 4) << 4;
	tcp[13] = flags;
	put16(tcp + 14, 8192); /* window */
	if (len > 0)
		memcpy(tcp + TCPH_LEN, data, len);
	memcpy(pseudo, ip + IPH_SRC, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	put16(pseudo + 10, (uint16_t)tlen);
	memcpy(pseudo + 12, tcp, tlen);
	put16(tcp + 16, inet_checksum(pseudo, 12 + tlen));
	t->snd_nxt += (uint32_t)len + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
	size_t n = ETHH_LEN + IPH_MINLEN + tlen;
	return mk_net_write_bigstring(t->g->net, f, sizeof(f), 0, n) == (ssize_t)n ? 0 : -1;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* Handle one frame for the echo service: answer SYN, echo data, close on FIN. */
static int tcp_input(struct tcp_echo *t, const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETHH_LEN, *tcp;
	size_t ihl, total, doff, dlen;
	uint32_t seq;
	uint8_t flags;

	if (len < ETHH_LEN + IPH_MINLEN || get16(f + ETHH_TYPE) != ETHERTYPE_IPV4 ||
	    ip[IPH_PROTO] != IPPROTO_TCP || memcmp(ip + IPH_DST, t->g->ps.ip, 4) != 0)
		return 0;
	ihl = (size_t)(ip[IPH_VIHL] & 15) * 4;
	total = get16(ip + IPH_TOTLEN);
	if (total > len - ETHH_LEN || total < ihl + TCPH_LEN)
		return 0;
	tcp = ip + ihl;
	doff = (size_t)(tcp[12] >> 4) * 4;
	if (get16(tcp + 2) != t->port || doff < TCPH_LEN || ihl + doff > total)
		return 0;
	seq = get32(tcp + 4);
	flags = tcp[13];
	dlen = total - ihl - doff;
	if (flags & TCP_SYN) {
		memcpy(t->peer_mac, f + ETHH_SRC, 6);
		memcpy(t->peer_ip, ip + IPH_SRC, 4);
		t->peer_port = get16(tcp);
		t->snd_nxt = 0x10000;
		t->rcv_nxt = seq + 1;
		return tcp_send(t, TCP_SYN | TCP_ACK, NULL, 0);
	}
	if (seq != t->rcv_nxt)
		return dlen > 0 || (flags & TCP_FIN) ? tcp_send(t, TCP_ACK, NULL, 0) : 0;
	t->rcv_nxt += (uint32_t)dlen;
	if (dlen > 0 && tcp_send(t, TCP_ACK | TCP_PSH, tcp + doff, dlen) != 0)
		return -1;
	if (flags & TCP_FIN) {
		t->rcv_nxt++;
		t->closed = true;
		return tcp_send(t, TCP_FIN | TCP_ACK, NULL, 0);
	}
	return 0;
}

struct tcp_client {
	uint16_t port;
	pthread_t thread;
	atomic_bool done;
	atomic_uint echoed;
	unsigned want;
};

/* Connect to 127.0.0.1:port, send numbered lines and read each back, then close. */
static void *tcp_client_thread(void *arg)
{
	struct tcp_client *c = arg;
	struct sockaddr_in to = {.sin_family = AF_INET,
	                         .sin_port = htons(c->port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
	    connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0) {
		for (unsigned i = 0; i < c->want; i++) {
			char msg[64], back[64];
			size_t len = (size_t)snprintf(msg, sizeof(msg), "line %u over TCP\n", i),
			       got = 0;
			if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
				break;
			while (got < len) {
				ssize_t n = recv(fd, back + got, len - got, 0);
				if (n <= 0)
					break;
				got += (size_t)n;
			}
			if (got != len || memcmp(back, msg, len) != 0)
				break;
			atomic_store(&c->echoed, i + 1);
		}
	}
	if (fd >= 0)
		close(fd);
	atomic_store(&c->done, true);
	return NULL;
}

static int tcp_fwd_main(int argc, char **argv, void *arg)
{
	struct tcp_client *c = arg;
	struct guest g = {0};
	struct tcp_echo t = {.g = &g, .port = 80};

	memcpy(g.ps.ip, ip_first, 4);
	if (guest_start(&g, "net") != 0)
		return 1;
	ck_assert_int_eq(pthread_create(&c->thread, NULL, tcp_client_thread, c), 0);
	/* Until the client is done and the program has seen the close. */
	for (uint64_t end = mk_clock_monotonic() + 20000 * MS;
	     !(atomic_load(&c->done) && t.closed) && mk_clock_monotonic() < end;) {
		if (g.len == 0) {
			if (mk_sleep(MS) != 0)
				return 2;
			continue;
		}
		int err = tcp_input(&t, g.q[g.head], g.qlen[g.head]);
		g.head = (g.head + 1) % RXQ;
		g.len--;
		if (err != 0)
			return 3;
	}
	pthread_join(c->thread, NULL);
	return t.closed ? 0 : 4;
}

START_TEST(hostfwd_tcp)
{
	struct tcp_client c = {.port = free_port(), .want = 50};
	char arg[128];

	snprintf(arg, sizeof(arg), "--net:net=slirp,hostfwd=tcp:127.0.0.1:%u-:80", c.port);
	int rc = mkt_run(tcp_fwd_main, &c, arg, (char *)NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(atomic_load(&c.echoed), c.want);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Options                                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct connect_result {
	int err;
	char error[512];
	unsigned mtu;
};

static int connect_main(int argc, char **argv, void *arg)
{
	struct connect_result *r = arg;
	struct mk_net_config cfg = {0};
	mk_net *net;

	r->err = mk_net_connect("net", &net, &cfg);
	snprintf(r->error, sizeof(r->error), "%s", mk_last_error());
	r->mtu = cfg.mtu;
	return 0;
}

static const struct {
	const char *arg, *names; /* the argument, and what its error must quote */
} bad_options[] = {
    {"--net:net=slirp,foo=1", "'foo=1' is unknown"},
    {"--net:net=slirp,restrict", "'restrict'"},
    {"--net:net=slirp,restrict=maybe", "'restrict=maybe'"},
    {"--net:net=slirp,mtu=10", "mtu '10'"},
    {"--net:net=slirp,mtu=65535", "'mtu=65535'"},
    {"--net:net=slirp,net=10.0.2.1/24", "'net=10.0.2.1/24'"},
    {"--net:net=slirp,net=10.0.2.0/30", "'net=10.0.2.0/30'"},
    {"--net:net=slirp,net=10.0.2.0", "'net=10.0.2.0'"},
    {"--net:net=slirp,hostfwd=sctp::8080-:80", "'hostfwd=sctp::8080-:80'"},
    {"--net:net=slirp,hostfwd=tcp:127.0.0.1:0-:80", "'hostfwd=tcp:127.0.0.1:0-:80'"},
    {"--net:net=slirp,hostfwd=tcp:127.0.0.1:8080:80", "'hostfwd=tcp:127.0.0.1:8080:80'"},
    {"--net:net=slirp,hostfwd=udp:127.0.0.1:8080-10.9.9.9:80", "not in the virtual network"},
    /* refused before anything is bound */
    {"--net:net=slirp,hostfwd=tcp:0.0.0.0:8080-:80", "loopback addresses only"},
};

START_TEST(bad_option_named)
{
	struct connect_result r = {0};

	ck_assert_int_eq(mkt_run(connect_main, &r, bad_options[_i].arg, (char *)NULL), 0);
	ck_assert_msg(r.err == -EINVAL, "%s: %d (%s)", bad_options[_i].arg, r.err, r.error);
	ck_assert_msg(strstr(r.error, bad_options[_i].names) != NULL, "%s: '%s'",
	              bad_options[_i].arg, r.error);
}
END_TEST

START_TEST(options_accepted)
{
	struct connect_result r = {0};
	uint16_t port;
	int busy = udp_loopback(&port);
	char arg[160];

	snprintf(arg, sizeof(arg), "--net:net=slirp,mtu=9000,net=10.9.8.0/24,restrict=on");
	ck_assert_int_eq(mkt_run(connect_main, &r, arg, (char *)NULL), 0);
	ck_assert_msg(r.err == 0, "%s", r.error);
	ck_assert_uint_eq(r.mtu, 9000);
	/* A host port already taken: the error names the option and the cause. */
	snprintf(arg, sizeof(arg), "--net:net=slirp,hostfwd=udp:127.0.0.1:%u-:7", port);
	ck_assert_int_eq(mkt_run(connect_main, &r, arg, (char *)NULL), 0);
	ck_assert_msg(r.err == -EADDRINUSE && strstr(r.error, "hostfwd=udp") != NULL, "%d: %s",
	              r.err, r.error);
	close(busy);
	/* An interface whose name starts with "slirp" is a TAP, not a slirp link. */
	ck_assert_int_eq(mkt_run(connect_main, &r, "--net:net=slirpy0", (char *)NULL), 0);
	ck_assert_int_ne(r.err, 0);
	ck_assert_msg(strstr(r.error, "slirp option") == NULL, "%s", r.error);
}
END_TEST

/* slirp opens sockets at run time, which --sandbox forbids: mk_run refuses before main. */
START_TEST(sandbox_refused)
{
	struct connect_result r = {.err = 1};

	ck_assert_int_eq(mkt_run(connect_main, &r, "--sandbox", "--net:net=slirp", (char *)NULL),
	                 -EINVAL);
	ck_assert_int_eq(r.err, 1); /* main never ran */
	ck_assert_msg(strstr(mk_last_error(), "--sandbox") != NULL, "%s", mk_last_error());
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

/* Built without libslirp, connect says so: skip the suite, with that sentence as the reason. */
static void skip_without_slirp(void)
{
	struct connect_result r = {0};

	if (mkt_run(connect_main, &r, "--net:net=slirp", (char *)NULL) != 0 || r.err == 0)
		return;
	if (r.err == -ENOTSUP)
		mkt_skip_missing("%s", r.error);
	fprintf(stderr, "--net:net=slirp does not connect: %s\n", r.error);
	exit(1);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	mkt_drop_privileges();
	skip_without_slirp();

	Suite *s = suite_create("slirp");
	TCase *tc = tcase_create("slirp");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, dhcp_arp_udp_to_host);
	tcase_add_loop_test(tc, restrict_on_and_off, 0, 2);
	tcase_add_test(tc, hostfwd_udp);
	tcase_add_test(tc, hostfwd_tcp);
	tcase_add_loop_test(tc, bad_option_named, 0, sizeof(bad_options) / sizeof(bad_options[0]));
	tcase_add_test(tc, options_accepted);
	tcase_add_test(tc, sandbox_refused);
	suite_add_tcase(s, tc);

	int failed = mkt_run_suite(s, true);
	return failed;
}
