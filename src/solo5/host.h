/* What main.c (the tender part: options, heap, mk_run) and solo5.c (the Solo5 calls) share.
 * Internal to libmkhost-solo5; the names carry the mk__solo5_ prefix. */
#ifndef MKHOST_SOLO5_HOST_H
#define MKHOST_SOLO5_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "solo5.h"

enum mk__solo5_kind {
	MK__SOLO5_NET = 1,
	MK__SOLO5_BLOCK,
};

/* Attach the device (name) given on the command line, as a tender does before the unikernel
 * starts. Called from mk_run's main task, once per device, in command-line order: the handles
 * are given out in that order. Returns 0, or a negative errno value with the sentence in
 * mk_last_error(). */
int mk__solo5_attach(enum mk__solo5_kind kind, const char *name);

/* Run solo5_app_main(info) on the calling task and return how it ended: 0 with the exit status in
 * (*status) (from its return, solo5_exit or solo5_abort); or -EINTR when mkhost stopped the
 * program (SIGINT or SIGTERM), with the signal in (*status). */
int mk__solo5_run_app(const struct solo5_start_info *info, int *status);

/* --solo5:quiet: Solo5's "info" lines (solo5_exit, solo5_abort) are not printed. */
extern bool mk__solo5_quiet;

/* The stack protector for unikernels built by mkhost-solo5-cc; see solo5.c. */
extern uintptr_t mk__solo5_stack_chk_guard;
void mk__solo5_stack_chk_fail(void) __attribute__((noreturn));

/* The manifest of a unikernel (mkhost-solo5-elftool gen-manifest writes it as C, the symbol
 * mk__solo5_manifest): the devices it declares, as Solo5's MFT1 holds them. */
#define MK__SOLO5_MFT_VERSION     1
#define MK__SOLO5_MFT_NAME_SIZE   68 /* 67 characters and the NUL */
#define MK__SOLO5_MFT_MAX_ENTRIES 63
enum { MK__SOLO5_MFT_NET_BASIC = 1, MK__SOLO5_MFT_BLOCK_BASIC = 2 };

struct mk__solo5_mft {
	uint32_t version;
	uint32_t entries;
	struct {
		char name[MK__SOLO5_MFT_NAME_SIZE];
		uint32_t type;
	} e[];
};

/* The unikernel's thread pointer (tls.c). mk__solo5_tls_setup() once, on the thread that runs
 * the unikernel, before it starts; then mk__solo5_tls_wrap_signals() once mkhost has installed
 * its signal handlers. mk__solo5_tls_call_app() runs solo5_app_main with the unikernel's thread
 * pointer when it was built by mkhost-solo5-cc (mk__solo5_tls_switching()), and
 * mk__solo5_tls_host() puts mkhost's back. */
void mk__solo5_tls_setup(void);
void mk__solo5_tls_wrap_signals(void);
bool mk__solo5_tls_switching(void);
bool mk__solo5_tls_fsgsbase(void);
int mk__solo5_tls_call_app(const struct solo5_start_info *info);
void mk__solo5_tls_host(void);

/* Forget the devices (mk_run has closed them), so that stale handles are refused. */
void mk__solo5_detach_all(void);

#endif
