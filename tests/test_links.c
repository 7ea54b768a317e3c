/* Links that need no root and no TAP: unix: sockets between processes, the in-process hub:,
 * slirp user-mode networking, pcap capture and fault injection.
 *
 * The whole suite runs without privilege, to prove none is needed: started as root, main()
 * re-executes it under `setpriv --reuid=nobody --regid=nogroup --clear-groups`, and checks that
 * it then has no capability at all. Everything it sends stays in the process, in Unix sockets of
 * a scratch directory, or on 127.0.0.1.
 *
 * Check runs every test in a process of its own (fork mode); tests that need two programs fork
 * again, and every child has an alarm() so that a broken link fails a test instead of hanging it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

/* The ARP and ICMP echo responder of examples/ping-serve.c, made to be included this way. */
#define PING_SERVE_NO_MAIN
#include "../examples/ping-serve.c"

#define TEST_ETHERTYPE 0x88b5 /* IEEE 802 local experimental */
#define SEQ_END        0xffffffffu
#define US             1000ULL
#define MS             1000000ULL
#define FRAME_MAX      1514

static char scratch[200]; /* a directory of our own, made after dropping privileges */

/* ---------------------------------------------------------------------------------------- */
/*  Processes                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Fork a child that runs mk_run(main, arg) on the NULL-terminated device arguments and exits
 * with its value (100 + -value for a negative one). */
static pid_t child_run(mk_main_fn main, void *arg, const char *a1, const char *a2, const char *a3)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Check's handlers would take the whole test down: let mk_run have these. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		alarm(60);
		int rc = mkt_run(main, arg, a1, a2, a3, (char *)NULL);
		_exit(rc < 0 ? 100 + (-rc & 0x7f) : rc & 0xff);
	}
	return pid;
}

/* The exit status of (pid) within (seconds), or -1 (then it is killed). */
static int child_wait(pid_t pid, int seconds)
{
	for (int i = 0; i < seconds * 100; i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static bool wait_for_file(const char *path, int seconds)
{
	for (int i = 0; i < seconds * 100; i++) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(10000);
	}
	return false;
}

/* ---------------------------------------------------------------------------------------- */
/*  Test frames: generation and sequence number, length and content derived from both        */
/* ---------------------------------------------------------------------------------------- */

static size_t test_len(uint32_t gen, uint32_t seq)
{
	return seq == SEQ_END ? 60 : 60 + (seq * 7919u + gen) % (FRAME_MAX - 60 + 1);
}

static uint8_t test_byte(size_t i, uint32_t gen, uint32_t seq)
{
	return (uint8_t)(i * 31u + seq * 7u + gen * 13u);
}

static size_t test_frame(uint8_t *f, uint32_t gen, uint32_t seq)
{
	size_t len = test_len(gen, seq);

	memset(f, 0xff, 6);
	memcpy(f + 6, "\x02\x00\x00\x00\x00", 5);
	f[11] = (uint8_t)gen;
	put16(f + 12, TEST_ETHERTYPE);
	put16(f + 14, (uint16_t)(gen >> 16));
	put16(f + 16, (uint16_t)gen);
	put16(f + 18, (uint16_t)(seq >> 16));
	put16(f + 20, (uint16_t)seq);
	for (size_t i = 22; i < len; i++)
		f[i] = test_byte(i, gen, seq);
	return len;
}

/* Whether f[0, len) is a whole, intact test frame; its numbers go to (*gen, *seq). */
static bool test_check(const uint8_t *f, size_t len, uint32_t *gen, uint32_t *seq)
{
	if (len < 22 || get16(f + 12) != TEST_ETHERTYPE)
		return false;
	*gen = (uint32_t)get16(f + 14) << 16 | get16(f + 16);
	*seq = (uint32_t)get16(f + 18) << 16 | get16(f + 20);
	if (len != test_len(*gen, *seq))
		return false;
	for (size_t i = 22; i < len; i++)
		if (f[i] != test_byte(i, *gen, *seq))
			return false;
	return true;
}

/* Write, retrying a refused frame (the peer's queue is full, or it is not there yet). */
static int write_retry(mk_net *net, const uint8_t *f, size_t len, uint64_t give_up_ns)
{
	uint64_t end = mk_clock_monotonic() + give_up_ns;

	for (;;) {
		ssize_t w = mk_net_write_bigstring(net, f, len, 0, len);
		if (w == (ssize_t)len)
			return 0;
		if (w != 0 || mk_clock_monotonic() > end)
			return -1;
		mk_sleep(20 * US);
	}
}

/* ---------------------------------------------------------------------------------------- */
/*  unix: two processes on one cable                                                         */
/* ---------------------------------------------------------------------------------------- */

struct stream {
	uint32_t gen, count;
	int notify_fd; /* the receiver writes a byte here when all frames arrived, then waits */
};

static int send_main(int argc, char **argv, void *arg)
{
	struct stream *st = arg;
	struct mk_net_config cfg;
	mk_net *net;
	uint8_t f[FRAME_MAX];

	if (mk_net_connect("link", &net, &cfg) != 0) {
		fprintf(stderr, "%s\n", mk_last_error());
		return 2;
	}
	if (cfg.mtu != 1500)
		return 3;
	for (uint32_t seq = 0; seq < st->count; seq++)
		if (write_retry(net, f, test_frame(f, st->gen, seq), 20000 * MS) != 0)
			return 4;
	return 0;
}

static int recv_main(int argc, char **argv, void *arg)
{
	struct stream *st = arg;
	mk_net *net;
	uint8_t f[FRAME_MAX];
	uint32_t gen, seq;

	if (mk_net_connect("link", &net, NULL) != 0) {
		fprintf(stderr, "%s\n", mk_last_error());
		return 2;
	}
	for (uint32_t want = 0; want < st->count; want++) {
		ssize_t n = mk_net_read_bigstring(net, f, sizeof(f), 0, sizeof(f));
		if (n < 0)
			return 3;
		if (!test_check(f, (size_t)n, &gen, &seq) || gen != st->gen || seq != want) {
			fprintf(stderr, "frame %u: got gen %u seq %u, length %zd\n", want, gen, seq,
			        n);
			return 4;
		}
	}
	if (write(st->notify_fd, "k", 1) != 1)
		return 5;
	for (;;)
		mk_sleep(1000 * MS); /* until killed */
}

/* Echo every frame back, checking it; end at the SEQ_END frame after frames 0..999. */
static int echo_main(int argc, char **argv, void *arg)
{
	mk_net *net;
	uint8_t f[FRAME_MAX];
	uint32_t gen, seq, want = 0;

	if (mk_net_connect("link", &net, NULL) != 0) {
		fprintf(stderr, "%s\n", mk_last_error());
		return 2;
	}
	for (;;) {
		ssize_t n = mk_net_read_bigstring(net, f, sizeof(f), 0, sizeof(f));
		if (n < 0 || !test_check(f, (size_t)n, &gen, &seq))
			return 3;
		if (seq == SEQ_END)
			return want == 1000 ? 0 : 4;
		if (seq > want)
			return 5; /* a gap: the link lost a frame */
		if (seq == want)
			want++;
		if (write_retry(net, f, (size_t)n, 5000 * MS) != 0)
			return 6;
	}
}

struct echoed {
	mk_net *net;
	uint32_t gen, seq; /* the last echo received */
	bool any;
};

static intptr_t echo_reader(void *arg)
{
	struct echoed *e = arg;
	uint8_t f[FRAME_MAX];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(e->net, f, sizeof(f), 0, sizeof(f));
		if (n < 0)
			return n == -ECANCELED ? 0 : 1;
		if (!test_check(f, (size_t)n, &e->gen, &e->seq))
			return 2;
		e->any = true;
	}
}

