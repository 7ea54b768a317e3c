/* Net devices (Mkernel.Net): connect, one frame per read, one frame per write, statistics.
 *
 * Reading tries the descriptor first; only when it is empty does the task park on the device's
 * reader queue, and only then is a single-shot readiness poll armed. When the poll fires, the
 * first waiting reader is woken; a reader that got a frame wakes the next waiting one, because
 * more frames may be queued and no poll is armed any more. Each frame is taken by exactly one
 * read(2), so no frame goes to two readers.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

static size_t frame_max(const mk_net *n)
{
	return n->cfg.mtu + MK_ETHER_HEADER;
}

static struct mk_net *find_net(struct mk__sched *s, const char *name)
{
	for (struct mk_net *n = s->nets; n != NULL; n = n->next)
		if (strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

void mk__net_notify(mk_net *n)
{
	if (n->readers.head != NULL)
		mk__wake(n->sched, n->readers.head, 0);
}

static void on_readable(struct mk__io *io, int res)
{
	(void)res; /* errors and hang-ups show up in the read that follows */
	mk__net_notify((mk_net *)((char *)io - offsetof(struct mk_net, poll)));
}

static int args_error(const char *name, struct mk__netarg *a)
{
	if (a == NULL || a->times == 0)
		return mk__fail(
		    -ENOENT,
		    "net device '%s' is not on the command line; start the program with "
		    "--net:%s=IFACE (a TAP interface) or --net:%s=@FD",
		    name, name, name);
	return mk__fail(-EEXIST,
	                "net device '%s' is given %d times on the command line; give --net:%s= "
	                "once",
	                name, a->times, name);
}

/* The kinds of link, chosen by the text after --net:NAME=. The last row takes the rest. */
static const struct link_kind {
	const char *prefix;
	int (*open)(mk_net *n, const struct mk__netarg *a);
} link_kinds[] = {
    {"unix:", mk__unix_link_open},
    {"hub:", mk__hub_link_open},
    {"slirp", mk__slirp_link_open}, /* "slirp" or "slirp,...": others go on to the TAP */
    {"", mk__tap_link_open},        /* IFACE or @FD */
};

static int link_open(mk_net *n, const struct mk__netarg *a)
{
	size_t last = sizeof(link_kinds) / sizeof(link_kinds[0]) - 1;

	for (size_t i = 0; i < last; i++) {
		const char *p = link_kinds[i].prefix;
		if (a->value != NULL && strncmp(a->value, p, strlen(p)) == 0)
			return link_kinds[i].open(n, a);
	}
	return link_kinds[last].open(n, a);
}

static void net_free(mk_net *n)
{
	mk__pcap_close(n);
	mk__fault_close(n);
	free(n->rxbuf);
	free(n->txbuf);
	free(n);
}

