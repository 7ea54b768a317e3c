/* Thread-local storage, and the thread pointer that belongs to the unikernel.
 *
 * On Solo5 the unikernel owns the thread pointer (%fs base on x86-64): it starts with none, lays
 * out its TLS blocks with solo5_tls_size/solo5_tls_tp_offset/solo5_tls_init and installs one with
 * solo5_set_tls_base. Here glibc and mkhost need their own thread pointer all the time (errno,
 * the stack protector, malloc, mk__sched_current). So for a unikernel built by mkhost-solo5-cc,
 * which links in the marker mk__solo5_tls_abi, the thread pointer is switched at the boundary:
 *   - the unikernel's calls (solo5_* in its code) are renamed by the toolchain to the
 *     trampolines below, which install mkhost's thread pointer, make the call, and put the
 *     unikernel's back;
 *   - solo5_app_main() is entered with the unikernel's thread pointer (0 at start, so that
 *     reading %fs:0 faults, as on spt) and mkhost's is put back when it returns;
 *   - every signal handler that mkhost (or a library) installed is wrapped, so it runs with
 *     mkhost's thread pointer and the interrupted one is put back after.
 * A program built plainly against glibc (the pkg-config line) has no marker: it calls glibc
 * itself and keeps glibc's thread pointer, and solo5_set_tls_base refuses (see solo5.h).
 *
 * The switch is wrfsbase where the kernel enables FSGSBASE for user space (AT_HWCAP2 bit 1), and
 * arch_prctl(ARCH_SET_FS) otherwise, and always under valgrind (which does not emulate wrfsbase).
 * Both are made without touching errno, which lives behind the thread pointer.
 *
 * The TLS image is the executable's PT_TLS segment: the unikernel's .tdata and .tbss, laid out
 * by the linker together with mkhost's own thread-locals (they take a few bytes of each block and
 * are never used through it). x86-64 is TLS variant II: the block ends at the thread pointer,
 * which points to itself. */
#include <asm/prctl.h>
#include <elf.h>
#include <link.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>

#include "host.h"
#include "solo5.h"

#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

/* Code that runs with the unikernel's thread pointer must not read the stack protector's canary
 * from it. */
#if defined(__has_attribute) && __has_attribute(no_stack_protector)
#define NO_SSP __attribute__((no_stack_protector))
#else
#define NO_SSP __attribute__((optimize("no-stack-protector")))
#endif

/* Defined (by mkhost-solo5-cc's link) when the unikernel was built by it. */
extern const char mk__solo5_tls_abi __attribute__((weak));

static bool switching; /* the unikernel has a thread pointer of its own */
static bool fsgsbase;
static uintptr_t host_tp; /* glibc's */
static uintptr_t uk_tp;   /* the unikernel's: 0 until solo5_set_tls_base */
static bool running;      /* inside solo5_app_main: before it (constructors), no switch */

static struct {
	const uint8_t *image; /* .tdata */
	size_t filesz, memsz, align;
} tls;

static inline long raw_arch_prctl(long code, unsigned long addr)
{
	long r;

	__asm__ volatile("syscall"
	                 : "=a"(r)
	                 : "a"((long)SYS_arch_prctl), "D"(code), "S"(addr)
	                 : "rcx", "r11", "memory");
	return r;
}

static inline void set_fs(uintptr_t v)
{
	if (fsgsbase)
		__asm__ volatile("wrfsbase %0" : : "r"(v) : "memory");
	else
		raw_arch_prctl(ARCH_SET_FS, v);
}

static inline uintptr_t get_fs(void)
{
	uintptr_t v = 0;

	if (fsgsbase)
		__asm__ volatile("rdfsbase %0" : "=r"(v) : : "memory");
	else
		raw_arch_prctl(ARCH_GET_FS, (unsigned long)&v);
	return v;
}

static int find_tls(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];
		if (p->p_type != PT_TLS)
			continue;
		tls.image = (const uint8_t *)(info->dlpi_addr + p->p_vaddr);
		tls.filesz = p->p_filesz;
		tls.memsz = p->p_memsz;
		tls.align = p->p_align > sizeof(uintptr_t) ? p->p_align : sizeof(uintptr_t);
	}
	return 1; /* the first object is the executable */
}

bool mk__solo5_tls_switching(void)
{
	return &mk__solo5_tls_abi != NULL;
}

