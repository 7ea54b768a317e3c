/* mkhost: the mkernel/Solo5 device API as an ordinary Linux program.
 *
 * Network devices are TAP interfaces, readiness and timers come from io_uring (epoll where
 * io_uring is unavailable), and tasks are cooperative green threads. Everything runs on one
 * thread, inside mk_run().
 *
 * Conventions:
 * - Functions return 0 (or a count) on success and a negative errno value on failure. They never
 *   set errno. mk_strerror() turns a code into text.
 * - "Suspends" means the calling task may be parked and other tasks may run before the call
 *   returns. Functions that do not say so never let another task run.
 * - Every function except mk_run(), mk_strerror(), mk_last_error(), mk_version() and the clocks
 *   must be called from inside mk_run() on the thread that called it: from a task, or from a hook
 *   (see mk_hook_add). Called anywhere else they return -EPERM (or NULL) and do nothing.
 * - A hook runs in the scheduler, not in a task, so it may call only what never suspends: the
 *   writes (mk_net_write_bigstring, _string, _into), mk_net_try_read, the block device's atomic
 *   reads and writes, the statistics and names, mk_task_spawn, mk_task_cancel, mk_cond_new,
 *   mk_cond_signal, mk_cond_broadcast, mk_cond_free, mk_hook_add and mk_hook_remove, and the
 *   connect calls. Every suspending call (mk_yield, mk_sleep, mk_task_await, the net reads but
 *   mk_net_try_read, mk_block_read, _write and _flush, mk_cond_wait) returns -EPERM there and does
 *   nothing; mk_task_self() is NULL there.
 * - A device handle belongs to the mk_run() that connected it and to its thread. Used after that
 *   mk_run() returned (the handle is freed then), or from another thread, every call on it
 *   returns -EPERM (NULL, 0) without touching the memory it points to.
 */
#ifndef MKHOST_H
#define MKHOST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MK_EXPORT __attribute__((visibility("default")))
#else
#define MK_EXPORT
#endif

#define MK_VERSION_MAJOR 0
#define MK_VERSION_MINOR 1
#define MK_VERSION_PATCH 0

/* The version of the library the program runs with, as "MAJOR.MINOR.PATCH". */
MK_EXPORT const char *mk_version(void);

/* A static description of (err), which is 0 or a negative errno value as returned by mkhost. */
MK_EXPORT const char *mk_strerror(int err);

/* The sentence that explains the last failure of a connect call (or of mk_run's argument parsing)
 * on this thread: it names the device, the cause and the fix. Empty when there is none. The text
 * stays valid until the next failing call. It is shorter than 1024 bytes: in a longer sentence
 * the longest words (a path, an echoed argument) are shortened in their middle with "...", so
 * that the cause and the fix are always there. */
MK_EXPORT const char *mk_last_error(void);

/* ======================================================================================== */
/*  Running                                                                                 */
/* ======================================================================================== */

/* The program's first task. (argc, argv) are the program's arguments without the device
 * arguments that mk_run() consumed. Its return value becomes mk_run()'s. */
typedef int (*mk_main_fn)(int argc, char **argv, void *arg);

enum mk_backend {
	MK_BACKEND_AUTO = 0, /* io_uring, or epoll when io_uring is unavailable */
	MK_BACKEND_IO_URING, /* io_uring only: mk_run fails if it is unavailable */
	MK_BACKEND_EPOLL,    /* epoll only */
};

enum mk_clock {
	MK_CLOCK_REAL = 0, /* the kernel's clocks */
	MK_CLOCK_VIRTUAL,  /* a simulated clock: see mk_config.clock */
};

/* Settings for mk_run_config(). Zero means "the default" in every field. */
/* Every field can also be given on the command line, which wins over what the program set here
 * (and over MKHOST_BACKEND): --stack-size=SIZE (bytes, or with K or M: 16K to 1024M),
 * --backend=io_uring|epoll|auto, --busy-poll=US (0 to 1000000), --clock=real|virtual,
 * --seed=S (0 to 2^64 - 1). mk_run takes them out of argv
 * and refuses a bad value with -EINVAL and a sentence, before (main) runs. */
/* mk_run_config() refuses a field out of range with -EINVAL and a sentence naming it, before
 * (main) runs: a backend that is not one of the enum's, a stack size under 16 KiB or over 1 GiB,
 * a busy-poll time over 1,000,000 us. */
