/* Faults, least privilege and misuse: what happens when the world goes wrong under a running
 * program.
 *
 * - faults: a TAP deleted while tasks read from it and write to it; the link set down, then up;
 *   the descriptor limit reached at connect; memory for task stacks exhausted; SIGTERM in the
 *   middle of traffic;
 * - least privilege: a TAP created for user nobody and attached by name by a process running as
 *   nobody; a TAP descriptor handed by a privileged parent to an unprivileged child that execs
 *   examples/ping-serve with --net:service=@FD, which answers ping;
 * - misuse: device calls from another thread and from a hook (the README's "Bad input" table
 *   lists the rest, and where each row is tested).
 *
 * main() enters a private network namespace (root only: the suite skips with 77 otherwise); each
 * test makes its own TAP interfaces there and talks to them through AF_PACKET sockets. Frames of
 * the tests carry the local experimental ethertype 0x88b5 and a sequence number. Every wait has a
 * bound, so a broken library fails a test instead of hanging it. Check's fork mode: each test runs
 * in a process of its own, so resource limits set by a test end with it. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

#include "mkhost.h"
#include "testlib.h"

#define TEST_ETHERTYPE 0x88b5
#define MS             1000000ULL
#define NOBODY         65534

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* ---------------------------------------------------------------------------------------- */
/*  Frames, interfaces and the packet socket side                                           */
/* ---------------------------------------------------------------------------------------- */

static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

/* Test frame (seq) of (len >= 18) bytes: broadcast, from peer_mac, the test ethertype, seq. */
static void frame_fill(uint8_t *f, size_t len, uint32_t seq)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = TEST_ETHERTYPE >> 8;
	f[13] = TEST_ETHERTYPE & 0xff;
	f[14] = (uint8_t)(seq >> 24);
	f[15] = (uint8_t)(seq >> 16);
	f[16] = (uint8_t)(seq >> 8);
	f[17] = (uint8_t)seq;
	for (size_t i = 18; i < len; i++)
		f[i] = (uint8_t)(seq * 13 + i * 7 + 3);
}

static int is_test_frame(const uint8_t *f, ssize_t n)
{
	return n >= 18 && f[12] == (TEST_ETHERTYPE >> 8) && f[13] == (TEST_ETHERTYPE & 0xff);
}

static uint32_t frame_seq(const uint8_t *f)
{
	return (uint32_t)f[14] << 24 | (uint32_t)f[15] << 16 | (uint32_t)f[16] << 8 | f[17];
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void tap_new(const char *name)
{
	mkt_tap_delete(name);
	ck_assert_msg(mkt_tap_create(name, 0, 1) == 0, "cannot create TAP %s", name);
}

static int pk_open(const char *ifname)
{
	int fd = mkt_packet_socket(ifname, 2000);
	ck_assert_msg(fd >= 0, "no AF_PACKET socket on %s", ifname);
	int big = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	return fd;
}

/* Send test frame (seq) of (len) bytes; 0 or -errno (ENOBUFS waited out for ~1 s). */
static int pk_send(int fd, size_t len, uint32_t seq)
{
	uint8_t f[2048];
	frame_fill(f, len, seq);
	for (int tries = 0; tries < 10000; tries++) {
		ssize_t r = send(fd, f, len, 0);
		if (r == (ssize_t)len)
			return 0;
		if (r >= 0)
			return -EIO;
		/* ENETDOWN: reported once after the interface went down and up again. */
		if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR && errno != ENETDOWN)
			return -errno;
		usleep(100);
	}
	return -ENOBUFS;
}

/* The next test frame written to the interface (by the library) within (timeout_ms); its
 * sequence number, or -1. Blocks the thread: from a task, only for short waits. */
static int64_t pk_recv_seq(int fd, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * MS;
	uint8_t buf[2048];

	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return -1;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)((deadline - now + MS - 1) / MS)) <= 0)
			continue;
		struct sockaddr_ll sll;
		socklen_t sl = sizeof(sll);
		ssize_t n =
		    recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&sll, &sl);
		if (n < 0)
			continue;
		if (sll.sll_pkttype == PACKET_OUTGOING || !is_test_frame(buf, n))
			continue;
		return frame_seq(buf);
	}
}

/* Every test frame the library wrote that is waiting on the socket: how many, and the largest
 * sequence number (or -1). Does not wait. */
static int pk_drain(int fd, int64_t *max_seq)
{
	uint8_t buf[2048];
	int count = 0;

	*max_seq = -1;
	for (;;) {
		struct sockaddr_ll sll;
		socklen_t sl = sizeof(sll);
		ssize_t n =
		    recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&sll, &sl);
		if (n < 0) {
			if (errno == EINTR || errno == ENETDOWN)
				continue;
			return count;
		}
		if (sll.sll_pkttype == PACKET_OUTGOING || !is_test_frame(buf, n))
			continue;
		count++;
		if ((int64_t)frame_seq(buf) > *max_seq)
			*max_seq = frame_seq(buf);
	}
}

/* ---------------------------------------------------------------------------------------- */
/*  The library side: reads with a bound, connect that waits for the link                   */
/* ---------------------------------------------------------------------------------------- */

