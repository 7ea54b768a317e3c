/* One end of a TAP as each benchmarked implementation drives it, behind the same three calls, so
 * that a workload is written once and run on mkhost and on every baseline:
 *
 *   mkhost  mk_net_read_bigstring / mk_net_write_bigstring, from a task inside mk_run
 *   read    a blocking descriptor: read(2) and write(2)
 *   epoll   a non-blocking descriptor: read(2) until EAGAIN, then epoll_wait(2)
 *   uring   io_uring: EP_URING_DEPTH reads kept in flight, writes queued and submitted with the
 *           next wait (TX: in batches of EP_URING_BATCH), one io_uring_enter(2) per wait
 *
 * The workload calls ep_recv, ep_send and ep_flush; ep_run starts it the way the implementation
 * needs (for mkhost, as the first task of mk_run). */
#ifndef MKBENCH_ENDPOINT_H
#define MKBENCH_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EP_URING_DEPTH 16
#define EP_URING_BATCH 32

/* EP_MKHOST_BATCH: mkhost with --tx-batch=64 (mk_config.tx_batch); EP_MKHOST_BUSYPOLL: with
 * busy_poll_us = 50; EP_MKHOST_RXRING: with MKHOST_URING_RX=ring (the receive ring). */
enum ep_impl {
	EP_MKHOST,
	EP_READ,
	EP_EPOLL,
	EP_URING,
	EP_MKHOST_BATCH,
	EP_MKHOST_BUSYPOLL,
	EP_MKHOST_RXRING
};

struct ep;

/* The implementation called (name), or exit with a message. */
enum ep_impl ep_impl_parse(const char *name);
const char *ep_impl_name(enum ep_impl impl);

/* Open (iface) with (impl) and run body(e, arg) with it; returns body's value. (busy_poll_us)
 * goes to mk_config for mkhost and is ignored by the baselines. */
int ep_run(enum ep_impl impl, const char *iface, unsigned busy_poll_us,
           int (*body)(struct ep *e, void *arg), void *arg);

/* The device's MAC for mkhost (random unless given), bench_mac_a for the baselines. */
const uint8_t *ep_mac(const struct ep *e);
/* The largest frame the device takes: mtu + 14. */
size_t ep_frame_max(const struct ep *e);

/* Receive one frame; (*frame) points at it until the next ep_recv. Returns its length, or a
 * negative errno value. */
ssize_t ep_recv(struct ep *e, uint8_t **frame);
/* Send one frame. (frame) must stay untouched until the next ep_recv or ep_flush (uring queues
 * the write). Returns 0 or a negative errno value. */
int ep_send(struct ep *e, const uint8_t *frame, size_t len);
/* Wait until every frame sent has been written. Returns 0, or the number of frames the kernel
 * refused. */
int ep_flush(struct ep *e);

#endif
