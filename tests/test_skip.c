/* mkt_skip_missing: a skip for something scripts/deps installs is a skip on a developer's
 * machine, and a failure under CI=true, so that a missing install step fails CI. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* The exit status of a child that calls mkt_skip_missing with CI set to (ci), or unset. */
static int skip_status(const char *ci)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (ci != NULL)
			setenv("CI", ci, 1);
		else
			unsetenv("CI");
		mkt_skip_missing("a package is missing (a test of the skip itself)");
	}
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int main(void)
{
	int unset = skip_status(NULL), other = skip_status("false"), ci = skip_status("true");

	printf("CI unset: exit %d, CI=false: exit %d, CI=true: exit %d\n", unset, other, ci);
	return unset == MKT_SKIP && other == MKT_SKIP && ci == 1 ? 0 : 1;
}
