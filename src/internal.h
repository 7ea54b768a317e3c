/* Internal declarations shared by the modules of libmkhost. Nothing here is exported: every
 * symbol is hidden by the build, and internal names carry the mk__ prefix. */
#ifndef MKHOST_INTERNAL_H
#define MKHOST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "mkhost.h"
#include "loop.h"

/* ---- errors (error.c) ---------------------------------------------------------------- */

/* Store the sentence for mk_last_error() and return (err). A sentence longer than MK__ERROR_MAX - 1
 * bytes keeps its words whole but has its longest ones (paths, echoed arguments) shortened in
 * the middle with "...", so that the cause and the fix are never cut off. */
#define MK__ERROR_MAX 1024
int mk__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mk__clear_error(void);
/* Copy (src) into (dst) of (size) bytes, its middle replaced with "..." when it does not fit. */
void mk__elide(char *dst, size_t size, const char *src);

/* ---- arguments (args.c) --------------------------------------------------------------- */

/* A parsed --net-fault spec (fault.c). Probabilities are thresholds out of 2^64. */
struct mk__fault_spec {
	uint64_t drop, dup, corrupt, reorder;
	uint64_t delay_ns;
	uint64_t seed;
	bool has_seed;
};

struct mk__netarg {
	char *name;
	char *value; /* what follows --net:NAME=, or NULL when given as @FD */
	int fd;      /* the @FD descriptor, or -1 */
	int times;   /* how many --net: arguments named this device */
	bool has_mac;
	uint8_t mac[6];
	char *pcap;     /* --net-pcap:NAME=FILE, or NULL */
	bool has_fault; /* --net-fault:NAME=SPEC, checked when parsed */
	struct mk__fault_spec fault;
};

struct mk__blockarg {
	char *name;
	char *file;
	int times;            /* how many --block: arguments named this device */
	unsigned sector_size; /* 0 when not given: 512 */
};

/* --busy-poll=US, --stack-size=SIZE, --backend=NAME (tuning.c): mk_config from the command
 * line, winning over the program's. */
struct mk__tuning {
	bool has_busy_poll, has_backend, has_clock, has_seed, has_tx_batch;
	unsigned busy_poll_us;
	unsigned tx_batch;
	size_t stack_size; /* 0: not given */
	enum mk_backend backend;
	enum mk_clock clock;
	uint64_t seed;
};

/* Whether (arg) is one of the tuning options; parse it into (t): 0, or -EINVAL with the
 * sentence in mk_last_error(). */
bool mk__tuning_is(const char *arg);
int mk__tuning_parse(struct mk__tuning *t, const char *arg);
/* The program's mk_config: 0, or -EINVAL with a sentence for a value out of range (a backend
 * that is none of the enum's, a stack size past 1 GiB, whose rounding would overflow). */
int mk__tuning_check_config(const struct mk_config *cfg);

/* A change of a hub: network at a set time (--net-partition, --net-down), run by link_hub.c. */
struct mk__change {
	bool down;      /* --net-down:NAME=FROM-TO; else --net-partition:LAN=FROM-TO:GROUPS */
	char *target;   /* the LAN, or the device */
	char *groups;   /* a partition's groups, "a,b|c" */
	uint64_t from_ns, to_ns; /* from the start of mk_run */
};

struct mk__args {
	bool sandbox; /* --sandbox */
	struct mk__change *changes;
	size_t n_changes;
	struct mk__tuning tuning;
	struct mk__netarg *nets;
	size_t n_nets;
	struct mk__blockarg *blocks;
	size_t n_blocks;
};

/* Remove the device arguments from argv (updating *argc) and record them in (a).
 * Returns 0, -EINVAL (with mk_last_error set) or -ENOMEM. */
int mk__args_parse(struct mk__args *a, int *argc, char **argv);
void mk__args_free(struct mk__args *a);
struct mk__netarg *mk__args_net(struct mk__args *a, const char *name);
struct mk__blockarg *mk__args_block(struct mk__args *a, const char *name);
void mk__args_usage(void);