struct mk_config {
	size_t stack_size; /* usable bytes of a task stack, rounded up to pages; default 256 KiB */
	enum mk_backend backend; /* default MK_BACKEND_AUTO; the environment variable
	                            MKHOST_BACKEND=epoll|io_uring overrides it */
	unsigned busy_poll_us;   /* before sleeping in the kernel, poll this long for events,
	                            yielding the CPU between polls, while recent waits were about
	                            that short (adaptive); default 0 (off). See README,
	                            "Performance", for what it costs and gains */
	/* MK_CLOCK_VIRTUAL (--clock=virtual): every clock, sleep, timed wait, hub latency, fault
	 * delay and capture timestamp follows a simulated clock that starts at 0 (monotonic) and at
	 * 2000-01-01T00:00:00Z (wall). It stands still while any task is runnable; when every task
	 * waits, it jumps to the earliest deadline at once. Only hub: links may be given (TAP, @FD,
	 * unix:, slirp and block devices live in real time: mk_run refuses them with -EINVAL,
	 * before anything is opened), and busy-polling is off. See README, "Deterministic tests". */
	enum mk_clock clock;
	/* The seed of what mkhost draws at random: the MACs it makes up and the seeds of
	 * --net-fault specs without seed=, each mixed with the device's name (--seed=S). With
	 * MK_CLOCK_VIRTUAL it is always used (0 is a seed like any other), so a run is repeatable;
	 * with the real clock 0 means "random", as before. */
	uint64_t seed;
	/* Queue up to this many frames written to a TAP, and hand them to the kernel together
	 * when the writing task next suspends or yields (or when the queue is full): one system
	 * call for many frames (--tx-batch=N). Only with the io_uring backend; elsewhere writes
	 * stay one system call each. While it is on, a write returns before the frame has reached
	 * the kernel: a frame the kernel then refuses (the interface was removed) moves from
	 * tx_frames to tx_drops, which mk_net_stats() shows exactly (a capture records a frame
	 * when it is queued, so such a frame is in the capture too), and a program that ends by
	 * exit(3) from a task loses the frames still queued (returning from main sends them).
	 * Default 0 (off): a write is done when the call returns. At most 4096. */
	unsigned tx_batch;
};

/* Parse the device arguments out of (argc, argv), run (main) as the first task, and return when
 * it returns.
 *
 * Device arguments, as a Solo5 tender takes them:
 *   --net:NAME=IFACE           a TAP interface, which must exist and be up
 *   --net:NAME=@FD             a TAP descriptor the program inherited already open
 *   --net:NAME=unix:PATH[,mtu=N]  a cable to another program through the Unix socket PATH
 *   --net:NAME=hub:LAN[,mtu=N][,latency=US][,rate=MBIT]  a port of an in-process switch
 *                              joining the devices on LAN; its frames take US microseconds,
 *                              and MBIT Mbit/s, to reach the switch
 *   --net-partition:LAN=FROM-TO:GROUPS  cut hub LAN into GROUPS ("a,b|c") from FROM to TO
 *                              (times from the start with a unit: us, ms, s, m), then heal it
 *   --net-down:NAME=FROM-TO    take the link of hub device NAME down from FROM to TO
 *   --net-pcap:NAME=FILE       record every frame received and sent in FILE (pcap)
 *   --net-fault:NAME=SPEC      inject faults both ways: drop=P,dup=P,corrupt=P,reorder=P,
 *                              delay=MS,seed=S (P as 0.1 or 10%; each field once, numbers
 *                              in plain decimal); a bad SPEC is -EINVAL
 *   --net-mac:NAME=MAC         the MAC address the device reports (default: random, locally
 *                              administered, unicast)
 * And the tuning options --busy-poll=US, --stack-size=SIZE, --backend=NAME (see mk_config).
 * They are removed from argv before (main) sees it. Arguments after a "--" are left alone (the
 * "--" itself is removed). Before it, an argument that looks like one of these but is not one
 * (--Sandbox, --sandbox=1, --net=tap0, --blocks:a=b, --busy_poll=5: a different case, '=' for
 * ':', a value where none is taken, one letter off) is refused with -EINVAL and a sentence
 * saying what it may have meant: a program that takes such an argument itself gets it after
 * "--". "--help" prints the device options on stdout and is passed on to
 * (main) so it can print its own.
 *
 * When (main) returns, the tasks still alive are cancelled (see mk_task_cancel) and run until they
 * end (a task spawned from then on is cancelled at once, so it never starts), devices are
 * closed, and mk_run returns (main)'s value.
 *
 * SIGINT and SIGTERM, when the program left them at their default action, stop the program
 * cleanly: every task is cancelled, and once they have ended the devices are closed and mk_run
 * returns -EINTR. A second signal during that shutdown has its default action. (Only the first
 * mk_run running in a process takes them.)
 *
 * Returns: (main)'s value; -EINTR when stopped by SIGINT or SIGTERM; -EDEADLK when every task
 * waited on another and cancelling them did not help; or, without running (main),
 *   -EINVAL  a malformed device argument (a line on stderr says which, and mk_last_error() too);
 *   -EBUSY   mk_run is already running on this thread;
 *   -ENOSYS  the io_uring backend was required and is unavailable;
 *   -ENOMEM  out of memory.
 * mk_run prints on stderr only for a malformed argument, when it falls back from io_uring to
 * epoll (one line), and when a task overflows its stack (then it aborts the program). */
