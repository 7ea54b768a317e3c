/* The net test unikernel (solo5-net) against the Linux network stack, on a TAP in a private
 * network namespace: ping and arping get their answers, many pings in a row all come back, the
 * count in its cmdline ends it with status 0, SIGTERM stops it cleanly (it dies of SIGTERM, as a
 * tender would), and the same works on a TAP handed over as @FD. Then solo5-absent checks
 * acquiring a device that was given. Skips (77) without root. */
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

#define NET    MK_SOLO5_DIR "/solo5-net"
#define ABSENT MK_SOLO5_DIR "/solo5-absent"
#define TAP    "tap0"
#define IP     "10.0.0.2"

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

/* Run (cmd) through the shell with its output in (out); its exit status, or -1. */
static int capture(char *out, size_t size, const char *cmd)
{
	char full[512];
	size_t n = 0, r;
	FILE *p;

	snprintf(full, sizeof(full), "timeout 60 %s 2>&1", cmd);
	p = popen(full, "r");
	if (p == NULL)
		return -1;
	while (n + 1 < size && (r = fread(out + n, 1, size - 1 - n, p)) > 0)
		n += r;
	out[n] = '\0';
	while (fread(full, 1, sizeof(full), p) > 0)
		;
	int st = pclose(p);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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

static long ping_received(const char *cmd)
{
	char out[8192];
	long tx, rx;
	const char *p;

	capture(out, sizeof(out), cmd);
	p = strstr(out, " packets transmitted, ");
	if (p == NULL)
		return -1;
	while (p > out && p[-1] != '\n')
		p--;
	return sscanf(p, "%ld packets transmitted, %ld received", &tx, &rx) == 2 ? rx : -1;
}

static long arping_responses(void)
{
	char out[4096];
	const char *p;
	long n;

	capture(out, sizeof(out), "arping -c 2 -w 5 -I " TAP " " IP);
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

	snprintf(devarg, sizeof(devarg), "--net:service0=%s", dev);
	char *argv[] = {NET, devarg, "--net-mac:service0=02:00:00:00:00:02", "--", IP, NULL};
	if (start(&p, argv, keep_fd) != 0 || !wait_for(&p, "ready\n", 5000)) {
		check(0, "%s: the responder starts (it printed: %s)", dev, p.text);
		finish(&p, 0);
		return;
	}
	rx = arping_responses();
	check(rx == 2, "%s: arping gets 2 answers, got %ld", dev, rx);
	rx = ping_received("ping -c 5 -i 0.2 -W 2 " IP);
	check(rx == 5, "%s: ping gets 5 answers, got %ld", dev, rx);
	rx = ping_received("ping -q -c 300 -i 0.002 -W 2 " IP);
	check(rx == 300, "%s: 300 quick pings all come back, got %ld", dev, rx);
	kill(p.pid, SIGTERM);
	st = finish(&p, 5000);
	check(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
	      "%s: SIGTERM stops the responder, which dies of it (wait status %#x)", dev, st);
	check(strstr(p.text, "FAIL") == NULL, "%s: the responder's own checks pass: %s", dev, p.text);
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
	long rx = ping_received("ping -c 3 -i 0.2 -W 2 " IP);
	check(rx == 3, "counted: ping gets 3 answers, got %ld", rx);
	st = finish(&p, 5000);
	wait_for(&p, "requests", 0);
	check(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "counted: it exits with status 0 after 3 echoes (wait status %#x; it printed: %s)", st,
	      p.text);
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

int main(void)
{
	char out[4096];
	int st;

	mkt_enter_netns();
	if (mkt_tap_create(TAP, 0, 1) != 0 || mkt_sh("ip addr add 10.0.0.1/24 dev " TAP) != 0) {
		fprintf(stderr, "cannot set up " TAP "\n");
		return 1;
	}
	if (mkt_sh("command -v ping >/dev/null && command -v arping >/dev/null") != 0)
		mkt_skip_missing("ping and arping (iputils) are needed");

	responder(TAP, -1);
	counted();

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
		st = capture(out, sizeof(out), ABSENT " --net:service0=" TAP " -- given");
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
