/* libFuzzer target: the argument and frame checks of the net read and write calls.
 *
 * Every input runs one mk_run. Its main task drives a net device whose link is a fake one, fed
 * by the input (so no TAP and no privilege is needed, and every byte is deterministic): the
 * input chooses the MTU, then a sequence of calls to mk_net_read_bigstring, mk_net_read_bytes,
 * mk_net_write_bigstring, mk_net_write_string and mk_net_write_into with hostile buffers,
 * sizes, offsets and lengths (NULL, zero, SIZE_MAX, off + len wrapping around, one byte off the
 * frame limits), and, for reads, the frames the link delivers (too short, too long, exact).
 *
 * A model of the contract in include/mkhost.h says what each call must return. Checked:
 * - -EINVAL exactly when the arguments are bad, and then nothing is consumed from the link,
 *   nothing is sent, no counter moves and the buffer is untouched;
 * - a read returns the next frame of an acceptable length, whole, at buf + off, and writes
 *   nothing outside buf[off, off + len) (read_bytes: outside the frame);
 * - a write hands the link exactly buf[off, off + len); a refusal is a 0 and a counted drop;
 * - write_into hands the filler a buffer of at least len bytes and sends what it returns, or
 *   refuses (0 or -EINVAL) without sending;
 * - the counters equal the model after every call; frames the link drops are counted;
 * - from a hook a read is -EPERM, and after mk_run every call is -EPERM or -EINVAL, with the link
 *   untouched.
 * The buffers are allocations of exactly their size, so ASan catches any access out of them. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_OPS 48
#define CANARY 0xa5

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_frame: invariant broken: %s\n", what);
		abort();
	}
}

/* ---- reading the input ----------------------------------------------------------------- */

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes && in->n > 0; i++, in->p++, in->n--)
		v = v << 8 | *in->p;
	return v;
}

/* A size_t chosen to hit the edges of the checks around (near). */
static size_t pick(struct input *in, size_t near)
{
	uint64_t k = take(in, 1);

	switch (k % 8) {
	case 0: return (size_t)take(in, 2);
	case 1: return SIZE_MAX - (size_t)take(in, 1);
	case 2: return near - (size_t)(take(in, 1) % 4); /* may wrap: that is the point */
	case 3: return near + (size_t)(take(in, 1) % 4);
	case 4: return SIZE_MAX / 2 + (size_t)(int8_t)take(in, 1);
	case 5: return (size_t)take(in, 8);
	case 6: return 0;
	default: return near;
	}
}

/* ---- the fake link --------------------------------------------------------------------- */

struct fake {
	struct input *in;
	size_t fmax;
	uint64_t link_reads, link_writes;
	uint32_t seq;
	/* the last frame handed to write() */
	uint8_t *written;
	size_t written_len;
	/* what the model expects */
	struct mk_net_stats st;
	size_t delivered; /* length of the frame a read delivered, 0 when none */
	uint32_t delivered_seq;
};

static struct fake *fake_of(mk_net *n)
{
	return n->link_state;
}

static uint8_t pattern(size_t i, uint32_t seq)
{
	return (uint8_t)(seq * 31 + i * 7 + 1);
}

/* Frames from the input: a length, sometimes out of bounds; -EIO once the input is used up. */
static ssize_t fake_read(mk_net *n, uint8_t *dst, size_t cap)
{
	struct fake *f = fake_of(n);

	f->link_reads++;
	/* The link may be handed more room than mtu + 14 (the rest of the caller's buffer); net.c
	 * drops what is longer than mtu + 14 whatever the room. */
	check(cap >= f->fmax, "the link was asked to read into fewer than mtu + 14 bytes");
	if (f->in->n == 0)
		return -EIO;
	uint64_t b = take(f->in, 1);
	if (b % 16 == 0)
		return -EIO;
	size_t len;
	switch (b % 4) {
	case 0: len = (size_t)take(f->in, 1) % MK_ETHER_HEADER; break; /* runt */
	case 1: len = f->fmax + 1 + (size_t)take(f->in, 1); break;  /* too long */
	case 2: len = f->fmax; break;
	default: len = MK_ETHER_HEADER + (size_t)take(f->in, 2) % (f->fmax - MK_ETHER_HEADER + 1); break;
	}
	uint32_t seq = ++f->seq;
	size_t put = len < cap ? len : cap; /* a TAP fills dst, and the spill shows the rest */
	for (size_t i = 0; i < put; i++)
		dst[i] = pattern(i, seq);
	if (len > cap) {
		f->st.rx_drops++; /* the link drops it */
		return 0;
	}
	if (len < MK_ETHER_HEADER || len > f->fmax) {
		f->st.rx_drops++; /* net.c drops it */
		return (ssize_t)len;
	}
	f->st.rx_frames++;
	f->st.rx_bytes += len;
	f->delivered = len;
	f->delivered_seq = seq;
	return (ssize_t)len;
}

