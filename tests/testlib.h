/* Helpers shared by the Check suites: network namespaces, TAP interfaces, running mk_run. */
#ifndef MKHOST_TESTLIB_H
#define MKHOST_TESTLIB_H

#include <stddef.h>
#include <sys/types.h>
#include <check.h>
#include <stdbool.h>
#include <string.h>

#include "mkhost.h"

#define MKT_SKIP 77 /* meson's exit code for a skipped test */

/* Skip the suite (exit MKT_SKIP) with the reason (fmt) on stderr, because something that
 * scripts/deps installs is missing: a package, a program or an optional library mkhost was built
 * without. Under CI=true such a skip is a failure instead (exit 1), so that a missing install
 * step cannot hide behind a green run. */
void mkt_skip_missing(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Enter a private network namespace with loopback up, for the tests that need TAP interfaces.
 * Root makes it itself (unshare). Anyone else gets it from mkhost-lab (build/mkhost-lab), in a user
 * namespace: the program is executed again inside one, with the same arguments (under valgrind,
 * valgrind too), and mkt_enter_netns returns there. Where neither works (no /dev/net/tun, one
 * that this user may not open, user namespaces off), it exits with MKT_SKIP and mkhost-lab's
 * sentence saying why and what to do; under CI=true that skip is a failure (exit 1). */
void mkt_enter_netns(void);

/* Add (test), one that switches from root to user nobody (uid 65534) to show what an unprivileged
 * process can do, to (tc) where that can be done: uid 65534 exists in this process's user
 * namespace. Elsewhere (the user namespace mkhost-lab makes for a plain user maps one uid only)
 * it is left out and a line on stderr says so: the suite's run as root runs it. */
void mkt_add_test_as_nobody(TCase *tc, const TTest *test);

/* Run a shell command built from (fmt); returns its exit status, or -1. */
int mkt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Create the TAP interface (name) with (mtu), up or down, owned by root; 0 on success. */
int mkt_tap_create(const char *name, unsigned mtu, int up);
void mkt_tap_delete(const char *name);

/* An AF_PACKET socket bound to (ifname), receiving every frame of that interface, with a receive
 * timeout of (timeout_ms); -1 on failure. Frames written to a TAP by mkhost arrive here, and
 * frames sent here are read by mkhost. */
int mkt_packet_socket(const char *ifname, int timeout_ms);

/* mk_run() on a NULL-terminated list of argument strings (argv[0] is supplied). */
int mkt_run(mk_main_fn main, void *arg, ...);
/* mkt_run(fn, arg, arguments..., NULL), then assert that no check inside a task failed
 * (mkt_failed) and that main returned 0. */
#define MKT_RUN_OK(fn, arg, ...)                                                                   \
	do {                                                                                       \
		int r_ = mkt_run(fn, arg, __VA_ARGS__);                                            \
		ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);                                   \
		ck_assert_int_eq(r_, 0);                                                           \
	} while (0)

/* Started as root: execute this program again as nobody with no capability (setpriv), so that
 * the suite proves it needs no privilege; exits with MKT_SKIP when setpriv is missing. Not root:
 * check that no capability is left (exit 1 otherwise). */
void mkt_drop_privileges(void);

/* Attach a descriptor to the TUN/TAP interface (name) with TUNSETIFF (flags), as another program
 * would (it creates the interface if it is missing); the descriptor, or -errno. */
int mkt_tun_attach(const char *name, short flags);

/* The counter (name) of the "Icmp:" lines of /proc/net/snmp, this network namespace's, or -1:
 * InEchoReps, the echo replies the kernel took in (it counts one only once its checksum is
 * right); InCsumErrors, the ICMP messages it found with a bad checksum. */
long mkt_icmp_counter(const char *name);

/* Run the command (fmt, ...) through the shell, bounded by timeout(1) at 120 s, with its stdout
 * and stderr in (out), cut at (size) - 1 bytes (the rest is read and dropped, so the command
 * cannot block on a full pipe); its exit status, or -1 when it did not exit. */
