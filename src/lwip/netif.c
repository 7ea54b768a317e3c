/* The netif: an lwIP network interface whose frames go through a mkhost net device.
 *
 * Receive: a task per device allocates a pbuf as large as the largest frame, has the device read
 * the next frame straight into its payload (mk_net_read_bigstring: no copy in between), trims it
 * to the frame and hands it to lwIP (netif->input, which is netif_input: lwIP runs in the
 * caller, there is no tcpip thread). Before that, frames for another unicast MAC address are
 * dropped as a NIC drops them (a hub: link floods frames to addresses it has not learnt), DHCP
 * replies go to mk_lwip_dhcp when it waits, and a SYN may replace a connection in TIME_WAIT.
 *
 * Send: linkoutput writes a pbuf that is one piece directly from its payload
 * (mk_net_write_bigstring); a chain is copied into the device's transmit buffer by the filler of
 * mk_net_write_into. Both finish before linkoutput returns, so lwIP may reuse the pbuf at once.
 *
 * After each frame in or out the timer task is told (lw_timers_changed), as lwIP may just have
 * scheduled a timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/pbuf.h"
#include "glue.h"

static __thread char last_error[512];

int lw_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *mk_lwip_last_error(void)
{
	return last_error;
}

/* ---- send ------------------------------------------------------------------------------- */

static size_t fill_from_chain(void *buf, size_t len, void *ctx)
{
	struct pbuf *p = ctx;

	return pbuf_copy_partial(p, buf, (u16_t)len, 0);
}

static err_t linkoutput(struct netif *netif, struct pbuf *p)
{
	mk_lwip *l = netif->state;
	ssize_t n;

	if (p->next == NULL) {
		n = mk_net_write_bigstring(l->net, p->payload, p->len, 0, p->len);
	} else {
		l->stats.tx_chains++;
		n = mk_net_write_into(l->net, p->tot_len, fill_from_chain, p);
	}
	lw_timers_changed();
	if (n <= 0) {
		/* Refused by the kernel (0) is a frame lost on the wire: TCP sends it again. */
		l->stats.tx_errors++;
		return n == 0 ? ERR_OK : ERR_IF;
	}
	l->stats.tx_frames++;
	return ERR_OK;
}

static err_t netif_setup(struct netif *netif)
{
	mk_lwip *l = netif->state;

	netif->name[0] = 'm';
	netif->name[1] = 'k';
	netif->hwaddr_len = ETH_HWADDR_LEN;
	memcpy(netif->hwaddr, l->cfg.mac, ETH_HWADDR_LEN);
	netif->mtu = (u16_t)l->cfg.mtu;
	netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
	netif->output = etharp_output;
	netif->linkoutput = linkoutput;
	return ERR_OK;
}

/* ---- receive ---------------------------------------------------------------------------- */

/* Whether a NIC with our address would take (frame): ours, broadcast or multicast. */
static bool for_us(const mk_lwip *l, const uint8_t *frame)
{
	return (frame[0] & 1) != 0 || memcmp(frame, l->cfg.mac, 6) == 0;
}

static intptr_t rx_task(void *arg)
{
	mk_lwip *l = arg;
	/* One byte more than the largest frame: the device then knows without a second buffer
	 * that no frame was cut short. A heap pbuf (PBUF_RAM) is one piece of exactly that size;
	 * a pool pbuf is not: Debian's liblwip was built with smaller pool buffers (616 bytes)
	 * than its installed lwipopts.h says (PBUF_POOL_BUFSIZE 1520). */
	u16_t size = (u16_t)(l->cfg.mtu + MK_ETHER_HEADER + 1);

	for (;;) {
		struct pbuf *p = pbuf_alloc(PBUF_RAW, size, PBUF_RAM);
		if (p == NULL) {
			/* Out of memory: the device keeps the frames meanwhile (and drops what it
			 * cannot keep, as a NIC's full ring does). */
			l->stats.rx_nomem++;
			if (mk_sleep(LW_MS) != 0)
				return 0;
			continue;
		}
		ssize_t n = mk_net_read_bigstring(l->net, p->payload, size, 0, size);
		if (n < 0) {
			pbuf_free(p);
			return n == -ECANCELED ? 0 : n;
		}
		const uint8_t *f = p->payload;
		if ((size_t)n < MK_ETHER_HEADER || !for_us(l, f)) {
			l->stats.rx_filtered++;
			pbuf_free(p);
			continue;
		}
		if (l->dhcp.active && lw_dhcp_input(l, f, (size_t)n)) {
			pbuf_free(p);
			continue;
		}
		pbuf_realloc(p, (u16_t)n);
		lw_tw_before_input(f, (size_t)n);
		l->stats.rx_frames++;
		if (l->netif.input(p, &l->netif) != ERR_OK)
			pbuf_free(p);
		lw_tw_after_input();
		lw_timers_changed();
	}
}

/* ---- attach and detach ------------------------------------------------------------------ */

