/* sim-ping: a simulated LAN of N nodes, each answering pings (ping-serve's responder) and
 * pinging the next node once a second, over a lossy switch, on a virtual clock. Ten virtual
 * minutes take about a second; the same seed gives the same run, byte for byte.
 *
 *   sim-ping [NODES [SECONDS [LOSS]]] [mkhost options...]
 *   sim-ping 100 600 10%                              # the defaults
 *   sim-ping 3 60 5% --seed=7 --net-pcap:n0=n0.pcap   # a capture of node 0, timestamps virtual
 *   sim-ping 4 60 0% --net-partition:lan=10s-20s:n0,n1|n2,n3
 *
 * It builds mk_run's arguments itself: --clock=virtual, a hub: port per node ("n0", "n1", ...,
 * on LAN "lan", 1 ms latency), a fixed MAC per node and --net-fault:nI=drop=LOSS; the options
 * given after the numbers are added (a seed, captures, partitions, ...). It prints each node's
 * counts, checks that every frame sent is accounted for (received, or counted as dropped by a
 * fault, a full queue or a partition), and exits 1 when they do not add up. A CI job can run it
 * twice with one seed and compare the outputs.
 *
 * Build: meson builds it as build/examples/sim-ping.
 */
#define PING_SERVE_NO_MAIN
#include "ping-serve.c"

#include <time.h>

#define MAX_NODES 1000

struct node {
	struct ps_host ps; /* the responder: its address, and the requests it answered */
	mk_net *net;
	int index;
	uint64_t pings, replies; /* echo requests sent, echo replies received */
};

static struct node nodes[MAX_NODES];
static int n_nodes = 100;
static unsigned seconds = 600;

static void node_mac(int i, uint8_t mac[6])
{
	memcpy(mac, "\x02\x00\x00\x00", 4);
	mac[4] = (uint8_t)(i >> 8);
	mac[5] = (uint8_t)i;
}

static void node_ip(int i, uint8_t ip[4])
{
	ip[0] = 10;
	ip[1] = 0;
	ip[2] = (uint8_t)((i + 1) >> 8);
	ip[3] = (uint8_t)(i + 1);
}

/* Read frames: answer requests, count the replies to our own pings. */
static intptr_t node_reader(void *arg)
{
	struct node *n = arg;
	uint8_t f[1514], out[1514];

	for (;;) {
		ssize_t len = mk_net_read_bigstring(n->net, f, sizeof(f), 0, sizeof(f));
		if (len < 0)
			return 0; /* cancelled: the run is over */
		size_t r = ps_handle_frame(&n->ps, f, (size_t)len, out, sizeof(out));
		if (r > 0) {
			mk_net_write_bigstring(n->net, out, sizeof(out), 0, r);
		} else if (len >= ETHH_LEN + IPH_MINLEN + ICMPH_MINLEN &&
		           get16(f + ETHH_TYPE) == ETHERTYPE_IPV4 &&
		           f[ETHH_LEN + IPH_PROTO] == IPPROTO_ICMP &&
		           f[ETHH_LEN + IPH_MINLEN + ICMPH_TYPE] == ICMP_TYPE_ECHOREPLY) {
			n->replies++;
		}
	}
}

/* An echo request from node (n) to node (to), with sequence number (seq). */
static size_t echo_request(uint8_t *f, const struct node *n, int to, uint16_t seq)
{
	uint8_t *ip = f + ETHH_LEN, *icmp = ip + IPH_MINLEN;
	size_t icmp_len = ICMPH_MINLEN + 56;

	node_mac(to, f + ETHH_DST);
	memcpy(f + ETHH_SRC, n->ps.mac, 6);
	put16(f + ETHH_TYPE, ETHERTYPE_IPV4);
	memset(ip, 0, IPH_MINLEN);
	ip[IPH_VIHL] = 0x45;
	put16(ip + IPH_TOTLEN, (uint16_t)(IPH_MINLEN + icmp_len));
	ip[IPH_TTL] = 64;
	ip[IPH_PROTO] = IPPROTO_ICMP;
	memcpy(ip + IPH_SRC, n->ps.ip, 4);
	node_ip(to, ip + IPH_DST);
	put16(ip + IPH_CSUM, inet_checksum(ip, IPH_MINLEN));
	memset(icmp, 0, icmp_len);
	icmp[ICMPH_TYPE] = ICMP_TYPE_ECHO;
	put16(icmp + 4, (uint16_t)n->index); /* identifier */
	put16(icmp + 6, seq);
	put16(icmp + ICMPH_CSUM, inet_checksum(icmp, icmp_len));
	return ETHH_LEN + IPH_MINLEN + icmp_len;
}

