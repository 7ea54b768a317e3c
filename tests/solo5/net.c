/* net: answer ARP and ICMP echo ("ping") for an IPv4 address on the net device "service0", and
 * on "service1" too when it is given; and, when asked, flood-ping service0 from a third device.
 *
 * cmdline: "A.B.C.D [N] [second=E.F.G.H] [flood=COUNT:SIZE:WINDOW]".
 *   A.B.C.D   service0's address; E.F.G.H service1's (the device must then be given)
 *   N         after answering N echo requests in all (never, without N), it prints what it
 *             did and exits; "limit" is N = 100000, as Solo5's own ping-serve test runs
 *   flood=... the device "client" (on the same hub as service0) sends COUNT echo requests of
 *             SIZE payload bytes, patterned 0xdeadbeef, to service0, keeping WINDOW of them in
 *             flight (ping -f -l WINDOW), and checks that every reply comes back, intact
 * It prints "ready" once the devices are acquired. It checks solo5_yield's promise on the way: a
 * device reported ready has a frame for the next solo5_net_read. */
#include "solo5.h"
#include "util.h"

#define SEC 1000000000ull

enum { ETH_DST = 0, ETH_SRC = 6, ETH_TYPE = 12, ETH_LEN = 14 };
enum { ARP_OPER = 6, ARP_SHA = 8, ARP_SPA = 14, ARP_THA = 18, ARP_TPA = 24, ARP_LEN = 28 };
enum { IP_TOTLEN = 2, IP_TTL = 8, IP_PROTO = 9, IP_CSUM = 10, IP_SRC = 12, IP_DST = 16 };

struct iface {
	const char *name;
	solo5_handle_t h;
	uint8_t mac[6], ip[4];
	size_t mtu;
	int up;
};

static struct iface ifs[3] = {{.name = "service0"}, {.name = "service1"}, {.name = "client"}};
#define CLIENT (&ifs[2])
static uint64_t echoes, arps, agains;

/* the flood */
static uint64_t flood_count, flood_size, flood_window, sent, received, corrupted;
static uint8_t server_mac[6];
static int server_known;

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

static const char *parse_ip(const char *s, uint8_t ip[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4)
			v = v * 10 + (unsigned)(*s++ - '0'), digits++;
		if (digits == 0 || v > 255 || (i < 3 && *s++ != '.'))
			return 0;
		ip[i] = (uint8_t)v;
	}
	return (*s == '\0' || *s == ' ') ? s : 0;
}

static const char *parse_u64(const char *s, uint64_t *v)
{
	*v = 0;
	if (*s < '0' || *s > '9')
		return 0;
	while (*s >= '0' && *s <= '9')
		*v = *v * 10 + (uint64_t)(*s++ - '0');
	return s;
}

static int starts(const char *s, const char *prefix)
{
	while (*prefix != '\0' && *s == *prefix)
		s++, prefix++;
	return *prefix == '\0';
}

static void reply(struct iface *i, uint8_t *f, size_t len)
{
	t_copy(f + ETH_DST, f + ETH_SRC, 6);
	t_copy(f + ETH_SRC, i->mac, 6);
	t_check(solo5_net_write(i->h, f, len) == SOLO5_R_OK, "a reply is sent");
}

static void on_arp(struct iface *i, uint8_t *f, size_t len)
{
	uint8_t *a = f + ETH_LEN;

	if (len < ETH_LEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 ||
	    a[5] != 4 || !t_same(a + ARP_TPA, i->ip, 4))
		return;
	if (get16(a + ARP_OPER) == 2 && i == CLIENT) { /* the answer to the client's question */
		t_copy(server_mac, a + ARP_SHA, 6);
		server_known = 1;
		return;
	}
	if (get16(a + ARP_OPER) != 1 || i == CLIENT)
		return;
	put16(a + ARP_OPER, 2);
	t_copy(a + ARP_THA, a + ARP_SHA, 10); /* the asker's MAC and IP become the target */
	t_copy(a + ARP_SHA, i->mac, 6);
	t_copy(a + ARP_SPA, i->ip, 4);
	reply(i, f, ETH_LEN + ARP_LEN);
	arps++;
}

static uint8_t pattern(size_t k)
{
	static const uint8_t deadbeef[4] = {0xde, 0xad, 0xbe, 0xef};
	return deadbeef[k % 4];
}

