/* ping-serve: answer ARP and ICMP echo ("ping") for one IPv4 address on a mkhost net device.
 *
 * Build (meson builds it as build/examples/ping-serve), or by hand after `ninja -C build`:
 *   cc -O2 -Iinclude examples/ping-serve.c build/src/libmkhost.a -luring -o ping-serve
 *
 * Run, as root or with a TAP interface you own:
 *   ip tuntap add dev tap0 mode tap
 *   ip addr add 10.0.0.1/24 dev tap0 && ip link set dev tap0 up
 *   ./ping-serve --net:service=tap0 -- 10.0.0.2      # then, in another shell: ping 10.0.0.2
 *
 * After the "--": the IPv4 address to answer for, and optionally --count N to exit after
 * answering N echo requests. SIGINT or SIGTERM (Ctrl-C) stops it; either way it prints what
 * it did.
 *
 * All the protocol work is in ps_handle_frame(): a frame in, a reply out, no device involved, so
 * a fuzzer can drive it directly (define PING_SERVE_NO_MAIN and #include this file).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkhost.h"

/* Offsets into a frame. Frames are handled as plain bytes rather than through packed structs so
 * that every access is visibly bounded by a length check and nothing depends on alignment. */
enum {
	ETHH_DST = 0,
	ETHH_SRC = 6,
	ETHH_TYPE = 12,
	ETHH_LEN = MK_ETHER_HEADER,

	ARPH_HTYPE = 0, /* from the start of the ARP packet */
	ARPH_PTYPE = 2,
	ARPH_HLEN = 4,
	ARPH_PLEN = 5,
	ARPH_OPER = 6,
	ARPH_SHA = 8,
	ARPH_SPA = 14,
	ARPH_THA = 18,
	ARPH_TPA = 24,
	ARPH_LEN = 28,

	IPH_VIHL = 0, /* from the start of the IPv4 header */
	IPH_TOS = 1,
	IPH_TOTLEN = 2,
	IPH_ID = 4,
	IPH_FRAG = 6,
	IPH_TTL = 8,
	IPH_PROTO = 9,
	IPH_CSUM = 10,
	IPH_SRC = 12,
	IPH_DST = 16,
	IPH_MINLEN = 20,

	ICMPH_TYPE = 0, /* from the start of the ICMP message */
	ICMPH_CODE = 1,
	ICMPH_CSUM = 2,
	ICMPH_MINLEN = 8, /* type, code, checksum, identifier, sequence number */
};

#define ETHERTYPE_IPV4      0x0800
#define ETHERTYPE_ARP       0x0806
#define ICMP_TYPE_ECHOREPLY 0
#define ICMP_TYPE_ECHO      8

/* Who we are, and what we did. */
struct ps_host {
	uint8_t mac[6];
	uint8_t ip[4];
	uint64_t arp_replies, echo_replies, ignored;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The Internet checksum (RFC 1071) of p[0, len). Over data that includes a correct checksum
 * field it comes out 0, which is how received headers are verified. */
static uint16_t inet_checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0; /* 32767 words of at most 0xffff cannot overflow it */

