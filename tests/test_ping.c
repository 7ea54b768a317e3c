/* examples/ping-serve against the Linux network stack, on a TAP in a private network namespace:
 * ping and arping must get answers from its address and only from its address, and hand-made
 * malformed frames must get none.
 *
 * The server is started once in main(), outside the Check tests, so the suite runs the same with
 * CK_FORK=no; main() also checks at the end that SIGTERM stops it cleanly. It dies with the process
 * that started it (PR_SET_PDEATHSIG), so nothing outlives the namespace even when a test aborts.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define SERVER     MK_BUILD_DIR "/examples/ping-serve"
#define SERVER_MAC "02:00:00:00:00:02"

static const uint8_t server_mac[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t fake_mac[6] = {2, 0, 0, 0, 0, 0x99}; /* a host the kernel knows nothing of */
static const uint8_t server_ip[4] = {10, 0, 0, 2};
static const uint8_t fake_ip[4] = {10, 0, 0, 99};

struct server {
	pid_t pid;
	int out; /* read end of its stdout */
};

static struct server main_server = {-1, -1};

/* ---- running commands and the server ---------------------------------------------------- */

/* Read from (fd) into (buf) until (stop) appears (any text if NULL), EOF, or (timeout_ms). */
static size_t read_until(int fd, char *buf, size_t size, const char *stop, int timeout_ms)
{
	size_t n = 0;
	struct timespec t0, t;

	buf[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = timeout_ms -
		            ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (left <= 0 || n + 1 >= size || poll(&pfd, 1, (int)left) <= 0)
			break;
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		if (stop && strstr(buf, stop))
			break;
	}
	return n;
}

/* Start ping-serve on (tap) for (ip), with "--count (count)" unless NULL, and wait up to 5 s for
 * its start line, which is stored in (line). Returns 0 once the line is there. */
static int server_start(struct server *s, const char *tap, const char *ip, const char *count,
                        char *line, size_t size)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	s->pid = fork();
	if (s->pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (s->pid == 0) {
		char dev[64];
		snprintf(dev, sizeof(dev), "--net:service=%s", tap);
		char *argv[8] = {SERVER, dev,        "--net-mac:service=" SERVER_MAC,
		                 "--",   (char *)ip, NULL};
		if (count) {
			argv[5] = "--count";
			argv[6] = (char *)count;
		}
		/* If the test dies, so does the server: it must not keep the TAP. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execv(SERVER, argv); /* the environment, MKHOST_BACKEND included, passes through */
		_exit(127);
	}
	close(p[1]);
	s->out = p[0];
	read_until(s->out, line, size, "\n", 5000);
	return strchr(line, '\n') ? 0 : -1;
}

/* Wait up to (timeout_ms) for the server to exit; its wait status, or -1 if still running. */
static int server_wait(struct server *s, int timeout_ms)
{
	int st;

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);
		if (r == s->pid) {
			s->pid = -1;
			return st;
		}
		if (r < 0)
			return -1;
		usleep(10000);
	}
	return -1;
}

static void server_stop(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		if (server_wait(s, 2000) == -1 && s->pid > 0) {
			kill(s->pid, SIGKILL);
			server_wait(s, 2000);
		}
	}
	if (s->out >= 0)
		close(s->out);
	s->pid = s->out = -1;
}

/* The "Received N response(s)" of arping's summary, or -1. */
static long arping_responses(const char *out)
{
	long n;
	const char *p = strstr(out, "Received ");
	return p && sscanf(p, "Received %ld response(s)", &n) == 1 ? n : -1;
}

