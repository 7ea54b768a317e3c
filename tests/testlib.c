#include "testlib.h"

#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

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
	if (mkt_sh("ip link set lo up") != 0) {
		fprintf(stderr, "SKIP: 'ip' from iproute2 is needed\n");
		exit(MKT_SKIP);
	}
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
