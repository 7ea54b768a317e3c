/* SIGINT and SIGTERM: stop the program cleanly. The handler only writes to an eventfd; the
 * scheduler sees it as an ordinary readiness event, cancels every task, and mk_run returns
 * -EINTR after closing the devices (so captures and files are complete). Only signals left at
 * their default disposition are taken over, by the first mk_run of the process. A second signal
 * gets the default action, counted in the handler itself: so a task that ignores cancellation,
 * spins without ever yielding, or a call blocked in the kernel, can still be interrupted. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

static const int stop_signals[] = {SIGINT, SIGTERM};
#define N_STOP (sizeof(stop_signals) / sizeof(stop_signals[0]))

static int stop_fd = -1; /* the eventfd of the scheduler that owns the handlers */
static volatile sig_atomic_t stop_signo;
static struct sigaction stop_old[N_STOP];
static bool stop_taken[N_STOP];

static volatile sig_atomic_t stop_count; /* stop signals received, counted in the handler */

static void on_stop_signal(int sig)
{
	uint64_t one = 1;
	int saved = errno;

	/* The second signal acts at once, in the handler itself: the scheduler may never get to
	 * the first (a task that spins, a system call that blocks), and the user's second Ctrl-C
	 * must work all the same. The signal is blocked while its handler runs, so the raise is
	 * delivered with the default action as the handler returns. */
	if (stop_count > 0) {
		signal(sig, SIG_DFL);
		raise(sig);
		errno = saved;
		return;
	}
	stop_count = 1;
	stop_signo = sig;
	if (write(stop_fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: a stop is already pending */
	}
	errno = saved;
}

static void restore_defaults(void)
{
	for (size_t i = 0; i < N_STOP; i++)
		if (stop_taken[i]) {
			sigaction(stop_signals[i], &stop_old[i], NULL);
			stop_taken[i] = false;
		}
}

static void on_stop_event(struct mk__io *io, int res)
{
	struct mk__sched *s = mk__sched_current;
	(void)io, (void)res;

	restore_defaults();
	s->stopped_by = stop_signo;
	s->stopping = true;
	for (struct mk_task *t = s->all; t != NULL; t = t->all_next)
		mk__task_cancel(s, t);
}

int mk__stop_install(struct mk__sched *s)
{
	struct sigaction sa;
	int fd;

	if (stop_fd >= 0)
		return 0; /* another scheduler of this process has them */
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	stop_fd = fd;
	stop_signo = 0;
	stop_count = 0;
	for (size_t i = 0; i < N_STOP; i++) {
		struct sigaction old;
		sigaction(stop_signals[i], NULL, &old);
		if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
			continue; /* the program handles it itself */
		sigaction(stop_signals[i], &sa, &stop_old[i]);
		stop_taken[i] = true;
	}
	s->stop_io.fd = fd;
	s->stop_io.done = on_stop_event;
	int err = s->loop.ops->poll_in(&s->loop, &s->stop_io);
	if (err != 0) {
		mk__stop_remove(s);
		return err;
	}
	s->stop_owner = true;
	return 0;
}

void mk__stop_remove(struct mk__sched *s)
{
	if (stop_fd < 0 || s->stop_io.fd != stop_fd)
		return;
	restore_defaults();
	close(stop_fd);
	stop_fd = -1;
	s->stop_io.fd = -1;
	s->stop_owner = false;
}