/* An echo reply reached the client: its payload must be the pattern, untouched. */
static void on_echo_reply(uint8_t *icmp, size_t len)
{
	int intact = len == 8 + flood_size;

	for (size_t k = 0; intact && k < flood_size; k++)
		intact = icmp[8 + k] == pattern(k);
	if (!intact)
		corrupted++;
	received++;
}

static void on_ipv4(struct iface *i, uint8_t *f, size_t len)
{
	uint8_t *ip = f + ETH_LEN, *icmp;
	size_t hlen, total;
	uint8_t tmp[4];

	if (len < ETH_LEN + 20 || ip[0] >> 4 != 4)
		return;
	hlen = (size_t)(ip[0] & 15) * 4;
	total = get16(ip + IP_TOTLEN);
	if (hlen < 20 || total < hlen + 8 || ETH_LEN + total > len || ip[IP_PROTO] != 1 ||
	    !t_same(ip + IP_DST, i->ip, 4) || checksum(ip, hlen) != 0)
		return;
	icmp = ip + hlen;
	if (checksum(icmp, total - hlen) != 0)
		return;
	if (i == CLIENT) {
		if (icmp[0] == 0)
			on_echo_reply(icmp, total - hlen);
		return;
	}
	if (icmp[0] != 8)
		return;
	t_copy(tmp, ip + IP_SRC, 4);
	t_copy(ip + IP_SRC, ip + IP_DST, 4);
	t_copy(ip + IP_DST, tmp, 4);
	ip[IP_TTL] = 64;
	put16(ip + IP_CSUM, 0);
	put16(ip + IP_CSUM, checksum(ip, hlen));
	icmp[0] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 2, checksum(icmp, total - hlen));
	reply(i, f, ETH_LEN + total);
	echoes++;
}

/* The client's next frame: an ARP request for service0 until its MAC is known, then echo
 * requests while fewer than the window are in flight. */
static void client_send(uint8_t *f)
{
	uint8_t *ip = f + ETH_LEN, *icmp = ip + 20;
	size_t total = 20 + 8 + flood_size;

	t_copy(f + ETH_SRC, CLIENT->mac, 6);
	if (!server_known) {
		uint8_t *a = f + ETH_LEN;
		t_fill(f + ETH_DST, 0xff, 6);
		put16(f + ETH_TYPE, 0x0806);
		put16(a, 1), put16(a + 2, 0x0800), a[4] = 6, a[5] = 4, put16(a + ARP_OPER, 1);
		t_copy(a + ARP_SHA, CLIENT->mac, 6);
		t_copy(a + ARP_SPA, CLIENT->ip, 4);
		t_fill(a + ARP_THA, 0, 6);
		t_copy(a + ARP_TPA, ifs[0].ip, 4);
		solo5_net_write(CLIENT->h, f, ETH_LEN + ARP_LEN);
		return;
	}
	while (sent < flood_count && sent - received < flood_window) {
		t_copy(f + ETH_DST, server_mac, 6);
		put16(f + ETH_TYPE, 0x0800);
		t_fill(ip, 0, 20);
		ip[0] = 0x45, put16(ip + IP_TOTLEN, (unsigned)total), ip[IP_TTL] = 64,
		ip[IP_PROTO] = 1;
		put16(ip + 4, (unsigned)sent);
		t_copy(ip + IP_SRC, CLIENT->ip, 4);
		t_copy(ip + IP_DST, ifs[0].ip, 4);
		put16(ip + IP_CSUM, checksum(ip, 20));
		icmp[0] = 8, icmp[1] = 0, put16(icmp + 2, 0), put16(icmp + 4, 0x5335);
		put16(icmp + 6, (unsigned)sent);
		for (size_t k = 0; k < flood_size; k++)
			icmp[8 + k] = pattern(k);
		put16(icmp + 2, checksum(icmp, 8 + flood_size));
		t_check(solo5_net_write(CLIENT->h, f, ETH_LEN + total) == SOLO5_R_OK,
		        "an echo request is sent");
		sent++;
	}
}

static int parse_cmdline(const char *p, uint64_t *want)
{
	p = parse_ip(p, ifs[0].ip);
	if (p == 0)
		return -1;
	*want = 0;
	while (*p == ' ') {
		while (*p == ' ')
			p++;
		if (*p >= '0' && *p <= '9')
			p = parse_u64(p, want);
		else if (starts(p, "limit") && (p[5] == ' ' || p[5] == '\0'))
			*want = 100000, p += 5; /* as Solo5's ping-serve test runs it */
		else if (starts(p, "second="))
			p = parse_ip(p + 7, ifs[1].ip);
		else if (starts(p, "flood=")) {
			p = parse_u64(p + 6, &flood_count);
			if (p != 0 && *p == ':')
				p = parse_u64(p + 1, &flood_size);
			if (p != 0 && *p == ':')
				p = parse_u64(p + 1, &flood_window);
			if (p == 0 || flood_count == 0 || flood_window == 0)
				return -1;
		} else if (*p != '\0')
			return -1;
		if (p == 0)
			return -1;
	}
	return *p == '\0' ? 0 : -1;
}

