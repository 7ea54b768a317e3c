/* The net test unikernel (solo5-net, or uk-net built by mkhost-solo5-cc when the first argument
 * is "uk-") against the Linux network stack, on TAPs in a private network namespace: ping and
 * arping get their answers, many pings in a row all come back, the count in its cmdline ends it
 * with status 0, SIGTERM stops it cleanly (it dies of SIGTERM, as a tender would), and the same
 * works on a TAP handed over as @FD. Then the floods: 100,000 ping -f answered with no loss in
 * Solo5's "limit" mode, two devices flooded at once, MTU 9000, and a patterned flood (ping -p
 * deadbeef) whose replies ping checks byte by byte. Then the absent program checks acquiring a
 * device that was given. Skips (77) without root. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define TAP  "tap0"
#define TAP1 "tap1"
#define IP   "10.0.0.2"
#define IP1  "10.0.1.2"

static char NET[512], ABSENT[512];

static int failures;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok)
		return;
	va_start(ap, fmt);
	fputs("FAIL: ", stdout);
	vprintf(fmt, ap);
	fputs("\n", stdout);
	va_end(ap);
	failures++;
}

struct proc {
	pid_t pid;
	int out;
	char text[4096];
	size_t len;
};

/* Read its stdout until (stop) shows up or (ms) pass; 1 if it did. */
static int wait_for(struct proc *p, const char *stop, int ms)
{
	for (int waited = 0; waited < ms; waited += 50) {
		struct pollfd pfd = {.fd = p->out, .events = POLLIN};
		if (strstr(p->text, stop) != NULL)
			return 1;
		if (poll(&pfd, 1, 50) > 0) {
			ssize_t r = read(p->out, p->text + p->len, sizeof(p->text) - 1 - p->len);
			if (r <= 0)
				return strstr(p->text, stop) != NULL;
			p->len += (size_t)r;
			p->text[p->len] = '\0';
		}
	}
	return strstr(p->text, stop) != NULL;
}

/* Start (argv) with its stdout in a pipe; (keep_fd) stays open in it if >= 0. */
static int start(struct proc *p, char *const argv[], int keep_fd)
{
	int pipefd[2];

	memset(p, 0, sizeof(*p));
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -1;
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(pipefd[1], STDOUT_FILENO) < 0)
			_exit(127);
		if (keep_fd >= 0)
			fcntl(keep_fd, F_SETFD, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	p->out = pipefd[0];
	return 0;
}

/* Its wait status, after up to (ms); -1 if it is still running. */
static int finish(struct proc *p, int ms)
{
	int st;

	for (int waited = 0; waited <= ms; waited += 10) {
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			close(p->out);
			return st;
		}
		usleep(10000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	close(p->out);
	return -1;
}

/* The kernel's view of a TAP, from /proc/net/dev (this namespace's, where /sys may show
 * another's): frames it gave the program (its tx) and took from it (its rx). */
static void tap_view(const char *tap, char *buf, size_t size)
{
	char line[512];
	size_t len = strlen(tap);
	FILE *f = fopen("/proc/net/dev", "r");

	snprintf(buf, size, "%s: no counters in /proc/net/dev", tap);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line + strspn(line, " ");
		unsigned long long v[16];
		if (strncmp(p, tap, len) != 0 || p[len] != ':')
			continue;
		if (sscanf(p + len + 1,
		           "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
		           "%llu",
		           &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
		           &v[11], &v[12], &v[13], &v[14], &v[15]) == 16)
			snprintf(buf, size,
			         "%s: the kernel gave the program %llu frames (dropped %llu), took %llu "
			         "(dropped %llu)",
			         tap, v[9], v[11], v[1], v[3]);
		break;
	}
	fclose(f);
}

/* ping (ip) (n) times with (args): every request answered (mkt_ping_all); otherwise a failure
 * naming (what). */
static void ping_all(const char *what, int n, const char *args, const char *ip)
{
	struct mkt_ping r;
	bool ok = mkt_ping_all(&r, n, args, ip);

	check(ok,
	      "%s: ping -c %d %s: ping counted %ld replies to %ld requests; the kernel took in %ld, "
	      "and %ld with a bad checksum; exit status %d:\n%s",
	      what, n, args, r.received, r.sent, r.replies, r.bad, r.status, r.out);
}

/* For a responder that stops after (n) echoes: ping (n) times with (args), without a deadline
 * (with one, ping would send more than n while it waits for a late reply, and one the responder
 * lost would be made up for). The kernel must take in exactly (n) echo replies. ping's own count
 * can fall short when the last replies come after it stopped waiting (twice its longest round
 * trip): a note says so. */
