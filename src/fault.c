/* --net-fault:NAME=drop=P,dup=P,corrupt=P,delay=MS,reorder=P,seed=S: a bad wire, on purpose.
 *
 * The injector sits between net.c and the link, and treats each direction alike: every frame
 * received from the link and every frame the program sends. For each frame, in this order:
 *   drop=P     it is lost (a sent frame still counts as sent: the wire, not the kernel, lost it);
 *   corrupt=P  one bit of it is flipped, past the Ethernet header (in it for a 14-byte frame);
 *   dup=P      it goes twice (the copy right after it, and as late when there is a delay);
 *   reorder=P  it is held back until the next frame of the same direction has gone, then goes
 *              right after it (or after REORDER_WAIT more, if no frame follows);
 *   delay=MS   it goes MS milliseconds late (every frame, so the order is kept).
 * P is a probability: 0.1 or 10%. Every fault injected is counted in the device's statistics
 * (fault_rx and fault_tx of struct mk_net_stats).
 *
 * Determinism: each direction has its own generator (splitmix64, seeded from (seed) and the
 * direction), and every frame takes the same five draws whatever happens to it; so, for a
 * given seed, the n-th frame of a direction meets the same fate in every run, whatever the
 * timing and whatever the other direction does. Without seed=, the seed is random, or drawn
 * from the run's seed (seed.c).
 *
 * Frames held back (delay, reorder) are released by a task of the library ("fault:NAME"),
 * created with the device: it sends due frames, and hands due received ones to the readers.
 * At most HELD_MAX frames are held per direction; more are dropped and counted in rx_drops or
 * tx_drops.
 */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"

#define REORDER_WAIT (10 * 1000000ULL) /* ns a reordered frame waits for a successor */
#define HELD_MAX     4096

struct held {
	struct held *next;
	uint64_t due;
	uint64_t seq;
	bool reordered;
	size_t len;
	uint8_t data[];
};

struct dir {
	uint64_t rng;
	uint64_t seq;      /* frames that went through, to order reordered ones */
	struct held *held; /* by due time */
	size_t n_held;
	struct held *ready, **ready_tail; /* received frames due for the readers */
	struct mk_net_fault_stats *st;
	bool tx;
};

struct mk__fault {
	struct mk__fault_spec spec;
	struct dir rx, tx;
	mk_task *pump;
	struct mk__sched *pump_sched;
	bool pump_idle;         /* parked with nothing held */
	uint64_t pump_deadline; /* when sleeping: when it wakes */
	uint8_t *scratch;       /* a corrupted copy of a sent frame */
};

/* ---- the spec ------------------------------------------------------------------------- */

/* A decimal number: digits with at most one point, and at least one digit. Nothing else: no
 * sign, no space, no exponent, no hex (strtod alone took 0x1 as 1), no inf or nan. It is then
 * read by strtod in the C locale, whose decimal point is '.' whatever the program's locale. */
static bool parse_decimal(const char *v, size_t len, double *out)
{
	bool point = false, digit = false;
	locale_t c;
	char *s;

	for (size_t i = 0; i < len; i++) {
		if (v[i] == '.' && !point)
			point = true;
		else if (v[i] >= '0' && v[i] <= '9')
			digit = true;
		else
			return false;
	}
	if (!digit || (s = strndup(v, len)) == NULL)
		return false;
	c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (c != (locale_t)0) {
		*out = strtod_l(s, NULL, c);
		freelocale(c);
	}
	free(s);
	return c != (locale_t)0;
}

static int parse_prob(const char *arg, const char *field, const char *v, size_t len, double *out)
{
	size_t num = len > 0 && v[len - 1] == '%' ? len - 1 : len;
	double p;

	if (!parse_decimal(v, num, &p))
		goto bad;
	if (num < len)
		p /= 100;
	if (!(p >= 0 && p <= 1))
		goto bad;
	*out = p;
	return 0;
bad:
	return mk__fail(-EINVAL,
	                "'%s': %s='%.*s' is not a probability; write a decimal number from 0 to 1 "
	                "or a percentage, e.g. %s=0.1 or %s=10%%",
	                arg, field, (int)len, v, field, field);
}