/* ---- green threads (fiber.c) ---------------------------------------------------------- */

struct mk__fiber;
struct mk__sched;

/* A fiber owns a stack and runs tasks, one after another, on it. Creating one is the costly
 * part (mmap, guard, first entry through makecontext), so finished fibers go back to a pool. */
int mk__fiber_sched_init(struct mk__sched *s);
void mk__fiber_sched_fini(struct mk__sched *s);
int mk__fiber_get(struct mk__sched *s, struct mk__fiber **out);
void mk__fiber_set_task(struct mk__fiber *f, struct mk_task *t);
void mk__fiber_put(struct mk__sched *s, struct mk__fiber *f);
void mk__fiber_pool_trim(struct mk__sched *s, size_t keep);
size_t mk__fiber_pool_max(void);
/* Switch from the scheduler into (f), which runs its task until it parks or ends. */
void mk__fiber_resume(struct mk__sched *s, struct mk__fiber *f);
/* Switch from the current fiber back to the scheduler. */
void mk__fiber_suspend(struct mk__sched *s, struct mk__fiber *f);
/* Switch from the current fiber straight to another one, without the scheduler in between. */
void mk__fiber_switch(struct mk__fiber *from, struct mk__fiber *to);
int mk__overflow_guard_install(struct mk__sched *s);
void mk__overflow_guard_remove(struct mk__sched *s);

/* ---- scheduler (sched.c) -------------------------------------------------------------- */

struct mk__waitq {
	struct mk_task *head, *tail;
};

enum mk__task_state {
	MK__NEW,      /* spawned, not started */
	MK__RUNNABLE, /* in the run queue */
	MK__RUNNING,
	MK__PARKED,
	MK__DONE,
};

struct mk_task {
	struct mk_task *run_next;            /* run queue link */
	struct mk_task *all_prev, *all_next; /* every live task, for shutdown */
	struct mk_task *wq_prev, *wq_next;   /* wait queue link */
	struct mk__waitq *waitq;             /* the queue this task is parked on, if any */
	struct mk__fiber *fiber;
	mk_task_fn fn;
	void *arg;
	intptr_t result;
	struct mk_task *awaiter;
	uint64_t deadline;  /* when sleeping */
	uint64_t timer_seq; /* the order timers were set in: equal deadlines fire in that order */
	size_t heap_index;  /* position in the timer heap + 1; 0 when not in it */
	int wake_code;     /* what mk__park returns */
	enum mk__task_state state;
	bool cancelled;
	bool started;
	bool awaited;
	bool uncancellable_park;
	char name[32];
};

#define MK__NET_CACHE 16

struct mk__sched {
	struct mk__loop loop;
	struct mk_task *current;
	struct mk_task *run_head, *run_tail;
	size_t run_len;
	size_t round_left;   /* tasks the current round may still run */
	size_t live_tasks;   /* tasks not ended */
	struct mk_task *all; /* every task not yet freed */
	struct mk_task *main_task;
	struct mk_task **heap; /* sleeping tasks, by deadline */
	size_t heap_len, heap_cap;
	uint64_t timer_seq;  /* timers set so far */
	bool virtual_clock;  /* --clock=virtual: the clocks read vnow */
	uint64_t vnow;       /* the virtual monotonic clock, in ns */
	bool seeded;         /* draw at random from (seed), not from the kernel */
	uint64_t seed;
	struct mk_hook *hooks;
	bool in_hook;
	bool stopping; /* main has ended or a stop signal came: every task is cancelled */
	struct mk__args args;
	struct mk_net *nets;
	struct mk_net *net_cache[MK__NET_CACHE]; /* devices net.c found in (nets), by pointer */
	struct mk_block *blocks;
	size_t stack_size;
	unsigned busy_poll_us;
	unsigned tx_batch; /* frames a TAP may queue before writing them together (0: none) */
	uint64_t idle_avg_ns; /* busy-polling: recent time from going idle to an event */
	/* fibers */
	void *sched_ctx; /* the scheduler's saved context */
	struct mk__fiber *pool;
	size_t pool_len;
	struct mk__fiber *booting;
	void *boot_ctx;
	const void *sched_stack_lo; /* for sanitizer fiber annotations */
	size_t sched_stack_size;
	struct mk__io stop_io; /* SIGINT/SIGTERM, when this scheduler took them (stop.c) */
	bool stop_owner;
	int stopped_by; /* the signal that stopped mk_run, or 0 */
	void *overflow_altstack;
	stack_t old_altstack;
	size_t live_fibers;
};

