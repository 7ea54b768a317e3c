/* The soak: frames through a TAP for a long time, every one accounted for, and memory flat.
 *
 *   soak [SECONDS] [RATE]      (defaults: 60 s, 5000 frames/s); run it with scripts/soak
 *
 * Root only (exit 77 otherwise): it enters a private network namespace, creates the TAP tsk0
 * there, and forks a peer that sends frames of 60 to 1514 bytes to it through an AF_PACKET socket
 * at RATE frames per second, below what mkhost can carry, and takes the echoes back. The
 * mkhost side echoes every frame it reads. At the end:
 *   frames the peer sent = frames mkhost read + drops counted by mkhost (rx_drops) + drops counted
 *                          by the kernel on the way to the TAP (the interface's tx_dropped)
 *   frames mkhost echoed = tx_frames, and tx_frames + tx_drops = frames it read
 *   echoes the peer got  = tx_frames - drops counted by the packet socket (PACKET_STATISTICS)
 * and the resident memory of the mkhost process after the first second is printed with the one
 * at the end; it must not grow by more than 1 MiB. Exit 0 when all of it holds, 1 otherwise.
 * Bounded: everything is given up SECONDS + 60 s after the start. */
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

#define IFNAME       "tsk0"
#define ETHERTYPE    0x88b5
#define MS           1000000ULL
#define RSS_SLACK_KB 1024

struct peer_result {
	uint64_t sent, echoed, sock_drops;
	int err;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* The kernel's count of frames the interface dropped before they reached the TAP descriptor. */
static uint64_t iface_tx_dropped(void)
{
	struct ifaddrs *all;
	uint64_t v = 0;

	if (getifaddrs(&all) != 0)
		return 0;
	for (struct ifaddrs *p = all; p; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_PACKET && p->ifa_data &&
		    strcmp(p->ifa_name, IFNAME) == 0)
			v = ((struct rtnl_link_stats *)p->ifa_data)->tx_dropped;
	freeifaddrs(all);
	return v;
}

static size_t frame_len(uint64_t seq)
{
	return 60 + (size_t)((seq * 7919) % (1514 - 60 + 1));
}

static void frame_fill(uint8_t *f, size_t len, uint64_t seq)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x01", 6);
	f[12] = ETHERTYPE >> 8;
	f[13] = ETHERTYPE & 0xff;
	for (int i = 0; i < 8; i++)
		f[14 + i] = (uint8_t)(seq >> (56 - 8 * i));
	for (size_t i = 22; i < len; i++)
		f[i] = (uint8_t)(seq + i);
}

/* ---- the peer (a child process) ------------------------------------------------------------ */

static void peer(int go_fd, int result_fd, unsigned seconds, unsigned rate)
{
	struct peer_result res = {0};
	uint8_t f[2048];
	int fd = mkt_packet_socket(IFNAME, 1000);
	char c;

	if (fd < 0) {
		res.err = errno;
	} else if (read(go_fd, &c, 1) != 1) {
		res.err = EPIPE;
	} else {
		int big = 16 << 20;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
		uint64_t t0 = now_ns(), end = t0 + seconds * 1000000000ULL;
		uint64_t interval = 1000000000ULL / rate;
		uint64_t next = t0;
		for (;;) {
			uint64_t now = now_ns();
			if (now >= end)
				break;
			while (next <= now && next < end) {
				size_t len = frame_len(res.sent);
				frame_fill(f, len, res.sent);
				ssize_t w = send(fd, f, len, MSG_DONTWAIT);
				if (w == (ssize_t)len) {
					res.sent++;
					next += interval;
				} else if (w < 0 && (errno == ENOBUFS || errno == EAGAIN)) {
					break; /* the socket's own queue is full: retry this one */
				} else {
					res.err = w < 0 ? errno : EIO;
					goto out;
				}
			}
			/* Take the echoes, until the next frame is due. */
			uint64_t wait = next > now ? next - now : 0;
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, (int)(wait / MS)) > 0) {
				for (;;) {
					struct sockaddr_ll sll;
					socklen_t sl = sizeof(sll);
					ssize_t n = recvfrom(fd, f, sizeof(f), MSG_DONTWAIT,
					                     (struct sockaddr *)&sll, &sl);
					if (n < 0)
						break;
					if (sll.sll_pkttype != PACKET_OUTGOING && n >= 22 &&
					    f[12] == (ETHERTYPE >> 8) &&
					    f[13] == (ETHERTYPE & 0xff))
						res.echoed++;
				}
			}
		}
		/* The last echoes. */
		for (uint64_t t1 = now_ns(); now_ns() - t1 < 1000 * MS;) {
			struct sockaddr_ll sll;
			socklen_t sl = sizeof(sll);
			ssize_t n = recvfrom(fd, f, sizeof(f), 0, (struct sockaddr *)&sll, &sl);
			if (n < 0)
				break; /* the 1 s receive timeout: nothing more comes */
			if (sll.sll_pkttype != PACKET_OUTGOING && n >= 22 &&
			    f[12] == (ETHERTYPE >> 8) && f[13] == (ETHERTYPE & 0xff))
				res.echoed++;
		}
		struct tpacket_stats st;
		socklen_t sl = sizeof(st);
		if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0)
			res.sock_drops = st.tp_drops;
	}