struct bread {
	mk_net *net;
	void *buf;
	size_t size;
	uint64_t timeout_ns;
	mk_task *reader;
	ssize_t ret;
	int done, timed_out;
};

static intptr_t bread_task(void *arg)
{
	struct bread *b = arg;
	b->ret = mk_net_read_bigstring(b->net, b->buf, b->size, 0, b->size);
	b->done = 1;
	return 0;
}

static intptr_t bread_watchdog(void *arg)
{
	struct bread *b = arg;
	if (mk_sleep(b->timeout_ns) == 0 && !b->done) {
		b->timed_out = 1;
		mk_task_cancel(b->reader);
	}
	return 0;
}

/* One read of a whole frame into buf[0, size), given up after (timeout_ms): the read's result,
 * or -ETIMEDOUT. No assertion, so a forked child may use it. */
static ssize_t bounded_read(mk_net *net, void *buf, size_t size, int timeout_ms)
{
	struct bread b = {
	    .net = net, .buf = buf, .size = size, .timeout_ns = (uint64_t)timeout_ms * MS};
	mk_task *wd;

	if (mk_task_spawn(&b.reader, "reader", bread_task, &b) != 0)
		return -ENOMEM;
	if (mk_task_spawn(&wd, "watchdog", bread_watchdog, &b) != 0) {
		mk_task_cancel(b.reader);
		mk_task_await(b.reader, NULL);
		return -ENOMEM;
	}
	mk_task_await(b.reader, NULL);
	mk_task_cancel(wd);
	mk_task_await(wd, NULL);
	return b.timed_out ? -ETIMEDOUT : b.ret;
}

static mk_net *lib_connect(const char *name, const char *ifname)
{
	mk_net *net = NULL;
	int r = mk_net_connect(name, &net, NULL);
	ck_assert_msg(r == 0, "mk_net_connect(%s) = %s: %s", name, mk_strerror(r), mk_last_error());
	ck_assert_msg(mkt_link_ready(ifname, 3000), "%s is not running after mk_net_connect",
	              ifname);
	return net;
}

static ssize_t lib_write(mk_net *net, size_t len, uint32_t seq)
{
	uint8_t f[2048];
	frame_fill(f, len, seq);
	return mk_net_write_bigstring(net, f, sizeof(f), 0, len);
}

static int drop_privileges(void)
{
	return setgroups(0, NULL) == 0 && setresgid(NOBODY, NOBODY, NOBODY) == 0 &&
	               setresuid(NOBODY, NOBODY, NOBODY) == 0
	           ? 0
	           : -1;
}

/* Whether the process has no effective capability left. */
static int no_capabilities(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int none = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "CapEff:", 7) == 0)
			none = strspn(line + 7, "\t 0") == strlen(line + 7) - 1;
	fclose(f);
	return none;
}

/* ---------------------------------------------------------------------------------------- */
/*  A TAP deleted while tasks read from it and write to it                                  */
/* ---------------------------------------------------------------------------------------- */

/* One device's traffic: a reader that reads until an error, a writer that writes a frame every
 * 2 ms until told to stop. */
struct traffic {
	mk_net *net;
	mk_task *reader, *writer;
	int reads_ok;
	ssize_t read_err;
	uint64_t read_err_at;
	uint32_t writes, writes_ok, writes_dropped;
	ssize_t write_err;
	int stop;
};

static intptr_t traffic_reader(void *arg)
{
	struct traffic *t = arg;
	uint8_t buf[1514];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(t->net, buf, sizeof(buf), 0, sizeof(buf));
		if (n < 0) {
			t->read_err = n;
			t->read_err_at = now_ns();
			return 0;
		}
		if (is_test_frame(buf, n))
			t->reads_ok++;
	}
}

static intptr_t traffic_writer(void *arg)
{
	struct traffic *t = arg;

	while (!t->stop) {
		ssize_t w = lib_write(t->net, 60, t->writes);
		t->writes++;
		if (w == 60)
			t->writes_ok++;
		else if (w == 0)
			t->writes_dropped++;
		else
			t->write_err = w;
		if (mk_sleep(2 * MS) != 0)
			break;
	}
	return 0;
}

static intptr_t ticker(void *arg)
{
	int *ticks = arg;
	while (mk_sleep(5 * MS) == 0)
		(*ticks)++;
	return 0;
}

struct removed_ctx {
	int pa, pb; /* packet sockets on tfr0 (deleted) and tfr1 (stays) */
};

static void traffic_start(struct traffic *t)
{
	ck_assert_int_eq(mk_task_spawn(&t->reader, "reader", traffic_reader, t), 0);
	ck_assert_int_eq(mk_task_spawn(&t->writer, "writer", traffic_writer, t), 0);
}

static void traffic_stop(struct traffic *t)
{
	t->stop = 1;
	mk_task_cancel(t->reader);
	mk_task_await(t->reader, NULL);
	mk_task_await(t->writer, NULL);
}

