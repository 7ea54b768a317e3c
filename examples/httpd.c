/* httpd: an HTTP/1.1 server with keep-alive, on lwIP's raw TCP API, on a mkhost net device.
 *
 * Build (meson builds it as build/examples/httpd when lwIP is installed), or by hand:
 *   cc -O2 examples/httpd.c $(pkg-config --cflags --libs mkhost-lwip) -o httpd
 *
 * Run, with a TAP interface as for ping-serve, or with no privilege at all on slirp:
 *   ./httpd --net:service=tap0 -- 10.0.0.2/24            # 1 KiB body for every path
 *   ./httpd --net:service=tap0 -- 10.0.0.2/24 65536      # a 64 KiB body
 *   ./httpd --net:service=tap0 -- 10.0.0.2/24 ./www      # the files of ./www
 *   ./httpd --net:service=slirp,hostfwd=tcp:127.0.0.1:8080-:80 -- dhcp
 *       # then: curl http://10.0.0.2/ (TAP), or curl http://127.0.0.1:8080/ (slirp)
 *
 * After the "--": the address (A.B.C.D[/PREFIX], or "dhcp" to ask for one), and optionally the
 * size of the body in bytes or a directory to serve files from. It listens on port 80. GET and
 * HEAD only. HTTP/1.1 connections stay open unless the client says "Connection: close";
 * HTTP/1.0 ones close unless it says "Connection: keep-alive". SIGINT or SIGTERM stops it, and
 * it prints what it did.
 *
 * All the HTTP work happens in lwIP's callbacks (on_accept, on_recv, on_sent), which run inside
 * mkhost-lwip's receive task: they never suspend. The main task only sets up and then waits.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lwip/tcp.h"
#include "mkhost-lwip.h"
#include "mkhost.h"

#define PORT        80
#define REQUEST_MAX 8192 /* bytes of request line and headers */
#define FILE_MAX    (64 << 20)

/* What is served: one body for every path, or the files of a directory. */
static char *body;
static size_t body_len = 1024;
static const char *root;
static unsigned long long requests, connections;

/* A response goes out in two pieces, its header and its body; each is written to lwIP as the
 * send buffer makes room. */
struct piece {
	const char *data;
	size_t len, off;
	bool copy;  /* lwIP copies it (it may go before lwIP is done with it), else points to it */
	bool owned; /* malloc'd, and freed once all of it is written */
};

struct conn {
	struct tcp_pcb *pcb;
	char in[REQUEST_MAX];
	size_t inlen;
	char head[256];
	struct piece out[2];
	int pieces, next; /* pieces of the response being sent, and the one being written */
	bool keep_alive;
	bool peer_closed;
};

static void conn_free(struct conn *c)
{
	for (int i = 0; i < c->pieces; i++)
		if (c->out[i].owned)
			free((char *)c->out[i].data);
	free(c);
}

/* Close and free (c). ERR_ABRT when the connection had to be reset instead (no memory for the
 * FIN): a callback must then return ERR_ABRT to lwIP, as the pcb is gone. */
static err_t conn_close(struct conn *c)
{
	struct tcp_pcb *pcb = c->pcb;

	conn_free(c);
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
	if (tcp_close(pcb) == ERR_OK)
		return ERR_OK;
	tcp_abort(pcb);
	return ERR_ABRT;
}

static err_t serve(struct conn *c);

/* Write what lwIP's send buffer takes now; the rest when on_sent says there is room. */
static err_t send_more(struct conn *c)
{
	while (c->next < c->pieces) {
		struct piece *p = &c->out[c->next];
		size_t room = tcp_sndbuf(c->pcb), n = p->len - p->off;
		if (n > room)
			n = room;
		if (n == 0 && p->len > p->off)
			break;
		u8_t flags = p->copy ? TCP_WRITE_FLAG_COPY : 0;
		if (c->next + 1 < c->pieces || n < p->len - p->off)
			flags |= TCP_WRITE_FLAG_MORE;
		if (n > 0 && tcp_write(c->pcb, p->data + p->off, (u16_t)n, flags) != ERR_OK)
			break; /* the queue of segments is full: wait for on_sent */
		p->off += n;
		if (p->off < p->len)
			break;
		if (p->owned)
			free((char *)p->data);
		p->owned = false;
		c->next++;
	}
	tcp_output(c->pcb);
	if (c->next < c->pieces)
		return ERR_OK;
	c->pieces = c->next = 0;
	if (!c->keep_alive || c->peer_closed)
		return conn_close(c);
	return serve(c); /* a pipelined request may be waiting */
}

static const char *content_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot && strcmp(dot, ".html") == 0)
		return "text/html";
	if (dot && strcmp(dot, ".txt") == 0)
		return "text/plain";
	return root ? "application/octet-stream" : "text/plain";
}

