/* Error codes and the sentences that explain connect and argument failures. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Per thread, like the scheduler, so that two schedulers never share it. */
static _Thread_local char last_error[512];

int mk__fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

void mk__clear_error(void)
{
	last_error[0] = '\0';
}

const char *mk_last_error(void)
{
	return last_error;
}

const char *mk_strerror(int err)
{
	if (err == 0)
		return "Success";
	if (err > 0)
		err = -err;
	/* strerror() may use a shared buffer for unknown codes; these are the ones mkhost returns,
	 * described in its own terms where it gives them a meaning of their own. */
	switch (err) {
	case -ECANCELED:
		return "Task cancelled";
	case -EPERM:
		return "Operation not permitted (outside mk_run, or from a hook)";
	case -EDEADLK:
		return "Every task is waiting and nothing can wake them";
	default:
		return strerrordesc_np(-err) ? strerrordesc_np(-err) : "Unknown error";
	}
}

const char *mk_version(void)
{
	return "0.1.0";
}
