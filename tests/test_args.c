/* Device arguments: what mk_run removes from argv, what it refuses, and the connect errors that
 * need no device (no root, no TAP). */
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

/* Checks made inside mk_run record the first failure here (Check's assertions longjmp in
 * CK_FORK=no mode, which must not happen from a task's stack). */

static void setup(void)
{
	mkt_failed[0] = '\0';
}

/* mk_run on (args), a NULL-terminated list without argv[0]. */
static int run_args(mk_main_fn fn, void *arg, const char *const *args)
{
	char *argv[64] = {"test"};
	int argc = 1;
	while (argc < 63 && args[argc - 1])
		argv[argc] = (char *)args[argc - 1], argc++;
	argv[argc] = NULL;
	return mk_run(argc, argv, fn, arg);
}

/* ---------------------------------------------------------------------------------------- */
/*  What main sees                                                                          */
/* ---------------------------------------------------------------------------------------- */

struct expect_argv {
	const char *const *args; /* what main should see after argv[0], NULL-terminated */
	int ran;
};

static int main_expect_argv(int argc, char **argv, void *arg)
{
	struct expect_argv *e = arg;
	int n = 0;

	e->ran++;
	while (e->args[n])
		n++;
	CHECK_INT(argc, ==, n + 1);
	if (argc != n + 1)
		return -1;
	if (strcmp(argv[0], "test") != 0)
		mkt_failf(__LINE__, "argv[0] is \"%s\"", argv[0]);
	for (int i = 0; i < n; i++)
		if (strcmp(argv[i + 1], e->args[i]) != 0)
			mkt_failf(__LINE__, "argv[%d] is \"%s\", expected \"%s\"", i + 1,
			          argv[i + 1], e->args[i]);
	if (argv[argc] != NULL)
		mkt_failf(__LINE__, "argv[argc] is not NULL");
	return 12;
}

static void check_argv(const char *const *given, const char *const *seen)
{
	struct expect_argv e = {.args = seen};
	int r = run_args(main_expect_argv, &e, given);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(e.ran, 1);
	ck_assert_int_eq(r, 12);
}

START_TEST(device_args_removed)
{
	static const char *const given[] = {
	    "a", "--net:svc=tap0", "b",  "--net-mac:svc=02:00:00:00:00:01",
	    "c", "--net:other=@7", "-x", NULL};
	static const char *const seen[] = {"a", "b", "c", "-x", NULL};
	check_argv(given, seen);

	static const char *const only_devices[] = {"--net:svc=tap0", NULL};
	static const char *const nothing[] = {NULL};
	check_argv(only_devices, nothing);
	check_argv(nothing, nothing);
}
END_TEST

/* argv ends at its first NULL even when argc says more: the same argv handed to mk_run again,
 * with the argc it had before the first run shortened it, works. */
START_TEST(argv_reused_after_a_run)
{
	char *argv[] = {"test", "a", "--net:svc=tap0", "b", NULL};
	static const char *const seen[] = {"a", "b", NULL};
	struct expect_argv e = {.args = seen};

	ck_assert_int_eq(mk_run(4, argv, main_expect_argv, &e), 12);
	ck_assert_int_eq(mk_run(4, argv, main_expect_argv, &e), 12); /* argv[3] is NULL now */
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(e.ran, 2);
}
END_TEST

START_TEST(mac_before_net_and_hex_case)
{
	/* The order of the two options does not matter, nor the case of hex digits. */
	static const char *const given[] = {"--net-mac:svc=02:aB:Cd:eF:00:01", "x",
	                                    "--net:svc=tap0", NULL};
	static const char *const seen[] = {"x", NULL};
	check_argv(given, seen);
}
END_TEST

START_TEST(double_dash)
{
	static const char *const given[] = {
	    "a",          "--net:svc=tap0", "--", "--net:x=y", "--", "--net-foo:z=1",
	    "--net:=bad", "--help",         "b",  NULL};
	static const char *const seen[] = {"a",          "--net:x=y", "--", "--net-foo:z=1",
	                                   "--net:=bad", "--help",    "b",  NULL};
	check_argv(given, seen);

	static const char *const trailing[] = {"--", NULL};
	static const char *const nothing[] = {NULL};
	check_argv(trailing, nothing);
}
END_TEST

