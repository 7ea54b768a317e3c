/* net: answer ARP and ICMP echo ("ping") for one IPv4 address on the net device "service0".
 *
 * cmdline: "A.B.C.D [N]". It prints "ready" once the device is acquired, and after answering N
 * echo requests (never, without N) it prints what it did and exits. It checks solo5_yield's
 * promise on the way: a device reported ready has a frame for the next solo5_net_read. */
#include "solo5.h"
#include "util.h"

#define SEC 1000000000ull

enum { ETH_DST = 0, ETH_SRC = 6, ETH_TYPE = 12, ETH_LEN = 14 };
enum { ARP_OPER = 6, ARP_SHA = 8, ARP_SPA = 14, ARP_THA = 18, ARP_TPA = 24, ARP_LEN = 28 };
enum { IP_TOTLEN = 2, IP_TTL = 8, IP_PROTO = 9, IP_CSUM = 10, IP_SRC = 12, IP_DST = 16 };

static uint8_t my_mac[6], my_ip[4];
static uint64_t echoes, arps, agains;
static solo5_handle_t dev;

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

static int parse_ip(const char *s, uint8_t ip[4])
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4)
			v = v * 10 + (unsigned)(*s++ - '0'), digits++;
		if (digits == 0 || v > 255 || (i < 3 && *s++ != '.'))
			return -1;
		ip[i] = (uint8_t)v;
	}
	return (*s == '\0' || *s == ' ') ? 0 : -1;
}

static void reply(uint8_t *f, size_t len)
{
	t_copy(f + ETH_DST, f + ETH_SRC, 6);
	t_copy(f + ETH_SRC, my_mac, 6);
	t_check(solo5_net_write(dev, f, len) == SOLO5_R_OK, "a reply is sent");
}

static void on_arp(uint8_t *f, size_t len)
{
	uint8_t *a = f + ETH_LEN;

	if (len < ETH_LEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 ||
	    a[5] != 4 || get16(a + ARP_OPER) != 1 || !t_same(a + ARP_TPA, my_ip, 4))
		return;
	put16(a + ARP_OPER, 2);
	t_copy(a + ARP_THA, a + ARP_SHA, 10); /* the asker's MAC and IP become the target */
	t_copy(a + ARP_SHA, my_mac, 6);
	t_copy(a + ARP_SPA, my_ip, 4);
	reply(f, ETH_LEN + ARP_LEN);
	arps++;
}

static void on_ipv4(uint8_t *f, size_t len)
{
	uint8_t *ip = f + ETH_LEN, *icmp;
	size_t hlen, total;
	uint8_t tmp[4];

	if (len < ETH_LEN + 20 || ip[0] >> 4 != 4)
		return;
	hlen = (size_t)(ip[0] & 15) * 4;
	total = get16(ip + IP_TOTLEN);
	if (hlen < 20 || total < hlen + 8 || ETH_LEN + total > len || ip[IP_PROTO] != 1 ||
	    !t_same(ip + IP_DST, my_ip, 4) || checksum(ip, hlen) != 0)
		return;
	icmp = ip + hlen;
	if (icmp[0] != 8 || checksum(icmp, total - hlen) != 0)
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
	reply(f, ETH_LEN + total);
	echoes++;
}

int solo5_app_main(const struct solo5_start_info *si)
{
	struct solo5_net_info info;
	uint8_t *frame = (uint8_t *)si->heap_start;
	uint64_t want = 0;
	const char *p;

	if (parse_ip(si->cmdline, my_ip) != 0) {
		t_puts("usage: net -- A.B.C.D [COUNT]\n");
		return SOLO5_EXIT_FAILURE;
	}
	for (p = si->cmdline; *p != '\0' && *p != ' '; p++)
		;
	while (*p == ' ')
		p++;
	while (*p >= '0' && *p <= '9')
		want = want * 10 + (uint64_t)(*p++ - '0');

	if (solo5_net_acquire("service0", &dev, &info) != SOLO5_R_OK) {
		t_puts("net: cannot acquire service0\n");
		return SOLO5_EXIT_FAILURE;
	}
	t_copy(my_mac, info.mac_address, 6);
	t_check(si->heap_size >= info.mtu + SOLO5_NET_HLEN, "a frame fits in the heap");
	t_check(solo5_net_read(dev, frame, info.mtu + SOLO5_NET_HLEN - 1, &(size_t){0}) ==
	            SOLO5_R_EINVAL,
	        "a buffer smaller than mtu + 14 is refused");
	t_puts("ready\n");

	while (want == 0 || echoes < want) {
		solo5_handle_set_t ready = 0;
		size_t n;
		int first = 1;

		solo5_yield(solo5_clock_monotonic() + SEC, &ready);
		if (!(ready & ((solo5_handle_set_t)1 << dev)))
			continue;
		for (;;) {
			solo5_result_t r = solo5_net_read(dev, frame, info.mtu + SOLO5_NET_HLEN, &n);
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
				on_arp(frame, n);
			else if (n >= ETH_LEN && get16(frame + ETH_TYPE) == 0x0800)
				on_ipv4(frame, n);
			if (want != 0 && echoes >= want)
				break;
		}
	}
	t_puts("net: answered ");
	t_putu(echoes);
	t_puts(" echo requests and ");
	t_putu(arps);
	t_puts(" ARP requests\n");
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