/* Two rounds of 1000 frames, each echoed before the next is sent, each to a peer of its own:
 * the peer of the first round exits and another one starts for the second. */
static int pinger_main(int argc, char **argv, void *arg)
{
	struct echoed e = {0};
	uint8_t f[FRAME_MAX];
	mk_task *reader;
	intptr_t rr;
	int rc = 0;

	if (mk_net_connect("link", &e.net, NULL) != 0) {
		fprintf(stderr, "%s\n", mk_last_error());
		return 2;
	}
	mk_task_spawn(&reader, "reader", echo_reader, &e);
	for (uint32_t gen = 3; gen <= 4 && rc == 0; gen++) {
		for (uint32_t seq = 0; seq < 1000 && rc == 0; seq++) {
			size_t len = test_frame(f, gen, seq);
			uint64_t end = mk_clock_monotonic() + 20000 * MS;
			while (!(e.any && e.gen == gen && e.seq == seq)) {
				if (mk_clock_monotonic() > end) {
					rc = 3;
					break;
				}
				mk_net_write_bigstring(e.net, f, len, 0,
				                       len); /* again after 20 ms */
				for (int i = 0; i < 100 && !(e.any && e.gen == gen && e.seq == seq);
				     i++)
					mk_sleep(200 * US);
			}
		}
		if (rc == 0 && write_retry(e.net, f, test_frame(f, gen, SEQ_END), 5000 * MS) != 0)
			rc = 4;
	}
	mk_task_cancel(reader);
	mk_task_await(reader, &rr);
	return rc != 0 ? rc : (int)rr;
}

START_TEST(unix_two_processes)
{
	char path[256], arg[300];
	int p[2];
	struct stat st;

	snprintf(path, sizeof(path), "%s/cable", scratch);
	snprintf(arg, sizeof(arg), "--net:link=unix:%s", path);
	ck_assert_int_eq(pipe(p), 0);

	/* 100,000 frames, one way, every one checked, none lost or reordered. */
	struct stream st1 = {1, 100000, p[1]};
	pid_t r1 = child_run(recv_main, &st1, arg, NULL, NULL);
	ck_assert_msg(wait_for_file(path, 5), "the first end never bound %s", path);
	pid_t s1 = child_run(send_main, &st1, arg, NULL, NULL);
	ck_assert_int_eq(child_wait(s1, 60), 0);
	struct pollfd pfd = {p[0], POLLIN, 0};
	char c;
	ck_assert_int_eq(poll(&pfd, 1, 30000), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 1);

	/* The listening end dies without a word: its socket file stays behind, stale. */
	kill(r1, SIGKILL);
	ck_assert_int_eq(child_wait(r1, 10), 200 + SIGKILL);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));

	/* A new program replaces the stale file; its peer restarts between the two rounds. */
	pid_t pinger = child_run(pinger_main, NULL, arg, NULL, NULL);
	pid_t e1 = child_run(echo_main, NULL, arg, NULL, NULL);
	ck_assert_int_eq(child_wait(e1, 60), 0);
	pid_t e2 = child_run(echo_main, NULL, arg, NULL, NULL);
	ck_assert_int_eq(child_wait(e2, 60), 0);
	ck_assert_int_eq(child_wait(pinger, 60), 0);

	/* Whoever listened last removed the file when it closed. */
	ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

static int unix_errors_main(int argc, char **argv, void *arg)
{
	struct mk_net_config cfg;
	mk_net *net;

	ck_assert_int_eq(mk_net_connect("file", &net, NULL), -EEXIST);
	ck_assert_ptr_nonnull(strstr(mk_last_error(), "is not a socket"));
	ck_assert_int_eq(mk_net_connect("jumbo", &net, &cfg), 0);
	ck_assert_uint_eq(cfg.mtu, 9000);
	ck_assert_int_eq(mk_net_connect("tiny", &net, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mk_last_error(), "mtu"));
	ck_assert_int_eq(mk_net_connect("long", &net, NULL), -ENAMETOOLONG);
	return 0;
}

START_TEST(unix_errors)
{
	char file[256], a[6][400];

	snprintf(file, sizeof(file), "%s/not-a-socket", scratch);
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	snprintf(a[0], sizeof(a[0]), "--net:file=unix:%s", file);
	snprintf(a[1], sizeof(a[1]), "--net:jumbo=unix:%s/jumbo,mtu=9000", scratch);
	snprintf(a[2], sizeof(a[2]), "--net:tiny=unix:%s/tiny,mtu=12", scratch);
	snprintf(a[3], sizeof(a[3]), "--net:long=unix:%s/%0150d", scratch, 0);
	ck_assert_int_eq(mkt_run(unix_errors_main, NULL, a[0], a[1], a[2], a[3], (char *)NULL), 0);
	ck_assert_int_eq(access(file, F_OK), 0); /* never removed */
	ck_assert_int_eq(mkt_run(unix_errors_main, NULL, "--sandbox", a[1], (char *)NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mk_last_error(), "--sandbox forbids"));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  hub: three hosts in one process                                                          */
/* ---------------------------------------------------------------------------------------- */

#define HOSTS 3

struct lan_host {
	struct ps_host ps; /* answers ARP and echo requests, as ping-serve does */
	mk_net *net;
	uint8_t peer_mac[HOSTS][6]; /* learned from ARP replies */
	bool have_mac[HOSTS];
	unsigned echo_replies[HOSTS];
	unsigned foreign_unicast; /* unicast frames for someone else: the switch should not */
	mk_task *task;
};

static void host_ip(int i, uint8_t ip[4])
{
	memcpy(ip, "\x0a\x00\x00", 3);
	ip[3] = (uint8_t)(i + 1);
}

/* Read frames: answer requests with ps_handle_frame(), record the replies to our own. */
static intptr_t host_task(void *arg)
{
	struct lan_host *h = arg;
	uint8_t f[FRAME_MAX], out[FRAME_MAX];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(h->net, f, sizeof(f), 0, sizeof(f));
		if (n < 0)
			return n == -ECANCELED ? 0 : 1;
		if (!(f[0] & 1) && memcmp(f, h->ps.mac, 6) != 0)
			h->foreign_unicast++;
		size_t r = ps_handle_frame(&h->ps, f, (size_t)n, out, sizeof(out));
		if (r != 0) {
			mk_net_write_bigstring(h->net, out, sizeof(out), 0, r);
			continue;
		}
		const uint8_t *p = f + ETHH_LEN;
		if (get16(f + ETHH_TYPE) == ETHERTYPE_ARP && n >= ETHH_LEN + ARPH_LEN &&
		    get16(p + ARPH_OPER) == 2 && memcmp(p + ARPH_TPA, h->ps.ip, 4) == 0) {
			int from = p[ARPH_SPA + 3] - 1;
			if (from >= 0 && from < HOSTS) {
				memcpy(h->peer_mac[from], p + ARPH_SHA, 6);
				h->have_mac[from] = true;
			}
		} else if (get16(f + ETHH_TYPE) == ETHERTYPE_IPV4 && n >= ETHH_LEN + 28 &&
		           p[IPH_PROTO] == IPPROTO_ICMP && p[IPH_MINLEN + ICMPH_TYPE] == 0 &&
		           memcmp(p + IPH_DST, h->ps.ip, 4) == 0) {
			int from = p[IPH_SRC + 3] - 1;
			if (from >= 0 && from < HOSTS)
				h->echo_replies[from]++;
		}
	}
}

