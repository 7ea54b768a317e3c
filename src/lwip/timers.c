/* lwIP's timers, run by one task exactly when they are due, and not at all when the stack idles.
 *
 * lwIP is run single-threaded: lwip_init() once per process (no tcpip_init, so no tcpip thread
 * and no mailbox), and a timer task that calls sys_check_timeouts() and then waits on a
 * condition until sys_timeouts_sleeptime() has passed. lwIP schedules new timeouts only while it
 * runs, and it runs only in three places: the receive tasks, linkoutput (called by lwIP from
 * whatever task made it send), and this task. After the first two, lw_timers_changed() compares
 * lwIP's next deadline with the one the task waits for, and wakes the task early when lwIP's is
 * sooner. A program that schedules a timeout of its own calls mk_lwip_wake().
 *
 * Idling. Debian's lwIP keeps cyclic timers running forever (IGMP and MLD every 100 ms, ARP,
 * IPv4 and IPv6 reassembly, neighbour discovery every second), which do nothing on an idle stack
 * but would wake it 20 times a second. So when there is no TCP connection (none active, none in
 * TIME_WAIT) and nothing was received or sent for LW_GRACE, the task parks: it waits with no
 * deadline, until a frame in or out (or mk_lwip_wake) signals it. Then the overdue cyclic timers
 * run once each, and the ARP table is aged by the whole time parked (etharp_tmr once per second
 * missed, at most ARP_MAXAGE times), so that an entry still expires 5 minutes after it was
 * learnt. LW_GRACE is longer than ARP's 5 s for an unanswered request, so no request is left
 * pending while parked. What waits for activity: IP fragments of a datagram left incomplete
 * when the stack parked are freed when it wakes, not after 15 s.
 */
#include <errno.h>
#include <pthread.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "glue.h"

#define LW_GRACE      (6000 * LW_MS) /* activity keeps the timers running this long */
#define LW_ARP_MAXAGE 300            /* lwIP's ARP_MAXAGE: ticks (seconds) of a stable entry */

static pthread_mutex_t core_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	int users;        /* attached netifs */
	pthread_t owner;  /* the thread that uses lwIP while users > 0 */
	bool initialised; /* lwip_init() has run: once per process, as lwIP's state is global */
	mk_task *task;
	mk_cond *cond;
	bool running;      /* the timer task runs (or has not started yet): no need to wake it */
	uint64_t deadline; /* when it wakes by itself (MK_FOREVER: parked or no timeout) */
	uint64_t parked_since; /* 0 when not parked */
	uint64_t last_activity;
	uint64_t wakeups;
} core;

/* lwIP's clock is mkhost's. liblwip calls sys_now() through its PLT, so this definition (exported
 * by libmkhost-lwip, or by a program linked with its archive) replaces Debian's, which reads
 * CLOCK_MONOTONIC itself. With the real clock nothing changes; with --clock=virtual lwIP's
 * timeouts follow the simulated time that mk_cond_wait and mk_sleep follow, without which a
 * retransmission due in 1.5 s would never come while the simulated clock leapt ahead. */
__attribute__((visibility("default"))) u32_t sys_now(void)
{
	return (u32_t)(mk_clock_monotonic() / LW_MS);
}

static bool busy(uint64_t now)
{
	return tcp_active_pcbs != NULL || tcp_tw_pcbs != NULL ||
	       now - core.last_activity < LW_GRACE;
}

static intptr_t timer_task(void *arg)
{
	for (;;) {
		uint64_t now = mk_clock_monotonic();
		if (core.parked_since != 0) {
			uint64_t missed = (now - core.parked_since) / (1000 * LW_MS);
			/* sys_check_timeouts runs the overdue ARP timer once itself. */
			for (uint64_t i = 1; i < missed && i < LW_ARP_MAXAGE; i++)
				etharp_tmr();
			core.parked_since = 0;
		}
		sys_check_timeouts();
		u32_t ms = sys_timeouts_sleeptime();
		now = mk_clock_monotonic();
		uint64_t deadline = MK_FOREVER;
		if (!busy(now))
			core.parked_since = now;
		else if (ms != SYS_TIMEOUTS_SLEEPTIME_INFINITE)
			deadline = now + ms * LW_MS;
		core.deadline = deadline;
		core.running = false;
		int err = mk_cond_wait(core.cond, deadline);
		core.running = true;
		if (err == -ECANCELED)
			return 0;
		core.wakeups++;
	}
}

void lw_timers_changed(void)
{
	uint64_t now = mk_clock_monotonic();

	core.last_activity = now;
	if (core.task == NULL || core.running)
		return;
	u32_t ms = sys_timeouts_sleeptime();
	if (ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		return;
	uint64_t due = now + ms * LW_MS;
	if (due < core.deadline) {
		core.deadline = due; /* one signal is enough until the task has run */
		mk_cond_signal(core.cond);
	}
}

int mk_lwip_wake(void)
{
	if (!lw_core_owned())
		return lw_fail(-EPERM, "mk_lwip_wake must be called inside mk_run, on the thread "
		                       "that uses lwIP");
	lw_timers_changed();
	return 0;
}

bool lw_core_owned(void)
{
	pthread_mutex_lock(&core_lock);
	bool owned = core.users > 0 && pthread_equal(core.owner, pthread_self());
	pthread_mutex_unlock(&core_lock);
	return owned;
}

int lw_core_take(void)
{
	int err = 0;

	pthread_mutex_lock(&core_lock);
	if (core.users > 0) {
		if (pthread_equal(core.owner, pthread_self()))
			core.users++;
		else
			err =
			    lw_fail(-EBUSY, "mk_lwip_attach: lwIP is in use by another thread of "
			                    "this process; lwIP has one state per process, so all "
			                    "its netifs must be on one thread");
		pthread_mutex_unlock(&core_lock);
		return err;
	}
	if (!core.initialised) {
		lwip_init();
		core.initialised = true;
	}
	err = mk_cond_new(&core.cond);
	if (err == 0) {
		err = mk_task_spawn(&core.task, "lwip-timers", timer_task, NULL);
		if (err != 0) {
			mk_cond_free(core.cond);
			core.task = NULL;
		}
	}
	if (err == 0) {
		core.users = 1;
		core.owner = pthread_self();
		core.running = true;
		core.deadline = MK_FOREVER;
		core.parked_since = 0;
		core.last_activity = mk_clock_monotonic();
	}
	pthread_mutex_unlock(&core_lock);
	return err;
}

int lw_core_release(void)
{
	pthread_mutex_lock(&core_lock);
	int left = --core.users;
	pthread_mutex_unlock(&core_lock);
	if (left > 0)
		return 0;
	mk_task_cancel(core.task);
	mk_task_await(core.task, NULL);
	mk_cond_free(core.cond);
	core.task = NULL;
	core.cond = NULL;
	return 0;
}

void lw_core_stats(struct mk_lwip_stats *out)
{
	out->timer_wakeups = core.wakeups;
	out->tw_replaced = lw_tw_replaced;
	out->tw_dropped = lw_tw_dropped;
}