static int count_lines(const char *out, const char *needle)
{
	int n = 0;
	for (const char *p = out; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- through the kernel: ping and arping ------------------------------------------------ */

/* ping the server (n) times with (args): every request answered (mkt_ping_all). */
static void ping_all(int n, const char *args)
{
	struct mkt_ping r;
	bool ok = mkt_ping_all(&r, n, args, "10.0.0.2");

	ck_assert_msg(ok,
	              "ping -c %d %s: ping counted %ld replies to %ld requests; the kernel took in "
	              "%ld, and %ld with a bad checksum; exit status %d:\n%s",
	              n, args, r.received, r.sent, r.replies, r.bad, r.status, r.out);
}

START_TEST(test_ping_100)
{
	ping_all(100, "-q -i 0.01");
}
END_TEST

START_TEST(test_arping)
{
	char out[4096];

	/* With a deadline (-w), arping -c waits for that many replies. */
	mkt_capture(out, sizeof(out), "arping -c 3 -w 5 -I tap0 10.0.0.2");
	ck_assert_msg(arping_responses(out) == 3, "%s", out);
	ck_assert_msg(count_lines(out, "reply from 10.0.0.2 [" SERVER_MAC "]") == 3, "%s", out);
}
END_TEST

START_TEST(test_arping_other_address)
{
	char out[4096];

	mkt_capture(out, sizeof(out), "arping -c 2 -w 2 -I tap0 10.0.0.3");
	ck_assert_msg(arping_responses(out) == 0, "%s", out);
}
END_TEST

START_TEST(test_ping_other_address)
{
	char out[4096];
	long tx = -1, rx = -1;

	/* A static neighbour entry sends the echo requests for 10.0.0.3 to the server's MAC, so
	 * it is its IP address check that is tested, not only its ARP. */
	ck_assert_int_eq(mkt_sh("ip neigh replace 10.0.0.3 lladdr " SERVER_MAC " dev tap0"), 0);
	mkt_capture(out, sizeof(out), "ping -c 3 -i 0.2 -W 1 10.0.0.3");
	mkt_sh("ip neigh del 10.0.0.3 dev tap0");
	ck_assert_msg(mkt_ping_summary(out, &tx, &rx) == 1, "no ping summary in:\n%s", out);
	ck_assert_int_eq(tx, 3);
	ck_assert_int_eq(rx, 0);
}
END_TEST

START_TEST(test_ping_sizes)
{
	/* An empty and an odd-length payload exercise the checksum's tail; 1472 bytes of data
	 * make a frame of exactly mtu + 14. */
	static const int sizes[] = {0, 1, 57, 1000, 1472};
	char args[64];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(args, sizeof(args), "-i 0.05 -s %d", sizes[i]);
		ping_all(2, args);
	}
}
END_TEST

START_TEST(test_ping_ip_options)
{
	/* Record route makes a 60-byte IP header: the server must skip the options. */
	ping_all(3, "-R -i 0.05");
}
END_TEST

START_TEST(test_fragments_ignored)
{
	char out[8192];
	long tx = -1, rx = -1;

	/* 2000 bytes do not fit the 1500-byte MTU: the kernel fragments each request, and the
	 * server, which does not reassemble, must answer neither fragment. */
	mkt_capture(out, sizeof(out), "ping -c 2 -i 0.2 -W 1 -M dont -s 2000 10.0.0.2");
	ck_assert_msg(mkt_ping_summary(out, &tx, &rx) == 1, "%s", out);
	ck_assert_msg(tx == 2 && rx == 0, "%s", out);
}
END_TEST

/* ---- hand-made frames ------------------------------------------------------------------- */

static uint16_t csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void fix_ip_csum(uint8_t *f)
{
	size_t ihl = (size_t)(f[14] & 15) * 4;
	put16(f + 24, 0);
	put16(f + 24, csum(f + 14, ihl));
}

/* An echo request from the fake host to the server with (nopt) bytes of IP options (NOPs),
 * ICMP identifier (id) and 20 bytes of data, with correct checksums; returns its length. */
static size_t echo_request(uint8_t *f, size_t nopt, unsigned id)
{
	size_t ihl = 20 + nopt, icmp_len = 8 + 20;

	memset(f, 0, 14 + ihl + icmp_len);
	memcpy(f, server_mac, 6);
	memcpy(f + 6, fake_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *icmp = ip + ihl;
	ip[0] = (uint8_t)(0x40 | ihl / 4);
	put16(ip + 2, (unsigned)(ihl + icmp_len));
	put16(ip + 4, 0x4242);
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, fake_ip, 4);
	memcpy(ip + 16, server_ip, 4);
	memset(ip + 20, 1, nopt);
	fix_ip_csum(f);
	icmp[0] = 8;
	put16(icmp + 4, id);
	put16(icmp + 6, 1);
	for (size_t i = 8; i < icmp_len; i++)
		icmp[i] = (uint8_t)i;
	put16(icmp + 2, csum(icmp, icmp_len));
	return 14 + ihl + icmp_len;
}

static size_t arp_request(uint8_t *f, const uint8_t target[4], unsigned oper)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, fake_mac, 6);
	put16(f + 12, 0x0806);
	put16(f + 14, 1);
	put16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, oper);
	memcpy(f + 22, fake_mac, 6);
	memcpy(f + 28, fake_ip, 4);
	memset(f + 32, 0, 6);
	memcpy(f + 38, target, 4);
	return 42;
}

