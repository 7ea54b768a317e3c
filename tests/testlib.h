/* Helpers shared by the Check suites: network namespaces, TAP interfaces, running mk_run. */
#ifndef MKHOST_TESTLIB_H
#define MKHOST_TESTLIB_H

#include <stddef.h>
#include "mkhost.h"

#define MKT_SKIP 77 /* meson's exit code for a skipped test */

/* Enter a private network namespace with loopback up, for the tests that need TAP interfaces.
 * Exits with MKT_SKIP and a reason on stderr when not root or when /dev/net/tun is missing. */
void mkt_enter_netns(void);

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

/* Started as root: execute this program again as nobody with no capability (setpriv), so that
 * the suite proves it needs no privilege; exits with MKT_SKIP when setpriv is missing. Not root:
 * check that no capability is left (exit 1 otherwise). */
void mkt_drop_privileges(void);

/* CPU time (user + system) of this process, in nanoseconds. */
unsigned long long mkt_cpu_ns(void);

#endif
