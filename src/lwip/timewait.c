/* TIME_WAIT as Linux handles it: a newer SYN replaces the entry, and the entries are bounded.
 *
 * lwIP 2.1 answers a SYN that matches a connection in TIME_WAIT with an ACK (or a RST when its
 * sequence number falls in the old window), and keeps the entry for 2 * TCP_MSL (120 s in
 * Debian's build). A Linux client that reuses the port within those 120 s, as one making
 * thousands of short connections does, gets that ACK instead of a SYN-ACK, answers it with a RST
 * that TIME_WAIT ignores (RFC 1337), and retries its SYN after 1, 2, 4 ... s: the client stalls.
 * Linux's own TIME_WAIT accepts a SYN whose sequence number is after the last one received
 * (RFC 1122 4.2.2.13; RFC 6191 does it with timestamps): the old entry goes and the SYN opens a
 * new connection. lw_tw_before_input does that, before lwIP sees the SYN.
 *
 * The entries are also bounded, as Linux's net.ipv4.tcp_max_tw_buckets does: Debian's lwIP
 * allocates connections with malloc (MEMP_MEM_MALLOC), so nothing limits them, and lwIP walks the
 * TIME_WAIT list for every segment that matches no active connection and on every slow timer
 * tick (twice a second). At a few thousand connections a second, 120 s make hundreds of
 * thousands of entries, and those walks become most of the work. Replacing on SYN does not bound
 * them (clients rarely reuse a port that soon); the bound alone does not stop the stall (the
 * reused port may well be among the entries kept). lw_tw_after_input drops the oldest entries
 * beyond the limit (allowing 1/16 more between two cuts); lwIP adds an entry at the head of the
 * list, so the oldest are at its tail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "glue.h"

uint64_t lw_tw_replaced, lw_tw_dropped;

static unsigned tw_max = 4096;
static struct tcp_pcb *tw_head; /* tcp_tw_pcbs when last seen */
static unsigned tw_bound;       /* an upper bound of the entries: one more per new head */

int mk_lwip_set_time_wait_max(unsigned max)
{
	if (max < 1 || max > 1048576)
		return lw_fail(-EINVAL,
		               "mk_lwip_set_time_wait_max: %u is out of range: give 1 to 1048576 "
		               "(Linux's tcp_max_tw_buckets is often 4096 to 262144)",
		               max);
	tw_max = max;
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void lw_tw_before_input(const uint8_t *f, size_t len)
{
	if (tcp_tw_pcbs == NULL || len < 14 + 20 + 20 || be16(f + 12) != 0x0800)
		return;
	const uint8_t *ip = f + 14;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 6 || (be16(ip + 6) & 0x3fff) != 0 ||
	    len < 14 + ihl + 20)
		return;
	const uint8_t *tcp = ip + ihl;
	uint8_t flags = tcp[13];
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
		return;
	uint32_t src, dst;
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	uint16_t sport = be16(tcp), dport = be16(tcp + 2);
	uint32_t seq = be32(tcp + 4);

	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next) {
		if (pcb->local_port != dport || pcb->remote_port != sport ||
		    !IP_IS_V4_VAL(pcb->remote_ip) ||
		    ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip)) != src ||
		    ip4_addr_get_u32(ip_2_ip4(&pcb->local_ip)) != dst)
			continue;
		if (TCP_SEQ_GT(seq, pcb->rcv_nxt)) {
			bool head = pcb == tw_head;
			tcp_abort(pcb); /* in TIME_WAIT: unlinked and freed, nothing sent */
			lw_tw_replaced++;
			/* Keep the head pointer valid: a new entry malloc'd at the freed address
			 * must not look like the old head. */
			if (head)
				tw_head = tcp_tw_pcbs;
			if (tw_bound > 0)
				tw_bound--;
		}
		return;
	}
}

void lw_tw_after_input(void)
{
	if (tcp_tw_pcbs == tw_head)
		return;
	/* A segment moves at most one connection into TIME_WAIT; entries that expired meanwhile
	 * make the bound too high, and the walk below corrects it. The list is cut in batches
	 * (at 1/16 above the limit, back to the limit), so that a server at the limit walks it
	 * once every few hundred connections rather than for each. */
	tw_head = tcp_tw_pcbs;
	if (tw_head == NULL) {
		tw_bound = 0;
		return;
	}
	if (++tw_bound <= tw_max + tw_max / 16)
		return;
	unsigned n = 0;
	struct tcp_pcb *last_kept = NULL;
	for (struct tcp_pcb *pcb = tcp_tw_pcbs; pcb != NULL; pcb = pcb->next)
		if (++n == tw_max)
			last_kept = pcb;
	tw_bound = n;
	if (last_kept == NULL)
		return;
	/* Unlink the oldest at once and free them as tcp_abort frees an entry in TIME_WAIT
	 * (tcp_pcb_remove, then tcp_free), without its walk from the head for each: an entry in
	 * TIME_WAIT holds no segment, and no callback of the program. */
	struct tcp_pcb *pcb = last_kept->next;
	last_kept->next = NULL;
	while (pcb != NULL) {
		struct tcp_pcb *next = pcb->next;
		pcb->state = CLOSED;
		pcb->local_port = 0;
		tcp_free(pcb);
		pcb = next;
		lw_tw_dropped++;
		tw_bound--;
	}
}
