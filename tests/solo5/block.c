/* block: write every sector of the block device "storage", read it back, move several sectors at
 * once, and check that misaligned and out-of-range transfers are refused and change nothing.
 *
 * cmdline: "CAPACITY SECTOR", what the device is expected to report. It leaves sector i filled
 * with the byte (7 * i + 1) & 255, except sectors 1 and 2, filled with 0xa5 and 0x5a, for the
 * runner to look at. */
#include "solo5.h"
#include "util.h"

static uint64_t number(const char **s)
{
	uint64_t v = 0;
	while (**s == ' ')
		(*s)++;
	while (**s >= '0' && **s <= '9')
		v = v * 10 + (uint64_t)(*(*s)++ - '0');
	return v;
}

static uint8_t pattern(uint64_t sector)
{
	return (uint8_t)(7 * sector + 1);
}

int solo5_app_main(const struct solo5_start_info *si)
{
	const char *p = si->cmdline;
	uint64_t want_capacity = number(&p), want_sector = number(&p);
	struct solo5_block_info info;
	solo5_handle_t h, h2;
	uint8_t *buf = (uint8_t *)si->heap_start, *check;
	size_t n;

	if (solo5_block_acquire("storage", &h, &info) != SOLO5_R_OK) {
		t_puts("block: cannot acquire storage\n");
		return SOLO5_EXIT_FAILURE;
	}
	t_check(info.capacity == want_capacity, "the capacity is the file's size");
	t_check(info.block_size == want_sector, "the block size is the sector size");
	if (info.capacity != want_capacity || info.block_size != want_sector ||
	    si->heap_size < 2 * info.capacity)
		return SOLO5_EXIT_FAILURE;
	check = buf + info.capacity;

	uint64_t bs = info.block_size, sectors = info.capacity / bs;

	/* One sector at a time. */
	for (uint64_t i = 0; i < sectors; i++) {
		t_fill(buf, pattern(i), bs);
		t_check(solo5_block_write(h, i * bs, buf, bs) == SOLO5_R_OK, "a sector is written");
	}
	for (uint64_t i = 0; i < sectors; i++) {
		t_fill(buf, pattern(i), bs);
		t_fill(check, 0, bs);
		t_check(solo5_block_read(h, i * bs, check, bs) == SOLO5_R_OK, "a sector is read");
		t_check(t_same(buf, check, bs), "a sector reads back as written");
	}

	/* Several sectors in one call. */
	t_fill(buf, 0xa5, bs);
	t_fill(buf + bs, 0x5a, bs);
	t_check(solo5_block_write(h, bs, buf, 2 * bs) == SOLO5_R_OK, "two sectors are written");
	t_check(solo5_block_read(h, 0, check, info.capacity) == SOLO5_R_OK,
	        "the whole device is read in one call");
	t_check(check[0] == pattern(0) && check[bs] == 0xa5 && check[2 * bs - 1] == 0xa5 &&
	            check[2 * bs] == 0x5a && check[3 * bs - 1] == 0x5a &&
	            check[3 * bs] == pattern(3) && check[info.capacity - 1] == pattern(sectors - 1),
	        "two sectors read back as written, and their neighbours are untouched");

	/* Refused: nothing moves. */
	t_fill(buf, 0xee, 2 * bs);
	t_fill(check, 0xcc, 2 * bs);
	t_check(solo5_block_write(h, 1, buf, bs) == SOLO5_R_EINVAL, "a misaligned offset");
	t_check(solo5_block_write(h, bs / 2, buf, bs) == SOLO5_R_EINVAL, "half a sector in");
	t_check(solo5_block_write(h, 0, buf, bs - 1) == SOLO5_R_EINVAL, "a size below a sector");
	t_check(solo5_block_write(h, 0, buf, bs + 1) == SOLO5_R_EINVAL, "a size not in sectors");
	t_check(solo5_block_write(h, 0, buf, 0) == SOLO5_R_EINVAL, "an empty write");
	t_check(solo5_block_write(h, info.capacity, buf, bs) == SOLO5_R_EINVAL,
	        "a write at the end of the device");
	t_check(solo5_block_write(h, info.capacity - bs, buf, 2 * bs) == SOLO5_R_EINVAL,
	        "a write that runs past the end");
	t_check(solo5_block_write(h, ~(uint64_t)0 - bs + 1, buf, 2 * bs) == SOLO5_R_EINVAL,
	        "an offset that wraps around");
	t_check(solo5_block_write(h, 0, (const uint8_t *)0, bs) == SOLO5_R_EINVAL, "no buffer");
	t_check(solo5_block_read(h, 1, check, bs) == SOLO5_R_EINVAL, "a misaligned read");
	t_check(solo5_block_read(h, 0, check, bs - 1) == SOLO5_R_EINVAL, "a short read");
	t_check(solo5_block_read(h, info.capacity, check, bs) == SOLO5_R_EINVAL,
	        "a read at the end of the device");
	t_check(solo5_block_read(h, info.capacity - bs, check, 2 * bs) == SOLO5_R_EINVAL,
	        "a read that runs past the end");
	t_check(check[0] == 0xcc && check[2 * bs - 1] == 0xcc, "a refused read leaves the buffer");
	t_check(solo5_block_read(h + 1, 0, check, bs) == SOLO5_R_EINVAL, "a handle not given out");
	t_check(solo5_net_read(h, check, 2 * bs, &n) == SOLO5_R_EINVAL,
	        "a block handle is not a net handle");
	t_check(solo5_block_acquire("storage", &h2, &info) == SOLO5_R_EINVAL,
	        "a block device is acquired once only");
	t_check(solo5_block_read(h, 0, check, info.capacity) == SOLO5_R_OK &&
	            check[0] == pattern(0) && check[bs] == 0xa5 && check[2 * bs] == 0x5a &&
	            check[info.capacity - 1] == pattern(sectors - 1),
	        "the refused writes changed nothing");

	if (t_failures == 0)
		t_puts("block: ok\n");
	return t_failures ? SOLO5_EXIT_FAILURE : SOLO5_EXIT_SUCCESS;
}
