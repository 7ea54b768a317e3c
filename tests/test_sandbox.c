/* --sandbox: devices opened first, then only the system calls and io_uring operations that
 * the devices need. Each case runs the program in a child and looks at how it ended. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/internal.h"
#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif
#include "testlib.h"

#define MS 1000000ull

enum misdeed { NOTHING, OPEN, SOCKET, EXEC, URING_OPENAT };

struct outcome {
	int status;
	char err[2048];
};

static int sandboxed_main(int argc, char **argv, void *arg)
{
	enum misdeed what = *(enum misdeed *)arg;
	uint8_t frame[60], big[1515];
	mk_net *net;
	struct mk_net_config cfg;

	if (mk_net_connect("svc", &net, &cfg) != 0)
		return 10;
	memset(frame, 0xff, sizeof(frame));
	if (mk_net_write_bigstring(net, frame, sizeof(frame), 0, sizeof(frame)) != 60)
		return 11;
	if (mk_sleep(MS) != 0) /* the event loop still works */
		return 12;
	/* A read works too (with MKHOST_URING_RX=ring its ring was set up before the seal). */
	if (mk_net_try_read(net, frame, sizeof(frame), 0, sizeof(frame)) != -EINVAL ||
	    mk_net_try_read(net, big, sizeof(big), 0, sizeof(big)) != -EAGAIN)
		return 13;
	switch (what) {
	case OPEN:
		open("/etc/hostname", O_RDONLY);
		return 20;
	case SOCKET:
		socket(AF_INET, SOCK_DGRAM, 0);
		return 21;
	case EXEC:
		execl("/bin/true", "true", (char *)NULL);
		return 22;
	case URING_OPENAT: {
		/* A request the ring was not told to accept, as an attacker with the ring would
		 * submit it: refused by the kernel, whatever seccomp says. */
		struct io_uring *ring = mk__sched_current->loop.impl;
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
		struct io_uring_cqe *cqe;
		io_uring_prep_openat(sqe, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(ring);
		if (io_uring_wait_cqe(ring, &cqe) != 0)
			return 23;
		int res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		return res == -EACCES ? 0 : 24;
	}
	case NOTHING:
		break;
	}
	return 0;
}

static struct outcome run_child(enum misdeed what, const char *net_arg)
{
	struct outcome o = {0};
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		alarm(20);
		_exit(mkt_run(sandboxed_main, &what, "--sandbox", (char *)net_arg, NULL) & 0xff);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(o.err) - 1 && (r = read(p[0], o.err + n, sizeof(o.err) - 1 - n)) > 0)
		n += (size_t)r;
	o.err[n] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &o.status, 0), pid);
	return o;
}

static void setup(void)
{
	mkt_tap_delete("tapsb"); /* left by a failed case, whose teardown does not run */
	ck_assert_int_eq(mkt_tap_create("tapsb", 0, 1), 0);
}

static void teardown(void)
{
	mkt_tap_delete("tapsb");
}

START_TEST(devices_still_work)
{
	struct outcome o = run_child(NOTHING, "--net:svc=tapsb");
	ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "status %#x: %s", o.status,
	              o.err);
}
END_TEST

static void expect_killed(enum misdeed what, const char *call)
{
	struct outcome o = run_child(what, "--net:svc=tapsb");
	ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSYS, "status %#x: %s",
	              o.status, o.err);
	ck_assert_msg(strstr(o.err, "mkhost: sandbox: forbidden system call") != NULL, "%s", o.err);
	ck_assert_msg(strstr(o.err, call) != NULL, "%s", o.err);
	ck_assert_msg(strstr(o.err, "task 'main'") != NULL, "%s", o.err);
}

START_TEST(open_is_forbidden)
{
	expect_killed(OPEN, "(openat)");
}
END_TEST

START_TEST(socket_is_forbidden)
{
	expect_killed(SOCKET, "(socket)");
}
END_TEST

START_TEST(exec_is_forbidden)
{
	expect_killed(EXEC, "(execve)");
}
END_TEST

START_TEST(ring_refuses_other_operations)
{
	const char *backend = getenv("MKHOST_BACKEND");
	if (backend != NULL && strcmp(backend, "epoll") == 0)
		return; /* no ring: seccomp alone covers epoll's system calls */
	struct outcome o = run_child(URING_OPENAT, "--net:svc=tapsb");
	ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "status %#x: %s", o.status,
	              o.err);
}
END_TEST

/* A block device given on the command line is opened before the filter too: scheduled and
 * atomic sector I/O and the flush still work. */
static int block_main(int argc, char **argv, void *arg)
{
	uint8_t out[512], in[512];
	mk_block *b;

	if (mk_block_connect("disk", &b) != 0)
		return 30;
	memset(out, 0x5a, sizeof(out));
	if (mk_block_write(b, 512, out, sizeof(out), 0) != 0 || mk_block_flush(b) != 0)
		return 31;
	if (mk_block_atomic_read(b, 512, in, sizeof(in), 0) != 0 || memcmp(in, out, 512) != 0)
		return 32;
	return 0;
}

START_TEST(block_devices_still_work)
{
	char path[] = "/tmp/mkhost-sandbox-XXXXXX", arg[64];
	int fd = mkstemp(path), status;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	close(fd);
	snprintf(arg, sizeof(arg), "--block:disk=%s", path);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(20);
		_exit(mkt_run(block_main, NULL, "--sandbox", arg, NULL) & 0xff);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	unlink(path);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}
END_TEST

START_TEST(bad_device_fails_before_main)
{
	struct outcome o = run_child(NOTHING, "--net:svc=tapnone");
	/* mk_run returned -ENODEV without running main: the child exits with its low byte */
	ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == ((-ENODEV) & 0xff),
	              "status %#x: %s", o.status, o.err);
	ck_assert_msg(strstr(o.err, "interface 'tapnone' does not exist") != NULL, "%s", o.err);
}
END_TEST

int main(void)
{
#ifdef MK_HAVE_VALGRIND
	if (RUNNING_ON_VALGRIND) {
		/* valgrind makes system calls of its own on the program's behalf, which the filter
		 * rightly forbids */
		fprintf(stderr, "SKIP: the seccomp sandbox cannot run under valgrind\n");
		return MKT_SKIP;
	}
#endif
	mkt_enter_netns();
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, devices_still_work);
	tcase_add_test(tc, open_is_forbidden);
	tcase_add_test(tc, socket_is_forbidden);
	tcase_add_test(tc, exec_is_forbidden);
	tcase_add_test(tc, ring_refuses_other_operations);
	tcase_add_test(tc, bad_device_fails_before_main);
	tcase_add_test(tc, block_devices_still_work);
	suite_add_tcase(s, tc);

	return mkt_run_suite(s, false);
}