static size_t arp_request(uint8_t *f, const struct lan_host *h, int to)
{
	uint8_t *a = f + ETHH_LEN;

	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + ETHH_SRC, h->ps.mac, 6);
	put16(f + ETHH_TYPE, ETHERTYPE_ARP);
	put16(a + ARPH_HTYPE, 1);
	put16(a + ARPH_PTYPE, ETHERTYPE_IPV4);
	a[ARPH_HLEN] = 6;
	a[ARPH_PLEN] = 4;
	put16(a + ARPH_OPER, 1);
	memcpy(a + ARPH_SHA, h->ps.mac, 6);
	memcpy(a + ARPH_SPA, h->ps.ip, 4);
	host_ip(to, a + ARPH_TPA);
	return 60;
}

static size_t echo_request(uint8_t *f, const struct lan_host *h, int to, uint16_t seq)
{
	uint8_t *ip = f + ETHH_LEN, *icmp = ip + IPH_MINLEN;
	size_t icmp_len = ICMPH_MINLEN + 32;

	memcpy(f + ETHH_DST, h->peer_mac[to], 6);
	memcpy(f + ETHH_SRC, h->ps.mac, 6);
	put16(f + ETHH_TYPE, ETHERTYPE_IPV4);
	memset(ip, 0, IPH_MINLEN);
	ip[IPH_VIHL] = 0x45;
	put16(ip + IPH_TOTLEN, (uint16_t)(IPH_MINLEN + icmp_len));
	ip[IPH_TTL] = 64;
	ip[IPH_PROTO] = IPPROTO_ICMP;
	memcpy(ip + IPH_SRC, h->ps.ip, 4);
	host_ip(to, ip + IPH_DST);
	put16(ip + IPH_CSUM, inet_checksum(ip, IPH_MINLEN));
	icmp[ICMPH_TYPE] = ICMP_TYPE_ECHO;
	icmp[ICMPH_CODE] = 0;
	put16(icmp + ICMPH_CSUM, 0);
	put16(icmp + 4, 0x4d4b);
	put16(icmp + 6, seq);
	for (size_t i = ICMPH_MINLEN; i < icmp_len; i++)
		icmp[i] = (uint8_t)i;
	put16(icmp + ICMPH_CSUM, inet_checksum(icmp, icmp_len));
	return ETHH_LEN + IPH_MINLEN + icmp_len;
}

/* Poll (*flag) every millisecond for up to a second. */
static bool wait_until(const bool *flag, const unsigned *count, unsigned want)
{
	for (int i = 0; i < 1000; i++) {
		if (flag != NULL ? *flag : *count >= want)
			return true;
		mk_sleep(MS);
	}
	return false;
}

static int hub_ping_main(int argc, char **argv, void *arg)
{
	static const char *const names[HOSTS] = {"a", "b", "c"};
	static const int pairs[][2] = {{0, 1}, {0, 2}, {1, 2}, {2, 0}};
	struct lan_host h[HOSTS];
	struct mk_net_config cfg;
	uint8_t f[FRAME_MAX];

	memset(h, 0, sizeof(h));
	for (int i = 0; i < HOSTS; i++) {
		ck_assert_int_eq(mk_net_connect(names[i], &h[i].net, &cfg), 0);
		ck_assert_uint_eq(cfg.mtu, 1500);
		memcpy(h[i].ps.mac, cfg.mac, 6);
		host_ip(i, h[i].ps.ip);
		ck_assert_int_eq(mk_task_spawn(&h[i].task, names[i], host_task, &h[i]), 0);
	}
	for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
		struct lan_host *from = &h[pairs[k][0]];
		int to = pairs[k][1];
		size_t len = arp_request(f, from, to);
		ck_assert_int_eq(mk_net_write_bigstring(from->net, f, sizeof(f), 0, len),
		                 (ssize_t)len);
		ck_assert_msg(wait_until(&from->have_mac[to], NULL, 0), "no ARP reply from %d", to);
		ck_assert_mem_eq(from->peer_mac[to], h[to].ps.mac, 6);
		for (uint16_t seq = 0; seq < 5; seq++) {
			len = echo_request(f, from, to, seq);
			ck_assert_int_eq(mk_net_write_bigstring(from->net, f, sizeof(f), 0, len),
			                 (ssize_t)len);
		}
		ck_assert_msg(wait_until(NULL, &from->echo_replies[to], 5), "%u echo replies of 5",
		              from->echo_replies[to]);
	}
	for (int i = 0; i < HOSTS; i++) {
		struct mk_net_stats st;
		mk_task_cancel(h[i].task);
		ck_assert_int_eq(mk_task_await(h[i].task, NULL), -ECANCELED);
		ck_assert_uint_eq(h[i].foreign_unicast, 0); /* it is a switch, not a repeater */
		mk_net_stats(h[i].net, &st);
		ck_assert_uint_eq(st.rx_drops, 0);
		ck_assert_uint_eq(st.tx_drops, 0);
	}
	ck_assert_uint_eq(h[1].ps.arp_replies, 1);
	ck_assert_uint_eq(h[2].ps.arp_replies, 2);
	ck_assert_uint_eq(h[2].ps.echo_replies, 10);
	return 0;
}

START_TEST(hub_three_hosts_ping)
{
	ck_assert_int_eq(mkt_run(hub_ping_main, NULL, "--net:a=hub:lan0", "--net:b=hub:lan0",
	                         "--net:c=hub:lan0", "--net:other=hub:lan1", (char *)NULL),
	                 0);
}
END_TEST

