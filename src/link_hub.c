/* --net:NAME=hub:LAN[,mtu=N]: devices of one program joined by an in-process learning switch.
 *
 * Every device that names the same LAN is a port of one switch. The switch learns which port
 * each source MAC address came from, and knows from the start the MAC each port's device
 * reports; a frame to a known unicast address goes to that port only, any other frame
 * (broadcast, multicast, unknown) to every port but the one it came from. A frame
 * is copied into a bounded queue of the receiving port and its readers are woken with
 * mk__net_notify(); a full queue drops the frame and counts it in that device's rx_drops, as a
 * NIC does when its ring overflows. A frame longer than the receiver's mtu + 14 is dropped and
 * counted there too.
 *
 * There is no global state: the switch of a LAN is found through the devices of the running
 * scheduler, so two schedulers (two threads) never share one, and it is freed with its last
 * port.
 *
 * For simulated networks (see docs/ARCHITECTURE.md, "Virtual time"), a port's cable can have a
 * latency and a rate (hub:LAN,latency=US,rate=MBIT): its frames then wait in an egress queue of
 * the port, released to the switch by a library task ("hub:NAME") when due. Ports belong to
 * groups (mk_hub_partition): the switch drops a frame between two groups. A port's link can be
 * down (mk_net_set_link). A schedule of such changes from the command line (--net-partition,
 * --net-down) is run by a library task ("schedule").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HUB_QUEUE 256 /* frames waiting per port */
#define HUB_FDB   256 /* learned addresses per LAN */

struct hub_slot {
	uint8_t *buf;
	size_t len;
	uint64_t due; /* egress queue: when the frame reaches the switch */
};

struct hub_queue {
	struct hub_slot q[HUB_QUEUE];
	size_t head, len;
};

struct hub_port {
	struct hub_port *next;
	struct hub *hub;
	mk_net *net;
	struct hub_queue in; /* frames for this port's readers */
	/* the cable to the switch, when it has a latency or a rate */
	uint64_t latency_ns, rate_bps;
	struct hub_queue out;
	uint64_t busy_until; /* when the cable has sent the last frame queued */
	mk_task *pump;       /* "hub:NAME": lets the egress queue's frames go when due */
	bool pump_idle;      /* parked until a frame is queued */
	unsigned group;      /* partitions: frames cross only within a group */
	unsigned next_group; /* the group a partition being checked gives it */
	bool down;           /* the port's link is down */
};

struct hub_fdb {
	uint8_t mac[6];
	struct hub_port *port; /* NULL: free entry */
};

struct hub {
	char lan[64];
	struct hub_port *ports;
	struct hub_fdb fdb[HUB_FDB];
	size_t fdb_next; /* the entry replaced when the table is full */
};

static const struct mk__link_ops hub_ops;

static size_t frame_max(const mk_net *n)
{
	return n->cfg.mtu + MK_ETHER_HEADER;
}

/* Copy a frame into (q) of port (p), due at (due); false when full (or out of memory). */
static bool enqueue(struct hub_queue *q, const struct hub_port *p, const uint8_t *frame, size_t len,
                    uint64_t due)
{
	struct hub_slot *slot;

	if (q->len == HUB_QUEUE)
		return false;
	slot = &q->q[(q->head + q->len) % HUB_QUEUE];
	if (slot->buf == NULL) {
		slot->buf = malloc(frame_max(p->net));
		if (slot->buf == NULL)
			return false;
	}
	memcpy(slot->buf, frame, len);
	slot->len = len;
	slot->due = due;
	q->len++;
	return true;
}

static struct hub_slot *dequeue(struct hub_queue *q)
{
	struct hub_slot *slot = &q->q[q->head];

	q->head = (q->head + 1) % HUB_QUEUE;
	q->len--;
	return slot;
}

static void deliver(struct hub_port *from, struct hub_port *p, const uint8_t *frame, size_t len)
{
	if (p->group != from->group || p->down) {
		from->net->stats.cut_drops++; /* the network lost it, not the receiver */
		return;
	}
	if (len > frame_max(p->net) || !enqueue(&p->in, p, frame, len, 0)) {
		p->net->stats.rx_drops++;
		return;
	}
	mk__net_notify(p->net);
}

