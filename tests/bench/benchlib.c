#include "benchlib.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

const char *bench_prog = "bench";
const uint8_t bench_mac_a[6] = {0x02, 0x6d, 0x6b, 0x00, 0x00, 0x0a};
const uint8_t bench_mac_b[6] = {0x02, 0x6d, 0x6b, 0x00, 0x00, 0x0b};

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", bench_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

int bench_tap_open(const char *iface, int nonblock)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));

	if (fd < 0)
		bench_die("open /dev/net/tun: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	/* A TAP that a process with an io_uring just released stays busy until the kernel has torn
	 * the ring down: a few ms, seconds on a loaded machine. */
	for (int i = 0; ioctl(fd, TUNSETIFF, &ifr) != 0; i++) {
		if (errno != EBUSY || i == 2000)
			bench_die("attach to TAP %s: %s", iface, strerror(errno));
		usleep(5000);
	}
	ioctl(fd, TUNSETOFFLOAD, 0); /* as mkhost does: no frame larger than the MTU */
	return fd;
}

void bench_frame(uint8_t *frame, size_t len, const uint8_t dst[6], const uint8_t src[6],
                 uint16_t type, uint64_t seq)
{
	memset(frame, 0x5a, len);
	memcpy(frame, dst, 6);
	memcpy(frame + 6, src, 6);
	frame[12] = (uint8_t)(type >> 8);
	frame[13] = (uint8_t)type;
	if (len >= 22)
		memcpy(frame + 14, &seq, 8);
}

uint16_t bench_frame_type(const uint8_t *frame)
{
	return (uint16_t)(frame[12] << 8 | frame[13]);
}

uint64_t bench_frame_seq(const uint8_t *frame)
{
	uint64_t seq;

	memcpy(&seq, frame + 14, 8);
	return seq;
}

static int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

int bench_wait_forwarding(const char *iface, int timeout_ms)
{
	char path[256], buf[32];
	uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;

	snprintf(path, sizeof(path), "/sys/class/net/%s/brport/state", iface);
	while (read_small_file(path, buf, sizeof(buf)) == 0) {
		if (atoi(buf) == 3) /* BR_STATE_FORWARDING */
			return 0;
		if (bench_now_ns() > end)
			return -1;
		usleep(1000);
	}
	return 0;
}

uint64_t bench_if_stat(const char *iface, const char *name)
{
	char path[256], buf[32];

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s", iface, name);
	if (read_small_file(path, buf, sizeof(buf)) != 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

void bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		bench_die("pin to CPU %d: %s", cpu, strerror(errno));
}

void bench_result(const char *workload, const char *variant, const char *impl, const char *metric,
                  double value)
{
	printf("{\"workload\":\"%s\",\"variant\":\"%s\",\"impl\":\"%s\",\"metric\":\"%s\","
	       "\"value\":%.6g}\n",
	       workload, variant, impl, metric, value);
	fflush(stdout);
}

unsigned long bench_ulong(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		bench_die("bad %s '%s'", what, s);
	return v;
}

static void on_alarm(int sig)
{
	static const char msg[] = "benchmark deadline passed; giving up\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do: we are leaving */
	}
	_exit(3);
}

void bench_deadline(unsigned seconds)
{
	signal(SIGALRM, on_alarm);
	alarm(seconds);
}