static int parse_uint(const char *arg, const char *field, const char *v, size_t len, uint64_t max,
                      const char *example, uint64_t *out)
{
	uint64_t x = 0;

	if (len == 0)
		goto bad;
	for (size_t i = 0; i < len; i++) { /* decimal only: strtoull's base 0 took 010 as 8 */
		unsigned d = (unsigned)(v[i] - '0');
		if (v[i] < '0' || v[i] > '9' || x > (max - d) / 10)
			goto bad;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
bad:
	return mk__fail(-EINVAL,
	                "'%s': %s='%.*s' must be a whole number (decimal) from 0 to %llu, e.g. %s",
	                arg, field, (int)len, v, (unsigned long long)max, example);
}

static uint64_t threshold(double p)
{
	return p >= 1 ? UINT64_MAX : (uint64_t)(p * 18446744073709551616.0); /* p * 2^64 */
}

static int empty_field(const char *arg)
{
	return mk__fail(-EINVAL,
	                "'%s': an empty field (a comma at the start, at the end or twice); "
	                "separate FIELD=VALUE pairs with one comma",
	                arg);
}

int mk__fault_parse(const char *arg, const char *spec, struct mk__fault_spec *out)
{
	static const char *const fields[] = {"drop", "dup", "corrupt", "reorder", "delay", "seed"};
	const char *s = spec;
	unsigned seen = 0; /* bit i: fields[i] was given */

	memset(out, 0, sizeof(*out));
	while (*s != '\0') {
		size_t item = strcspn(s, ",");
		const char *eq = memchr(s, '=', item);
		size_t klen = eq ? (size_t)(eq - s) : item;
		const char *v = eq ? eq + 1 : s + item;
		size_t vlen = eq ? item - klen - 1 : 0;
		double p = 0;
		uint64_t x;
		int err = 0;

#define KEY(k) (klen == strlen(k) && strncmp(s, k, klen) == 0)
		if (item == 0)
			return empty_field(arg);
		if (eq == NULL)
			return mk__fail(-EINVAL,
			                "'%s': '%.*s' has no value; write FIELD=VALUE, with the "
			                "fields drop, dup, corrupt, reorder, delay and seed",
			                arg, (int)item, s);
		for (unsigned i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			if (!KEY(fields[i]))
				continue;
			if (seen & (1u << i))
				return mk__fail(-EINVAL,
				                "'%s': %s is given twice; give each field once",
				                arg, fields[i]);
			seen |= 1u << i;
		}
		if (KEY("drop") || KEY("dup") || KEY("corrupt") || KEY("reorder")) {
			char field[8];
			snprintf(field, sizeof(field), "%.*s", (int)klen, s);
			err = parse_prob(arg, field, v, vlen, &p);
			uint64_t t = threshold(p);
			if (KEY("drop"))
				out->drop = t;
			else if (KEY("dup"))
				out->dup = t;
			else if (KEY("corrupt"))
				out->corrupt = t;
			else
				out->reorder = t;
		} else if (KEY("delay")) {
			err = parse_uint(arg, "delay", v, vlen, 3600000, "delay=20 (milliseconds)",
			                 &x);
			out->delay_ns = x * 1000000ULL;
		} else if (KEY("seed")) {
			err = parse_uint(arg, "seed", v, vlen, UINT64_MAX, "seed=42", &x);
			out->seed = x;
			out->has_seed = true;
		} else {
			return mk__fail(-EINVAL,
			                "'%s': unknown field '%.*s'; the fields are drop, dup, "
			                "corrupt, reorder (probabilities), delay (milliseconds) "
			                "and seed",
			                arg, (int)klen, s);
		}
#undef KEY
		if (err != 0)
			return err;
		s += item;
		if (*s == ',' && *++s == '\0')
			return empty_field(arg);
	}
	return 0;
}

/* ---- random numbers ------------------------------------------------------------------- */

static bool chance(uint64_t draw, uint64_t threshold_)
{
	return threshold_ != 0 && (threshold_ == UINT64_MAX || draw < threshold_);
}

/* ---- holding frames back -------------------------------------------------------------- */

static struct held *held_new(const uint8_t *data, size_t len)
{
	struct held *h = malloc(sizeof(*h) + len);

	if (h != NULL) {
		memcpy(h->data, data, len);
		h->len = len;
		h->next = NULL;
	}
	return h;
}

static void wake_pump(struct mk__fault *f, uint64_t due)
{
	if (f->pump == NULL || f->pump->state != MK__PARKED)
		return;
	if (f->pump_idle || due < f->pump_deadline)
		mk__wake(f->pump_sched, f->pump, 0);
}

static void count_drop(mk_net *n, struct dir *d)
{
	if (d->tx)
		n->stats.tx_drops++;
	else
		n->stats.rx_drops++;
}

static void hold(mk_net *n, struct dir *d, const uint8_t *data, size_t len, uint64_t due,
                 uint64_t seq, bool reordered)
{
	struct held *h, **pp;

	if (d->n_held >= HELD_MAX || (h = held_new(data, len)) == NULL) {
		count_drop(n, d);
		return;
	}
	h->due = due;
	h->seq = seq;
	h->reordered = reordered;
	for (pp = &d->held; *pp != NULL && (*pp)->due <= due; pp = &(*pp)->next)
		;
	h->next = *pp;
	*pp = h;
	d->n_held++;
	wake_pump(n->fault, due);
}

/* A held frame goes: sent, or queued for the readers. */
static void emit(mk_net *n, struct dir *d, struct held *h)
{
	if (d->tx) {
		if (n->link->write(n, h->data, h->len) != (ssize_t)h->len)
			n->stats.tx_drops++;
		free(h);
		return;
	}
	h->next = NULL;
	*d->ready_tail = h;
	d->ready_tail = &h->next;
}

/* A frame (seq) has gone: the reordered frames held before it go right after it. */
static void release_reordered(mk_net *n, struct dir *d, uint64_t seq)
{
	for (struct held **pp = &d->held; *pp != NULL;) {
		struct held *h = *pp;
		if (h->reordered && h->seq < seq) {
			*pp = h->next;
			d->n_held--;
			emit(n, d, h);
		} else {
			pp = &h->next;
		}
	}
}

/* Let the frames whose time has come go. */
static void service_dir(mk_net *n, struct dir *d, uint64_t now)
{
	while (d->held != NULL && d->held->due <= now) {
		struct held *h = d->held;
		uint64_t seq = h->seq;
		bool reordered = h->reordered;
		d->held = h->next;
		d->n_held--;
		emit(n, d, h);
		if (!reordered)
			release_reordered(n, d, seq);
	}
}

static void service(mk_net *n, uint64_t now)
{
	service_dir(n, &n->fault->tx, now);
	service_dir(n, &n->fault->rx, now);
}

/* ---- the fate of a frame -------------------------------------------------------------- */

struct fate {
	bool drop, corrupt, dup, reorder;
	uint64_t bit; /* which bit to flip */
};

static struct fate draw(const struct mk__fault_spec *sp, struct dir *d)
{
	struct fate f;

	f.drop = chance(mk__splitmix64(&d->rng), sp->drop);
	f.corrupt = chance(mk__splitmix64(&d->rng), sp->corrupt);
	f.bit = mk__splitmix64(&d->rng);
	f.dup = chance(mk__splitmix64(&d->rng), sp->dup);
	f.reorder = chance(mk__splitmix64(&d->rng), sp->reorder);
	return f;
}

static void corrupt(uint8_t *frame, size_t len, uint64_t bit)
{
	size_t from = len > MK_ETHER_HEADER ? MK_ETHER_HEADER : 0;
	uint64_t pos = bit % ((len - from) * 8);

	frame[from + pos / 8] ^= (uint8_t)(1u << (pos % 8));
}

/* Send a frame on its way now, hold it, or have it held for reordering. Returns true when it
 * goes now (the caller delivers or sends it). */
static bool route(mk_net *n, struct dir *d, const uint8_t *data, size_t len, bool reorder,
                  uint64_t now)
{
	struct mk__fault *f = n->fault;
	uint64_t seq = d->seq++;

	if (reorder) {
		d->st->reorders++;
		hold(n, d, data, len, now + f->spec.delay_ns + REORDER_WAIT, seq, true);
		return false;
	}
	if (f->spec.delay_ns != 0) {
		d->st->delays++;
		hold(n, d, data, len, now + f->spec.delay_ns, seq, false);
		return false;
	}
	return true;
}

ssize_t mk__fault_read(mk_net *n, uint8_t *dst, size_t cap)
{
	struct mk__fault *f = n->fault;
	struct dir *d = &f->rx;

	service(n, mk_clock_monotonic());
	for (;;) {
		if (d->ready != NULL) {
			struct held *h = d->ready;
			ssize_t r = h->len <= cap ? (ssize_t)h->len : 0;
			d->ready = h->next;
			if (d->ready == NULL)
				d->ready_tail = &d->ready;
			if (r > 0)
				memcpy(dst, h->data, h->len);
			free(h);
			return r;
		}
		ssize_t r = n->link->read(n, dst, cap);
		if (r <= 0)
			return r;
		struct fate fate = draw(&f->spec, d);
		uint64_t now = mk_clock_monotonic();
		if (fate.drop) {
			d->st->drops++;
			continue;
		}
		if (fate.corrupt) {
			d->st->corrupts++;
			corrupt(dst, (size_t)r, fate.bit);
		}
		bool now_goes = route(n, d, dst, (size_t)r, fate.reorder, now);
		if (now_goes)
			release_reordered(n, d, d->seq - 1);
		if (fate.dup) {
			d->st->dups++;
			if (route(n, d, dst, (size_t)r, false, now)) {
				struct held *h = held_new(dst, (size_t)r);
				if (h != NULL)
					emit(n, d, h);
				else
					count_drop(n, d);
			}
		}
		if (now_goes)
			return r;
	}
}

ssize_t mk__fault_write(mk_net *n, const uint8_t *frame, size_t len)
{
	struct mk__fault *f = n->fault;
	struct dir *d = &f->tx;
	uint64_t now = mk_clock_monotonic();
	struct fate fate = draw(&f->spec, d);
	ssize_t r = (ssize_t)len;

	service(n, now);
	if (fate.drop) {
		d->st->drops++;
		return (ssize_t)len;
	}
	if (fate.corrupt) {
		d->st->corrupts++;
		memcpy(f->scratch, frame, len);
		corrupt(f->scratch, len, fate.bit);
		frame = f->scratch;
	}
	if (route(n, d, frame, len, fate.reorder, now)) {
		r = n->link->write(n, frame, len);
		release_reordered(n, d, d->seq - 1);
	}
	if (fate.dup) {
		d->st->dups++;
		if (route(n, d, frame, len, false, now) &&
		    n->link->write(n, frame, len) != (ssize_t)len)
			n->stats.tx_drops++;
	}
	return r;
}

/* ---- the task that lets held frames go ------------------------------------------------ */

static uint64_t next_due(struct mk__fault *f)
{
	uint64_t due = UINT64_MAX;

	if (f->tx.held != NULL)
		due = f->tx.held->due;
	if (f->rx.held != NULL && f->rx.held->due < due)
		due = f->rx.held->due;
	return due;
}

static intptr_t pump(void *arg)
{
	mk_net *n = arg;
	struct mk__fault *f = n->fault;
	struct mk__sched *s = f->pump_sched;

	for (;;) {
		uint64_t now = mk_clock_monotonic();
		int r;

		service(n, now);
		if (f->rx.ready != NULL)
			mk__net_notify(n);
		f->pump_deadline = next_due(f);
		if (f->pump_deadline == UINT64_MAX) {
			f->pump_idle = true;
			r = mk__park(s);
			f->pump_idle = false;
		} else {
			r = mk_sleep(f->pump_deadline > now ? f->pump_deadline - now : 0);
		}
		if (r == -ECANCELED)
			return 0;
	}
}

/* ---- open and close ------------------------------------------------------------------- */

int mk__fault_open(mk_net *n, const struct mk__fault_spec *spec)
{
	struct mk__fault *f = calloc(1, sizeof(*f));
	uint64_t seed = spec->seed;
	char name[80];
	int err;

	if (f == NULL || (f->scratch = malloc(n->cfg.mtu + MK_ETHER_HEADER)) == NULL) {
		free(f);
		return mk__fail(-ENOMEM, "net device '%s': out of memory", n->name);
	}
	if (!spec->has_seed && n->sched->seeded)
		seed = mk__seeded_random(n->sched, n->name, 0x464c54); /* "FLT" */
	else if (!spec->has_seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = mk_clock_monotonic();
	f->spec = *spec;
	f->rx.rng = seed ^ 0x5258000000000000ULL; /* "RX" */
	f->tx.rng = seed ^ 0x5458000000000000ULL; /* "TX" */
	mk__splitmix64(&f->rx.rng);
	mk__splitmix64(&f->tx.rng);
	f->rx.ready_tail = &f->rx.ready;
	f->tx.ready_tail = &f->tx.ready;
	f->rx.st = &n->stats.fault_rx;
	f->tx.st = &n->stats.fault_tx;
	f->tx.tx = true;
	n->fault = f;
	if (spec->delay_ns != 0 || spec->reorder != 0) {
		snprintf(name, sizeof(name), "fault:%s", n->name);
		f->pump_sched = n->sched;
		err = mk__task_new(n->sched, &f->pump, name, pump, n);
		if (err != 0) {
			mk__fault_close(n);
			return mk__fail(err, "net device '%s': cannot start its fault task: %s",
			                n->name, mk_strerror(err));
		}
	}
	return 0;
}

static void free_list(struct held *h)
{
	while (h != NULL) {
		struct held *next = h->next;
		free(h);
		h = next;
	}
}

void mk__fault_close(mk_net *n)
{
	struct mk__fault *f = n->fault;

	if (f == NULL)
		return;
	free_list(f->rx.held);
	free_list(f->rx.ready);
	free_list(f->tx.held);
	free(f->scratch);
	free(f);
	n->fault = NULL;
}
