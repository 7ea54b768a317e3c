/* Green threads: stacks, the first entry into a stack, switches, and stack-overflow reports.
 *
 * A fiber is a stack plus a saved context. It is made once with makecontext() and entered once
 * with setcontext(); its entry function saves a register-only context and goes back to its
 * creator, and from then on every switch is register-only (switch_x86_64.S), without the
 * rt_sigprocmask system call that swapcontext() makes. A fiber runs tasks one after another: when a
 * task ends, its fiber goes back to a pool and the next task started on it costs no system call at
 * all.
 *
 * Stacks are mmap'ed with a guard region below them. On kernels with MADV_GUARD_INSTALL (6.13+)
 * the guard costs no VMA, so 100,000 stacks fit under vm.max_map_count; elsewhere it is an
 * mprotect'ed range. A fault in the guard of the running task is reported with the task's name.
 *
 * A frame larger than the guard could skip it and write into the stack mapped below, another
 * task's. Code built with -fstack-clash-protection (mkhost itself, and programs built with its
 * pkg-config flags) probes every page of a large frame, so its first probe past the stack lands
 * in the guard whatever the frame's size. For code built without (a unikernel's own objects), the
 * guard is as large as the default stack: an unprobed frame of up to GUARD_SIZE is caught. It
 * costs address space and, with MADV_GUARD_INSTALL, page tables (the guard is marked in them):
 * 100,000 tasks take 97 MiB of page tables rather than 61 with a 64 KiB guard, and about a
 * tenth more time to spawn; a 1 MiB guard would take 244 MiB and twice the time.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define MK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MK_ASAN 1
#endif
#endif
#ifdef MK_ASAN
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define GUARD_SIZE    (256 * 1024)
#define POOL_MAX      256
#define ALTSTACK_SIZE (64 * 1024)

#if defined(__x86_64__) && !defined(MK_SWITCH_UCONTEXT)
#define MK_ASM_SWITCH 1
void mk__ctx_switch(void **save_sp, void *load_sp);
void mk__ctx_save_then(void **save_sp, void (*fn)(void *), void *arg);
#endif

struct mk__fiber {
#ifdef MK_ASM_SWITCH
	void *sp;
#else
	ucontext_t uc;
#endif
	struct mk__fiber *next;
	struct mk_task *task;
	char *map;
	size_t map_size;
	char *lo;
	size_t size;
	unsigned vg_id;
};

/* The scheduler's own context. */
struct sched_ctx {
#ifdef MK_ASM_SWITCH
	void *sp;
#else
	ucontext_t uc;
#endif
};

/* ---- sanitizer annotations ------------------------------------------------------------ */

static void asan_start(void **fake, const void *lo, size_t size)
{
#ifdef MK_ASAN
	__sanitizer_start_switch_fiber(fake, lo, size);
#else
	(void)fake, (void)lo, (void)size;
#endif
}

static void asan_finish(void *fake, const void **lo, size_t *size)
{
#ifdef MK_ASAN
	__sanitizer_finish_switch_fiber(fake, lo, size);
#else
	(void)fake, (void)lo, (void)size;
#endif
}

/* ---- switches ------------------------------------------------------------------------- */

static struct sched_ctx *sched_ctx(struct mk__sched *s)
{
	return s->sched_ctx;
}

void mk__fiber_resume(struct mk__sched *s, struct mk__fiber *f)
{
	void *fake = NULL;

	asan_start(&fake, f->lo, f->size);
#ifdef MK_ASM_SWITCH
	mk__ctx_switch(&sched_ctx(s)->sp, f->sp);
#else
	swapcontext(&sched_ctx(s)->uc, &f->uc);
#endif
	asan_finish(fake, NULL, NULL);
}

void mk__fiber_suspend(struct mk__sched *s, struct mk__fiber *f)
{
	void *fake = NULL;

	asan_start(&fake, s->sched_stack_lo, s->sched_stack_size);
#ifdef MK_ASM_SWITCH
	mk__ctx_switch(&f->sp, sched_ctx(s)->sp);
#else
	swapcontext(&f->uc, &sched_ctx(s)->uc);
#endif
	asan_finish(fake, NULL, NULL);
}