static void send_frame(int fd, const uint8_t *f, size_t len)
{
	ck_assert_msg(send(fd, f, len, 0) == (ssize_t)len, "send %zu bytes: %s", len,
	              strerror(errno));
}

START_TEST(test_malformed_frames)
{
	static const uint8_t other_ip[4] = {10, 0, 0, 3};
	uint8_t f[256], r[2048];
	size_t len;
	int fd = mkt_packet_socket("tap0", 300);
	ck_assert_int_ge(fd, 0);

	/* Every truncation of a valid request: the IP total length then exceeds the frame. */
	size_t full = echo_request(f, 0, 0xdead);
	for (len = 14; len < full; len++)
		send_frame(fd, f, len);
	full = arp_request(f, server_ip, 1);
	for (len = 14; len < full; len++)
		send_frame(fd, f, len);

	len = echo_request(f, 0, 0xdead); /* header length 16: below the minimum */
	f[14] = 0x44;
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* header length 60 in a 62-byte frame */
	f[14] = 0x4f;
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* total length shorter than the header */
	put16(f + 16, 19);
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* ICMP shorter than its 8-byte header */
	put16(f + 16, 20 + 7);
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* bad IP header checksum */
	f[24] ^= 0x10;
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* first fragment (more fragments) */
	put16(f + 20, 0x2000);
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* last fragment (offset 8) */
	put16(f + 20, 0x0001);
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* bad ICMP checksum */
	f[36] ^= 0x10;
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* an echo reply, not a request */
	f[34] = 0;
	put16(f + 36, 0);
	put16(f + 36, csum(f + 34, len - 34));
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* to another IP address */
	memcpy(f + 30, other_ip, 4);
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* from the broadcast address */
	memset(f + 26, 0xff, 4);
	fix_ip_csum(f);
	send_frame(fd, f, len);
	len = echo_request(f, 0, 0xdead); /* to another MAC address */
	f[5] = 0x77;
	send_frame(fd, f, len);
	send_frame(fd, f, arp_request(f, other_ip, 1));  /* who has another address? */
	send_frame(fd, f, arp_request(f, server_ip, 2)); /* an ARP reply, not a request */

	/* Then the three that must be answered. */
	send_frame(fd, f, echo_request(f, 0, 0x1111));
	send_frame(fd, f, echo_request(f, 40, 0x2222)); /* with IP options */
	send_frame(fd, f, arp_request(f, server_ip, 1));

	/* The socket sees both directions; the answers are the frames to the fake host. */
	int echo_1111 = 0, echo_2222 = 0, arp = 0, other = 0;
	for (int i = 0; i < 1000; i++) {
		ssize_t n = recv(fd, r, sizeof(r), 0);
		if (n < 0)
			break; /* 300 ms of silence */
		if (n < 14 || memcmp(r, fake_mac, 6) != 0)
			continue;
		ck_assert_msg(memcmp(r + 6, server_mac, 6) == 0, "reply from another MAC");
		if (n == 42 && r[12] == 8 && r[13] == 6 && r[21] == 2 &&
		    memcmp(r + 22, server_mac, 6) == 0 && memcmp(r + 28, server_ip, 4) == 0 &&
		    memcmp(r + 32, fake_mac, 6) == 0 && memcmp(r + 38, fake_ip, 4) == 0) {
			arp++;
		} else if (n == 14 + 20 + 28 && r[12] == 8 && r[13] == 0 && r[14] == 0x45 &&
		           csum(r + 14, 20) == 0 && r[16] == 0 && r[17] == 48 &&
		           memcmp(r + 26, server_ip, 4) == 0 && memcmp(r + 30, fake_ip, 4) == 0 &&
		           r[34] == 0 && r[35] == 0 && csum(r + 34, 28) == 0) {
			unsigned id = (unsigned)(r[38] << 8 | r[39]);
			echo_1111 += id == 0x1111;
			echo_2222 += id == 0x2222;
			other += id != 0x1111 && id != 0x2222;
		} else {
			other++;
		}
	}
	close(fd);
	ck_assert_int_eq(arp, 1);
	ck_assert_int_eq(echo_1111, 1);
	ck_assert_int_eq(echo_2222, 1);
	ck_assert_int_eq(other, 0);
}
END_TEST

