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
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#ifdef MK_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define VALGRIND_NOTICE "mkhost: under valgrind, using epoll"

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
	/* Under valgrind the loop does not try io_uring at all (see valgrind_uses_epoll). */
	ck_assert_msg(strstr(err, RUNNING_ON_VALGRIND ? VALGRIND_NOTICE
	                                              : "mkhost: io_uring unavailable") != NULL,
	              "stderr: %s", err);
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
	ck_assert_msg(strstr(mk_last_error(), "io_uring is unavailable") != NULL, "%s",
	              mk_last_error());
	ck_assert_msg(strstr(mk_last_error(), "MKHOST_BACKEND=io_uring asks for it") != NULL, "%s",
	              mk_last_error());
}
END_TEST

/* The sentence names what asked for io_uring: the program's mk_config, not the environment
 * (it used to blame MKHOST_BACKEND whatever had asked). */
START_TEST(io_uring_required_by_config_names_it)
{
	struct mk_config cfg = {.backend = MK_BACKEND_IO_URING};
	char *argv[] = {"test", NULL};

	unsetenv("MKHOST_BACKEND");
	forbid_io_uring();
	seen_backend[0] = '\0';
	capture_begin();
	int rc = mk_run_config(&cfg, 1, argv, record_backend, NULL);
	capture_end();
	ck_assert_int_eq(rc, -ENOSYS);
	ck_assert_str_eq(seen_backend, "");
	ck_assert_msg(strstr(mk_last_error(), "mk_config.backend = MK_BACKEND_IO_URING asks") !=
	                  NULL,
	              "%s", mk_last_error());
	ck_assert_msg(strstr(mk_last_error(), "MKHOST_BACKEND") == NULL, "%s", mk_last_error());

	char *argv2[] = {"test", "--backend=io_uring", NULL};
	rc = mk_run_config(NULL, 2, argv2, record_backend, NULL);
	ck_assert_int_eq(rc, -ENOSYS);
	ck_assert_msg(strstr(mk_last_error(), "--backend=io_uring asks for it") != NULL, "%s",
	              mk_last_error());
}
END_TEST

/* mk_config values out of range are refused before anything is set up; a stack size near
 * SIZE_MAX used to overflow its rounding and crash. */
START_TEST(config_out_of_range)
{
	static const struct {
		struct mk_config cfg;
		const char *says;
	} bad[] = {
	    {{.backend = (enum mk_backend)7}, "mk_config.backend is 7"},
	    {{.backend = (enum mk_backend)-1}, "mk_config.backend is -1"},
	    {{.stack_size = SIZE_MAX}, "mk_config.stack_size is 18446744073709551615 bytes"},
	    {{.stack_size = SIZE_MAX - 4095}, "from 16 KiB to 1 GiB"},
	    {{.stack_size = 4096}, "mk_config.stack_size is 4096 bytes"},
	    {{.busy_poll_us = 2000000}, "mk_config.busy_poll_us is 2000000"},
	    {{.tx_batch = 4097}, "mk_config.tx_batch is 4097"},
	};
	char *argv[] = {"test", NULL};

	unsetenv("MKHOST_BACKEND");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		seen_backend[0] = '\0';
		int rc = mk_run_config(&bad[i].cfg, 1, argv, record_backend, NULL);
		ck_assert_msg(rc == -EINVAL, "case %zu: %d", i, rc);
		ck_assert_str_eq(seen_backend, "");
		ck_assert_msg(strstr(mk_last_error(), bad[i].says) != NULL, "case %zu: %s", i,
		              mk_last_error());
	}
	struct mk_config edge = {
	    .stack_size = 1024 * 1024 * 1024, .busy_poll_us = 1000000, .tx_batch = 4096};
	ck_assert_int_eq(mk_run_config(&edge, 1, argv, record_backend, NULL), 7);
}
END_TEST
START_TEST(io_uring_by_default)
{
	unsetenv("MKHOST_BACKEND");
	capture_begin();
	int rc = mkt_run(record_backend, NULL, NULL);
	const char *err = capture_end();
	ck_assert_int_eq(rc, 7);
	if (RUNNING_ON_VALGRIND) {
		ck_assert_str_eq(seen_backend, "epoll");
		ck_assert_msg(strstr(err, VALGRIND_NOTICE) != NULL, "stderr: %s", err);
		return;
	}
	ck_assert_str_eq(seen_backend, "io_uring");
	ck_assert_str_eq(err, ""); /* quiet when nothing falls back */
}
END_TEST

/* The child of valgrind_uses_epoll: says its backend on stdout, then sleeps until stopped. */
static int idle_main(int argc, char **argv, void *arg)
{
	printf("%s\n", mk_backend_name());
	fflush(stdout);
	return mk_sleep(60ULL * 1000000000) == -ECANCELED ? 0 : 1;
}

