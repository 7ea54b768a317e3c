/* The mk_config settings from the command line: --busy-poll=US, --stack-size=SIZE,
 * --backend=NAME, --clock=real|virtual, --seed=S and --tx-batch=N, so that a program (a Solo5 unikernel above all, which has no mk_config to fill)
 * is tuned at run time. A value given here wins over the program's mk_config and over
 * MKHOST_BACKEND. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_BUSY_POLL_US 1000000u     /* a second: past that it is no longer a poll */
#define MIN_STACK_SIZE   (16u * 1024) /* what a task needs to run at all */
#define MAX_STACK_SIZE   (1024u * 1024 * 1024)
#define MAX_TX_BATCH     4096u /* frames queued on one device */

static const char *const prefixes[] = {"--busy-poll=", "--stack-size=", "--backend=",
                                       "--clock=",     "--seed=",       "--tx-batch="};

bool mk__tuning_is(const char *arg)
{
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);
		/* "--busy-poll" without "=" is one too, so that it is refused with the fix */
		if (strncmp(arg, prefixes[i], n) == 0 ||
		    (strncmp(arg, prefixes[i], n - 1) == 0 && arg[n - 1] == '\0'))
			return true;
	}
	return false;
}

/* A decimal number, all of (s) but an optional suffix among (suffixes); its scale in (*scale). */
static int number(const char *s, unsigned long long *v, const char *suffixes, unsigned *shift)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	*shift = 0;
	if (*end != '\0' && suffixes != NULL && end[1] == '\0' && strchr(suffixes, *end) != NULL) {
		*shift = *end == 'K' || *end == 'k' ? 10 : 20;
		end++;
	}
	return *end == '\0' ? 0 : -EINVAL;
}

int mk__tuning_parse(struct mk__tuning *t, const char *arg)
{
	const char *eq = strchr(arg, '=');
	const char *v = eq != NULL ? eq + 1 : "";
	unsigned long long n;
	unsigned shift;

	if (strncmp(arg, "--busy-poll", 11) == 0) {
		if (number(v, &n, NULL, &shift) != 0 || n > MAX_BUSY_POLL_US)
			return mk__fail(
			    -EINVAL,
			    "'%s': write the busy-poll time in microseconds, from 0 (off) "
			    "to %u, e.g. --busy-poll=50",
			    arg, MAX_BUSY_POLL_US);
		t->busy_poll_us = (unsigned)n;
		t->has_busy_poll = true;
		return 0;
	}
	if (strncmp(arg, "--tx-batch", 10) == 0) {
		if (number(v, &n, NULL, &shift) != 0 || n > MAX_TX_BATCH)
			return mk__fail(-EINVAL,
			                "'%s': write how many frames a TAP may queue, from 0 (off) to "
			                "%u, e.g. --tx-batch=64",
			                arg, MAX_TX_BATCH);
		t->tx_batch = (unsigned)n;
		t->has_tx_batch = true;
		return 0;
	}
	if (strncmp(arg, "--stack-size", 12) == 0) {
		if (number(v, &n, "KkMm", &shift) != 0 || n > (MAX_STACK_SIZE >> shift) ||
		    (n << shift) < MIN_STACK_SIZE)
			return mk__fail(
			    -EINVAL,
			    "'%s': write a task stack size in bytes, K or M, from 16K to "
			    "1024M, e.g. --stack-size=1M",
			    arg);
		t->stack_size = (size_t)(n << shift);
		return 0;
	}
	if (strncmp(arg, "--clock", 7) == 0) {
		if (strcmp(v, "virtual") == 0)
			t->clock = MK_CLOCK_VIRTUAL;
		else if (strcmp(v, "real") == 0)
			t->clock = MK_CLOCK_REAL;
		else
			return mk__fail(-EINVAL, "'%s': the clock is real or virtual", arg);
		t->has_clock = true;
		return 0;
	}
	if (strncmp(arg, "--seed", 6) == 0) {
		if (number(v, &n, NULL, &shift) != 0)
			return mk__fail(-EINVAL,
			                "'%s': write the seed as a whole number (decimal) from 0 to "
			                "18446744073709551615, e.g. --seed=42",
			                arg);
		t->seed = n;
		t->has_seed = true;
		return 0;
	}
	if (strcmp(v, "io_uring") == 0)
		t->backend = MK_BACKEND_IO_URING;
	else if (strcmp(v, "epoll") == 0)
		t->backend = MK_BACKEND_EPOLL;
	else if (strcmp(v, "auto") == 0)
		t->backend = MK_BACKEND_AUTO;
	else
		return mk__fail(-EINVAL, "'%s': the backend is one of io_uring, epoll, auto", arg);
	t->has_backend = true;
	return 0;
}

int mk__tuning_check_config(const struct mk_config *cfg)
{
	if (cfg == NULL)
		return 0;
	/* Compared as integers: an enum may hold any int, and a cast from a wider value too. */
	if ((int)cfg->backend != MK_BACKEND_AUTO && (int)cfg->backend != MK_BACKEND_IO_URING &&
	    (int)cfg->backend != MK_BACKEND_EPOLL)
		return mk__fail(-EINVAL,
		                "mk_config.backend is %d, not one of MK_BACKEND_AUTO, "
		                "MK_BACKEND_IO_URING, MK_BACKEND_EPOLL",
		                (int)cfg->backend);
	if (cfg->stack_size != 0 &&
	    (cfg->stack_size < MIN_STACK_SIZE || cfg->stack_size > MAX_STACK_SIZE))
		return mk__fail(-EINVAL,
		                "mk_config.stack_size is %zu bytes; give 0 for the default, or "
		                "from 16 KiB to 1 GiB",
		                cfg->stack_size);
	if ((int)cfg->clock != MK_CLOCK_REAL && (int)cfg->clock != MK_CLOCK_VIRTUAL)
		return mk__fail(-EINVAL,
		                "mk_config.clock is %d, not one of MK_CLOCK_REAL, MK_CLOCK_VIRTUAL",
		                (int)cfg->clock);
	if (cfg->busy_poll_us > MAX_BUSY_POLL_US)
		return mk__fail(-EINVAL,
		                "mk_config.busy_poll_us is %u; give 0 (off) to %u microseconds",
		                cfg->busy_poll_us, MAX_BUSY_POLL_US);
	if (cfg->tx_batch > MAX_TX_BATCH)
		return mk__fail(-EINVAL,
		                "mk_config.tx_batch is %u; give 0 (off) to %u frames",
		                cfg->tx_batch, MAX_TX_BATCH);
	return 0;
}