static int removed_main(int argc, char **argv, void *arg)
{
	struct removed_ctx *c = arg;
	struct traffic a = {.net = lib_connect("a", "tfr0")};
	struct traffic b = {.net = lib_connect("b", "tfr1")};
	mk_task *tick;
	int ticks = 0;
	uint8_t buf[1514];

	traffic_start(&a);
	traffic_start(&b);
	ck_assert_int_eq(mk_task_spawn(&tick, "ticker", ticker, &ticks), 0);
	ck_assert_int_eq(mk_sleep(50 * MS), 0);
	for (uint32_t k = 0; k < 5; k++) {
		ck_assert_int_eq(pk_send(c->pa, 60, k), 0);
		ck_assert_int_eq(pk_send(c->pb, 60, k), 0);
	}
	ck_assert_int_eq(mk_sleep(100 * MS), 0);
	ck_assert_int_eq(a.reads_ok, 5);
	ck_assert_int_eq(b.reads_ok, 5);
	ck_assert_msg(a.writes_ok > 0 && a.writes_dropped == 0,
	              "writes before the deletion: %u ok, "
	              "%u dropped",
	              a.writes_ok, a.writes_dropped);

	/* Delete tfr0 under its reader and writer. */
	ck_assert_int_eq(mkt_sh("ip link del dev tfr0"), 0);
	uint64_t deleted_at = now_ns();
	uint32_t b_writes_at_delete = b.writes;
	int ticks_at_delete = ticks;
	for (int waited = 0; waited < 2000 && a.read_err == 0; waited += 5)
		mk_sleep(5 * MS);
	ck_assert_msg(a.read_err == -ENODEV,
	              "the read on the deleted TAP returned %zd (%s), not "
	              "-ENODEV",
	              a.read_err, a.read_err ? mk_strerror((int)a.read_err) : "still waiting");
	ck_assert_msg(a.read_err_at - deleted_at < 500 * MS || a.read_err_at < deleted_at,
	              "the read on the deleted TAP took %llu ms to fail",
	              (unsigned long long)((a.read_err_at - deleted_at) / MS));

	/* Later reads fail at once; writes keep being counted as drops; the rest goes on. */
	ck_assert_int_eq(bounded_read(a.net, buf, sizeof(buf), 1000), -ENODEV);
	ck_assert_int_eq(mk_sleep(100 * MS), 0);
	for (uint32_t k = 5; k < 10; k++)
		ck_assert_int_eq(pk_send(c->pb, 60, k), 0);
	ck_assert_int_eq(mk_sleep(100 * MS), 0);
	ck_assert_msg(b.reads_ok == 10, "the other device read %d of 10 frames", b.reads_ok);
	ck_assert_msg(ticks > ticks_at_delete + 10, "the ticker stalled: %d ticks before, %d after",
	              ticks_at_delete, ticks);
	int64_t max_seq;
	int got = pk_drain(c->pb, &max_seq);
	ck_assert_msg(got > 0 && max_seq > (int64_t)b_writes_at_delete,
	              "the other device's frames stopped: %d frames, last %lld, %u before deletion",
	              got, (long long)max_seq, b_writes_at_delete);

	traffic_stop(&a);
	traffic_stop(&b);
	mk_task_cancel(tick);
	mk_task_await(tick, NULL);

	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(a.net, &st), 0);
	ck_assert_msg(a.write_err == 0, "a write on the deleted TAP returned %zd instead of 0",
	              a.write_err);
	ck_assert_msg(a.writes_dropped > 10, "only %u writes dropped after the deletion",
	              a.writes_dropped);
	ck_assert_uint_eq(a.writes, a.writes_ok + a.writes_dropped);
	ck_assert_uint_eq(st.tx_frames, a.writes_ok);
	ck_assert_uint_eq(st.tx_drops, a.writes_dropped);
	ck_assert_uint_eq(st.rx_frames, 5);
	ck_assert_int_eq(mk_net_stats(b.net, &st), 0);
	ck_assert_uint_eq(st.tx_drops, 0);
	ck_assert_uint_eq(st.tx_frames, b.writes);
	ck_assert_uint_eq(st.rx_frames, 10);
	return 0;
}

