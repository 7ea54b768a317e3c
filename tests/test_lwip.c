/* mkhost-lwip: lwIP on mkhost devices, through examples/httpd, examples/tcp-pair and the library.
 *
 * - httpd on a TAP in a private network namespace this suite makes (mkt_enter_netns): curl
 *   fetches a page and a file, with and without keep-alive; ab makes 20,000 connections without
 *   keep-alive (the TIME_WAIT reuse of Linux clients) and none may fail;
 * - httpd on slirp with hostfwd, as nobody, with an address from slirp's DHCP (10.0.2.15);
 * - tcp-pair on a hub: LAN, 16 MiB clean and under --net-fault (on the simulated clock), and
 *   256 KiB under --net-fault in real time, its capture read back by tshark;
 * - an idle stack makes no wake-up at all.
 * Network safety: every frame stays in the namespace (the TAPs, slirp's loopback, the hub).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "mkhost-lwip.h"
#include "mkhost.h"
#include "testlib.h"

#define HTTPD    MK_BUILD_DIR "/examples/httpd"
#define TCP_PAIR MK_BUILD_DIR "/examples/tcp-pair"
#define NS       1000000000ULL

/* ---- child programs --------------------------------------------------------------------- */

struct child {
	pid_t pid;
	int out; /* its stdout and stderr */
};

/* Read from (fd) into (buf) until (needle) is there (NULL: end of file) or (ms) passed. */
static size_t read_until(int fd, char *buf, size_t size, const char *needle, int ms)
{
	size_t len = strlen(buf);

	for (int waited = 0; waited < ms && len + 1 < size;) {
		if (needle && strstr(buf, needle))
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0) {
			waited += 50;
			continue;
		}
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
	}
	return len;
}

