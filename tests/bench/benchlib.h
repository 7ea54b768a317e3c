/* Helpers shared by the benchmark programs: clocks, CPU time, raw TAP descriptors for the
 * baselines, test frames, bridge-port readiness, and the result lines scripts/bench collects.
 *
 * Every benchmark prints its figures as JSON lines on stdout, one per figure:
 *   {"workload":"tx","variant":"60","impl":"read","metric":"frames_per_s","value":3.1e6}
 * scripts/bench adds the run number and builds the table, the JSON file and the plot. Progress
 * and errors go to stderr. */
#ifndef MKBENCH_BENCHLIB_H
#define MKBENCH_BENCHLIB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The EtherType of benchmark frames (IEEE "local experimental"), so nothing in the kernel
 * handles them; an end-of-stream marker uses the other one. */
#define BENCH_ETHERTYPE     0x88b5
#define BENCH_ETHERTYPE_END 0x88b6

/* The MAC addresses used by the two ends of a bridge: A is the side under test, B the peer. */
extern const uint8_t bench_mac_a[6], bench_mac_b[6];

uint64_t bench_now_ns(void);
/* User + system CPU time of this process (children excluded). */
uint64_t bench_cpu_ns(void);

/* Attach to TAP (iface) without the library: blocking unless (nonblock). Exits on failure. */
int bench_tap_open(const char *iface, int nonblock);

/* Fill (frame) with a benchmark frame of (len) bytes from (src) to (dst), sequence number (seq)
 * at byte 14, EtherType (type). */
void bench_frame(uint8_t *frame, size_t len, const uint8_t dst[6], const uint8_t src[6],
                 uint16_t type, uint64_t seq);
uint16_t bench_frame_type(const uint8_t *frame);
uint64_t bench_frame_seq(const uint8_t *frame);

/* Wait until the bridge port (iface) is forwarding (a TAP becomes one only once a process has
 * attached to it), at most (timeout_ms). Returns 0, or -1 on timeout. A non-bridge port returns
 * 0 at once. */
int bench_wait_forwarding(const char *iface, int timeout_ms);

/* A counter of /sys/class/net/IFACE/statistics/NAME, or 0 when it cannot be read. */
uint64_t bench_if_stat(const char *iface, const char *name);

/* Pin the calling thread to (cpu); cpu < 0 leaves it alone. */
void bench_pin(int cpu);

/* Print one result line. (variant) may be "" when the workload has none. */
void bench_result(const char *workload, const char *variant, const char *impl, const char *metric,
                  double value);

/* Parse an unsigned integer argument or exit with a message naming (what). */
unsigned long bench_ulong(const char *s, const char *what);

/* Exit with status 2 after printing the message on stderr, prefixed with the program name. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Exit the process from a SIGALRM after (seconds): every benchmark is bounded in time even if a
 * frame it waits for never comes. */
void bench_deadline(unsigned seconds);

extern const char *bench_prog;

#endif