static intptr_t read_one(void *arg)
{
	uint8_t f[FRAME_MAX];

	return mk_net_read_bigstring(arg, f, sizeof(f), 0, sizeof(f));
}

static int hub_queue_main(int argc, char **argv, void *arg)
{
	mk_net *a, *b, *c;
	struct mk_net_stats st;
	uint8_t f[FRAME_MAX];
	mk_task *t;
	intptr_t r;

	ck_assert_int_eq(mk_net_connect("a", &a, NULL), 0);
	ck_assert_int_eq(mk_net_connect("b", &b, NULL), 0);
	ck_assert_int_eq(mk_net_connect("c", &c, NULL), 0);
	for (uint32_t seq = 0; seq < 300; seq++) {
		size_t len = test_frame(f, 1, seq);
		ck_assert_int_eq(mk_net_write_bigstring(a, f, sizeof(f), 0, len), (ssize_t)len);
	}
	mk_net_stats(b, &st);
	ck_assert_uint_eq(st.rx_drops, 300 - 256); /* the queue holds 256 */
	for (uint32_t seq = 0; seq < 256; seq++) {
		uint32_t gen, got;
		ssize_t n = mk_net_read_bigstring(b, f, sizeof(f), 0, sizeof(f));
		ck_assert(test_check(f, (size_t)n, &gen, &got));
		ck_assert_uint_eq(got, seq);
	}
	/* The sender hears nothing of its own frames; c (another LAN) hears nothing at all. */
	mk_net *quiet[] = {a, c};
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(mk_task_spawn(&t, "reader", read_one, quiet[i]), 0);
		mk_sleep(20 * MS);
		mk_task_cancel(t);
		ck_assert_int_eq(mk_task_await(t, &r), -ECANCELED);
		ck_assert_int_eq(r, -ECANCELED);
	}
	return 0;
}

START_TEST(hub_queue_bounded)
{
	ck_assert_int_eq(mkt_run(hub_queue_main, NULL, "--net:a=hub:x", "--net:b=hub:x",
	                         "--net:c=hub:y", (char *)NULL),
	                 0);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  pcap: what tshark reads back                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Run tshark on (file); its output (one line per frame: length, then the frame's bytes after the
 * Ethernet header in hex) goes to (out). Returns tshark's exit status. */
static int tshark(const char *file, char *out, size_t size)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd),
	         "tshark -r '%s' -T fields -E separator=' ' -e frame.len -e eth.type -e data.data "
	         "2>'%s.err'",
	         file, file);
	FILE *p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "cannot run tshark");
	size_t n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_tshark(void)
{
	ck_assert_msg(mkt_sh("command -v tshark >/dev/null") == 0,
	              "tshark is not installed; scripts/deps installs it (Debian package tshark)");
}

/* Check one line of tshark's output against test frame (gen, seq); returns the next line. */
static const char *tshark_line(const char *line, uint32_t gen, uint32_t seq)
{
	uint8_t f[FRAME_MAX];
	size_t len = test_frame(f, gen, seq);
	char want[2 * FRAME_MAX + 64];
	int w = snprintf(want, sizeof(want), "%zu 0x%04x ", len, TEST_ETHERTYPE);

	for (size_t i = ETHH_LEN; i < len; i++)
		w += snprintf(want + w, sizeof(want) - (size_t)w, "%02x", f[i]);
	const char *nl = strchr(line, '\n');
	ck_assert_msg(nl != NULL, "tshark shows no frame %u:%u", gen, seq);
	ck_assert_msg((size_t)(nl - line) == strlen(want) && strncmp(line, want, strlen(want)) == 0,
	              "frame %u:%u differs in the capture:\n%.*s\nwanted\n%s", gen, seq,
	              (int)(nl - line), line, want);
	return nl + 1;
}

static int pcap_main(int argc, char **argv, void *arg)
{
	mk_net *a, *b;
	uint8_t f[FRAME_MAX];
	uint32_t gen, seq;

	ck_assert_int_eq(mk_net_connect("a", &a, NULL), 0);
	ck_assert_int_eq(mk_net_connect("b", &b, NULL), 0);
	for (uint32_t i = 0; i < 10; i++) {
		size_t len = test_frame(f, 1, i);
		ck_assert_int_eq(mk_net_write_bigstring(a, f, sizeof(f), 0, len), (ssize_t)len);
	}
	for (uint32_t i = 0; i < 10; i++)
		ck_assert_int_gt(mk_net_read_bigstring(b, f, sizeof(f), 0, sizeof(f)), 0);
	for (uint32_t i = 0; i < 5; i++) {
		size_t len = test_frame(f, 2, i);
		ck_assert_int_eq(mk_net_write_string(b, f, sizeof(f), 0, len), (ssize_t)len);
	}
	for (uint32_t i = 0; i < 5; i++) {
		ssize_t n = mk_net_read_bytes(a, f, sizeof(f), 0, sizeof(f));
		ck_assert(test_check(f, (size_t)n, &gen, &seq));
	}
	return 0;
}

START_TEST(pcap_read_back)
{
	char file[256], arg[300], out[65536];

	need_tshark();
	snprintf(file, sizeof(file), "%s/a.pcap", scratch);
	snprintf(arg, sizeof(arg), "--net-pcap:a=%s", file);
	ck_assert_int_eq(
	    mkt_run(pcap_main, NULL, "--net:a=hub:p", "--net:b=hub:p", arg, (char *)NULL), 0);
	ck_assert_int_eq(tshark(file, out, sizeof(out)), 0);
	const char *line = out;
	for (uint32_t i = 0; i < 10; i++) /* sent */
		line = tshark_line(line, 1, i);
	for (uint32_t i = 0; i < 5; i++) /* received */
		line = tshark_line(line, 2, i);
	ck_assert_str_eq(line, "");
}
END_TEST

/* Send frames from a to b forever, telling the parent how far it got. */
static int pcap_stream_main(int argc, char **argv, void *arg)
{
	int *notify = arg;
	mk_net *a, *b;
	uint8_t f[FRAME_MAX];

	if (mk_net_connect("a", &a, NULL) != 0 || mk_net_connect("b", &b, NULL) != 0)
		return 2;
	for (uint32_t seq = 0;; seq++) {
		size_t len = test_frame(f, 1, seq);
		if (mk_net_write_bigstring(a, f, sizeof(f), 0, len) != (ssize_t)len)
			return 3;
		if (mk_net_read_bigstring(b, f, sizeof(f), 0, sizeof(f)) < 0)
			return 0; /* cancelled: mk_run is stopping */
		if (seq == 1000 && write(*notify, "k", 1) != 1)
			return 4;
		if (mk_yield() != 0)
			return 0;
		while (seq >= 2000) /* enough: wait for the signal */
			if (mk_sleep(1000 * MS) != 0)
				return 0;
	}
}