static int net_open(struct mk__sched *s, const struct mk__netarg *a, mk_net **out)
{
	mk_net *n = calloc(1, sizeof(*n));
	int err;

	if (n == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
	snprintf(n->name, sizeof(n->name), "%s", a->name);
	n->sched = s;
	n->fd = -1;
	err = link_open(n, a);
	if (err != 0) {
		free(n);
		return err;
	}
	n->rxbuf = malloc(frame_max(n) + 1); /* + 1: room for the oversize check */
	n->txbuf = malloc(frame_max(n));
	if (n->rxbuf == NULL || n->txbuf == NULL) {
		n->link->close(n);
		net_free(n);
		return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
	}
	if (a->has_mac)
		memcpy(n->cfg.mac, a->mac, 6);
	else
		mk__random_mac(n->sched, a->name, n->cfg.mac);
	if (a->pcap != NULL)
		err = mk__pcap_open(n, a->pcap);
	if (err == 0 && a->has_fault)
		err = mk__fault_open(n, &a->fault);
	if (err != 0) {
		n->link->close(n);
		net_free(n);
		return err;
	}
	n->poll.fd = n->fd;
	n->poll.done = on_readable;
	n->next = s->nets;
	s->nets = n;
	*out = n;
	return 0;
}

int mk_net_connect(const char *name, mk_net **out, struct mk_net_config *cfg)
{
	struct mk__sched *s = mk__sched_current;
	struct mk__netarg *a;
	int err;

	if (s == NULL)
		return mk__fail(-EPERM, "mk_net_connect('%s') called outside mk_run",
		                name ? name : "(null)");
	if (name == NULL || out == NULL)
		return mk__fail(-EINVAL, "mk_net_connect: %s is NULL", name ? "out" : "name");
	a = mk__args_net(&s->args, name);
	if (a == NULL || a->times != 1)
		return args_error(name, a);
	*out = find_net(s, name);
	if (*out != NULL && (*out)->claimed)
		return mk__fail(-EALREADY,
		                "net device '%s' is already connected; connect it once and share "
		                "the handle between tasks",
		                name);
	/* With --sandbox, mk_run opened every device before main: hand that one over. */
	err = *out != NULL ? 0 : net_open(s, a, out);
	if (err == 0) {
		(*out)->claimed = true;
		if (cfg != NULL)
			*cfg = (*out)->cfg;
	}
	return err;
}

int mk__net_open_all(struct mk__sched *s)
{
	for (size_t i = 0; i < s->args.n_nets; i++) {
		struct mk__netarg *a = &s->args.nets[i];
		mk_net *n;
		int err = a->times == 1 ? net_open(s, a, &n) : args_error(a->name, a);
		if (err != 0)
			return err;
	}
	return 0;
}

/* ---- reading -------------------------------------------------------------------------- */

/* One frame into (dst), which holds (room) >= frame_max bytes, counted. */
static ssize_t read_frame(mk_net *n, uint8_t *dst, size_t room)
{
	for (;;) {
		ssize_t r =
		    n->fault != NULL ? mk__fault_read(n, dst, room) : n->link->read(n, dst, room);
		if (r < 0)
			return r;
		if (r < MK_ETHER_HEADER || (size_t)r > frame_max(n)) {
			n->stats.rx_drops++;
			continue;
		}
		n->stats.rx_frames++;
		n->stats.rx_bytes += (uint64_t)r;
		if (n->pcap != NULL)
			mk__pcap_frame(n, dst, (size_t)r);
		return r;
	}
}

static int wait_readable(struct mk__sched *s, mk_net *n)
{
	mk__waitq_push(&n->readers, s->current);
	if (n->fd >= 0 && !n->poll.armed) {
		int err = n->link->arm != NULL ? n->link->arm(n)
		                               : s->loop.ops->poll_in(&s->loop, &n->poll);
		if (err != 0) {
			mk__waitq_remove(&n->readers, s->current);
			return err;
		}
	}
	return mk__park(s);
}

bool mk__net_known_empty(const mk_net *n)
{
	return n->fault == NULL && n->fd >= 0 && n->empty_at == n->sched->loop.waits + 1;
}

/* A read that finds the device empty marks it so until the loop next looks for events. */
static ssize_t read_frame_marked(mk_net *n, uint8_t *dst, size_t room)
{
	ssize_t r = read_frame(n, dst, room);

	if (r == -EAGAIN)
		n->empty_at = n->sched->loop.waits + 1;
	return r;
}

static ssize_t net_read(struct mk__sched *s, mk_net *n, uint8_t *dst, size_t room)
{
	/* Found empty since the loop last looked (by mk_net_try_read, or by another reader):
	 * wait for readiness at once, without a read(2) that would most likely fail. If a frame
	 * has come meanwhile, the poll completes at once. */
	bool wait_first = mk__net_known_empty(n);
	ssize_t r;

	for (;;) {
		if (s->current->cancelled) {
			r = -ECANCELED;
			break;
		}
		r = wait_first ? -EAGAIN : read_frame_marked(n, dst, room);
		wait_first = false;
		if (r != -EAGAIN)
			break;
		r = wait_readable(s, n);
		if (r < 0)
			break;
	}
	/* Whatever happened to this reader, the others must not be left with no one to wake
	 * them: more frames may be queued and no poll is armed after one fired, or the link holds
	 * frames it took from the kernel. */
	if (!n->poll.armed || (n->link->queued != NULL && n->link->queued(n)))
		mk__net_notify(n);
	return r;
}

/* The checks shared by every call that takes buf[off, off + len) of (size) bytes. */
static bool range_ok(const void *buf, size_t size, size_t off, size_t len)
{
	return buf != NULL && off <= size && len <= size - off;
}

/* The slot of (n) in its scheduler's cache of devices found. */
static size_t cache_slot(const mk_net *n)
{
	return (size_t)(((uintptr_t)n * 0x9e3779b97f4a7c15u) >> 60) % MK__NET_CACHE;
}

/* The scheduler running on this thread when (n) is one of its devices, else NULL. Only the
 * pointer is compared, never dereferenced: a handle kept after its mk_run returned (freed), or
 * used from another thread, is refused without being touched. Devices found are remembered in a
 * small cache by pointer, so the common case is a compare or two, however many devices take
 * turns. */
static struct mk__sched *net_owner(const mk_net *n)
{
	struct mk__sched *s = mk__sched_current;
	size_t slot = cache_slot(n);

	if (s == NULL || n == NULL)
		return NULL;
	if (s->net_cache[slot] == n)
		return s;
	for (struct mk_net *m = s->nets; m != NULL; m = m->next)
		if (m == n) {
			s->net_cache[slot] = m;
			return s;
		}
	return NULL;
}

/* -EINVAL for no handle, -EPERM for one that is not this thread's scheduler's (or from outside a
 * task when (task) is asked for), else 0. Every call on a device starts here, once a frame: the
 * common case (the handle found in the cache at once) is inlined and takes a few instructions. */
static inline __attribute__((always_inline)) int net_check(const mk_net *n, bool task)
{
	struct mk__sched *s = mk__sched_current;

	if (n == NULL)
		return -EINVAL;
	if (s == NULL || (task && s->current == NULL))
		return -EPERM;
	if (s->net_cache[cache_slot(n)] == n)
		return 0;
	return net_owner(n) != NULL ? 0 : -EPERM;
}

int mk__net_check(const mk_net *n)
{
	return net_check(n, false);
}

ssize_t mk_net_read_bigstring(mk_net *n, void *buf, size_t size, size_t off, size_t len)
{
	int err = net_check(n, true);

	if (err != 0)
		return err;
	if (!range_ok(buf, size, off, len) || len < frame_max(n))
		return -EINVAL;
	return net_read(n->sched, n, (uint8_t *)buf + off, len);
}

ssize_t mk_net_try_read(mk_net *n, void *buf, size_t size, size_t off, size_t len)
{
	int err = net_check(n, false); /* a hook may call it */

	if (err != 0)
		return err;
	if (!range_ok(buf, size, off, len) || len < frame_max(n))
		return -EINVAL;
	/* No queue to join and no poll to arm: the readers parked on this device keep theirs, and
	 * a frame taken here is simply one they will not see. */
	return read_frame_marked(n, (uint8_t *)buf + off, len);
}

ssize_t mk_net_read_bytes(mk_net *n, void *buf, size_t size, size_t off, size_t len)
{
	struct mk__sched *s;
	ssize_t r;
	int err = net_check(n, true);

	if (err != 0)
		return err;
	if (!range_ok(buf, size, off, len) || len < frame_max(n))
		return -EINVAL;
	s = n->sched;
	r = net_read(s, n, n->rxbuf, frame_max(n) + 1);
	if (r > 0)
		memcpy((uint8_t *)buf + off, n->rxbuf, (size_t)r);
	return r;
}

/* ---- writing -------------------------------------------------------------------------- */

static ssize_t write_frame(mk_net *n, const void *frame, size_t len)
{
	ssize_t w =
	    n->fault != NULL ? mk__fault_write(n, frame, len) : n->link->write(n, frame, len);

	if (w != (ssize_t)len) {
		n->stats.tx_drops++;
		return 0;
	}
	n->stats.tx_frames++;
	n->stats.tx_bytes += len;
	if (n->pcap != NULL)
		mk__pcap_frame(n, frame, len);
	return (ssize_t)len;
}

static bool frame_len_ok(const mk_net *n, size_t len)
{
	return len >= MK_ETHER_HEADER && len <= frame_max(n);
}

ssize_t mk_net_write_bigstring(mk_net *n, const void *buf, size_t size, size_t off, size_t len)
{
	int err = net_check(n, false);

	if (err != 0)
		return err;
	if (!range_ok(buf, size, off, len) || !frame_len_ok(n, len))
		return -EINVAL;
	return write_frame(n, (const uint8_t *)buf + off, len);
}

ssize_t mk_net_write_string(mk_net *n, const void *buf, size_t size, size_t off, size_t len)
{
	int err = net_check(n, false);

	if (err != 0)
		return err;
	if (!range_ok(buf, size, off, len) || !frame_len_ok(n, len))
		return -EINVAL;
	if (n->filling) /* the transmit buffer holds the frame a filler is writing */
		return -EBUSY;
	memcpy(n->txbuf, (const uint8_t *)buf + off, len);
	return write_frame(n, n->txbuf, len);
}

ssize_t mk_net_write_into(mk_net *n, size_t len, mk_net_fill_fn fn, void *ctx)
{
	size_t fill;
	int err = net_check(n, false);

	if (err != 0)
		return err;
	if (fn == NULL || len > frame_max(n))
		return -EINVAL;
	if (n->filling)
		return -EBUSY;
	n->filling = true;
	fill = fn(n->txbuf, len, ctx);
	n->filling = false;
	if (fill == 0)
		return 0;
	if (fill > len || fill < MK_ETHER_HEADER)
		return -EINVAL;
	return write_frame(n, n->txbuf, fill);
}

/* ---- the rest ------------------------------------------------------------------------- */

int mk_net_stats(const mk_net *n, struct mk_net_stats *out)
{
	int err = net_check(n, false);

	if (err != 0)
		return err;
	if (out == NULL)
		return -EINVAL;
	if (n->link->flush != NULL)
		n->link->flush((mk_net *)n); /* queued writes: count what the kernel refused */
	*out = n->stats;
	return 0;
}

const char *mk_net_name(const mk_net *n)
{
	return net_owner(n) != NULL ? n->name : NULL;
}

void mk__net_close_all(struct mk__sched *s)
{
	memset(s->net_cache, 0, sizeof(s->net_cache));
	while (s->nets != NULL) {
		struct mk_net *n = s->nets;
		s->nets = n->next;
		n->link->close(n);
		net_free(n);
	}
}