/* The file (path) of the served directory, read whole into (*data); an HTTP status. */
static int load_file(const char *path, char **data, size_t *len)
{
	char full[4096];

	if (path[0] != '/' || strstr(path, "/..") != NULL)
		return 404;
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	if (snprintf(full, sizeof(full), "%s%s", root, path) >= (int)sizeof(full))
		return 404;
	int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		if (fd >= 0)
			close(fd);
		return 404;
	}
	*len = (size_t)st.st_size;
	*data = malloc(*len ? *len : 1);
	size_t got = 0;
	while (*data && got < *len) {
		ssize_t n = read(fd, *data + got, *len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (*data == NULL || got != *len) {
		free(*data);
		return 500;
	}
	return 200;
}

/* Whether header (name) of the request (headers) has the value (value), as one of its words. */
static bool header_has(const char *headers, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	for (const char *h = headers; h && *h; h = strstr(h, "\r\n"), h = h ? h + 2 : NULL) {
		if (strncasecmp(h, name, nl) != 0 || h[nl] != ':')
			continue;
		for (const char *v = h + nl + 1; *v && *v != '\r'; v++)
			if (strncasecmp(v, value, vl) == 0 && !isalnum((unsigned char)v[vl]) &&
			    !isalnum((unsigned char)v[-1]))
				return true;
	}
	return false;
}

/* Answer the first complete request in c->in, if any and if no response is being sent. */
static err_t serve(struct conn *c)
{
	if (c->pieces > 0)
		return ERR_OK;
	c->in[c->inlen] = 0;
	char *end = strstr(c->in, "\r\n\r\n");
	if (end == NULL) {
		/* Headers too long (no room to say so politely), or a request cut by the close. */
		if (c->inlen == REQUEST_MAX - 1 || c->peer_closed)
			return conn_close(c);
		return ERR_OK;
	}
	*end = 0;
	char method[8], path[1024], version[16];
	int status = 200;
	if (sscanf(c->in, "%7s %1023s %15s", method, path, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0) {
		status = 400;
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = 405;
	}
	const char *headers = strstr(c->in, "\r\n");
	if (status == 200 && strcmp(version, "HTTP/1.0") == 0)
		c->keep_alive = header_has(headers, "Connection", "keep-alive");
	else
		c->keep_alive = status == 200 && !header_has(headers, "Connection", "close");

	char *data = body;
	size_t len = body_len;
	bool owned = false;
	if (status == 200 && root != NULL) {
		status = load_file(path, &data, &len);
		owned = status == 200;
	}
	if (status != 200) {
		static const char *reasons[] = {[400 - 400] = "Bad Request",
		                                [404 - 400] = "Not Found",
		                                [405 - 400] = "Method Not Allowed"};
		data = (char *)(status == 500 ? "Internal Server Error\n" : reasons[status - 400]);
		len = strlen(data);
	}
	requests++;
	c->pieces = 2;
	c->next = 0;
	/* The header lives in (c), which a close frees while lwIP may still hold the data: lwIP
	 * copies it. The fixed body lives as long as the program, so lwIP points to it. */
	c->out[0] = (struct piece){.data = c->head, .copy = true};
	c->out[0].len = (size_t)snprintf(
	    c->head, sizeof(c->head),
	    "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: %s\r\nConnection: %s\r\n\r\n",
	    status, status == 200 ? "OK" : "Error", len, content_type(path),
	    c->keep_alive ? "keep-alive" : "close");
	bool head_only = status == 200 && strcmp(method, "HEAD") == 0;
	c->out[1] =
	    (struct piece){.data = data, .len = head_only ? 0 : len, .copy = owned, .owned = owned};

	size_t used = (size_t)(end + 4 - c->in);
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	return send_more(c);
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct conn *c = arg;

	if (p == NULL) { /* the client closed its side */
		c->peer_closed = true;
		return c->pieces == 0 ? conn_close(c) : ERR_OK;
	}
	size_t room = REQUEST_MAX - 1 - c->inlen, n = p->tot_len < room ? p->tot_len : room;
	pbuf_copy_partial(p, c->in + c->inlen, (u16_t)n, 0);
	c->inlen += n;
	tcp_recved(pcb, p->tot_len);
	pbuf_free(p);
	return serve(c);
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct conn *c = arg;

	return c->pieces > 0 ? send_more(c) : ERR_OK;
}

static void on_err(void *arg, err_t err)
{
	conn_free(arg); /* lwIP has freed the pcb already */
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (err != ERR_OK || c == NULL) {
		free(c);
		return ERR_MEM;
	}
	connections++;
	c->pcb = pcb;
	tcp_arg(pcb, c);
	tcp_recv(pcb, on_recv);
	tcp_sent(pcb, on_sent);
	tcp_err(pcb, on_err);
	tcp_nagle_disable(pcb); /* a response's last segment must not wait for an ACK */
	return ERR_OK;
}

/* What to serve: (what) is BODY-BYTES, DIR, or NULL for the default body. 0, or 2 after a message
 * for a size out of range, or 1 when out of memory. */
static int httpd_content(const char *what)
{
	if (what != NULL && strspn(what, "0123456789") == strlen(what)) {
		body_len = strtoul(what, NULL, 10);
		if (body_len > FILE_MAX) {
			fprintf(stderr, "httpd: a body of at most %d bytes\n", FILE_MAX);
			return 2;
		}
	} else if (what != NULL) {
		root = what;
	}
	body = malloc(body_len ? body_len : 1);
	if (body == NULL)
		return 1;
	for (size_t i = 0; i < body_len; i++)
		body[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
	return 0;
}

/* The listening pcb on PORT, whose connections the callbacks above serve; NULL when lwIP has no
 * memory for it. */
static struct tcp_pcb *httpd_listen(void)
{
	struct tcp_pcb *pcb = tcp_new(), *listener;

	if (pcb == NULL || tcp_bind(pcb, IP4_ADDR_ANY, PORT) != ERR_OK ||
	    (listener = tcp_listen(pcb)) == NULL) {
		if (pcb != NULL)
			tcp_close(pcb);
		return NULL;
	}
	tcp_accept(listener, on_accept);
	return listener;
}

/* Everything above is the HTTP server, on lwIP alone; below, the program that runs it on mkhost.
 * tests/bench/bench_httpd_poll.c defines HTTPD_NO_MAIN and includes this file to run the same
 * server on a plain poll(2) loop. */
#ifndef HTTPD_NO_MAIN
static int serve_main(int argc, char **argv, void *arg)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: httpd --net:service=IFACE -- ADDRESS[/PREFIX]|dhcp "
		                "[BODY-BYTES | DIR]\n");
		return 2;
	}
	int rc = httpd_content(argc == 3 ? argv[2] : NULL);
	if (rc != 0)
		return rc;

	mk_net *net;
	struct mk_net_config cfg;
	mk_lwip *lw;
	int err = mk_net_connect("service", &net, &cfg);
	if (err == 0 && (err = mk_lwip_attach(net, &cfg, &lw)) != 0)
		fprintf(stderr, "httpd: %s\n", mk_lwip_last_error());
	else if (err != 0)
		fprintf(stderr, "httpd: %s\n", mk_last_error());
	if (err != 0)
		return 1;

	if (strcmp(argv[1], "dhcp") == 0)
		err = mk_lwip_dhcp(lw, mk_clock_monotonic() + 10000000000ULL);
	else
		err = mk_lwip_set_ipv4(lw, argv[1], NULL);
	struct tcp_pcb *listener = NULL;
	if (err == 0 && (listener = httpd_listen()) == NULL)
		err = -ENOMEM;
	char addr[32] = "";
	mk_lwip_ipv4(lw, addr, sizeof(addr));
	if (err != 0) {
		fprintf(stderr, "httpd: %s\n",
		        *mk_lwip_last_error() ? mk_lwip_last_error() : mk_strerror(err));
	} else {
		const uint8_t *m = cfg.mac;
		printf("httpd: http://%.*s:%d/ on %s, mac %02x:%02x:%02x:%02x:%02x:%02x, mtu %u, "
		       "serving ",
		       (int)strcspn(addr, "/"), addr, PORT, mk_net_name(net), m[0], m[1], m[2],
		       m[3], m[4], m[5], cfg.mtu);
		if (root)
			printf("the files of %s\n", root);
		else
			printf("a body of %zu bytes\n", body_len);
		fflush(stdout); /* whoever started us may wait for this line through a pipe */

		/* Everything happens in lwIP's callbacks now; wait for SIGINT or SIGTERM, which
		 * cancel this task. */
		mk_cond *never;
		if (mk_cond_new(&never) == 0) {
			mk_cond_wait(never, MK_FOREVER);
			mk_cond_free(never);
		}
	}
	if (listener != NULL)
		tcp_close(listener);

	struct mk_lwip_stats st;
	mk_lwip_stats(lw, &st);
	printf("httpd: %llu requests on %llu connections; lwIP rx %llu frames, tx %llu frames; "
	       "TIME_WAIT replaced %llu, dropped %llu\n",
	       requests, connections, (unsigned long long)st.rx_frames,
	       (unsigned long long)st.tx_frames, (unsigned long long)st.tw_replaced,
	       (unsigned long long)st.tw_dropped);
	fflush(stdout);
	mk_lwip_detach(lw);
	free(body);
	return err == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	int rc = mk_run(argc, argv, serve_main, NULL);
	if (rc == -EINTR)
		return 0; /* stopped by SIGINT or SIGTERM, after serve_main printed its figures */
	if (rc < 0) {
		if (rc != -EINVAL) /* mk_run already printed the reason for a malformed argument */
			fprintf(stderr, "httpd: %s\n", mk_strerror(rc));
		return 1;
	}
	return rc;
}
#endif /* HTTPD_NO_MAIN */