/* A program stopped by a signal in full flow leaves a capture that tshark reads to the end. */
START_TEST(pcap_after_signal)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGKILL};
	char file[256], arg[300];
	static char out[16 << 20];
	int p[2];

	need_tshark();
	snprintf(file, sizeof(file), "%s/signal%d.pcap", scratch, _i);
	snprintf(arg, sizeof(arg), "--net-pcap:a=%s", file);
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = child_run(pcap_stream_main, &p[1], "--net:a=hub:s", "--net:b=hub:s", arg);
	struct pollfd pfd = {p[0], POLLIN, 0};
	char c;
	ck_assert_int_eq(poll(&pfd, 1, 30000), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	kill(pid, sigs[_i]);
	int st = child_wait(pid, 30);
	/* mk_run returns -EINTR after a stop signal, having closed the devices. SIGKILL leaves
	 * nothing to close: every record is already in the file. */
	ck_assert_msg(st == (sigs[_i] == SIGKILL ? 200 + SIGKILL : 100 + EINTR),
	              "the program ended with %d", st);

	int rc = tshark(file, out, sizeof(out));
	char err[512] = "";
	snprintf(arg, sizeof(arg), "%s.err", file);
	FILE *e = fopen(arg, "r");
	if (e != NULL) {
		size_t n = fread(err, 1, sizeof(err) - 1, e);
		err[n] = '\0';
		fclose(e);
	}
	/* A SIGKILL that lands inside the write(2) of a record crossing a page of the file may
	 * leave that one record cut short (the kernel stops a write between pages for a fatal
	 * signal); tshark then reads every record before it and exits 2 saying so. Nothing else
	 * may be wrong, and after SIGTERM or SIGINT nothing at all. */
	bool cut_short = sigs[_i] == SIGKILL && rc == 2 &&
	                 strstr(err, "cut short in the middle of a packet") != NULL;
	ck_assert_msg(rc == 0 || cut_short, "tshark exits %d: %s", rc, err);
	ck_assert_msg(err[0] == '\0' || cut_short, "tshark complains: %s", err);
	/* Every frame sent (1) was received (2) by the other device, in order. */
	const char *line = out;
	uint32_t frames = 0;
	while (*line != '\0') {
		line = tshark_line(line, 1, frames);
		frames++;
	}
	ck_assert_uint_gt(frames, 1000);
}
END_TEST

/* Connect "a" (and "b" when given) and keep what mk_net_connect said, for the test to look at
 * once mk_run has returned. */
struct connect_result {
	int rc;
	char error[4096];
};

static int connect_main(int argc, char **argv, void *arg)
{
	struct connect_result *r = arg;
	mk_net *n;

	r->rc = mk_net_connect("a", &n, NULL);
	snprintf(r->error, sizeof(r->error), "%s", r->rc != 0 ? mk_last_error() : "");
	return 0;
}

static struct connect_result connect_with(const char *a1, const char *a2, const char *a3,
                                          const char *a4)
{
	struct connect_result r = {1, ""};

	alarm(20); /* an open() that blocks fails the test rather than hanging it */
	ck_assert_int_eq(mkt_run(connect_main, &r, a1, a2, a3, a4, (char *)NULL), 0);
	alarm(0);
	return r;
}

static void expect_refused(struct connect_result r, int rc, const char *says)
{
	ck_assert_msg(r.rc == rc, "mk_net_connect returned %d (%s), not %d: %s", r.rc,
	              mk_strerror(r.rc), rc, r.error);
	ck_assert_msg(strstr(r.error, says) != NULL, "the sentence does not say \"%s\": %s", says,
	              r.error);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

static void expect_file(const char *path, const char *text)
{
	char got[8192];
	FILE *f = fopen(path, "r");

	ck_assert_msg(f != NULL, "%s is gone", path);
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	ck_assert_msg(strcmp(got, text) == 0, "%s was changed: %zu bytes left of %zu", path, n,
	              strlen(text));
}

/* A capture never takes over a file that another device of the program uses, by whatever name
 * it is given; nothing is emptied, nothing is left behind. */
START_TEST(pcap_refuses_a_device_file)
{
	char img[300], sym[300], hard[300], fresh[300], cap[300], caplink[300];
	char blk[400], pcap[400], pcap_b[400];
	static char image[4097];
	const char *paths[3] = {img, sym, hard};

	memset(image, 'i', 4096);
	snprintf(img, sizeof(img), "%s/x.img", scratch);
	snprintf(sym, sizeof(sym), "%s/x-symlink.pcap", scratch);
	snprintf(hard, sizeof(hard), "%s/x-hardlink.pcap", scratch);
	write_file(img, image);
	ck_assert_int_eq(symlink(img, sym), 0);
	ck_assert_int_eq(link(img, hard), 0);
	snprintf(blk, sizeof(blk), "--block:d=%s", img);
	for (int i = 0; i < 3; i++) {
		snprintf(pcap, sizeof(pcap), "--net-pcap:a=%s", paths[i]);
		struct connect_result r = connect_with(blk, "--net:a=hub:c", pcap, NULL);
		expect_refused(r, -EINVAL, "is the file of block device 'd'");
		expect_refused(r, -EINVAL, "give --net-pcap:a= a file of its own");
		expect_file(img, image);
	}

	/* A block file that does not exist yet: the capture would have created it. */
	snprintf(fresh, sizeof(fresh), "%s/fresh.img", scratch);
	snprintf(blk, sizeof(blk), "--block:d=%s", fresh);
	snprintf(pcap, sizeof(pcap), "--net-pcap:a=%s", fresh);
	expect_refused(connect_with(blk, "--net:a=hub:c", pcap, NULL), -EINVAL,
	               "is the file of block device 'd'");
	ck_assert_msg(access(fresh, F_OK) != 0, "the refused capture left %s behind", fresh);

	/* One capture for two devices, new or left by an earlier run, under one name or two. */
	snprintf(cap, sizeof(cap), "%s/both.pcap", scratch);
	snprintf(caplink, sizeof(caplink), "%s/both-link.pcap", scratch);
	snprintf(pcap, sizeof(pcap), "--net-pcap:a=%s", cap);
	snprintf(pcap_b, sizeof(pcap_b), "--net-pcap:b=%s", cap);
	expect_refused(connect_with("--net:a=hub:c", "--net:b=hub:c", pcap, pcap_b), -EINVAL,
	               "is also the capture file of net device 'b'");
	ck_assert_msg(access(cap, F_OK) != 0, "the refused capture left %s behind", cap);
	write_file(cap, "an earlier capture");
	ck_assert_int_eq(link(cap, caplink), 0);
	snprintf(pcap_b, sizeof(pcap_b), "--net-pcap:b=%s", caplink);
	expect_refused(connect_with("--net:a=hub:c", "--net:b=hub:c", pcap, pcap_b), -EINVAL,
	               "give each device a file of its own");
	expect_file(cap, "an earlier capture");

	/* A file of its own is still emptied and written. */
	snprintf(pcap_b, sizeof(pcap_b), "--net-pcap:b=%s", img);
	struct connect_result r = connect_with("--net:a=hub:c", "--net:b=hub:c", pcap, pcap_b);
	ck_assert_msg(r.rc == 0, "%s", r.error);
	struct stat st;
	ck_assert_int_eq(stat(cap, &st), 0);
	ck_assert_int_eq(st.st_size, 24); /* the pcap file header alone */
}
END_TEST

/* An existing file that is not a regular file is refused, and opening it never blocks: a FIFO
 * with no reader would hold open(2) for ever. */
START_TEST(pcap_refuses_a_non_regular_file)
{
	char fifo[300], dir[300], pcap[400];
	const char *paths[] = {fifo, "/dev/null", dir};
	const char *says[] = {"is a FIFO, not a regular file", "is a character device",
	                      "is a directory"};

	snprintf(fifo, sizeof(fifo), "%s/fifo", scratch);
	snprintf(dir, sizeof(dir), "%s/dir.pcap", scratch);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(pcap, sizeof(pcap), "--net-pcap:a=%s", paths[i]);
		struct connect_result r = connect_with("--net:a=hub:n", pcap, NULL, NULL);
		expect_refused(r, -EINVAL, says[i]);
		expect_refused(r, -EINVAL, "give --net-pcap:a= the path of a regular file");
	}
	/* A FIFO with a reader: the open alone would succeed, the capture is still refused. */
	int rd = open(fifo, O_RDONLY | O_NONBLOCK);
	ck_assert_int_ge(rd, 0);
	snprintf(pcap, sizeof(pcap), "--net-pcap:a=%s", fifo);
	expect_refused(connect_with("--net:a=hub:n", pcap, NULL, NULL), -EINVAL, "is a FIFO");
	char c;
	ck_assert_int_eq(read(rd, &c, 1), 0); /* nothing was written into it */
	close(rd);
}
END_TEST