MK_EXPORT int mk_run(int argc, char **argv, mk_main_fn main, void *arg);

/* mk_run() with settings; (cfg) may be NULL. */
MK_EXPORT int mk_run_config(const struct mk_config *cfg, int argc, char **argv, mk_main_fn main,
                            void *arg);

/* The backend the running scheduler uses: "io_uring" or "epoll". NULL outside mk_run. */
MK_EXPORT const char *mk_backend_name(void);

/* ======================================================================================== */
/*  Tasks                                                                                   */
/* ======================================================================================== */

typedef struct mk_task mk_task;

/* The body of a task; its return value is what mk_task_await() gives back. */
typedef intptr_t (*mk_task_fn)(void *arg);

/* Create a task that runs fn(arg). It starts after the caller next suspends, after the tasks
 * that were already runnable. (name) is copied (up to 31 bytes) and appears in error reports
 * such as a stack overflow; it may be NULL. Every task must be awaited with mk_task_await(),
 * which frees it.
 * Does not suspend.
 * Returns 0 and stores the task in (*out); -EINVAL if (out) or (fn) is NULL; -ENOMEM when no
 * stack can be allocated. */
MK_EXPORT int mk_task_spawn(mk_task **out, const char *name, mk_task_fn fn, void *arg);

/* Wait for (task) to end, store its return value in (*result) (when result is not NULL) and free
 * it. (task) must not be used afterwards.
 * Suspends until (task) ends.
 * Returns 0; -ECANCELED if (task) had been cancelled (then *result is its return value, or 0 if
 * it never started); -EINVAL if (task) is NULL, is the caller itself, or is already being
 * awaited. A cancelled caller still waits, whether it was cancelled before the call or during
 * it: a task is never freed under someone who still needs its result. */
MK_EXPORT int mk_task_await(mk_task *task, intptr_t *result);

/* Ask (task) to stop. Cancellation is cooperative, as C has no unwinding: a task that has not
 * started yet never starts; a task that is suspended (sleeping, waiting for a frame, yielding,
 * awaiting) is resumed and its call returns -ECANCELED; from then on every suspending call it
 * makes returns -ECANCELED at once, so its loops end. The task still has to be awaited.
 * Cancelling a task that has ended, or one already cancelled, does nothing.
 * Does not suspend.
 * Returns 0; -EINVAL if (task) is NULL. */
MK_EXPORT int mk_task_cancel(mk_task *task);

/* Let the other runnable tasks run, then continue. Tasks run in the order they became runnable,
 * so a task that yields in a loop lets every other runnable task run once per iteration.
 * Suspends.
 * Returns 0; -ECANCELED if the calling task has been cancelled. */
MK_EXPORT int mk_yield(void);

/* The calling task, or NULL outside a task. */
MK_EXPORT mk_task *mk_task_self(void);

/* The name given at spawn ("main" for the first task, "" if none). */
MK_EXPORT const char *mk_task_name(const mk_task *task);

/* ======================================================================================== */
/*  Time                                                                                    */
/* ======================================================================================== */

/* Nanoseconds on the monotonic clock (CLOCK_MONOTONIC); callable from anywhere. */
MK_EXPORT uint64_t mk_clock_monotonic(void);

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME); callable from anywhere. */
MK_EXPORT uint64_t mk_clock_wall(void);