/* The scheduler running on this thread, or NULL. */
extern _Thread_local struct mk__sched *mk__sched_current;

/* Park the calling task until mk__wake; returns the wake code, or -ECANCELED when the task is
 * cancelled while parked (unless parked uncancellably). */
int mk__park(struct mk__sched *s);
void mk__wake(struct mk__sched *s, struct mk_task *t, int code);
/* The scheduler when called from a task, else NULL. */
struct mk__sched *mk__sched_task(void);
/* Run on fiber (f): the task's body, its end, then the switch away. Returns when (f) is resumed
 * with its next task. */
void mk__task_body(struct mk__sched *s, struct mk__fiber *f, struct mk_task *t);
/* The next task of the current round, or NULL when the round is over. */
struct mk_task *mk__round_next(struct mk__sched *s);

void mk__runq_push(struct mk__sched *s, struct mk_task *t);
struct mk_task *mk__runq_pop(struct mk__sched *s);
int mk__task_new(struct mk__sched *s, struct mk_task **out, const char *name, mk_task_fn fn,
                 void *arg);
void mk__task_run(struct mk__sched *s, struct mk_task *t);
void mk__task_cancel(struct mk__sched *s, struct mk_task *t);
void mk__task_free(struct mk__sched *s, struct mk_task *t);

/* timers.c */
void mk__timer_remove(struct mk__sched *s, struct mk_task *t);
int64_t mk__timer_timeout(struct mk__sched *s, uint64_t now); /* ns until the earliest, or -1 */
void mk__timer_fire(struct mk__sched *s, uint64_t now);
/* Wake (t), parked, with code 0 at (deadline) unless something else wakes it first. */
int mk__timer_arm(struct mk__sched *s, struct mk_task *t, uint64_t deadline);

/* sandbox.c: seal the loop and install the seccomp filter */
int mk__sandbox_enter(struct mk__sched *s);

/* stop.c */
int mk__stop_install(struct mk__sched *s);
void mk__stop_remove(struct mk__sched *s);

/* hooks.c */
void mk__hooks_run(struct mk__sched *s);
void mk__hooks_free(struct mk__sched *s);

void mk__waitq_push(struct mk__waitq *q, struct mk_task *t);
struct mk_task *mk__waitq_pop(struct mk__waitq *q);
void mk__waitq_remove(struct mk__waitq *q, struct mk_task *t);

/* ---- net devices (net.c) and their links (tap.c, ...) -------------------------------- */

/* What carries a device's frames. net.c does everything else (arguments, waiting, statistics). */
struct mk__link_ops {
	const char *kind;
	/* Read one frame into dst, which holds (cap) bytes, at least mtu + 14 (more when the
	 * caller's buffer has room). Returns its length, 0 for a frame that was dropped (longer
	 * than cap; the link counts nothing), -EAGAIN when none is waiting, or another negative
	 * errno value. net.c drops and counts frames shorter than 14 or longer than mtu + 14. */
	ssize_t (*read)(mk_net *n, uint8_t *dst, size_t cap);
	/* Write one frame, whole. Returns len, or a negative errno value when it was refused. */
	ssize_t (*write)(mk_net *n, const uint8_t *frame, size_t len);
	void (*close)(mk_net *n);
	/* Optional, for links with a descriptor: start waiting for frames (NULL: a readiness poll
	 * of n->fd with n->poll). */
	int (*arm)(mk_net *n);
	/* Optional: whether frames already taken from the kernel wait in the link. */
	bool (*queued)(const mk_net *n);
	/* Optional: hand queued writes to the kernel and count what it refused. */
	void (*flush)(mk_net *n);
};