out:
	if (write(result_fd, &res, sizeof(res)) != sizeof(res))
		_exit(2);
	_exit(0);
}

/* ---- the mkhost side ------------------------------------------------------------------------ */

struct soak {
	unsigned seconds, rate;
	int go_fd, result_fd;
	struct peer_result peer;
	int got_peer;
	mk_net *net;
	uint64_t read_test, read_other, echo_refused;
	ssize_t read_err;
	long rss_start, rss_end;
	struct mk_net_stats st;
};

static intptr_t echo_task(void *arg)
{
	struct soak *s = arg;
	uint8_t buf[1514];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(s->net, buf, sizeof(buf), 0, sizeof(buf));
		if (n < 0) {
			s->read_err = n;
			return 0;
		}
		if (n < 22 || buf[12] != (ETHERTYPE >> 8) || buf[13] != (ETHERTYPE & 0xff)) {
			s->read_other++;
			continue;
		}
		s->read_test++;
		memcpy(buf + 6, "\x02\x00\x00\x00\x00\x02", 6);
		if (mk_net_write_bigstring(s->net, buf, sizeof(buf), 0, (size_t)n) == 0)
			s->echo_refused++;
	}
}

static int soak_main(int argc, char **argv, void *arg)
{
	struct soak *s = arg;
	mk_task *echo;
	int r = mk_net_connect("soak", &s->net, NULL);

	if (r != 0) {
		fprintf(stderr, "soak: %s\n", mk_last_error());
		return 1;
	}
	if (mk_task_spawn(&echo, "echo", echo_task, s) != 0)
		return 1;
	usleep(50000); /* the interface is running once attached; let the queue come up */
	if (write(s->go_fd, "g", 1) != 1)
		return 1;

	uint64_t t0 = mk_clock_monotonic();
	uint64_t next_report = 10;
	while (!s->got_peer) {
		if (mk_sleep(100 * MS) != 0)
			break;
		uint64_t secs = (mk_clock_monotonic() - t0) / 1000000000ULL;
		if (s->rss_start < 0 && secs >= 1)
			s->rss_start =
			    rss_kb(); /* after a second of traffic: buffers and pools are up */
		if (secs >= next_report && secs < s->seconds) {
			printf("soak: %llu s: %llu frames echoed, RSS %ld kB\n",
			       (unsigned long long)secs, (unsigned long long)s->read_test,
			       rss_kb());
			fflush(stdout);
			next_report += 10;
		}
		struct pollfd p = {.fd = s->result_fd, .events = POLLIN};
		if (poll(&p, 1, 0) == 1) {
			if (read(s->result_fd, &s->peer, sizeof(s->peer)) == sizeof(s->peer))
				s->got_peer = 1;
			else
				break;
		}
	}
	s->rss_end = rss_kb();
	mk_task_cancel(echo);
	mk_task_await(echo, NULL);
	mk_net_stats(s->net, &s->st);
	return s->got_peer ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct soak s = {.seconds = 60, .rate = 5000, .rss_start = -1};

	if (argc > 1)
		s.seconds = (unsigned)strtoul(argv[1], NULL, 10);
	if (argc > 2)
		s.rate = (unsigned)strtoul(argv[2], NULL, 10);
	if (s.seconds == 0 || s.rate == 0 || s.rate > 1000000) {
		fprintf(stderr, "usage: soak [SECONDS] [RATE]\n");
		return 2;
	}
	alarm(s.seconds + 60);
	mkt_enter_netns();
	mkt_sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1");
	mkt_sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1");
	if (mkt_tap_create(IFNAME, 0, 1) != 0) {
		fprintf(stderr, "soak: cannot create %s\n", IFNAME);
		return 1;
	}

	int go[2], result[2];
	if (pipe(go) != 0 || pipe(result) != 0)
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(go[1]);
		close(result[0]);
		peer(go[0], result[1], s.seconds, s.rate);
	}
	close(go[0]);
	close(result[1]);
	s.go_fd = go[1];
	s.result_fd = result[0];

	char *args[] = {"soak", "--net:soak=" IFNAME, NULL};
	printf("soak: %u s at %u frames/s through %s (%s backend)\n", s.seconds, s.rate, IFNAME,
	       getenv("MKHOST_BACKEND") ? getenv("MKHOST_BACKEND") : "default");
	fflush(stdout);
	int rc = mk_run(2, args, soak_main, &s);
	close(go[1]);
	int st;
	waitpid(pid, &st, 0);
	uint64_t kdrops = iface_tx_dropped();
	mkt_tap_delete(IFNAME);

	if (rc != 0 || !s.got_peer || s.peer.err != 0) {
		fprintf(stderr, "soak: FAILED: mk_run %d, peer %s (%s)\n", rc,
		        s.got_peer ? "done" : "lost", strerror(s.peer.err));
		return 1;
	}
	uint64_t sent = s.peer.sent;
	uint64_t accounted = s.read_test + s.st.rx_drops + kdrops;
	printf("soak: peer sent %llu; mkhost read %llu (+%llu other), dropped %llu (rx_drops), "
	       "kernel dropped %llu before the TAP\n",
	       (unsigned long long)sent, (unsigned long long)s.read_test,
	       (unsigned long long)s.read_other, (unsigned long long)s.st.rx_drops,
	       (unsigned long long)kdrops);
	printf(
	    "soak: mkhost echoed %llu (tx_drops %llu); peer got %llu echoes (socket drops %llu)\n",
	    (unsigned long long)s.st.tx_frames, (unsigned long long)s.st.tx_drops,
	    (unsigned long long)s.peer.echoed, (unsigned long long)s.peer.sock_drops);
	printf("soak: RSS at start %ld kB, at end %ld kB\n", s.rss_start, s.rss_end);

	int ok = 1;
	if (accounted != sent) {
		printf("soak: FAILED: received + counted drops = %llu, sent %llu\n",
		       (unsigned long long)accounted, (unsigned long long)sent);
		ok = 0;
	}
	if (s.st.tx_frames + s.st.tx_drops != s.read_test || s.echo_refused != s.st.tx_drops) {
		printf("soak: FAILED: echoes %llu + refused %llu != frames read %llu\n",
		       (unsigned long long)s.st.tx_frames, (unsigned long long)s.st.tx_drops,
		       (unsigned long long)s.read_test);
		ok = 0;
	}
	if (s.peer.echoed + s.peer.sock_drops < s.st.tx_frames) {
		printf(
		    "soak: FAILED: %llu echoes written, the peer saw %llu (+%llu socket drops)\n",
		    (unsigned long long)s.st.tx_frames, (unsigned long long)s.peer.echoed,
		    (unsigned long long)s.peer.sock_drops);
		ok = 0;
	}
	if (s.rss_start < 0 || s.rss_end > s.rss_start + RSS_SLACK_KB) {
		printf("soak: FAILED: RSS grew from %ld kB to %ld kB\n", s.rss_start, s.rss_end);
		ok = 0;
	}
	if (s.read_err != -ECANCELED) {
		printf("soak: FAILED: the echo task's read ended with %s\n",
		       mk_strerror((int)s.read_err));
		ok = 0;
	}
	printf("soak: %s\n", ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