/* Sleep for at least (ns) nanoseconds of the monotonic clock. mk_sleep(0) is mk_yield().
 * Suspends.
 * Returns 0; -ECANCELED if the calling task is cancelled (at once, or when it happens). */
MK_EXPORT int mk_sleep(uint64_t ns);

/* ======================================================================================== */
/*  Conditions: one task wakes another                                                      */
/* ======================================================================================== */

typedef struct mk_cond mk_cond;

/* No deadline, for mk_cond_wait(). */
#define MK_FOREVER UINT64_MAX

/* Create a condition: a queue of tasks waiting until another task (or a hook) signals it. A signal
 * that finds no task waiting does nothing; a condition keeps no count, so a task checks what it
 * waits for before it waits, as with pthread_cond_t (with one thread, nothing can happen between
 * the check and the wait).
 * Does not suspend.
 * Returns 0 and stores it in (*out); -EINVAL if (out) is NULL; -EPERM outside mk_run; -ENOMEM. */
MK_EXPORT int mk_cond_new(mk_cond **out);

/* Free (cond). Returns 0; -EINVAL if (cond) is NULL; -EBUSY if tasks are still waiting on it
 * (nothing is freed: wake them first); -EPERM from another thread than the one it was made on. */
MK_EXPORT int mk_cond_free(mk_cond *cond);

/* Wait until (cond) is signalled, or until the monotonic clock (mk_clock_monotonic) reaches
 * (deadline) nanoseconds; MK_FOREVER waits with no deadline. Waiters are woken in the order they
 * began to wait.
 * Suspends.
 * Returns 0 when signalled; -ETIMEDOUT when the deadline came first (at once, without suspending,
 * if it has already passed); -ECANCELED if the calling task is cancelled (at once, or while it
 * waits); -EINVAL if (cond) is NULL; -EPERM outside a task (from a hook, too) or on another
 * thread than the one (cond) was made on. */
MK_EXPORT int mk_cond_wait(mk_cond *cond, uint64_t deadline);

/* Wake the task that has waited longest on (cond), if any. It runs after the caller next
 * suspends. Does not suspend; callable from a hook.
 * Returns the number of tasks woken (0 or 1); -EINVAL if (cond) is NULL; -EPERM outside mk_run
 * or on another thread than the one (cond) was made on. */
MK_EXPORT int mk_cond_signal(mk_cond *cond);

/* Wake every task waiting on (cond), in the order they began to wait. As mk_cond_signal();
 * returns the number of tasks woken. */
MK_EXPORT int mk_cond_broadcast(mk_cond *cond);

/* ======================================================================================== */
/*  Hooks                                                                                   */
/* ======================================================================================== */

typedef struct mk_hook mk_hook;

/* Run fn(arg) after every poll for events, as mkernel's Hook: in the scheduler, not in a task,
 * so (fn) must not suspend (suspending calls made from it return -EPERM).
 * Returns the hook, or NULL if (fn) is NULL, outside mk_run, or out of memory. */
MK_EXPORT mk_hook *mk_hook_add(void (*fn)(void *arg), void *arg);

/* Remove and free (hook). Safe from inside a hook, including the hook itself.
 * Returns 0; -EINVAL if (hook) is NULL. */
MK_EXPORT int mk_hook_remove(mk_hook *hook);

/* ======================================================================================== */
/*  Net devices (Mkernel.Net)                                                               */
/* ======================================================================================== */

#define MK_ETHER_HEADER 14 /* bytes of Ethernet header in a frame: destination, source, type */

typedef struct mk_net mk_net;

struct mk_net_config {
	uint8_t mac[6]; /* the device's MAC address */
	unsigned mtu;   /* the interface MTU: the largest frame is mtu + MK_ETHER_HEADER bytes */
};

/* Frames that --net-fault:NAME=... dropped, duplicated, corrupted, delayed and reordered in one
 * direction. */
struct mk_net_fault_stats {
	uint64_t drops, dups, corrupts, delays, reorders;
};

