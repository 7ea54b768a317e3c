/* --net:NAME=hub:LAN[,mtu=N]: devices of one program joined by an in-process learning switch.
 *
 * Every device that names the same LAN is a port of one switch. The switch learns which port
 * each source MAC address came from; a frame to a known unicast address goes to that port only,
 * any other frame (broadcast, multicast, unknown) to every port but the one it came from. A frame
 * is copied into a bounded queue of the receiving port and its readers are woken with
 * mk__net_notify(); a full queue drops the frame and counts it in that device's rx_drops, as a
 * NIC does when its ring overflows. A frame longer than the receiver's mtu + 14 is dropped and
 * counted there too.
 *
 * There is no global state: the switch of a LAN is found through the devices of the running
 * scheduler, so two schedulers (two threads) never share one, and it is freed with its last
 * port.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HUB_QUEUE 256 /* frames waiting per port */
#define HUB_FDB   256 /* learned addresses per LAN */

struct hub_slot {
	uint8_t *buf;
	size_t len;
};

struct hub_port {
	struct hub_port *next;
	struct hub *hub;
	mk_net *net;
	struct hub_slot q[HUB_QUEUE];
	size_t head, len;
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

static void deliver(struct hub_port *p, const uint8_t *frame, size_t len)
{
	struct hub_slot *slot;

	if (p->len == HUB_QUEUE || len > frame_max(p->net)) {
		p->net->stats.rx_drops++;
		return;
	}
	slot = &p->q[(p->head + p->len) % HUB_QUEUE];
	if (slot->buf == NULL) {
		slot->buf = malloc(frame_max(p->net));
		if (slot->buf == NULL) {
			p->net->stats.rx_drops++;
			return;
		}
	}
	memcpy(slot->buf, frame, len);
	slot->len = len;
	p->len++;
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
	return NULL;
}

static ssize_t hub_write(mk_net *n, const uint8_t *frame, size_t len)
{
	struct hub_port *self = n->link_state;
	struct hub *h = self->hub;
	struct hub_port *to;

	learn(h, frame + 6, self);
	to = lookup(h, frame);
	if (to != NULL) {
		if (to != self)
			deliver(to, frame, len);
		return (ssize_t)len;
	}
	for (struct hub_port *p = h->ports; p != NULL; p = p->next)
		if (p != self)
			deliver(p, frame, len);
	return (ssize_t)len;
}

static ssize_t hub_read(mk_net *n, uint8_t *dst, size_t cap)
{
	struct hub_port *p = n->link_state;
	struct hub_slot *slot;

	if (p->len == 0)
		return -EAGAIN;
	slot = &p->q[p->head];
	p->head = (p->head + 1) % HUB_QUEUE;
	p->len--;
	if (slot->len > cap)
		return 0;
	memcpy(dst, slot->buf, slot->len);
	return (ssize_t)slot->len;
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
	for (size_t i = 0; i < HUB_QUEUE; i++)
		free(p->q[i].buf);
	free(p);
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

int mk__hub_link_open(mk_net *n, const struct mk__netarg *a)
{
	const char *lan = a->value + strlen("hub:");
	const char *comma = strchr(lan, ',');
	size_t len = comma ? (size_t)(comma - lan) : strlen(lan);
	unsigned mtu = 1500;
	struct hub_port *p;
	struct hub *h;
	int err;

	if (comma != NULL) {
		err = mk__link_parse_mtu(a->name, comma + 1, &mtu);
		if (err != 0)
			return err;
	}
	if (len == 0 || len >= sizeof(h->lan))
		return mk__fail(-EINVAL,
		                "net device '%s': hub: needs a LAN name of 1 to %zu "
		                "characters, e.g. --net:%s=hub:lan0",
		                a->name, sizeof(h->lan) - 1, a->name);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
	h = find_hub(n->sched, lan, len);
	if (h == NULL) {
		h = calloc(1, sizeof(*h));
		if (h == NULL) {
			free(p);
			return mk__fail(-ENOMEM, "net device '%s': out of memory", a->name);
		}
		memcpy(h->lan, lan, len);
	}
	p->hub = h;
	p->net = n;
	p->next = h->ports;
	h->ports = p;
	n->link = &hub_ops;
	n->link_state = p;
	n->fd = -1;
	n->cfg.mtu = mtu;
	return 0;
}