static void learn(struct hub *h, const uint8_t *mac, struct hub_port *p)
{
	struct hub_fdb *free_entry = NULL;

	if (mac[0] & 1)
		return; /* a group address is never a source */
	for (size_t i = 0; i < HUB_FDB; i++) {
		if (h->fdb[i].port != NULL && memcmp(h->fdb[i].mac, mac, 6) == 0) {
			h->fdb[i].port = p; /* a host that moved */
			return;
		}
		if (h->fdb[i].port == NULL && free_entry == NULL)
			free_entry = &h->fdb[i];
	}
	if (free_entry == NULL) {
		free_entry = &h->fdb[h->fdb_next];
		h->fdb_next = (h->fdb_next + 1) % HUB_FDB;
	}
	memcpy(free_entry->mac, mac, 6);
	free_entry->port = p;
}

static struct hub_port *lookup(struct hub *h, const uint8_t *mac)
{
	if (mac[0] & 1)
		return NULL;
	for (size_t i = 0; i < HUB_FDB; i++)
		if (h->fdb[i].port != NULL && memcmp(h->fdb[i].mac, mac, 6) == 0)
			return h->fdb[i].port;
	/* Not learned yet: the switch knows the MAC each port's device reports, as if it had sent
	 * a frame already. So a frame to a device that has not spoken yet is not flooded to every
	 * port (which a simulation would have to account for); other addresses are learned. */
	for (struct hub_port *p = h->ports; p != NULL; p = p->next)
		if (memcmp(p->net->cfg.mac, mac, 6) == 0)
			return p;
	return NULL;
}

/* A frame from port (self) reaches the switch. */
static void switch_frame(struct hub_port *self, const uint8_t *frame, size_t len)
{
	struct hub *h = self->hub;
	struct hub_port *to;

	learn(h, frame + 6, self);
	to = lookup(h, frame);
	if (to != NULL) {
		if (to != self)
			deliver(self, to, frame, len);
		return;
	}
	for (struct hub_port *p = h->ports; p != NULL; p = p->next)
		if (p != self)
			deliver(self, p, frame, len);
}

static ssize_t hub_write(mk_net *n, const uint8_t *frame, size_t len)
{
	struct hub_port *self = n->link_state;

	if (self->down)
		return -ENETDOWN; /* counted in tx_drops, as a TAP whose link is down */
	if (self->pump == NULL) {
		switch_frame(self, frame, len);
		return (ssize_t)len;
	}
	/* The cable sends one frame after another at its rate; each then takes the latency. */
	uint64_t now = mk_clock_monotonic();
	uint64_t start = self->busy_until > now ? self->busy_until : now;
	uint64_t busy = self->rate_bps ? (uint64_t)len * 8 * 1000000000ULL / self->rate_bps : 0;
	if (!enqueue(&self->out, self, frame, len, start + busy + self->latency_ns))
		return -ENOBUFS; /* the queue in front of a slow cable is full: tail drop */
	self->busy_until = start + busy;
	if (self->pump_idle)
		mk__wake(n->sched, self->pump, 0);
	return (ssize_t)len;
}

static ssize_t hub_read(mk_net *n, uint8_t *dst, size_t cap)
{
	struct hub_port *p = n->link_state;
	struct hub_slot *slot;

	if (p->in.len == 0)
		return -EAGAIN;
	slot = dequeue(&p->in);
	if (slot->len > cap)
		return 0;
	memcpy(dst, slot->buf, slot->len);
	return (ssize_t)slot->len;
}

/* "hub:NAME": frames leave the egress queue for the switch when due. */
static intptr_t pump(void *arg)
{
	struct hub_port *p = arg;
	struct mk__sched *s = p->net->sched;

	for (;;) {
		uint64_t now = mk_clock_monotonic();
		int r;

		while (p->out.len > 0 && p->out.q[p->out.head].due <= now) {
			struct hub_slot *slot = dequeue(&p->out);
			switch_frame(p, slot->buf, slot->len);
		}
		if (p->out.len == 0) {
			p->pump_idle = true;
			r = mk__park(s);
			p->pump_idle = false;
		} else {
			r = mk_sleep(p->out.q[p->out.head].due - now);
		}
		if (r == -ECANCELED)
			return 0;
	}
}