struct mk_net {
	struct mk_net *next;
	struct mk__sched *sched;
	char name[64];
	const struct mk__link_ops *link;
	void *link_state;
	int fd; /* polled for readability; -1 when the link calls mk__net_notify */
	struct mk_net_config cfg;
	struct mk_net_stats stats;
	struct mk__waitq readers;
	struct mk__io poll;
	uint8_t *rxbuf, *txbuf;  /* mtu + 14 bytes each */
	struct mk__pcap *pcap;   /* --net-pcap, or NULL */
	struct mk__fault *fault; /* --net-fault, or NULL */
	bool claimed;            /* returned by mk_net_connect (not just opened by --sandbox) */
	bool filling;            /* mk_net_write_into's filler is writing into txbuf */
	uint64_t empty_at;       /* 1 + loop.waits when a read last found the device empty */
};

/* Open the link of a new device: set n->link, n->fd (or -1), n->cfg.mtu and link_state from
 * (value), the text after --net:NAME=. Errors carry a sentence naming (name). */
int mk__tap_link_open(mk_net *n, const struct mk__netarg *a);
/* Whether the TAP (n) receives through io_uring's ring (for the tests). */
bool mk__tap_rx_ring(const mk_net *n);
int mk__unix_link_open(mk_net *n, const struct mk__netarg *a);  /* link_unix.c */
int mk__hub_link_open(mk_net *n, const struct mk__netarg *a);   /* link_hub.c */
/* Check the schedule of changes (--net-partition, --net-down) against the hub: devices of the
 * command line, and start the task that runs it. 0, or -EINVAL with a sentence. */
int mk__hub_schedule_start(struct mk__sched *s);
int mk__slirp_link_open(mk_net *n, const struct mk__netarg *a); /* link_slirp.c */
/* An "mtu=N" option of a link that has no interface to ask (link_unix.c). */
int mk__link_parse_mtu(const char *name, const char *opt, unsigned *mtu);

/* Capture (pcap.c): every frame received or sent, as it passes read_frame or write_frame. */
int mk__pcap_open(mk_net *n, const char *file);
void mk__pcap_frame(mk_net *n, const uint8_t *frame, size_t len);
void mk__pcap_close(mk_net *n);

/* Fault injection (fault.c), between net.c and the link: read and write as the link's. */
int mk__fault_parse(const char *arg, const char *spec, struct mk__fault_spec *out);
int mk__fault_open(mk_net *n, const struct mk__fault_spec *spec);
ssize_t mk__fault_read(mk_net *n, uint8_t *dst, size_t cap);
ssize_t mk__fault_write(mk_net *n, const uint8_t *frame, size_t len);
void mk__fault_close(mk_net *n);
/* For links without a descriptor: frames are waiting, wake a reader. */
void mk__net_notify(mk_net *n);
/* A random, locally administered unicast MAC for device (name): from the run's seed when it has
 * one, else from the kernel. */
void mk__random_mac(struct mk__sched *s, const char *name, uint8_t mac[6]);
/* 64 random bits for (name) drawn from the run's seed (s->seeded), the same in every run. */
uint64_t mk__seeded_random(const struct mk__sched *s, const char *name, uint64_t salt);
uint64_t mk__splitmix64(uint64_t *state);
void mk__net_close_all(struct mk__sched *s);
/* Whether a read found (n) empty since the event loop last looked for events: a read now would
 * most likely find it empty again. */
bool mk__net_known_empty(const mk_net *n);
/* 0 when (n) is a device of the mk_run running on this thread; -EINVAL for NULL, else -EPERM. */
int mk__net_check(const mk_net *n);
/* Open every net device of the command line now (for --sandbox). */
int mk__net_open_all(struct mk__sched *s);

/* ---- block devices (block.c) ---------------------------------------------------------- */

void mk__block_close_all(struct mk__sched *s);
/* Open every block device of the command line now (for --sandbox). */
int mk__block_open_all(struct mk__sched *s);

#endif
