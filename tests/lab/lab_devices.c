/* lab-devices: the PROGRAM of the lab suite's two-TAP test. Connects every device named after
 * "--" (as given by --net:NAME=IFACE), prints "NAME: mtu N" for each, then waits until it is
 * stopped (SIGTERM), as a server would.
 *   lab-devices --net:a=tap0 --net:b=tap1 -- a b
 */
#include <errno.h>
#include <stdio.h>

#include "mkhost.h"

static int devices_main(int argc, char **argv, void *arg)
{
	(void)arg;
	if (argc < 2) {
		fprintf(stderr, "usage: lab-devices --net:NAME=IFACE... -- NAME...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		mk_net *net;
		struct mk_net_config cfg;
		if (mk_net_connect(argv[i], &net, &cfg) != 0) {
			fprintf(stderr, "lab-devices: %s\n", mk_last_error());
			return 1;
		}
		printf("%s: mtu %u\n", mk_net_name(net), cfg.mtu);
	}
	fflush(stdout);
	while (mk_sleep(1000000000ULL) == 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	int r = mk_run(argc, argv, devices_main, NULL);
	return r == -EINTR ? 0 : r < 0 ? 1 : r;
}