START_TEST(tap_deleted_under_traffic)
{
	struct removed_ctx c;
	tap_new("tfr0");
	tap_new("tfr1");
	c.pa = pk_open("tfr0");
	c.pb = pk_open("tfr1");
	uint64_t t0 = now_ns();
	ck_assert_int_eq(mkt_run(removed_main, &c, "--net:a=tfr0", "--net:b=tfr1", NULL), 0);
	ck_assert_msg(now_ns() - t0 < 10000 * MS, "mk_run took %llu ms",
	              (unsigned long long)((now_ns() - t0) / MS));
	close(c.pa);
	close(c.pb);
	mkt_tap_delete("tfr1");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  The link set down, then up                                                               */
/* ---------------------------------------------------------------------------------------- */

struct parked {
	mk_net *net;
	int frames;
	uint32_t last_seq;
	ssize_t err;
};

static intptr_t parked_reader(void *arg)
{
	struct parked *p = arg;
	uint8_t buf[1514];

	for (;;) {
		ssize_t n = mk_net_read_bigstring(p->net, buf, sizeof(buf), 0, sizeof(buf));
		if (n < 0) {
			p->err = n;
			return 0;
		}
		if (is_test_frame(buf, n)) {
			p->frames++;
			p->last_seq = frame_seq(buf);
		}
	}
}

static int down_up_main(int argc, char **argv, void *arg)
{
	int pfd = *(int *)arg;
	struct parked p = {.net = lib_connect("svc", "tdu0")};
	mk_task *reader;

	ck_assert_int_eq(mk_task_spawn(&reader, "reader", parked_reader, &p), 0);
	ck_assert_int_eq(mk_sleep(20 * MS), 0);
	ck_assert_int_eq(pk_send(pfd, 60, 1), 0);
	ck_assert_int_eq(lib_write(p.net, 60, 101), 60);
	ck_assert_int_eq(pk_recv_seq(pfd, 1000), 101);
	ck_assert_int_eq(mk_sleep(50 * MS), 0);
	ck_assert_int_eq(p.frames, 1);

	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(mkt_sh("ip link set dev tdu0 down"), 0);
		/* Down: writes are refused and counted; the parked reader keeps waiting. */
		for (uint32_t k = 0; k < 5; k++)
			ck_assert_int_eq(lib_write(p.net, 60, 200 + k), 0);
		ck_assert_int_eq(mk_sleep(100 * MS), 0);
		ck_assert_msg(p.err == 0, "the reader failed while the link was down: %s",
		              mk_strerror((int)p.err));

		ck_assert_int_eq(mkt_sh("ip link set dev tdu0 up"), 0);
		ck_assert(mkt_link_ready("tdu0", 3000));
		uint32_t seq = 10 + (uint32_t)round;
		ck_assert_int_eq(pk_send(pfd, 60, seq), 0);
		for (int waited = 0; waited < 1000 && p.frames < 2 + round; waited += 5)
			mk_sleep(5 * MS);
		ck_assert_msg(p.frames == 2 + round && p.last_seq == seq,
		              "round %d: frames did not resume after the link came up (%d frames)",
		              round, p.frames);
		ck_assert_int_eq(lib_write(p.net, 60, 300 + (uint32_t)round), 60);
		ck_assert_int_eq(pk_recv_seq(pfd, 1000), 300 + round);
	}
	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(p.net, &st), 0);
	ck_assert_uint_eq(st.tx_drops, 15);
	ck_assert_uint_eq(st.tx_frames, 4);
	ck_assert_uint_eq(st.rx_frames, 4);
	mk_task_cancel(reader);
	ck_assert_int_eq(mk_task_await(reader, NULL), -ECANCELED);
	ck_assert_int_eq(p.err, -ECANCELED);
	return 0;
}