/* A capture in a directory that does not exist: not -ENOENT, which says "not on the command
 * line"; and a sentence of several kilobytes keeps its cause and its fix. */
START_TEST(pcap_missing_directory)
{
	static char path[3400], arg[3500];
	int w = snprintf(path, sizeof(path), "%s/missing", scratch);

	snprintf(arg, sizeof(arg), "--net-pcap:a=%s/a.pcap", path);
	expect_refused(connect_with("--net:a=hub:m", arg, NULL, NULL), -ENOTDIR,
	               "its directory does not exist; create it (mkdir -p)");

	while (w < 3000) /* several directories deep, none of which exists */
		w += snprintf(path + w, sizeof(path) - (size_t)w, "/%0200d", w);
	snprintf(arg, sizeof(arg), "--net-pcap:a=%s/end.pcap", path);
	struct connect_result r = connect_with("--net:a=hub:m", arg, NULL, NULL);
	expect_refused(r, -ENOTDIR, "net device 'a': cannot create the capture file '");
	expect_refused(r, -ENOTDIR,
	               "/end.pcap': its directory does not exist; create it (mkdir -p) or give "
	               "--net-pcap:a= a file in an existing directory");
	expect_refused(r, -ENOTDIR, "...");
	ck_assert_uint_lt(strlen(r.error), 1024);

	/* A directory that may not be written: the code as it comes, and what to do. */
	snprintf(path, sizeof(path), "%s/readonly", scratch);
	ck_assert_int_eq(mkdir(path, 0500), 0);
	snprintf(arg, sizeof(arg), "--net-pcap:a=%s/a.pcap", path);
	expect_refused(connect_with("--net:a=hub:m", arg, NULL, NULL), -EACCES,
	               "Permission denied; give --net-pcap:a= a file you may write");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Fault injection                                                                          */
/* ---------------------------------------------------------------------------------------- */

#define FAULT_FRAMES 1000

struct fault_run {
	unsigned frames;        /* to send */
	bool got[FAULT_FRAMES]; /* which arrived intact */
	unsigned received;      /* frames read, intact or not */
	unsigned bad;           /* frames that arrived corrupted */
	unsigned late;          /* frames that arrived after a later one */
	unsigned stalls;        /* gaps between two writes long enough for a held frame to go alone */
	uint64_t min_delay_ns;  /* the shortest time from write to read */
	uint64_t sent_at[FAULT_FRAMES];
	struct mk_net_stats a, b;
	mk_net *rx;
};

static intptr_t fault_reader(void *arg)
{
	struct fault_run *r = arg;
	uint8_t f[FRAME_MAX];
	uint32_t gen, seq, highest = 0;
	bool any = false;

	for (;;) {
		ssize_t n = mk_net_read_bigstring(r->rx, f, sizeof(f), 0, sizeof(f));
		if (n < 0)
			return 0;
		r->received++;
		if (!test_check(f, (size_t)n, &gen, &seq) || seq >= r->frames) {
			r->bad++;
			continue;
		}
		uint64_t d = mk_clock_monotonic() - r->sent_at[seq];
		if (d < r->min_delay_ns)
			r->min_delay_ns = d;
		if (any && seq < highest)
			r->late++;
		if (!any || seq > highest)
			highest = seq;
		any = true;
		r->got[seq] = true;
	}
}

/* a sends r->frames frames to b, one at a time; b's reader records what arrives. */
static int fault_main(int argc, char **argv, void *arg)
{
	struct fault_run *r = arg;
	uint8_t f[FRAME_MAX];
	mk_net *a;
	mk_task *t;

	ck_assert_int_eq(mk_net_connect("a", &a, NULL), 0);
	ck_assert_int_eq(mk_net_connect("b", &r->rx, NULL), 0);
	r->min_delay_ns = UINT64_MAX;
	ck_assert_int_eq(mk_task_spawn(&t, "reader", fault_reader, r), 0);
	for (uint32_t seq = 0; seq < r->frames; seq++) {
		size_t len = test_frame(f, 1, seq);
		r->sent_at[seq] = mk_clock_monotonic();
		/* A busy machine may stop this process for longer than a reordered frame waits for
		 * its successor (10 ms); that frame then goes alone, not late. Count such gaps. */
		if (seq > 0 && r->sent_at[seq] - r->sent_at[seq - 1] >= 5 * MS)
			r->stalls++;
		ck_assert_int_eq(mk_net_write_bigstring(a, f, sizeof(f), 0, len), (ssize_t)len);
		mk_yield();
		mk_yield();
	}
	mk_sleep(100 * MS); /* longer than any delay or reorder wait of the tests */
	mk_task_cancel(t);
	mk_task_await(t, NULL);
	mk_net_stats(a, &r->a);
	mk_net_stats(r->rx, &r->b);
	return 0;
}

static struct fault_run *fault_run(const char *dev, const char *spec, unsigned frames)
{
	static struct fault_run runs[4];
	static int next;
	struct fault_run *r = &runs[next++ % 4];
	char arg[200];

	memset(r, 0, sizeof(*r));
	r->frames = frames;
	snprintf(arg, sizeof(arg), "--net-fault:%s=%s", dev, spec);
	ck_assert_int_eq(
	    mkt_run(fault_main, r, "--net:a=hub:f", "--net:b=hub:f", arg, (char *)NULL), 0);
	ck_assert_uint_eq(r->a.tx_frames, frames);
	return r;
}

static unsigned count_got(const struct fault_run *r)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->frames; i++)
		n += r->got[i];
	return n;
}

