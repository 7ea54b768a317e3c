/* Net devices over TAP interfaces: frames both ways, the read and write contracts, MTU and MAC,
 * connect errors, inherited descriptors, idleness, several readers, floods and counters.
 *
 * main() enters a private network namespace once; every test makes its own TAP interfaces there
 * and talks to them through an AF_PACKET socket bound to the interface: what the library writes
 * arrives on that socket, what the socket sends the library reads. Frames of the tests carry the
 * local experimental ethertype 0x88b5 and a sequence number, so the socket side can ignore
 * anything else the kernel might emit.
 *
 * The suite runs in Check's fork mode, always: assertions are made inside mk_run's tasks (a failed
 * one ends the test's process), some tests start threads or fork, and every test needs a scheduler
 * of its own. Reads by the library go through lib_read(), which gives up after a timeout, and the
 * socket side polls with timeouts, so a broken library fails a test instead of hanging it. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/internal.h"
#include "mkhost.h"
#include "testlib.h"

#define TEST_ETHERTYPE 0x88b5      /* IEEE 802 local experimental */
#define SEQ_END        0xffffffffu /* the sequence number of "no more frames" */
#define BIG_BUF        65536       /* larger than any frame a TAP carries */
#define MS             1000000ULL  /* nanoseconds per millisecond */

enum read_mode { READ_BIGSTRING, READ_BYTES };
static const char *const read_mode_name[] = {"mk_net_read_bigstring", "mk_net_read_bytes"};

/* ---------------------------------------------------------------------------------------- */
/*  Frames                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

/* Byte (i) of the test frame number (seq): broadcast destination, peer_mac source, the test
 * ethertype, (seq) big-endian, then a pattern that depends on both (i) and (seq). */
static uint8_t frame_byte(size_t i, uint32_t seq)
{
	if (i < 6)
		return 0xff;
	if (i < 12)
		return peer_mac[i - 6];
	if (i == 12)
		return TEST_ETHERTYPE >> 8;
	if (i == 13)
		return TEST_ETHERTYPE & 0xff;
	if (i < 18)
		return (uint8_t)(seq >> (8 * (17 - i)));
	return (uint8_t)(seq * 13 + i * 7 + 3);
}

static void frame_fill(uint8_t *f, size_t len, uint32_t seq)
{
	for (size_t i = 0; i < len; i++)
		f[i] = frame_byte(i, seq);
}

/* Whether (f), of (n) bytes, is exactly the test frame (seq) of (len) bytes. */
static int frame_ok(const uint8_t *f, ssize_t n, size_t len, uint32_t seq)
{
	if (n != (ssize_t)len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (f[i] != frame_byte(i, seq))
			return 0;
	return 1;
}

static int frame_type(const uint8_t *f, ssize_t n)
{
	return n >= 14 ? f[12] << 8 | f[13] : -1;
}

/* The sequence number of a test frame of at least 18 bytes. */
static uint32_t frame_seq(const uint8_t *f)
{
	return (uint32_t)f[14] << 24 | (uint32_t)f[15] << 16 | (uint32_t)f[16] << 8 | f[17];
}

/* ---------------------------------------------------------------------------------------- */
/*  Interfaces                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void tap_new(const char *name, unsigned mtu, int up)
{
	mkt_tap_delete(name);
	ck_assert_msg(mkt_tap_create(name, mtu, up) == 0, "cannot create TAP %s", name);
}

/* The kernel's count of frames the interface dropped on its way to the TAP descriptor (its
 * queue was full); UINT64_MAX if unknown. */
static uint64_t link_tx_dropped(const char *ifname)
{
	struct ifaddrs *all;
	uint64_t v = UINT64_MAX;

	if (getifaddrs(&all) != 0)
		return v;
	for (struct ifaddrs *p = all; p; p = p->ifa_next)
		if (p->ifa_addr && p->ifa_addr->sa_family == AF_PACKET && p->ifa_data &&
		    strcmp(p->ifa_name, ifname) == 0)
			v = ((struct rtnl_link_stats *)p->ifa_data)->tx_dropped;
	freeifaddrs(all);
	return v;
}

/* ---------------------------------------------------------------------------------------- */
/*  The packet socket side                                                                  */
/* ---------------------------------------------------------------------------------------- */

static int pk_open(const char *ifname)
{
	int fd = mkt_packet_socket(ifname, 2000);
	ck_assert_msg(fd >= 0, "no AF_PACKET socket on %s", ifname);
	int big = 64 << 20; /* floods: let the socket queue absorb bursts (root may force it) */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	return fd;
}

/* Send one frame; 0, or -errno. A full queue (ENOBUFS) is waited out for up to ~1 s. */
static int pk_send(int fd, const void *f, size_t len)
{
	for (int tries = 0; tries < 10000; tries++) {
		ssize_t r = send(fd, f, len, 0);
		if (r == (ssize_t)len)
			return 0;
		if (r >= 0)
			return -EIO;
		if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
			return -errno;
		usleep(100);
	}
	return -ENOBUFS;
}

static void pk_send_frame(int fd, size_t len, uint32_t seq)
{
	uint8_t *f = malloc(len);
	ck_assert_ptr_nonnull(f);
	frame_fill(f, len, seq);
	int r = pk_send(fd, f, len);
	ck_assert_msg(r == 0, "sending a %zu-byte frame on the packet socket: %s", len,
	              strerror(-r));
	free(f);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The next test frame that arrives on the interface (frames sent by packet sockets and other
 * ethertypes are skipped) into buf[0, size): its full length, or -ETIMEDOUT. */
static ssize_t pk_recv(int fd, uint8_t *buf, size_t size, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * MS;

	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)((deadline - now + MS - 1) / MS));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		struct sockaddr_ll sll;
		socklen_t sl = sizeof(sll);
		ssize_t n =
		    recvfrom(fd, buf, size, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&sll, &sl);
		if (n < 0) {
			/* ENETDOWN is reported once after the interface went down and up again. */
			if (errno == EAGAIN || errno == EINTR || errno == ENETDOWN)
				continue;
			return -errno;
		}
		if (sll.sll_pkttype == PACKET_OUTGOING || (size_t)n > size ||
		    frame_type(buf, n) != TEST_ETHERTYPE)
			continue;
		return n;
	}
}

/* The next test frame on the socket must be frame (seq) of (len) bytes. */
static void expect_pk_frame(int fd, size_t len, uint32_t seq)
{
	uint8_t *buf = malloc(BIG_BUF);
	ck_assert_ptr_nonnull(buf);
	ssize_t n = pk_recv(fd, buf, BIG_BUF, 2000);
	ck_assert_msg(n >= 0, "frame %u of %zu bytes written by the library never arrived", seq,
	              len);
	ck_assert_msg(frame_ok(buf, n, len, seq),
	              "expected frame %u of %zu bytes on the TAP, got %zd bytes (seq %u)", seq, len,
	              n, n >= 18 ? frame_seq(buf) : 0);
	free(buf);
}

static void expect_pk_nothing(int fd, int timeout_ms)
{
	uint8_t *buf = malloc(BIG_BUF);
	ck_assert_ptr_nonnull(buf);
	ssize_t n = pk_recv(fd, buf, BIG_BUF, timeout_ms);
	ck_assert_msg(n == -ETIMEDOUT, "unexpected frame of %zd bytes (seq %u) on the TAP", n,
	              n >= 18 ? frame_seq(buf) : 0);
	free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/*  Processes                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Zeroed memory that a forked child shares with its parent. */
static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

/* Run fn(arg) in a child process: the packet-socket side of the tests that need one running
 * alongside mk_run. Not a thread: valgrind holds its lock while a thread waits in
 * io_uring_enter, so a thread would stall whenever the scheduler sleeps. (fn) makes no
 * assertions; it reports through (arg), which must be shared_alloc() memory. */
static pid_t side_start(void *(*fn)(void *), void *arg)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	return pid;
}

static void side_wait(pid_t pid)
{
	int st = mkt_wait_child(pid, 60000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the packet-socket side failed: %d",
	              st);
}

/* ---------------------------------------------------------------------------------------- */
/*  The library side                                                                         */
/* ---------------------------------------------------------------------------------------- */

struct lib_read_op {
	mk_net *net;
	enum read_mode mode;
	void *buf;
	size_t size, off, len;
	uint64_t timeout_ns;
	mk_task *reader;
	ssize_t ret;
	int done, timed_out;
};

static intptr_t lib_read_task(void *arg)
{
	struct lib_read_op *op = arg;
	if (op->mode == READ_BYTES)
		op->ret = mk_net_read_bytes(op->net, op->buf, op->size, op->off, op->len);
	else
		op->ret = mk_net_read_bigstring(op->net, op->buf, op->size, op->off, op->len);
	op->done = 1;
	return 0;
}

static intptr_t lib_read_watchdog(void *arg)
{
	struct lib_read_op *op = arg;
	if (mk_sleep(op->timeout_ns) == 0 && !op->done) {
		op->timed_out = 1;
		mk_task_cancel(op->reader);
	}
	return 0;
}

/* One read by the library, in a task of its own that is cancelled after (timeout_ms): the
 * read's result, or -ETIMEDOUT. Makes no assertion, so a forked child may use it. */
static ssize_t lib_read(mk_net *net, enum read_mode mode, void *buf, size_t size, size_t off,
                        size_t len, int timeout_ms)
{
	struct lib_read_op op = {.net = net,
	                         .mode = mode,
	                         .buf = buf,
	                         .size = size,
	                         .off = off,
	                         .len = len,
	                         .timeout_ns = (uint64_t)timeout_ms * MS};
	mk_task *wd;

	if (mk_task_spawn(&op.reader, "reader", lib_read_task, &op) != 0)
		return -ENOMEM;
	if (mk_task_spawn(&wd, "watchdog", lib_read_watchdog, &op) != 0) {
		mk_task_cancel(op.reader);
		mk_task_await(op.reader, NULL);
		return -ENOMEM;
	}
	mk_task_await(op.reader, NULL);
	mk_task_cancel(wd);
	mk_task_await(wd, NULL);
	return op.timed_out ? -ETIMEDOUT : op.ret;
}

/* The library's next frame must be test frame (seq) of (flen) bytes, at buf + off. */
static void expect_lib_frame(mk_net *net, enum read_mode mode, uint8_t *buf, size_t size,
                             size_t off, size_t len, size_t flen, uint32_t seq)
{
	ssize_t n = lib_read(net, mode, buf, size, off, len, 2000);
	ck_assert_msg(n >= 0, "%s: no frame (%s), expected frame %u of %zu bytes",
	              read_mode_name[mode], n == -ETIMEDOUT ? "timed out" : mk_strerror((int)n),
	              seq, flen);
	ck_assert_msg(frame_ok(buf + off, n, flen, seq),
	              "%s: expected frame %u of %zu bytes, got %zd bytes (type 0x%04x, seq %u)",
	              read_mode_name[mode], seq, flen, n, frame_type(buf + off, n),
	              n >= 18 ? frame_seq(buf + off) : 0);
}

/* Connect (name) and wait until its interface (ifname) carries frames. */
static mk_net *lib_connect(const char *name, const char *ifname, struct mk_net_config *cfg)
{
	mk_net *net = NULL;
	int r = mk_net_connect(name, &net, cfg);
	ck_assert_msg(r == 0, "mk_net_connect(%s) = %s: %s", name, mk_strerror(r), mk_last_error());
	ck_assert_ptr_nonnull(net);
	ck_assert_msg(mkt_link_ready(ifname, 3000), "%s is not running after mk_net_connect",
	              ifname);
	return net;
}

