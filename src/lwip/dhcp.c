/* A DHCP client (RFC 2131) beside lwIP, because Debian's lwIP is built without its own
 * (LWIP_DHCP is 0, so there is no dhcp_start).
 *
 * lwIP cannot carry it either: a netif with no address drops every IPv4 datagram, broadcasts
 * included, unless lwIP was built with its DHCP client (IP_ACCEPT_LINK_LAYER_ADDRESSING). So the
 * client writes its own frames (from 0.0.0.0 to the broadcast address, as DHCP must before it has
 * an address) with mk_net_write_bigstring, and the receive task hands it the frames to UDP port
 * 68 while it waits (lw_dhcp_input). Only the four messages of a first lease: DISCOVER, OFFER,
 * REQUEST, ACK (a NAK starts again). No renewal, no release.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "lwip/ip4_addr.h"
#include "glue.h"

enum {
	DHCP_DISCOVER = 1,
	DHCP_OFFER = 2,
	DHCP_REQUEST = 3,
	DHCP_ACK = 5,
	DHCP_NAK = 6,

	OPT_PAD = 0,
	OPT_NETMASK = 1,
	OPT_ROUTER = 3,
	OPT_REQUESTED_IP = 50,
	OPT_MSG_TYPE = 53,
	OPT_SERVER_ID = 54,
	OPT_PARAMS = 55,
	OPT_END = 255,

	ETH = 14,
	IPH = 20,
	UDPH = 8,
	BOOTP = 236, /* the fixed part, up to the magic cookie */
	BOOTP_MIN = 300,
	FRAME = ETH + IPH + UDPH + BOOTP_MIN,
};

#define NAK_MAX 5 /* NAKs in a row before giving up (a server that refuses what it offers) */

static const uint8_t cookie[4] = {99, 130, 83, 99};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Build and write a DISCOVER, or a REQUEST for (ip) from (server) (network byte order). */
static int send_message(mk_lwip *l, int type, uint32_t ip, uint32_t server)
{
	uint8_t f[FRAME] = {0};
	uint8_t *iph = f + ETH, *udp = iph + IPH, *b = udp + UDPH;

	memset(f, 0xff, 6);
	memcpy(f + 6, l->cfg.mac, 6);
	put16(f + 12, 0x0800);

	b[0] = 1; /* BOOTREQUEST */
	b[1] = 1; /* Ethernet */
	b[2] = 6;
	memcpy(b + 4, &l->dhcp.xid, 4);
	put16(b + 10, 0x8000); /* broadcast the replies: we cannot take unicast ones yet */
	memcpy(b + 28, l->cfg.mac, 6);
	uint8_t *o = b + BOOTP;
	memcpy(o, cookie, 4);
	o += 4;
	*o++ = OPT_MSG_TYPE;
	*o++ = 1;
	*o++ = (uint8_t)type;
	if (type == DHCP_REQUEST) {
		*o++ = OPT_REQUESTED_IP;
		*o++ = 4;
		memcpy(o, &ip, 4);
		o += 4;
		*o++ = OPT_SERVER_ID;
		*o++ = 4;
		memcpy(o, &server, 4);
		o += 4;
	}
	*o++ = OPT_PARAMS;
	*o++ = 2;
	*o++ = OPT_NETMASK;
	*o++ = OPT_ROUTER;
	*o = OPT_END;

	iph[0] = 0x45;
	put16(iph + 2, IPH + UDPH + BOOTP_MIN);
	iph[8] = 64;
	iph[9] = 17;
	memset(iph + 16, 0xff, 4); /* from 0.0.0.0 to 255.255.255.255 */
	put16(iph + 10, ip_checksum(iph, IPH));
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, UDPH + BOOTP_MIN); /* checksum 0: none, as IPv4 allows */

	ssize_t n = mk_net_write_bigstring(l->net, f, sizeof(f), 0, sizeof(f));
	return n < 0 ? (int)n : 0;
}