struct mk_net_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t rx_drops; /* frames received but not delivered (larger than mtu + 14, or a full
	                      hub: queue or --net-fault hold-back) */
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_drops; /* frames the kernel (or the link's peer) refused to take */
	/* Faults injected by --net-fault on frames received and on frames sent. Sent frames that
	 * are dropped still count in tx_frames: the wire lost them, not the kernel. */
	struct mk_net_fault_stats fault_rx, fault_tx;
	/* hub: links only. Frames this device sent that a partition, or the far port's link being
	 * down, lost on the way; and the changes this device saw (partition, heal, its link down
	 * or up: see mk_hub_partition and mk_net_set_link). */
	uint64_t cut_drops, link_events;
};

/* Acquire the net device (name) given on the command line as --net:NAME=... and store it in
 * (*out) and its configuration in (*cfg) (cfg may be NULL). The device stays open until mk_run
 * returns. Interfaces are never created: a missing one is an error.
 * Does not suspend (it may sleep the thread up to ~200 ms while the kernel still holds the TAP
 * for a process that just exited).
 * Returns 0, or one of these, with a sentence in mk_last_error():
 *   -EINVAL   (name) or (out) is NULL; the interface is not a TAP (said before whether it is up),
 *             or its name cannot be an interface name (empty, longer than 15 bytes, "." or "..",
 *             or with '/', ':' or white space); the @FD descriptor is not a TAP, or frames on it
 *             would carry a header (attached without IFF_NO_PI, or with IFF_VNET_HDR); or its
 *             --net-pcap file exists but is not a regular file (FIFO, device, directory), or is
 *             also the file of a block device or of another device's capture (nothing is emptied);
 *   -ENOENT   (name) was not given on the command line;
 *   -ENOTDIR  the directory of its --net-pcap file does not exist (or is not a directory);
 *   -EEXIST   (name) was given more than once on the command line;
 *   -EALREADY (name) is already connected;
 *   -ENODEV   the interface does not exist;
 *   -ENETDOWN the interface is down;
 *   -EPERM / -EACCES  no permission to attach to the interface;
 *   -EBADF    the @FD descriptor is not open;
 *   -EBUSY    the interface is attached by another process, or it (or the @FD descriptor, or
 *             a copy of it) is already another net device of this program (named);
 *   -ENOTSUP  --net:NAME=slirp in a build without libslirp;
 *   -EMFILE / -ENFILE / -ENOMEM  out of resources;
 *   other open(2) and write(2) errors of the --net-pcap file as they come (-EACCES, -EROFS,
 *             -ENOSPC, ...), the sentence naming the file. */
MK_EXPORT int mk_net_connect(const char *name, mk_net **out, struct mk_net_config *cfg);

/* Read exactly one frame, Ethernet header included, into buf[off, off + len). (buf) is a buffer of
 * (size) bytes. The frame is read straight into (buf) by the kernel. With len >= mtu + 15 the
 * read is a little cheaper (the check that no frame was cut short needs no second buffer).
 * Suspends when no frame is waiting: the task is parked and resumed as soon as one arrives.
 * Several tasks may read one device: each frame goes to exactly one of them.
 * Returns the frame's length; or
 *   -EINVAL    (buf) is NULL, off + len does not fit in (size), or len < mtu + 14 (nothing is
 *              consumed);
 *   -ECANCELED the calling task was cancelled (nothing is consumed);
 *   -EIO / -ENODEV  the device failed or disappeared. */
MK_EXPORT ssize_t mk_net_read_bigstring(mk_net *net, void *buf, size_t size, size_t off,
                                        size_t len);

/* mk_net_read_bigstring() that never suspends: the frame waiting first, read straight into
 * buf[off, off + len), or -EAGAIN at once when no frame is waiting. A task parked in another read
 * of the device keeps waiting for the next frame. Callable from a hook.
 * Returns the frame's length; or
 *   -EAGAIN    no frame is waiting (nothing is consumed);
 *   -EINVAL    as for mk_net_read_bigstring (nothing is consumed);
 *   -EPERM     outside mk_run, or on another thread than the device's;
 *   -EIO / -ENODEV  the device failed or disappeared. */
MK_EXPORT ssize_t mk_net_try_read(mk_net *net, void *buf, size_t size, size_t off, size_t len);

/* mk_net_read_bigstring() through a fixed-size buffer of the device's own, copied into
 * buf[off, off + len): for memory that must not be handed to the kernel (memory shared with
 * another process, a guarded region, ...). It costs one copy more, and it may let other tasks run
 * more than once before it returns. Same results. */
