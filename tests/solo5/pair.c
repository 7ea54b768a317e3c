/* pair: two net devices, "a" and "b", joined by mkhost's in-process hub (run with
 * --net:a=hub:lan --net:b=hub:lan), so no privilege is needed. It checks what solo5_yield and
 * solo5_net_read promise with more than one device: the ready set names exactly the devices
 * with a frame, a frame wakes a waiting yield long before its deadline, frames come out in order
 * and SOLO5_R_AGAIN follows the last one; and the size checks of read and write. */
#include "solo5.h"
#include "util.h"

#define MS 1000000ull

static uint8_t frame[2048], got[2048];

static void make_frame(uint8_t mark, size_t len)
{
	t_fill(frame, 0xff, 6);                /* broadcast */
	t_fill(frame + 6, 0, 6);
	frame[6] = 2;
	frame[12] = 0x88, frame[13] = 0xb5;    /* a local experimental EtherType */
	t_fill(frame + 14, mark, len - 14);
}

/* solo5_net_read(), yielding until (deadline) while it says AGAIN: with --net-fault delays a
 * frame written a moment after another becomes due a moment later, so a burst may not be whole
 * at the first wake-up (under valgrind the writes are far apart). */
static solo5_result_t read_soon(solo5_handle_t h, size_t max, size_t *n, solo5_time_t deadline)
{
	solo5_result_t r;
	solo5_handle_set_t set;

	while ((r = solo5_net_read(h, got, max, n)) == SOLO5_R_AGAIN &&
	       solo5_clock_monotonic() < deadline)
		solo5_yield(deadline, &set);
	return r;
}

