/* solo5.h for mkhost: the Solo5 guest API, implemented on a Linux process.
 *
 * A unikernel written against Solo5 includes this header unchanged and links with
 * libmkhost-solo5 (pkg-config module mkhost-solo5), which provides main(). The names, types and
 * values below are Solo5's (they are the ABI the unikernel is compiled against); the comments
 * say what each call does here.
 *
 * The program is run as a Solo5 tender would run the unikernel:
 *
 *     ./app [--mem=MB] [--net:NAME=IFACE|@FD] [--net-mac:NAME=MAC]
 *           [--block:NAME=FILE] [--block-sector-size:NAME=N]
 *           [--busy-poll=US] [--stack-size=SIZE] [--backend=io_uring|epoll|auto] [--] [ARGS...]
 *
 * --busy-poll, --stack-size (of every task, solo5_app_main's included) and --backend tune mkhost
 * as mk_config does for its own programs; ./app --help lists every option.
 *
 * Every device given is attached before solo5_app_main() runs; one that cannot be attached stops
 * the program there with a message and exit status 1, as the tenders do. When the program was
 * linked with a manifest (mkhost-solo5-elftool gen-manifest), the devices given must be exactly
 * those it declares, with their kinds, or it stops there too. ARGS, joined by single
 * spaces, are the cmdline.
 *
 * Calls that take a handle accept only handles returned by the acquire calls of this program and
 * return SOLO5_R_EINVAL for any other. No call here ever aborts the program on its own.
 */
#ifndef SOLO5_H_INCLUDED
#define SOLO5_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- results -------------------------------------------------------------------------- */

/* What the calls that can fail return. A program should not build on getting EINVAL or EUNSPEC
 * rather than something else: Solo5 targets may end the program instead of returning them. */
typedef enum {
	SOLO5_R_OK = 0, /* done */
	SOLO5_R_AGAIN,  /* nothing to do now; the same call may succeed later */
	SOLO5_R_EINVAL, /* an argument is wrong (a bad handle, size or offset) */
	SOLO5_R_EUNSPEC /* it failed for another reason */
} solo5_result_t;

/* ---- start and end -------------------------------------------------------------------- */

/* What solo5_app_main() is given. Read-only.
 * (cmdline): the arguments that follow "--" on the command line (or the first argument that is
 *   not an option), joined by single spaces; "" when there are none. A leading --solo5:quiet or
 *   --solo5:debug is taken out, as Solo5 does.
 * (heap_start, heap_size): one contiguous region of readable, writable, non-executable memory
 *   that belongs to the program alone: --mem=MB megabytes (512 by default), mapped at start and
 *   committed by the kernel page by page as it is touched. The program's stack is not inside it:
 *   solo5_app_main() runs on an mkhost task stack of its own (8 MiB, or --stack-size). */
struct solo5_start_info {
	const char *cmdline;
	uintptr_t heap_start;
	size_t heap_size;
};

/* Written by the application. Returning from it ends the program as solo5_exit(its value). */
int solo5_app_main(const struct solo5_start_info *info);

#define SOLO5_EXIT_SUCCESS 0
#define SOLO5_EXIT_FAILURE 1
#define SOLO5_EXIT_ABORT   255 /* 255 and up belong to Solo5 */

/* End the program with exit status (status) (its low 8 bits, as for exit(3)). Prints
 * "Solo5: solo5_exit(N) called" on stderr as Solo5 does (not with --solo5:quiet). The devices
 * are closed as when solo5_app_main() returns, then atexit handlers run. */
void solo5_exit(int status) __attribute__((noreturn));

/* End the program abnormally: "Solo5: solo5_abort() called" on stderr (not with
 * --solo5:quiet), the devices are closed, and the exit status is SOLO5_EXIT_ABORT (255). To stop
 * in a debugger instead, break on solo5_abort.
 *
 * The other ends, as on Solo5: a failed stack check in code built by mkhost-solo5-cc prints
 * "Solo5: ABORT: Stack corruption detected" and exits with 255 at once (the unikernel's own
 * __stack_chk_fail runs instead when it has one); a fault (a NULL dereference, an invalid
 * instruction) kills the process with its signal (exit status 128 + N, e.g. 139 for SIGSEGV);
 * with --sandbox, a system call the unikernel makes itself kills it with SIGSYS (159). */
void solo5_abort(void) __attribute__((noreturn));

/* ---- thread-local storage ------------------------------------------------------------- */

/* A unikernel built by mkhost-solo5-cc owns the thread pointer (%fs base on x86-64), as on
 * Solo5: it starts with none (0, so reading %fs:0 faults), lays out a TLS block of its own with
 * the three calls below and installs it with solo5_set_tls_base(); it may switch between blocks
 * at will. mkhost and glibc keep a thread pointer of their own, put in place on every call into
 * this API and in mkhost's signal handlers, and taken out on the way back.
 *
 * A program built plainly against glibc (the pkg-config line) calls glibc itself, so the thread
 * pointer must stay glibc's: there solo5_set_tls_base() returns SOLO5_R_EUNSPEC and changes
 * nothing, and its thread-local variables work through glibc's own block. */

/* The bytes a TLS block takes: the thread-local variables of the executable (.tdata and .tbss)
 * and the thread pointer's own word. */
size_t solo5_tls_size(void);

/* The thread pointer to give solo5_set_tls_base() for the block at (tls): on x86-64 the block
 * lies below it (TLS variant II). */
uintptr_t solo5_tls_tp_offset(uintptr_t tls);

/* Initialise the block of solo5_tls_size() bytes at (tls): .tdata copied, .tbss zeroed, the
 * thread pointer's word pointing to itself. (tls) must be aligned to the TLS segment's alignment
 * (16 bytes suffices unless the unikernel asks for more).
 * Returns SOLO5_R_OK; SOLO5_R_EINVAL when (tls) is 0 or misaligned. */