MK_EXPORT ssize_t mk_net_read_bytes(mk_net *net, void *buf, size_t size, size_t off, size_t len);

/* Write the frame buf[off, off + len) of a buffer of (size) bytes, Ethernet header included.
 * The write is done when the call returns, atomic (the whole frame or nothing), and does not
 * suspend. A frame the kernel refuses is counted in tx_drops. With mk_config.tx_batch
 * (--tx-batch=N) on a TAP and the io_uring backend, the frame is copied and queued instead, and
 * reaches the kernel when the task next suspends or yields; see mk_config.
 * Returns len; 0 if the kernel refused the frame (counted as a drop); or
 *   -EINVAL  (buf) is NULL, off + len does not fit in (size), len < 14 or len > mtu + 14;
 *   -EPERM   outside mk_run. */
MK_EXPORT ssize_t mk_net_write_bigstring(mk_net *net, const void *buf, size_t size, size_t off,
                                         size_t len);

/* mk_net_write_bigstring() for memory that may be anywhere: the frame is copied into the device's
 * own buffer first. Same results; also -EBUSY, nothing sent, when called from inside a filler of
 * mk_net_write_into() on the same device (that buffer holds the frame being filled). */
MK_EXPORT ssize_t mk_net_write_string(mk_net *net, const void *buf, size_t size, size_t off,
                                      size_t len);

/* The filler for mk_net_write_into(): write at most (len) bytes of frame into (buf) and return
 * how many to send. It must not suspend. */
typedef size_t (*mk_net_fill_fn)(void *buf, size_t len, void *ctx);

/* Let the library provide a frame buffer of (len) bytes, have fn(buf, len, ctx) fill it, and write
 * the (n) bytes it returns as one frame. Atomic, and does not suspend.
 * Inside (fn), mk_net_write_into() and mk_net_write_string() on the same device are refused with
 * -EBUSY (the buffer is the device's one transmit buffer); mk_net_write_bigstring() works and its
 * frame goes out at once, before the one being filled.
 * Returns n; 0 if (fn) returned 0 (nothing is sent) or the kernel refused the frame (counted in
 * tx_drops); -EINVAL if (fn) is NULL, len > mtu + 14, or (fn) returned more than (len) or
 * fewer than 14 bytes (nothing is sent); -EBUSY when called from inside a filler of the same
 * device (fn is not called); -EPERM outside mk_run. */
MK_EXPORT ssize_t mk_net_write_into(mk_net *net, size_t len, mk_net_fill_fn fn, void *ctx);

/* Copy the device's counters into (*out).
 * Returns 0; -EINVAL if an argument is NULL; -EPERM outside the mk_run that connected (net) or
 * from another thread. */
MK_EXPORT int mk_net_stats(const mk_net *net, struct mk_net_stats *out);

/* The name the device was connected by; NULL for NULL, outside the mk_run that connected (net),
 * or from another thread. */
MK_EXPORT const char *mk_net_name(const mk_net *net);

/* ---- The in-process switch (hub: links): partitions and links, for simulated networks ---- */

/* Cut the hub LAN (lan) into groups: (groups) names its devices, groups separated by '|' and
 * devices within one by ',', e.g. "a,b|c". Frames between two groups are lost from now on
 * (counted in the sender's cut_drops); the devices of (lan) not named form one more group. A
 * second call replaces the first. Each device of the LAN counts it in link_events and its
 * capture, if any, gets a note frame (see README, "Deterministic tests").
 * Does not suspend; callable from a hook.
 * Returns 0; -ENOENT if no connected device of this mk_run is on (lan); -EINVAL if an argument is
 * NULL, a group is empty, or a name is not a connected device of (lan) or is named twice, with a
 * sentence; -EPERM outside mk_run or from another thread. */
MK_EXPORT int mk_hub_partition(const char *lan, const char *groups);

/* Join every device of the hub LAN (lan) again. Returns as mk_hub_partition(). */
MK_EXPORT int mk_hub_heal(const char *lan);

/* Take the link of (net), a hub: device, down (up = 0) or up again (up = 1), as unplugging its
 * cable would: while down, its writes are refused (return 0, counted in tx_drops, as a TAP
 * whose link is down) and frames sent to it are lost (counted in the sender's cut_drops); frames
 * already queued for it stay. Counted in link_events and noted in its capture when it changes.
 * Does not suspend; callable from a hook.
 * Returns 0; -EINVAL if (net) is NULL, not a hub: device, or (up) is neither 0 nor 1; -EPERM
 * outside the mk_run that connected (net) or from another thread. */
