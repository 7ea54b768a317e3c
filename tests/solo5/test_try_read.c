/* mk_net_try_read, the call the Solo5 layer polls the net devices with (public since issue 11): it
 * reads a waiting frame without ever suspending, says -EAGAIN when there is none, counts like any
 * read, and shares a device with a task parked in mk_net_read_bigstring without stealing its
 * wake-up. On a TAP in a private network namespace; skips without root. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "testlib.h"

#define TAP       "ttr0"
#define FRAME_LEN 60

static int sock = -1; /* an AF_PACKET socket on the TAP: what it sends, mkhost reads */

static void send_frame(uint8_t mark)
{
	uint8_t f[FRAME_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5};

	memset(f + 14, mark, sizeof(f) - 14);
	ck_assert_int_eq(write(sock, f, sizeof(f)), sizeof(f));
}

struct reader {
	mk_net *net;
	uint8_t buf[2048];
	ssize_t got;
};

static intptr_t read_one(void *arg)
{
	struct reader *r = arg;

	r->got = mk_net_read_bigstring(r->net, r->buf, sizeof(r->buf), 0, sizeof(r->buf));
	return 0;
}

/* mk_net_try_read, retried for up to 100 ms: the kernel may take a moment to pass a frame
 * from the packet socket to the TAP. The thread sleeps; the task never suspends. */
static ssize_t try_read_soon(mk_net *n, uint8_t *buf)
{
	ssize_t r = -EAGAIN;

	for (int i = 0; i < 100 && r == -EAGAIN; i++) {
		r = mk_net_try_read(n, buf, 2048, 0, 2048);
		if (r == -EAGAIN)
			usleep(1000);
	}
	return r;
}

static intptr_t set_flag(void *arg)
{
	*(int *)arg = 1;
	return 0;
}

static int try_read_main(int argc, char **argv, void *arg)
{
	struct mk_net_config cfg;
	struct mk_net_stats st;
	struct reader r = {0};
	uint8_t buf[2048];
	mk_task *t;
	int ran = 0;
	(void)argc, (void)argv, (void)arg;

	ck_assert_int_eq(mk_net_connect("svc", &r.net, &cfg), 0);
	ck_assert_uint_le(cfg.mtu + 14, sizeof(buf));

	/* Nothing waiting: -EAGAIN, and no other task ran meanwhile. */
	ck_assert_int_eq(mk_task_spawn(&t, "flag", set_flag, &ran), 0);
	ck_assert_int_eq(mk_net_try_read(r.net, buf, sizeof(buf), 0, sizeof(buf)), -EAGAIN);
	ck_assert_int_eq(ran, 0);
	ck_assert_int_eq(mk_task_await(t, NULL), 0);
	ck_assert_int_eq(ran, 1);

	/* The kernel drops what is sent before it has noticed the carrier of a TAP just attached
	 * (up to a second later): send until one frame gets through, then start counting. */
	for (int i = 0; i < 30; i++) {
		send_frame(0);
		if (try_read_soon(r.net, buf) == FRAME_LEN)
			break;
	}
	while (try_read_soon(r.net, buf) != -EAGAIN)
		;
	ck_assert_int_eq(mk_net_stats(r.net, &st), 0);
	uint64_t frames0 = st.rx_frames, bytes0 = st.rx_bytes;

	/* Frames waiting: one per call, in order, counted; then -EAGAIN again. */
	send_frame(0xa1);
	send_frame(0xa2);
	ck_assert_int_eq(try_read_soon(r.net, buf), FRAME_LEN);
	ck_assert_uint_eq(buf[14], 0xa1);
	ck_assert_int_eq(try_read_soon(r.net, buf), FRAME_LEN);
	ck_assert_uint_eq(buf[14], 0xa2);
	ck_assert_int_eq(mk_net_try_read(r.net, buf, sizeof(buf), 0, sizeof(buf)), -EAGAIN);
	ck_assert_int_eq(mk_net_stats(r.net, &st), 0);
	ck_assert_uint_eq(st.rx_frames, frames0 + 2);
	ck_assert_uint_eq(st.rx_bytes, bytes0 + 2 * FRAME_LEN);

	/* A reader parked on the device: a frame taken by try_read is not delivered to it, and it
	 * still wakes for the next one. */
	ck_assert_int_eq(mk_task_spawn(&t, "reader", read_one, &r), 0);
	ck_assert_int_eq(mk_sleep(20 * 1000000), 0);
	ck_assert_int_eq(r.got, 0); /* parked */
	send_frame(0xb1);
	ck_assert_int_eq(try_read_soon(r.net, buf), FRAME_LEN);
	ck_assert_uint_eq(buf[14], 0xb1);
	ck_assert_int_eq(mk_sleep(20 * 1000000), 0);
	ck_assert_int_eq(r.got, 0); /* woken, found nothing, parked again */
	send_frame(0xb2);
	ck_assert_int_eq(mk_task_await(t, NULL), 0);
	ck_assert_int_eq(r.got, FRAME_LEN);
	ck_assert_uint_eq(r.buf[14], 0xb2);
	ck_assert_int_eq(mk_net_try_read(r.net, buf, sizeof(buf), 0, sizeof(buf)), -EAGAIN);
	return 0;
}

START_TEST(try_read)
{
	ck_assert_int_eq(mkt_run(try_read_main, NULL, "--net:svc=" TAP, NULL), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("solo5-try-read");
	TCase *tc = tcase_create("try_read");
	SRunner *sr;
	int failed;

	mkt_enter_netns();
	/* Only our frames on the TAP: no IPv6 chatter from the kernel. */
	mkt_sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1");
	mkt_sh("sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1");
	if (mkt_tap_create(TAP, 0, 1) != 0 || (sock = mkt_packet_socket(TAP, 2000)) < 0) {
		fprintf(stderr, "cannot set up the TAP " TAP "\n");
		return 1;
	}

	tcase_add_test(tc, try_read);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	mkt_tap_delete(TAP);
	return failed ? 1 : 0;
}