bool lw_dhcp_input(mk_lwip *l, const uint8_t *f, size_t len)
{
	if (len < ETH + IPH + UDPH || get16(f + 12) != 0x0800)
		return false;
	const uint8_t *iph = f + ETH;
	size_t ihl = (size_t)(iph[0] & 0x0f) * 4;
	if ((iph[0] >> 4) != 4 || ihl < IPH || iph[9] != 17 || len < ETH + ihl + UDPH)
		return false;
	const uint8_t *udp = iph + ihl;
	if (get16(udp + 2) != 68)
		return false;
	/* From here on the frame is for a DHCP client, and lwIP has none: it is ours. */
	const uint8_t *b = udp + UDPH, *end = f + len;
	if (end - b < BOOTP + 4 || b[0] != 2 || memcmp(b + 4, &l->dhcp.xid, 4) != 0 ||
	    memcmp(b + 28, l->cfg.mac, 6) != 0 || memcmp(b + BOOTP, cookie, 4) != 0)
		return true;
	int type = 0;
	uint32_t server = 0, mask = 0, router = 0;
	for (const uint8_t *o = b + BOOTP + 4; o < end && *o != OPT_END;) {
		if (*o == OPT_PAD) {
			o++;
			continue;
		}
		if (end - o < 2 || end - o < 2 + o[1])
			break;
		const uint8_t *v = o + 2;
		if (o[0] == OPT_MSG_TYPE && o[1] >= 1)
			type = v[0];
		else if (o[0] == OPT_SERVER_ID && o[1] >= 4)
			memcpy(&server, v, 4);
		else if (o[0] == OPT_NETMASK && o[1] >= 4)
			memcpy(&mask, v, 4);
		else if (o[0] == OPT_ROUTER && o[1] >= 4)
			memcpy(&router, v, 4);
		o += 2 + o[1];
	}
	if (type == DHCP_NAK && l->dhcp.want == DHCP_ACK) {
		l->dhcp.nak = true;
	} else if (type == l->dhcp.want) {
		memcpy(&l->dhcp.yiaddr, b + 16, 4);
		l->dhcp.server = server;
		l->dhcp.netmask = mask;
		l->dhcp.router = router;
	} else {
		return true;
	}
	l->dhcp.got = true;
	mk_cond_signal(l->dhcp.cond);
	return true;
}

/* Send (type) until its answer comes: after 1 s, 2 s, then every 4 s, until (deadline). */
static int exchange(mk_lwip *l, int type, int want, uint64_t deadline)
{
	uint64_t wait = 1000 * LW_MS;

	l->dhcp.want = want;
	for (;;) {
		l->dhcp.got = false;
		l->dhcp.nak = false;
		int err = send_message(l, type, l->dhcp.yiaddr, l->dhcp.server);
		if (err != 0)
			return err;
		uint64_t until = mk_clock_monotonic() + wait;
		if (until > deadline)
			until = deadline;
		while (!l->dhcp.got) {
			err = mk_cond_wait(l->dhcp.cond, until);
			if (err == -ECANCELED)
				return err;
			if (err == -ETIMEDOUT)
				break;
		}
		if (l->dhcp.got)
			return 0;
		if (mk_clock_monotonic() >= deadline)
			return -ETIMEDOUT;
		if (wait < 4000 * LW_MS)
			wait *= 2;
	}
}

int mk_lwip_dhcp(mk_lwip *l, uint64_t deadline)
{
	if (l == NULL)
		return lw_fail(-EINVAL, "mk_lwip_dhcp: the handle is NULL");
	if (mk_task_self() == NULL || !lw_core_owned())
		return lw_fail(-EPERM, "mk_lwip_dhcp suspends: call it from a task of the thread "
		                       "that attached the device");
	if (l->dhcp.active)
		return lw_fail(-EALREADY,
		               "mk_lwip_dhcp: another task is already asking for an "
		               "address on device %s",
		               mk_net_name(l->net));
	uint64_t now = mk_clock_monotonic();
	l->dhcp.xid = (uint32_t)(now ^ (now >> 32)) ^ (uint32_t)l->cfg.mac[5] << 24;
	l->dhcp.yiaddr = l->dhcp.server = 0;
	l->dhcp.active = true;
	int err = -EPROTO;
	for (int naks = 0; naks < NAK_MAX; naks++) {
		l->dhcp.yiaddr = l->dhcp.server = 0;
		err = exchange(l, DHCP_DISCOVER, DHCP_OFFER, deadline);
		if (err == 0)
			err = exchange(l, DHCP_REQUEST, DHCP_ACK, deadline);
		if (err != 0 || !l->dhcp.nak)
			break;
		err = -EPROTO;
	}
	l->dhcp.active = false;
	if (err == -ETIMEDOUT)
		return lw_fail(err,
		               "mk_lwip_dhcp: no DHCP server answered on device %s before the "
		               "deadline: is there one on its network (slirp has one; a TAP needs "
		               "a server such as dnsmasq on the host side)?",
		               mk_net_name(l->net));
	if (err == -EPROTO)
		return lw_fail(err,
		               "mk_lwip_dhcp: the DHCP server on device %s refused (NAK) the "
		               "address it offered, %d times",
		               mk_net_name(l->net), NAK_MAX);
	if (err != 0)
		return lw_fail(err, "mk_lwip_dhcp on device %s: %s", mk_net_name(l->net),
		               mk_strerror(err));
	uint32_t mask = l->dhcp.netmask != 0 ? l->dhcp.netmask : htonl(0xffffff00u);
	ip4_addr_t a, m, g;
	ip4_addr_set_u32(&a, l->dhcp.yiaddr);
	ip4_addr_set_u32(&m, mask);
	ip4_addr_set_u32(&g, l->dhcp.router);
	netif_set_addr(&l->netif, &a, &m, &g);
	lw_timers_changed();
	return 0;
}