int main_checks(solo5_handle_t a, solo5_handle_t b, size_t mtu);
int main_checks(solo5_handle_t a, solo5_handle_t b, size_t mtu)
{
	solo5_handle_set_t set, bit_a = (solo5_handle_set_t)1 << a, bit_b = (solo5_handle_set_t)1 << b;
	solo5_time_t t0, t1;
	size_t n = 0, max = mtu + SOLO5_NET_HLEN;

	t_check(sizeof(got) >= max, "the test's buffers hold a frame");

	/* Nothing sent: the deadline ends the wait, and nothing is ready. */
	t0 = solo5_clock_monotonic();
	solo5_yield(t0 + 20 * MS, &set);
	t_check(solo5_clock_monotonic() >= t0 + 20 * MS, "an idle yield lasts until its deadline");
	t_check(set == 0, "an idle yield reports nothing");
	t_check(solo5_net_read(b, got, max, &n) == SOLO5_R_AGAIN, "an idle device reads AGAIN");

	/* One frame from a to b: b and only b is ready, well before the deadline. */
	make_frame(0x11, 100);
	t_check(solo5_net_write(a, frame, 100) == SOLO5_R_OK, "a frame is sent");
	t0 = solo5_clock_monotonic();
	solo5_yield(t0 + 5000 * MS, &set);
	t1 = solo5_clock_monotonic();
	t_check(t1 - t0 < 1000 * MS, "a frame ends the wait long before the deadline");
	t_check(set == bit_b, "the ready set names the receiving device alone");
	t_check(solo5_net_read(b, got, max, &n) == SOLO5_R_OK && n == 100 && got[14] == 0x11 &&
	            got[99] == 0x11,
	        "the ready device gives the frame");
	t_check(solo5_net_read(b, got, max, &n) == SOLO5_R_AGAIN, "then AGAIN");
	t_check(solo5_net_read(a, got, max, &n) == SOLO5_R_AGAIN, "the sender has nothing");

	/* Frames sent while nobody yields: all of them, in order, then AGAIN. */
	for (uint8_t i = 0; i < 5; i++) {
		make_frame((uint8_t)(0x20 + i), 60 + i);
		t_check(solo5_net_write(a, frame, 60 + i) == SOLO5_R_OK, "a frame of a burst is sent");
	}
	t0 = solo5_clock_monotonic();
	solo5_yield(t0 + 5000 * MS, &set);
	t_check(set == bit_b, "a burst makes the receiver ready");
	for (uint8_t i = 0; i < 5; i++)
		t_check(read_soon(b, max, &n, t0 + 5000 * MS) == SOLO5_R_OK && n == 60u + i &&
		            got[14] == 0x20 + i,
		        "a burst arrives whole and in order");
	t_check(solo5_net_read(b, got, max, &n) == SOLO5_R_AGAIN, "AGAIN after the burst");

	/* Both ways at once: both are ready. */
	make_frame(0x31, 64);
	solo5_net_write(a, frame, 64);
	make_frame(0x32, 64);
	solo5_net_write(b, frame, 64);
	set = 0;
	t0 = solo5_clock_monotonic();
	while (set != (bit_a | bit_b) && solo5_clock_monotonic() < t0 + 5000 * MS) {
		solo5_handle_set_t s;
		solo5_yield(t0 + 5000 * MS, &s); /* at once while one is ready: bounded by time */
		set |= s;
	}
	t_check(set == (bit_a | bit_b), "frames both ways make both devices ready");
	t_check(solo5_net_read(a, got, max, &n) == SOLO5_R_OK && got[14] == 0x32, "a gets b's");
	t_check(solo5_net_read(b, got, max, &n) == SOLO5_R_OK && got[14] == 0x31, "b gets a's");

	/* Ping-pong: every frame wakes the other side's yield. */
	t0 = solo5_clock_monotonic();
	for (int i = 0; i < 400; i++) {
		solo5_handle_t from = (i & 1) ? b : a, to = (i & 1) ? a : b;
		make_frame((uint8_t)i, 80);
		solo5_net_write(from, frame, 80);
		solo5_yield(solo5_clock_monotonic() + 5000 * MS, &set);
		if (read_soon(to, max, &n, solo5_clock_monotonic() + 5000 * MS) != SOLO5_R_OK ||
		    got[14] != (uint8_t)i) {
			t_check(0, "every ping-pong frame arrives");
			break;
		}
	}
	t_check(solo5_clock_monotonic() - t0 < 5000 * MS, "400 ping-pong frames take no time");

	/* Sizes. */
	make_frame(0x41, max);
	t_check(solo5_net_write(a, frame, max) == SOLO5_R_OK, "a frame of mtu + 14 is sent");
	solo5_yield(solo5_clock_monotonic() + 5000 * MS, &set);
	t_check(solo5_net_read(b, got, max - 1, &n) == SOLO5_R_EINVAL,
	        "a read buffer below mtu + 14 is refused");
	t_check(solo5_net_read(b, got, max, &n) == SOLO5_R_OK && n == max,
	        "and the frame is still there for a big enough one");
	t_check(solo5_net_write(a, frame, max + 1) == SOLO5_R_EINVAL, "a frame over mtu + 14");
	t_check(solo5_net_write(a, frame, SOLO5_NET_HLEN - 1) == SOLO5_R_EINVAL,
	        "a frame without a whole Ethernet header");
	t_check(solo5_net_write(a, (const uint8_t *)0, 60) == SOLO5_R_EINVAL, "no buffer");
	t_check(solo5_net_read(a, (uint8_t *)0, max, &n) == SOLO5_R_EINVAL, "no read buffer");
	t_check(solo5_net_read(a, got, max, (size_t *)0) == SOLO5_R_EINVAL, "no read size");
	return t_failures;
}

int solo5_app_main(const struct solo5_start_info *si)
{
	struct solo5_net_info ia, ib;
	solo5_handle_t a, b;
	(void)si;

	if (solo5_net_acquire("a", &a, &ia) != SOLO5_R_OK ||
	    solo5_net_acquire("b", &b, &ib) != SOLO5_R_OK) {
		t_puts("pair: run with --net:a=hub:lan --net:b=hub:lan\n");
		return SOLO5_EXIT_FAILURE;
	}
	t_check(a != b, "two devices, two handles");
	t_check(ia.mtu == ib.mtu, "one hub, one MTU");
	if (main_checks(a, b, ia.mtu) == 0)
		t_puts("pair: ok\n");
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