void mk__fiber_switch(struct mk__fiber *from, struct mk__fiber *to)
{
	void *fake = NULL;

	asan_start(&fake, to->lo, to->size);
#ifdef MK_ASM_SWITCH
	mk__ctx_switch(&from->sp, to->sp);
#else
	swapcontext(&from->uc, &to->uc);
#endif
	asan_finish(fake, NULL, NULL);
}

/* ---- first entry ---------------------------------------------------------------------- */

#ifdef MK_ASM_SWITCH
/* Enter the makecontext'ed context with setcontext: unlike swapcontext, it is not intercepted by
 * AddressSanitizer, which warns about (and cannot follow) swapcontext. */
static void enter_context(void *uc)
{
	setcontext(uc);
	abort();
}
#endif

static void fiber_entry(void)
{
	struct mk__sched *s = mk__sched_current;
	struct mk__fiber *f = s->booting;
	const void *creator_lo = NULL;
	size_t creator_size = 0;
	void *fake = NULL;

	asan_finish(NULL, &creator_lo, &creator_size);
	/* Save this point and return to the creator; the scheduler resumes here with a task. */
	asan_start(&fake, creator_lo, creator_size);
#ifdef MK_ASM_SWITCH
	mk__ctx_switch(&f->sp, *(void **)s->boot_ctx);
#else
	swapcontext(&f->uc, s->boot_ctx);
#endif
	asan_finish(fake, NULL, NULL);
	for (;;)
		mk__task_body(s, f, f->task); /* returns when this fiber is given a task again */
}

/* ---- stacks --------------------------------------------------------------------------- */

static int map_stack(struct mk__fiber *f, size_t size)
{
	static int guard_by_madvise = 1;
	f->size = size;
	f->map_size = size + GUARD_SIZE;
	f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (f->map == MAP_FAILED)
		return -ENOMEM;
	f->lo = f->map + GUARD_SIZE;
	if (guard_by_madvise && madvise(f->map, GUARD_SIZE, MADV_GUARD_INSTALL) == 0)
		return 0;
	guard_by_madvise = 0;
	if (mprotect(f->map, GUARD_SIZE, PROT_NONE) != 0) {
		munmap(f->map, f->map_size);
		return -ENOMEM;
	}
	return 0;
}

static void fiber_destroy(struct mk__fiber *f)
{
#ifdef MK_HAVE_VALGRIND
	VALGRIND_STACK_DEREGISTER(f->vg_id);
#endif
	munmap(f->map, f->map_size);
	free(f);
}

static int fiber_create(struct mk__sched *s, struct mk__fiber **out)
{
	struct mk__fiber *f = calloc(1, sizeof(*f));
	ucontext_t boot;
	void *fake = NULL;
#ifdef MK_ASM_SWITCH
	void *creator;
#else
	ucontext_t creator;
#endif

	if (f == NULL)
		return -ENOMEM;
	if (map_stack(f, s->stack_size) != 0) {
		free(f);
		return -ENOMEM;
	}
#ifdef MK_HAVE_VALGRIND
	f->vg_id = VALGRIND_STACK_REGISTER(f->lo, f->lo + f->size);
#endif
	getcontext(&boot);
	boot.uc_stack.ss_sp = f->lo;
	boot.uc_stack.ss_size = f->size;
	boot.uc_link = NULL;
	makecontext(&boot, fiber_entry, 0);
	s->booting = f;
	s->boot_ctx = &creator;
	asan_start(&fake, f->lo, f->size);
#ifdef MK_ASM_SWITCH
	mk__ctx_save_then(&creator, enter_context, &boot);
#else
	swapcontext(&creator, &boot);
#endif
	asan_finish(fake, NULL, NULL);
	s->booting = NULL;
	s->boot_ctx = NULL;
	*out = f;
	return 0;
}

int mk__fiber_get(struct mk__sched *s, struct mk__fiber **out)
{
	struct mk__fiber *f = s->pool;

	if (f != NULL) {
		s->pool = f->next;
		s->pool_len--;
		*out = f;
	} else {
		int err = fiber_create(s, out);
		if (err != 0)
			return err;
	}
	s->live_fibers++;
	return 0;
}

/* Called on the fiber itself as its task ends, so the stack cannot be unmapped here: the pool
 * is trimmed later, from the scheduler (mk__fiber_pool_trim). */