/* Run with the arguments (arg), after which main must see just "--help". */
static int child_help(void *arg)
{
	static const char *const seen[] = {"--help", NULL};
	struct expect_argv e = {.args = seen};
	int r = run_args(main_expect_argv, &e, arg);
	if (mkt_failed[0])
		fprintf(stderr, "%s\n", mkt_failed);
	return r == 12 && e.ran == 1 && !mkt_failed[0] ? 0 : 1;
}

START_TEST(help)
{
	static const char *const help_only[] = {"--help", NULL};
	struct mkt_captured c;
	mkt_run_captured(STDOUT_FILENO, child_help, (void *)help_only, &c);
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
	              "--help was not passed to main (status 0x%x)", c.status);
	ck_assert_msg(strstr(c.text, "--net:") != NULL, "--help does not show --net:\n%s", c.text);
	ck_assert_msg(strstr(c.text, "--net-mac:") != NULL, "--help does not show --net-mac:\n%s",
	              c.text);

	/* After "--" it belongs to the program alone. */
	static const char *const after_dashes[] = {"--", "--help", NULL};
	mkt_run_captured(STDOUT_FILENO, child_help, (void *)after_dashes, &c);
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status 0x%x", c.status);
	ck_assert_msg(strstr(c.text, "--net") == NULL, "help printed for \"-- --help\":\n%s",
	              c.text);
}
END_TEST

static int child_quiet(void *arg)
{
	static const char *const given[] = {"a", "--net:svc=tap0",
	                                    "--net-mac:svc=02:00:00:00:00:01", NULL};
	static const char *const seen[] = {"a", NULL};
	struct expect_argv e = {.args = seen};
	int r = run_args(main_expect_argv, &e, given);
	return r == 12 && !mkt_failed[0] ? 0 : 1;
}

START_TEST(valid_args_are_quiet)
{
	/* mk_run writes on stderr only for a malformed argument, a fallback, an overflow. */
	if (!getenv("MKHOST_BACKEND"))
		return; /* then the fallback line is allowed */
	struct mkt_captured c;
	mkt_run_captured(STDERR_FILENO, child_quiet, NULL, &c);
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status 0x%x", c.status);
	ck_assert_msg(c.text[0] == '\0', "mk_run wrote on stderr: %s", c.text);
}
END_TEST

static int child_last_error_empty(void *arg)
{
	const char *e = mk_last_error();
	return e != NULL && e[0] == '\0' ? 0 : 1;
}

START_TEST(last_error_empty_at_start)
{
	struct mkt_captured c;
	mkt_run_captured(STDERR_FILENO, child_last_error_empty, NULL, &c);
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
	              "mk_last_error() is not \"\" before any failure");
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Malformed arguments                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Each is given after the well-formed "--net:svc=tap0"; the error message must quote it. */
static const char *const malformed[] = {
    "--net:=tap0",                        /* empty name */
    "--net:",                             /* nothing at all */
    "--net:bad",                          /* no '=' */
    "--net:bad=",                         /* empty value */
    "--net:bad=@abc",                     /* bad descriptor */
    "--net:bad=@-1",                      /* negative descriptor */
    "--net:bad=@",                        /* no descriptor */
    "--net:bad=@3x",                      /* trailing garbage */
    "--net-mac:svc=zz:11:22:33:44:55",    /* not hex */
    "--net-mac:svc=01:00:00:00:00:01",    /* multicast */
    "--net-mac:svc=02:00:00:00:00",       /* short */
    "--net-mac:svc=02:00:00:00:00:01:02", /* long */
    "--net-mac:svc=",                     /* empty */
    "--net-mac:=02:00:00:00:00:01",       /* empty name */
    "--net-foo:x=y",                      /* unknown option */
};

/* A MAC for a device never given: the message names the option and the device. */
#define MAC_WITHOUT_NET       "--net-mac:nosuch=02:00:00:00:00:01"
#define MAC_WITHOUT_NET_NAMED "--net-mac:nosuch"