static void hub_close(mk_net *n)
{
	struct hub_port *p = n->link_state;
	struct hub *h = p->hub;

	for (struct hub_port **pp = &h->ports; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	for (size_t i = 0; i < HUB_FDB; i++)
		if (h->fdb[i].port == p)
			h->fdb[i].port = NULL;
	for (size_t i = 0; i < HUB_QUEUE; i++) {
		free(p->in.q[i].buf);
		free(p->out.q[i].buf);
	}
	free(p); /* its pump, if any, has ended: devices close after every task */
	if (h->ports == NULL)
		free(h);
}

static const struct mk__link_ops hub_ops = {
    .kind = "hub",
    .read = hub_read,
    .write = hub_write,
    .close = hub_close,
};

/* The switch of (lan) among the devices of this scheduler, or NULL. */
static struct hub *find_hub(struct mk__sched *s, const char *lan, size_t len)
{
	for (mk_net *o = s->nets; o != NULL; o = o->next) {
		if (o->link != &hub_ops)
			continue;
		struct hub *h = ((struct hub_port *)o->link_state)->hub;
		if (strlen(h->lan) == len && strncmp(h->lan, lan, len) == 0)
			return h;
	}
	return NULL;
}

/* A decimal number with up to (frac) digits after an optional point, scaled by 10^frac into
 * (*out); false unless it is that and at most (max) once scaled. */
static bool decimal(const char *s, unsigned frac, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	unsigned digits = 0, after = 0;
	bool point = false;

	for (; *s != '\0'; s++) {
		if (*s == '.' && !point) {
			point = true;
			continue;
		}
		if (*s < '0' || *s > '9' || (point && after == frac) || v > max)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		digits++;
		after += point;
	}
	for (; after < frac; after++)
		v *= 10;
	*out = v;
	return digits > 0 && v <= max;
}

/* The options after hub:LAN: mtu=N, latency=US, rate=MBIT. */
static int parse_options(const char *name, const char *opts, unsigned *mtu, struct hub_port *p)
{
	char opt[128];

	while (*opts != '\0') {
		size_t len = strcspn(opts, ",");
		snprintf(opt, sizeof(opt), "%.*s", (int)len, opts);
		opts += len + (opts[len] == ',');
		if (strncmp(opt, "latency=", 8) == 0) {
			uint64_t us;
			if (!decimal(opt + 8, 0, 3600000000ULL, &us))
				return mk__fail(
				    -EINVAL,
				    "net device '%s': latency '%s' must be a whole number "
				    "of microseconds from 0 to 3600000000, e.g. "
				    "latency=50000 (50 ms)",
				    name, opt + 8);
			p->latency_ns = us * 1000;
		} else if (strncmp(opt, "rate=", 5) == 0) {
			uint64_t bps;
			if (!decimal(opt + 5, 6, 1000000ULL * 1000000ULL, &bps) || bps == 0)
				return mk__fail(
				    -EINVAL,
				    "net device '%s': rate '%s' must be a number of Mbit/s "
				    "above 0 and at most 1000000 (up to 6 decimals), e.g. "
				    "rate=10 or rate=0.5",
				    name, opt + 5);
			p->rate_bps = bps; /* Mbit/s with 6 decimals is bit/s */
		} else if (strncmp(opt, "mtu=", 4) == 0) {
			int err = mk__link_parse_mtu(name, opt, mtu);
			if (err != 0)
				return err;
		} else {
			return mk__fail(
			    -EINVAL,
			    "net device '%s': unknown hub: option '%s'; the options are "
			    "mtu=N, latency=US and rate=MBIT",
			    name, opt);
		}
	}
	return 0;
}

int mk__hub_link_open(mk_net *n, const struct mk__netarg *a)
{
	const char *lan = a->value + strlen("hub:");
	const char *comma = strchr(lan, ',');
	size_t len = comma ? (size_t)(comma - lan) : strlen(lan);
	unsigned mtu = 1500;
	struct hub_port *p;
	struct hub *h;
	int err;

	if (len == 0 || len >= sizeof(h->lan))
		return mk__fail(-EINVAL,
		                "net device '%s': hub: needs a LAN name of 1 to %zu "
		                "characters, e.g. --net:%s=hub:lan0",
		                a->name, sizeof(h->lan) - 1, a->name);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
	if (comma != NULL) {
		err = parse_options(a->name, comma + 1, &mtu, p);
		if (err != 0) {
			free(p);
			return err;
		}
	}
	n->cfg.mtu = mtu; /* frame_max() of (p) needs it from here on */
	p->net = n;
	if (p->latency_ns != 0 || p->rate_bps != 0) {
		char task[80];
		snprintf(task, sizeof(task), "hub:%s", a->name);
		err = mk__task_new(n->sched, &p->pump, task, pump, p);
		if (err != 0) {
			free(p);
			return mk__fail(err, "net device '%s': cannot start its task: %s", a->name,
			                mk_strerror(err));
		}
	}
	h = find_hub(n->sched, lan, len);
	if (h == NULL) {
		h = calloc(1, sizeof(*h));
		if (h == NULL) {
			if (p->pump != NULL)
				mk__task_cancel(n->sched, p->pump); /* never started: never runs */
			free(p);
			return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
		}
		memcpy(h->lan, lan, len);
	}
	p->hub = h;
	p->next = h->ports;
	h->ports = p;
	n->link = &hub_ops;
	n->link_state = p;
	n->fd = -1;
	return 0;
}

/* ---- partitions and links --------------------------------------------------------------- */

/* Tell (p) that its network changed: counted, and written into its capture as a note frame. */
static void note(struct hub_port *p, const char *text)
{
	uint8_t frame[MK_ETHER_HEADER + 200] = {0};
	size_t len = strlen(text);

	p->net->stats.link_events++;
	if (p->net->pcap == NULL)
		return;
	if (len > sizeof(frame) - MK_ETHER_HEADER)
		len = sizeof(frame) - MK_ETHER_HEADER;
	frame[12] = 0x88; /* EtherType 0x88B5, local experimental; addresses all zero */
	frame[13] = 0xb5;
	memcpy(frame + MK_ETHER_HEADER, text, len);
	len += MK_ETHER_HEADER;
	mk__pcap_frame(p->net, frame, len < 60 ? 60 : len);
}

static struct hub_port *port_named(struct hub *h, const char *name, size_t len)
{
	for (struct hub_port *p = h->ports; p != NULL; p = p->next)
		if (strlen(p->net->name) == len && strncmp(p->net->name, name, len) == 0)
			return p;
	return NULL;
}

/* Give each port of (h) its group from (groups), "a,b|c": group 1, 2, ... in order, 0 for the
 * ports not named. With (strict), a name that is not a port of (h) is an error; without (a
 * schedule from the command line, whose devices may not all be connected yet), it is skipped. */
static int partition(struct hub *h, const char *groups, bool strict)
{
	unsigned group = 1;
	char text[200];

	/* Every name is checked first, into next_group; the groups change only when all are good.
	 */
	for (struct hub_port *p = h->ports; p != NULL; p = p->next)
		p->next_group = 0;
	for (const char *g = groups;; g++, group++) {
		if (*g == '|' || *g == '\0')
			return mk__fail(
			    -EINVAL,
			    "hub LAN '%s': '%s' has an empty group; write device names "
			    "separated by ',' in a group and '|' between groups, e.g. a,b|c",
			    h->lan, groups);
		for (;; g++) {
			size_t len = strcspn(g, ",|");
			struct hub_port *p = port_named(h, g, len);
			if (p == NULL && (strict || len == 0))
				return mk__fail(
				    -EINVAL,
				    "hub LAN '%s': '%.*s' in '%s' is not a connected device "
				    "of this LAN",
				    h->lan, (int)len, g, groups);
			if (p != NULL && p->next_group != 0)
				return mk__fail(-EINVAL,
				                "hub LAN '%s': '%.*s' is named twice in '%s'",
				                h->lan, (int)len, g, groups);
			if (p != NULL)
				p->next_group = group;
			g += len;
			if (*g != ',')
				break;
		}
		if (*g == '\0')
			break;
	}
	snprintf(text, sizeof(text), "mkhost: partition %s: %s", h->lan, groups);
	for (struct hub_port *p = h->ports; p != NULL; p = p->next) {
		p->group = p->next_group;
		note(p, text);
	}
	return 0;
}

static void heal(struct hub *h)
{
	char text[100];

	snprintf(text, sizeof(text), "mkhost: heal %s", h->lan);
	for (struct hub_port *p = h->ports; p != NULL; p = p->next) {
		p->group = 0;
		note(p, text);
	}
}

static void set_link(struct hub_port *p, bool up)
{
	char text[100];

	if (p->down == !up)
		return;
	p->down = !up;
	snprintf(text, sizeof(text), "mkhost: link %s %s", p->net->name, up ? "up" : "down");
	note(p, text);
}

static int hub_of(const char *lan, struct hub **out)
{
	struct mk__sched *s = mk__sched_current;

	if (s == NULL)
		return -EPERM;
	if (lan == NULL)
		return -EINVAL;
	*out = find_hub(s, lan, strlen(lan));
	if (*out == NULL)
		return mk__fail(-ENOENT,
		                "hub LAN '%s': no connected device of this program is on it; "
		                "connect a --net:NAME=hub:%s device first",
		                lan, lan);
	return 0;
}

int mk_hub_partition(const char *lan, const char *groups)
{
	struct hub *h;
	int err = hub_of(lan, &h);

	if (err != 0)
		return err;
	if (groups == NULL)
		return -EINVAL;
	return partition(h, groups, true);
}

int mk_hub_heal(const char *lan)
{
	struct hub *h;
	int err = hub_of(lan, &h);

	if (err != 0)
		return err;
	heal(h);
	return 0;
}

int mk_net_set_link(mk_net *n, int up)
{
	int err = mk__net_check(n);

	if (err != 0)
		return err;
	if (n->link != &hub_ops || (up != 0 && up != 1))
		return -EINVAL;
	set_link(n->link_state, up);
	return 0;
}

/* ---- the schedule of the command line ---------------------------------------------------- */

/* Whether the --net argument (a) is a hub: port on (lan). */
static bool arg_on_lan(const struct mk__netarg *a, const char *lan)
{
	size_t len = strlen(lan);

	return a->value != NULL && strncmp(a->value, "hub:", 4) == 0 &&
	       strncmp(a->value + 4, lan, len) == 0 &&
	       (a->value[4 + len] == '\0' || a->value[4 + len] == ',');
}

static int check_change(const struct mk__args *a, const struct mk__change *c)
{
	if (c->down) {
		for (size_t i = 0; i < a->n_nets; i++)
			if (strcmp(a->nets[i].name, c->target) == 0 && a->nets[i].value != NULL &&
			    strncmp(a->nets[i].value, "hub:", 4) == 0)
				return 0;
		return mk__fail(-EINVAL,
		                "--net-down:%s: there is no hub: device '%s' on the command line; "
		                "give --net:%s=hub:LAN, or drop the schedule",
		                c->target, c->target, c->target);
	}
	bool lan = false;
	for (size_t i = 0; i < a->n_nets && !lan; i++)
		lan = arg_on_lan(&a->nets[i], c->target);
	if (!lan)
		return mk__fail(-EINVAL,
		                "--net-partition:%s: no device of the command line is on hub LAN "
		                "'%s'; give --net:NAME=hub:%s devices, or drop the schedule",
		                c->target, c->target, c->target);
	for (const char *d = c->groups; *d != '\0';) {
		size_t len = strcspn(d, ",|");
		bool found = false;
		for (size_t i = 0; i < a->n_nets && !found; i++)
			found = strlen(a->nets[i].name) == len &&
			        strncmp(a->nets[i].name, d, len) == 0 &&
			        arg_on_lan(&a->nets[i], c->target);
		if (!found)
			return mk__fail(-EINVAL,
			                "--net-partition:%s: '%.*s' in '%s' is not a device on hub "
			                "LAN '%s' (write device names, ',' within a group, '|' "
			                "between groups)",
			                c->target, (int)len, d, c->groups, c->target);
		d += len + (d[len] != '\0');
	}
	return 0;
}

struct event {
	uint64_t at;
	const struct mk__change *change;
	bool start; /* the change begins (else it is undone) */
};

static int event_order(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	/* At the same time, in the order of the command line (the changes are one array): qsort
	 * is not stable, and the run must not depend on its whims. */
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	if (x->change != y->change)
		return x->change < y->change ? -1 : 1;
	return x->start ? 1 : -1; /* the same change: its end (to) is after its start (from) */
}

static void apply(struct mk__sched *s, const struct event *e)
{
	const struct mk__change *c = e->change;

	if (c->down) {
		for (mk_net *n = s->nets; n != NULL; n = n->next)
			if (n->link == &hub_ops && strcmp(n->name, c->target) == 0)
				set_link(n->link_state, !e->start);
		return;
	}
	struct hub *h = find_hub(s, c->target, strlen(c->target));
	if (h == NULL)
		return; /* none of its devices is connected yet */
	if (e->start)
		partition(h, c->groups, false); /* checked already: cannot fail but for memory */
	else
		heal(h);
}

static intptr_t schedule(void *arg)
{
	struct mk__sched *s = arg;
	size_t n = s->args.n_changes * 2;
	struct event *ev = calloc(n, sizeof(*ev));
	uint64_t start = mk_clock_monotonic();

	if (ev == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->args.n_changes; i++) {
		const struct mk__change *c = &s->args.changes[i];
		ev[2 * i] = (struct event){c->from_ns, c, true};
		ev[2 * i + 1] = (struct event){c->to_ns, c, false};
	}
	qsort(ev, n, sizeof(*ev), event_order);
	for (size_t i = 0; i < n; i++) {
		uint64_t now = mk_clock_monotonic(), at = start + ev[i].at;
		if (at > now && mk_sleep(at - now) != 0)
			break; /* cancelled: the program is ending */
		apply(s, &ev[i]);
	}
	free(ev);
	return 0;
}

int mk__hub_schedule_start(struct mk__sched *s)
{
	mk_task *t;

	for (size_t i = 0; i < s->args.n_changes; i++) {
		int err = check_change(&s->args, &s->args.changes[i]);
		if (err != 0)
			return err;
	}
	if (s->args.n_changes == 0)
		return 0;
	return mk__task_new(s, &t, "schedule", schedule, s);
}