static ssize_t fake_write(mk_net *n, const uint8_t *frame, size_t len)
{
	struct fake *f = fake_of(n);

	f->link_writes++;
	free(f->written);
	f->written = malloc(len);
	check(f->written != NULL, "out of memory");
	memcpy(f->written, frame, len); /* ASan: the frame must be readable whole */
	f->written_len = len;
	switch (take(f->in, 1) % 8) {
	case 0: return -EIO;
	case 1: return -ENOBUFS;
	case 2: return (ssize_t)len - 1; /* a short write: a refusal too */
	default: return (ssize_t)len;
	}
}

static void fake_close(mk_net *n)
{
	(void)n;
}

static const struct mk__link_ops fake_ops = {
	.kind = "fuzz",
	.read = fake_read,
	.write = fake_write,
	.close = fake_close,
};

/* ---- the calls ------------------------------------------------------------------------- */

struct run {
	struct input in;
	struct fake f;
	mk_net *net;
	int hook_read_result;
	int hook_ran;
};

static void expect_stats(struct run *r)
{
	struct mk_net_stats st;

	check(mk_net_stats(r->net, &st) == 0, "mk_net_stats failed");
	check(memcmp(&st, &r->f.st, sizeof(st)) == 0, "the counters differ from the model");
}

static bool range_ok(const void *buf, size_t size, size_t off, size_t len)
{
	return buf != NULL && off <= size && len <= size - off;
}

/* Bytes of buf[0, alloc) outside [lo, hi) must still be the canary. */
static void expect_canary(const uint8_t *buf, size_t alloc, size_t lo, size_t hi, const char *what)
{
	for (size_t i = 0; buf != NULL && i < alloc; i++)
		if (i < lo || i >= hi)
			check(buf[i] == CANARY, what);
}

struct fill_ctx {
	struct input *in;
	size_t ret;
	size_t seen_len;
	int calls;
};

static size_t fill(void *buf, size_t len, void *ctx)
{
	struct fill_ctx *c = ctx;

	c->calls++;
	c->seen_len = len;
	memset(buf, 0x3c, len); /* ASan: the buffer must hold len bytes */
	return c->ret;
}

