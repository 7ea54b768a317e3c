/* bench-net: frame throughput and latency through TAP devices, for mkhost and for the baselines
 * (see endpoint.h), printed as JSON lines (see benchlib.h).
 *
 *   bench-net tx IMPL IFACE SIZE COUNT
 *       Write COUNT frames of SIZE bytes to IFACE (a TAP on no bridge: the kernel drops them).
 *   bench-net rx drain|live IMPL IFACE_RX IFACE_TX SIZE COUNT
 *       A child process, pinned to CPU 0, writes COUNT frames into IFACE_TX, which a bridge
 *       forwards to IFACE_RX, where IMPL (pinned to CPU 1) reads them. "drain": the frames are
 *       all queued before the reader starts its clock (IFACE_RX needs a txqueuelen >= COUNT).
 *       "live": the reader reads while the child writes, until the child's end marker.
 *   bench-net pingpong same|cross IMPL IFACE_A IFACE_B SIZE COUNT
 *       A pinger on IFACE_B (blocking read/write, CPU 0) bounces COUNT frames off IMPL on
 *       IFACE_A (CPU 0 for "same", CPU 1 for "cross") across a bridge, and reports the round
 *       trip percentiles.
 *
 *   bench-net free IFACE...
 *       Wait until no process holds any of the TAPs (at most 10 s): one that held a TAP through
 *       io_uring keeps it a while after it exits, longer than mkhost's connect waits.
 *
 * Run by scripts/bench, inside the network namespace it makes. Every run ends within
 * DEADLINE_S seconds whatever happens. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchlib.h"
#include "endpoint.h"

#define DEADLINE_S         60
#define FORWARDING_WAIT_MS 3000
#define PING_WARMUP        200

static void must_write(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		bench_die("pipe write: %s", strerror(errno));
}

static char must_read(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		bench_die("the other process went away");
	return c;
}

static void wait_forwarding(const char *a, const char *b)
{
	if (bench_wait_forwarding(a, FORWARDING_WAIT_MS) != 0 ||
	    bench_wait_forwarding(b, FORWARDING_WAIT_MS) != 0)
		bench_die("bridge ports %s and %s did not start forwarding", a, b);
}

static void check_size(const struct ep *e, size_t size)
{
	if (size < 22 || size > ep_frame_max(e))
		bench_die("frame size %zu is outside 22..%zu (mtu + 14)", size, ep_frame_max(e));
}

/* ---- tx --------------------------------------------------------------------------------- */

struct run {
	const char *impl;
	const char *mode; /* rx: drain or live; pingpong: same or cross */
	const char *iface_a, *iface_b;
	size_t size;
	unsigned long count;
	int ready_r, go_w, done_r; /* pipes to the child, where there is one */
};

static int tx_body(struct ep *e, void *p)
{
	struct run *r = p;
	char variant[32];
	uint8_t *frame = malloc(r->size);

	check_size(e, r->size);
	if (frame == NULL)
		bench_die("out of memory");
	bench_frame(frame, r->size, bench_mac_b, ep_mac(e), BENCH_ETHERTYPE, 0);
	for (unsigned long i = 0; i < r->count / 10; i++) /* warm caches and the allocator */
		ep_send(e, frame, r->size);
	ep_flush(e);

	uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
	for (unsigned long i = 0; i < r->count; i++) {
		int err = ep_send(e, frame, r->size);
		if (err < 0)
			bench_die("send: %s", strerror(-err));
	}
	int refused = ep_flush(e);
	uint64_t t1 = bench_now_ns(), c1 = bench_cpu_ns();

	double s = (double)(t1 - t0) / 1e9;
	snprintf(variant, sizeof(variant), "%zu", r->size);
	bench_result("tx", variant, r->impl, "frames_per_s", (double)r->count / s);
	bench_result("tx", variant, r->impl, "gbit_per_s",
	             (double)r->count * r->size * 8 / s / 1e9);
	bench_result("tx", variant, r->impl, "cpu_ns_per_frame", (double)(c1 - c0) / r->count);
	bench_result("tx", variant, r->impl, "refused", refused);
	free(frame);
	return 0;
}

/* ---- rx --------------------------------------------------------------------------------- */