/* Under valgrind, which holds signals back while a thread waits in io_uring_enter, an idle
 * program would not stop on SIGTERM (for about 9 s, or ever): there the default is epoll, with
 * one line saying so. This test runs itself again under valgrind (--tool=none, quick). */
START_TEST(valgrind_uses_epoll)
{
	char out_path[] = "/tmp/mkhost-backend-XXXXXX";
	char err_path[] = "/tmp/mkhost-backend-XXXXXX";
	char self[4096], line[64] = "", text[4096] = "";
	int p[2], status;

	if (RUNNING_ON_VALGRIND)
		return; /* valgrind inside valgrind: the outer run is what this test is about */
#if defined(__SANITIZE_ADDRESS__)
	fprintf(stderr, "valgrind_uses_epoll: not in an AddressSanitizer build (valgrind cannot "
	                "run it); the plain build runs it\n");
	return;
#endif
	if (mkt_sh("command -v valgrind >/dev/null") != 0)
		mkt_skip_missing("valgrind is not installed; scripts/deps installs it");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	int err_fd = mkstemp(err_path);
	ck_assert_int_ge(err_fd, 0);
	close(mkstemp(out_path));
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(err_fd, 2);
		close(p[0]);
		unsetenv("MKHOST_BACKEND");
		execlp("valgrind", "valgrind", "--tool=none", "-q", self, "--idle-child",
		       (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	FILE *out = fdopen(p[0], "r");
	ck_assert_ptr_nonnull(out);
	alarm(60);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), out)); /* it runs, idle */
	usleep(200000); /* well into its sleep */
	uint64_t t0 = mk_clock_monotonic();
	kill(pid, SIGTERM);
	status = mkt_wait_child(pid, 20000);
	uint64_t took = mk_clock_monotonic() - t0;
	alarm(0);
	fclose(out);
	ssize_t got = pread(err_fd, text, sizeof(text) - 1, 0);
	text[got > 0 ? got : 0] = '\0';
	close(err_fd);
	unlink(err_path);
	unlink(out_path);
	ck_assert_str_eq(line, "epoll\n");
	ck_assert_msg(strstr(text, VALGRIND_NOTICE) != NULL, "stderr: %s", text);
	/* mk_run returned -EINTR after the signal: exit 1 from idle_main's caller below. */
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3, "status %#x, stderr: %s",
	              status, text);
	ck_assert_msg(took < 5000000000ULL, "SIGTERM took %llu ms", (unsigned long long)took / 1000000);
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

/* mk_run refuses to start, with -EINVAL and a sentence on stderr that says (said); main never
 * runs. */
static void refused_before_main(const char *said)
{
	seen_backend[0] = '\0';
	capture_begin();
	int rc = mkt_run(record_backend, NULL, NULL);
	const char *err = capture_end();
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_str_eq(seen_backend, "");
	ck_assert_msg(strstr(err, said) != NULL, "stderr: %s", err);
}

START_TEST(bad_setting)
{
	setenv("MKHOST_BACKEND", "kqueue", 1);
	refused_before_main("MKHOST_BACKEND='kqueue'");
}
END_TEST

/* MKHOST_URING_RX takes ring or poll (or nothing); anything else is refused with its name,
 * on either backend, before the program starts. */
START_TEST(bad_rx_setting)
{
	static const char *const backends[] = {"io_uring", "epoll"};

	for (int i = 0; i < 2; i++) {
		setenv("MKHOST_BACKEND", backends[i], 1);
		setenv("MKHOST_URING_RX", "rings", 1);
		refused_before_main("MKHOST_URING_RX='rings' is not one of ring, poll");
		setenv("MKHOST_URING_RX", "poll", 1);
		ck_assert_int_eq(mkt_run(record_backend, NULL, NULL), 7);
		ck_assert_str_eq(seen_backend, backends[i]);
		setenv("MKHOST_URING_RX", "", 1);
		ck_assert_int_eq(mkt_run(record_backend, NULL, NULL), 7);
	}
	unsetenv("MKHOST_URING_RX");
	unsetenv("MKHOST_BACKEND");
}
END_TEST

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--idle-child") == 0) {
		char *args[] = {argv[0], NULL};
		return mk_run(1, args, idle_main, NULL) == -EINTR ? 3 : 4;
	}

	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("backend");

	tcase_set_timeout(tc, 60);

	tcase_add_test(tc, falls_back_to_epoll);
	tcase_add_test(tc, io_uring_required_fails);
	tcase_add_test(tc, io_uring_by_default);
	tcase_add_test(tc, config_selects_epoll);
	tcase_add_test(tc, environment_overrides_config);
	tcase_add_test(tc, bad_setting);
	tcase_add_test(tc, bad_rx_setting);
	tcase_add_test(tc, io_uring_required_by_config_names_it);
	tcase_add_test(tc, config_out_of_range);
	tcase_add_test(tc, valgrind_uses_epoll);
	suite_add_tcase(s, tc);

	return mkt_run_suite(s, false);
}
