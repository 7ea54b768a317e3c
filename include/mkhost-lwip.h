/* mkhost-lwip: an lwIP network interface on a mkhost net device.
 *
 * Build: cc prog.c $(pkg-config --cflags --libs mkhost-lwip)
 *
 * The library attaches an lwIP netif to an mk_net and runs lwIP single-threaded inside mk_run():
 * a receive task per device reads each frame straight into a pbuf and hands it to lwIP, frames
 * lwIP sends are written at once, and one timer task runs lwIP's timeouts exactly when they are
 * due. The program then uses lwIP's raw API (tcp_new, tcp_listen, tcp_write, udp_sendto, ...)
 * from its own tasks; every lwIP callback runs inside a task of this library.
 *
 * Conventions, as in mkhost.h: functions return 0 (or a count) and a negative errno value on
 * failure, and never set errno; mk_lwip_last_error() gives a sentence for the last failure.
 * Every function must be called from inside mk_run(), from a task unless it says it may be
 * called from a hook; elsewhere it returns -EPERM.
 *
 * lwIP has one state per process (its lists of connections, its timers), so every netif of a
 * process belongs to one thread: the first attach takes lwIP for that thread, the last detach
 * gives it back. An lwIP callback must not suspend (no mk_sleep, no mk_cond_wait in a tcp_recv
 * callback): it runs in the middle of lwIP's processing. Wake a task of your own instead.
 *
 * The library also provides lwIP's sys_now(), which replaces liblwip's: lwIP's clock is
 * mk_clock_monotonic(), so that under --clock=virtual lwIP's timeouts follow the simulated time.
 *
 * The lwIP this is built for is Debian's liblwip-dev 2.1 (not NO_SYS, IPv6 on, no DHCP client,
 * TIME_WAIT 120 s); README.md, "Running an lwIP stack", says what the library does about it.
 */
#ifndef MKHOST_LWIP_H
#define MKHOST_LWIP_H

#include <stdint.h>

#include "mkhost.h"