solo5_result_t solo5_tls_init(uintptr_t tls);

/* Make (base), as solo5_tls_tp_offset() gave it, the thread pointer of the unikernel.
 * Returns SOLO5_R_OK (built by mkhost-solo5-cc); SOLO5_R_EUNSPEC, changing nothing, in a
 * program built against glibc (see above). */
solo5_result_t solo5_set_tls_base(uintptr_t base);

/* ---- time ----------------------------------------------------------------------------- */

/* Nanoseconds. */
typedef uint64_t solo5_time_t;

/* Nanoseconds on the host's monotonic clock (CLOCK_MONOTONIC), from an unspecified start. */
solo5_time_t solo5_clock_monotonic(void);

/* Nanoseconds since 1970-01-01 00:00 UTC, from the host's clock (CLOCK_REALTIME). */
solo5_time_t solo5_clock_wall(void);

/* A device, as returned by an acquire call: a number below 64. */
typedef uint64_t solo5_handle_t;

/* A set of handles: bit (1 << handle) for each. */
typedef uint64_t solo5_handle_set_t;

/* Wait until solo5_clock_monotonic() reaches (deadline), or until at least one acquired net
 * device has a frame for solo5_net_read(), whichever comes first. When (ready_set) is not NULL it
 * receives the set of net devices that have one: for each of them the next solo5_net_read()
 * returns SOLO5_R_OK. It returns at once (after letting the event loop run once) when a frame is
 * already waiting or (deadline) has passed. */
void solo5_yield(solo5_time_t deadline, solo5_handle_set_t *ready_set);

/* ---- console -------------------------------------------------------------------------- */

/* Write (size) bytes of (buf) to standard output, unbuffered. Best effort: it returns nothing,
 * and bytes the host refuses (a closed pipe, a full disk) are lost. */
void solo5_console_write(const char *buf, size_t size);

/* ---- network -------------------------------------------------------------------------- */

#define SOLO5_NET_ALEN 6  /* bytes in a MAC address */
#define SOLO5_NET_HLEN 14 /* bytes in an Ethernet header: destination, source, type */

struct solo5_net_info {
	uint8_t mac_address[SOLO5_NET_ALEN]; /* --net-mac:NAME=MAC, or a random local address */
	size_t mtu;                          /* the interface's MTU; a frame is at most mtu + 14 */
};

/* Acquire the net device given as --net:NAME=... and store its handle in (*handle) and its
 * properties in (*info).
 * Returns SOLO5_R_OK; SOLO5_R_EINVAL if no net device (name) was given on the command line, if
 * (name) was already acquired, or if an argument is NULL. */
solo5_result_t solo5_net_acquire(const char *name, solo5_handle_t *handle,
                                 struct solo5_net_info *info);

/* Send one frame, Ethernet header included: (buf) holds (size) bytes, from 14 to mtu + 14.
 * Never waits. A frame the host refuses is dropped without a word (counted by mkhost).
 * Returns SOLO5_R_OK; SOLO5_R_EINVAL for a bad handle, a NULL (buf), or a bad (size). */
solo5_result_t solo5_net_write(solo5_handle_t handle, const uint8_t *buf, size_t size);

/* Receive one frame, Ethernet header included, into (buf), which holds (size) bytes: at least
 * mtu + 14. Never waits.
 * Returns SOLO5_R_OK with the frame's length in (*read_size); SOLO5_R_AGAIN when no frame is
 * waiting; SOLO5_R_EINVAL for a bad handle, a NULL pointer or a (size) too small (nothing is
 * consumed); SOLO5_R_EUNSPEC when the device failed. */
solo5_result_t solo5_net_read(solo5_handle_t handle, uint8_t *buf, size_t size, size_t *read_size);

/* ---- block storage -------------------------------------------------------------------- */

/* Byte offsets into a block device. */
typedef uint64_t solo5_off_t;

struct solo5_block_info {
	solo5_off_t capacity;   /* the device's length in bytes */
	solo5_off_t block_size; /* its sector size: every transfer is a whole number of these */
};

/* Acquire the block device given as --block:NAME=FILE and store its handle in (*handle) and its
 * properties in (*info).
 * Returns SOLO5_R_OK; SOLO5_R_EINVAL if no block device (name) was given on the command line, if
 * (name) was already acquired, or if an argument is NULL. */
solo5_result_t solo5_block_acquire(const char *name, solo5_handle_t *handle,
                                   struct solo5_block_info *info);

/* Write (size) bytes of (buf) to the device from byte (offset). (offset) and (size) must be
 * multiples of block_size, (size) at least one block (Solo5's own targets take exactly one), and
 * the whole range inside the device. Never waits; the data is in the host's cache when it returns.
 * Returns SOLO5_R_OK; SOLO5_R_EINVAL for a bad handle, a NULL (buf), or a misaligned or
 * out-of-range transfer (nothing is written); SOLO5_R_EUNSPEC when the host failed the write or
 * the file is read-only (with several blocks, the ones before a failure may have been written). */
solo5_result_t solo5_block_write(solo5_handle_t handle, solo5_off_t offset, const uint8_t *buf,
                                 size_t size);

/* Read (size) bytes from byte (offset) of the device into (buf), with the same rules as
 * solo5_block_write(). Never reads less.
 * Returns SOLO5_R_OK; SOLO5_R_EINVAL as for solo5_block_write() (nothing is read);
 * SOLO5_R_EUNSPEC when the host failed the read. */
solo5_result_t solo5_block_read(solo5_handle_t handle, solo5_off_t offset, uint8_t *buf,
                                size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOLO5_H_INCLUDED */