static void ping_counted(const char *what, long n, const char *args)
{
	struct mkt_ping r;

	mkt_ping(&r, "ping -c %ld %s " IP, n, args);
	check(r.sent == n && r.replies == n && r.bad == 0,
	      "%s: ping -c %ld %s: the kernel took in %ld echo replies to %ld requests, and %ld with "
	      "a bad checksum:\n%s",
	      what, n, args, r.replies, r.sent, r.bad, r.out);
	if (r.received != n && r.replies == n)
		printf("note: %s: ping counted %ld of the %ld replies the kernel took in; the rest came "
		       "after it stopped waiting\n",
		       what, r.received, r.replies);
}

static long arping_responses(void)
{
	char out[4096];
	const char *p;
	long n;

	mkt_capture(out, sizeof(out), "arping -c 2 -w 5 -I " TAP " " IP);
	p = strstr(out, "Received ");
	return p != NULL && sscanf(p, "Received %ld response", &n) == 1 ? n : -1;
}

/* A responder on (dev) answers ping and arping, then SIGTERM stops it. */
static void responder(const char *dev, int keep_fd)
{
	char devarg[64];
	struct proc p;
	long rx;
	int st;
	char what[96];

	snprintf(devarg, sizeof(devarg), "--net:service0=%s", dev);
	char *argv[] = {NET, devarg, "--net-mac:service0=02:00:00:00:00:02", "--", IP, NULL};
	if (start(&p, argv, keep_fd) != 0 || !wait_for(&p, "ready\n", 5000)) {
		check(0, "%s: the responder starts (it printed: %s)", dev, p.text);
		finish(&p, 0);
		return;
	}
	rx = arping_responses();
	check(rx == 2, "%s: arping gets 2 answers, got %ld", dev, rx);
	snprintf(what, sizeof(what), "%s: ping", dev);
	ping_all(what, 5, "-i 0.2", IP);
	snprintf(what, sizeof(what), "%s: 300 quick pings", dev);
	ping_all(what, 300, "-q -i 0.002", IP);
	kill(p.pid, SIGTERM);
	st = finish(&p, 5000);
	check(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
	      "%s: SIGTERM stops the responder, which dies of it (wait status %#x)", dev, st);
	check(strstr(p.text, "FAIL") == NULL, "%s: the responder's own checks pass: %s", dev,
	      p.text);
}

/* With a count in its cmdline, it ends on its own. */
static void counted(void)
{
	struct proc p;
	int st;
	char *argv[] = {NET, "--net:service0=" TAP, "--", IP, "3", NULL};

	if (start(&p, argv, -1) != 0 || !wait_for(&p, "ready\n", 5000)) {
		check(0, "counted: the responder starts (it printed: %s)", p.text);
		finish(&p, 0);
		return;
	}
	ping_counted("counted", 3, "-i 0.2 -W 2");
	st = finish(&p, 5000);
	wait_for(&p, "requests", 0);
	check(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "counted: it exits with status 0 after 3 echoes (wait status %#x; it printed: %s)",
	      st, p.text);
}

/* The system calls the layer makes per echo when each request finds it waiting (one every 5 ms):
 * the frame's read, the reply's write, the program's read that finds the device empty, the wait
 * (io_uring_enter).
 * The look-ahead of solo5_yield() and the watcher task make no read of their own then: the device
 * is known to be empty (6 a reply before they knew it). Counted by strace. */
static void syscalls_per_echo(void)
{
	char file[] = "/tmp/mkt-solo5-strace-XXXXXX", line[512];
	struct proc p;
	long calls = -1;
	int fd = mkstemp(file);

	if (fd < 0 || mkt_sh("command -v strace >/dev/null") != 0) {
		check(0, "syscalls_per_echo: strace is needed (scripts/deps installs it)");
		if (fd >= 0) {
			close(fd);
			unlink(file);
		}
		return;
	}
	close(fd);
	/* LeakSanitizer refuses to run under ptrace: in a sanitizer build the responder would end
	 * with status 1 at exit. Its leaks are checked by every other test. */
	char *argv[] = {"/usr/bin/strace", "-E", "ASAN_OPTIONS=detect_leaks=0", "-f", "-c", "-o", file,
	                "-e", "trace=read,readv,write,io_uring_enter,epoll_wait,epoll_ctl", NET,
	                "--net:service0=" TAP, "--", IP, "200", NULL};
	if (start(&p, argv, -1) != 0 || !wait_for(&p, "ready\n", 10000)) {
		check(0, "syscalls_per_echo: the responder starts (it printed: %s)", p.text);
		finish(&p, 0);
		unlink(file);
		return;
	}
	ping_counted("syscalls_per_echo", 200, "-q -i 0.005 -W 2");
	int st = finish(&p, 10000);
	FILE *f = fopen(file, "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		double pct, secs;
		long usecs, n;
		if (sscanf(line, "%lf %lf %ld %ld", &pct, &secs, &usecs, &n) == 4 && strstr(line, "total"))
			calls = n;
	}
	if (f != NULL)
		fclose(f);
	unlink(file);
	check(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "syscalls_per_echo: after 200 echoes it ends with status 0 (wait status %#x)", st);
	/* On epoll the figure is only shown: that backend also polls (epoll_wait with no timeout)
	 * between rounds, a number of calls that depends on timing. */
	const char *be = getenv("MKHOST_BACKEND");
	printf("syscalls_per_echo: %ld reads, writes and waits for 200 echoes\n", calls);
	if (be == NULL || strcmp(be, "epoll") != 0)
		check(calls > 0 && calls <= 200 * 9 / 2,
		      "syscalls_per_echo: at most 4.5 reads, writes and waits per echo, made %ld "
		      "for 200",
		      calls);
}