static int main_must_not_run(int argc, char **argv, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int run_malformed(const char *bad)
{
	/* Well-formed arguments around the bad one, so only (bad) is at fault. */
	const char *args[] = {"a", "--net:svc=tap0", bad, "b", NULL};
	int ran = 0;
	int r = run_args(main_must_not_run, &ran, args);
	if (ran)
		mkt_failf(__LINE__, "main ran despite %s", bad);
	return r;
}

static void check_malformed(const char *bad, const char *named)
{
	int r = run_malformed(bad);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_msg(r == -EINVAL, "mk_run with %s returned %d, expected -EINVAL", bad, r);
	const char *msg = mk_last_error();
	ck_assert_msg(msg && strstr(msg, named), "mk_last_error() does not name %s: \"%s\"", named,
	              msg ? msg : "(null)");
}

static int child_malformed(void *arg)
{
	return run_malformed(arg) == -EINVAL ? 0 : 1;
}

static void check_malformed_stderr(const char *bad, const char *named)
{
	struct mkt_captured c;
	mkt_run_captured(STDERR_FILENO, child_malformed, (void *)bad, &c);
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
	              "mk_run with %s: status 0x%x", bad, c.status);
	ck_assert_msg(strstr(c.text, named) != NULL, "stderr does not name %s: \"%s\"", named,
	              c.text);
	const char *nl = strchr(c.text, '\n');
	ck_assert_msg(nl && nl[1] == '\0', "not one line on stderr for %s: \"%s\"", bad, c.text);
}

START_TEST(malformed_rejected)
{
	check_malformed(malformed[_i], malformed[_i]);
}
END_TEST

START_TEST(malformed_reported_on_stderr)
{
	check_malformed_stderr(malformed[_i], malformed[_i]);
}
END_TEST

/* Arguments that look like one of mkhost's options but are not: refused with what was meant
 * (they used to reach main silently, and --sandbox=1 ran the program with no sandbox). */
static const struct {
	const char *arg, *says;
} lookalikes[] = {
    {"--sandbox=1", "did you mean --sandbox (it takes no value)?"},
    {"--sandbox=on", "did you mean --sandbox (it takes no value)?"},
    {"--Sandbox", "did you mean --sandbox (it takes no value)?"},
    {"--sandbx", "did you mean --sandbox (it takes no value)?"},
    {"--net=tap0", "did you mean --net:NAME=tap0?"},
    {"--net", "did you mean --net:NAME=IFACE?"},
    {"--Net:a=tap0", "did you mean --net:a=tap0?"},
    {"--block=x.img", "did you mean --block:NAME=x.img?"},
    {"--blocks:a=b", "did you mean --block:a=b?"},
    {"--net-macs:a=02:00:00:00:00:01", "did you mean --net-mac:a=02:00:00:00:00:01?"},
    {"--busy_poll=50", "did you mean --busy-poll=50?"},
    {"--stack-size:1M", "did you mean --stack-size=1M?"},
    {"--Backend=epoll", "did you mean --backend=epoll?"},
};

START_TEST(lookalike_refused)
{
	char says[200];

	check_malformed(lookalikes[_i].arg, lookalikes[_i].says);
	snprintf(says, sizeof(says), "'%s' is not an option of mkhost's", lookalikes[_i].arg);
	check_malformed(lookalikes[_i].arg, says);
	check_malformed(lookalikes[_i].arg, "must get it after '--'");
	check_malformed_stderr(lookalikes[_i].arg, lookalikes[_i].says);
}
END_TEST

/* Arguments of the program's own, close to none of mkhost's, and look-alikes after "--", reach
 * main untouched. */
START_TEST(program_options_pass)
{
	static const char *const given[] = {"--verbose", "--network=x", "--blocksize=4",
	                                    "--sandboxes", "--netmask", "-n", "--",
	                                    "--sandbox=1", "--net=tap0", NULL};
	static const char *const seen[] = {"--verbose", "--network=x", "--blocksize=4",
	                                   "--sandboxes", "--netmask", "-n", "--sandbox=1",
	                                   "--net=tap0", NULL};
	check_argv(given, seen);
}
END_TEST

