/* Choosing the event-loop backend: the fallback to epoll where io_uring is forbidden (as by a
 * container's seccomp profile), the MKHOST_BACKEND setting and mk_config.backend. */
#include <check.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "testlib.h"

/* Make io_uring_setup fail with EPERM in this process, as Docker's default profile does. Each
 * Check test runs in a child of its own, so the filter dies with it. */
static void forbid_io_uring(void)
{
	struct sock_filter code[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(code) / sizeof(code[0]), .filter = code};

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* Send stderr to a temporary file; capture_end returns what was written. */
static FILE *capture;
static int saved_stderr;

static void capture_begin(void)
{
	fflush(stderr);
	capture = tmpfile();
	ck_assert_ptr_nonnull(capture);
	saved_stderr = dup(2);
	dup2(fileno(capture), 2);
}

static const char *capture_end(void)
{
	static char text[4096];
	size_t n;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	rewind(capture);
	n = fread(text, 1, sizeof(text) - 1, capture);
	text[n] = '\0';
	fclose(capture);
	return text;
}

static char seen_backend[32];

static int record_backend(int argc, char **argv, void *arg)
{
	snprintf(seen_backend, sizeof(seen_backend), "%s", mk_backend_name());
	return 7;
}

START_TEST(falls_back_to_epoll)
{
	unsetenv("MKHOST_BACKEND");
	forbid_io_uring();
	capture_begin();
	int rc = mkt_run(record_backend, NULL, NULL);
	const char *err = capture_end();
	ck_assert_int_eq(rc, 7);
	ck_assert_str_eq(seen_backend, "epoll");
	ck_assert_msg(strstr(err, "mkhost: io_uring unavailable") != NULL, "stderr: %s", err);
	ck_assert_msg(strstr(err, "using epoll") != NULL, "stderr: %s", err);
	/* one line, and only one */
	ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);
}
END_TEST

START_TEST(io_uring_required_fails)
{
	setenv("MKHOST_BACKEND", "io_uring", 1);
	forbid_io_uring();
	seen_backend[0] = '\0';
	capture_begin();
	int rc = mkt_run(record_backend, NULL, NULL);
	capture_end();
	ck_assert_int_eq(rc, -ENOSYS);
	ck_assert_str_eq(seen_backend, ""); /* main never ran */
	ck_assert_msg(strstr(mk_last_error(), "io_uring") != NULL, "%s", mk_last_error());
}
END_TEST

START_TEST(io_uring_by_default)
{
	unsetenv("MKHOST_BACKEND");
	capture_begin();
	int rc = mkt_run(record_backend, NULL, NULL);
	const char *err = capture_end();
	ck_assert_int_eq(rc, 7);
	ck_assert_str_eq(seen_backend, "io_uring");
	ck_assert_str_eq(err, ""); /* quiet when nothing falls back */
}
END_TEST

START_TEST(config_selects_epoll)
{
	struct mk_config cfg = {.backend = MK_BACKEND_EPOLL};
	char *argv[] = {"test", NULL};

	unsetenv("MKHOST_BACKEND");
	ck_assert_int_eq(mk_run_config(&cfg, 1, argv, record_backend, NULL), 7);
	ck_assert_str_eq(seen_backend, "epoll");
}
END_TEST

START_TEST(environment_overrides_config)
{
	struct mk_config cfg = {.backend = MK_BACKEND_IO_URING};
	char *argv[] = {"test", NULL};

	setenv("MKHOST_BACKEND", "epoll", 1);
	ck_assert_int_eq(mk_run_config(&cfg, 1, argv, record_backend, NULL), 7);
	ck_assert_str_eq(seen_backend, "epoll");
}
END_TEST

START_TEST(bad_setting)
{
	setenv("MKHOST_BACKEND", "kqueue", 1);
	seen_backend[0] = '\0';
	capture_begin();
	int rc = mkt_run(record_backend, NULL, NULL);
	const char *err = capture_end();
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_str_eq(seen_backend, "");
	ck_assert_msg(strstr(err, "MKHOST_BACKEND='kqueue'") != NULL, "stderr: %s", err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("backend");

	tcase_add_test(tc, falls_back_to_epoll);
	tcase_add_test(tc, io_uring_required_fails);
	tcase_add_test(tc, io_uring_by_default);
	tcase_add_test(tc, config_selects_epoll);
	tcase_add_test(tc, environment_overrides_config);
	tcase_add_test(tc, bad_setting);
	suite_add_tcase(s, tc);

	return mkt_run_suite(s, false);
}
