#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <stdbool.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/utsname.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>
#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

/* Skip (exit MKT_SKIP) with the reason; under CI=true fail instead (exit 1), saying (why_fail). */
static void __attribute__((noreturn))
skip_or_fail(const char *why_fail, const char *fmt, va_list ap)
{
	const char *ci = getenv("CI");
	bool fail = ci != NULL && strcmp(ci, "true") == 0;

	fprintf(stderr, "%s: ", fail ? "FAIL" : "SKIP");
	vfprintf(stderr, fmt, ap);
	if (fail)
		fprintf(stderr, " (CI=true: %s, so this skip is a failure)", why_fail);
	fputc('\n', stderr);
	exit(fail ? 1 : MKT_SKIP);
}

void mkt_skip_missing(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	skip_or_fail("scripts/deps installs it", fmt, ap);
}

static void __attribute__((noreturn, format(printf, 1, 2))) skip_no_netns(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	skip_or_fail("scripts/test gives the TAP suites a namespace, as root and as nobody", fmt,
	             ap);
}

/* The value MKT_LAB_FOR has in the run of a suite that mkt_enter_netns started through
 * mkhost-lab: the pid of the run that asked for it. */
#define LAB_FOR "MKT_LAB_FOR"

/* Run this program again inside a throwaway network namespace made by mkhost-lab, in a user
 * namespace: mkhost-lab's own refusal sentence says why when the machine allows none, and then
 * the suite skips (exit MKT_SKIP), or fails under CI=true. Under valgrind, valgrind runs the
 * program inside too, with the options the valgrind setup gives in MKT_VALGRIND. */
static void __attribute__((noreturn)) reexec_in_lab(void)
{
	static char self[4096], cmdline[65536], pid[32];
	char *argv[256];
	int argc = 0, n_args = 0;
	const char *ci = getenv("CI");
	bool ci_true = ci != NULL && strcmp(ci, "true") == 0;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, cmdline, sizeof(cmdline) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0 || len <= 0) {
		perror("mkt_enter_netns: reading /proc/self/exe and /proc/self/cmdline");
		exit(1);
	}
	self[n] = '\0';
	cmdline[len] = '\0';
	if (access(MKT_LAB, X_OK) != 0)
		skip_no_netns("no privilege for a network namespace here, and %s is missing (%s): "
		              "build it (ninja -C build), or run the suite as root",
		              MKT_LAB, strerror(errno));

	argv[argc++] = MKT_LAB;
	argv[argc++] = "--refused";
	argv[argc++] = ci_true ? "1" : "77";
	argv[argc++] = "--";
#ifdef MK_HAVE_VALGRIND
	static char wrapper[4096];
	if (RUNNING_ON_VALGRIND) {
		const char *opts = getenv("MKT_VALGRIND");
		snprintf(wrapper, sizeof(wrapper), "%s", opts != NULL ? opts : "valgrind");
		for (char *save, *w = strtok_r(wrapper, " ", &save); w != NULL && argc < 200;
		     w = strtok_r(NULL, " ", &save))
			argv[argc++] = w;
	}
#endif
	argv[argc++] = self;
	/* The arguments after argv[0], as this run was given them. */
	for (char *a = cmdline + strlen(cmdline) + 1; a < cmdline + len && argc < 254;
	     a += strlen(a) + 1, n_args++)
		argv[argc++] = a;
	argv[argc] = NULL;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv(LAB_FOR, pid, 1);
	alarm(0); /* a timer survives exec: mkhost-lab is not to get it; the run inside sets its own */
	fflush(NULL);
	execv(MKT_LAB, argv);
	skip_no_netns("cannot run %s: %s", MKT_LAB, strerror(errno));
}

void mkt_enter_netns(void)
{
	if (getenv(LAB_FOR) != NULL) {
		/* This is the run inside the lab: a network namespace of its own with loopback up
		 * and no other interface. */
		unsetenv(LAB_FOR);
		if (getenv("MKHOST_LAB") == NULL) {
			fprintf(stderr, "mkt_enter_netns: " LAB_FOR " is set outside mkhost-lab\n");
			exit(1);
		}
		if (access("/dev/net/tun", R_OK | W_OK) != 0)
			skip_no_netns("inside %s, /dev/net/tun cannot be opened: %s",
			              getenv("MKHOST_LAB"), strerror(errno));
		return;
	}
	if (access("/dev/net/tun", F_OK) != 0)
		skip_no_netns("/dev/net/tun is missing: load the module (modprobe tun), or in a "
		              "container pass the device (docker run --device /dev/net/tun)");
	/* Root (or one with CAP_SYS_ADMIN in its user namespace) makes the namespace itself. */
	if (unshare(CLONE_NEWNET) != 0) {
		if (errno != EPERM)
			skip_no_netns("unshare(CLONE_NEWNET): %s", strerror(errno));
		reexec_in_lab();
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0)
		skip_no_netns("/dev/net/tun cannot be opened: %s", strerror(errno));
	if (mkt_sh("ip link set lo up") != 0)
		mkt_skip_missing("'ip' from iproute2 is needed");
}

