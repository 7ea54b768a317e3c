/* tcp-pair: a TCP client and server on lwIP, in one program, joined by an in-process LAN.
 *
 * Build (meson builds it as build/examples/tcp-pair when lwIP is installed), or by hand:
 *   cc -O2 examples/tcp-pair.c $(pkg-config --cflags --libs mkhost-lwip) -o tcp-pair
 *
 * Run (no privilege needed: hub: is a switch inside the program):
 *   ./tcp-pair --net:client=hub:lan --net:server=hub:lan -- [BYTES]
 *   ./tcp-pair --net:client=hub:lan --net:server=hub:lan \
 *       --net-fault:client=drop=5%,reorder=2%,dup=1%,seed=7 --net-pcap:client=pair.pcap
 *
 * The client (10.0.0.1) sends BYTES (16 MiB by default) of a pseudo-random stream to the server
 * (10.0.0.2, port 5001) and closes; the server hashes what it receives and compares with the
 * client's hash of what it sent. The exit status is 0 when they match.
 *
 * lwIP keeps one state per process, so the "two stacks" are two netifs of one lwIP, each with its
 * own device, address and receive task. Each side is bound to its netif (tcp_bind_netif): without
 * that, lwIP would route the server's answers to 10.0.0.1 through the client's own netif, whose
 * address it is, and loop them back inside lwIP instead of sending them across the LAN.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/tcp.h"
#include "mkhost-lwip.h"
#include "mkhost.h"

#define PORT 5001
#define NS   1000000000ULL

/* The stream (xorshift64*) and its hash (64-bit FNV-1a). */
struct stream {
	uint64_t state, hash, bytes;
};

static uint8_t stream_next(struct stream *s)
{
	s->state ^= s->state >> 12;
	s->state ^= s->state << 25;
	s->state ^= s->state >> 27;
	return (uint8_t)((s->state * 0x2545F4914F6CDD1DULL) >> 56);
}

static void hash_bytes(struct stream *s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s->hash = (s->hash ^ p[i]) * 0x100000001b3ULL;
	s->bytes += n;
}

static struct {
	uint64_t total;
	struct stream sent, received;
	struct tcp_pcb *client;
	bool connected, sender_done, server_done, failed;
	mk_cond *done;
} pair = {.sent = {.state = 88172645463325252ULL, .hash = 0xcbf29ce484222325ULL},
          .received = {.hash = 0xcbf29ce484222325ULL}};

/* ---- the client: write while lwIP's send buffer has room ------------------------------- */

static void client_send(struct tcp_pcb *pcb)
{
	uint8_t chunk[4096];

	while (pair.sent.bytes < pair.total) {
		size_t n = tcp_sndbuf(pcb);
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		if (n > pair.total - pair.sent.bytes)
			n = (size_t)(pair.total - pair.sent.bytes);
		if (n == 0)
			break;
		struct stream before = pair.sent;
		for (size_t i = 0; i < n; i++)
			chunk[i] = stream_next(&pair.sent);
		if (tcp_write(pcb, chunk, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK) {
			pair.sent = before; /* the segment queue is full: again on the next ACK */
			break;
		}
		hash_bytes(&pair.sent, chunk, n);
	}
	tcp_output(pcb);
	if (pair.sent.bytes == pair.total && !pair.sender_done) {
		pair.sender_done = true;
		tcp_close(pcb); /* the FIN goes after the data */
	}
}

static err_t client_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	client_send(pcb);
	return ERR_OK;
}

static err_t client_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	pair.connected = true;
	client_send(pcb);
	return ERR_OK;
}

static void client_err(void *arg, err_t err)
{
	if (pair.server_done)
		return; /* the connection lingers after the transfer until mk_lwip_detach ends it */
	fprintf(stderr, "tcp-pair: the client's connection failed: lwIP error %d\n", err);
	pair.failed = true;
	mk_cond_signal(pair.done);
}

/* ---- the server: hash everything, until the FIN ---------------------------------------- */

static err_t server_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	if (p == NULL) {
		pair.server_done = true;
		tcp_close(pcb);
		mk_cond_signal(pair.done);
		return ERR_OK;
	}
	for (struct pbuf *q = p; q != NULL; q = q->next)
		hash_bytes(&pair.received, q->payload, q->len);
	tcp_recved(pcb, p->tot_len);
	pbuf_free(p);
	return ERR_OK;
}