START_TEST(link_down_up)
{
	tap_new("tdu0");
	int pfd = pk_open("tdu0");
	ck_assert_int_eq(mkt_run(down_up_main, &pfd, "--net:svc=tdu0", NULL), 0);
	close(pfd);
	mkt_tap_delete("tdu0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  The descriptor limit reached at connect                                                  */
/* ---------------------------------------------------------------------------------------- */

/* (*arg) descriptors may still be opened: 0 fails the first (the query of the interface), 1 the
 * second (/dev/net/tun, while the first is open). Either way the sentence names the limit. */
static int fd_limit_main(int argc, char **argv, void *arg)
{
	int spare = *(int *)arg;
	struct rlimit old, low;
	mk_net *net = NULL;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	int fds = mkt_count_fds();
	int lowest = dup(0); /* the lowest free descriptor: every one below it is taken */
	ck_assert_int_ge(lowest, 0);
	close(lowest);
	low = old;
	low.rlim_cur = (rlim_t)(lowest + spare); /* every one below is taken (or spare) */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);

	int r = mk_net_connect("svc", &net, NULL);
	const char *e = mk_last_error();
	ck_assert_msg(r == -EMFILE,
	              "mk_net_connect at the descriptor limit (%d spare) returned %d (%s), "
	              "expected -EMFILE: \"%s\"",
	              spare, r, mk_strerror(r), e);
	ck_assert_msg(strstr(e, "'svc'") != NULL && strstr(e, "open files") != NULL &&
	                  strstr(e, "ulimit -n") != NULL,
	              "the sentence does not name the device, the cause and the fix: \"%s\"", e);
	ck_assert_ptr_null(net);

	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_msg(mkt_count_fds() == fds, "the failed connect left %d descriptors open",
	              mkt_count_fds() - fds);
	/* Nothing half-done stays behind: the same device connects now. */
	net = lib_connect("svc", "tfl0");
	ck_assert_int_eq(lib_write(net, 60, 1), 60);
	return 0;
}

START_TEST(fd_limit_at_connect)
{
	int spare = _i;
	tap_new("tfl0");
	ck_assert_int_eq(mkt_run(fd_limit_main, &spare, "--net:svc=tfl0", NULL), 0);
	mkt_tap_delete("tfl0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Memory for stacks exhausted                                                              */
/* ---------------------------------------------------------------------------------------- */

#define SPAWN_MAX 20000

static atomic_int stack_tasks_done;

static intptr_t stack_task(void *arg)
{
	volatile char use[4096]; /* touch the stack a little */
	use[0] = 1;
	use[4095] = use[0];
	if (mk_sleep(1 * MS) != 0)
		return -1;
	atomic_fetch_add(&stack_tasks_done, 1);
	return (intptr_t)arg;
}

static unsigned long vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long kb = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int stacks_main(int argc, char **argv, void *arg)
{
	static mk_task *tasks[SPAWN_MAX];
	struct rlimit old, low;
	int n = 0, r = 0;

	ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)(vm_size_kb() + 64 * 1024) * 1024; /* 64 MiB more than now */
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &low), 0);

	while (n < SPAWN_MAX &&
	       (r = mk_task_spawn(&tasks[n], "stack", stack_task, (void *)(intptr_t)n)) == 0)
		n++;
	ck_assert_msg(r == -ENOMEM, "spawning until memory ran out: %d tasks, then %d (%s)", n, r,
	              mk_strerror(r));
	ck_assert_msg(n > 10, "only %d tasks before -ENOMEM", n);

	/* Still limited: every task spawned runs to its end. */
	for (int i = 0; i < n; i++) {
		intptr_t res = -2;
		ck_assert_int_eq(mk_task_await(tasks[i], &res), 0);
		ck_assert_int_eq(res, i);
	}
	ck_assert_int_eq(atomic_load(&stack_tasks_done), n);
	/* Their stacks are free again: as many can be spawned once more. */
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(mk_task_spawn(&tasks[i], "again", stack_task, (void *)(intptr_t)i),
		                 0);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(mk_task_await(tasks[i], NULL), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
	return n;
}

START_TEST(stacks_exhausted)
{
#if defined(UNDER_ASAN)
	fprintf(stderr, "stacks_exhausted: not under ASan (its shadow memory needs the address "
	                "space a limit would take away)\n");
	return;
#endif
#ifdef MK_HAVE_VALGRIND
	if (RUNNING_ON_VALGRIND) {
		fprintf(stderr,
		        "stacks_exhausted: not under valgrind (it manages the address space "
		        "itself)\n");
		return;
	}
#endif
	int n = mkt_run(stacks_main, NULL, NULL);
	ck_assert_msg(n > 10, "mk_run returned %d", n);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  SIGTERM in the middle of traffic                                                         */
/* ---------------------------------------------------------------------------------------- */

struct term_ctx {
	int pfd;
	struct traffic t;
	int main_sleep;
	int reached_end;
};

/* A child process floods the TAP for up to 5 s and sends SIGTERM to (parent) after 300 ms. A
 * process, not a thread: valgrind runs one thread at a time and can hold a sender thread while
 * the scheduler's thread waits in the kernel. */
static pid_t term_sender(int pfd, pid_t parent)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	uint64_t t0 = now_ns();
	int killed = 0;
	for (uint32_t seq = 0; now_ns() - t0 < 5000 * MS && getppid() == parent; seq++) {
		pk_send(pfd, 100, seq);
		if (!killed && now_ns() - t0 > 300 * MS) {
			kill(parent, SIGTERM);
			killed = 1;
		}
		usleep(200);
	}
	_exit(0);
}

static int term_main(int argc, char **argv, void *arg)
{
	struct term_ctx *c = arg;

	c->t.net = lib_connect("svc", "tst0");
	traffic_start(&c->t);
	c->main_sleep = mk_sleep(20000 * MS);
	/* Cancelled: the others were too. Await them, as a program would. */
	mk_task_await(c->t.reader, NULL);
	mk_task_await(c->t.writer, NULL);
	c->reached_end = 1;
	return 7;
}

START_TEST(sigterm_during_traffic)
{
	struct term_ctx c = {0};

	/* Check's runner handles SIGTERM and its test processes inherit that; a program starts with
	 * the default action. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	tap_new("tst0");
	c.pfd = pk_open("tst0");

	int fds = mkt_count_fds();
	pid_t sender = term_sender(c.pfd, getpid());
	ck_assert_int_gt(sender, 0);
	uint64_t t0 = now_ns();
	int rc = mkt_run(term_main, &c, "--net:svc=tst0", NULL);
	uint64_t took = now_ns() - t0;
	int fds_after = mkt_count_fds();
	kill(sender, SIGKILL);
	waitpid(sender, NULL, 0);

	ck_assert_msg(rc == -EINTR, "mk_run returned %d, expected -EINTR", rc);
	ck_assert_msg(took < 3000 * MS, "mk_run took %llu ms to stop",
	              (unsigned long long)(took / MS));
	ck_assert_int_eq(c.main_sleep, -ECANCELED);
	ck_assert_int_eq(c.reached_end, 1);
	ck_assert_int_eq(c.t.read_err, -ECANCELED);
	ck_assert_msg(c.t.reads_ok > 0 && c.t.writes_ok > 0,
	              "no traffic before the signal: %d frames read, %u written", c.t.reads_ok,
	              c.t.writes_ok);
	ck_assert_msg(fds_after == fds, "%d descriptors open before mk_run, %d after", fds,
	              fds_after);
	close(c.pfd);
	mkt_tap_delete("tst0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Least privilege                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* The unprivileged child: connect "svc" (and fail on "root", a TAP of root's), read frames 10,
 * 11, 12, write frames 20, 21, 22. Its exit status says what went wrong (see stderr). */
static int nobody_main(int argc, char **argv, void *arg)
{
	int ready_fd = *(int *)arg;
	mk_net *net = NULL, *other = NULL;
	uint8_t buf[1514];

	int r = mk_net_connect("root", &other, NULL);
	if (r != -EPERM || strstr(mk_last_error(), "'root'") == NULL ||
	    strstr(mk_last_error(), "user") == NULL) {
		fprintf(stderr, "child: connect to root's TAP = %d: %s\n", r, mk_last_error());
		return 20;
	}
	r = mk_net_connect("svc", &net, NULL);
	if (r != 0) {
		fprintf(stderr, "child: mk_net_connect(svc) = %s: %s\n", mk_strerror(r),
		        mk_last_error());
		return 21;
	}
	if (write(ready_fd, "c", 1) != 1)
		return 22;
	for (uint32_t k = 0; k < 3; k++) {
		ssize_t n = bounded_read(net, buf, sizeof(buf), 5000);
		if (n != 60 + 100 * k || !is_test_frame(buf, n) || frame_seq(buf) != 10 + k) {
			fprintf(stderr, "child: read %u returned %zd\n", k, n);
			return 23;
		}
	}
	for (uint32_t k = 0; k < 3; k++)
		if (lib_write(net, 80 + 100 * k, 20 + k) != (ssize_t)(80 + 100 * k)) {
			fprintf(stderr, "child: write %u failed\n", k);
			return 24;
		}
	return geteuid() == NOBODY ? 0 : 25;
}

/* Distributions make /dev/net/tun rw for everyone (0666); containers often leave it 0600. Then,
 * in a private mount namespace of this test's process, put a 0666 node over it, as a distribution
 * would have. 0 when nobody can open /dev/net/tun now. */
static int tun_for_everyone(void)
{
	struct stat sb;

	if (stat("/dev/net/tun", &sb) != 0)
		return -1;
	if ((sb.st_mode & 0006) == 0006)
		return 0;
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/dev/net", "tmpfs", 0, "mode=0755") != 0 ||
	    mknod("/dev/net/tun", S_IFCHR | 0666, sb.st_rdev) != 0 ||
	    chmod("/dev/net/tun", 0666) != 0)
		return -1;
	return 0;
}

START_TEST(unprivileged_by_name)
{
	int ready[2];

	ck_assert_msg(tun_for_everyone() == 0, "cannot make /dev/net/tun usable by nobody: %s",
	              strerror(errno));

	mkt_tap_delete("tnb0");
	mkt_tap_delete("tnr0");
	ck_assert_int_eq(mkt_sh("ip tuntap add dev tnb0 mode tap user nobody"), 0);
	ck_assert_int_eq(mkt_sh("ip link set dev tnb0 up"), 0);
	/* A TAP with no owner may be attached by anyone; one owned by root may not. */
	ck_assert_int_eq(mkt_sh("ip tuntap add dev tnr0 mode tap user root"), 0);
	ck_assert_int_eq(mkt_sh("ip link set dev tnr0 up"), 0);
	int pfd = pk_open("tnb0");
	ck_assert_int_eq(pipe(ready), 0);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(pfd);
		if (drop_privileges() != 0 || geteuid() != NOBODY || getegid() != NOBODY ||
		    !no_capabilities()) {
			fprintf(stderr, "child: cannot become nobody: %s\n", strerror(errno));
			_exit(10);
		}
		alarm(30);
		_exit(mkt_run(nobody_main, &ready[1], "--net:svc=tnb0", "--net:root=tnr0", NULL));
	}
	close(ready[1]);
	struct pollfd p = {.fd = ready[0], .events = POLLIN};
	char byte;
	int connected = poll(&p, 1, 5000) == 1 && read(ready[0], &byte, 1) == 1;
	if (connected) {
		ck_assert_msg(mkt_link_ready("tnb0", 3000), "tnb0 is not running");
		for (uint32_t k = 0; k < 3; k++)
			ck_assert_int_eq(pk_send(pfd, 60 + 100 * k, 10 + k), 0);
		for (uint32_t k = 0; k < 3; k++)
			ck_assert_int_eq(pk_recv_seq(pfd, 3000), 20 + k);
	}
	int st = mkt_wait_child(pid, 10000);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "the child running as nobody failed: exit %d, signal %d (see stderr)",
	              WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	ck_assert_msg(connected, "the child running as nobody never connected");
	close(ready[0]);
	close(pfd);
	mkt_tap_delete("tnb0");
	mkt_tap_delete("tnr0");
}
END_TEST