static void one_call(struct run *r)
{
	struct input *in = &r->in;
	struct fake *f = &r->f;
	size_t fmax = f->fmax;
	unsigned op = (unsigned)(take(in, 1) % 6);
	size_t alloc = (size_t)(take(in, 2) % (2 * fmax + 64));
	uint8_t *buf = malloc(alloc ? alloc : 1);
	check(buf != NULL, "out of memory");
	memset(buf, CANARY, alloc);
	uint64_t flags = take(in, 1);
	const void *arg_buf = flags % 16 == 0 ? NULL : buf;
	size_t size = flags & 0x10 ? alloc - (size_t)take(in, 2) % (alloc + 1) : alloc;
	size_t off = flags & 0x20 ? pick(in, size - fmax) : (size_t)take(in, 1) % 8;
	size_t len = flags & 0x40 ? pick(in, fmax) : fmax;
	uint64_t reads0 = f->link_reads, writes0 = f->link_writes;
	struct mk_net_stats st0 = f->st;
	ssize_t ret;

	f->delivered = 0;
	if (op <= 1) { /* a read */
		bool ok = range_ok(arg_buf, size, off, len) && len >= fmax;
		ret = op == 0 ? mk_net_read_bigstring(r->net, (void *)arg_buf, size, off, len)
		              : mk_net_read_bytes(r->net, (void *)arg_buf, size, off, len);
		if (!ok) {
			check(ret == -EINVAL, "a bad read was not -EINVAL");
			check(f->link_reads == reads0, "a bad read consumed from the link");
			expect_canary(buf, alloc, 0, 0, "a bad read wrote into the buffer");
		} else if (ret == -EIO) {
			check(f->delivered == 0, "a delivered frame was lost to -EIO");
			expect_canary(buf, alloc, off, op == 0 ? off + len : off,
			              "a failed read wrote outside buf[off, off + len)");
		} else {
			check(ret > 0 && (size_t)ret == f->delivered, "a read returned another length");
			for (size_t i = 0; i < (size_t)ret; i++)
				check(buf[off + i] == pattern(i, f->delivered_seq),
				      "a read delivered other bytes");
			expect_canary(buf, alloc, off, op == 0 ? off + len : off + (size_t)ret,
			              "a read wrote outside buf[off, off + len)");
		}
	} else if (op <= 3) { /* a write */
		bool ok = range_ok(arg_buf, size, off, len) && len >= MK_ETHER_HEADER && len <= fmax;
		for (size_t i = 0; i < alloc; i++)
			buf[i] = pattern(i, 0x5eed);
		ret = op == 2 ? mk_net_write_bigstring(r->net, arg_buf, size, off, len)
		              : mk_net_write_string(r->net, arg_buf, size, off, len);
		if (!ok) {
			check(ret == -EINVAL, "a bad write was not -EINVAL");
			check(f->link_writes == writes0, "a bad write reached the link");
		} else {
			check(f->link_writes == writes0 + 1, "a good write did not reach the link once");
			check(f->written_len == len && memcmp(f->written, buf + off, len) == 0,
			      "the link got other bytes than buf[off, off + len)");
			check(ret == (ssize_t)len || ret == 0, "a write returned neither len nor 0");
			if (ret == 0)
				f->st.tx_drops++;
			else
				f->st.tx_frames++, f->st.tx_bytes += len;
		}
	} else if (op == 4) { /* write_into */
		struct fill_ctx c = {.in = in};
		uint64_t k = take(in, 1);
		c.ret = k % 4 == 0 ? 0 : k % 4 == 1 ? pick(in, len) : len;
		bool null_fn = flags % 16 == 1;
		ret = mk_net_write_into(r->net, len, null_fn ? NULL : fill, &c);
		if (null_fn || len > fmax) {
			check(ret == -EINVAL && c.calls == 0, "a bad write_into was not -EINVAL");
			check(f->link_writes == writes0, "a bad write_into reached the link");
		} else {
			check(c.calls == 1 && c.seen_len == len, "the filler was not called once with len");
			if (c.ret == 0) {
				check(ret == 0 && f->link_writes == writes0, "a filler's 0 sent a frame");
			} else if (c.ret > len || c.ret < MK_ETHER_HEADER) {
				check(ret == -EINVAL && f->link_writes == writes0,
				      "a bad filler length was sent or not -EINVAL");
			} else {
				check(f->link_writes == writes0 + 1 && f->written_len == c.ret,
				      "write_into did not send the filler's frame");
				check(ret == (ssize_t)c.ret || ret == 0, "write_into returned neither n nor 0");
				if (ret == 0)
					f->st.tx_drops++;
				else
					f->st.tx_frames++, f->st.tx_bytes += c.ret;
			}
		}
	} else { /* a NULL device */
		check(mk_net_read_bigstring(NULL, buf, alloc, 0, alloc) == -EINVAL, "read(NULL)");
		check(mk_net_read_bytes(NULL, buf, alloc, 0, alloc) == -EINVAL, "read_bytes(NULL)");
		check(mk_net_write_bigstring(NULL, buf, alloc, 0, alloc) == -EINVAL, "write(NULL)");
		check(mk_net_write_string(NULL, buf, alloc, 0, alloc) == -EINVAL, "write_string(NULL)");
		struct fill_ctx c = {.in = in, .ret = 60};
		check(mk_net_write_into(NULL, 60, fill, &c) == -EINVAL && c.calls == 0,
		      "write_into(NULL)");
		check(mk_net_stats(NULL, &st0) == -EINVAL, "stats(NULL)");
		check(mk_net_stats(r->net, NULL) == -EINVAL, "stats(net, NULL)");
		check(f->link_reads == reads0 && f->link_writes == writes0, "a NULL call reached the link");
	}
	(void)st0;
	expect_stats(r);
	free(buf);
}