	for (; len >= 2; p += 2, len -= 2)
		sum += get16(p);
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int is_multicast_mac(const uint8_t *mac)
{
	return mac[0] & 1; /* broadcast included */
}

/* Answer an ARP request for our address: "who has (our ip)? tell (sender)". */
static size_t handle_arp(struct ps_host *h, const uint8_t *frame, size_t len, uint8_t *out,
                         size_t out_size)
{
	const uint8_t *arp = frame + ETHH_LEN;

	/* Anything longer than ETHH_LEN + ARPH_LEN is Ethernet padding. */
	if (len < ETHH_LEN + ARPH_LEN || out_size < ETHH_LEN + ARPH_LEN)
		return 0;
	if (get16(arp + ARPH_HTYPE) != 1 || get16(arp + ARPH_PTYPE) != ETHERTYPE_IPV4 ||
	    arp[ARPH_HLEN] != 6 || arp[ARPH_PLEN] != 4 || get16(arp + ARPH_OPER) != 1)
		return 0;
	if (memcmp(arp + ARPH_TPA, h->ip, 4) != 0)
		return 0;
	/* The reply goes to the sender's hardware address; never answer towards a group. Probes
	 * with sender address 0.0.0.0 (RFC 5227) are answered too: that is how a duplicate
	 * address gets noticed. */
	if (is_multicast_mac(arp + ARPH_SHA))
		return 0;

	uint8_t *rarp = out + ETHH_LEN;
	memcpy(out + ETHH_DST, arp + ARPH_SHA, 6);
	memcpy(out + ETHH_SRC, h->mac, 6);
	put16(out + ETHH_TYPE, ETHERTYPE_ARP);
	put16(rarp + ARPH_HTYPE, 1);
	put16(rarp + ARPH_PTYPE, ETHERTYPE_IPV4);
	rarp[ARPH_HLEN] = 6;
	rarp[ARPH_PLEN] = 4;
	put16(rarp + ARPH_OPER, 2);
	memcpy(rarp + ARPH_SHA, h->mac, 6);
	memcpy(rarp + ARPH_SPA, h->ip, 4);
	memcpy(rarp + ARPH_THA, arp + ARPH_SHA, 6);
	memcpy(rarp + ARPH_TPA, arp + ARPH_SPA, 4);
	h->arp_replies++;
	return ETHH_LEN + ARPH_LEN;
}

/* Answer an ICMP echo request to our address with an echo reply carrying the same identifier,
 * sequence number and data. */
static size_t handle_ipv4(struct ps_host *h, const uint8_t *frame, size_t len, uint8_t *out,
                          size_t out_size)
{
	const uint8_t *ip = frame + ETHH_LEN;
	size_t avail = len - ETHH_LEN; /* the caller checked len >= ETHH_LEN */

	if (avail < IPH_MINLEN || ip[IPH_VIHL] >> 4 != 4)
		return 0;
	/* The header length comes from the packet: check it against what was received before
	 * reading anything past the fixed 20 bytes. Options are skipped, not interpreted. */
	size_t ihl = (size_t)(ip[IPH_VIHL] & 0x0f) * 4;
	size_t total = get16(ip + IPH_TOTLEN);
	if (ihl < IPH_MINLEN || total < ihl || total > avail)
		return 0; /* total < avail is fine: the rest is Ethernet padding */
	if (inet_checksum(ip, ihl) != 0)
		return 0;
	/* A fragment holds only part of the ICMP message, so it cannot be answered alone; we do
	 * not reassemble. Both "more fragments" and a non-zero offset mark one. */
	if (get16(ip + IPH_FRAG) & 0x3fff)
		return 0;
	if (ip[IPH_PROTO] != IPPROTO_ICMP || memcmp(ip + IPH_DST, h->ip, 4) != 0)
		return 0;
	/* Never reply to an address that stands for a group or for nobody: a reply to a
	 * broadcast source would reach every host of the network. */
	if (ip[IPH_SRC] >= 224 ||
	    (ip[IPH_SRC] | ip[IPH_SRC + 1] | ip[IPH_SRC + 2] | ip[IPH_SRC + 3]) == 0)
		return 0;

	const uint8_t *icmp = ip + ihl;
	size_t icmp_len = total - ihl;
	if (icmp_len < ICMPH_MINLEN || icmp[ICMPH_TYPE] != ICMP_TYPE_ECHO || icmp[ICMPH_CODE] != 0)
		return 0;
	if (inet_checksum(icmp, icmp_len) != 0)
		return 0;

	/* The reply has a plain 20-byte header: the request's options (record route, timestamps)
	 * are dropped, which RFC 1122 allows. So it is never longer than the request. */
	size_t reply_len = ETHH_LEN + IPH_MINLEN + icmp_len;
	if (reply_len > out_size)
		return 0;

	uint8_t *rip = out + ETHH_LEN;
	uint8_t *ricmp = rip + IPH_MINLEN;
	memcpy(out + ETHH_DST, frame + ETHH_SRC, 6);
	memcpy(out + ETHH_SRC, h->mac, 6);
	put16(out + ETHH_TYPE, ETHERTYPE_IPV4);

	rip[IPH_VIHL] = 0x45;
	rip[IPH_TOS] = ip[IPH_TOS];
	put16(rip + IPH_TOTLEN, (uint16_t)(IPH_MINLEN + icmp_len));
	memcpy(rip + IPH_ID, ip + IPH_ID, 2);
	put16(rip + IPH_FRAG, 0);
	rip[IPH_TTL] = 64;
	rip[IPH_PROTO] = IPPROTO_ICMP;
	put16(rip + IPH_CSUM, 0);
	memcpy(rip + IPH_SRC, h->ip, 4);
	memcpy(rip + IPH_DST, ip + IPH_SRC, 4);
	put16(rip + IPH_CSUM, inet_checksum(rip, IPH_MINLEN));

	memcpy(ricmp, icmp, icmp_len);
	ricmp[ICMPH_TYPE] = ICMP_TYPE_ECHOREPLY;
	put16(ricmp + ICMPH_CSUM, 0);
	put16(ricmp + ICMPH_CSUM, inet_checksum(ricmp, icmp_len));

	h->echo_replies++;
	return reply_len;
}

/* Handle one received frame (frame[0, len)). Returns the length of the reply written into
 * out[0, out_size), or 0 when the frame gets no reply. Reads nothing past frame[len - 1] and
 * writes nothing past out[out_size - 1], whatever the frame contains. */
static size_t ps_handle_frame(struct ps_host *h, const uint8_t *frame, size_t len, uint8_t *out,
                              size_t out_size)
{
	size_t n = 0;

	/* Take only frames for us or for everyone, and from a single sender we can answer. */
	if (len >= ETHH_LEN && !is_multicast_mac(frame + ETHH_SRC) &&
	    (memcmp(frame + ETHH_DST, h->mac, 6) == 0 ||
	     memcmp(frame + ETHH_DST, "\xff\xff\xff\xff\xff\xff", 6) == 0)) {
		uint16_t type = get16(frame + ETHH_TYPE);
		if (type == ETHERTYPE_ARP)
			n = handle_arp(h, frame, len, out, out_size);
		else if (type == ETHERTYPE_IPV4)
			n = handle_ipv4(h, frame, len, out, out_size);
	}
	if (n == 0)
		h->ignored++;
	return n;
}

#ifndef PING_SERVE_NO_MAIN

static void usage(FILE *f)
{
	fprintf(f, "usage: ping-serve --net:service=IFACE [--net-mac:service=MAC] -- "
	           "[--count N] IPV4-ADDRESS\n");
}

static int serve(int argc, char **argv, void *arg)
{
	struct ps_host host = {{0}, {0}, 0, 0, 0};
	const char *addr = NULL;
	unsigned long count = 0; /* 0: answer forever */

	(void)arg;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			count = strtoul(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] || argv[i][0] == '-' || count == 0) {
				fprintf(stderr, "ping-serve: bad --count '%s'\n", argv[i]);
				return 2;
			}
		} else if (!addr && argv[i][0] != '-') {
			addr = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!addr || inet_pton(AF_INET, addr, host.ip) != 1) {
		fprintf(stderr, "ping-serve: need one IPv4 address, as in 10.0.0.2\n");
		usage(stderr);
		return 2;
	}

	mk_net *net;
	struct mk_net_config cfg;
	int err = mk_net_connect("service", &net, &cfg);
	if (err < 0) {
		fprintf(stderr, "ping-serve: %s\n", mk_last_error());
		return 1;
	}
	memcpy(host.mac, cfg.mac, 6);

	/* A read needs room for the largest frame the device can deliver; one byte more lets
	 * mkhost read it with a plain read(2), which is faster. A reply is never longer than the
	 * request it answers, so the same size does for both. */
	size_t size = (size_t)cfg.mtu + MK_ETHER_HEADER + 1;
	uint8_t *frame = malloc(size), *reply = malloc(size);
	if (!frame || !reply) {
		fprintf(stderr, "ping-serve: out of memory\n");
		free(frame);
		free(reply);
		return 1;
	}

	const uint8_t *m = host.mac;
	printf("ping-serve: %s on %s, mac %02x:%02x:%02x:%02x:%02x:%02x, mtu %u\n", addr,
	       mk_net_name(net), m[0], m[1], m[2], m[3], m[4], m[5], cfg.mtu);
	fflush(stdout); /* whoever started us may wait for this line through a pipe */

	int rc = 0;
	while (count == 0 || host.echo_replies < count) {
		ssize_t n = mk_net_read_bigstring(net, frame, size, 0, size);
		if (n == -ECANCELED)
			break; /* SIGINT or SIGTERM: mk_run is shutting down */
		if (n < 0) {
			fprintf(stderr, "ping-serve: read: %s\n", mk_strerror((int)n));
			rc = 1;
			break;
		}
		size_t r = ps_handle_frame(&host, frame, (size_t)n, reply, size);
		if (r == 0)
			continue;
		/* A refused frame (0) is counted in tx_drops and reported at exit; the peer will
		 * retry, as it would on a real network. */
		ssize_t w = mk_net_write_bigstring(net, reply, size, 0, r);
		if (w < 0) {
			fprintf(stderr, "ping-serve: write: %s\n", mk_strerror((int)w));
			rc = 1;
			break;
		}
	}

	struct mk_net_stats st;
	mk_net_stats(net, &st);
	printf("ping-serve: answered %llu echo requests and %llu ARP requests, ignored %llu "
	       "frames; device rx %llu frames (%llu dropped), tx %llu frames (%llu dropped)\n",
	       (unsigned long long)host.echo_replies, (unsigned long long)host.arp_replies,
	       (unsigned long long)host.ignored, (unsigned long long)st.rx_frames,
	       (unsigned long long)st.rx_drops, (unsigned long long)st.tx_frames,
	       (unsigned long long)st.tx_drops);
	fflush(stdout);
	free(frame);
	free(reply);
	return rc;
}

int main(int argc, char **argv)
{
	int rc = mk_run(argc, argv, serve, NULL);
	if (rc == -EINTR)
		return 0; /* stopped by SIGINT or SIGTERM, after serve() printed its figures */
	if (rc < 0) {
		/* mk_run already printed the reason for a malformed device argument */
		if (rc != -EINVAL)
			fprintf(stderr, "ping-serve: %s\n", mk_strerror(rc));
		return 1;
	}
	return rc;
}

#endif /* PING_SERVE_NO_MAIN */
