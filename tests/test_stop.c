/* SIGINT and SIGTERM stop mk_run cleanly: tasks are cancelled, mk_run returns -EINTR, no
 * descriptor is left open. A program that handles the signal itself keeps it. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define MS 1000000ull

struct stop_state {
	int sleep_result;
	int worker_result;
	int worker_ended;
};

static intptr_t worker(void *arg)
{
	struct stop_state *st = arg;

	st->worker_result = mk_sleep(60000 * MS);
	st->worker_ended = 1;
	return 0;
}

static int sleeper_main(int argc, char **argv, void *arg)
{
	struct stop_state *st = arg;
	mk_task *t;

	ck_assert_int_eq(mk_task_spawn(&t, "worker", worker, st), 0);
	mk_yield(); /* the worker starts and sleeps */
	kill(getpid(), SIGTERM);
	st->sleep_result = mk_sleep(60000 * MS);
	mk_task_await(t, NULL);
	return 5;
}

static void stop_with(int sig)
{
	struct stop_state st = {0};
	int before = mkt_count_fds();
	uint64_t t0 = mk_clock_monotonic();
	char *argv[] = {"test", NULL};
	int rc;

	(void)sig;
	rc = mk_run(1, argv, sleeper_main, &st);
	ck_assert_int_eq(rc, -EINTR);
	ck_assert_int_eq(st.sleep_result, -ECANCELED);
	ck_assert_int_eq(st.worker_result, -ECANCELED);
	ck_assert_int_eq(st.worker_ended, 1);
	ck_assert_uint_lt(mk_clock_monotonic() - t0, 5000 * MS);
	ck_assert_int_eq(mkt_count_fds(), before); /* ring, eventfd, epoll: all closed */
}

START_TEST(sigterm_stops_cleanly)
{
	stop_with(SIGTERM);
}
END_TEST

static int sigint_main(int argc, char **argv, void *arg)
{
	int *r = arg;
	kill(getpid(), SIGINT);
	*r = mk_sleep(60000 * MS);
	return 0;
}

START_TEST(sigint_stops_cleanly)
{
	int r = 0;
	ck_assert_int_eq(mkt_run(sigint_main, &r, NULL), -EINTR);
	ck_assert_int_eq(r, -ECANCELED);
}
END_TEST

static volatile sig_atomic_t own_handler_ran;

static void own_handler(int sig)
{
	(void)sig;
	own_handler_ran = 1;
}

static int own_main(int argc, char **argv, void *arg)
{
	int *r = arg;
	kill(getpid(), SIGTERM);
	*r = mk_sleep(20 * MS); /* not cancelled: the program keeps its signal */
	return 3;
}

START_TEST(program_handler_is_kept)
{
	int r = -1;
	signal(SIGTERM, own_handler);
	ck_assert_int_eq(mkt_run(own_main, &r, NULL), 3);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(own_handler_ran, 1);
	ck_assert_ptr_eq(signal(SIGTERM, SIG_DFL), own_handler); /* left as it was */
}
END_TEST

static int quick_main(int argc, char **argv, void *arg)
{
	return 0;
}

START_TEST(default_restored_after_run)
{
	struct sigaction sa;
	ck_assert_int_eq(mkt_run(quick_main, NULL, NULL), 0);
	sigaction(SIGTERM, NULL, &sa);
	ck_assert_ptr_eq(sa.sa_handler, SIG_DFL);
	sigaction(SIGINT, NULL, &sa);
	ck_assert_ptr_eq(sa.sa_handler, SIG_DFL);
}
END_TEST

/* A task that ignores cancellation: the second signal has the default action. The child tells
 * the parent through a pipe when it runs and when it has seen the cancel, so the test does not
 * depend on timing. */
static int report_fd;

static int stubborn_main(int argc, char **argv, void *arg)
{
	bool told = false;

	if (write(report_fd, "r", 1) != 1)
		return 1;
	/* Bounded by time, not by count: under valgrind a sleep may take far longer than asked. */
	uint64_t end = mk_clock_monotonic() + 15000 * MS;
	while (mk_clock_monotonic() < end) {
		if (mk_sleep(10 * MS) == -ECANCELED) {
			if (!told && write(report_fd, "c", 1) != 1)
				return 1;
			told = true;
			usleep(10000); /* carries on regardless */
		}
	}
	return 0;
}

/* A task that never yields: the scheduler never runs again, so only the handler can count. */
static int spinning_main(int argc, char **argv, void *arg)
{
	if (write(report_fd, "r", 1) != 1)
		return 1;
	uint64_t end = mk_clock_monotonic() + 15000 * MS;
	while (mk_clock_monotonic() < end)
		; /* spins, for up to 15 s */
	return 0;
}

/* Fork a child running mkt_run(main) with an alarm of 30 s; return once its main has written
 * 'r' to the pipe, with the read end in (*report). */
static pid_t start_reporting_child(mk_main_fn main, int *report)
{
	int p[2];
	char c;

	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		alarm(30);
		_exit(mkt_run(main, NULL, NULL) == 0 ? 0 : 1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'r');
	*report = p[0];
	return pid;
}

/* Two signals to a program whose scheduler cannot run: the second kills it, with its own signal
 * (it used to be absorbed, and the program ran on). */
START_TEST(second_signal_kills_a_spinning_task)
{
	static const int sigs[][2] = {{SIGTERM, SIGTERM}, {SIGINT, SIGINT}, {SIGTERM, SIGINT}};
	int report, status;
	pid_t pid = start_reporting_child(spinning_main, &report);

	kill(pid, sigs[_i][0]);
	/* Then the second, again every 100 ms for up to 10 s: a signal sent before the first was
	 * delivered merges with it (valgrind, for one, delivers late). The program spins for 15 s,
	 * so it can only die of a signal within that if a second one acted. */
	pid_t w = 0;
	for (int i = 0; i < 100 && w == 0; i++) {
		usleep(100000);
		kill(pid, sigs[_i][1]);
		w = waitpid(pid, &status, WNOHANG);
	}
	if (w == 0)
		w = waitpid(pid, &status, 0);
	ck_assert_int_eq(w, pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sigs[_i][1],
	              "status %#x: not killed by signal %d", status, sigs[_i][1]);
	close(report);
}
END_TEST

START_TEST(second_signal_kills)
{
	int report, status;
	char c;
	pid_t pid = start_reporting_child(stubborn_main, &report);

	kill(pid, SIGTERM);
	ck_assert_int_eq(read(report, &c, 1), 1);
	ck_assert_int_eq(c, 'c');
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x", status);
	close(report);
}
END_TEST

/* Check's runner installs its own SIGINT/SIGTERM handlers, which its test processes inherit;
 * a program starts with the default action, so each test does too. */
static void default_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
}

int main(void)
{
	Suite *s = suite_create("stop");
	TCase *tc = tcase_create("stop");

	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, default_signals, NULL);
	tcase_add_test(tc, sigterm_stops_cleanly);
	tcase_add_test(tc, sigint_stops_cleanly);
	tcase_add_test(tc, program_handler_is_kept);
	tcase_add_test(tc, default_restored_after_run);
	tcase_add_test(tc, second_signal_kills);
	tcase_add_loop_test(tc, second_signal_kills_a_spinning_task, 0, 3);
	suite_add_tcase(s, tc);

	return mkt_run_suite(s, false);
}
