/* bench-echo: the ARP + ICMP echo responder of examples/ping-serve.c (its ps_handle_frame, the
 * same code byte for byte) driven by mkhost or by a baseline (see endpoint.h), so that a
 * `ping -f` against each shows what the I/O path costs. scripts/bench also runs
 * examples/ping-serve itself; this program adds the baselines and mkhost's busy-poll setting.
 *
 *   bench-echo IMPL IFACE IPV4 [BUSY_POLL_US]
 *
 * It answers until it is killed, or for at most DEADLINE_S seconds. */
#define PING_SERVE_NO_MAIN
#include "ping-serve.c"

#include "benchlib.h"
#include "endpoint.h"

#define DEADLINE_S 120

static int echo_body(struct ep *e, void *arg)
{
	struct ps_host *h = arg;
	size_t size = ep_frame_max(e);
	uint8_t *reply = malloc(size), *frame;

	if (reply == NULL)
		bench_die("out of memory");
	memcpy(h->mac, ep_mac(e), 6);
	printf("bench-echo: ready\n");
	fflush(stdout);
	for (;;) {
		ssize_t n = ep_recv(e, &frame);
		if (n == -ECANCELED)
			return 0; /* mkhost stops its tasks this way on SIGTERM */
		if (n < 0)
			bench_die("recv: %s", strerror((int)-n));
		size_t r = ps_handle_frame(h, frame, (size_t)n, reply, size);
		if (r == 0)
			continue;
		int err = ep_send(e, reply, r);
		if (err < 0)
			bench_die("send: %s", strerror(-err));
	}
}

int main(int argc, char **argv)
{
	struct ps_host host;

	bench_prog = "bench-echo";
	bench_deadline(DEADLINE_S);
	memset(&host, 0, sizeof(host));
	if (argc < 4 || argc > 5 || inet_pton(AF_INET, argv[3], host.ip) != 1)
		bench_die("usage: bench-echo IMPL IFACE IPV4 [BUSY_POLL_US]");
	unsigned busy = argc == 5 ? (unsigned)bench_ulong(argv[4], "busy-poll microseconds") : 0;
	return ep_run(ep_impl_parse(argv[1]), argv[2], busy, echo_body, &host);
}
