/* absent: acquiring devices that were not given. Solo5 answers SOLO5_R_EINVAL, as for a name
 * outside the manifest. Run with --net:service0=... to also check that a net device is not a
 * block device, and that a device cannot be acquired twice. */
#include "solo5.h"
#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
	solo5_handle_t h = 12345;
	struct solo5_net_info ni;
	struct solo5_block_info bi;
	uint8_t frame[64];
	size_t n;

	t_check(solo5_net_acquire("nosuchnet", &h, &ni) == SOLO5_R_EINVAL,
	        "an absent net device is refused");
	t_check(solo5_block_acquire("nosuchblock", &h, &bi) == SOLO5_R_EINVAL,
	        "an absent block device is refused");
	t_check(h == 12345, "a refused acquire leaves the handle alone");
	t_check(solo5_net_read(0, frame, sizeof(frame), &n) == SOLO5_R_EINVAL,
	        "a handle never given out is refused");
	t_check(solo5_block_read(7, 0, frame, 64) == SOLO5_R_EINVAL,
	        "a handle never given out is refused by block calls");

	if (t_streq(si->cmdline, "given")) {
		t_check(solo5_block_acquire("service0", &h, &bi) == SOLO5_R_EINVAL,
		        "a net device is not a block device");
		t_check(solo5_net_acquire("service0", &h, &ni) == SOLO5_R_OK,
		        "the given net device is acquired");
		t_check(solo5_net_acquire("service0", &h, &ni) == SOLO5_R_EINVAL,
		        "a net device is acquired once only");
		t_check(solo5_block_read(h, 0, frame, 64) == SOLO5_R_EINVAL,
		        "a net handle is not a block handle");
	}
	if (t_failures == 0)
		t_puts("absent: ok\n");
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