START_TEST(fault_drop_deterministic)
{
	/* Sending side. */
	struct fault_run *x = fault_run("a", "drop=10%,seed=42", FAULT_FRAMES);
	struct fault_run *y = fault_run("a", "seed=42,drop=0.1", FAULT_FRAMES);
	struct fault_run *z = fault_run("a", "drop=10%,seed=43", FAULT_FRAMES);
	unsigned lost = FAULT_FRAMES - count_got(x);

	ck_assert_mem_eq(x->got, y->got, sizeof(x->got)); /* the same seed, the same frames lost */
	ck_assert_int_ne(memcmp(x->got, z->got, sizeof(x->got)), 0);
	ck_assert_uint_eq(x->a.fault_tx.drops, lost);
	ck_assert_uint_eq(x->received, count_got(x));
	ck_assert_msg(lost > 60 && lost < 140, "%u of %u frames dropped at 10%%", lost,
	              FAULT_FRAMES);
	ck_assert_uint_eq(x->a.fault_rx.drops + x->a.fault_tx.dups + x->b.fault_rx.drops, 0);

	/* Receiving side: the same counts, in the other direction's counters. */
	struct fault_run *r1 = fault_run("b", "drop=10%,seed=7", FAULT_FRAMES);
	struct fault_run *r2 = fault_run("b", "drop=10%,seed=7", FAULT_FRAMES);
	ck_assert_mem_eq(r1->got, r2->got, sizeof(r1->got));
	ck_assert_uint_eq(r1->b.fault_rx.drops, FAULT_FRAMES - count_got(r1));
	ck_assert_uint_eq(r1->b.rx_frames, count_got(r1));
	ck_assert_uint_eq(r1->a.fault_tx.drops, 0);
}
END_TEST

START_TEST(fault_dup_corrupt)
{
	struct fault_run *r = fault_run("a", "dup=20%,seed=1", 500);
	ck_assert_uint_gt(r->a.fault_tx.dups, 50);
	ck_assert_uint_eq(r->received, 500 + r->a.fault_tx.dups);
	ck_assert_uint_eq(count_got(r), 500);
	ck_assert_uint_eq(r->bad, 0);

	r = fault_run("b", "dup=20%,seed=1", 500);
	ck_assert_uint_gt(r->b.fault_rx.dups, 50);
	ck_assert_uint_eq(r->received, 500 + r->b.fault_rx.dups);
	ck_assert_uint_eq(r->b.rx_frames, r->received);

	r = fault_run("a", "corrupt=10%,seed=2", 500);
	ck_assert_uint_gt(r->a.fault_tx.corrupts, 20);
	ck_assert_uint_eq(r->bad, r->a.fault_tx.corrupts);
	ck_assert_uint_eq(r->received, 500);

	r = fault_run("b", "corrupt=10%,seed=2", 500);
	ck_assert_uint_gt(r->b.fault_rx.corrupts, 20);
	ck_assert_uint_eq(r->bad, r->b.fault_rx.corrupts);
}
END_TEST

START_TEST(fault_delay_reorder)
{
	struct fault_run *r = fault_run("a", "delay=20,seed=3", 50);
	ck_assert_uint_eq(count_got(r), 50);
	ck_assert_uint_eq(r->a.fault_tx.delays, 50);
	ck_assert_uint_eq(r->late, 0);
	ck_assert_uint_ge(r->min_delay_ns, 20 * MS);

	r = fault_run("b", "delay=20,seed=3", 50);
	ck_assert_uint_eq(count_got(r), 50);
	ck_assert_uint_eq(r->b.fault_rx.delays, 50);
	ck_assert_uint_ge(r->min_delay_ns, 20 * MS);

	for (int side = 0; side < 2; side++) {
		r = fault_run(side ? "b" : "a", "reorder=20%,seed=4", 500);
		uint64_t reorders = side ? r->b.fault_rx.reorders : r->a.fault_tx.reorders;
		ck_assert_uint_eq(count_got(r), 500);
		ck_assert_uint_gt(reorders, 50);
		/* Each reordered frame comes right after its successor, except one left at the end
		 * with no successor, and one the process was stopped past the wait for (a stall),
		 * which go alone after the wait. */
		ck_assert_msg(r->late <= reorders && r->late + r->stalls + 3 >= reorders,
		              "%u late, %llu reordered, %u stalls", r->late,
		              (unsigned long long)reorders, r->stalls);
	}
}
END_TEST