MK_EXPORT int mk_net_set_link(mk_net *net, int up);

/* ======================================================================================== */
/*  Block devices (Mkernel.Block)                                                           */
/* ======================================================================================== */

/* A block device is a file (or a Linux block device) given on the command line:
 *   --block:NAME=FILE            the file, opened as it is: never created, never truncated
 *   --block-sector-size:NAME=N   its sector size: a power of two from 512 to 1048576 (512)
 * Every read and write moves exactly one sector, at a sector-aligned offset inside the device.
 * A sector is never torn by the program being killed in the middle of a write: afterwards it holds
 * either what it held before or what was written (for sectors up to the page size, 4096 bytes;
 * the kernel copies a larger one page by page). Nor is it torn by a full file system: a write
 * of up to a page gets its space whole or fails with -ENOSPC having written nothing, and for
 * larger sectors mk_block_connect() allocates the holes of a sparse file (they still read as
 * zeros), so that no write needs new space on a file system that overwrites in place (ext4, xfs,
 * tmpfs; not a copy-on-write one). Only mk_block_flush() makes writes durable against a crash of
 * the machine. Reads and writes that are in flight at once, from several
 * tasks, are not ordered with each other. */

typedef struct mk_block mk_block;

struct mk_block_stats {
	uint64_t read_ops, read_bytes;   /* sectors read and their bytes, atomic or scheduled */
	uint64_t write_ops, write_bytes; /* sectors written and their bytes */
	uint64_t flush_ops;              /* flushes that succeeded */
	uint64_t immediate_ops; /* scheduled reads and writes (mk_block_read, _write) that the
	                           kernel did at once, without the event loop (RWF_NOWAIT: the data
	                           was in the page cache; or a file on tmpfs or ramfs, whose data
	                           is in memory); also counted in read_ops or write_ops */
};

/* Acquire the block device (name) given on the command line as --block:NAME=FILE and store it in
 * (*out). The file is opened for reading and writing, or for reading only when it may not be
 * written (then writes fail with -EROFS). It is locked (flock) against other programs until
 * mk_run returns, when the device is closed.
 * Does not suspend (it may sleep the thread up to ~200 ms while the kernel still holds the file
 * for a program that was just killed with I/O in flight).
 * Returns 0, or one of these, with a sentence in mk_last_error():
 *   -EINVAL   (name) or (out) is NULL; the file is empty, its size is not a multiple of the
 *             sector size, or it is neither a regular file nor a block device (its type is
 *             looked at first: a terminal, a FIFO or another device is never opened); it is a
 *             file of the kernel's own file systems (/proc, /sys, ...); it is a block device
 *             of size 0, such as a loop device with no file attached;
 *   -ENOENT   (name) was not given on the command line;
 *   -EEXIST   (name) was given more than once on the command line;
 *   -EALREADY (name) is already connected;
 *   -ENODEV   the file does not exist;
 *   -EACCES   the file may not even be read;
 *   -EBUSY    another program (or another connect of the same file) has the file locked;
 *   -EPERM    outside mk_run;
 *   -ENOSPC   the file is sparse, its sectors are larger than a page, and its file system has
 *             no room for its holes; the file is left as it was;
 *   -EMFILE / -ENFILE / -ENOMEM  out of resources; other open(2) errors as they come. */
MK_EXPORT int mk_block_connect(const char *name, mk_block **out);

/* The sector size in bytes: what every read and write moves. */
MK_EXPORT size_t mk_block_sector_size(const mk_block *block);

/* The device's length in bytes, a multiple of the sector size. */
MK_EXPORT uint64_t mk_block_length(const mk_block *block);

/* 1 if the file was opened read-only (writes fail with -EROFS), else 0. */
MK_EXPORT int mk_block_read_only(const mk_block *block);

/* Read the sector at byte (src_off) of the device into dst[dst_off, dst_off + sector size).
 * (dst) is a buffer of (dst_size) bytes.
 * Does not suspend: the read is done when the call returns, and no other task runs meanwhile.
 * Returns 0; or
 *   -EINVAL  (block) or (dst) is NULL, (src_off) is not a multiple of the sector size or the
 *            sector is not inside the device, or the sector does not fit in (dst) from
 *            (dst_off); nothing is read and (dst) is untouched;
 *   -EPERM   outside mk_run;
 *   -EIO     the file failed or was truncated behind the program (other errors of pread(2) as
 *            they come); (dst) may then hold part of the sector. */