/* Whether (uid) is mapped in this process's user namespace. */
static bool uid_mapped(unsigned long uid)
{
	FILE *f = fopen("/proc/self/uid_map", "r");
	unsigned long inside, outside, count;
	bool mapped = false;

	while (f != NULL && !mapped && fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
		mapped = uid >= inside && uid - inside < count;
	if (f != NULL)
		fclose(f);
	return mapped;
}

void mkt_add_test_as_nobody(TCase *tc, const TTest *test)
{
	if (uid_mapped(65534)) {
		tcase_add_test(tc, test);
		return;
	}
	fprintf(stderr,
	        "not run here: %s, which becomes uid 65534: this user namespace (%s) does not "
	        "map it; the suite's run as root runs it\n",
	        test->name, getenv("MKHOST_LAB") ? getenv("MKHOST_LAB") : "not mkhost-lab's");
}

int mkt_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int mkt_tap_create(const char *name, unsigned mtu, int up)
{
	if (mkt_sh("ip tuntap add dev %s mode tap", name) != 0)
		return -1;
	if (mtu && mkt_sh("ip link set dev %s mtu %u", name, mtu) != 0)
		return -1;
	if (up && mkt_sh("ip link set dev %s up", name) != 0)
		return -1;
	return 0;
}

void mkt_tap_delete(const char *name)
{
	mkt_sh("ip link del dev %s 2>/dev/null", name);
}

int mkt_packet_socket(const char *ifname, int timeout_ms)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0)
		return -1;
	struct sockaddr_ll sll = {
	    .sll_family = AF_PACKET,
	    .sll_protocol = htons(ETH_P_ALL),
	    .sll_ifindex = (int)if_nametoindex(ifname),
	};
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	if (sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int mkt_run(mk_main_fn main, void *arg, ...)
{
	char *argv[64] = {"test"};
	int argc = 1;
	va_list ap;

	va_start(ap, arg);
	for (char *s; argc < 63 && (s = va_arg(ap, char *)) != NULL;)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;
	return mk_run(argc, argv, main, arg);
}

int mkt_tun_attach(const char *name, short flags)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR);

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = flags;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

long mkt_icmp_counter(const char *name)
{
	char names[2048], values[2048];
	long v = -1;
	FILE *f = fopen("/proc/net/snmp", "r");

	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
		if (strncmp(names, "Icmp: ", 6) != 0 || strncmp(values, "Icmp: ", 6) != 0)
			continue;
		char *sn, *sv;
		char *n = strtok_r(names + 6, " \n", &sn), *val = strtok_r(values + 6, " \n", &sv);
		for (; n && val; n = strtok_r(NULL, " \n", &sn), val = strtok_r(NULL, " \n", &sv)) {
			if (strcmp(n, name) == 0) {
				v = strtol(val, NULL, 10);
				break;
			}
		}
		break;
	}
	fclose(f);
	return v;
}