#ifdef __cplusplus
extern "C" {
#endif

struct netif; /* lwIP's, from lwip/netif.h */

typedef struct mk_lwip mk_lwip;

/* Counters of one attached device; the timer and TIME_WAIT ones are the process's, as lwIP's
 * timers and connections are. */
struct mk_lwip_stats {
	uint64_t rx_frames;     /* frames handed to lwIP */
	uint64_t rx_filtered;   /* frames for another MAC address, dropped as a NIC would */
	uint64_t rx_nomem;      /* frames lost because no pbuf could be allocated */
	uint64_t tx_frames;     /* frames lwIP sent */
	uint64_t tx_chains;     /* of which were pbuf chains, copied into one frame */
	uint64_t tx_errors;     /* frames the device refused (too long, or the kernel's drop) */
	uint64_t timer_wakeups; /* times the timer task woke up, for a deadline or a signal */
	uint64_t tw_replaced;   /* TIME_WAIT connections replaced by a newer SYN */
	uint64_t tw_dropped;    /* TIME_WAIT connections dropped, oldest first, beyond the limit */
};

/* Attach an lwIP netif to (net), whose configuration mk_net_connect() stored in (*cfg): the
 * netif gets its MAC address and MTU, is set up with its link up and no address (see
 * mk_lwip_set_ipv4 and mk_lwip_dhcp), and becomes lwIP's default netif if there is none. lwIP is
 * initialised (lwip_init) by the first attach of the process. A receive task for the device and,
 * with the first attach, the timer task are started; they run once the caller suspends.
 * Does not suspend.
 * Returns 0 and stores the handle in (*out); or
 *   -EINVAL  (net), (cfg) or (out) is NULL, or cfg->mtu is below 576 or above 65521;
 *   -EBUSY   lwIP is in use by another thread of the process;
 *   -EPERM   outside mk_run, or from a hook;
 *   -ENOMEM  out of memory. */
MK_EXPORT int mk_lwip_attach(mk_net *net, const struct mk_net_config *cfg, mk_lwip **out);

/* Take the netif out of lwIP (netif_remove: its connections lose their route), stop its receive
 * task and, with the last device, the timer task, and free (l). Call it before the task that
 * runs main returns. (l) must not be used afterwards.
 * Suspends until the tasks have ended.
 * Returns 0; -EINVAL if (l) is NULL; -EPERM outside a task, or from another thread. */
MK_EXPORT int mk_lwip_detach(mk_lwip *l);

/* lwIP's netif, for lwIP's own calls (netif_set_default, tcp_bind_netif, ...). NULL for NULL. */
MK_EXPORT struct netif *mk_lwip_netif(mk_lwip *l);

/* Give the netif the IPv4 address (address), written "A.B.C.D" or "A.B.C.D/PREFIX" (prefix 1 to
 * 30; 24 when absent), and the gateway (gateway), "A.B.C.D" or NULL for none.
 * Does not suspend.
 * Returns 0; -EINVAL if (l) or (address) is NULL, or an address is malformed (with a sentence in
 * mk_lwip_last_error); -EPERM outside mk_run or from another thread. */
MK_EXPORT int mk_lwip_set_ipv4(mk_lwip *l, const char *address, const char *gateway);

/* Ask for an IPv4 address by DHCP (DISCOVER, OFFER, REQUEST, ACK; RFC 2131), and give the netif
 * the address, netmask and router the server offers. Debian's lwIP has no DHCP client, so this is
 * mkhost-lwip's own: it sends and receives its messages beside lwIP, on the device itself. The
 * lease is not renewed: the address stays until the program ends or sets another (slirp's
 * leases last a day).
 * Suspends until the server has answered, or until the monotonic clock reaches (deadline)
 * (MK_FOREVER: no deadline); a message that got no answer is sent again after 1 s, then 2 s and
 * 4 s (no longer).
 * Returns 0; or
 *   -ETIMEDOUT  no address came before (deadline);
 *   -ECANCELED  the calling task was cancelled;
 *   -EALREADY   another task is already asking on this netif;
 *   -EINVAL     (l) is NULL;
 *   -EPERM      outside a task (from a hook, too), or from another thread. */
MK_EXPORT int mk_lwip_dhcp(mk_lwip *l, uint64_t deadline);

/* The netif's IPv4 address as "A.B.C.D/PREFIX" in (buf) of (size) bytes (at least 19 always
 * fits). Does not suspend.
 * Returns the length; -EINVAL if an argument is NULL or (size) is too small; -EADDRNOTAVAIL when
 * the netif has no address yet. */
MK_EXPORT int mk_lwip_ipv4(const mk_lwip *l, char *buf, size_t size);

/* Tell the timer task that lwIP may have scheduled a timeout earlier than the one it waits for.
 * The library checks by itself after every frame received or sent and every timer run, which
 * covers lwIP's own timeouts; call this after sys_timeout() of your own, or after an lwIP call
 * that schedules a timer without sending anything.
 * Does not suspend; callable from a hook.
 * Returns 0; -EPERM outside mk_run or from another thread than lwIP's. */
MK_EXPORT int mk_lwip_wake(void);

/* Bound the number of connections in TIME_WAIT to (max) (1 to 1048576), as Linux's
 * net.ipv4.tcp_max_tw_buckets: beyond it the oldest are dropped (in batches: the list may hold
 * up to max / 16 more between two cuts). Default 4096. Applies to the whole process, as lwIP's
 * connection lists do.
 * Returns 0; -EINVAL if (max) is out of range. Callable from anywhere, before or during mk_run. */
MK_EXPORT int mk_lwip_set_time_wait_max(unsigned max);

/* Copy the counters of (l) into (*out).
 * Returns 0; -EINVAL if an argument is NULL. */
MK_EXPORT int mk_lwip_stats(const mk_lwip *l, struct mk_lwip_stats *out);

/* The sentence that explains the last failure of a call of this library on this thread: the
 * cause and the fix. Empty when there is none. Callable from anywhere. */
MK_EXPORT const char *mk_lwip_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* MKHOST_LWIP_H */