int solo5_app_main(const struct solo5_start_info *si)
{
	struct solo5_net_info info;
	uint8_t *frame = (uint8_t *)si->heap_start, *out;
	uint64_t want = 0, idle_rounds = 0;
	size_t max = 0;

	if (parse_cmdline(si->cmdline, &want) != 0) {
		t_puts(
		    "usage: net -- A.B.C.D [COUNT] [second=E.F.G.H] [flood=COUNT:SIZE:WINDOW]\n");
		return SOLO5_EXIT_FAILURE;
	}
	for (int k = 0; k < 3; k++) {
		struct iface *i = &ifs[k];
		int needed = k == 0 || (k == 1 && ifs[1].ip[0] != 0) || (k == 2 && flood_count);
		if (!needed)
			continue;
		if (solo5_net_acquire(i->name, &i->h, &info) != SOLO5_R_OK) {
			t_puts("net: cannot acquire ");
			t_puts(i->name);
			t_puts("\n");
			return SOLO5_EXIT_FAILURE;
		}
		t_copy(i->mac, info.mac_address, 6);
		i->mtu = info.mtu;
		i->up = 1;
		if (info.mtu + SOLO5_NET_HLEN > max)
			max = info.mtu + SOLO5_NET_HLEN;
	}
	if (flood_count) {
		t_copy(CLIENT->ip, ifs[0].ip, 4);
		CLIENT->ip[3] = 254;
		if (28 + flood_size > CLIENT->mtu) {
			t_puts("net: the flood's frames do not fit the client's MTU\n");
			return SOLO5_EXIT_FAILURE;
		}
	}
	t_check(si->heap_size >= 2 * max, "two frames fit in the heap");
	out = frame + max;
	t_check(solo5_net_read(ifs[0].h, frame, ifs[0].mtu + SOLO5_NET_HLEN - 1, &(size_t){0}) ==
	            SOLO5_R_EINVAL,
	        "a buffer smaller than mtu + 14 is refused");
	t_puts("ready\n");

	for (;;) {
		solo5_handle_set_t ready = 0;
		int any = 0;

		if (want != 0 && echoes >= want)
			break;
		if (flood_count && received >= flood_count)
			break;
		if (flood_count)
			client_send(out);
		solo5_yield(solo5_clock_monotonic() + (flood_count ? SEC / 10 : SEC), &ready);
		for (int k = 0; k < 3; k++) {
			struct iface *i = &ifs[k];
			int first = 1;
			size_t n;

			if (!i->up || !(ready & ((solo5_handle_set_t)1 << i->h)))
				continue;
			any = 1;
			for (;;) {
				solo5_result_t r =
				    solo5_net_read(i->h, frame, i->mtu + SOLO5_NET_HLEN, &n);
				if (r == SOLO5_R_AGAIN) {
					t_check(!first, "a device reported ready has a frame");
					agains++;
					break;
				}
				if (r != SOLO5_R_OK) {
					t_puts("net: read failed\n");
					return SOLO5_EXIT_FAILURE;
				}
				first = 0;
				if (n >= ETH_LEN && get16(frame + ETH_TYPE) == 0x0806)
					on_arp(i, frame, n);
				else if (n >= ETH_LEN && get16(frame + ETH_TYPE) == 0x0800)
					on_ipv4(i, frame, n);
				if (want != 0 && echoes >= want)
					break;
			}
		}
		/* a flood that stalls (a lost frame) ends after a few idle seconds, counted */
		idle_rounds = any ? 0 : idle_rounds + 1;
		if (flood_count && idle_rounds > 30)
			break;
	}
	t_puts("net: answered ");
	t_putu(echoes);
	t_puts(" echo requests and ");
	t_putu(arps);
	t_puts(" ARP requests\n");
	if (flood_count) {
		t_puts("flood: ");
		t_putu(sent);
		t_puts(" sent, ");
		t_putu(received);
		t_puts(" received, ");
		t_putu(corrupted);
		t_puts(" corrupted\n");
		t_check(received == flood_count && corrupted == 0, "every echo comes back, intact");
	}
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