/* The child: write the frames into the sending TAP when told to. */
static void rx_sender(struct run *r, int ready_w, int go_r, int done_w)
{
	int fd = bench_tap_open(r->iface_b, 0);
	uint8_t *frame = malloc(r->size);
	bool live = strcmp(r->mode, "live") == 0;

	if (frame == NULL)
		bench_die("out of memory");
	bench_pin(0);
	bench_frame(frame, r->size, bench_mac_a, bench_mac_b, BENCH_ETHERTYPE, 0);
	must_write(ready_w, 'r');
	must_read(go_r);
	for (unsigned long i = 0; i < r->count; i++) {
		memcpy(frame + 14, &i, sizeof(i));
		if (write(fd, frame, r->size) != (ssize_t)r->size)
			bench_die("sender write: %s", strerror(errno));
	}
	if (!live) {
		must_write(done_w, 'd');
		_exit(0);
	}
	/* The end marker can be dropped like any frame when the reader's queue is full: repeat it
	 * until the reader closes the pipe. */
	bench_frame(frame, r->size, bench_mac_a, bench_mac_b, BENCH_ETHERTYPE_END, 0);
	for (int i = 0; i < 5000; i++) {
		struct pollfd pfd = {.fd = go_r, .events = POLLIN};
		if (write(fd, frame, r->size) < 0)
			bench_die("sender write: %s", strerror(errno));
		if (poll(&pfd, 1, 1) != 0)
			break;
	}
	_exit(0);
}

static int rx_body(struct ep *e, void *p)
{
	struct run *r = p;
	bool live = strcmp(r->mode, "live") == 0;
	unsigned long expect = r->count, got = 0;
	char variant[48];
	uint8_t *frame;

	check_size(e, r->size);
	must_read(r->ready_r);
	wait_forwarding(r->iface_a, r->iface_b);
	uint64_t drops0 = bench_if_stat(r->iface_a, "tx_dropped");
	uint64_t t0 = 0, c0 = 0;
	if (live) {
		t0 = bench_now_ns();
		c0 = bench_cpu_ns();
		must_write(r->go_w, 'g');
	} else {
		must_write(r->go_w, 'g');
		must_read(r->done_r);
		/* What did not fit in the TAP's queue was dropped and counted by the kernel. */
		expect -= bench_if_stat(r->iface_a, "tx_dropped") - drops0;
		t0 = bench_now_ns();
		c0 = bench_cpu_ns();
	}
	while (live || got < expect) {
		ssize_t n = ep_recv(e, &frame);
		if (n < 0)
			bench_die("recv: %s", strerror((int)-n));
		if (n < 14)
			continue;
		uint16_t type = bench_frame_type(frame);
		if (type == BENCH_ETHERTYPE)
			got++;
		else if (type == BENCH_ETHERTYPE_END)
			break;
	}
	uint64_t t1 = bench_now_ns(), c1 = bench_cpu_ns();
	close(r->go_w);

	double s = (double)(t1 - t0) / 1e9;
	snprintf(variant, sizeof(variant), "%s-%zu", r->mode, r->size);
	bench_result("rx", variant, r->impl, "frames_per_s", (double)got / s);
	bench_result("rx", variant, r->impl, "cpu_ns_per_frame", got ? (double)(c1 - c0) / got : 0);
	bench_result("rx", variant, r->impl, "delivered", (double)got / r->count);
	return 0;
}

/* ---- ping-pong ---------------------------------------------------------------------------- */

/* The child: the implementation under test bounces every frame back to its sender. */
static int pong_body(struct ep *e, void *p)
{
	struct run *r = p;
	uint8_t *frame;

	must_write(r->go_w, 'r'); /* in the child, go_w is the ready pipe */
	for (;;) {
		ssize_t n = ep_recv(e, &frame);
		if (n < 0)
			bench_die("pong recv: %s", strerror((int)-n));
		if (n < 22)
			continue;
		uint16_t type = bench_frame_type(frame);
		if (type == BENCH_ETHERTYPE_END)
			break;
		if (type != BENCH_ETHERTYPE)
			continue;
		memcpy(frame, frame + 6, 6);
		memcpy(frame + 6, ep_mac(e), 6);
		int err = ep_send(e, frame, (size_t)n);
		if (err < 0)
			bench_die("pong send: %s", strerror(-err));
	}
	ep_flush(e);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *sorted, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n);

	return (double)sorted[i < n ? i : n - 1] / 1000.0;
}

