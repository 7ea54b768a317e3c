/* bench-httpd-kernel: the reference for scripts/bench's HTTP workload. The Linux kernel's TCP,
 * with a small epoll server answering every GET with the same bytes as examples/httpd.c (the
 * same header, the same body of BODY-BYTES, 1024 by default), keep-alive unless the request
 * says "Connection: close". It runs in a network namespace of its own, across a veth pair.
 *
 *   bench-httpd-kernel IPV4 [BODY-BYTES]
 *
 * One thread, level-triggered epoll, TCP_NODELAY (as httpd disables Nagle). It serves until it
 * is killed, or for at most DEADLINE_S seconds. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchlib.h"

#define DEADLINE_S  120
#define PORT        80
#define REQUEST_MAX 8192

struct response {
	char *data;
	size_t len;
};

struct conn {
	int fd;
	char in[REQUEST_MAX];
	size_t inlen;
	const struct response *out; /* being written, from (off); NULL when none */
	size_t off;
	bool close_after;
	bool writing; /* waiting for EPOLLOUT */
};

/* examples/httpd.c's answer to a GET of its fixed body, byte for byte. */
static struct response make_response(size_t body_len, bool keep_alive)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n"
	                 "Connection: %s\r\n\r\n",
	                 body_len, keep_alive ? "keep-alive" : "close");
	struct response r = {.len = (size_t)n + body_len};

	r.data = malloc(r.len);
	if (r.data == NULL)
		bench_die("out of memory");
	memcpy(r.data, head, (size_t)n);
	for (size_t i = 0; i < body_len; i++)
		r.data[n + i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
	return r;
}

static struct response keep, closing;

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

static void watch(int ep, struct conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is pending and answer the complete requests read; false when (c) is gone. */
static bool conn_run(int ep, struct conn *c)
{
	for (;;) {
		while (c->out != NULL) {
			ssize_t n =
			    send(c->fd, c->out->data + c->off, c->out->len - c->off, MSG_NOSIGNAL);
			if (n < 0 && errno == EAGAIN) {
				if (!c->writing)
					watch(ep, c, EPOLLIN | EPOLLOUT);
				c->writing = true;
				return true;
			}
			if (n < 0) {
				conn_close(ep, c);
				return false;
			}
			c->off += (size_t)n;
			if (c->off == c->out->len) {
				c->out = NULL;
				if (c->close_after) {
					conn_close(ep, c);
					return false;
				}
			}
		}
		c->in[c->inlen] = 0;
		char *end = strstr(c->in, "\r\n\r\n");
		if (end == NULL)
			break;
		*end = 0;
		c->close_after = strcasestr(c->in, "\r\nConnection: close") != NULL;
		c->out = c->close_after ? &closing : &keep;
		c->off = 0;
		size_t used = (size_t)(end + 4 - c->in);
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
	}
	if (c->writing)
		watch(ep, c, EPOLLIN);
	c->writing = false;
	return true;
}

static void conn_read(int ep, struct conn *c)
{
	ssize_t n = recv(c->fd, c->in + c->inlen, REQUEST_MAX - 1 - c->inlen, 0);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0 || (c->inlen += (size_t)n) == REQUEST_MAX - 1) {
		conn_close(ep, c); /* closed, failed, or headers too long */
		return;
	}
	conn_run(ep, c);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	size_t body_len = 1024;
	int one = 1;

	bench_prog = "bench-httpd-kernel";
	bench_deadline(DEADLINE_S);
	if (argc < 2 || argc > 3 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
		bench_die("usage: bench-httpd-kernel IPV4 [BODY-BYTES]");
	if (argc == 3)
		body_len = bench_ulong(argv[2], "body bytes");
	keep = make_response(body_len, true);
	closing = make_response(body_len, false);

	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ls < 0 || ep < 0)
		bench_die("socket: %s", strerror(errno));
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 1024) != 0)
		bench_die("listen on %s:%d: %s", argv[1], PORT, strerror(errno));
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
	printf("bench-httpd-kernel: http://%s:%d/, serving a body of %zu bytes\n", argv[1], PORT,
	       body_len);
	fflush(stdout);

	struct epoll_event evs[64];
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);
		if (n < 0 && errno != EINTR)
			bench_die("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c != NULL && (evs[i].events & EPOLLOUT))
				c = conn_run(ep, c) ? c : NULL;
			if (c != NULL && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
				conn_read(ep, c);
				continue;
			}
			if (evs[i].data.ptr != NULL)
				continue;
			int fd;
			while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
				c = calloc(1, sizeof(*c));
				if (c == NULL)
					bench_die("out of memory");
				c->fd = fd;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			}
		}
	}
}