static int vcapture(char *out, size_t size, const char *fmt, va_list ap)
{
	char cmd[2048], full[2100], rest[256];
	size_t n = 0, r;

	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	snprintf(full, sizeof(full), "timeout 120 %s 2>&1", cmd);
	FILE *p = popen(full, "r");
	if (p == NULL) {
		snprintf(out, size, "popen: %s", strerror(errno));
		return -1;
	}
	while (n + 1 < size && (r = fread(out + n, 1, size - 1 - n, p)) > 0)
		n += r;
	out[n] = '\0';
	while (fread(rest, 1, sizeof(rest), p) > 0)
		;
	int st = pclose(p);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int mkt_capture(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int st = vcapture(out, size, fmt, ap);
	va_end(ap);
	return st;
}

int mkt_ping_summary(const char *out, long *sent, long *received)
{
	int found = 0;

	*sent = *received = -1;
	for (const char *p = out; (p = strstr(p, " packets transmitted, ")) != NULL; p++) {
		const char *line = p;
		long tx, rx;
		while (line > out && line[-1] != '\n')
			line--;
		if (sscanf(line, "%ld packets transmitted, %ld received", &tx, &rx) != 2)
			continue;
		*sent = (found ? *sent : 0) + tx;
		*received = (found ? *received : 0) + rx;
		found++;
	}
	return found;
}

void mkt_ping(struct mkt_ping *r, const char *fmt, ...)
{
	va_list ap;
	long replies = mkt_icmp_counter("InEchoReps"), bad = mkt_icmp_counter("InCsumErrors");

	va_start(ap, fmt);
	r->status = vcapture(r->out, sizeof(r->out), fmt, ap);
	va_end(ap);
	mkt_ping_summary(r->out, &r->sent, &r->received);
	for (int waited = 0;; waited += 5) {
		long now = mkt_icmp_counter("InEchoReps");
		r->replies = replies >= 0 && now >= 0 ? now - replies : -1;
		if (r->replies < 0 || r->replies >= r->sent || waited >= 5000)
			break;
		usleep(5000);
	}
	long now = mkt_icmp_counter("InCsumErrors");
	r->bad = bad >= 0 && now >= 0 ? now - bad : -1;
}

bool mkt_ping_all(struct mkt_ping *r, long n, const char *args, const char *ip)
{
	mkt_ping(r, "ping -c %ld -w 60 %s %s", n, args, ip);
	return r->received >= n && r->status == 0 && r->replies == r->sent && r->bad == 0;
}

int mkt_link_ready(const char *ifname, int timeout_ms)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return 0;
	for (int waited = 0; waited < timeout_ms; waited++) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
		if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 &&
		    (ifr.ifr_flags & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING)) {
			close(s);
			usleep(
			    20000); /* the operational state is set just before the queue starts */
			return 1;
		}
		usleep(1000);
	}
	close(s);
	return 0;
}

int mkt_wait_child(pid_t pid, int timeout_ms)
{
	int st = 0;

	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return st;
}

int mkt_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

unsigned long long mkt_cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

void mkt_drop_privileges(void)
{
	if (geteuid() == 0) {
		static char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *args[] = {
		    "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", self,
		    NULL};
		if (n <= 0) {
			perror("readlink /proc/self/exe");
			exit(1);
		}
		self[n] = '\0';
		setenv("HOME", "/tmp", 1); /* nobody's home does not exist; tshark wants one */
		execvp("setpriv", args);
		fprintf(stderr, "SKIP: running as root and setpriv (util-linux) is missing: %s\n",
		        strerror(errno));
		exit(MKT_SKIP);
	}
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "CapEff:", 7) == 0 && strtoull(line + 7, NULL, 16) != 0) {
			fprintf(stderr, "the suite must run without capabilities: %s", line);
			exit(1);
		}
	if (f != NULL)
		fclose(f);
	fprintf(stderr, "running as uid %d, no capabilities\n", (int)geteuid());
}

char mkt_failed[512];

void mkt_failf(int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (mkt_failed[0])
		return;
	n = snprintf(mkt_failed, sizeof(mkt_failed), "line %d: ", line);
	va_start(ap, fmt);
	vsnprintf(mkt_failed + n, sizeof(mkt_failed) - (size_t)n, fmt, ap);
	va_end(ap);
}

void mkt_run_captured(int fd, int (*fn)(void *), void *arg, struct mkt_captured *c)
{
	int p[2];
	size_t len = 0;

	ck_assert_int_eq(pipe(p), 0);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		alarm(20);
		close(p[0]);
		dup2(p[1], fd);
		close(p[1]);
		int r = fn(arg);
		fflush(NULL);
		_exit(r);
	}
	close(p[1]);
	for (;;) {
		char scratch[4096];
		bool keep = len < sizeof(c->text) - 1;
		char *dst = keep ? c->text + len : scratch;
		size_t room = keep ? sizeof(c->text) - 1 - len : sizeof(scratch);
		ssize_t n = read(p[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (keep)
			len += (size_t)n;
	}
	c->text[len] = '\0';
	close(p[0]);
	while (waitpid(pid, &c->status, 0) < 0)
		ck_assert_int_eq(errno, EINTR);
}

int mkt_run_suite(Suite *s, bool fork_always)
{
	SRunner *sr = srunner_create(s);
	int failed;

	if (fork_always)
		srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

static int probe_main(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	return 0;
}

void mkt_skip_without_backend(void)
{
	char *argv[] = {"probe", NULL};

	if (mk_run(1, argv, probe_main, NULL) == -ENOSYS) {
		fprintf(stderr, "SKIP: MKHOST_BACKEND=%s is unavailable on this system\n",
		        getenv("MKHOST_BACKEND"));
		exit(MKT_SKIP);
	}
}

bool mkt_kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}
