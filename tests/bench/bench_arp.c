/* bench-arp: an ARP flood, the way `ping -f` floods with echo requests (iputils arping cannot
 * flood). On an AF_PACKET socket bound to IFACE it sends an ARP who-has for TARGET, waits for the
 * matching reply (at most WAIT_MS, so that a lost reply does not stall the flood), and repeats,
 * until COUNT requests are sent or SECONDS have passed. Then it prints ping's summary line, which
 * scripts/bench reads as it reads ping's:
 *
 *   N packets transmitted, M received, X% packet loss, time Tms
 *
 *   bench-arp [-c COUNT] [-w SECONDS] IFACE TARGET-IPV4
 *
 * COUNT is 10,000,000 and SECONDS 10 unless given. It sends on IFACE and nowhere else; the
 * requests come from IFACE's MAC and IPv4 address (0.0.0.0 when it has none). Run by
 * scripts/bench inside the network namespace it makes. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchlib.h"

#define WAIT_MS       10
#define DEFAULT_COUNT 10000000ul
#define DEFAULT_S     10ul

enum { ETH_LEN = 14, ARP_LEN = 28, FRAME_LEN = 60 };
/* Offsets in the ARP packet, after the Ethernet header. */
enum { ARP_OPER = 6, ARP_SHA = 8, ARP_SPA = 14, ARP_THA = 18, ARP_TPA = 24 };

struct flood {
	int fd;
	uint8_t mac[6], ip[4], target[4];
	uint8_t request[FRAME_LEN];
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Bind to (iface) and learn its MAC and IPv4 address. */
static void flood_open(struct flood *f, const char *iface)
{
	struct ifreq ifr;
	struct sockaddr_ll sll;
	unsigned idx = if_nametoindex(iface);

	if (idx == 0)
		bench_die("no interface '%s': %s", iface, strerror(errno));
	f->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (f->fd < 0)
		bench_die("an AF_PACKET socket needs CAP_NET_RAW (run it in scripts/bench's "
		          "namespace): %s",
		          strerror(errno));
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ARP);
	sll.sll_ifindex = (int)idx;
	if (bind(f->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		bench_die("bind to %s: %s", iface, strerror(errno));

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	if (ioctl(f->fd, SIOCGIFHWADDR, &ifr) < 0)
		bench_die("the MAC address of %s: %s", iface, strerror(errno));
	memcpy(f->mac, ifr.ifr_hwaddr.sa_data, 6);
	memset(f->ip, 0, sizeof(f->ip));
	if (ioctl(f->fd, SIOCGIFADDR, &ifr) == 0)
		memcpy(f->ip, &((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr, 4);
}

/* The broadcast who-has, padded to the Ethernet minimum as the kernel's own are. */
static void flood_request(struct flood *f)
{
	uint8_t *e = f->request, *a = f->request + ETH_LEN;

	memset(f->request, 0, sizeof(f->request));
	memset(e, 0xff, 6);
	memcpy(e + 6, f->mac, 6);
	put16(e + 12, ETHERTYPE_ARP);
	put16(a, 1);          /* Ethernet */
	put16(a + 2, 0x0800); /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	put16(a + ARP_OPER, 1);
	memcpy(a + ARP_SHA, f->mac, 6);
	memcpy(a + ARP_SPA, f->ip, 4);
	memcpy(a + ARP_TPA, f->target, 4);
}

/* Is (frame) the target's answer to our question? Our own requests come back on the socket too
 * (outgoing), and other hosts' ARP may pass by: neither counts. */
static bool is_reply(const struct flood *f, const uint8_t *frame, ssize_t n)
{
	const uint8_t *a = frame + ETH_LEN;

	return n >= ETH_LEN + ARP_LEN && get16(frame + 12) == ETHERTYPE_ARP &&
	       get16(a + ARP_OPER) == 2 && memcmp(a + ARP_SPA, f->target, 4) == 0 &&
	       memcmp(a + ARP_THA, f->mac, 6) == 0 && memcmp(a + ARP_TPA, f->ip, 4) == 0;
}

/* Wait at most WAIT_MS for a reply. Returns true when one came. */
static bool await_reply(const struct flood *f)
{
	uint8_t frame[2048];
	uint64_t until = bench_now_ns() + WAIT_MS * 1000000ull;
	struct pollfd p = {.fd = f->fd, .events = POLLIN};

	for (;;) {
		uint64_t now = bench_now_ns();
		if (now >= until)
			return false;
		int r = poll(&p, 1, (int)((until - now + 999999) / 1000000));
		if (r < 0 && errno != EINTR)
			bench_die("poll: %s", strerror(errno));
		if (r <= 0)
			continue;
		ssize_t n;
		while ((n = recv(f->fd, frame, sizeof(frame), MSG_DONTWAIT)) >= 0)
			if (is_reply(f, frame, n))
				return true;
		if (errno != EAGAIN && errno != EINTR)
			bench_die("recv: %s", strerror(errno));
	}
}

int main(int argc, char **argv)
{
	struct flood f;
	unsigned long count = DEFAULT_COUNT, seconds = DEFAULT_S, sent = 0, received = 0;
	int opt;

	bench_prog = "bench-arp";
	while ((opt = getopt(argc, argv, "c:w:")) != -1) {
		switch (opt) {
		case 'c':
			count = bench_ulong(optarg, "-c COUNT");
			break;
		case 'w':
			seconds = bench_ulong(optarg, "-w SECONDS");
			break;
		default:
			bench_die("usage: bench-arp [-c COUNT] [-w SECONDS] IFACE TARGET-IPV4");
		}
	}
	if (argc - optind != 2 || inet_pton(AF_INET, argv[optind + 1], f.target) != 1)
		bench_die("usage: bench-arp [-c COUNT] [-w SECONDS] IFACE TARGET-IPV4");
	if (count == 0 || seconds == 0 || seconds > 3600)
		bench_die("-c must be at least 1, -w from 1 to 3600");
	bench_deadline((unsigned)seconds + 10); /* whatever happens, it ends */
	flood_open(&f, argv[optind]);
	flood_request(&f);

	uint64_t start = bench_now_ns(), end = start + seconds * 1000000000ull;
	while (sent < count && bench_now_ns() < end) {
		ssize_t n = send(f.fd, f.request, sizeof(f.request), 0);
		if (n < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
			bench_die("send on %s: %s", argv[optind], strerror(errno));
		if (n < 0)
			continue;
		sent++;
		/* A reply that comes after its wait is counted with the next one, as ping counts
		 * late replies; never more replies than requests. */
		if (await_reply(&f) && received < sent)
			received++;
	}
	unsigned long ms = (unsigned long)((bench_now_ns() - start) / 1000000);
	printf("\n--- %s ARP statistics ---\n", argv[optind + 1]);
	printf("%lu packets transmitted, %lu received, %lu%% packet loss, time %lums\n", sent,
	       received, sent == 0 ? 0 : (sent - received) * 100 / sent, ms);
	close(f.fd);
	return received > 0 ? 0 : 1;
}