static const struct {
	const char *arg, *says;
} bad_specs[] = {
    {"--net-fault:a=drop=2", "drop='2' is not a probability"},
    {"--net-fault:a=dup=10", "dup='10' is not a probability"},
    {"--net-fault:a=corrupt=x%", "corrupt='x%' is not a probability"},
    {"--net-fault:a=reorder=-0.1", "reorder='-0.1' is not a probability"},
    {"--net-fault:a=delay=soon", "delay='soon' must be a whole number"},
    {"--net-fault:a=drop=0.1,seed=-1", "seed='-1' must be a whole number"},
    {"--net-fault:a=color=red", "unknown field 'color'"},
    {"--net-fault:a=drop", "'drop' has no value"},
    {"--net-fault:a=drop=0.1,drop", "'drop' has no value"},
    /* A field twice: which one would count? */
    {"--net-fault:a=drop=0.1,drop=0.2", "drop is given twice; give each field once"},
    {"--net-fault:a=dup=1%,corrupt=0,dup=1%", "dup is given twice"},
    {"--net-fault:a=corrupt=0,corrupt=0", "corrupt is given twice"},
    {"--net-fault:a=reorder=0.5,seed=1,reorder=0.5", "reorder is given twice"},
    {"--net-fault:a=delay=1,delay=2", "delay is given twice"},
    {"--net-fault:a=seed=1,drop=0,seed=2", "seed is given twice"},
    /* Numbers in any form but plain decimal (strtod and strtoull took most of these). */
    {"--net-fault:a=drop=0x1", "drop='0x1' is not a probability"},
    {"--net-fault:a=dup=0x0.8p0", "dup='0x0.8p0' is not a probability"},
    {"--net-fault:a=drop=inf", "drop='inf' is not a probability"},
    {"--net-fault:a=drop=nan", "drop='nan' is not a probability"},
    {"--net-fault:a=corrupt=NAN%", "corrupt='NAN%' is not a probability"},
    {"--net-fault:a=drop=1e-1", "drop='1e-1' is not a probability"},
    {"--net-fault:a=drop=0.1x", "drop='0.1x' is not a probability"},
    {"--net-fault:a=drop= 0.1", "drop=' 0.1' is not a probability"},
    {"--net-fault:a=drop=+0.1", "drop='+0.1' is not a probability"},
    {"--net-fault:a=drop=0.1.2", "drop='0.1.2' is not a probability"},
    {"--net-fault:a=drop=.", "drop='.' is not a probability"},
    {"--net-fault:a=drop=%", "drop='%' is not a probability"},
    {"--net-fault:a=drop=10%%", "drop='10%%' is not a probability"},
    {"--net-fault:a=reorder=100.1%", "reorder='100.1%' is not a probability"},
    {"--net-fault:a=dup=1.0001", "dup='1.0001' is not a probability"},
    {"--net-fault:a=delay=0x10", "delay='0x10' must be a whole number (decimal)"},
    {"--net-fault:a=delay=010x", "delay='010x' must be a whole number (decimal)"},
    {"--net-fault:a=delay=1.5", "delay='1.5' must be a whole number (decimal)"},
    {"--net-fault:a=delay=+1", "delay='+1' must be a whole number (decimal)"},
    {"--net-fault:a=delay=3600001", "delay='3600001' must be a whole number (decimal) from 0 "
                                    "to 3600000"},
    {"--net-fault:a=delay=99999999999999999999999", "delay='99999999999999999999999' must"},
    {"--net-fault:a=seed=18446744073709551616", "seed='18446744073709551616' must be"},
    {"--net-fault:a=seed=0x2a", "seed='0x2a' must be a whole number (decimal)"},
    {"--net-fault:a=seed=", "seed='' must be a whole number (decimal)"},
    /* An empty field: a stray comma is a typo, not "no fault". */
    {"--net-fault:a=drop=0.1,", "an empty field"},
    {"--net-fault:a=,drop=0.1", "an empty field"},
    {"--net-fault:a=drop=0.1,,dup=0", "an empty field"},
};

static int never_main(int argc, char **argv, void *arg)
{
	return 99;
}

START_TEST(fault_bad_spec)
{
	int rc = mkt_run(never_main, NULL, "--net:a=hub:x", bad_specs[_i].arg, (char *)NULL);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(strstr(mk_last_error(), bad_specs[_i].says) != NULL, "'%s' says: %s",
	              bad_specs[_i].arg, mk_last_error());
}
END_TEST

/* Plain decimals in all their forms are still taken, each field once. */
START_TEST(fault_good_spec)
{
	static const char *const good[] = {
	    "--net-fault:a=drop=0,dup=0.5%,corrupt=1.,reorder=.25,delay=0,seed=0",
	    "--net-fault:a=drop=100%,seed=18446744073709551615,delay=3600000",
	    "--net-fault:a=dup=0010%,delay=007",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = mkt_run(never_main, NULL, "--net:a=hub:x", good[i], (char *)NULL);
		ck_assert_msg(rc == 99, "'%s' is refused: %s", good[i], mk_last_error());
	}
}
END_TEST

/* A spec of several kilobytes: the sentence keeps the field, the cause and the fix. */
START_TEST(fault_long_spec)
{
	static char arg[4000];
	int w = snprintf(arg, sizeof(arg), "--net-fault:a=drop=");

	memset(arg + w, '1', 3500);
	snprintf(arg + w + 3500, sizeof(arg) - (size_t)w - 3500, "x");
	ck_assert_int_eq(mkt_run(never_main, NULL, "--net:a=hub:x", arg, (char *)NULL), -EINVAL);
	const char *e = mk_last_error();
	ck_assert_msg(strncmp(e, "'--net-fault:a=drop=1", 21) == 0, "%s", e);
	ck_assert_msg(strstr(e, "1...1") != NULL, "%s", e);
	ck_assert_msg(strstr(e, "1x': drop='111") != NULL, "%s", e);
	ck_assert_msg(strstr(e, "1x' is not a probability; write a decimal number from 0 to 1 or a "
	                        "percentage, e.g. drop=0.1 or drop=10%") != NULL,
	              "%s", e);
	ck_assert_uint_lt(strlen(e), 1024);
}
END_TEST

START_TEST(pcap_fault_orphans)
{
	ck_assert_int_eq(mkt_run(never_main, NULL, "--net-pcap:x=/dev/null", (char *)NULL),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(mk_last_error(), "--net-pcap:x is given but no --net:x="));
	ck_assert_int_eq(mkt_run(never_main, NULL, "--net-fault:y=drop=1", (char *)NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(mk_last_error(), "--net-fault:y is given but no --net:y="));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	mkt_drop_privileges();
	snprintf(scratch, sizeof(scratch), "/tmp/mkhost-links-XXXXXX");
	if (mkdtemp(scratch) == NULL) {
		perror("mkdtemp");
		return 1;
	}

	Suite *s = suite_create("links");
	TCase *tc_unix = tcase_create("unix");
	tcase_set_timeout(tc_unix, 120);
	tcase_add_test(tc_unix, unix_two_processes);
	tcase_add_test(tc_unix, unix_errors);
	suite_add_tcase(s, tc_unix);

	TCase *hub = tcase_create("hub");
	tcase_set_timeout(hub, 30);
	tcase_add_test(hub, hub_three_hosts_ping);
	tcase_add_test(hub, hub_queue_bounded);
	suite_add_tcase(s, hub);

	TCase *pcap = tcase_create("pcap");
	tcase_set_timeout(pcap, 60);
	tcase_add_test(pcap, pcap_read_back);
	tcase_add_loop_test(pcap, pcap_after_signal, 0, 3);
	tcase_add_test(pcap, pcap_refuses_a_device_file);
	tcase_add_test(pcap, pcap_refuses_a_non_regular_file);
	tcase_add_test(pcap, pcap_missing_directory);
	suite_add_tcase(s, pcap);

	TCase *fault = tcase_create("fault");
	tcase_set_timeout(fault, 60);
	tcase_add_test(fault, fault_drop_deterministic);
	tcase_add_test(fault, fault_dup_corrupt);
	tcase_add_test(fault, fault_delay_reorder);
	tcase_add_loop_test(fault, fault_bad_spec, 0, sizeof(bad_specs) / sizeof(bad_specs[0]));
	tcase_add_test(fault, fault_good_spec);
	tcase_add_test(fault, fault_long_spec);
	tcase_add_test(fault, pcap_fault_orphans);
	suite_add_tcase(s, fault);

	int failed = mkt_run_suite(s, true);
	mkt_sh("rm -rf %s", scratch);
	return failed;
}