/* A privileged parent opens the TAP, an unprivileged child execs examples/ping-serve with the
 * descriptor, and ping from the namespace gets its answers. */
START_TEST(fd_handoff_exec_ping_serve)
{
	const char *prog = MK_BUILD_DIR "/examples/ping-serve";
	int out[2];

	int exe = open(prog, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(exe >= 0, "%s: %s (build the examples)", prog, strerror(errno));
	mkt_tap_delete("tfx0");
	int tap = mkt_tun_attach("tfx0", IFF_TAP | IFF_NO_PI);
	ck_assert_msg(tap >= 0, "cannot create TAP tfx0: %s", strerror(-tap));
	ck_assert_int_eq(mkt_sh("ip addr add 10.77.0.1/24 dev tfx0 && ip link set dev tfx0 up"), 0);
	ck_assert_int_eq(pipe(out), 0);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char fdarg[32];
		snprintf(fdarg, sizeof(fdarg), "--net:service=@%d", tap);
		dup2(out[1], STDOUT_FILENO);
		close(out[0]);
		close(out[1]);
		if (drop_privileges() != 0 || geteuid() != NOBODY) {
			fprintf(stderr, "child: cannot become nobody: %s\n", strerror(errno));
			_exit(10);
		}
		if (!no_capabilities()) {
			fprintf(stderr, "child: still privileged\n");
			_exit(11);
		}
		alarm(30);
		char *args[] = {"ping-serve", fdarg, "--", "--count", "3", "10.77.0.2", NULL};
		extern char **environ;
		fexecve(exe, args, environ);
		fprintf(stderr, "child: exec %s: %s\n", prog, strerror(errno));
		_exit(12);
	}
	close(out[1]);
	close(tap); /* the child holds the TAP now; it disappears when the child exits */
	close(exe);

	/* ping-serve says one line when it is connected. */
	char text[4096];
	size_t len = 0;
	for (uint64_t t0 = now_ns(); len < sizeof(text) - 1 && now_ns() - t0 < 5000 * MS;) {
		struct pollfd p = {.fd = out[0], .events = POLLIN};
		if (poll(&p, 1, 100) != 1)
			continue;
		ssize_t n = read(out[0], text + len, sizeof(text) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		text[len] = '\0';
		if (strchr(text, '\n'))
			break;
	}
	text[len] = '\0';
	ck_assert_msg(strstr(text, "ping-serve: 10.77.0.2") != NULL,
	              "ping-serve did not start: \"%s\"", text);
	ck_assert(mkt_link_ready("tfx0", 3000));
	int ping = mkt_sh("ping -n -q -c 3 -i 0.2 -W 2 10.77.0.2 >/dev/null");
	int st = mkt_wait_child(pid, 10000);
	for (ssize_t n;
	     len < sizeof(text) - 1 && (n = read(out[0], text + len, sizeof(text) - 1 - len)) > 0;)
		len += (size_t)n;
	text[len] = '\0';
	close(out[0]);
	ck_assert_msg(ping == 0,
	              "ping got no answer from ping-serve running as nobody on @FD "
	              "(ping exit %d); its output: \"%s\"",
	              ping, text);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "ping-serve as nobody: exit %d, signal %d; its output: \"%s\"",
	              WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0,
	              text);
	ck_assert_msg(strstr(text, "answered 3 echo requests") != NULL, "ping-serve said \"%s\"",
	              text);
	mkt_tap_delete("tfx0");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Misuse: calls from another thread, and reads from a hook                                 */
/* ---------------------------------------------------------------------------------------- */

struct fill_count {
	int calls;
};

static size_t fill_60(void *buf, size_t len, void *ctx)
{
	struct fill_count *fc = ctx;
	fc->calls++;
	frame_fill(buf, 60, 999);
	return 60;
}

struct foreign {
	mk_net *net;
	ssize_t r[12];
	void *hook;
	const char *name;
	struct fill_count fc;
};

static intptr_t noop_task(void *arg)
{
	return 0;
}

static void noop_hook(void *arg)
{
}

/* From a thread of its own, every device call is refused with -EPERM (a hook: NULL), at once,
 * and does nothing. */
static void *foreign_thread(void *arg)
{
	struct foreign *f = arg;
	uint8_t buf[1514];
	mk_net *other = NULL;
	mk_task *t = NULL;

	frame_fill(buf, 60, 998);
	f->r[0] = mk_net_write_bigstring(f->net, buf, sizeof(buf), 0, 60);
	f->r[1] = mk_net_write_string(f->net, buf, sizeof(buf), 0, 60);
	f->r[2] = mk_net_write_into(f->net, 60, fill_60, &f->fc);
	f->r[3] = mk_net_read_bigstring(f->net, buf, sizeof(buf), 0, sizeof(buf));
	f->r[4] = mk_net_read_bytes(f->net, buf, sizeof(buf), 0, sizeof(buf));
	f->r[5] = mk_net_connect("svc", &other, NULL);
	f->r[6] = mk_task_spawn(&t, "x", noop_task, NULL);
	f->r[7] = mk_sleep(1);
	f->r[8] = mk_yield();
	f->r[9] = mk_net_stats(f->net, &(struct mk_net_stats){0});
	f->name = mk_net_name(f->net);
	f->hook = mk_hook_add(noop_hook, NULL);
	return NULL;
}

struct hook_read {
	mk_net *net;
	int calls;
	ssize_t r;
};

static void hook_reads(void *arg)
{
	struct hook_read *h = arg;
	uint8_t buf[1514];
	if (h->calls++ == 0)
		h->r = mk_net_read_bigstring(h->net, buf, sizeof(buf), 0, sizeof(buf));
}

static int foreign_main(int argc, char **argv, void *arg)
{
	int pfd = *(int *)arg;
	struct foreign f = {.net = lib_connect("svc", "tft0")};
	pthread_t th;
	uint8_t buf[1514];

	/* A frame waits in the TAP's queue: a refused read must not take it. */
	ck_assert_int_eq(pk_send(pfd, 60, 1), 0);
	usleep(50000);
	ck_assert_int_eq(pthread_create(&th, NULL, foreign_thread, &f), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	static const char *const what[] = {"mk_net_write_bigstring",
	                                   "mk_net_write_string",
	                                   "mk_net_write_into",
	                                   "mk_net_read_bigstring",
	                                   "mk_net_read_bytes",
	                                   "mk_net_connect",
	                                   "mk_task_spawn",
	                                   "mk_sleep",
	                                   "mk_yield",
	                                   "mk_net_stats"};
	for (int i = 0; i < 10; i++)
		ck_assert_msg(f.r[i] == -EPERM, "%s from another thread returned %zd, not -EPERM",
		              what[i], f.r[i]);
	ck_assert_msg(f.hook == NULL, "mk_hook_add from another thread returned a hook");
	ck_assert_msg(f.name == NULL, "mk_net_name from another thread returned \"%s\"", f.name);
	ck_assert_int_eq(f.fc.calls, 0);

	/* From a hook, a read (it may suspend) is refused too. */
	struct hook_read h = {.net = f.net};
	mk_hook *hk = mk_hook_add(hook_reads, &h);
	ck_assert_ptr_nonnull(hk);
	ck_assert_int_eq(mk_sleep(10 * MS), 0);
	mk_hook_remove(hk);
	ck_assert_msg(h.calls > 0 && h.r == -EPERM, "a read from a hook returned %zd", h.r);

	/* No device: -EINVAL from every call, at once. */
	struct fill_count fc = {0};
	ck_assert_int_eq(mk_net_read_bigstring(NULL, buf, sizeof(buf), 0, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(mk_net_read_bytes(NULL, buf, sizeof(buf), 0, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(mk_net_write_bigstring(NULL, buf, sizeof(buf), 0, 60), -EINVAL);
	ck_assert_int_eq(mk_net_write_string(NULL, buf, sizeof(buf), 0, 60), -EINVAL);
	ck_assert_int_eq(mk_net_write_into(NULL, 60, fill_60, &fc), -EINVAL);
	ck_assert_int_eq(fc.calls, 0);
	ck_assert_ptr_null(mk_net_name(NULL));

	/* Nothing was sent, nothing consumed, nothing counted. */
	struct mk_net_stats st;
	ck_assert_int_eq(mk_net_stats(f.net, &st), 0);
	ck_assert_msg(st.tx_frames == 0 && st.tx_drops == 0 && st.rx_frames == 0 &&
	                  st.rx_drops == 0,
	              "refused calls were counted");
	ssize_t n = bounded_read(f.net, buf, sizeof(buf), 2000);
	ck_assert_msg(n == 60 && frame_seq(buf) == 1, "the waiting frame was lost: read %zd", n);
	ck_assert_int_eq(lib_write(f.net, 60, 2), 60);
	ck_assert_msg(pk_recv_seq(pfd, 1000) == 2, "a refused write reached the TAP");
	return 0;
}

START_TEST(calls_from_another_thread)
{
	tap_new("tft0");
	int pfd = pk_open("tft0");
	ck_assert_int_eq(mkt_run(foreign_main, &pfd, "--net:svc=tft0", NULL), 0);
	close(pfd);
	mkt_tap_delete("tft0");
}
END_TEST

static int must_not_run(int argc, char **argv, void *arg)
{
	*(int *)arg = 1;
	return 0;
}

/* The MAC of a device given twice: mk_run refuses to start, and says which. */
START_TEST(mac_given_twice)
{
	int ran = 0;
	int r = mkt_run(must_not_run, &ran, "--net:svc=tmt0", "--net-mac:svc=02:00:00:00:00:01",
	                "--net-mac:svc=02:00:00:00:00:02", NULL);
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_int_eq(ran, 0);
	ck_assert_msg(strstr(mk_last_error(), "svc") && strstr(mk_last_error(), "twice"),
	              "mk_last_error() = \"%s\"", mk_last_error());
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

int main(void)
{
	mkt_enter_netns();
	mkt_sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1");
	mkt_sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1");

	Suite *s = suite_create("faults");
	TCase *faults = tcase_create("faults");
	tcase_set_timeout(faults, 30);
	tcase_add_test(faults, tap_deleted_under_traffic);
	tcase_add_test(faults, link_down_up);
	tcase_add_loop_test(faults, fd_limit_at_connect, 0, 2);
	tcase_add_test(faults, stacks_exhausted);
	tcase_add_test(faults, sigterm_during_traffic);
	suite_add_tcase(s, faults);

	TCase *priv = tcase_create("privilege");
	tcase_set_timeout(priv, 30);
	mkt_add_test_as_nobody(priv, unprivileged_by_name);
	mkt_add_test_as_nobody(priv, fd_handoff_exec_ping_serve);
	suite_add_tcase(s, priv);

	TCase *misuse = tcase_create("misuse");
	tcase_set_timeout(misuse, 30);
	tcase_add_test(misuse, calls_from_another_thread);
	tcase_add_test(misuse, mac_given_twice);
	suite_add_tcase(s, misuse);

	return mkt_run_suite(s, true);
}
