/* Internals of libmkhost-lwip, shared by its files. Everything here is hidden from the shared
 * library (libmkhost-lwip.map exports mk_lwip_* only). */
#ifndef MKHOST_LWIP_GLUE_H
#define MKHOST_LWIP_GLUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lwip/netif.h"
#include "mkhost-lwip.h"

#define LW_MS 1000000ULL /* nanoseconds */

/* What mk_lwip_dhcp waits for: the server's answer, filled in by the receive task. */
struct lw_dhcp {
	bool active;  /* a task is asking: the receive task hands DHCP replies to it */
	uint32_t xid; /* the transaction of the request in flight */
	int want;     /* the message type waited for (OFFER, then ACK) */
	bool got;     /* a reply of that type has arrived (or a NAK: nak is set) */
	bool nak;
	uint32_t yiaddr, server, netmask, router; /* network byte order */
	mk_cond *cond;                            /* signalled when a reply arrives */
};

struct mk_lwip {
	struct netif netif;
	mk_net *net;
	struct mk_net_config cfg;
	mk_task *rx;
	struct lw_dhcp dhcp;
	struct mk_lwip_stats stats;
};

/* The process's lwIP, with its timer task (timers.c). */
int lw_core_take(void);       /* first attach: lwip_init once, the timer task; -EBUSY, -ENOMEM */
int lw_core_release(void);    /* last detach: stop the timer task (suspends) */
bool lw_core_owned(void);     /* lwIP is taken by this thread */
void lw_timers_changed(void); /* after lwIP ran: wake the timer task if it waits too long */
void lw_core_stats(struct mk_lwip_stats *out);

/* TIME_WAIT (timewait.c). */
void lw_tw_before_input(const uint8_t *frame, size_t len); /* a SYN replaces a TIME_WAIT pcb */
void lw_tw_after_input(void);                              /* bound the TIME_WAIT list */
extern uint64_t lw_tw_replaced, lw_tw_dropped;

/* DHCP (dhcp.c): a frame for the client while it is active; true when it was taken. */
bool lw_dhcp_input(mk_lwip *l, const uint8_t *frame, size_t len);

/* Errors (netif.c): record (fmt) for mk_lwip_last_error and return (err). */
int lw_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