START_TEST(mac_without_net)
{
	check_malformed(MAC_WITHOUT_NET, MAC_WITHOUT_NET_NAMED);
	check_malformed_stderr(MAC_WITHOUT_NET, MAC_WITHOUT_NET_NAMED);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Connect errors that need no device                                                      */
/* ---------------------------------------------------------------------------------------- */

static int main_connect_errors(int argc, char **argv, void *arg)
{
	mk_net *net = NULL;
	struct mk_net_config cfg;
	int pipefd[2];

	CHECK_INT(mk_net_connect("nosuch", &net, &cfg), ==, -ENOENT);
	CHECK_HAS(mk_last_error(), "nosuch");
	CHECK_INT(net == NULL, ==, 1);

	CHECK_INT(mk_net_connect("twice", &net, NULL), ==, -EEXIST);
	CHECK_HAS(mk_last_error(), "twice");

	CHECK_INT(mk_net_connect(NULL, &net, NULL), ==, -EINVAL);
	CHECK_INT(mk_net_connect("svc", NULL, NULL), ==, -EINVAL);

	/* @FD that is not open. */
	CHECK_INT(mk_net_connect("closed", &net, NULL), ==, -EBADF);
	CHECK_HAS(mk_last_error(), "closed");

	/* @FD that is open but not a TAP. */
	if (pipe(pipefd) == 0) {
		if (dup2(pipefd[0], 900) == 900) {
			CHECK_INT(mk_net_connect("notatap", &net, NULL), ==, -EINVAL);
			CHECK_HAS(mk_last_error(), "notatap");
			close(900);
		}
		close(pipefd[0]);
		close(pipefd[1]);
	}
	return 0;
}

START_TEST(connect_errors)
{
	static const char *const args[] = {"--net:twice=mkt-none0", "--net:svc=mkt-none1",
	                                   "--net:twice=mkt-none2", "--net:closed=@901",
	                                   "--net:notatap=@900",    NULL};
	close(901);
	int r = run_args(main_connect_errors, NULL, args);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(r, 0);
}
END_TEST

static int main_connect_nothing(int argc, char **argv, void *arg)
{
	mk_net *net = NULL;
	CHECK_INT(mk_net_connect("svc", &net, NULL), ==, -ENOENT);
	CHECK_HAS(mk_last_error(), "svc");
	return 0;
}

START_TEST(connect_without_devices)
{
	static const char *const args[] = {"svc", NULL};
	int r = run_args(main_connect_nothing, NULL, args);
	ck_assert_msg(!mkt_failed[0], "%s", mkt_failed);
	ck_assert_int_eq(r, 0);
}
END_TEST

static Suite *args_suite(void)
{
	Suite *s = suite_create("args");
	struct {
		const char *name;
		const TTest *test;
	} tests[] = {
	    {"removed", device_args_removed},
	    {"argv_reused", argv_reused_after_a_run},
	    {"mac_first", mac_before_net_and_hex_case},
	    {"double_dash", double_dash},
	    {"help", help},
	    {"quiet", valid_args_are_quiet},
	    {"last_error_empty", last_error_empty_at_start},
	    {"connect_errors", connect_errors},
	    {"connect_nothing", connect_without_devices},
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		TCase *tc = tcase_create(tests[i].name);
		tcase_add_checked_fixture(tc, setup, NULL);
		tcase_set_timeout(tc, 30);
		tcase_add_test(tc, tests[i].test);
		suite_add_tcase(s, tc);
	}
	int n = (int)(sizeof(malformed) / sizeof(malformed[0]));
	TCase *tc = tcase_create("malformed");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, malformed_rejected, 0, n);
	tcase_add_loop_test(tc, malformed_reported_on_stderr, 0, n);
	tcase_add_test(tc, mac_without_net);
	tcase_add_loop_test(tc, lookalike_refused, 0, sizeof(lookalikes) / sizeof(lookalikes[0]));
	tcase_add_test(tc, program_options_pass);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	mkt_skip_without_backend();
	return mkt_run_suite(args_suite(), false);
}