MK_EXPORT int mk_block_atomic_read(mk_block *block, uint64_t src_off, void *dst, size_t dst_size,
                                   size_t dst_off);

/* Write src[src_off, src_off + sector size) to the sector at byte (dst_off) of the device.
 * (src) is a buffer of (src_size) bytes.
 * Does not suspend: the write is done (in the kernel, not yet durable) when the call returns, and
 * no other task runs meanwhile.
 * Returns 0; or
 *   -EINVAL  as for mk_block_atomic_read; nothing is written;
 *   -EROFS   the device is read-only (mk_last_error() names the file and the fix); nothing is
 *            written;
 *   -EPERM   outside mk_run;
 *   -ENOSPC  the file system is full; nothing of the sector was written (see above);
 *   -EIO / ...  the other errors of pwrite(2). */
MK_EXPORT int mk_block_atomic_write(mk_block *block, uint64_t dst_off, const void *src,
                                    size_t src_size, size_t src_off);

/* mk_block_atomic_read() scheduled through the event loop (io_uring; with the epoll backend the
 * read is done at once and reported at the next poll). A sector the kernel can copy without
 * waiting (in the page cache: preadv2 with RWF_NOWAIT) is read at once instead, without the
 * round trip; the task then yields, so that other runnable tasks still get their turn.
 * Suspends: the task is parked until the read completes, and other tasks run meanwhile. Many
 * reads and writes may be in flight at once, from many tasks.
 * Cancellation: a task cancelled while its read is in flight is not resumed before the read has
 * completed (the kernel writes into (dst) until then), and the call returns the read's own
 * result: 0 means (dst) holds the sector. The next suspending call returns -ECANCELED.
 * Returns what mk_block_atomic_read() returns; also
 *   -ECANCELED  the calling task had been cancelled before the call (nothing is read);
 *   -EPERM      outside a task (from a hook, too);
 *   -EBUSY      the event loop could take no more requests (nothing is read). */
MK_EXPORT int mk_block_read(mk_block *block, uint64_t src_off, void *dst, size_t dst_size,
                            size_t dst_off);

/* mk_block_atomic_write() scheduled through the event loop. (src) must stay unchanged until the
 * call returns.
 * Suspends, as mk_block_read().
 * Cancellation: a write in flight is never left half-done. A task cancelled while its write is
 * in flight is not resumed before the whole sector has been handed to the kernel (or the kernel
 * failed it), and the call returns the write's own result: 0 means the sector was written, as if
 * the task had not been cancelled. The next suspending call returns -ECANCELED.
 * Returns what mk_block_atomic_write() returns; also -ECANCELED (cancelled before the call:
 * nothing is written), -EPERM and -EBUSY as for mk_block_read(). */
MK_EXPORT int mk_block_write(mk_block *block, uint64_t dst_off, const void *src, size_t src_size,
                             size_t src_off);

/* Make every write that returned before this call durable (fsync(2) through the event loop).
 * Writes still in flight in other tasks are not covered.
 * Suspends until the flush completes. A task cancelled meanwhile still waits for it, and gets its
 * result.
 * Returns 0; or -EINVAL if (block) is NULL; -ECANCELED if the calling task had been cancelled
 * before the call (nothing is flushed); -EPERM outside a task; -EBUSY as for mk_block_read();
 * -EIO / -ENOSPC / ...  the errors of fsync(2): some writes may not be durable. */
MK_EXPORT int mk_block_flush(mk_block *block);

/* Copy the device's counters into (*out).
 * Returns 0; -EINVAL if an argument is NULL; -EPERM outside the mk_run that connected (block) or
 * from another thread. */
MK_EXPORT int mk_block_stats(const mk_block *block, struct mk_block_stats *out);

/* The name the device was connected by; NULL for NULL, outside the mk_run that connected
 * (block), or from another thread. mk_block_sector_size(), mk_block_length() and
 * mk_block_read_only() give 0 then. */
MK_EXPORT const char *mk_block_name(const mk_block *block);

#ifdef __cplusplus
}
#endif

#endif /* MKHOST_H */