static err_t server_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	if (err != ERR_OK)
		return ERR_VAL;
	tcp_recv(pcb, server_recv);
	return ERR_OK;
}

/* ---- setting up, and waiting ---------------------------------------------------------- */

static int attach(const char *name, const char *address, mk_net **net, mk_lwip **out)
{
	struct mk_net_config cfg;
	int err = mk_net_connect(name, net, &cfg);

	if (err != 0) {
		fprintf(stderr, "tcp-pair: %s\n", mk_last_error());
		return err;
	}
	err = mk_lwip_attach(*net, &cfg, out);
	if (err == 0)
		err = mk_lwip_set_ipv4(*out, address, NULL);
	if (err != 0)
		fprintf(stderr, "tcp-pair: %s\n", mk_lwip_last_error());
	return err;
}

/* What --net-fault did to the frames of (net), both ways. */
static void print_faults(mk_net *net)
{
	struct mk_net_stats st;

	mk_net_stats(net, &st);
	printf("tcp-pair: %s: faults sent: %" PRIu64 " dropped, %" PRIu64 " duplicated, %" PRIu64
	       " reordered; received: %" PRIu64 " dropped, %" PRIu64 " duplicated, %" PRIu64
	       " reordered\n",
	       mk_net_name(net), st.fault_tx.drops, st.fault_tx.dups, st.fault_tx.reorders,
	       st.fault_rx.drops, st.fault_rx.dups, st.fault_rx.reorders);
}

static int pair_main(int argc, char **argv, void *arg)
{
	pair.total = argc > 1 ? strtoull(argv[1], NULL, 0) : 16u << 20;
	mk_net *client_net, *server_net;
	mk_lwip *client, *server;
	if (mk_cond_new(&pair.done) != 0 ||
	    attach("client", "10.0.0.1/24", &client_net, &client) != 0 ||
	    attach("server", "10.0.0.2/24", &server_net, &server) != 0)
		return 1;

	ip_addr_t server_ip;
	IP_ADDR4(&server_ip, 10, 0, 0, 2);
	struct tcp_pcb *listener = tcp_new();
	tcp_bind_netif(listener, mk_lwip_netif(server));
	tcp_bind(listener, &server_ip, PORT);
	listener = tcp_listen(listener);
	tcp_accept(listener, server_accept);

	pair.client = tcp_new();
	tcp_bind_netif(pair.client, mk_lwip_netif(client));
	tcp_sent(pair.client, client_sent);
	tcp_err(pair.client, client_err);
	uint64_t start = mk_clock_monotonic();
	tcp_connect(pair.client, &server_ip, PORT, client_connected);

	/* Everything happens in lwIP's callbacks; wait for the server to see the FIN. */
	uint64_t deadline = start + 1200 * NS; /* 16 MiB at 5 % loss take about 300 s */
	int err = 0;
	while (!pair.server_done && !pair.failed && err != -ETIMEDOUT && err != -ECANCELED)
		err = mk_cond_wait(pair.done, deadline);
	uint64_t ms = (mk_clock_monotonic() - start) / 1000000;

	bool ok = pair.server_done && pair.received.bytes == pair.total &&
	          pair.received.hash == pair.sent.hash;
	printf("tcp-pair: %" PRIu64 " of %" PRIu64 " bytes in %" PRIu64
	       " ms, digest sent %016" PRIx64 " received %016" PRIx64 ": %s\n",
	       pair.received.bytes, pair.total, ms, pair.sent.hash, pair.received.hash,
	       ok ? "ok" : (err == -ETIMEDOUT ? "TIMED OUT" : "MISMATCH"));
	print_faults(client_net);
	print_faults(server_net);
	fflush(stdout);
	tcp_close(listener);
	mk_lwip_detach(client);
	mk_lwip_detach(server);
	mk_cond_free(pair.done);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	int rc = mk_run(argc, argv, pair_main, NULL);
	if (rc < 0) {
		if (rc != -EINVAL) /* mk_run already printed the reason for a malformed argument */
			fprintf(stderr, "tcp-pair: %s\n", mk_strerror(rc));
		return 1;
	}
	return rc;
}