static void hook_read(void *arg)
{
	struct run *r = arg;
	uint64_t reads0 = r->f.link_reads;

	if (r->hook_ran++ == 0) {
		/* Reading may suspend: never from a hook, even with good arguments. */
		uint8_t *buf = malloc(r->f.fmax);
		check(buf != NULL, "out of memory");
		r->hook_read_result =
			(int)mk_net_read_bigstring(r->net, buf, r->f.fmax, 0, r->f.fmax);
		check(r->f.link_reads == reads0, "a read from a hook reached the link");
		free(buf);
	}
}

static int fuzz_main(int argc, char **argv, void *arg)
{
	struct run *r = arg;

	struct mk__sched *s = mk__sched_current;

	/* A device of this scheduler, as net_open makes them: calls check the list. */
	r->net->sched = s;
	r->net->next = s->nets;
	s->nets = r->net;
	mk_hook *h = mk_hook_add(hook_read, r);
	check(h != NULL, "mk_hook_add failed");
	mk_yield(); /* one round: the hook runs */
	for (int i = 0; i < MAX_OPS && r->in.n > 0; i++)
		one_call(r);
	mk_hook_remove(h);
	/* Taken off again: the harness frees it, not mk_run. */
	s->nets = r->net->next;
	memset(s->net_cache, 0, sizeof(s->net_cache));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char arg0[] = "fuzz_frame";
	char *argv[] = {arg0, NULL};
	struct run r = {.in = {data, size}};
	mk_net *n = calloc(1, sizeof(*n));

	check(n != NULL, "out of memory");
	r.f.in = &r.in;
	n->cfg.mtu = (unsigned)(take(&r.in, 2) % 9217); /* 0 to 9216, jumbo included */
	r.f.fmax = n->cfg.mtu + MK_ETHER_HEADER;
	snprintf(n->name, sizeof(n->name), "fuzz");
	n->link = &fake_ops;
	n->link_state = &r.f;
	n->fd = -1;
	n->poll.fd = -1;
	n->rxbuf = malloc(r.f.fmax + 1); /* as net_open: one byte of room for the oversize check */
	n->txbuf = malloc(r.f.fmax);
	check(n->rxbuf && n->txbuf, "out of memory");
	r.net = n;

	int rc = mk_run(1, argv, fuzz_main, &r);
	check(rc == 0, "mk_run failed");
	check(r.hook_ran > 0 && r.hook_read_result == -EPERM, "a read from a hook was not -EPERM");

	/* After mk_run: nothing reaches the link. */
	uint8_t buf[64] = {0};
	uint64_t reads0 = r.f.link_reads, writes0 = r.f.link_writes;
	ssize_t ret = mk_net_read_bigstring(n, buf, sizeof(buf), 0, sizeof(buf));
	check(ret == -EPERM || ret == -EINVAL, "a read after mk_run");
	ret = mk_net_write_bigstring(n, buf, sizeof(buf), 0, 60);
	check(ret == -EPERM || ret == -EINVAL, "a write after mk_run");
	struct fill_ctx c = {.in = &r.in, .ret = 60};
	ret = mk_net_write_into(n, 60, fill, &c);
	check((ret == -EPERM || ret == -EINVAL) && c.calls == 0, "a write_into after mk_run");
	check(r.f.link_reads == reads0 && r.f.link_writes == writes0, "a call after mk_run reached the link");

	free(r.f.written);
	free(n->rxbuf);
	free(n->txbuf);
	free(n);
	return 0;
}