/* Start (argv) with its output in a pipe; wait for its first line into (line). */
static int child_start(struct child *c, char *const argv[], char *line, size_t size)
{
	int p[2];

	line[0] = 0;
	if (pipe(p) != 0)
		return -1;
	c->pid = fork();
	if (c->pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	c->out = p[0];
	read_until(c->out, line, size, "\n", 15000);
	return strchr(line, '\n') ? 0 : -1;
}

/* SIGTERM; the rest of its output into (tail); its wait status. */
static int child_stop(struct child *c, char *tail, size_t size)
{
	tail[0] = 0;
	if (c->pid <= 0)
		return -1;
	kill(c->pid, SIGTERM);
	read_until(c->out, tail, size, NULL, 10000);
	int st = mkt_wait_child(c->pid, 5000);
	close(c->out);
	c->pid = -1;
	return st;
}

static long field(const char *text, const char *name)
{
	const char *p = strstr(text, name);
	return p ? strtol(p + strlen(name), NULL, 10) : -1;
}

/* ---- httpd on a TAP ---------------------------------------------------------------------- */

static struct child page_server, file_server;
static char www[] = "/tmp/mkhost-lwip-www-XXXXXX";

START_TEST(page_with_and_without_keep_alive)
{
	char out[8192];

	/* One connection for two pages, HTTP/1.1's default. */
	ck_assert_int_eq(mkt_capture(out, sizeof(out),
	                             "curl -sS -m 10 -o /dev/null -o /dev/null -w '%%{http_code} "
	                             "%%{size_download} %%{num_connects}\\n' http://10.0.0.2/a "
	                             "http://10.0.0.2/b"),
	                 0);
	ck_assert_str_eq(out, "200 1024 1\n200 1024 0\n");
	/* Connection: close, and HTTP/1.0: a connection each. */
	ck_assert_int_eq(
	    mkt_capture(out, sizeof(out),
	                "curl -sS -m 10 -H 'Connection: close' -o /dev/null -o /dev/null "
	                "-w '%%{http_code} %%{size_download} %%{num_connects}\\n' "
	                "http://10.0.0.2/a http://10.0.0.2/b"),
	    0);
	ck_assert_str_eq(out, "200 1024 1\n200 1024 1\n");
	ck_assert_int_eq(
	    mkt_capture(out, sizeof(out),
	                "curl -sS -m 10 -0 -o /dev/null -o /dev/null -w '%%{http_code} "
	                "%%{num_connects}\\n' http://10.0.0.2/a http://10.0.0.2/b"),
	    0);
	ck_assert_str_eq(out, "200 1\n200 1\n");
	/* The body itself. */
	ck_assert_int_eq(
	    mkt_capture(out, sizeof(out), "curl -sS -m 10 http://10.0.0.2/ | head -c 30"), 0);
	ck_assert_str_eq(out, "abcdefghijklmnopqrstuvwxyzabcd");
}
END_TEST

START_TEST(file_with_and_without_keep_alive)
{
	char out[8192];

	ck_assert_int_eq(mkt_sh("head -c 300000 /dev/urandom > %s/big.bin && echo hello > "
	                        "%s/index.html",
	                        www, www),
	                 0);
	ck_assert_int_eq(
	    mkt_capture(out, sizeof(out),
	                "curl -sS -m 10 -o %s/got1 -o %s/got2 -w '%%{http_code} "
	                "%%{num_connects}\\n' http://10.0.1.2/big.bin http://10.0.1.2/",
	                www, www),
	    0);
	ck_assert_str_eq(out, "200 1\n200 0\n");
	ck_assert_int_eq(
	    mkt_sh("cmp -s %s/big.bin %s/got1 && cmp -s %s/index.html %s/got2", www, www, www, www),
	    0);
	ck_assert_int_eq(
	    mkt_capture(out, sizeof(out),
	                "curl -sS -m 10 -H 'Connection: close' -o %s/got3 -o %s/got4 "
	                "-w '%%{http_code} %%{num_connects}\\n' http://10.0.1.2/big.bin "
	                "http://10.0.1.2/big.bin",
	                www, www),
	    0);
	ck_assert_str_eq(out, "200 1\n200 1\n");
	ck_assert_int_eq(
	    mkt_sh("cmp -s %s/big.bin %s/got3 && cmp -s %s/big.bin %s/got4", www, www, www, www),
	    0);
	/* Nothing outside the directory, nothing that is not there. */
	ck_assert_int_eq(mkt_capture(out, sizeof(out),
	                             "curl -sS -m 10 --path-as-is -o /dev/null -o /dev/null -w "
	                             "'%%{http_code}\\n' http://10.0.1.2/../etc/passwd "
	                             "http://10.0.1.2/missing"),
	                 0);
	ck_assert_str_eq(out, "404\n404\n");
	ck_assert_int_eq(mkt_capture(out, sizeof(out),
	                             "curl -sS -m 10 -X POST -o /dev/null -w '%%{http_code}' "
	                             "http://10.0.1.2/"),
	                 0);
	ck_assert_str_eq(out, "405");
	/* Headers longer than 8 KiB: the connection is closed without an answer. */
	int st = mkt_capture(out, sizeof(out),
	                     "curl -s -m 10 -H \"X-Long: $(head -c 9000 /dev/zero | tr '\\0' x)\" "
	                     "-o /dev/null -w '%%{http_code}' http://10.0.1.2/");
	ck_assert_msg(st == 52 && strcmp(out, "000") == 0, "%d %s", st, out);
}
END_TEST

/* 20,000 connections, each closed by the server, which keeps it in TIME_WAIT. The client
 * reuses ports still there: without the replacement on SYN ab stalls (about 3,100 in). */
START_TEST(ab_20000_without_keep_alive)
{
	static char out[16384];

	int st = mkt_capture(out, sizeof(out),
	                     "timeout 40 ab -q -s 5 -n 20000 -c 8 http://10.0.0.2/ 2>&1");
	ck_assert_msg(st == 0, "ab failed (%d):\n%s", st, out);
	ck_assert_msg(field(out, "Complete requests:") == 20000, "%s", out);
	ck_assert_msg(field(out, "Failed requests:") == 0, "%s", out);
	fprintf(stderr, "ab: %.60s\n", strstr(out, "Requests per second:"));
}
END_TEST

/* ---- httpd on slirp, as nobody ---------------------------------------------------------- */

static uint16_t free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

START_TEST(slirp_hostfwd_dhcp_as_nobody)
{
	char dev[128], line[512], out[4096];
	uint16_t port = free_port();
	struct child c;

	snprintf(dev, sizeof(dev), "--net:service=slirp,hostfwd=tcp:127.0.0.1:%u-:80", port);
	char *argv[] = {"/usr/bin/setpriv",
	                "--reuid=65534",
	                "--regid=65534",
	                "--clear-groups",
	                "--",
	                HTTPD,
	                dev,
	                "--",
	                "dhcp",
	                NULL};
	ck_assert_int_eq(child_start(&c, argv, line, sizeof(line)), 0);
	/* slirp's DHCP server hands out 10.0.2.15 first. */
	ck_assert_msg(strncmp(line, "httpd: http://10.0.2.15:80/ on service", 38) == 0, "%s", line);
	int st = mkt_capture(out, sizeof(out),
	                     "curl -sS -m 10 -o /dev/null -w '%%{http_code} %%{size_download}' "
	                     "http://127.0.0.1:%u/",
	                     port);
	char tail[2048];
	int cst = child_stop(&c, tail, sizeof(tail));
	ck_assert_msg(st == 0 && strcmp(out, "200 1024") == 0, "curl: %d %s; httpd: %s", st, out,
	              tail);
	ck_assert_msg(WIFEXITED(cst) && WEXITSTATUS(cst) == 0, "httpd: %s", tail);
}
END_TEST

/* ---- tcp-pair ---------------------------------------------------------------------------- */

START_TEST(tcp_pair_16mib)
{
	static char out[4096];

	ck_assert_int_eq(mkt_capture(out, sizeof(out),
	                             "timeout 30 " TCP_PAIR
	                             " --net:client=hub:lan --net:server=hub:lan"),
	                 0);
	ck_assert_msg(strstr(out, "tcp-pair: 16777216 of 16777216 bytes") && strstr(out, ": ok\n"),
	              "%s", out);
}
END_TEST

/* Run tcp-pair with --net-fault (seed), sending (bytes), on the simulated clock or the real one.
 * The bytes must arrive intact, and the capture of the client's device must show about as many
 * segments sent again as frames were dropped. */
static void pair_under_faults(int seed, long bytes, bool simulated)
{
	static char out[4096], pcap[64];

	snprintf(pcap, sizeof(pcap), "/tmp/mkhost-lwip-pair-XXXXXX");
	int fd = mkstemp(pcap);
	ck_assert_int_ge(fd, 0);
	close(fd);
	int st = mkt_capture(out, sizeof(out),
	                     "timeout 50 " TCP_PAIR " %s --net:client=hub:lan --net:server=hub:lan "
	                     "--net-fault:client=drop=5%%,reorder=2%%,dup=1%%,seed=%d "
	                     "--net-pcap:client=%s -- %ld",
	                     simulated ? "--clock=virtual" : "", seed, pcap, bytes);
	char done[64];
	snprintf(done, sizeof(done), "tcp-pair: %ld of %ld bytes", bytes, bytes);
	ck_assert_msg(st == 0 && strstr(out, done) && strstr(out, ": ok\n"), "%d: %s", st, out);
	const char *f = strstr(out, "client: faults sent:");
	ck_assert_ptr_nonnull(f);
	long tx_drops = field(f, "faults sent:");
	long rx_drops = field(f, "received:");
	ck_assert_int_gt(tx_drops, 0);

	/* A segment the client sends again is a retransmission to tshark, or "out of order" when
	 * it follows the previous one closely (always, on the simulated clock, which stands still
	 * while the program runs): the client never sends out of order otherwise. */
	char counted[64];
	ck_assert_int_eq(
	    mkt_capture(counted, sizeof(counted),
	                "tshark -r %s -Y 'ip.src == 10.0.0.1 && "
	                "(tcp.analysis.retransmission || tcp.analysis.fast_retransmission "
	                "|| tcp.analysis.out_of_order)' -T fields -e frame.number "
	                "2>/dev/null | wc -l",
	                pcap),
	    0);
	unlink(pcap);
	long again = strtol(counted, NULL, 10);
	/* Every data segment dropped on the way out is sent again (a few dropped frames are pure
	 * ACKs, which are not); a timeout resends all that was in flight, so more may be. */
	ck_assert_msg(again >= tx_drops - 3 && again <= 5 * (tx_drops + rx_drops) + 10,
	              "%ld segments sent again for %ld drops out, %ld in: %s", again, tx_drops,
	              rx_drops, out);
	fprintf(stderr, "tcp-pair %ld bytes, seed %d%s: %ld sent again, %ld drops out, %ld in\n",
	        bytes, seed, simulated ? ", simulated clock" : "", again, tx_drops, rx_drops);
}

/* 16 MiB under drops, duplicates and reordering. lwIP 2.1 recovers slowly from a loss that
 * fast retransmit cannot repair (its retransmission timeout is at least 1.5 s, and it has no
 * SACK): this takes about 5 minutes of lwIP's time, which the simulated clock (mkhost's, and
 * lwIP's through sys_now) makes a fraction of a second. */
START_TEST(tcp_pair_16mib_under_faults)
{
	pair_under_faults(1 + _i, 16L << 20, true);
}
END_TEST

/* Issue 14's scenario: two lwIP stacks 50 ms apart on the simulated clock, 5 % loss, and a
 * partition of 30 virtual seconds in the middle of 16 MiB. The transfer completes intact, in
 * well under a minute of real time; while the LAN is cut, the client sends its first unacked
 * segment again after intervals that double (lwIP's backoff), and once it heals, again at the
 * next interval of that schedule; two runs with one seed write identical captures. */
START_TEST(tcp_pair_partition_simulated)
{
	static char out[2][4096], pcap[2][64], times[8192];
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 2; i++) {
		snprintf(pcap[i], sizeof(pcap[i]), "/tmp/mkhost-lwip-cut-XXXXXX");
		int fd = mkstemp(pcap[i]);
		ck_assert_int_ge(fd, 0);
		close(fd);
		int st = mkt_capture(
		    out[i], sizeof(out[i]),
		    "timeout 60 " TCP_PAIR " --clock=virtual --seed=3 "
		    "--net:client=hub:lan,latency=50000 "
		    "--net:server=hub:lan,latency=50000 "
		    "--net-fault:client=drop=5%% '--net-partition:lan=20s-50s:client|server' "
		    "--net-pcap:client=%s",
		    pcap[i]);
		ck_assert_msg(st == 0 && strstr(out[i], "tcp-pair: 16777216 of 16777216 bytes") &&
		                  strstr(out[i], ": ok\n"),
		              "%d: %s", st, out[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double real = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_str_eq(out[0], out[1]);
	ck_assert_int_eq(mkt_capture(times, sizeof(times), "cmp %s %s", pcap[0], pcap[1]), 0);
	ck_assert_msg(real < 30, "two runs took %.1f s of real time", real);

	/* The send times of the segment sent most often between 15 s and the heal: the one stuck
	 * when the LAN was cut. */
	ck_assert_int_eq(
	    mkt_capture(times, sizeof(times),
	                "tshark -r %s -Y 'ip.src == 10.0.0.1 && tcp.len > 0 && "
	                "frame.time_relative > 15' -T fields -e tcp.seq "
	                "-e frame.time_relative 2>/dev/null | awk '$2 < 50 { n[$1]++ } "
	                "{ t[$1] = t[$1] \" \" $2 } END { for (s in n) if (n[s] > best) "
	                "{ best = n[s]; w = s } print t[w] }'",
	                pcap[0]),
	    0);
	double at[64];
	int n = 0;
	for (char *p = times, *end; n < 64; p = end) {
		double v = strtod(p, &end);
		if (end == p)
			break;
		at[n++] = v;
	}
	ck_assert_msg(n >= 5, "the stuck segment was sent %d times: %s", n, times);
	int after_heal = 0;
	for (int k = 2; k < n; k++) {
		double prev = at[k - 1] - at[k - 2], gap = at[k] - at[k - 1];
		if (at[k - 2] >= 20) /* sent again while nothing came back: lwIP's backoff */
			ck_assert_msg(gap > 2 * prev - 0.002 && gap < 2 * prev + 0.002,
			              "intervals %.3f then %.3f s: not doubled (%s)", prev, gap,
			              times);
		after_heal += at[k] >= 50;
	}
	ck_assert_msg(after_heal >= 1, "not sent again after the heal: %s", times);
	fprintf(stderr, "partition scenario: %s; sent at%s; two runs in %.2f s real\n",
	        strtok(out[0], "\n"), times, real);
	unlink(pcap[0]);
	unlink(pcap[1]);
}
END_TEST

/* The same on the real clock, with 256 KiB (a few seconds). */
START_TEST(tcp_pair_under_faults_real_time)
{
	pair_under_faults(1 + _i, 256L << 10, false);
}
END_TEST

/* ---- idle: no wake-up at all ------------------------------------------------------------ */

struct idle_result {
	uint64_t busy_wakeups, idle_wakeups, after_wakeups;
	int err;
};

static int idle_main(int argc, char **argv, void *arg)
{
	struct idle_result *r = arg;
	mk_net *a_net, *b_net;
	struct mk_net_config a_cfg, b_cfg;
	mk_lwip *a, *b;
	struct mk_lwip_stats s0, s1, s2, s3;

	CHECK_INT(mk_net_connect("a", &a_net, &a_cfg), ==, 0);
	CHECK_INT(mk_net_connect("b", &b_net, &b_cfg), ==, 0);
	CHECK_INT(mk_lwip_attach(a_net, &a_cfg, &a), ==, 0);
	CHECK_INT(mk_lwip_attach(b_net, &b_cfg, &b), ==, 0);
	if (mkt_failed[0])
		return 1;
	CHECK_INT(mk_lwip_set_ipv4(a, "10.9.0.1/24", NULL), ==, 0);
	CHECK_INT(mk_lwip_set_ipv4(b, "10.9.0.2", NULL), ==, 0);

	/* Busy at first: lwIP's cyclic timers run (every 100 ms in Debian's build). */
	mk_lwip_stats(a, &s0);
	mk_sleep(NS);
	mk_lwip_stats(a, &s1);
	r->busy_wakeups = s1.timer_wakeups - s0.timer_wakeups;
	/* Then, with nothing sent or received, it parks. */
	mk_sleep(6 * NS);
	mk_lwip_stats(a, &s1);
	mk_sleep(2 * NS);
	mk_lwip_stats(a, &s2);
	r->idle_wakeups = s2.timer_wakeups - s1.timer_wakeups;
	/* A connection wakes it: to an address no one has, so the SYN waits for an ARP answer that
	 * never comes, and only lwIP's timers (ARP and TCP) can go on from there. */
	struct tcp_pcb *c = tcp_new();
	ip_addr_t dst;
	IP_ADDR4(&dst, 10, 9, 0, 3);
	tcp_bind_netif(c, mk_lwip_netif(a));
	tcp_connect(c, &dst, 7, NULL);
	mk_sleep(NS / 2);
	mk_lwip_stats(a, &s3);
	r->after_wakeups = s3.timer_wakeups - s2.timer_wakeups;
	tcp_abort(c);
	CHECK_INT(mk_lwip_detach(a), ==, 0);
	CHECK_INT(mk_lwip_detach(b), ==, 0);
	return 0;
}

START_TEST(idle_makes_no_wakeup)
{
	struct idle_result r = {0};

	mkt_failed[0] = 0;
	ck_assert_int_eq(mkt_run(idle_main, &r, "--net:a=hub:idle", "--net:b=hub:idle", NULL), 0);
	ck_assert_msg(mkt_failed[0] == 0, "%s", mkt_failed);
	fprintf(stderr,
	        "timer wake-ups: %llu in the first second, %llu in 2 s idle, %llu in the "
	        "0.5 s after a connect\n",
	        (unsigned long long)r.busy_wakeups, (unsigned long long)r.idle_wakeups,
	        (unsigned long long)r.after_wakeups);
	ck_assert_uint_ge(r.busy_wakeups, 5);
	ck_assert_uint_eq(r.idle_wakeups, 0);
	ck_assert_uint_ge(r.after_wakeups, 2);
}
END_TEST

/* ---- a pbuf chain goes out as one frame ------------------------------------------------- */

struct chain_result {
	char got[64];
	uint64_t chains, frames;
};

static void chain_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                       u16_t port)
{
	struct chain_result *r = arg;

	pbuf_copy_partial(p, r->got, sizeof(r->got) - 1, 0);
	pbuf_free(p);
}

static int chain_main(int argc, char **argv, void *arg)
{
	struct chain_result *r = arg;
	mk_net *a_net, *b_net;
	struct mk_net_config a_cfg, b_cfg;
	mk_lwip *a, *b;

	CHECK_INT(mk_net_connect("a", &a_net, &a_cfg), ==, 0);
	CHECK_INT(mk_net_connect("b", &b_net, &b_cfg), ==, 0);
	CHECK_INT(mk_lwip_attach(a_net, &a_cfg, &a), ==, 0);
	CHECK_INT(mk_lwip_attach(b_net, &b_cfg, &b), ==, 0);
	if (mkt_failed[0])
		return 1;
	mk_lwip_set_ipv4(a, "10.8.0.1/24", NULL);
	mk_lwip_set_ipv4(b, "10.8.0.2/24", NULL);
	struct udp_pcb *rx = udp_new(), *tx = udp_new();
	ip_addr_t dst;
	IP_ADDR4(&dst, 10, 8, 0, 2);
	udp_bind(rx, IP4_ADDR_ANY, 9000);
	udp_recv(rx, chain_recv, r);
	udp_bind_netif(tx, mk_lwip_netif(a));

	/* Two pieces: the first with room for the headers, the second plain memory. */
	struct pbuf *head = pbuf_alloc(PBUF_TRANSPORT, 6, PBUF_RAM);
	struct pbuf *tail = pbuf_alloc(PBUF_RAW, 7, PBUF_RAM);
	memcpy(head->payload, "chain ", 6);
	memcpy(tail->payload, "of two", 7);
	pbuf_cat(head, tail);
	/* The first send waits for ARP; lwIP queues it and sends it once the answer is in. */
	CHECK_INT(udp_sendto_if(tx, head, &dst, 9000, mk_lwip_netif(a)), ==, ERR_OK);
	pbuf_free(head);
	for (int i = 0; i < 100 && r->got[0] == 0; i++)
		mk_sleep(NS / 100);
	struct mk_lwip_stats st;
	mk_lwip_stats(a, &st);
	r->chains = st.tx_chains;
	r->frames = st.tx_frames;
	udp_remove(rx);
	udp_remove(tx);
	CHECK_INT(mk_lwip_detach(a), ==, 0);
	CHECK_INT(mk_lwip_detach(b), ==, 0);
	return 0;
}

START_TEST(chain_sent_as_one_frame)
{
	struct chain_result r = {{0}, 0, 0};

	mkt_failed[0] = 0;
	ck_assert_int_eq(mkt_run(chain_main, &r, "--net:a=hub:chain", "--net:b=hub:chain", NULL),
	                 0);
	ck_assert_msg(mkt_failed[0] == 0, "%s", mkt_failed);
	ck_assert_str_eq(r.got, "chain of two");
	ck_assert_uint_ge(r.chains, 1);
	ck_assert_uint_ge(r.frames, 2); /* the ARP request, then the datagram */
}
END_TEST

/* ---- the API's refusals ----------------------------------------------------------------- */

static int bad_input_main(int argc, char **argv, void *arg)
{
	mk_net *net;
	struct mk_net_config cfg;
	mk_lwip *l;

	CHECK_INT(mk_net_connect("a", &net, &cfg), ==, 0);
	CHECK_INT(mk_lwip_attach(NULL, &cfg, &l), ==, -EINVAL);
	CHECK_INT(mk_lwip_attach(net, NULL, &l), ==, -EINVAL);
	CHECK_INT(mk_lwip_attach(net, &cfg, NULL), ==, -EINVAL);
	struct mk_net_config small = cfg;
	small.mtu = 100;
	CHECK_INT(mk_lwip_attach(net, &small, &l), ==, -EINVAL);
	CHECK_HAS(mk_lwip_last_error(), "MTU 100");
	CHECK_INT(mk_lwip_attach(net, &cfg, &l), ==, 0);
	CHECK_INT(mk_lwip_set_ipv4(l, "10.0.0.300/24", NULL), ==, -EINVAL);
	CHECK_HAS(mk_lwip_last_error(), "'10.0.0.300/24' is not an IPv4 address");
	CHECK_INT(mk_lwip_set_ipv4(l, "10.0.0.3/31", NULL), ==, -EINVAL);
	CHECK_INT(mk_lwip_set_ipv4(l, "10.0.0.3/", NULL), ==, -EINVAL);
	CHECK_INT(mk_lwip_set_ipv4(l, "10.0.0.3", "10.0.0.1/24"), ==, -EINVAL);
	CHECK_HAS(mk_lwip_last_error(), "gateway");
	char buf[32];
	CHECK_INT(mk_lwip_ipv4(l, buf, sizeof(buf)), ==, -EADDRNOTAVAIL);
	CHECK_INT(mk_lwip_set_ipv4(l, "10.0.0.3/16", "10.0.0.1"), ==, 0);
	CHECK_INT(mk_lwip_ipv4(l, buf, sizeof(buf)), ==, 11);
	CHECK_STR(buf, "10.0.0.3/16");
	CHECK_INT(mk_lwip_ipv4(l, buf, 5), ==, -EINVAL);
	/* No DHCP server on a hub alone: the deadline ends it. */
	uint64_t t0 = mk_clock_monotonic();
	CHECK_INT(mk_lwip_dhcp(l, t0 + NS / 2), ==, -ETIMEDOUT);
	CHECK(mk_clock_monotonic() - t0 < 2 * NS);
	CHECK_HAS(mk_lwip_last_error(), "no DHCP server answered");
	CHECK_INT(mk_lwip_dhcp(NULL, MK_FOREVER), ==, -EINVAL);
	CHECK_INT(mk_lwip_set_time_wait_max(0), ==, -EINVAL);
	CHECK_INT(mk_lwip_set_time_wait_max(4096), ==, 0);
	CHECK_INT(mk_lwip_stats(l, NULL), ==, -EINVAL);
	CHECK_INT(mk_lwip_detach(NULL), ==, -EINVAL);
	CHECK_INT(mk_lwip_detach(l), ==, 0);
	CHECK_INT(mk_lwip_wake(), ==, -EPERM); /* lwIP is no one's once the last netif is gone */
	return 0;
}

START_TEST(bad_input_refused)
{
	mkt_failed[0] = 0;
	ck_assert_int_eq(mkt_run(bad_input_main, NULL, "--net:a=hub:bad", NULL), 0);
	ck_assert_msg(mkt_failed[0] == 0, "%s", mkt_failed);
	ck_assert_ptr_null(mk_lwip_netif(NULL));
}
END_TEST

/* ---- setting up ------------------------------------------------------------------------- */

static int start_httpd(struct child *c, const char *tap, const char *host, const char *guest,
                       const char *what)
{
	char dev[64], line[512];
	char *argv[] = {HTTPD, dev, "--", (char *)guest, (char *)what, NULL};

	snprintf(dev, sizeof(dev), "--net:service=%s", tap);
	if (mkt_tap_create(tap, 0, 1) != 0 || mkt_sh("ip addr add %s dev %s", host, tap) != 0) {
		fprintf(stderr, "FAIL: cannot set up %s\n", tap);
		return -1;
	}
	if (child_start(c, argv, line, sizeof(line)) != 0 ||
	    strstr(line, "httpd: http://") == NULL) {
		fprintf(stderr, "FAIL: httpd on %s did not start; it said '%s'\n", tap, line);
		return -1;
	}
	return 0;
}

/* Stop a server; it must have run all along and must stop cleanly, printing its figures. */
static int stop_httpd(struct child *c, const char *name, char *tail, size_t size)
{
	int st = child_stop(c, tail, size);

	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || !strstr(tail, "requests on")) {
		fprintf(stderr, "FAIL: %s did not stop cleanly (status %d): %s\n", name, st, tail);
		return 1;
	}
	fprintf(stderr, "%s", tail);
	return 0;
}

int main(void)
{
	mkt_enter_netns();
	if (mkt_sh("command -v curl && command -v ab && command -v tshark && command -v setpriv "
	           ">/dev/null") != 0)
		mkt_skip_missing("needs curl, ab (apache2-utils), tshark and setpriv (util-linux)");
	if (mkdtemp(www) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (start_httpd(&page_server, "tap0", "10.0.0.1/24", "10.0.0.2/24", NULL) != 0 ||
	    start_httpd(&file_server, "tap1", "10.0.1.1/24", "10.0.1.2/24", www) != 0)
		return 1;

	Suite *s = suite_create("lwip");
	TCase *tc = tcase_create("lwip");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, page_with_and_without_keep_alive);
	tcase_add_test(tc, file_with_and_without_keep_alive);
	tcase_add_test(tc, ab_20000_without_keep_alive);
	mkt_add_test_as_nobody(tc, slirp_hostfwd_dhcp_as_nobody);
	tcase_add_test(tc, tcp_pair_16mib);
	tcase_add_loop_test(tc, tcp_pair_16mib_under_faults, 0, 2);
	tcase_add_test(tc, tcp_pair_partition_simulated);
	tcase_add_loop_test(tc, tcp_pair_under_faults_real_time, 0, 2);
	tcase_add_test(tc, idle_makes_no_wakeup);
	tcase_add_test(tc, chain_sent_as_one_frame);
	tcase_add_test(tc, bad_input_refused);
	suite_add_tcase(s, tc);
	int failed = mkt_run_suite(s, false);

	/* Both servers survived everything, and the ab run went through both TIME_WAIT paths. */
	char tail[4096];
	failed += stop_httpd(&page_server, "httpd on tap0", tail, sizeof(tail));
	if (field(tail, "httpd: ") >= 20000 &&
	    (field(tail, "TIME_WAIT replaced ") <= 0 || field(tail, "dropped ") <= 0)) {
		fprintf(stderr,
		        "FAIL: after 20,000 connections no TIME_WAIT entry was replaced or "
		        "none dropped: %s",
		        tail);
		failed++;
	}
	failed += stop_httpd(&file_server, "httpd on tap1", tail, sizeof(tail));
	mkt_sh("rm -rf %s", www);
	return failed == 0 ? 0 : 1;
}