START_TEST(test_still_answering)
{
	ping_all(10, "-q -i 0.01");
}
END_TEST

/* ---- --count ---------------------------------------------------------------------------- */

START_TEST(test_count)
{
	struct server s = {-1, -1};
	char line[256], out[4096], tail[1024];
	long tx = -1, rx = -1;

	/* A second TAP and subnet, so the server of the other tests can stay up. */
	ck_assert_int_eq(mkt_tap_create("tap1", 0, 1), 0);
	ck_assert_int_eq(mkt_sh("ip addr add 10.0.1.1/24 dev tap1"), 0);
	ck_assert_msg(server_start(&s, "tap1", "10.0.1.2", "5", line, sizeof(line)) == 0,
	              "ping-serve did not start: '%s'", line);
	mkt_capture(out, sizeof(out), "ping -c 10 -i 0.05 -W 1 10.0.1.2");
	int st = server_wait(&s, 5000);
	read_until(s.out, tail, sizeof(tail), NULL, 1000);
	server_stop(&s);
	mkt_tap_delete("tap1");

	ck_assert_msg(mkt_ping_summary(out, &tx, &rx) == 1, "%s", out);
	ck_assert_msg(tx == 10 && rx == 5, "%s", out);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %d", st);
	ck_assert_msg(strstr(tail, "ping-serve: answered 5 echo requests"), "'%s'", tail);
}
END_TEST

/* ---- setup ------------------------------------------------------------------------------ */

static int probe(int argc, char **argv, void *arg)
{
	return 0;
}

int main(void)
{
	char line[256];

	mkt_enter_netns();
	if (mkt_sh("command -v ping && command -v arping && command -v timeout >/dev/null") != 0)
		mkt_skip_missing("needs ping, arping (iputils) and timeout (coreutils)");
	if (mkt_run(probe, NULL, NULL) == -ENOSYS) {
		fprintf(stderr, "SKIP: the io_uring backend is not available here\n");
		return MKT_SKIP;
	}
	if (mkt_tap_create("tap0", 0, 1) != 0 || mkt_sh("ip addr add 10.0.0.1/24 dev tap0") != 0) {
		fprintf(stderr, "FAIL: cannot set up tap0\n");
		return 1;
	}
	if (server_start(&main_server, "tap0", "10.0.0.2", NULL, line, sizeof(line)) != 0 ||
	    strcmp(line, "ping-serve: 10.0.0.2 on service, mac " SERVER_MAC ", mtu 1500\n") != 0) {
		fprintf(stderr, "FAIL: ping-serve did not start as expected; it said '%s'\n", line);
		server_stop(&main_server);
		mkt_tap_delete("tap0");
		return 1;
	}

	Suite *suite = suite_create("ping");
	TCase *tc = tcase_create("ping-serve");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ping_100);
	tcase_add_test(tc, test_arping);
	tcase_add_test(tc, test_arping_other_address);
	tcase_add_test(tc, test_ping_other_address);
	tcase_add_test(tc, test_ping_sizes);
	tcase_add_test(tc, test_ping_ip_options);
	tcase_add_test(tc, test_fragments_ignored);
	tcase_add_test(tc, test_malformed_frames);
	tcase_add_test(tc, test_still_answering);
	tcase_add_test(tc, test_count);
	suite_add_tcase(suite, tc);
	SRunner *sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	/* It must have survived everything sent to it, and SIGTERM must stop it cleanly, with
	 * its figures printed: mk_run cancels its task and it returns 0. */
	char tail[1024];
	int st = -1;
	if (waitpid(main_server.pid, &st, WNOHANG) == main_server.pid) {
		fprintf(stderr, "FAIL: ping-serve exited during the tests (wait status %d)\n", st);
		main_server.pid = -1;
		failed++;
	} else {
		kill(main_server.pid, SIGTERM);
		st = server_wait(&main_server, 5000);
		read_until(main_server.out, tail, sizeof(tail), NULL, 1000);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
		    !strstr(tail, "ping-serve: answered ")) {
			fprintf(stderr,
			        "FAIL: ping-serve did not stop cleanly on SIGTERM (wait status "
			        "%d); it said '%s'\n",
			        st, tail);
			failed++;
		}
	}
	server_stop(&main_server);
	mkt_tap_delete("tap0");
	return failed ? 1 : 0;
}