/* Start the responder with (args) after its program name; 0 once it is ready. */
static int start_responder(struct proc *p, char **args, const char *what)
{
	char *argv[16] = {NET};
	int n = 1;

	while (args[n - 1] != NULL && n < 15)
		argv[n] = args[n - 1], n++;
	argv[n] = NULL;
	if (start(p, argv, -1) != 0 || !wait_for(p, "ready\n", 5000)) {
		check(0, "%s: the responder starts (it printed: %s)", what, p->text);
		finish(p, 0);
		return -1;
	}
	return 0;
}

/* Solo5's own ping-serve test: 100,000 ping -f, every one answered, and in "limit" mode the
 * unikernel ends on its own, with status 0, after the last. */
static void flood_limit(void)
{
	struct proc p;
	int st;
	char *args[] = {"--net:service0=" TAP, "--", IP, "limit", NULL};

	if (start_responder(&p, args, "flood") != 0)
		return;
	ping_counted("flood: 100,000 ping -f", 100000, "-f -q -W 1");
	wait_for(&p, "requests", 10000);
	st = finish(&p, 10000);
	check(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "flood: in limit mode it exits with status 0 after 100,000 (wait status %#x; it "
	      "printed: %s)",
	      st, p.text);
	check(strstr(p.text, "answered 100000 echo") != NULL, "flood: it counted 100,000: %s",
	      p.text);
}

/* Two devices, two TAPs, two floods at once, each ping with a deadline so that it counts every
 * reply: 20,000 each, and the kernel took in one echo reply for each request sent. (Without a
 * deadline, a ping stops waiting twice its longest round trip after its last request, and under
 * load it now and then missed a last reply that the kernel took in just after.) */
static void two_devices(void)
{
	struct proc p;
	struct mkt_ping r;
	char *args[] = {
	    "--net:service0=" TAP, "--net:service1=" TAP1, "--", IP, "second=" IP1, NULL};

	/* The two outputs go to a directory of this run's own: $$ cannot name them, as every run
	 * of this test has the same pids in its own pid namespace, and runs go in parallel. */
	char dir[] = "/tmp/mkt-two-XXXXXX", view[2][256];

	if (mkdtemp(dir) == NULL) {
		check(0, "two devices: mkdtemp: %s", strerror(errno));
		return;
	}
	if (start_responder(&p, args, "two devices") != 0) {
		rmdir(dir);
		return;
	}
	mkt_ping(&r,
	         "sh -c 'ping -f -q -c 20000 -w 60 " IP " >%s/0 2>&1 & a=$!; "
	         "ping -f -q -c 20000 -w 60 " IP1 " >%s/1 2>&1; b=$?; wait $a; a=$?; "
	         "cat %s/0 %s/1; rm -rf %s; exit $((a | b))'",
	         dir, dir, dir, dir, dir);
	tap_view(TAP, view[0], sizeof(view[0]));
	tap_view(TAP1, view[1], sizeof(view[1]));
	/* with a deadline, a ping ends with status 0 only once it counted its 20,000 */
	check(r.status == 0 && r.replies == r.sent && r.bad == 0,
	      "two devices: two floods of 20,000: the pings counted %ld replies to %ld requests "
	      "(exit status %d); the kernel took in %ld, and %ld with a bad checksum:\n%s\n%s\n%s",
	      r.received, r.sent, r.status, r.replies, r.bad, r.out, view[0], view[1]);
	kill(p.pid, SIGTERM);
	finish(&p, 5000);
	check(strstr(p.text, "FAIL") == NULL, "two devices: the responder's checks pass: %s",
	      p.text);
}

/* Jumbo frames: the responder reads the TAP's MTU of 9000 and answers 9000-byte packets, which
 * may not be fragmented. */
