/* libFuzzer target: the ARP and ICMP echo handling of examples/ping-serve.c (ps_handle_frame),
 * compiled in with its main() hidden, as the example intends. The input is one received frame.
 *
 * Checked for every frame, besides what ASan and UBSan see (the frame and the reply buffers are
 * allocations of exactly their size, so a read or write one byte out is caught):
 * - the reply is the same whether the reply buffer is exactly the frame's size or much larger
 *   (a reply is never longer than its request), and is refused (0) when it does not fit;
 * - a reply comes from our MAC, goes to a unicast MAC, and is an ARP reply (42 bytes) or an IPv4
 *   ICMP echo reply from our address with valid IP and ICMP checksums;
 * - the counters add up: every call is an ARP reply, an echo reply or an ignored frame. */
#define PING_SERVE_NO_MAIN
#include "../../examples/ping-serve.c"

#define BIG_OUT 65536

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_ping: invariant broken: %s\n", what);
		abort();
	}
}

static const struct ps_host host0 = {
	.mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02},
	.ip = {10, 0, 0, 2},
};

static void check_reply(const uint8_t *frame, size_t len, const uint8_t *r, size_t n)
{
	check(n >= ETHH_LEN, "a reply shorter than an Ethernet header");
	check(n <= len, "a reply longer than its request");
	check(memcmp(r + ETHH_SRC, host0.mac, 6) == 0, "a reply not from our MAC");
	check(!is_multicast_mac(r + ETHH_DST), "a reply to a group MAC");
	check(memcmp(r + ETHH_DST, frame + ETHH_SRC, 6) == 0 || get16(r + ETHH_TYPE) == ETHERTYPE_ARP,
	      "an echo reply not to the sender");
	if (get16(r + ETHH_TYPE) == ETHERTYPE_ARP) {
		check(n == ETHH_LEN + ARPH_LEN, "an ARP reply of the wrong length");
		check(get16(r + ETHH_LEN + ARPH_OPER) == 2, "an ARP reply that is not a reply");
		check(memcmp(r + ETHH_LEN + ARPH_SPA, host0.ip, 4) == 0, "an ARP reply for another IP");
		return;
	}
	check(get16(r + ETHH_TYPE) == ETHERTYPE_IPV4, "a reply neither ARP nor IPv4");
	const uint8_t *ip = r + ETHH_LEN;
	check(n >= ETHH_LEN + IPH_MINLEN + ICMPH_MINLEN, "an echo reply too short");
	check(ip[IPH_VIHL] == 0x45, "an echo reply with options");
	check(get16(ip + IPH_TOTLEN) == n - ETHH_LEN, "an echo reply whose IP length is wrong");
	check(inet_checksum(ip, IPH_MINLEN) == 0, "an echo reply with a bad IP checksum");
	check(memcmp(ip + IPH_SRC, host0.ip, 4) == 0, "an echo reply from another address");
	check(ip[IPH_PROTO] == IPPROTO_ICMP, "an echo reply that is not ICMP");
	check(ip[IPH_DST] < 224, "an echo reply to a group address");
	check(ip[IPH_DST] | ip[IPH_DST + 1] | ip[IPH_DST + 2] | ip[IPH_DST + 3],
	      "an echo reply to 0.0.0.0");
	check(ip[IPH_MINLEN + ICMPH_TYPE] == ICMP_TYPE_ECHOREPLY, "an ICMP reply of another type");
	check(inet_checksum(ip + IPH_MINLEN, n - ETHH_LEN - IPH_MINLEN) == 0,
	      "an echo reply with a bad ICMP checksum");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_host h = host0;
	uint8_t *frame = malloc(size ? size : 1);
	uint8_t *exact = malloc(size ? size : 1);
	uint8_t *big = malloc(BIG_OUT);

	if (frame == NULL || exact == NULL || big == NULL)
		abort();
	memcpy(frame, data, size);

	size_t n_big = ps_handle_frame(&h, frame, size, big, BIG_OUT);
	check(n_big <= BIG_OUT, "a reply longer than the buffer");
	check(memcmp(frame, data, size) == 0, "the received frame was modified");
	if (n_big > 0)
		check_reply(frame, size, big, n_big);

	/* The same frame with a reply buffer of exactly its size: the same reply, if it fits. */
	size_t n_exact = ps_handle_frame(&h, frame, size, exact, size);
	if (n_big <= size) {
		check(n_exact == n_big, "the reply changed with the size of the reply buffer");
		check(memcmp(exact, big, n_big) == 0, "the reply bytes changed with the buffer size");
	} else {
		check(n_exact == 0, "a reply larger than the buffer was written");
	}

	/* One byte short of the reply: refused, nothing written out of bounds. */
	if (n_big > 0) {
		uint8_t *tight = malloc(n_big - 1 ? n_big - 1 : 1);
		if (tight == NULL)
			abort();
		check(ps_handle_frame(&h, frame, size, tight, n_big - 1) == 0,
		      "a reply written into a buffer one byte too small");
		free(tight);
	}

	uint64_t calls = n_big > 0 ? 3 : 2;
	check(h.arp_replies + h.echo_replies + h.ignored == calls, "the counters do not add up");
	free(frame);
	free(exact);
	free(big);
	return 0;
}