static void expect_error_mentions(const char *what, const char *needle)
{
	const char *e = mk_last_error();
	ck_assert_msg(e != NULL && strstr(e, needle) != NULL,
	              "%s: mk_last_error() \"%s\" does not mention \"%s\"", what, e ? e : "(null)",
	              needle);
}

/* A filler for mk_net_write_into(): writes test frame (seq), at most (fill) bytes of it, and
 * returns (ret). */
struct filler {
	size_t fill, ret;
	uint32_t seq;
	size_t seen_len;
	int calls;
};

static size_t fill_frame(void *buf, size_t len, void *ctx)
{
	struct filler *fl = ctx;
	fl->calls++;
	fl->seen_len = len;
	frame_fill(buf, fl->fill < len ? fl->fill : len, fl->seq);
	return fl->ret;
}

/* What most tests hand to their mk_run main. */
struct ctx {
	const char *ifname;
	int pfd;
	int mode;
	bool batched; /* the program runs with --tx-batch */
	struct mk_net_config cfg;
};

static void ctx_open(struct ctx *c, const char *ifname, unsigned mtu)
{
	memset(c, 0, sizeof(*c));
	c->ifname = ifname;
	tap_new(ifname, mtu, 1);
	c->pfd = pk_open(ifname);
}

static void ctx_close(struct ctx *c)
{
	close(c->pfd);
	mkt_tap_delete(c->ifname);
}

/* ---------------------------------------------------------------------------------------- */
/*  Frames both ways                                                                        */
/* ---------------------------------------------------------------------------------------- */

static int both_ways_main(int argc, char **argv, void *arg)
{
	static const size_t sizes[] = {14, 15, 17, 18, 60, 61, 128, 1000, 1513, 1514};
	struct ctx *c = arg;
	uint8_t *buf = malloc(2048), *f = malloc(2048);
	ck_assert(buf && f);

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	ck_assert_uint_eq(c->cfg.mtu, 1500);
	ck_assert_str_eq(mk_net_name(net), "svc");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		uint32_t seq = 0x01000000u + (uint32_t)i * 16;

		/* Socket to library: each read call, at offset 0 and inside a larger buffer. */
		pk_send_frame(c->pfd, n, seq);
		expect_lib_frame(net, READ_BIGSTRING, buf, 1514, 0, 1514, n, seq);
		for (int mode = READ_BIGSTRING; mode <= READ_BYTES; mode++) {
			pk_send_frame(c->pfd, n, seq + 1 + mode);
			memset(buf, 0xee, 2048);
			expect_lib_frame(net, mode, buf, 2000, 9, 1514, n, seq + 1 + mode);
			for (size_t k = 0; k < 9; k++)
				ck_assert_msg(buf[k] == 0xee, "%s wrote before off",
				              read_mode_name[mode]);
			for (size_t k = 9 + 1514; k < 2048; k++)
				ck_assert_msg(buf[k] == 0xee, "%s wrote past off + len",
				              read_mode_name[mode]);
		}

		/* Library to socket: each write call. */
		frame_fill(f + 5, n, seq + 3);
		ck_assert_int_eq(mk_net_write_bigstring(net, f, 5 + n + 7, 5, n), n);
		expect_pk_frame(c->pfd, n, seq + 3);
		frame_fill(f + 5, n, seq + 4);
		ck_assert_int_eq(mk_net_write_string(net, f, 5 + n, 5, n), n);
		expect_pk_frame(c->pfd, n, seq + 4);
		struct filler fl = {.fill = n, .ret = n, .seq = seq + 5};
		ck_assert_int_eq(mk_net_write_into(net, 1514, fill_frame, &fl), n);
		ck_assert_int_eq(fl.calls, 1);
		ck_assert_uint_eq(fl.seen_len, 1514);
		expect_pk_frame(c->pfd, n, seq + 5);
	}
	expect_pk_nothing(c->pfd, 100);
	free(buf);
	free(f);
	return 0;
}