int mk_lwip_attach(mk_net *net, const struct mk_net_config *cfg, mk_lwip **out)
{
	if (net == NULL || cfg == NULL || out == NULL)
		return lw_fail(-EINVAL, "mk_lwip_attach: the device, its configuration and the "
		                        "place for the handle must not be NULL");
	if (cfg->mtu < 576 || cfg->mtu > 65521)
		return lw_fail(-EINVAL,
		               "mk_lwip_attach: device %s has MTU %u; lwIP's netif takes 576 to "
		               "65521",
		               mk_net_name(net) ? mk_net_name(net) : "?", cfg->mtu);
	if (mk_task_self() == NULL)
		return lw_fail(-EPERM, "mk_lwip_attach must be called from a task inside mk_run");
	mk_lwip *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return lw_fail(-ENOMEM, "mk_lwip_attach: out of memory");
	l->net = net;
	l->cfg = *cfg;
	int err = mk_cond_new(&l->dhcp.cond);
	if (err != 0)
		goto fail_free;
	err = lw_core_take();
	if (err != 0)
		goto fail_cond;
	if (netif_add(&l->netif, NULL, NULL, NULL, l, netif_setup, netif_input) == NULL) {
		err = lw_fail(-ENOMEM, "mk_lwip_attach: lwIP refused the netif (netif_add)");
		goto fail_core;
	}
	err = mk_task_spawn(&l->rx, "lwip-rx", rx_task, l);
	if (err != 0)
		goto fail_netif;
	if (netif_default == NULL)
		netif_set_default(&l->netif);
	netif_set_link_up(&l->netif);
	netif_set_up(&l->netif);
	lw_timers_changed();
	*out = l;
	return 0;

fail_netif:
	netif_remove(&l->netif);
fail_core:
	lw_core_release();
fail_cond:
	mk_cond_free(l->dhcp.cond);
fail_free:
	free(l);
	if (err == -ENOMEM)
		lw_fail(err, "mk_lwip_attach: out of memory");
	return err;
}

int mk_lwip_detach(mk_lwip *l)
{
	if (l == NULL)
		return lw_fail(-EINVAL, "mk_lwip_detach: the handle is NULL");
	if (mk_task_self() == NULL || !lw_core_owned())
		return lw_fail(-EPERM, "mk_lwip_detach must be called from a task of the thread "
		                       "that attached the device");
	netif_set_down(&l->netif);
	netif_remove(&l->netif);
	mk_task_cancel(l->rx);
	mk_task_await(l->rx, NULL);
	lw_core_release();
	mk_cond_free(l->dhcp.cond);
	free(l);
	return 0;
}

struct netif *mk_lwip_netif(mk_lwip *l)
{
	return l == NULL ? NULL : &l->netif;
}

/* ---- addresses -------------------------------------------------------------------------- */

/* "A.B.C.D" into (*ip), network byte order; with (prefix) not NULL, an optional "/N" too. */
static bool parse_ipv4(const char *s, uint32_t *ip, int *prefix)
{
	char buf[32];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	struct in_addr a;

	if (n == 0 || n >= sizeof(buf) || (slash && prefix == NULL))
		return false;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return false;
	*ip = a.s_addr;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != 0 || v < 1 || v > 30)
			return false;
		*prefix = (int)v;
	} else if (prefix) {
		*prefix = 24;
	}
	return true;
}

int mk_lwip_set_ipv4(mk_lwip *l, const char *address, const char *gateway)
{
	uint32_t ip, gw = 0;
	int prefix;

	if (l == NULL || address == NULL)
		return lw_fail(-EINVAL, "mk_lwip_set_ipv4: the handle and the address must not be "
		                        "NULL");
	if (!lw_core_owned())
		return lw_fail(-EPERM, "mk_lwip_set_ipv4 must be called inside mk_run, on the "
		                       "thread that attached the device");
	if (!parse_ipv4(address, &ip, &prefix))
		return lw_fail(-EINVAL,
		               "mk_lwip_set_ipv4: '%.64s' is not an IPv4 address: write A.B.C.D or "
		               "A.B.C.D/PREFIX with a prefix from 1 to 30, e.g. 10.0.0.2/24",
		               address);
	if (gateway != NULL && !parse_ipv4(gateway, &gw, NULL))
		return lw_fail(-EINVAL,
		               "mk_lwip_set_ipv4: gateway '%.64s' is not an IPv4 address: write "
		               "A.B.C.D, or pass NULL for none",
		               gateway);
	ip4_addr_t a, m, g;
	ip4_addr_set_u32(&a, ip);
	ip4_addr_set_u32(&m, htonl(~0u << (32 - prefix)));
	ip4_addr_set_u32(&g, gw);
	netif_set_addr(&l->netif, &a, &m, &g);
	lw_timers_changed();
	return 0;
}

int mk_lwip_ipv4(const mk_lwip *l, char *buf, size_t size)
{
	char a[INET_ADDRSTRLEN];

	if (l == NULL || buf == NULL)
		return -EINVAL;
	uint32_t ip = ip4_addr_get_u32(netif_ip4_addr(&l->netif));
	uint32_t mask = ntohl(ip4_addr_get_u32(netif_ip4_netmask(&l->netif)));
	if (ip == 0)
		return -EADDRNOTAVAIL;
	inet_ntop(AF_INET, &ip, a, sizeof(a));
	int n = snprintf(buf, size, "%s/%d", a, __builtin_popcount(mask));
	return n < 0 || (size_t)n >= size ? -EINVAL : n;
}

int mk_lwip_stats(const mk_lwip *l, struct mk_lwip_stats *out)
{
	if (l == NULL || out == NULL)
		return -EINVAL;
	*out = l->stats;
	lw_core_stats(out);
	return 0;
}
