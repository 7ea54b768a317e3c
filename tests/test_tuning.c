/* The mk_config settings from the command line (--busy-poll=US, --stack-size=SIZE,
 * --backend=NAME): taken out of argv, applied over the program's mk_config and MKHOST_BACKEND,
 * and bad values refused with a sentence before main runs. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/internal.h"
#include "mkhost.h"
#include "testlib.h"

static void setup(void)
{
	mkt_failed[0] = '\0';
}

struct seen {
	int argc;
	unsigned busy_poll_us;
	unsigned tx_batch;
	size_t stack_size;
	char backend[16];
	int ran;
};

static intptr_t deep(void *arg)
{
	/* 512 KiB of stack, more than the 256 KiB default gives */
	volatile char big[512 * 1024];

	big[0] = 1;
	big[sizeof(big) - 1] = (char)(intptr_t)arg;
	return big[0] + big[sizeof(big) - 1];
}

static int main_seen(int argc, char **argv, void *arg)
{
	struct seen *s = arg;
	struct mk__sched *sc = mk__sched_current;

	s->ran++;
	s->argc = argc;
	s->busy_poll_us = sc->busy_poll_us;
	s->tx_batch = sc->tx_batch;
	s->stack_size = sc->stack_size;
	snprintf(s->backend, sizeof(s->backend), "%s", mk_backend_name());
	if (s->stack_size >= 1024 * 1024) {
		mk_task *t;
		intptr_t r = 0;
		CHECK_INT(mk_task_spawn(&t, "deep", deep, (void *)1), ==, 0);
		CHECK_INT(mk_task_await(t, &r), ==, 0);
		CHECK_INT(r, ==, 2);
	}
	(void)argv;
	return 0;
}

static int run(const struct mk_config *cfg, struct seen *s, const char *const *args)
{
	char *argv[16] = {"test"};
	int argc = 1;

	while (args[argc - 1] != NULL)
		argv[argc] = (char *)args[argc - 1], argc++;
	argv[argc] = NULL;
	memset(s, 0, sizeof(*s));
	return mk_run_config(cfg, argc, argv, main_seen, s);
}

START_TEST(applied_and_removed)
{
	const char *args[] = {"--busy-poll=50", "--stack-size=1M", "--backend=epoll",
	                      "--tx-batch=64", NULL};
	struct seen s;

	ck_assert_int_eq(run(NULL, &s, args), 0);
	ck_assert_msg(mkt_failed[0] == '\0', "%s", mkt_failed);
	ck_assert_int_eq(s.ran, 1);
	ck_assert_int_eq(s.argc, 1); /* all four taken out of argv */
	ck_assert_uint_eq(s.busy_poll_us, 50);
	ck_assert_uint_eq(s.tx_batch, 64);
	ck_assert_uint_eq(s.stack_size, 1024 * 1024);
	ck_assert_str_eq(s.backend, "epoll");
}
END_TEST

START_TEST(command_line_wins)
{
	struct mk_config cfg = {.stack_size = 64 * 1024,
	                        .busy_poll_us = 10,
	                        .backend = MK_BACKEND_EPOLL,
	                        .tx_batch = 32};
	const char *none[] = {NULL};
	const char *args[] = {"--busy-poll=0", "--stack-size=512K", "--backend=auto",
	                      "--tx-batch=0", NULL};
	const char *after[] = {"--", "--busy-poll=7", NULL};
	struct seen s;

	ck_assert_int_eq(run(&cfg, &s, none), 0);
	ck_assert_uint_eq(s.busy_poll_us, 10);
	ck_assert_uint_eq(s.tx_batch, 32);
	ck_assert_uint_eq(s.stack_size, 64 * 1024);
	ck_assert_int_eq(run(&cfg, &s, args), 0);
	ck_assert_uint_eq(s.busy_poll_us, 0);
	ck_assert_uint_eq(s.tx_batch, 0);
	ck_assert_uint_eq(s.stack_size, 512 * 1024);
	/* after "--" it is the program's argument */
	ck_assert_int_eq(run(&cfg, &s, after), 0);
	ck_assert_uint_eq(s.busy_poll_us, 10);
	ck_assert_int_eq(s.argc, 2);
}
END_TEST

/* --backend wins over MKHOST_BACKEND, which wins over mk_config. */
START_TEST(backend_over_environment)
{
	const char *args[] = {"--backend=epoll", NULL};
	const char *bad_env[] = {NULL};
	struct seen s;
	char *old = getenv("MKHOST_BACKEND") ? strdup(getenv("MKHOST_BACKEND")) : NULL;

	setenv("MKHOST_BACKEND", "io_uring", 1);
	ck_assert_int_eq(run(NULL, &s, args), 0);
	ck_assert_str_eq(s.backend, "epoll");
	setenv("MKHOST_BACKEND", "nonsense", 1);
	ck_assert_int_eq(run(NULL, &s, args), 0); /* not even read */
	ck_assert_int_eq(run(NULL, &s, bad_env), -EINVAL);
	if (old != NULL)
		setenv("MKHOST_BACKEND", old, 1);
	else
		unsetenv("MKHOST_BACKEND");
	free(old);
}
END_TEST

static const struct {
	const char *arg;
	const char *said;
} bad[] = {
    {"--busy-poll=", "microseconds"},
    {"--busy-poll=x", "microseconds"},
    {"--busy-poll=-1", "microseconds"},
    {"--busy-poll=1000001", "microseconds"},
    {"--busy-poll=50us", "microseconds"},
    {"--busy-poll", "--busy-poll=50"},
    {"--stack-size=1k", "from 16K"},
    {"--stack-size=0", "from 16K"},
    {"--stack-size=2048M", "from 16K"},
    {"--stack-size=1G", "from 16K"},
    {"--stack-size=", "--stack-size=1M"},
    {"--stack-size=99999999999999999999", "from 16K"},
    {"--backend=kqueue", "io_uring, epoll, auto"},
    {"--backend", "io_uring, epoll, auto"},
    {"--tx-batch=", "--tx-batch=64"},
    {"--tx-batch", "--tx-batch=64"},
    {"--tx-batch=x", "from 0 (off) to 4096"},
    {"--tx-batch=-1", "from 0 (off) to 4096"},
    {"--tx-batch=4097", "from 0 (off) to 4096"},
    {"--tx-batch=16k", "from 0 (off) to 4096"},
};

START_TEST(bad_values_refused)
{
	const char *args[] = {bad[_i].arg, NULL};
	struct seen s;

	ck_assert_int_eq(run(NULL, &s, args), -EINVAL);
	ck_assert_int_eq(s.ran, 0);
	ck_assert_msg(strstr(mk_last_error(), bad[_i].arg) != NULL, "%s: %s", bad[_i].arg,
	              mk_last_error());
	ck_assert_msg(strstr(mk_last_error(), bad[_i].said) != NULL, "%s: %s", bad[_i].arg,
	              mk_last_error());
}
END_TEST

static Suite *tuning_suite(void)
{
	Suite *s = suite_create("tuning");
	TCase *tc = tcase_create("tuning");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, applied_and_removed);
	tcase_add_test(tc, command_line_wins);
	tcase_add_test(tc, backend_over_environment);
	tcase_add_loop_test(tc, bad_values_refused, 0, sizeof(bad) / sizeof(bad[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	mkt_skip_without_backend();
	return mkt_run_suite(tuning_suite(), false);
}