int mkt_capture(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The summaries ping printed in (out) ("N packets transmitted, M received"), summed into (sent)
 * and (received); how many there were (0: both are -1). */
int mkt_ping_summary(const char *out, long *sent, long *received);

/* A run of ping, and what the kernel saw meanwhile. */
struct mkt_ping {
	long sent, received; /* summed over every summary ping printed; -1 when there was none */
	long replies;        /* echo replies the kernel took in (InEchoReps), or -1 */
	long bad;            /* ICMP messages the kernel found with a bad checksum (InCsumErrors) */
	int status;          /* the command's exit status, as mkt_capture gives it */
	char out[4096];      /* what the command printed */
};

/* Run the ping command (fmt, ...) with mkt_capture (it may run several pings, with their summaries
 * one after another), then wait up to 5 s for the kernel to take in an echo reply for every
 * request sent. ping itself stops waiting twice its longest round trip after its last request
 * (-W counts only while no reply has come), so on a loaded machine the last replies of a run can
 * come after it ended, uncounted by ping: the kernel counts them. To have ping count every reply,
 * give it a deadline (-w): then it waits for as many as -c says, sending more requests while it
 * waits, and (replies) is to be compared with (sent). For a ping some of whose requests go
 * unanswered, the wait takes the whole 5 s: count those with mkt_capture. */
void mkt_ping(struct mkt_ping *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ping (ip) (n) times with (args), with a deadline: true when every request was answered, that
 * is when ping counted at least (n) replies and ended with status 0 (with a deadline, it does only
 * once it counted n), and the kernel took in one good echo reply for each request ping sent
 * (more than n when it waited for a late one) and none with a bad checksum. (r) says what was
 * seen either way. */
bool mkt_ping_all(struct mkt_ping *r, long n, const char *args, const char *ip);

/* Wait up to (timeout_ms) until (ifname) runs, that is until a TAP descriptor is attached and the
 * kernel has noticed: frames sent to a TAP before that are dropped silently. 1 when it runs. */
int mkt_link_ready(const char *ifname, int timeout_ms);

/* Whether the running kernel is version major.minor or later. */
bool mkt_kernel_at_least(int major, int minor);

/* Wait up to (timeout_ms) for the child (pid), then kill it; its wait status. */
int mkt_wait_child(pid_t pid, int timeout_ms);

/* How many descriptors this process has open (entries of /proc/self/fd), or -1. */
int mkt_count_fds(void);

/* CPU time (user + system) of this process, in nanoseconds. */
unsigned long long mkt_cpu_ns(void);

/* ---- checks inside tasks ----------------------------------------------------------------- */
/* A test's main runs as a task; these record the first failure in mkt_failed instead of
 * leaving the task, and the test asserts on it once mk_run has returned. */
extern char mkt_failed[512];
void mkt_failf(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			mkt_failf(__LINE__, "%s", #c);                                             \
	} while (0)
#define CHECK_INT(a, op, b)                                                                        \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (!(a_ op b_))                                                                   \
			mkt_failf(__LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);        \
	} while (0)
#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || strcmp(a_, b_) != 0)                                                    \
			mkt_failf(__LINE__, "%s == \"%s\": got %s%s%s", #a, b_, a_ ? "\"" : "",    \
			          a_ ? a_ : "NULL", a_ ? "\"" : "");                               \
	} while (0)
#define CHECK_HAS(text, part)                                                                      \
	do {                                                                                       \
		const char *t_ = (text), *p_ = (part);                                             \
		if (t_ == NULL || strstr(t_, p_) == NULL)                                          \
			mkt_failf(__LINE__, "%s does not mention \"%s\": \"%s\"", #text, p_,       \
			          t_ ? t_ : "(null)");                                             \
	} while (0)

/* ---- child processes --------------------------------------------------------------------- */

struct mkt_captured {
	int status;       /* as waitpid gives it */
	char text[16384]; /* what the child wrote on the descriptor, cut at that size */
};

/* Run fn(arg) in a child process whose descriptor (fd) goes to a pipe; collect what it wrote
 * and how it ended. The child writes no core file and is killed by SIGALRM after 20 s. */
void mkt_run_captured(int fd, int (*fn)(void *), void *arg, struct mkt_captured *c);

/* Exit with MKT_SKIP and a reason where the backend MKHOST_BACKEND asks for is unavailable, so
 * that a suite skips rather than fails every test. */
void mkt_skip_without_backend(void);

/* Run every test of (s), with the output CK_VERBOSITY asks for, and return the exit status for
 * main: 0 when all passed. (fork_always): each test in a process of its own even when CK_FORK=no
 * asks otherwise, for suites whose tests cannot share one. */
int mkt_run_suite(Suite *s, bool fork_always);

#endif