void mk__fiber_put(struct mk__sched *s, struct mk__fiber *f)
{
	f->task = NULL;
	f->next = s->pool;
	s->pool = f;
	s->pool_len++;
	s->live_fibers--;
}

void mk__fiber_pool_trim(struct mk__sched *s, size_t keep)
{
	while (s->pool_len > keep) {
		struct mk__fiber *f = s->pool;
		s->pool = f->next;
		s->pool_len--;
		fiber_destroy(f);
	}
}

void mk__fiber_set_task(struct mk__fiber *f, struct mk_task *t)
{
	f->task = t;
}

int mk__fiber_sched_init(struct mk__sched *s)
{
#ifdef MK_ASAN
	/* The sanitizer must be told which stack a switch lands on, the scheduler's included: the
	 * thread's own stack. (A fiber can be resumed by another fiber, so this cannot be learnt
	 * from the switches themselves.) */
	pthread_attr_t attr;
	void *addr;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &addr, &s->sched_stack_size);
		s->sched_stack_lo = addr;
		pthread_attr_destroy(&attr);
	}
#endif
	s->sched_ctx = calloc(1, sizeof(struct sched_ctx));
	return s->sched_ctx == NULL ? -ENOMEM : 0;
}

void mk__fiber_sched_fini(struct mk__sched *s)
{
	mk__fiber_pool_trim(s, 0);
	free(s->sched_ctx);
	s->sched_ctx = NULL;
}

size_t mk__fiber_pool_max(void)
{
	return POOL_MAX;
}

/* ---- stack overflow ------------------------------------------------------------------- */

static struct sigaction old_segv;
static int segv_installs;

static size_t put_str(char *buf, size_t at, size_t cap, const char *str)
{
	while (*str && at + 1 < cap)
		buf[at++] = *str++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, size_t n)
{
	char digits[24];
	int i = 0;

	do {
		digits[i++] = (char)('0' + n % 10);
		n /= 10;
	} while (n && i < 24);
	while (i > 0 && at + 1 < cap)
		buf[at++] = digits[--i];
	return at;
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
	struct mk__sched *s = mk__sched_current;
	struct mk_task *t = s ? s->current : NULL;
	struct mk__fiber *f = t ? t->fiber : NULL;
	char *addr = si->si_addr;
	(void)uctx;

	if (f != NULL && addr >= f->map && addr < f->lo) {
		char msg[256];
		size_t n = put_str(msg, 0, sizeof(msg), "mkhost: stack overflow in task '");
		n = put_str(msg, n, sizeof(msg), t->name);
		n = put_str(msg, n, sizeof(msg), "' (stack of ");
		n = put_num(msg, n, sizeof(msg), f->size);
		n = put_str(msg, n, sizeof(msg),
		            " bytes); give tasks more with mk_config.stack_size\n");
		if (write(STDERR_FILENO, msg, n) < 0)
			_exit(134);
		signal(SIGABRT, SIG_DFL);
		abort();
	}
	/* Not ours: put the previous handler back and let the access fault again. */
	sigaction(sig, &old_segv, NULL);
}

int mk__overflow_guard_install(struct mk__sched *s)
{
	stack_t ss = {.ss_size = ALTSTACK_SIZE};
	struct sigaction sa;

	s->overflow_altstack =
	    mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->overflow_altstack == MAP_FAILED) {
		s->overflow_altstack = NULL;
		return -ENOMEM;
	}
	ss.ss_sp = s->overflow_altstack;
	if (sigaltstack(&ss, &s->old_altstack) != 0) {
		munmap(s->overflow_altstack, ALTSTACK_SIZE);
		s->overflow_altstack = NULL;
		return -errno;
	}
	if (segv_installs++ == 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_segv;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGSEGV, &sa, &old_segv);
	}
	return 0;
}

void mk__overflow_guard_remove(struct mk__sched *s)
{
	if (s->overflow_altstack == NULL)
		return;
	if (--segv_installs == 0)
		sigaction(SIGSEGV, &old_segv, NULL);
	sigaltstack(&s->old_altstack, NULL);
	munmap(s->overflow_altstack, ALTSTACK_SIZE);
	s->overflow_altstack = NULL;
}
