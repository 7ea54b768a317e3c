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
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

void mkt_skip_missing(const char *fmt, ...)
{
	const char *ci = getenv("CI");
	bool fail = ci != NULL && strcmp(ci, "true") == 0;
	va_list ap;

	fprintf(stderr, "%s: ", fail ? "FAIL" : "SKIP");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (fail)
		fprintf(stderr, " (CI=true: scripts/deps installs it, so this skip is a failure)");
	fputc('\n', stderr);
	exit(fail ? 1 : MKT_SKIP);
}

void mkt_enter_netns(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root to create a network namespace and TAP devices\n");
		exit(MKT_SKIP);
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		fprintf(stderr, "SKIP: /dev/net/tun is missing (modprobe tun)\n");
		exit(MKT_SKIP);
	}
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "SKIP: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		exit(MKT_SKIP);
	}
	if (mkt_sh("ip link set lo up") != 0)
		mkt_skip_missing("'ip' from iproute2 is needed");
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