static void mtu_9000(void)
{
	char out[4096];
	struct proc p;
	long rx;
	char *args[] = {"--net:service0=" TAP, "--", IP, NULL};

	if (mkt_sh("ip link set " TAP " mtu 9000") != 0) {
		check(0, "mtu 9000: the TAP takes it");
		return;
	}
	if (start_responder(&p, args, "mtu 9000") == 0) {
		ping_all("mtu 9000: pings of 9000 bytes", 200, "-q -M do -s 8972 -i 0.002", IP);
		long sent;
		mkt_capture(out, sizeof(out), "ping -q -M do -s 8973 -c 2 -i 0.2 -W 1 " IP);
		if (mkt_ping_summary(out, &sent, &rx) == 0)
			rx = -1;
		check(rx <= 0, "mtu 9000: a packet of 9001 bytes is not sent (got %ld)", rx);
		kill(p.pid, SIGTERM);
		finish(&p, 5000);
		check(strstr(p.text, "FAIL") == NULL, "mtu 9000: the responder's checks pass: %s",
		      p.text);
	}
	mkt_sh("ip link set " TAP " mtu 1500");
}

/* A patterned flood: ping fills every request with 0xdeadbeef; then, out of flood mode (where
 * ping checks each reply byte by byte and says "wrong data byte" otherwise), the same again. */
static void patterned(void)
{
	struct proc p;
	char *args[] = {"--net:service0=" TAP, "--", IP, NULL};

	if (start_responder(&p, args, "patterned") != 0)
		return;
	ping_all("patterned: a flood", 20000, "-f -q -p deadbeef -s 1400", IP);
	/* with a deadline, ping may send more than 2,000 (see ping_all) */
	struct mkt_ping r;
	mkt_ping(&r,
	         "ping -c 2000 -w 60 -i 0.002 -p deadbeef -s 1400 " IP
	         " | awk '/wrong data/ { w++ } /packets transmitted/ { print } "
	         "END { print \"wrong=\" w + 0 }'");
	check(r.received >= 2000 && r.replies == r.sent && r.bad == 0,
	      "patterned: 2,000 checked pings: ping counted %ld replies to %ld requests; the kernel "
	      "took in %ld, and %ld with a bad checksum: %s",
	      r.received, r.sent, r.replies, r.bad, r.out);
	check(strstr(r.out, "wrong=0") != NULL, "patterned: every reply intact: %s", r.out);
	kill(p.pid, SIGTERM);
	finish(&p, 5000);
}

static int open_tap_fd(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *prefix = argc > 1 ? argv[1] : "solo5-";
	char out[4096];
	int st;

	snprintf(NET, sizeof(NET), "%s/%snet", MK_SOLO5_DIR, prefix);
	snprintf(ABSENT, sizeof(ABSENT), "%s/%sabsent", MK_SOLO5_DIR, prefix);
	mkt_enter_netns();
	if (mkt_tap_create(TAP, 0, 1) != 0 || mkt_sh("ip addr add 10.0.0.1/24 dev " TAP) != 0) {
		fprintf(stderr, "cannot set up " TAP "\n");
		return 1;
	}
	if (mkt_sh("command -v ping >/dev/null && command -v arping >/dev/null") != 0)
		mkt_skip_missing("ping and arping (iputils) are needed");

	responder(TAP, -1);
	counted();
	syscalls_per_echo();
	flood_limit();
	patterned();
	mtu_9000();
	if (mkt_tap_create(TAP1, 0, 1) != 0 || mkt_sh("ip addr add 10.0.1.1/24 dev " TAP1) != 0)
		check(0, "cannot set up " TAP1);
	else
		two_devices();
	mkt_tap_delete(TAP1);

	int fd = open_tap_fd(TAP);
	check(fd >= 0, "the TAP opens for @FD: %s", strerror(errno));
	if (fd >= 0) {
		char dev[16];
		if (fd != 3) {
			dup2(fd, 3);
			close(fd);
			fd = 3;
		}
		snprintf(dev, sizeof(dev), "@%d", fd);
		responder(dev, fd);
		close(fd);
	}

	/* The kernel lets go of a TAP a while after the io_uring process that held it exited. */
	for (int i = 0; i < 50; i++) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "%s --net:service0=" TAP " -- given", ABSENT);
		st = mkt_capture(out, sizeof(out), "%s", cmd);
		if (strstr(out, "attached by another process") == NULL)
			break;
		usleep(100000);
	}
	check(st == 0 && strstr(out, "absent: ok") != NULL,
	      "acquiring a given device once, and not as a block device (status %d): %s", st, out);

	mkt_tap_delete(TAP);
	if (failures == 0)
		printf("solo5 net: ok\n");
	return failures ? 1 : 0;
}