static void ping(struct run *r)
{
	int fd = bench_tap_open(r->iface_b, 0);
	size_t n = r->count;
	uint64_t *rtt = malloc(n * sizeof(*rtt));
	uint8_t *frame = malloc(r->size), *in = malloc(65536);
	char variant[48];

	if (rtt == NULL || frame == NULL || in == NULL)
		bench_die("out of memory");
	bench_pin(0);
	must_read(r->ready_r);
	wait_forwarding(r->iface_a, r->iface_b);
	bench_frame(frame, r->size, bench_mac_a, bench_mac_b, BENCH_ETHERTYPE, 0);
	for (uint64_t i = 0; i < PING_WARMUP + n; i++) {
		memcpy(frame + 14, &i, sizeof(i));
		uint64_t t0 = bench_now_ns();
		if (write(fd, frame, r->size) != (ssize_t)r->size)
			bench_die("ping write: %s", strerror(errno));
		for (;;) {
			ssize_t got = read(fd, in, 65536);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				bench_die("ping read: %s", strerror(errno));
			if (got >= 22 && bench_frame_type(in) == BENCH_ETHERTYPE &&
			    bench_frame_seq(in) == i)
				break;
		}
		if (i >= PING_WARMUP)
			rtt[i - PING_WARMUP] = bench_now_ns() - t0;
	}
	bench_frame(frame, r->size, bench_mac_a, bench_mac_b, BENCH_ETHERTYPE_END, 0);
	for (int i = 0; i < 3; i++)
		if (write(fd, frame, r->size) < 0)
			bench_die("ping write: %s", strerror(errno));

	qsort(rtt, n, sizeof(*rtt), cmp_u64);
	snprintf(variant, sizeof(variant), "%zu-%s", r->size, r->mode);
	bench_result("pingpong", variant, r->impl, "p50_us", percentile_us(rtt, n, 0.5));
	bench_result("pingpong", variant, r->impl, "p99_us", percentile_us(rtt, n, 0.99));
	bench_result("pingpong", variant, r->impl, "p999_us", percentile_us(rtt, n, 0.999));
	free(rtt);
	free(frame);
	free(in);
	close(fd);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: bench-net tx IMPL IFACE SIZE COUNT\n"
	                "       bench-net rx drain|live IMPL IFACE_RX IFACE_TX SIZE COUNT\n"
	                "       bench-net pingpong same|cross IMPL IFACE_A IFACE_B SIZE COUNT\n"
	                "       bench-net free IFACE...\n"
	                "IMPL: mkhost, mkhost-batch, mkhost-busypoll50, mkhost-rxring, read, epoll or uring\n");
	exit(2);
}

static void make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) != 0)
		bench_die("pipe: %s", strerror(errno));
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			bench_die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_die("the child process failed (status %#x)", status);
	return 0;
}

int main(int argc, char **argv)
{
	struct run r = {0};

	bench_prog = "bench-net";
	bench_deadline(DEADLINE_S);
	if (argc == 6 && strcmp(argv[1], "tx") == 0) {
		r.impl = argv[2];
		r.iface_a = argv[3];
		r.size = bench_ulong(argv[4], "size");
		r.count = bench_ulong(argv[5], "count");
		bench_pin(1);
		return ep_run(ep_impl_parse(r.impl), r.iface_a, 0, tx_body, &r);
	}
	if (argc >= 3 && strcmp(argv[1], "free") == 0) {
		for (int i = 2; i < argc; i++)
			close(bench_tap_open(argv[i], 0));
		return 0;
	}
	if (argc != 8)
		usage();
	r.mode = argv[2];
	r.impl = argv[3];
	r.iface_a = argv[4];
	r.iface_b = argv[5];
	r.size = bench_ulong(argv[6], "size");
	r.count = bench_ulong(argv[7], "count");
	enum ep_impl impl = ep_impl_parse(r.impl);
	int ready[2], go[2], done[2];
	make_pipe(ready);
	make_pipe(go);
	make_pipe(done);

	if (strcmp(argv[1], "rx") == 0) {
		if (strcmp(r.mode, "drain") != 0 && strcmp(r.mode, "live") != 0)
			usage();
		pid_t pid = fork();
		if (pid < 0)
			bench_die("fork: %s", strerror(errno));
		if (pid == 0) {
			bench_deadline(DEADLINE_S);
			close(ready[0]);
			close(go[1]); /* so that the parent closing its end reads as EOF here */
			close(done[0]);
			rx_sender(&r, ready[1], go[0], done[1]);
		}
		close(ready[1]);
		close(go[0]);
		close(done[1]);
		r.ready_r = ready[0];
		r.go_w = go[1];
		r.done_r = done[0];
		bench_pin(1);
		ep_run(impl, r.iface_a, 0, rx_body, &r);
		return wait_child(pid);
	}
	if (strcmp(argv[1], "pingpong") == 0) {
		if (strcmp(r.mode, "same") != 0 && strcmp(r.mode, "cross") != 0)
			usage();
		pid_t pid = fork();
		if (pid < 0)
			bench_die("fork: %s", strerror(errno));
		if (pid == 0) {
			bench_deadline(DEADLINE_S);
			bench_pin(strcmp(r.mode, "same") == 0 ? 0 : 1);
			r.go_w = ready[1];
			_exit(ep_run(impl, r.iface_a, 0, pong_body, &r) == 0 ? 0 : 1);
		}
		close(ready[1]);
		r.ready_r = ready[0];
		ping(&r);
		return wait_child(pid);
	}
	usage();
}
