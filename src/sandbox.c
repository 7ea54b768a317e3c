/* --sandbox: after mk_run has opened every device of the command line, only the system calls
 * that the event loop, the devices and the memory allocator need are allowed (seccomp), and in
 * io_uring mode the ring accepts only the operations mkhost submits (IORING_REGISTER_RESTRICTIONS),
 * because io_uring requests bypass seccomp. A forbidden call ends the program with a report
 * naming it.
 *
 * What it protects: a compromised or buggy task cannot open files, create sockets, run programs,
 * or reach the network except through its devices. What it does not: memory inside the process
 * (a task can still corrupt another task), the devices themselves (a task can send any frame),
 * and descriptors that were already open when mk_run started.
 */
#include <errno.h>
#include <asm/prctl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#if defined(__x86_64__)
#define MK_AUDIT_ARCH AUDIT_ARCH_X86_64
#endif

/* clang-format off */
static const int allowed[] = {
	/* devices and the event loop */
	SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv2,
	SYS_pwritev2, SYS_fsync,
	SYS_fdatasync, SYS_lseek, SYS_close, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg,
	SYS_io_uring_enter, SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl,
	/* memory: stacks, malloc */
	SYS_mmap, SYS_munmap, SYS_mprotect, SYS_madvise, SYS_mremap, SYS_brk,
	/* time, randomness, locks */
	SYS_clock_gettime, SYS_clock_nanosleep, SYS_nanosleep, SYS_getrandom, SYS_futex,
	SYS_sched_yield,
	/* signals, stdio, ending */
	SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_sigaltstack,
	SYS_restart_syscall, SYS_fstat, SYS_newfstatat, SYS_getpid, SYS_gettid, SYS_tgkill,
	SYS_exit, SYS_exit_group,
};
/* clang-format on */

#define N_ALLOWED (sizeof(allowed) / sizeof(allowed[0]))

static const struct {
	int nr;
	const char *name;
} names[] = {
    {SYS_open, "open"},       {SYS_openat, "openat"}, {SYS_socket, "socket"},
    {SYS_connect, "connect"}, {SYS_execve, "execve"}, {SYS_clone, "clone"},
    {SYS_fork, "fork"},       {SYS_ioctl, "ioctl"},   {SYS_bind, "bind"},
    {SYS_unlink, "unlink"},   {SYS_mkdir, "mkdir"},   {SYS_kill, "kill"},
    {SYS_dup, "dup"},
};

static size_t put(char *buf, size_t at, const char *s)
{
	while (*s && at < 255)
		buf[at++] = *s++;
	return at;
}

static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	struct mk__sched *s = mk__sched_current;
	const char *name = NULL;
	char msg[256], num[16];
	size_t n = 0, k = 0;
	unsigned nr = (unsigned)si->si_syscall;
	(void)uctx;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((unsigned)names[i].nr == nr)
			name = names[i].name;
	do {
		num[k++] = (char)('0' + nr % 10);
		nr /= 10;
	} while (nr && k < sizeof(num));
	n = put(msg, n, "mkhost: sandbox: forbidden system call ");
	while (k > 0)
		msg[n++] = num[--k];
	if (name) {
		n = put(msg, n, " (");
		n = put(msg, n, name);
		n = put(msg, n, ")");
	}
	if (s != NULL && s->current != NULL) {
		n = put(msg, n, " in task '");
		n = put(msg, n, s->current->name);
		n = put(msg, n, "'");
	}
	n = put(msg, n, "; the program ran with --sandbox\n");
	if (write(STDERR_FILENO, msg, n) < 0) {
		/* nothing more can be said */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int install_filter(void)
{
	struct sock_filter prog[N_ALLOWED + 12];
	size_t n = 0;

#ifdef MK_AUDIT_ARCH
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                                         offsetof(struct seccomp_data, arch));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MK_AUDIT_ARCH, 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#else
	return -ENOTSUP;
#endif
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                                         offsetof(struct seccomp_data, nr));
#ifdef SYS_arch_prctl
	/* arch_prctl(ARCH_SET_FS or ARCH_GET_FS) only: the Solo5 layer switches the thread pointer
	 * between mkhost's and the unikernel's with it where wrfsbase is not available */
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_arch_prctl, 0, 5);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	                                         offsetof(struct seccomp_data, args[0]));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH_SET_FS, 2, 0);
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH_GET_FS, 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#endif
	for (size_t i = 0; i < N_ALLOWED; i++) {
		/* jump to the ALLOW at the end if equal */
		unsigned char to_allow = (unsigned char)(N_ALLOWED - i);
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		                                         (unsigned)allowed[i], to_allow, 0);
	}
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0)
		return -errno;
	return 0;
}

int mk__sandbox_enter(struct mk__sched *s)
{
	struct sigaction sa;
	int err = s->loop.ops->seal(&s->loop);

	if (err != 0)
		return mk__fail(err, "--sandbox: cannot restrict the io_uring ring: %s",
		                strerror(-err));
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSYS, &sa, NULL);
	err = install_filter();
	if (err != 0)
		return mk__fail(err, "--sandbox: cannot install the seccomp filter: %s",
		                strerror(-err));
	return 0;
}