/* Ping the next node once a second. */
static intptr_t node_pinger(void *arg)
{
	struct node *n = arg;
	uint8_t f[1514];

	for (unsigned s = 0; s < seconds; s++) {
		size_t len = echo_request(f, n, (n->index + 1) % n_nodes, (uint16_t)s);
		if (mk_net_write_bigstring(n->net, f, sizeof(f), 0, len) == (ssize_t)len)
			n->pings++;
		if (mk_sleep(1000000000ULL) != 0)
			return 1;
	}
	return 0;
}

static int sim(int argc, char **argv, void *arg)
{
	(void)argc, (void)argv, (void)arg;
	mk_task *readers[MAX_NODES], *pingers[MAX_NODES];
	struct mk_net_config cfg;
	char name[16];

	for (int i = 0; i < n_nodes; i++) {
		struct node *n = &nodes[i];
		snprintf(name, sizeof(name), "n%d", i);
		if (mk_net_connect(name, &n->net, &cfg) != 0) {
			fprintf(stderr, "sim-ping: %s\n", mk_last_error());
			return 1;
		}
		n->index = i;
		memcpy(n->ps.mac, cfg.mac, 6);
		node_ip(i, n->ps.ip);
		mk_task_spawn(&readers[i], name, node_reader, n);
	}
	for (int i = 0; i < n_nodes; i++)
		mk_task_spawn(&pingers[i], "pinger", node_pinger, &nodes[i]);
	for (int i = 0; i < n_nodes; i++)
		mk_task_await(pingers[i], NULL);
	mk_sleep(2000000000ULL); /* the last replies come home */
	for (int i = 0; i < n_nodes; i++) {
		mk_task_cancel(readers[i]);
		mk_task_await(readers[i], NULL);
	}

	/* Every frame sent was received, or a drop was counted for it somewhere. All traffic is
	 * unicast to a known MAC, so the switch copies each frame to exactly one port. */
	uint64_t sent = 0, received = 0, dropped = 0;
	for (int i = 0; i < n_nodes; i++) {
		struct mk_net_stats st;
		mk_net_stats(nodes[i].net, &st);
		sent += st.tx_frames;
		received += st.rx_frames;
		dropped += st.fault_tx.drops + st.fault_rx.drops + st.rx_drops + st.cut_drops;
		printf("n%d: pings %llu, replies %llu, answered %llu, drops tx %llu rx %llu cut "
		       "%llu\n",
		       i, (unsigned long long)nodes[i].pings, (unsigned long long)nodes[i].replies,
		       (unsigned long long)nodes[i].ps.echo_replies,
		       (unsigned long long)st.fault_tx.drops, (unsigned long long)st.fault_rx.drops,
		       (unsigned long long)st.cut_drops);
	}
	printf("frames: sent %llu = received %llu + dropped %llu%s\n", (unsigned long long)sent,
	       (unsigned long long)received, (unsigned long long)dropped,
	       sent == received + dropped ? "" : "  DOES NOT ADD UP");
	printf("virtual time: %.3f s\n", (double)mk_clock_monotonic() / 1e9);
	return sent == received + dropped ? 0 : 1;
}

static double real_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *loss = "10%";
	int first_option = 1;
	char **args;
	int n = 0;

	if (argc > 1 && argv[1][0] != '-')
		n_nodes = atoi(argv[first_option++]);
	if (argc > 2 && argv[2][0] != '-')
		seconds = (unsigned)atoi(argv[first_option++]);
	if (argc > 3 && argv[3][0] != '-')
		loss = argv[first_option++];
	if (n_nodes < 2 || n_nodes > MAX_NODES || seconds == 0) {
		fprintf(stderr, "usage: sim-ping [NODES (2 to %d) [SECONDS [LOSS]]] [options]\n",
		        MAX_NODES);
		return 2;
	}
	/* mk_run's arguments: ours, then the options the user gave. */
	args = calloc((size_t)(3 * n_nodes + argc + 4), sizeof(*args));
	if (args == NULL)
		return 1;
	args[n++] = argv[0];
	args[n++] = "--clock=virtual";
	for (int i = 0; i < n_nodes; i++) {
		uint8_t mac[6];
		node_mac(i, mac);
		if (asprintf(&args[n++], "--net:n%d=hub:lan,latency=1000", i) < 0 ||
		    asprintf(&args[n++], "--net-mac:n%d=%02x:%02x:%02x:%02x:%02x:%02x", i, mac[0],
		             mac[1], mac[2], mac[3], mac[4], mac[5]) < 0 ||
		    asprintf(&args[n++], "--net-fault:n%d=drop=%s", i, loss) < 0)
			return 1;
	}
	for (int i = first_option; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;

	double t0 = real_seconds();
	int rc = mk_run(n, args, sim, NULL);
	double real = real_seconds() - t0;
	if (rc < 0) {
		fprintf(stderr, "sim-ping: %s\n", mk_strerror(rc));
		return 1;
	}
	/* On stderr: the only line that differs from run to run. */
	fprintf(stderr, "real time: %.3f s (%.0f virtual seconds a real one)\n", real,
	        (seconds + 2) / (real > 0 ? real : 1e-9));
	return rc;
}