void mk__solo5_tls_setup(void)
{
	tls.align = sizeof(uintptr_t);
	dl_iterate_phdr(find_tls, NULL);
	switching = mk__solo5_tls_switching();
	fsgsbase = (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0 && !RUNNING_ON_VALGRIND;
	host_tp = get_fs();
	uk_tp = 0;
}

bool mk__solo5_tls_fsgsbase(void)
{
	return fsgsbase;
}

/* ---- signal handlers ------------------------------------------------------------------- */

static struct sigaction wrapped[NSIG];

static NO_SSP void on_signal(int sig, siginfo_t *si, void *uc)
{
	uintptr_t was = get_fs();
	const struct sigaction *h = &wrapped[sig];

	set_fs(host_tp);
	if (h->sa_flags & SA_SIGINFO)
		h->sa_sigaction(sig, si, uc);
	else
		h->sa_handler(sig);
	set_fs(was);
}

void mk__solo5_tls_wrap_signals(void)
{
	if (!switching)
		return;
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0)
			continue;
		if (!(sa.sa_flags & SA_SIGINFO) &&
		    (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
			continue;
		if ((sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == on_signal)
			continue;
		wrapped[sig] = sa;
		sa.sa_sigaction = on_signal;
		sa.sa_flags |= SA_SIGINFO;
		sa.sa_flags &=
		    ~(int)SA_RESETHAND; /* the wrapped handler's own flag is kept below */
		if (wrapped[sig].sa_flags & SA_RESETHAND)
			sa.sa_flags |= SA_RESETHAND;
		sigaction(sig, &sa, NULL);
	}
}

/* ---- the unikernel's entry --------------------------------------------------------------- */

NO_SSP int mk__solo5_tls_call_app(const struct solo5_start_info *info)
{
	int r;

	if (!switching)
		return solo5_app_main(info);
	running = true;
	set_fs(uk_tp);
	r = solo5_app_main(info);
	set_fs(host_tp);
	running = false;
	return r;
}

/* In case the unikernel left by a path that skipped the return (solo5_exit unwinds from inside
 * a trampoline, with mkhost's thread pointer already in place). */
void mk__solo5_tls_host(void)
{
	if (running)
		set_fs(host_tp);
	running = false;
}

/* ---- the TLS calls ----------------------------------------------------------------------- */

static size_t round_up(size_t n, size_t a)
{
	return (n + a - 1) & ~(a - 1);
}

size_t solo5_tls_size(void)
{
	return round_up(tls.memsz, tls.align) + sizeof(uintptr_t);
}

uintptr_t solo5_tls_tp_offset(uintptr_t tls_block)
{
	return tls_block + round_up(tls.memsz, tls.align);
}

solo5_result_t solo5_tls_init(uintptr_t tls_block)
{
	uintptr_t *tp;

	if (tls_block == 0 || tls_block % tls.align != 0)
		return SOLO5_R_EINVAL;
	tp = (uintptr_t *)solo5_tls_tp_offset(tls_block);
	memcpy((void *)tls_block, tls.image, tls.filesz);
	memset((uint8_t *)tls_block + tls.filesz, 0,
	       (size_t)((uintptr_t)tp - tls_block) - tls.filesz);
	*tp = (uintptr_t)tp;
	return SOLO5_R_OK;
}

/* ---- the trampolines --------------------------------------------------------------------- */
/* One per call of solo5.h: mkhost's thread pointer in, the unikernel's back. */

#define ENTER() set_fs(host_tp)
#define BACK()  set_fs(uk_tp)

#define TRAMPOLINE(ret, name, params, args)                                                        \
	NO_SSP ret mk__solo5_tls_##name params;                                                    \
	NO_SSP ret mk__solo5_tls_##name params                                                     \
	{                                                                                          \
		if (!running)                                                                      \
			return name args;                                                          \
		ENTER();                                                                           \
		ret r_ = name args;                                                                \
		BACK();                                                                            \
		return r_;                                                                         \
	}

#define TRAMPOLINE_VOID(name, params, args)                                                        \
	NO_SSP void mk__solo5_tls_##name params;                                                   \
	NO_SSP void mk__solo5_tls_##name params                                                    \
	{                                                                                          \
		if (!running) {                                                                    \
			name args;                                                                 \
			return;                                                                    \
		}                                                                                  \
		ENTER();                                                                           \
		name args;                                                                         \
		BACK();                                                                            \
	}

/* clang-format off */
TRAMPOLINE(solo5_time_t, solo5_clock_monotonic, (void), ())
TRAMPOLINE(solo5_time_t, solo5_clock_wall, (void), ())
TRAMPOLINE_VOID(solo5_yield, (solo5_time_t deadline, solo5_handle_set_t *ready),
                (deadline, ready))
TRAMPOLINE_VOID(solo5_console_write, (const char *buf, size_t size), (buf, size))
TRAMPOLINE(solo5_result_t, solo5_net_acquire,
           (const char *name, solo5_handle_t *h, struct solo5_net_info *info), (name, h, info))
TRAMPOLINE(solo5_result_t, solo5_net_write, (solo5_handle_t h, const uint8_t *buf, size_t size),
           (h, buf, size))
TRAMPOLINE(solo5_result_t, solo5_net_read,
           (solo5_handle_t h, uint8_t *buf, size_t size, size_t *read_size),
           (h, buf, size, read_size))
TRAMPOLINE(solo5_result_t, solo5_block_acquire,
           (const char *name, solo5_handle_t *h, struct solo5_block_info *info), (name, h, info))
TRAMPOLINE(solo5_result_t, solo5_block_write,
           (solo5_handle_t h, solo5_off_t off, const uint8_t *buf, size_t size),
           (h, off, buf, size))
TRAMPOLINE(solo5_result_t, solo5_block_read,
           (solo5_handle_t h, solo5_off_t off, uint8_t *buf, size_t size), (h, off, buf, size))
TRAMPOLINE(size_t, solo5_tls_size, (void), ())
TRAMPOLINE(uintptr_t, solo5_tls_tp_offset, (uintptr_t block), (block))
TRAMPOLINE(solo5_result_t, solo5_tls_init, (uintptr_t block), (block))
/* clang-format on */

NO_SSP void mk__solo5_tls_solo5_exit(int status) __attribute__((noreturn));
NO_SSP void mk__solo5_tls_solo5_exit(int status)
{
	if (running)
		ENTER();
	solo5_exit(status);
}

NO_SSP void mk__solo5_tls_solo5_abort(void) __attribute__((noreturn));
NO_SSP void mk__solo5_tls_solo5_abort(void)
{
	if (running)
		ENTER();
	solo5_abort();
}

/* The unikernel's solo5_set_tls_base: the thread pointer it runs with from now on. */
NO_SSP solo5_result_t mk__solo5_tls_solo5_set_tls_base(uintptr_t base);
NO_SSP solo5_result_t mk__solo5_tls_solo5_set_tls_base(uintptr_t base)
{
	uk_tp = base;
	if (running)
		BACK();
	return SOLO5_R_OK;
}