START_TEST(frames_both_ways)
{
	struct ctx c;
	ctx_open(&c, "tnb0", 0);
	ck_assert_int_eq(mkt_run(both_ways_main, &c, "--net:svc=tnb0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Exactly one frame per read                                                               */
/* ---------------------------------------------------------------------------------------- */

static int one_per_read_main(int argc, char **argv, void *arg)
{
	static const size_t sizes[] = {60, 1514, 100};
	struct ctx *c = arg;
	uint8_t *buf = malloc(4096);
	ck_assert_ptr_nonnull(buf);

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	for (uint32_t k = 0; k < 3; k++)
		pk_send_frame(c->pfd, sizes[k], k + 1);
	usleep(50000); /* all three wait in the TAP's queue before the first read */
	for (uint32_t k = 0; k < 3; k++)
		expect_lib_frame(net, c->mode, buf, 4096, 0, 4096, sizes[k], k + 1);
	ssize_t n = lib_read(net, c->mode, buf, 4096, 0, 4096, 300);
	ck_assert_msg(n == -ETIMEDOUT,
	              "%s: a fourth read returned %zd, but only 3 frames were sent",
	              read_mode_name[c->mode], n);
	free(buf);
	return 0;
}

/* Run once per read call (_i is the read_mode). */
START_TEST(one_frame_per_read)
{
	struct ctx c;
	const char *ifname = _i == READ_BYTES ? "tno1" : "tno0";
	char arg[64];
	ctx_open(&c, ifname, 0);
	c.mode = _i;
	snprintf(arg, sizeof(arg), "--net:svc=%s", ifname);
	ck_assert_int_eq(mkt_run(one_per_read_main, &c, arg, NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Read arguments                                                                          */
/* ---------------------------------------------------------------------------------------- */

static int read_einval_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	uint8_t *buf = malloc(2100);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0xee, 2100);
	const struct {
		void *buf;
		size_t size, off, len;
		const char *what;
	} bad[] = {
	    {buf, 2100, 0, 1513, "len = mtu + 13"},
	    {buf, 2100, 0, 60, "len = 60"},
	    {buf, 2100, 0, 0, "len = 0"},
	    {NULL, 2100, 0, 1514, "buf = NULL"},
	    {buf, 1513, 0, 1514, "len > size"},
	    {buf, 2100, 587, 1514, "off + len = size + 1"},
	    {buf, 2100, 2101, 1514, "off > size"},
	    {buf, 2100, SIZE_MAX, 1514, "off = SIZE_MAX"},
	    {buf, 2100, SIZE_MAX - 100, 1514, "off + len wrapping around to 1413"},
	    {buf, 2100, 1, SIZE_MAX, "len = SIZE_MAX, off + len wrapping around to 0"},
	};

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	pk_send_frame(c->pfd, 100, 42);
	usleep(50000); /* the frame waits in the TAP's queue: a bad read could take it */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ssize_t n =
		    lib_read(net, c->mode, bad[i].buf, bad[i].size, bad[i].off, bad[i].len, 500);
		ck_assert_msg(n == -EINVAL, "%s with %s: got %zd (%s), expected -EINVAL",
		              read_mode_name[c->mode], bad[i].what, n,
		              n == -ETIMEDOUT ? "timed out"
		              : n < 0         ? mk_strerror((int)n)
		                              : "a frame");
	}
	for (size_t k = 0; k < 2100; k++)
		ck_assert_msg(buf[k] == 0xee, "%s wrote into the buffer of a bad read",
		              read_mode_name[c->mode]);

	/* The frame is still there, and a read that ends exactly at off + len = size - 100 works.
	 */
	expect_lib_frame(net, c->mode, buf, 2100, 486, 1514, 100, 42);
	for (size_t k = 0; k < 486; k++)
		ck_assert_msg(buf[k] == 0xee, "%s wrote before off", read_mode_name[c->mode]);
	for (size_t k = 2000; k < 2100; k++)
		ck_assert_msg(buf[k] == 0xee, "%s wrote past off + len", read_mode_name[c->mode]);
	ssize_t n = lib_read(net, c->mode, buf, 2100, 0, 1514, 300);
	ck_assert_msg(n == -ETIMEDOUT, "%s: a second read returned %zd after the only frame",
	              read_mode_name[c->mode], n);
	free(buf);
	return 0;
}

START_TEST(read_einval)
{
	struct ctx c;
	const char *ifname = _i == READ_BYTES ? "tri1" : "tri0";
	char arg[64];
	ctx_open(&c, ifname, 0);
	c.mode = _i;
	snprintf(arg, sizeof(arg), "--net:svc=%s", ifname);
	ck_assert_int_eq(mkt_run(read_einval_main, &c, arg, NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Write arguments                                                                          */
/* ---------------------------------------------------------------------------------------- */

static int write_einval_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	uint8_t *f = malloc(4096);
	ck_assert_ptr_nonnull(f);
	frame_fill(f, 4096, 666); /* anything that leaks out is a test frame, and is caught */

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	ssize_t (*const writes[])(mk_net *, const void *, size_t, size_t,
	                          size_t) = {mk_net_write_bigstring, mk_net_write_string};
	const char *const names[] = {"mk_net_write_bigstring", "mk_net_write_string"};
	const struct {
		const void *buf;
		size_t size, off, len;
		const char *what;
	} bad[] = {
	    {f, 4096, 0, 1515, "len = mtu + 15"},
	    {f, 4096, 0, 4096, "len = 4096"},
	    {f, 4096, 0, 13, "len = 13"},
	    {f, 4096, 0, 0, "len = 0"},
	    {NULL, 4096, 0, 60, "buf = NULL"},
	    {f, 100, 50, 60, "off + len > size"},
	    {f, 59, 0, 60, "len > size"},
	    {f, 4096, 4097, 60, "off > size"},
	    {f, 4096, SIZE_MAX, 60, "off = SIZE_MAX"},
	    {f, 4096, SIZE_MAX - 10, 60, "off + len wrapping around to 49"},
	    {f, 4096, 1, SIZE_MAX, "len = SIZE_MAX"},
	};
	for (size_t w = 0; w < 2; w++)
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			ssize_t r = writes[w](net, bad[i].buf, bad[i].size, bad[i].off, bad[i].len);
			ck_assert_msg(r == -EINVAL, "%s with %s: got %zd, expected -EINVAL",
			              names[w], bad[i].what, r);
		}

	ck_assert_int_eq(mk_net_write_into(net, 1514, NULL, NULL), -EINVAL);
	struct filler fl = {.fill = 1515, .ret = 1515, .seq = 667};
	ck_assert_int_eq(mk_net_write_into(net, 1515, fill_frame, &fl), -EINVAL);
	fl = (struct filler){.fill = 0, .ret = 0, .seq = 668};
	ck_assert_msg(mk_net_write_into(net, 1514, fill_frame, &fl) == 0,
	              "mk_net_write_into: a filler returning 0 must give 0");
	ck_assert_int_eq(fl.calls, 1);
	fl = (struct filler){.fill = 100, .ret = 101, .seq = 669};
	ck_assert_msg(mk_net_write_into(net, 100, fill_frame, &fl) == -EINVAL,
	              "mk_net_write_into: a filler returning more than len must give -EINVAL");
	fl = (struct filler){.fill = 1514, .ret = 1515, .seq = 670};
	ck_assert_msg(mk_net_write_into(net, 1514, fill_frame, &fl) == -EINVAL,
	              "mk_net_write_into: a filler returning mtu + 15 must give -EINVAL");
	fl = (struct filler){.fill = 13, .ret = 13, .seq = 671};
	ck_assert_msg(mk_net_write_into(net, 1514, fill_frame, &fl) == -EINVAL,
	              "mk_net_write_into: a filler returning 13 must give -EINVAL");

	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(net, &st), 0);
	ck_assert_msg(st.tx_frames == 0 && st.tx_bytes == 0 && st.tx_drops == 0,
	              "refused writes were counted: tx_frames %llu tx_bytes %llu tx_drops %llu",
	              (unsigned long long)st.tx_frames, (unsigned long long)st.tx_bytes,
	              (unsigned long long)st.tx_drops);

	/* Nothing went out: the first test frame on the TAP is the one written now. */
	frame_fill(f, 60, 1);
	ck_assert_int_eq(mk_net_write_bigstring(net, f, 4096, 0, 60), 60);
	expect_pk_frame(c->pfd, 60, 1);
	expect_pk_nothing(c->pfd, 200);
	free(f);
	return 0;
}

START_TEST(write_einval)
{
	struct ctx c;
	ctx_open(&c, "twi0", 0);
	ck_assert_int_eq(mkt_run(write_einval_main, &c, "--net:svc=twi0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  A write from inside a filler                                                            */
/* ---------------------------------------------------------------------------------------- */

enum nested_kind { NESTED_STRING, NESTED_INTO, NESTED_BIGSTRING };

struct nested {
	mk_net *net;
	enum nested_kind kind;
	ssize_t inner; /* what the nested write returned */
};

static size_t fill_inner(void *buf, size_t len, void *ctx)
{
	frame_fill(buf, 60, 2);
	return 60;
}

/* Fills the outer frame (1), then writes frame 2 from inside the filler, then checks that its
 * own buffer still holds frame 1. */
static size_t fill_nested(void *buf, size_t len, void *ctx)
{
	struct nested *ns = ctx;
	uint8_t f[60];

	frame_fill(buf, 60, 1);
	frame_fill(f, 60, 2);
	if (ns->kind == NESTED_STRING)
		ns->inner = mk_net_write_string(ns->net, f, sizeof(f), 0, 60);
	else if (ns->kind == NESTED_INTO)
		ns->inner = mk_net_write_into(ns->net, 60, fill_inner, NULL);
	else
		ns->inner = mk_net_write_bigstring(ns->net, f, sizeof(f), 0, 60);
	return frame_ok(buf, 60, 60, 1) ? 60 : 0;
}

static int nested_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	struct nested ns = {.net = lib_connect("svc", c->ifname, &c->cfg), .kind = c->mode};
	struct mk_net_stats st;

	ck_assert_int_eq(mk_net_write_into(ns.net, 1514, fill_nested, &ns), 60);
	if (ns.kind == NESTED_BIGSTRING) {
		/* It needs no buffer of the device's: it goes out at once, before the outer. */
		ck_assert_int_eq(ns.inner, 60);
		expect_pk_frame(c->pfd, 60, 2);
	} else {
		ck_assert_msg(ns.inner == -EBUSY, "a nested write returned %zd, expected -EBUSY",
		              ns.inner);
	}
	expect_pk_frame(c->pfd, 60, 1);
	expect_pk_nothing(c->pfd, 100);
	ck_assert_int_eq(mk_net_stats(ns.net, &st), 0);
	ck_assert_uint_eq(st.tx_frames, ns.kind == NESTED_BIGSTRING ? 2 : 1);
	ck_assert_uint_eq(st.tx_drops, 0);
	/* The device's buffer is free again once the filler has returned. */
	struct filler fl = {.fill = 60, .ret = 60, .seq = 3};
	ck_assert_int_eq(mk_net_write_into(ns.net, 1514, fill_frame, &fl), 60);
	expect_pk_frame(c->pfd, 60, 3);
	return 0;
}

START_TEST(write_inside_filler)
{
	struct ctx c;
	ctx_open(&c, "twn0", 0);
	c.mode = _i;
	ck_assert_int_eq(mkt_run(nested_main, &c, "--net:svc=twn0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Handles used after mk_run returned, or from another thread                              */
/* ---------------------------------------------------------------------------------------- */

struct stale {
	mk_net *net;
	mk_block *block;
	int pass; /* 0: the run that connects; 1: a later run, with devices of its own */
	int r[13];
	const char *name[2];
	size_t sector;
};

static size_t fill_any(void *buf, size_t len, void *ctx)
{
	(*(int *)ctx)++;
	frame_fill(buf, 60, 9);
	return 60;
}

/* Every call on the handles in (st) must be refused with -EPERM (NULL, 0) and touch nothing. */
static void stale_calls(struct stale *st)
{
	uint8_t buf[4096];
	int fills = 0;

	frame_fill(buf, 60, 8);
	st->r[0] = mk_net_stats(st->net, &(struct mk_net_stats){0});
	st->r[1] = (int)mk_net_write_bigstring(st->net, buf, sizeof(buf), 0, 60);
	st->r[2] = (int)mk_net_write_string(st->net, buf, sizeof(buf), 0, 60);
	st->r[3] = (int)mk_net_write_into(st->net, 60, fill_any, &fills);
	st->r[4] = (int)mk_net_read_bigstring(st->net, buf, sizeof(buf), 0, sizeof(buf));
	st->r[5] = (int)mk_net_read_bytes(st->net, buf, sizeof(buf), 0, sizeof(buf));
	st->r[6] = mk_block_stats(st->block, &(struct mk_block_stats){0});
	st->r[7] = mk_block_atomic_read(st->block, 0, buf, sizeof(buf), 0);
	st->r[8] = mk_block_atomic_write(st->block, 0, buf, sizeof(buf), 0);
	st->r[9] = mk_block_read(st->block, 0, buf, sizeof(buf), 0);
	st->r[10] = mk_block_flush(st->block);
	st->r[11] = fills == 0 ? -EPERM : 1;
	st->r[12] = (int)mk_net_try_read(st->net, buf, sizeof(buf), 0, sizeof(buf));
	st->name[0] = mk_net_name(st->net);
	st->name[1] = mk_block_name(st->block);
	st->sector = mk_block_sector_size(st->block) + mk_block_length(st->block) +
	             (size_t)mk_block_read_only(st->block);
}

static void expect_refused(const struct stale *st, const char *when)
{
	static const char *const what[] = {
	    "mk_net_stats",      "mk_net_write_bigstring", "mk_net_write_string",
	    "mk_net_write_into", "mk_net_read_bigstring",  "mk_net_read_bytes",
	    "mk_block_stats",    "mk_block_atomic_read",   "mk_block_atomic_write",
	    "mk_block_read",     "mk_block_flush",         "the filler not called",
	    "mk_net_try_read"};
	for (int i = 0; i < 13; i++)
		ck_assert_msg(st->r[i] == -EPERM, "%s %s returned %d, not -EPERM", what[i], when,
		              st->r[i]);
	ck_assert_msg(st->name[0] == NULL && st->name[1] == NULL, "a name %s: %s, %s", when,
	              st->name[0] ? st->name[0] : "NULL", st->name[1] ? st->name[1] : "NULL");
	ck_assert_msg(st->sector == 0, "the block device's geometry %s: %zu", when, st->sector);
}

static void *stale_thread(void *arg)
{
	stale_calls(arg);
	return NULL;
}

static int stale_main(int argc, char **argv, void *arg)
{
	struct stale *st = arg;
	pthread_t th;

	if (st->pass == 0) {
		ck_assert_int_eq(mk_net_connect("svc", &st->net, NULL), 0);
		ck_assert_int_eq(mk_block_connect("disk", &st->block), 0);
		/* From another thread while mk_run runs. */
		ck_assert_int_eq(pthread_create(&th, NULL, stale_thread, st), 0);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		expect_refused(st, "from another thread");
		ck_assert_str_eq(mk_net_name(st->net), "svc");
		return 0;
	}
	/* A later run, whose own devices are not these. Connected after the calls, so that
	 * they cannot reuse the memory of the stale ones first. */
	stale_calls(st);
	expect_refused(st, "in a later mk_run");
	mk_net *net;
	ck_assert_int_eq(mk_net_connect("svc", &net, NULL), 0);
	ck_assert_int_eq(mk_net_stats(net, &(struct mk_net_stats){0}), 0);
	return 0;
}

START_TEST(stale_handles)
{
	char img[] = "/tmp/mkt-stale-XXXXXX";
	int fd = mkstemp(img);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 65536), 0);
	close(fd);
	char disk[64];
	snprintf(disk, sizeof(disk), "--block:disk=%s", img);
	tap_new("tst0", 0, 1);

	struct stale st = {0};
	ck_assert_int_eq(mkt_run(stale_main, &st, "--net:svc=tst0", disk, NULL), 0);
	/* After mk_run returned: the handles point at freed memory. */
	memset(st.r, 0, sizeof(st.r));
	stale_calls(&st);
	expect_refused(&st, "after mk_run returned");
	st.pass = 1;
	ck_assert_int_eq(mkt_run(stale_main, &st, "--net:svc=tst0", disk, NULL), 0);
	mkt_tap_delete("tst0");
	unlink(img);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  MTU 9000                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static int jumbo_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	uint8_t *buf = malloc(BIG_BUF);
	ck_assert_ptr_nonnull(buf);

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	ck_assert_uint_eq(c->cfg.mtu, 9000);
	for (int mode = READ_BIGSTRING; mode <= READ_BYTES; mode++) {
		ssize_t n = lib_read(net, mode, buf, BIG_BUF, 0, 9013, 500);
		ck_assert_msg(n == -EINVAL,
		              "%s with len = 9013 at mtu 9000: got %zd, expected -EINVAL",
		              read_mode_name[mode], n);
		pk_send_frame(c->pfd, 9014, 90 + mode);
		expect_lib_frame(net, mode, buf, 9014, 0, 9014, 9014, 90 + mode);
	}
	frame_fill(buf, 9015, 95);
	ck_assert_int_eq(mk_net_write_bigstring(net, buf, BIG_BUF, 0, 9015), -EINVAL);
	ck_assert_int_eq(mk_net_write_string(net, buf, BIG_BUF, 0, 9015), -EINVAL);
	ck_assert_int_eq(mk_net_write_bigstring(net, buf, BIG_BUF, 0, 9014), 9014);
	expect_pk_frame(c->pfd, 9014, 95);
	frame_fill(buf, 9014, 96);
	ck_assert_int_eq(mk_net_write_string(net, buf, 9014, 0, 9014), 9014);
	expect_pk_frame(c->pfd, 9014, 96);
	struct filler fl = {.fill = 9014, .ret = 9014, .seq = 97};
	ck_assert_int_eq(mk_net_write_into(net, 9014, fill_frame, &fl), 9014);
	expect_pk_frame(c->pfd, 9014, 97);
	expect_pk_nothing(c->pfd, 100);
	free(buf);
	return 0;
}

START_TEST(mtu_9000)
{
	struct ctx c;
	ctx_open(&c, "tjm0", 9000);
	ck_assert_int_eq(mkt_run(jumbo_main, &c, "--net:svc=tjm0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  MAC addresses                                                                            */
/* ---------------------------------------------------------------------------------------- */

struct mac_run {
	uint8_t mac[6];
	int argc, called;
};

static int mac_main(int argc, char **argv, void *arg)
{
	struct mac_run *m = arg;
	struct mk_net_config cfg;
	mk_net *net = NULL;
	m->called = 1;
	m->argc = argc;
	int r = mk_net_connect("svc", &net, &cfg);
	ck_assert_msg(r == 0, "mk_net_connect(svc) = %s: %s", mk_strerror(r), mk_last_error());
	memcpy(m->mac, cfg.mac, 6);
	return 0;
}

START_TEST(mac_option)
{
	static const uint8_t want[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	struct mac_run m = {0};
	tap_new("tma0", 0, 1);
	ck_assert_int_eq(
	    mkt_run(mac_main, &m, "--net:svc=tma0", "--net-mac:svc=02:11:22:33:44:55", NULL), 0);
	ck_assert_int_eq(m.argc, 1);
	ck_assert_msg(memcmp(m.mac, want, 6) == 0,
	              "cfg.mac is %02x:%02x:%02x:%02x:%02x:%02x, --net-mac said 02:11:22:33:44:55",
	              m.mac[0], m.mac[1], m.mac[2], m.mac[3], m.mac[4], m.mac[5]);
	mkt_tap_delete("tma0");
}
END_TEST

START_TEST(mac_default)
{
	struct mac_run m[2];
	memset(m, 0, sizeof(m));
	tap_new("tmd0", 0, 1);
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(mkt_run(mac_main, &m[k], "--net:svc=tmd0", NULL), 0);
		ck_assert_msg(
		    (m[k].mac[0] & 0x02) && !(m[k].mac[0] & 0x01),
		    "default MAC %02x:%02x:%02x:%02x:%02x:%02x is not locally administered "
		    "unicast",
		    m[k].mac[0], m[k].mac[1], m[k].mac[2], m[k].mac[3], m[k].mac[4], m[k].mac[5]);
	}
	ck_assert_msg(memcmp(m[0].mac, m[1].mac, 6) != 0, "two runs got the same default MAC");
	mkt_tap_delete("tmd0");
}
END_TEST

START_TEST(mac_malformed)
{
	static const char *const bad[] = {
	    "--net-mac:svc=02:11:22:33:44",     "--net-mac:svc=02:11:22:33:44:55:66",
	    "--net-mac:svc=02:11:22:33:44:zz",  "--net-mac:svc=",
	    "--net-mac:svc=02:11:22:33:44:55x", "--net-mac:svc=hello",
	};
	tap_new("tmm0", 0, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mac_run m = {0};
		int r = mkt_run(mac_main, &m, "--net:svc=tmm0", bad[i], NULL);
		ck_assert_msg(r == -EINVAL, "mk_run with %s returned %d, expected -EINVAL", bad[i],
		              r);
		ck_assert_msg(!m.called, "mk_run with %s ran main", bad[i]);
		expect_error_mentions(bad[i], "svc");
	}
	mkt_tap_delete("tmm0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Connect errors                                                                           */
/* ---------------------------------------------------------------------------------------- */

struct conn_case {
	const char *name; /* the device to connect */
	int expect;
	const char *mention[3];  /* what mk_last_error() must contain */
	const char *first;       /* a device connected before (name), which must connect; or NULL */
	const char *not_mention; /* what mk_last_error() must not contain; or NULL */
};

static int conn_main(int argc, char **argv, void *arg)
{
	const struct conn_case *cc = arg;
	mk_net *net = NULL, *first = NULL;
	struct mk_net_config cfg;
	if (cc->first != NULL)
		ck_assert_msg(mk_net_connect(cc->first, &first, NULL) == 0,
		              "mk_net_connect(%s): %s", cc->first, mk_last_error());
	int r = mk_net_connect(cc->name, &net, &cfg);
	ck_assert_msg(r == cc->expect, "mk_net_connect(%s) = %d (%s), expected %d (%s); \"%s\"",
	              cc->name, r, mk_strerror(r), cc->expect, mk_strerror(cc->expect),
	              mk_last_error());
	for (int i = 0; i < 3 && cc->mention[i]; i++)
		expect_error_mentions("mk_net_connect", cc->mention[i]);
	if (cc->not_mention != NULL)
		ck_assert_msg(strstr(mk_last_error(), cc->not_mention) == NULL,
		              "mk_last_error() \"%s\" has \"%s\"", mk_last_error(),
		              cc->not_mention);
	if (first != NULL) { /* the device connected first still works */
		struct mk_net_stats st;
		ck_assert_int_eq(mk_net_stats(first, &st), 0);
		ck_assert_str_eq(mk_net_name(first), cc->first);
	}
	return 0;
}

START_TEST(connect_not_on_command_line)
{
	struct conn_case cc = {.name = "other", .expect = -ENOENT, .mention = {"other"}};
	tap_new("tce0", 0, 1);
	ck_assert_int_eq(mkt_run(conn_main, &cc, "--net:svc=tce0", NULL), 0);
	mkt_tap_delete("tce0");
}
END_TEST

START_TEST(connect_missing_interface)
{
	struct conn_case cc = {
	    .name = "svc", .expect = -ENODEV, .mention = {"svc", "tcnone0", "ip tuntap add"}};
	mkt_tap_delete("tcnone0");
	ck_assert_int_eq(mkt_run(conn_main, &cc, "--net:svc=tcnone0", NULL), 0);
}
END_TEST

START_TEST(connect_interface_down)
{
	struct conn_case cc = {.name = "svc", .expect = -ENETDOWN, .mention = {"svc", "tcd0"}};
	tap_new("tcd0", 0, 0);
	ck_assert_int_eq(mkt_run(conn_main, &cc, "--net:svc=tcd0", NULL), 0);
	mkt_tap_delete("tcd0");
}
END_TEST

START_TEST(connect_name_twice)
{
	struct conn_case cc = {.name = "svc", .expect = -EEXIST, .mention = {"svc"}};
	tap_new("tcx0", 0, 1);
	tap_new("tcx1", 0, 1);
	ck_assert_int_eq(mkt_run(conn_main, &cc, "--net:svc=tcx0", "--net:svc=tcx1", NULL), 0);
	mkt_tap_delete("tcx0");
	mkt_tap_delete("tcx1");
}
END_TEST

/* An interface that is not a TAP is named so, even when it is down, and the fix suggests a TAP
 * under a name that is free (the suggested ip tuntap add would fail on the existing name). */
static int not_tap_main(int argc, char **argv, void *arg)
{
	const char *ifname = arg;
	mk_net *net = NULL;
	int r = mk_net_connect("svc", &net, NULL);
	ck_assert_msg(r == -EINVAL, "mk_net_connect on %s = %d (%s), expected -EINVAL: \"%s\"",
	              ifname, r, mk_strerror(r), mk_last_error());
	expect_error_mentions("mk_net_connect", "not a TAP");
	expect_error_mentions("mk_net_connect", "'svc'");
	const char *add = strstr(mk_last_error(), "ip tuntap add dev ");
	ck_assert_msg(add != NULL, "no ip tuntap add in \"%s\"", mk_last_error());
	char other[IFNAMSIZ + 1] = "";
	ck_assert_int_eq(sscanf(add, "ip tuntap add dev %16s", other), 1);
	ck_assert_msg(strcmp(other, ifname) != 0 && if_nametoindex(other) == 0,
	              "the fix suggests creating '%s', which exists: \"%s\"", other,
	              mk_last_error());
	char hint[64];
	snprintf(hint, sizeof(hint), "--net:svc=%s", other);
	expect_error_mentions("mk_net_connect", hint);
	return 0;
}

START_TEST(connect_not_a_tap)
{
	mkt_tap_delete("tct0");
	ck_assert_int_eq(mkt_sh("ip tuntap add dev tct0 mode tun && ip link set dev tct0 up"), 0);
	ck_assert_int_eq(mkt_run(not_tap_main, "tct0", "--net:svc=tct0", NULL), 0);
	/* Down, it is still "not a TAP" first, not "bring it up". */
	ck_assert_int_eq(mkt_sh("ip link set dev tct0 down"), 0);
	ck_assert_int_eq(mkt_run(not_tap_main, "tct0", "--net:svc=tct0", NULL), 0);
	mkt_tap_delete("tct0");
	mkt_sh("ip link del tcv0 >/dev/null 2>&1");
	if (mkt_sh("ip link add tcv0 type veth peer name tcv1") == 0) { /* down, as made */
		ck_assert_int_eq(mkt_run(not_tap_main, "tcv0", "--net:svc=tcv0", NULL), 0);
		mkt_sh("ip link del tcv0");
	}
	ck_assert_int_eq(mkt_run(not_tap_main, "lo", "--net:svc=lo", NULL), 0);
}
END_TEST

/* Names the kernel cannot have are refused up front; others are echoed escaped, never raw. */
START_TEST(connect_bad_names)
{
	struct conn_case spaced = {
	    .name = "svc", .expect = -EINVAL, .mention = {"'svc'", "cannot be an interface name"}};
	ck_assert_int_eq(mkt_run(conn_main, &spaced, "--net:svc=tap 0", NULL), 0);
	ck_assert_int_eq(mkt_run(conn_main, &spaced, "--net:svc=a/b", NULL), 0);
	ck_assert_int_eq(mkt_run(conn_main, &spaced, "--net:svc=a:b", NULL), 0);
	ck_assert_int_eq(mkt_run(conn_main, &spaced, "--net:svc=..", NULL), 0);
	struct conn_case newline = {
	    .name = "svc",
	    .expect = -EINVAL,
	    .mention = {"'svc'", "cannot be an interface name", "tap\\x0a0"},
	    .first = NULL,
	    .not_mention = "\n"};
	ck_assert_int_eq(mkt_run(conn_main, &newline, "--net:svc=tap\n0", NULL), 0);
	/* A control byte is allowed by the kernel: the name is missing, and the command to create
	 * it quotes it for the shell. */
	struct conn_case ctl = {.name = "svc",
	                        .expect = -ENODEV,
	                        .mention = {"'svc'", "ip tuntap add dev $'tc\\x01x'"},
	                        .first = NULL,
	                        .not_mention = "\x01"};
	ck_assert_int_eq(mkt_run(conn_main, &ctl, "--net:svc=tc\x01x", NULL), 0);
}
END_TEST

/* Two devices of this program on one TAP: the second is refused, naming the first. */
START_TEST(connect_same_tap_twice)
{
	struct conn_case cc = {.name = "b",
	                       .expect = -EBUSY,
	                       .mention = {"'b'", "'a'", "this program"},
	                       .first = "a",
	                       .not_mention = "another process"};
	tap_new("tcq0", 0, 1);
	ck_assert_int_eq(mkt_run(conn_main, &cc, "--net:a=tcq0", "--net:b=tcq0", NULL), 0);
	mkt_tap_delete("tcq0");
}
END_TEST

START_TEST(connect_busy)
{
	struct conn_case cc = {.name = "svc", .expect = -EBUSY, .mention = {"svc"}};
	tap_new("tcb0", 0, 1);
	int fd = mkt_tun_attach("tcb0", IFF_TAP | IFF_NO_PI);
	ck_assert_msg(fd >= 0, "cannot attach to tcb0: %s", strerror(-fd));
	ck_assert_int_eq(mkt_run(conn_main, &cc, "--net:svc=tcb0", NULL), 0);
	close(fd);
	mkt_tap_delete("tcb0");
}
END_TEST

/* When mk_run returns, the TAP is free at once, even though a reader left a readiness request
 * armed in the ring: another program (here a plain TUNSETIFF, with no retry) can attach. */
static intptr_t parked_reader(void *arg)
{
	static uint8_t buf[2048];
	mk_net_read_bigstring(arg, buf, sizeof(buf), 0, sizeof(buf));
	return 0;
}

static int parked_main(int argc, char **argv, void *arg)
{
	mk_net *net = lib_connect("svc", "tre0", NULL);
	mk_task *t;
	ck_assert_int_eq(mk_task_spawn(&t, "reader", parked_reader, net), 0);
	ck_assert_int_eq(mk_sleep(1000000), 0); /* the reader parks, its poll armed */
	return 0;
}

START_TEST(released_at_exit)
{
	tap_new("tre0", 0, 1);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(mkt_run(parked_main, NULL, "--net:svc=tre0", NULL), 0);
		int fd = mkt_tun_attach("tre0", IFF_TAP | IFF_NO_PI);
		ck_assert_msg(fd >= 0,
		              "run %d: the TAP is still attached after mk_run returned: %s", i,
		              strerror(-fd));
		close(fd);
	}
	mkt_tap_delete("tre0");
}
END_TEST

static int connect_twice_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	mk_net *net = lib_connect("svc", c->ifname, &c->cfg), *again = NULL;
	int r = mk_net_connect("svc", &again, NULL);
	ck_assert_msg(r == -EALREADY, "second mk_net_connect(svc) = %d (%s), expected -EALREADY", r,
	              mk_strerror(r));
	expect_error_mentions("second mk_net_connect", "svc");

	/* The first connection still works. */
	uint8_t f[60];
	frame_fill(f, 60, 7);
	ck_assert_int_eq(mk_net_write_bigstring(net, f, 60, 0, 60), 60);
	expect_pk_frame(c->pfd, 60, 7);
	return 0;
}

START_TEST(connect_twice)
{
	struct ctx c;
	ctx_open(&c, "tca0", 0);
	ck_assert_int_eq(mkt_run(connect_twice_main, &c, "--net:svc=tca0", NULL), 0);
	ctx_close(&c);
}
END_TEST

static int connect_args_main(int argc, char **argv, void *arg)
{
	mk_net *net = NULL;
	struct mk_net_config cfg;
	ck_assert_int_eq(mk_net_connect(NULL, &net, &cfg), -EINVAL);
	ck_assert_int_eq(mk_net_connect("svc", NULL, &cfg), -EINVAL);
	ck_assert_int_eq(mk_net_connect("svc", &net, NULL), 0); /* cfg may be NULL */
	ck_assert_int_eq(mk_net_stats(NULL, &(struct mk_net_stats){0}), -EINVAL);
	ck_assert_int_eq(mk_net_stats(net, NULL), -EINVAL);
	return 0;
}

START_TEST(connect_arguments)
{
	mk_net *net = NULL;
	tap_new("tcg0", 0, 1);
	ck_assert_int_eq(mk_net_connect("svc", &net, NULL), -EPERM); /* outside mk_run */
	ck_assert_int_eq(mkt_run(connect_args_main, NULL, "--net:svc=tcg0", NULL), 0);
	mkt_tap_delete("tcg0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Inherited descriptors (@FD)                                                              */
/* ---------------------------------------------------------------------------------------- */

struct fd_child {
	int ready_fd; /* the child writes a byte here once connected */
};

/* The child's mk_run main, without privileges: the result is its exit status, 0 when all went
 * well, and a line on stderr when not (assertions would not reach Check from here). */
static int fd_child_main(int argc, char **argv, void *arg)
{
	struct fd_child *fc = arg;
	struct mk_net_config cfg;
	mk_net *net = NULL, *other = NULL;
	uint8_t buf[2048];

	int r = mk_net_connect("svc", &net, &cfg);
	if (r != 0) {
		fprintf(stderr, "child: mk_net_connect(svc) = %s: %s\n", mk_strerror(r),
		        mk_last_error());
		return 20;
	}
	if (cfg.mtu != 1500) {
		fprintf(stderr, "child: cfg.mtu = %u\n", cfg.mtu);
		return 21;
	}
	if (write(fc->ready_fd, "c", 1) != 1)
		return 22;
	for (uint32_t k = 0; k < 3; k++) {
		ssize_t n = lib_read(net, k == 1 ? READ_BYTES : READ_BIGSTRING, buf, sizeof(buf), 0,
		                     sizeof(buf), 5000);
		if (!frame_ok(buf, n, 60 + 500 * k, 10 + k)) {
			fprintf(stderr, "child: read %u returned %zd, expected frame %u\n", k, n,
			        10 + k);
			return 23;
		}
	}
	for (uint32_t k = 0; k < 3; k++) {
		frame_fill(buf, 100 + 700 * k, 20 + k);
		ssize_t n = mk_net_write_bigstring(net, buf, sizeof(buf), 0, 100 + 700 * k);
		if (n != (ssize_t)(100 + 700 * k)) {
			fprintf(stderr, "child: write %u returned %zd\n", k, n);
			return 24;
		}
	}
	/* Without CAP_NET_ADMIN, attaching by interface name is refused. */
	r = mk_net_connect("other", &other, NULL);
	if (r != -EPERM && r != -EACCES) {
		fprintf(stderr, "child: mk_net_connect(other) = %d, expected -EPERM or -EACCES\n",
		        r);
		return 25;
	}
	if (!strstr(mk_last_error(), "other")) {
		fprintf(stderr, "child: mk_last_error() \"%s\" does not name \"other\"\n",
		        mk_last_error());
		return 26;
	}
	return 0;
}

static int drop_privileges(void)
{
	return setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
	               setresuid(65534, 65534, 65534) == 0
	           ? 0
	           : -1;
}

START_TEST(fd_unprivileged)
{
	struct ctx c;
	int ready[2];
	ctx_open(&c, "tfd0", 0);
	/* Owned by root: a TAP with no owner may be attached by anyone who can open
	 * /dev/net/tun, which is everyone where it is 0666. */
	mkt_tap_delete("tfd1");
	ck_assert_int_eq(mkt_sh("ip tuntap add dev tfd1 mode tap user root"), 0);
	ck_assert_int_eq(mkt_sh("ip link set dev tfd1 up"), 0);
	ck_assert_int_eq(pipe(ready), 0);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(c.pfd);
		int fd = mkt_tun_attach("tfd0", IFF_TAP | IFF_NO_PI);
		if (fd < 0) {
			fprintf(stderr, "child: cannot attach to tfd0: %s\n", strerror(-fd));
			_exit(10);
		}
		if (drop_privileges() != 0 || geteuid() != 65534) {
			fprintf(stderr, "child: cannot drop privileges: %s\n", strerror(errno));
			_exit(11);
		}
		/* Anyone may open /dev/net/tun where it is 0666 (Debian's default); only a
		 * privileged process may create a TAP. */
		int other = mkt_tun_attach("tfd9", IFF_TAP | IFF_NO_PI);
		if (other != -EPERM && other != -EACCES) {
			fprintf(stderr, "child: still privileged: creating tfd9 gave %s\n",
			        other >= 0 ? "a descriptor" : strerror(-other));
			_exit(12);
		}
		char arg[32];
		snprintf(arg, sizeof(arg), "--net:svc=@%d", fd);
		struct fd_child fc = {.ready_fd = ready[1]};
		alarm(30);
		_exit(mkt_run(fd_child_main, &fc, arg, "--net:other=tfd1", NULL));
	}
	close(ready[1]);

	struct pollfd p = {.fd = ready[0], .events = POLLIN};
	char byte;
	int connected = poll(&p, 1, 5000) == 1 && read(ready[0], &byte, 1) == 1;
	if (connected) {
		ck_assert_msg(mkt_link_ready("tfd0", 3000), "tfd0 is not running");
		for (uint32_t k = 0; k < 3; k++)
			pk_send_frame(c.pfd, 60 + 500 * k, 10 + k);
		for (uint32_t k = 0; k < 3; k++)
			expect_pk_frame(c.pfd, 100 + 700 * k, 20 + k);
	}
	int st = mkt_wait_child(pid, 10000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "the unprivileged child failed: status %d (exit %d, signal %d; see stderr)",
	              st, WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	ck_assert_msg(connected, "the unprivileged child never connected");
	close(ready[0]);
	ctx_close(&c);
	mkt_tap_delete("tfd1");
}
END_TEST

START_TEST(fd_bad)
{
	ck_assert_msg(fcntl(1000, F_GETFD) == -1 && errno == EBADF, "descriptor 1000 is open");
	struct conn_case closed = {.name = "svc", .expect = -EBADF, .mention = {"svc"}};
	ck_assert_int_eq(mkt_run(conn_main, &closed, "--net:svc=@1000", NULL), 0);

	int null_fd = open("/dev/null", O_RDWR);
	ck_assert_int_ge(null_fd, 0);
	char arg[32];
	snprintf(arg, sizeof(arg), "--net:svc=@%d", null_fd);
	struct conn_case not_tap = {.name = "svc", .expect = -EINVAL, .mention = {"svc"}};
	ck_assert_int_eq(mkt_run(conn_main, &not_tap, arg, NULL), 0);
	close(null_fd);

	int tun_fd = mkt_tun_attach("tfb0", IFF_TUN | IFF_NO_PI);
	ck_assert_msg(tun_fd >= 0, "cannot create TUN tfb0: %s", strerror(-tun_fd));
	ck_assert_int_eq(mkt_sh("ip link set dev tfb0 up"), 0);
	snprintf(arg, sizeof(arg), "--net:svc=@%d", tun_fd);
	ck_assert_int_eq(mkt_run(conn_main, &not_tap, arg, NULL), 0);
	close(tun_fd);

	/* A TAP whose frames would carry a header: without IFF_NO_PI, or with IFF_VNET_HDR. */
	static const struct {
		short flags;
		const char *mention;
	} headers[] = {{IFF_TAP, "IFF_NO_PI"},
	               {IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, "IFF_VNET_HDR"}};
	for (size_t i = 0; i < 2; i++) {
		int fd = mkt_tun_attach("tfb1", headers[i].flags);
		ck_assert_msg(fd >= 0, "cannot create TAP tfb1: %s", strerror(-fd));
		ck_assert_int_eq(mkt_sh("ip link set dev tfb1 up"), 0);
		snprintf(arg, sizeof(arg), "--net:svc=@%d", fd);
		struct conn_case header = {.name = "svc",
		                           .expect = -EINVAL,
		                           .mention = {"'svc'", headers[i].mention, "tfb1"}};
		ck_assert_int_eq(mkt_run(conn_main, &header, arg, NULL), 0);
		close(fd);
		mkt_tap_delete("tfb1");
	}
}
END_TEST

/* One descriptor for two devices, or a copy of one: the second is refused, naming the first, and
 * the descriptor is closed once, by the first. */
START_TEST(fd_shared)
{
	char a[32], b[32];
	for (int copy = 0; copy < 2; copy++) {
		int fd = mkt_tun_attach("tfs0", IFF_TAP | IFF_NO_PI);
		ck_assert_msg(fd >= 0, "cannot create TAP tfs0: %s", strerror(-fd));
		ck_assert_int_eq(mkt_sh("ip link set dev tfs0 up"), 0);
		int other = copy ? dup(fd) : fd;
		ck_assert_int_ge(other, 0);
		snprintf(a, sizeof(a), "--net:a=@%d", fd);
		snprintf(b, sizeof(b), "--net:b=@%d", other);
		struct conn_case cc = {.name = "b",
		                       .expect = -EBUSY,
		                       .mention = {"'b'", "'a'", "this program"},
		                       .first = "a"};
		ck_assert_int_eq(mkt_run(conn_main, &cc, a, b, NULL), 0);
		ck_assert_msg(fcntl(fd, F_GETFD) == -1 && errno == EBADF,
		              "device a's descriptor is still open after mk_run");
		if (copy) {
			ck_assert_msg(fcntl(other, F_GETFD) >= 0, "the copy was closed by mk_run");
			close(other);
		}
		mkt_tap_delete("tfs0");
	}
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Idle                                                                                     */
/* ---------------------------------------------------------------------------------------- */

struct blocked_read {
	mk_net *net;
	ssize_t ret;
	int done;
};

static intptr_t blocked_reader(void *arg)
{
	struct blocked_read *b = arg;
	uint8_t buf[1514];
	b->ret = mk_net_read_bigstring(b->net, buf, sizeof(buf), 0, sizeof(buf));
	b->done = 1;
	return 0;
}

/* Sleeps until cancelled, then reads. */
static intptr_t cancelled_reader(void *arg)
{
	struct blocked_read *b = arg;
	uint8_t buf[1514];
	mk_sleep(10000 * MS);
	b->ret = mk_net_read_bigstring(b->net, buf, sizeof(buf), 0, sizeof(buf));
	b->done = 1;
	return 0;
}

static intptr_t sleeper(void *arg)
{
	return mk_sleep(1000 * MS);
}

static int idle_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	struct blocked_read b = {.net = lib_connect("svc", c->ifname, &c->cfg)};
	mk_task *reader, *sleep_task;
	intptr_t slept;

	ck_assert_int_eq(mk_task_spawn(&reader, "reader", blocked_reader, &b), 0);
	ck_assert_int_eq(mk_sleep(50 * MS), 0);
	ck_assert_msg(!b.done, "a read on a quiet device returned %zd", b.ret);

	unsigned long long cpu0 = mkt_cpu_ns();
	uint64_t t0 = mk_clock_monotonic();
	ck_assert_int_eq(mk_task_spawn(&sleep_task, "sleeper", sleeper, NULL), 0);
	ck_assert_int_eq(mk_task_await(sleep_task, &slept), 0);
	uint64_t elapsed = mk_clock_monotonic() - t0;
	unsigned long long cpu = mkt_cpu_ns() - cpu0;
	ck_assert_int_eq(slept, 0);
	ck_assert_msg(elapsed >= 1000 * MS, "mk_sleep(1 s) returned after %llu ms",
	              (unsigned long long)(elapsed / MS));
	ck_assert_msg(cpu < 50 * MS, "%llu ms of CPU over 1 s of idling (%s)", cpu / MS,
	              mk_backend_name());
	ck_assert_msg(!b.done, "a read on a quiet device returned %zd", b.ret);

	ck_assert_int_eq(mk_task_cancel(reader), 0);
	ck_assert_int_eq(mk_task_await(reader, NULL), -ECANCELED);
	ck_assert_msg(b.done && b.ret == -ECANCELED,
	              "a cancelled read returned %zd, not -ECANCELED", b.ret);

	/* The cancelled read left nothing behind that would take the next frame. */
	uint8_t buf[1514];
	pk_send_frame(c->pfd, 64, 5);
	expect_lib_frame(b.net, READ_BIGSTRING, buf, sizeof(buf), 0, sizeof(buf), 64, 5);

	/* A task cancelled before it reads gets -ECANCELED at once, though a frame is waiting,
	 * and the frame stays for the next reader. */
	struct blocked_read late = {.net = b.net};
	mk_task *late_task;
	pk_send_frame(c->pfd, 64, 6);
	usleep(50000);
	ck_assert_int_eq(mk_task_spawn(&late_task, "late reader", cancelled_reader, &late), 0);
	ck_assert_int_eq(mk_sleep(10 * MS), 0);
	ck_assert_int_eq(mk_task_cancel(late_task), 0);
	ck_assert_int_eq(mk_task_await(late_task, NULL), -ECANCELED);
	ck_assert_msg(late.done && late.ret == -ECANCELED,
	              "a read by a cancelled task returned %zd, not -ECANCELED", late.ret);
	expect_lib_frame(b.net, READ_BIGSTRING, buf, sizeof(buf), 0, sizeof(buf), 64, 6);
	return 0;
}

START_TEST(idle_cpu)
{
	struct ctx c;
	ctx_open(&c, "tid0", 0);
	ck_assert_int_eq(mkt_run(idle_main, &c, "--net:svc=tid0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Refusals by the kernel                                                                   */
/* ---------------------------------------------------------------------------------------- */

static bool on_uring(void)
{
	return strcmp(mk_backend_name(), "io_uring") == 0;
}

/* While the interface is down the kernel refuses frames: each write says so (0) and counts a
 * drop, and none of them goes out later. With --tx-batch on io_uring (c->batched) a write is
 * queued and returned as sent; the kernel refuses it when the queue goes out, and the frame
 * moves from tx_frames to tx_drops, which mk_net_stats shows at once. */
static int refused_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	ssize_t refused = c->batched && on_uring() ? 60 : 0;
	struct mk_net_stats st;
	uint8_t f[60];

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	frame_fill(f, 60, 1);
	ck_assert_int_eq(mk_net_write_bigstring(net, f, 60, 0, 60), 60);
	if (c->batched)
		ck_assert_int_eq(mk_yield(), 0);
	expect_pk_frame(c->pfd, 60, 1);

	ck_assert_int_eq(mkt_sh("ip link set dev %s down", c->ifname), 0);
	frame_fill(f, 60, 2);
	ck_assert_int_eq(mk_net_write_bigstring(net, f, 60, 0, 60), refused);
	ck_assert_int_eq(mk_net_write_string(net, f, 60, 0, 60), refused);
	struct filler fl = {.fill = 60, .ret = 60, .seq = 2};
	ck_assert_int_eq(mk_net_write_into(net, 60, fill_frame, &fl), refused);
	ck_assert_int_eq(mk_net_stats(net, &st), 0);
	ck_assert_uint_eq(st.tx_frames, 1);
	ck_assert_uint_eq(st.tx_bytes, 60);
	ck_assert_uint_eq(st.tx_drops, 3);

	ck_assert_int_eq(mkt_sh("ip link set dev %s up", c->ifname), 0);
	ck_assert(mkt_link_ready(c->ifname, 3000));
	frame_fill(f, 60, 3);
	ck_assert_int_eq(mk_net_write_bigstring(net, f, 60, 0, 60), 60);
	if (c->batched)
		ck_assert_int_eq(mk_yield(), 0);
	expect_pk_frame(c->pfd, 60, 3);
	expect_pk_nothing(c->pfd, 100);
	return 0;
}

START_TEST(write_refused)
{
	struct ctx c;
	ctx_open(&c, "twr0", 0);
	ck_assert_int_eq(mkt_run(refused_main, &c, "--net:svc=twr0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* The interface is deleted under a waiting reader: the read fails (-ENODEV or -EIO) instead of
 * waiting forever, later reads fail at once, and writes are refused. */
static int removed_main(int argc, char **argv, void *arg)
{
	struct blocked_read b = {0};
	mk_task *reader;
	uint8_t buf[1514];

	b.net = lib_connect("svc", "tir0", NULL);
	ck_assert_int_eq(mk_task_spawn(&reader, "reader", blocked_reader, &b), 0);
	ck_assert_int_eq(mk_sleep(50 * MS), 0);
	ck_assert(!b.done);
	ck_assert_int_eq(mkt_sh("ip link del dev tir0"), 0);
	for (int waited = 0; waited < 3000 && !b.done; waited += 10)
		mk_sleep(10 * MS);
	mk_task_cancel(reader);
	mk_task_await(reader, NULL);
	ck_assert_msg(b.done && b.ret != -ECANCELED,
	              "a read went on waiting after its interface was deleted");
	ck_assert_msg(b.ret == -ENODEV || b.ret == -EIO,
	              "a read on a deleted interface returned %zd, expected -ENODEV or -EIO",
	              b.ret);
	ssize_t n = lib_read(b.net, READ_BYTES, buf, sizeof(buf), 0, sizeof(buf), 1000);
	ck_assert_msg(n == -ENODEV || n == -EIO,
	              "a second read on a deleted interface returned %zd, expected -ENODEV or -EIO",
	              n);
	frame_fill(buf, 60, 1);
	ck_assert_int_eq(mk_net_write_bigstring(b.net, buf, 60, 0, 60), 0);
	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(b.net, &st), 0);
	ck_assert_uint_eq(st.tx_drops, 1);
	ck_assert_uint_eq(st.rx_frames, 0);
	return 0;
}

START_TEST(interface_removed)
{
	tap_new("tir0", 0, 1);
	ck_assert_int_eq(mkt_run(removed_main, NULL, "--net:svc=tir0", NULL), 0);
	mkt_tap_delete("tir0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Several readers                                                                          */
/* ---------------------------------------------------------------------------------------- */

#define MR_READERS 4
#define MR_FRAMES  2000
#define MR_WINDOW  256 /* frames in flight: well below the TAP queue (1000), so none is dropped */

struct multi {
	struct ctx c;
	mk_net *net;
	atomic_int go, received;
	int sent, send_err;
	uint8_t seen[MR_FRAMES];
	int dups, bad, foreign, per_reader[MR_READERS];
	uint64_t frames_all, bytes_all;
	ssize_t last_ret[MR_READERS];
	struct mk_net_stats st;
};

struct multi_reader {
	struct multi *m;
	int idx;
};

static intptr_t multi_read_loop(void *arg)
{
	struct multi_reader *mr = arg;
	struct multi *m = mr->m;
	uint8_t buf[2048];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(m->net, buf, sizeof(buf), 0, sizeof(buf));
		if (n < 0) {
			m->last_ret[mr->idx] = n;
			return 0;
		}
		m->frames_all++;
		m->bytes_all += (uint64_t)n;
		if (frame_type(buf, n) != TEST_ETHERTYPE || n < 18) {
			m->foreign++;
			continue;
		}
		uint32_t seq = frame_seq(buf);
		if (seq >= MR_FRAMES || !frame_ok(buf, n, 60, seq)) {
			m->bad++;
			continue;
		}
		if (m->seen[seq]++) {
			m->dups++;
			continue;
		}
		m->per_reader[mr->idx]++;
		atomic_fetch_add(&m->received, 1);
	}
}

static void *multi_sender(void *arg)
{
	struct multi *m = arg;
	uint64_t deadline = now_ns() + 20000 * MS;
	uint8_t f[60];

	while (!atomic_load(&m->go) && now_ns() < deadline)
		usleep(1000);
	for (uint32_t seq = 0; seq < MR_FRAMES && now_ns() < deadline; seq++) {
		while ((int)seq - atomic_load(&m->received) > MR_WINDOW && now_ns() < deadline)
			usleep(50);
		frame_fill(f, sizeof(f), seq);
		if (pk_send(m->c.pfd, f, sizeof(f)) == 0)
			m->sent++;
		else
			m->send_err++;
	}
	return NULL;
}

static int multi_main(int argc, char **argv, void *arg)
{
	struct multi *m = arg;
	struct multi_reader mr[MR_READERS];
	mk_task *t[MR_READERS];

	m->net = lib_connect("svc", m->c.ifname, &m->c.cfg);
	for (int i = 0; i < MR_READERS; i++) {
		mr[i] = (struct multi_reader){m, i};
		ck_assert_int_eq(mk_task_spawn(&t[i], "reader", multi_read_loop, &mr[i]), 0);
	}
	ck_assert_int_eq(mk_sleep(10 * MS), 0); /* all four are waiting for frames */
	atomic_store(&m->go, 1);
	uint64_t deadline = mk_clock_monotonic() + 20000 * MS;
	while (atomic_load(&m->received) < MR_FRAMES && mk_clock_monotonic() < deadline)
		mk_sleep(5 * MS);
	mk_sleep(100 * MS); /* late duplicates would show up now */
	for (int i = 0; i < MR_READERS; i++)
		mk_task_cancel(t[i]);
	for (int i = 0; i < MR_READERS; i++)
		ck_assert_int_eq(mk_task_await(t[i], NULL), -ECANCELED);
	ck_assert_int_eq(mk_net_stats(m->net, &m->st), 0);
	return 0;
}

START_TEST(several_readers)
{
	struct multi *m = shared_alloc(sizeof(*m));
	ctx_open(&m->c, "tmr0", 0);
	uint64_t dropped = link_tx_dropped("tmr0");
	pid_t side = side_start(multi_sender, m);
	ck_assert_int_eq(mkt_run(multi_main, m, "--net:svc=tmr0", NULL), 0);
	side_wait(side);
	dropped = link_tx_dropped("tmr0") - dropped;

	ck_assert_msg(m->send_err == 0 && m->sent == MR_FRAMES, "sent %d frames, %d failed",
	              m->sent, m->send_err);
	ck_assert_msg(dropped == 0, "the kernel dropped %llu frames: the flow control is broken",
	              (unsigned long long)dropped);
	ck_assert_msg(m->dups == 0, "%d frames were delivered twice", m->dups);
	ck_assert_msg(m->bad == 0, "%d frames were corrupt", m->bad);
	int lost = 0;
	for (int i = 0; i < MR_FRAMES; i++)
		lost += !m->seen[i];
	ck_assert_msg(lost == 0, "%d of %d frames were lost (readers got %d %d %d %d)", lost,
	              MR_FRAMES, m->per_reader[0], m->per_reader[1], m->per_reader[2],
	              m->per_reader[3]);
	for (int i = 0; i < MR_READERS; i++)
		ck_assert_msg(m->last_ret[i] == -ECANCELED, "reader %d ended with %zd", i,
		              m->last_ret[i]);
	ck_assert_uint_eq(m->st.rx_frames, m->frames_all);
	ck_assert_uint_eq(m->st.rx_bytes, m->bytes_all);
	ck_assert_uint_eq(m->st.rx_drops, 0);
	ctx_close(&m->c);
	munmap(m, sizeof(*m));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Floods                                                                                   */
/* ---------------------------------------------------------------------------------------- */

#define FLOOD 100000

struct flood {
	struct ctx c;
	mk_net *net;
	atomic_int go, got_end;
	/* socket side */
	long sent, send_err, received, order_err;
	uint64_t dropped_before, dropped_after;
	/* library side */
	long written, refused, write_err, data, foreign;
	ssize_t first_err, read_err;
	uint64_t frames_all, bytes_all;
	int read_done;
	struct mk_net_stats st;
};

static void *flood_rx_sender(void *arg)
{
	struct flood *fl = arg;
	uint64_t deadline = now_ns() + 30000 * MS;
	uint8_t f[60];

	while (!atomic_load(&fl->go) && now_ns() < deadline)
		usleep(1000);
	fl->dropped_before = link_tx_dropped(fl->c.ifname);
	for (uint32_t seq = 0; seq < FLOOD && now_ns() < deadline; seq++) {
		frame_fill(f, sizeof(f), seq);
		if (pk_send(fl->c.pfd, f, sizeof(f)) == 0)
			fl->sent++;
		else
			fl->send_err++;
	}
	usleep(300000); /* whatever the kernel queue dropped, it has dropped by now */
	fl->dropped_after = link_tx_dropped(fl->c.ifname);
	frame_fill(f, sizeof(f), SEQ_END);
	for (int i = 0; i < 500 && !atomic_load(&fl->got_end); i++) {
		pk_send(fl->c.pfd, f, sizeof(f));
		usleep(20000);
	}
	return NULL;
}

static intptr_t flood_reader(void *arg)
{
	struct flood *fl = arg;
	uint8_t buf[1514];
	uint32_t last = 0;

	for (;;) {
		ssize_t n = mk_net_read_bigstring(fl->net, buf, sizeof(buf), 0, sizeof(buf));
		if (n < 0) {
			fl->read_err = n;
			break;
		}
		fl->frames_all++;
		fl->bytes_all += (uint64_t)n;
		if (frame_type(buf, n) != TEST_ETHERTYPE || n < 18) {
			fl->foreign++;
			continue;
		}
		uint32_t seq = frame_seq(buf);
		if (seq == SEQ_END) {
			atomic_store(&fl->got_end, 1);
			break;
		}
		if (fl->data > 0 && seq <= last)
			fl->order_err++;
		last = seq;
		fl->data++;
	}
	fl->read_done = 1;
	return 0;
}

static int flood_rx_main(int argc, char **argv, void *arg)
{
	struct flood *fl = arg;
	mk_task *reader;

	fl->net = lib_connect("svc", fl->c.ifname, &fl->c.cfg);
	ck_assert_int_eq(mk_task_spawn(&reader, "reader", flood_reader, fl), 0);
	atomic_store(&fl->go, 1);
	uint64_t deadline = mk_clock_monotonic() + 60000 * MS;
	while (!fl->read_done && mk_clock_monotonic() < deadline)
		mk_sleep(10 * MS);
	mk_task_cancel(reader);
	mk_task_await(reader, NULL);
	ck_assert_msg(atomic_load(&fl->got_end),
	              "the flood never ended: %ld frames read, error %zd", fl->data, fl->read_err);
	ck_assert_int_eq(mk_net_stats(fl->net, &fl->st), 0);
	return 0;
}

START_TEST(flood_receive)
{
	struct flood *fl = shared_alloc(sizeof(*fl));
	ctx_open(&fl->c, "tfr0", 0);
	pid_t side = side_start(flood_rx_sender, fl);
	ck_assert_int_eq(mkt_run(flood_rx_main, fl, "--net:svc=tfr0", NULL), 0);
	side_wait(side);

	uint64_t dropped = fl->dropped_after - fl->dropped_before;
	ck_assert_msg(fl->send_err == 0, "%ld sends failed", fl->send_err);
	ck_assert_msg(fl->data > 0 && fl->data <= fl->sent, "received %ld of %ld frames", fl->data,
	              fl->sent);
	ck_assert_msg(fl->order_err == 0, "%ld frames came out of order or twice", fl->order_err);
	ck_assert_msg((uint64_t)fl->data == (uint64_t)fl->sent - dropped,
	              "sent %ld, the kernel dropped %llu, but the library received %ld", fl->sent,
	              (unsigned long long)dropped, fl->data);
	ck_assert_uint_eq(fl->st.rx_frames, fl->frames_all);
	ck_assert_uint_eq(fl->st.rx_bytes, fl->bytes_all);
	ck_assert_uint_eq(fl->st.rx_drops, 0);
	ctx_close(&fl->c);
	munmap(fl, sizeof(*fl));
}
END_TEST

static void *flood_tx_receiver(void *arg)
{
	struct flood *fl = arg;
	uint8_t *buf = malloc(BIG_BUF);
	uint32_t last = 0;
	uint64_t deadline = now_ns() + 60000 * MS;

	while (buf && now_ns() < deadline) {
		ssize_t n = pk_recv(fl->c.pfd, buf, BIG_BUF, fl->received ? 3000 : 10000);
		if (n < 0)
			break;
		if (n < 18)
			continue;
		uint32_t seq = frame_seq(buf);
		if (seq == SEQ_END) {
			atomic_store(&fl->got_end, 1);
			break;
		}
		if (fl->received > 0 && seq <= last)
			fl->order_err++;
		last = seq;
		fl->received++;
	}
	free(buf);
	return NULL;
}

static int flood_tx_main(int argc, char **argv, void *arg)
{
	struct flood *fl = arg;
	uint8_t f[60];

	fl->net = lib_connect("svc", fl->c.ifname, &fl->c.cfg);
	for (uint32_t seq = 0; seq < FLOOD; seq++) {
		frame_fill(f, sizeof(f), seq);
		ssize_t r = mk_net_write_bigstring(fl->net, f, sizeof(f), 0, sizeof(f));
		if (r == (ssize_t)sizeof(f)) {
			fl->written++;
		} else if (r == 0) {
			fl->refused++;
		} else if (fl->write_err++ == 0) {
			fl->first_err = r;
		}
	}
	ck_assert_int_eq(mk_net_stats(fl->net, &fl->st), 0);
	frame_fill(f, sizeof(f), SEQ_END);
	for (int i = 0; i < 20 && !atomic_load(&fl->got_end); i++) {
		mk_net_write_bigstring(fl->net, f, sizeof(f), 0, sizeof(f));
		mk_sleep(50 * MS);
	}
	return 0;
}

START_TEST(flood_write)
{
	struct flood *fl = shared_alloc(sizeof(*fl));
	ctx_open(&fl->c, "tft0", 0);
	pid_t side = side_start(flood_tx_receiver, fl);
	ck_assert_int_eq(mkt_run(flood_tx_main, fl, "--net:svc=tft0", NULL), 0);
	side_wait(side);

	ck_assert_msg(fl->write_err == 0, "%ld writes failed, the first with %zd (%s)",
	              fl->write_err, fl->first_err, mk_strerror((int)fl->first_err));
	ck_assert_msg(fl->st.tx_frames + fl->st.tx_drops == FLOOD,
	              "tx_frames %llu + tx_drops %llu != %d", (unsigned long long)fl->st.tx_frames,
	              (unsigned long long)fl->st.tx_drops, FLOOD);
	ck_assert_uint_eq(fl->st.tx_frames, fl->written);
	ck_assert_uint_eq(fl->st.tx_drops, fl->refused);
	ck_assert_uint_eq(fl->st.tx_bytes, 60 * fl->written);
	ck_assert_msg(fl->received > 0 && fl->received <= fl->written,
	              "the TAP got %ld of %ld frames written", fl->received, fl->written);
	ck_assert_msg(fl->order_err == 0, "%ld frames came out of order or twice", fl->order_err);
	ctx_close(&fl->c);
	munmap(fl, sizeof(*fl));
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Counters                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void expect_stats(mk_net *net, const struct mk_net_stats *want)
{
	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(net, &st), 0);
	ck_assert_msg(memcmp(&st, want, sizeof(st)) == 0,
	              "stats rx %llu frames %llu bytes %llu drops, tx %llu frames %llu bytes %llu "
	              "drops; expected rx %llu %llu %llu, tx %llu %llu %llu",
	              (unsigned long long)st.rx_frames, (unsigned long long)st.rx_bytes,
	              (unsigned long long)st.rx_drops, (unsigned long long)st.tx_frames,
	              (unsigned long long)st.tx_bytes, (unsigned long long)st.tx_drops,
	              (unsigned long long)want->rx_frames, (unsigned long long)want->rx_bytes,
	              (unsigned long long)want->rx_drops, (unsigned long long)want->tx_frames,
	              (unsigned long long)want->tx_bytes, (unsigned long long)want->tx_drops);
}

static int stats_main(int argc, char **argv, void *arg)
{
	static const size_t tx[] = {60, 100, 1514}, rx[] = {14, 60, 200, 1514};
	struct ctx *c = arg;
	struct mk_net_stats want = {0};
	uint8_t buf[2048];

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	expect_stats(net, &want);

	frame_fill(buf, tx[0], 1);
	ck_assert_int_eq(mk_net_write_bigstring(net, buf, sizeof(buf), 0, tx[0]), tx[0]);
	frame_fill(buf, tx[1], 2);
	ck_assert_int_eq(mk_net_write_string(net, buf, sizeof(buf), 0, tx[1]), tx[1]);
	struct filler fl = {.fill = tx[2], .ret = tx[2], .seq = 3};
	ck_assert_int_eq(mk_net_write_into(net, tx[2], fill_frame, &fl), tx[2]);
	for (uint32_t k = 0; k < 3; k++)
		expect_pk_frame(c->pfd, tx[k], k + 1);
	want.tx_frames = 3;
	want.tx_bytes = 60 + 100 + 1514;
	expect_stats(net, &want);

	for (uint32_t k = 0; k < 4; k++) {
		pk_send_frame(c->pfd, rx[k], 10 + k);
		expect_lib_frame(net, k % 2 ? READ_BYTES : READ_BIGSTRING, buf, sizeof(buf), 0,
		                 1514, rx[k], 10 + k);
	}
	want.rx_frames = 4;
	want.rx_bytes = 14 + 60 + 200 + 1514;
	expect_stats(net, &want);

	/* Refused calls count nothing. */
	ck_assert_int_eq(mk_net_write_bigstring(net, buf, sizeof(buf), 0, 1515), -EINVAL);
	ck_assert_int_eq(lib_read(net, READ_BIGSTRING, buf, sizeof(buf), 0, 1513, 500), -EINVAL);
	expect_stats(net, &want);
	return 0;
}

START_TEST(stats_counters)
{
	struct ctx c;
	ctx_open(&c, "tst0", 0);
	ck_assert_int_eq(mkt_run(stats_main, &c, "--net:svc=tst0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  --tx-batch                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* With --tx-batch=16, writes wait until the task suspends (io_uring: nothing on the wire before
 * the yield), or go out together when the 16 slots are full; every frame arrives, in order, and
 * the counters are exact. On epoll the option changes nothing: each write is done at once. */
static int batch_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	struct mk_net_stats st;
	uint8_t f[1514];
	uint32_t seq = 0;

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	for (int k = 0; k < 10; k++, seq++) {
		frame_fill(f, 60 + (size_t)k, seq);
		ck_assert_int_eq(mk_net_write_bigstring(net, f, sizeof(f), 0, 60 + (size_t)k),
		                 60 + k);
	}
	if (on_uring())
		expect_pk_nothing(c->pfd, 100); /* queued, not yet sent */
	ck_assert_int_eq(mk_yield(), 0);
	for (uint32_t k = 0; k < 10; k++)
		expect_pk_frame(c->pfd, 60 + k, k);

	/* 100 frames without a pause: the slots fill and are sent six times over. */
	for (int k = 0; k < 100; k++, seq++) {
		frame_fill(f, 100, seq);
		ck_assert_int_eq(mk_net_write_string(net, f, sizeof(f), 0, 100), 100);
	}
	for (uint32_t k = 0; k < (on_uring() ? 96u : 100u); k++)
		expect_pk_frame(c->pfd, 100, 10 + k);
	if (on_uring())
		expect_pk_nothing(c->pfd, 100); /* the last 4 wait for the task to suspend */
	ck_assert_int_eq(mk_sleep(1 * MS), 0);
	for (uint32_t k = on_uring() ? 96 : 100; k < 100; k++)
		expect_pk_frame(c->pfd, 100, 10 + k);
	ck_assert_int_eq(mk_net_stats(net, &st), 0);
	ck_assert_uint_eq(st.tx_frames, 110);
	ck_assert_uint_eq(st.tx_bytes, 10 * 60 + 45 + 100 * 100);
	ck_assert_uint_eq(st.tx_drops, 0);

	/* The last frames are queued when main returns: mk_run sends them before it ends. */
	struct filler fl = {.fill = 200, .ret = 200, .seq = 500};
	ck_assert_int_eq(mk_net_write_into(net, 200, fill_frame, &fl), 200);
	frame_fill(f, 300, 501);
	ck_assert_int_eq(mk_net_write_bigstring(net, f, sizeof(f), 0, 300), 300);
	return 0;
}

START_TEST(tx_batch)
{
	struct ctx c;
	ctx_open(&c, "ttb0", 0);
	ck_assert_int_eq(mkt_run(batch_main, &c, "--net:svc=ttb0", "--tx-batch=16", NULL), 0);
	expect_pk_frame(c.pfd, 200, 500);
	expect_pk_frame(c.pfd, 300, 501);
	expect_pk_nothing(c.pfd, 100);
	ctx_close(&c);
}
END_TEST

START_TEST(tx_batch_refused)
{
	struct ctx c;
	ctx_open(&c, "ttr0", 0);
	c.batched = true;
	ck_assert_int_eq(mkt_run(refused_main, &c, "--net:svc=ttr0", "--tx-batch=8", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* On io_uring with MKHOST_URING_RX=ring, where the kernel has a multishot read (6.7+), frames
 * come through the receive ring; otherwise through read(2). Either way all of them, in order. */
static int ring_main(int argc, char **argv, void *arg)
{
	struct ctx *c = arg;
	uint8_t buf[1514];

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	for (uint32_t k = 0; k < 200; k++)
		pk_send_frame(c->pfd, 60 + k, k);
	usleep(50000);
	for (uint32_t k = 0; k < 200; k++)
		expect_lib_frame(net, k % 2 ? READ_BYTES : READ_BIGSTRING, buf, sizeof(buf), 0,
		                 sizeof(buf), 60 + k, k);
	const char *rx = getenv("MKHOST_URING_RX");
	bool want = on_uring() && mkt_kernel_at_least(6, 7) && rx != NULL && strcmp(rx, "ring") == 0;
	ck_assert_msg(mk__tap_rx_ring(net) == want, "the receive ring is %s, expected %s",
	              mk__tap_rx_ring(net) ? "on" : "off", want ? "on" : "off");
	return 0;
}

START_TEST(rx_ring_used)
{
	struct ctx c;
	ctx_open(&c, "trr0", 0);
	ck_assert_int_eq(mkt_run(ring_main, &c, "--net:svc=trr0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* A frame larger than mtu + 14 reaches the TAP queue when it is VLAN-tagged (the kernel allows 4
 * bytes more for the tag): the library must drop it, count it, and deliver the next frame, both
 * when (len) leaves room for it and when it is exactly mtu + 14 (the kernel then truncates the
 * frame to the buffer and says nothing). */
static int oversize_main(int argc, char **argv, void *arg)
{
	static const size_t lens[] = {1514, 4096};
	struct ctx *c = arg;
	uint8_t buf[4096];
	uint32_t seq = 51;

	mk_net *net = lib_connect("svc", c->ifname, &c->cfg);
	for (int mode = READ_BIGSTRING; mode <= READ_BYTES; mode++)
		for (size_t l = 0; l < 2; l++, seq++) {
			frame_fill(buf, 1518, 50);
			buf[12] = 0x81; /* 802.1Q, VLAN 5, then the test ethertype */
			buf[13] = 0x00;
			buf[14] = 0x00;
			buf[15] = 0x05;
			buf[16] = TEST_ETHERTYPE >> 8;
			buf[17] = TEST_ETHERTYPE & 0xff;
			int r = pk_send(c->pfd, buf, 1518);
			ck_assert_msg(r == 0, "sending a 1518-byte tagged frame: %s", strerror(-r));
			pk_send_frame(c->pfd, 100, seq);
			usleep(50000);
			memset(buf, 0, sizeof(buf));
			expect_lib_frame(net, mode, buf, sizeof(buf), 0, lens[l], 100, seq);
		}
	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(net, &st), 0);
	ck_assert_uint_eq(st.rx_drops, 4);
	ck_assert_uint_eq(st.rx_frames, 4);
	ck_assert_uint_eq(st.rx_bytes, 400);
	return 0;
}

START_TEST(oversize_received)
{
	struct ctx c;
	ctx_open(&c, "tso0", 0);
	ck_assert_int_eq(mkt_run(oversize_main, &c, "--net:svc=tso0", NULL), 0);
	ctx_close(&c);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

int main(void)
{
	mkt_enter_netns();
	/* Keep the kernel quiet on the test interfaces: no router solicitations, no MLD reports. */
	mkt_sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1");
	mkt_sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1");

	Suite *s = suite_create("net");
	TCase *frames = tcase_create("frames");
	tcase_set_timeout(frames, 30);
	tcase_add_test(frames, frames_both_ways);
	tcase_add_loop_test(frames, one_frame_per_read, READ_BIGSTRING, READ_BYTES + 1);
	tcase_add_loop_test(frames, read_einval, READ_BIGSTRING, READ_BYTES + 1);
	tcase_add_test(frames, write_einval);
	tcase_add_loop_test(frames, write_inside_filler, NESTED_STRING, NESTED_BIGSTRING + 1);
	tcase_add_test(frames, stale_handles);
	tcase_add_test(frames, mtu_9000);
	tcase_add_test(frames, stats_counters);
	tcase_add_test(frames, oversize_received);
	tcase_add_test(frames, write_refused);
	tcase_add_test(frames, interface_removed);
	tcase_add_test(frames, tx_batch);
	tcase_add_test(frames, tx_batch_refused);
	tcase_add_test(frames, rx_ring_used);
	suite_add_tcase(s, frames);

	TCase *config = tcase_create("config");
	tcase_set_timeout(config, 30);
	tcase_add_test(config, mac_option);
	tcase_add_test(config, mac_default);
	tcase_add_test(config, mac_malformed);
	tcase_add_test(config, connect_not_on_command_line);
	tcase_add_test(config, connect_missing_interface);
	tcase_add_test(config, connect_interface_down);
	tcase_add_test(config, connect_name_twice);
	tcase_add_test(config, connect_not_a_tap);
	tcase_add_test(config, connect_bad_names);
	tcase_add_test(config, connect_same_tap_twice);
	tcase_add_test(config, connect_busy);
	tcase_add_test(config, released_at_exit);
	tcase_add_test(config, connect_twice);
	tcase_add_test(config, connect_arguments);
	mkt_add_test_as_nobody(config, fd_unprivileged);
	tcase_add_test(config, fd_bad);
	tcase_add_test(config, fd_shared);
	suite_add_tcase(s, config);

	TCase *load = tcase_create("load");
	tcase_set_timeout(load, 90);
	tcase_add_test(load, idle_cpu);
	tcase_add_test(load, several_readers);
	tcase_add_test(load, flood_write);
	tcase_add_test(load, flood_receive);
	suite_add_tcase(s, load);

	return mkt_run_suite(s, true);
}
