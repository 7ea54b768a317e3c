/* Block devices over files: patterns written and read back, a known file against its digests,
 * every bad argument, connect errors, read-only files, 10,000 scheduled operations from 100
 * tasks, cancellation in flight, and a writer killed in the middle of a stream.
 *
 * The suite runs on both event-loop backends (meson runs it with MKHOST_BACKEND=io_uring and
 * =epoll), so the epoll fallback does every scheduled read, write and flush here too.
 *
 * Files live in a directory made by main() under $TMPDIR (or /tmp) and removed at the end.
 * Checks made inside tasks record their first failure in (mkt_failed) instead of calling ck_assert:
 * Check's assertions longjmp in CK_FORK=no mode, and a longjmp from a task stack to the test's
 * stack is undefined. Every test asserts (mkt_failed) is empty once mk_run has returned. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mkhost.h"
#include "testlib.h"

#define ASSERT_NO_FAILURE() ck_assert_msg(mkt_failed[0] == '\0', "%s", mkt_failed)

/* ---------------------------------------------------------------------------------------- */
/*  Files and their contents                                                                 */
/* ---------------------------------------------------------------------------------------- */

static char dir[256]; /* the suite's temporary directory */

static const char *path_of(const char *name)
{
	static char paths[4][PATH_MAX];
	static int next;
	char *p = paths[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	return p;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The content of sector (sector) in generation (gen): its first 8 bytes are (gen), the next 8
 * (sector), and every other byte depends on both, so a sector mixed from two writes never
 * passes for either of them. (n) is a multiple of 8. */
static void pattern(uint8_t *p, size_t n, uint64_t gen, uint64_t sector)
{
	memcpy(p, &gen, 8);
	memcpy(p + 8, &sector, 8);
	for (size_t j = 16; j < n; j += 8) {
		uint64_t w = mix(gen * 0x100000001b3ull ^ sector << 24 ^ j);
		memcpy(p + j, &w, 8);
	}
}

/* Whether (p) is the pattern of (sector) in some generation; stores that generation. */
static bool pattern_valid(const uint8_t *p, size_t n, uint64_t sector, uint64_t *gen)
{
	uint8_t want[65536];

	memcpy(gen, p, 8);
	pattern(want, n, *gen, sector);
	return memcmp(p, want, n) == 0;
}

/* Create (path) with (size) bytes: the pattern of generation (gen) in every (sector)-byte
 * sector, or zeros when sector is 0. Returns the path. */
static const char *make_file(const char *path, size_t size, size_t sector, uint64_t gen)
{
	uint8_t *buf = calloc(1, size ? size : 1);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0 && buf != NULL, "create %s: %s", path, strerror(errno));
	for (size_t off = 0; sector != 0 && off + sector <= size; off += sector)
		pattern(buf + off, sector, gen, off / sector);
	ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
	return path;
}

/* FNV-1a, 64 bits. */
static uint64_t fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t file_digest(const char *path)
{
	uint8_t buf[65536];
	uint64_t h = 0xcbf29ce484222325ull;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			h ^= buf[i];
			h *= 0x100000001b3ull;
		}
	close(fd);
	return h;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static void read_whole(const char *path, uint8_t *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
}

/* mk_run with --block:disk=PATH and, when (sector) is not 0, its sector size. */
static int run_disk(mk_main_fn fn, void *arg, const char *path, unsigned sector)
{
	char dev[PATH_MAX + 16], size[64];

	snprintf(dev, sizeof(dev), "--block:disk=%s", path);
	snprintf(size, sizeof(size), "--block-sector-size:disk=%u", sector);
	mkt_failed[0] = '\0';
	if (sector == 0)
		return mkt_run(fn, arg, dev, NULL);
	return mkt_run(fn, arg, dev, size, NULL);
}

static mk_block *connect_disk(void)
{
	mk_block *b = NULL;
	int err = mk_block_connect("disk", &b);

	if (err != 0)
		mkt_failf(__LINE__, "connect: %s: %s", mk_strerror(err), mk_last_error());
	return b;
}

static bool stats_eq(const struct mk_block_stats *a, const struct mk_block_stats *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/*  Patterns written and read back                                                           */
/* ---------------------------------------------------------------------------------------- */

static const unsigned sector_sizes[] = {512, 4096, 65536};
#define DISK_SECTORS 16

struct roundtrip {
	unsigned sector;
};

static int roundtrip_main(int argc, char **argv, void *arg)
{
	struct roundtrip *rt = arg;
	size_t ss = rt->sector;
	mk_block *b = connect_disk();
	uint8_t *buf = malloc(ss + 3), *want = malloc(ss);
	struct mk_block_stats st;

	if (b == NULL)
		return 1;
	CHECK_INT(mk_block_sector_size(b), ==, ss);
	CHECK_INT(mk_block_length(b), ==, DISK_SECTORS * ss);
	CHECK_INT(mk_block_read_only(b), ==, 0);
	CHECK(strcmp(mk_block_name(b), "disk") == 0);
	/* Every sector: atomic write, scheduled read; then scheduled write, atomic read; each
	 * through a buffer offset by 3 bytes, so (off) is honoured in both directions. */
	for (uint64_t s = 0; s < DISK_SECTORS; s++) {
		pattern(want, ss, 1, s);
		memcpy(buf + 3, want, ss);
		CHECK_INT(mk_block_atomic_write(b, s * ss, buf, ss + 3, 3), ==, 0);
		memset(buf, 0, ss + 3);
		CHECK_INT(mk_block_read(b, s * ss, buf, ss + 3, 3), ==, 0);
		CHECK(memcmp(buf + 3, want, ss) == 0);
		CHECK(buf[0] == 0 && buf[1] == 0 && buf[2] == 0);
	}
	for (uint64_t s = 0; s < DISK_SECTORS; s++) {
		pattern(want, ss, 2, s);
		memcpy(buf, want, ss);
		CHECK_INT(mk_block_write(b, s * ss, buf, ss + 3, 0), ==, 0);
		memset(buf, 0, ss + 3);
		CHECK_INT(mk_block_atomic_read(b, s * ss, buf, ss + 3, 0), ==, 0);
		CHECK(memcmp(buf, want, ss) == 0);
	}
	CHECK_INT(mk_block_flush(b), ==, 0);
	CHECK_INT(mk_block_stats(b, &st), ==, 0);
	CHECK_INT(st.read_ops, ==, 2 * DISK_SECTORS);
	CHECK_INT(st.write_ops, ==, 2 * DISK_SECTORS);
	CHECK_INT(st.read_bytes, ==, 2 * DISK_SECTORS * ss);
	CHECK_INT(st.write_bytes, ==, 2 * DISK_SECTORS * ss);
	CHECK_INT(st.flush_ops, ==, 1);
	free(buf);
	free(want);
	return 0;
}

START_TEST(patterns_round_trip)
{
	struct roundtrip rt = {sector_sizes[_i]};
	char name[64];
	size_t size = DISK_SECTORS * (size_t)rt.sector;

	snprintf(name, sizeof(name), "roundtrip-%u", rt.sector);
	const char *path = make_file(path_of(name), size, 0, 0);
	ck_assert_int_eq(run_disk(roundtrip_main, &rt, path, rt.sector), 0);
	ASSERT_NO_FAILURE();
	/* What the library wrote is in the file, seen from outside. */
	uint8_t *got = malloc(size), *want = malloc(rt.sector);
	read_whole(path, got, size);
	for (size_t s = 0; s < DISK_SECTORS; s++) {
		pattern(want, rt.sector, 2, s);
		ck_assert_msg(memcmp(got + s * rt.sector, want, rt.sector) == 0, "sector %zu", s);
	}
	ck_assert_int_eq(file_size(path), (off_t)size);
	free(got);
	free(want);
	unlink(path);
}
END_TEST

/* The default sector size is 512. */
static int default_sector_main(int argc, char **argv, void *arg)
{
	mk_block *b = connect_disk();

	if (b != NULL)
		CHECK_INT(mk_block_sector_size(b), ==, 512);
	return 0;
}

START_TEST(default_sector_size)
{
	const char *path = make_file(path_of("default"), 4096, 0, 0);

	ck_assert_int_eq(run_disk(default_sector_main, NULL, path, 0), 0);
	ASSERT_NO_FAILURE();
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  A known file against its digests                                                        */
/* ---------------------------------------------------------------------------------------- */

#define KNOWN_SECTORS 64

/* The known file: bytes of a xorshift64 stream from a fixed seed. */
static void known_content(uint8_t *p, size_t n)
{
	uint64_t x = 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

struct known {
	unsigned sector;
	uint64_t digest[KNOWN_SECTORS];
};

static int known_main(int argc, char **argv, void *arg)
{
	struct known *k = arg;
	mk_block *b = connect_disk();
	uint8_t *buf = malloc(k->sector);

	if (b == NULL)
		return 1;
	/* Backwards, atomically, then forwards, scheduled: each sector matches its digest. */
	for (int s = KNOWN_SECTORS - 1; s >= 0; s--) {
		CHECK_INT(mk_block_atomic_read(b, (uint64_t)s * k->sector, buf, k->sector, 0), ==,
		          0);
		if (fnv1a(buf, k->sector) != k->digest[s])
			mkt_failf(__LINE__, "atomic read: sector %d does not match its digest", s);
	}
	for (int s = 0; s < KNOWN_SECTORS; s++) {
		CHECK_INT(mk_block_read(b, (uint64_t)s * k->sector, buf, k->sector, 0), ==, 0);
		if (fnv1a(buf, k->sector) != k->digest[s])
			mkt_failf(__LINE__, "scheduled read: sector %d does not match its digest",
			          s);
	}
	free(buf);
	return 0;
}

START_TEST(known_file_digests)
{
	/* The hash itself, against published FNV-1a test vectors. */
	ck_assert_uint_eq(fnv1a("", 0), 0xcbf29ce484222325ull);
	ck_assert_uint_eq(fnv1a("a", 1), 0xaf63dc4c8601ec8cull);
	ck_assert_uint_eq(fnv1a("foobar", 6), 0x85944171f73967e8ull);

	struct known k = {.sector = _i == 0 ? 512 : 4096};
	size_t size = (size_t)KNOWN_SECTORS * k.sector;
	uint8_t *content = malloc(size);
	known_content(content, size);
	for (int s = 0; s < KNOWN_SECTORS; s++)
		k.digest[s] = fnv1a(content + (size_t)s * k.sector, k.sector);

	/* The file is written here with plain write(2); the digests came from the generator. */
	const char *path = path_of(_i == 0 ? "known-512" : "known-4096");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, size), (ssize_t)size);
	close(fd);
	uint64_t before = file_digest(path);

	ck_assert_int_eq(run_disk(known_main, &k, path, k.sector), 0);
	ASSERT_NO_FAILURE();
	ck_assert_uint_eq(file_digest(path), before); /* reading wrote nothing */
	free(content);
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Bad arguments: -EINVAL, and nothing read or written                                      */
/* ---------------------------------------------------------------------------------------- */

#define BAD_SECTOR 512
#define BAD_LEN    (8 * BAD_SECTOR)
#define CANARY     0xa5

enum call { ATOMIC_READ, ATOMIC_WRITE, READ, WRITE };
static const char *const call_name[] = {"atomic_read", "atomic_write", "read", "write"};

static int call(enum call c, mk_block *b, uint64_t dev_off, void *buf, size_t size, size_t off)
{
	switch (c) {
	case ATOMIC_READ:
		return mk_block_atomic_read(b, dev_off, buf, size, off);
	case ATOMIC_WRITE:
		return mk_block_atomic_write(b, dev_off, buf, size, off);
	case READ:
		return mk_block_read(b, dev_off, buf, size, off);
	default:
		return mk_block_write(b, dev_off, buf, size, off);
	}
}

static int bad_args_main(int argc, char **argv, void *arg)
{
	mk_block *b = connect_disk();
	uint8_t buf[2 * BAD_SECTOR];
	struct mk_block_stats before, after;
	const struct {
		const char *what;
		bool null_block, null_buf;
		uint64_t dev_off;
		size_t size, off;
	} cases[] = {
	    {"NULL device", true, false, 0, sizeof(buf), 0},
	    {"NULL buffer", false, true, 0, sizeof(buf), 0},
	    {"unaligned offset", false, false, 1, sizeof(buf), 0},
	    {"offset half a sector", false, false, BAD_SECTOR / 2, sizeof(buf), 0},
	    {"offset at the end", false, false, BAD_LEN, sizeof(buf), 0},
	    {"offset past the end", false, false, 2 * BAD_LEN, sizeof(buf), 0},
	    {"offset near 2^64", false, false, UINT64_MAX - BAD_SECTOR + 1, sizeof(buf), 0},
	    {"buffer smaller than a sector", false, false, 0, BAD_SECTOR - 1, 0},
	    {"buffer offset past its size", false, false, 0, sizeof(buf), sizeof(buf) + 1},
	    {"sector does not fit after the offset", false, false, 0, sizeof(buf), BAD_SECTOR + 1},
	    {"buffer offset near 2^64", false, false, 0, sizeof(buf), SIZE_MAX},
	    {"empty buffer", false, false, 0, 0, 0},
	};

	if (b == NULL)
		return 1;
	CHECK_INT(mk_block_stats(b, &before), ==, 0);
	for (enum call c = ATOMIC_READ; c <= WRITE; c++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			memset(buf, CANARY, sizeof(buf));
			int r = call(c, cases[i].null_block ? NULL : b, cases[i].dev_off,
			             cases[i].null_buf ? NULL : buf, cases[i].size, cases[i].off);
			if (r != -EINVAL)
				mkt_failf(__LINE__, "%s, %s: %d, not -EINVAL", call_name[c],
				          cases[i].what, r);
			for (size_t j = 0; j < sizeof(buf); j++)
				if (buf[j] != CANARY) {
					mkt_failf(__LINE__, "%s, %s: the buffer was written",
					          call_name[c], cases[i].what);
					break;
				}
		}
	}
	CHECK_INT(mk_block_stats(b, &after), ==, 0);
	CHECK(stats_eq(&before, &after)); /* nothing was counted */
	/* The last sector and the last sector-sized piece of a buffer are fine. */
	CHECK_INT(mk_block_read(b, BAD_LEN - BAD_SECTOR, buf, sizeof(buf), BAD_SECTOR), ==, 0);
	CHECK_INT(mk_block_flush(NULL), ==, -EINVAL);
	CHECK_INT(mk_block_stats(NULL, &after), ==, -EINVAL);
	CHECK_INT(mk_block_stats(b, NULL), ==, -EINVAL);
	CHECK_INT(mk_block_stats(b, &after), ==, 0);
	CHECK_INT(after.read_ops, ==, before.read_ops + 1);
	CHECK_INT(after.write_ops, ==, 0);
	CHECK_INT(after.flush_ops, ==, 0);
	CHECK(mk_block_name(NULL) == NULL);
	CHECK_INT(mk_block_sector_size(NULL), ==, 0);
	CHECK_INT(mk_block_length(NULL), ==, 0);
	return 0;
}

START_TEST(bad_arguments)
{
	const char *path = make_file(path_of("bad-args"), BAD_LEN, BAD_SECTOR, 7);
	uint64_t before = file_digest(path);

	ck_assert_int_eq(run_disk(bad_args_main, NULL, path, BAD_SECTOR), 0);
	ASSERT_NO_FAILURE();
	ck_assert_uint_eq(file_digest(path), before);
	ck_assert_int_eq(file_size(path), BAD_LEN);
	unlink(path);
}
END_TEST

/* Outside mk_run, and scheduled calls from a hook (which is not a task), are refused. */
struct hook_calls {
	mk_block *b;
	mk_hook *h;
	int atomic, scheduled, flush;
	bool ran;
};

static void hook_fn(void *arg)
{
	struct hook_calls *hc = arg;
	uint8_t buf[512];

	hc->atomic = mk_block_atomic_read(hc->b, 0, buf, sizeof(buf), 0);
	hc->scheduled = mk_block_read(hc->b, 0, buf, sizeof(buf), 0);
	hc->flush = mk_block_flush(hc->b);
	hc->ran = true;
	mk_hook_remove(hc->h);
}

static int hook_main(int argc, char **argv, void *arg)
{
	struct hook_calls *hc = arg;

	hc->b = connect_disk();
	if (hc->b == NULL)
		return 1;
	hc->h = mk_hook_add(hook_fn, hc);
	while (!hc->ran)
		mk_sleep(1000000);
	CHECK_INT(hc->atomic, ==, 0); /* does not suspend: fine from a hook */
	CHECK_INT(hc->scheduled, ==, -EPERM);
	CHECK_INT(hc->flush, ==, -EPERM);
	return 0;
}

START_TEST(outside_a_task)
{
	struct hook_calls hc = {0};
	const char *path = make_file(path_of("hook"), 4096, 512, 1);
	mk_block *b = NULL;

	ck_assert_int_eq(mk_block_connect("disk", &b), -EPERM);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(run_disk(hook_main, &hc, path, 512), 0);
	ASSERT_NO_FAILURE();
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Connect errors                                                                           */
/* ---------------------------------------------------------------------------------------- */

struct connect_case {
	const char *name; /* the device connected */
	int err;          /* what connect returns */
	const char *says; /* a part of the sentence */
	bool twice;       /* connect twice; the second gives (err) */
};

static int connect_main(int argc, char **argv, void *arg)
{
	const struct connect_case *c = arg;
	mk_block *b = NULL;
	int err = mk_block_connect(c->name, &b);

	if (c->twice) {
		CHECK_INT(err, ==, 0);
		err = mk_block_connect(c->name, &b);
	}
	CHECK_INT(err, ==, c->err);
	if (!c->twice)
		CHECK(b == NULL);
	CHECK_HAS(mk_last_error(), c->name);
	CHECK_HAS(mk_last_error(), c->says);
	return 0;
}

static void expect_connect(const char *name, int err, const char *says, bool twice, ...)
{
	struct connect_case c = {name, err, says, twice};
	char *argv[16] = {"test"};
	int argc = 1;
	va_list ap;

	va_start(ap, twice);
	for (char *s; argc < 15 && (s = va_arg(ap, char *)) != NULL;)
		argv[argc++] = s;
	va_end(ap);
	argv[argc] = NULL;
	mkt_failed[0] = '\0';
	ck_assert_int_eq(mk_run(argc, argv, connect_main, &c), 0);
	ASSERT_NO_FAILURE();
}

static char *arg_for(const char *fmt, const char *value)
{
	static char bufs[4][PATH_MAX + 64];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, PATH_MAX + 64, fmt, value);
	return p;
}

START_TEST(connect_errors)
{
	const char *good = make_file(path_of("good"), 4096, 0, 0);
	const char *missing = path_of("missing");
	const char *empty = make_file(path_of("empty"), 0, 0, 0);
	const char *odd = make_file(path_of("odd"), 1000, 0, 0);
	uint64_t digest = file_digest(odd);

	expect_connect("disk", -ENOENT, "not on the command line", false, NULL);
	expect_connect("other", -ENOENT, "--block:other=FILE", false,
	               arg_for("--block:disk=%s", good), NULL);
	expect_connect("disk", -EEXIST, "2 times", false, arg_for("--block:disk=%s", good),
	               arg_for("--block:disk=%s", good), NULL);
	expect_connect("disk", -EALREADY, "already connected", true,
	               arg_for("--block:disk=%s", good), NULL);
	expect_connect("disk", -ENODEV, "does not exist", false,
	               arg_for("--block:disk=%s", missing), NULL);
	ck_assert_int_eq(access(missing, F_OK), -1); /* never created */
	expect_connect("disk", -EINVAL, "is empty", false, arg_for("--block:disk=%s", empty), NULL);
	expect_connect("disk", -EINVAL, "not a multiple of the sector size", false,
	               arg_for("--block:disk=%s", odd), NULL);
	ck_assert_int_eq(file_size(odd), 1000); /* never truncated */
	ck_assert_uint_eq(file_digest(odd), digest);
	/* 4096 bytes are eight 512-byte sectors but not a whole number of 65536-byte ones. */
	expect_connect("disk", -EINVAL, "(65536)", false, arg_for("--block:disk=%s", good),
	               "--block-sector-size:disk=65536", NULL);
	expect_connect("disk", -EINVAL, "directory", false, arg_for("--block:disk=%s", dir), NULL);
	expect_connect("disk", -EINVAL, "neither a regular file", false, "--block:disk=/dev/null",
	               NULL);
	/* A device whose file another program holds (two devices on one file: below). */
	int fd = open(good, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	expect_connect("disk", -EBUSY, "another program", false, arg_for("--block:disk=%s", good),
	               NULL);
	close(fd);
	unlink(good);
	unlink(empty);
	unlink(odd);
}
END_TEST

static int fifo_main(int argc, char **argv, void *arg)
{
	mk_block *b = NULL;

	CHECK_INT(mk_block_connect("disk", &b), ==, -EINVAL);
	CHECK_HAS(mk_last_error(), "is a FIFO, neither a regular file nor a block device");
	return 0;
}

/* Files that are not images are refused by what they are, with a fix that fits them; a file
 * whose opening does something (a terminal, a FIFO) is looked at and never opened. */
START_TEST(connect_special_files_unopened)
{
	const char *fifo = path_of("fifo");
	struct pollfd pfd = {.events = POLLIN};

	/* A FIFO's reader sees a hang-up once a writer has come and gone, and only then: opening
	 * the FIFO for writing would show. */
	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	pfd.fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(pfd.fd, 0);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	ck_assert_int_eq(run_disk(fifo_main, NULL, fifo, 0), 0);
	ck_assert_msg(poll(&pfd, 1, 0) == 0, "the FIFO was opened: its reader sees 0x%x",
	              pfd.revents);
	ASSERT_NO_FAILURE();
	close(pfd.fd);
	unlink(fifo);

	expect_connect("disk", -EINVAL, "'/dev/tty' is a character device", false,
	               "--block:disk=/dev/tty", NULL);
}
END_TEST

START_TEST(connect_kernel_files)
{
	/* A file of the kernel's that opens, claims 0 bytes and reads as text. */
	expect_connect("disk", -EINVAL, "kernel's proc file system", false,
	               "--block:disk=/proc/version", NULL);
	/* One that claims 4096 bytes, a whole number of sectors. */
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0)
		expect_connect("disk", -EINVAL, "kernel's sysfs file system", false,
		               "--block:disk=/sys/kernel/mm/transparent_hugepage/enabled", NULL);
}
END_TEST

/* A loop device with no file attached is a block device of size 0: the fix is losetup, not
 * truncate. */
static int loop_main(int argc, char **argv, void *arg)
{
	mk_block *b = NULL;

	CHECK_INT(mk_block_connect("disk", &b), ==, -EINVAL);
	CHECK_HAS(mk_last_error(), "loop device with no file attached");
	CHECK_HAS(mk_last_error(), "losetup ");
	CHECK(strstr(mk_last_error(), "truncate") == NULL);
	return 0;
}

START_TEST(connect_unattached_loop)
{
	char dev[64] = "", size[32];
	int n;

	/* An unattached loop device: of size 0, without the loop/ directory of an attached one. */
	for (n = 0; n < 256 && dev[0] == '\0'; n++) {
		char sys[64], attached[64];
		snprintf(sys, sizeof(sys), "/sys/block/loop%d/size", n);
		snprintf(attached, sizeof(attached), "/sys/block/loop%d/loop", n);
		FILE *f = fopen(sys, "r");
		if (f == NULL)
			continue;
		if (fgets(size, sizeof(size), f) != NULL && strcmp(size, "0\n") == 0 &&
		    access(attached, F_OK) != 0)
			snprintf(dev, sizeof(dev), "/dev/loop%d", n);
		fclose(f);
	}
	if (dev[0] == '\0' || access(dev, R_OK) != 0) {
		fprintf(stderr, "connect_unattached_loop: skipped: %s\n",
		        dev[0]
		            ? "no permission to open the loop devices (not root, not in group "
		              "disk)"
		            : "no unattached loop device on this machine (losetup -f finds none)");
		return;
	}
	mkt_failed[0] = '\0';
	ck_assert_int_eq(mkt_run(loop_main, NULL, arg_for("--block:disk=%s", dev), NULL), 0);
	ASSERT_NO_FAILURE();
}
END_TEST

/* Two devices on one file: the second finds it locked. */
static int two_devices_main(int argc, char **argv, void *arg)
{
	mk_block *a = NULL, *b = NULL;

	CHECK_INT(mk_block_connect("a", &a), ==, 0);
	CHECK_INT(mk_block_connect("b", &b), ==, -EBUSY);
	CHECK_HAS(mk_last_error(), "'b'");
	CHECK_INT(mk_block_connect(NULL, &b), ==, -EINVAL);
	CHECK_INT(mk_block_connect("a", NULL), ==, -EINVAL);
	return 0;
}

START_TEST(connect_same_file_twice)
{
	const char *path = make_file(path_of("shared"), 4096, 0, 0);

	mkt_failed[0] = '\0';
	ck_assert_int_eq(mkt_run(two_devices_main, NULL, arg_for("--block:a=%s", path),
	                         arg_for("--block:b=%s", path), NULL),
	                 0);
	ASSERT_NO_FAILURE();
	/* mk_run closed the device: the lock is gone. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	unlink(path);
}
END_TEST

START_TEST(bad_sector_size_argument)
{
	const char *path = make_file(path_of("sector-arg"), 4096, 0, 0);
	const char *bad[] = {"1000", "256", "0", "-512", "2097152", "4k", ""};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char opt[64];
		snprintf(opt, sizeof(opt), "--block-sector-size:disk=%s", bad[i]);
		mkt_failed[0] = '\0';
		/* The program never runs: connect_main would fail it. */
		ck_assert_int_eq(
		    mkt_run(connect_main, NULL, arg_for("--block:disk=%s", path), opt, NULL),
		    -EINVAL);
	}
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Read-only files                                                                          */
/* ---------------------------------------------------------------------------------------- */

static int read_only_main(int argc, char **argv, void *arg)
{
	const char *path = arg;
	mk_block *b = connect_disk();
	uint8_t buf[512], want[512];
	struct mk_block_stats st;

	if (b == NULL)
		return 1;
	CHECK_INT(mk_block_read_only(b), ==, 1);
	pattern(want, sizeof(want), 3, 1);
	CHECK_INT(mk_block_read(b, 512, buf, sizeof(buf), 0), ==, 0);
	CHECK(memcmp(buf, want, sizeof(buf)) == 0);
	CHECK_INT(mk_block_atomic_read(b, 512, buf, sizeof(buf), 0), ==, 0);
	memset(buf, 0, sizeof(buf));
	CHECK_INT(mk_block_atomic_write(b, 0, buf, sizeof(buf), 0), ==, -EROFS);
	CHECK_HAS(mk_last_error(), "read-only");
	CHECK_HAS(mk_last_error(), path);
	CHECK_HAS(mk_last_error(), "'disk'");
	CHECK_INT(mk_block_write(b, 0, buf, sizeof(buf), 0), ==, -EROFS);
	CHECK_HAS(mk_last_error(), "chmod u+w");
	/* Bad arguments are still reported first. */
	CHECK_INT(mk_block_write(b, 1, buf, sizeof(buf), 0), ==, -EINVAL);
	CHECK_INT(mk_block_flush(b), ==, 0);
	CHECK_INT(mk_block_stats(b, &st), ==, 0);
	CHECK_INT(st.write_ops, ==, 0);
	CHECK_INT(st.read_ops, ==, 2);
	return 0;
}

static int no_access_main(int argc, char **argv, void *arg)
{
	mk_block *b = NULL;

	CHECK_INT(mk_block_connect("disk", &b), ==, -EACCES);
	CHECK_HAS(mk_last_error(), "no permission");
	return 0;
}

/* Run (fn) on (path) as an unprivileged user: root ignores file permissions. Returns what the
 * run gave, or fails the test. */
static void run_unprivileged(mk_main_fn fn, const char *path)
{
	if (geteuid() != 0) {
		ck_assert_int_eq(run_disk(fn, (void *)path, path, 512), 0);
		ASSERT_NO_FAILURE();
		return;
	}
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
			fprintf(stderr, "cannot become nobody: %s\n", strerror(errno));
			_exit(2);
		}
		int r = run_disk(fn, (void *)path, path, 512);
		if (r != 0 || mkt_failed[0] != '\0') {
			fprintf(stderr, "as nobody: mk_run %d: %s\n", r, mkt_failed);
			_exit(1);
		}
		_exit(0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the unprivileged run failed");
}

START_TEST(read_only_file)
{
	const char *path = make_file(path_of("read-only"), 4096, 512, 3);
	uint64_t before = file_digest(path);

	ck_assert_int_eq(chmod(path, 0444), 0);
	run_unprivileged(read_only_main, path);
	ck_assert_uint_eq(file_digest(path), before);
	ck_assert_int_eq(chmod(path, 0000), 0);
	run_unprivileged(no_access_main, path);
	unlink(path);
}
END_TEST

/* A file truncated behind the program: reading past its new end fails with -EIO. */
static int truncated_main(int argc, char **argv, void *arg)
{
	const char *path = arg;
	mk_block *b = connect_disk();
	uint8_t buf[512];

	if (b == NULL)
		return 1;
	CHECK_INT(truncate(path, 2048), ==, 0);
	CHECK_INT(mk_block_length(b), ==, 4096); /* as connected */
	CHECK_INT(mk_block_atomic_read(b, 3072, buf, sizeof(buf), 0), ==, -EIO);
	CHECK_INT(mk_block_read(b, 3072, buf, sizeof(buf), 0), ==, -EIO);
	CHECK_INT(mk_block_read(b, 1024, buf, sizeof(buf), 0), ==, 0);
	return 0;
}

START_TEST(truncated_behind)
{
	const char *path = make_file(path_of("truncated"), 4096, 512, 1);

	ck_assert_int_eq(run_disk(truncated_main, (void *)path, path, 512), 0);
	ASSERT_NO_FAILURE();
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  A full file system                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* A test that cannot get what it needs from this machine passes with a line on stderr saying so;
 * under CI=true, where scripts/test runs as root, that is a failure. */
static void skip_test(const char *test, const char *why)
{
	const char *ci = getenv("CI");

	ck_assert_msg(ci == NULL || strcmp(ci, "true") != 0, "%s: %s (CI=true: a failure)", test,
	              why);
	fprintf(stderr, "%s: skipped: %s\n", test, why);
}

#define FULL_SECTOR  8192 /* two pages: a write into a hole can be cut between them */
#define FULL_SECTORS 16
#define FULL_FS_SIZE "512k"

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* In this (child) process: a mount namespace of its own, in a user namespace of its own when not
 * root, with a tmpfs of FULL_FS_SIZE on (mnt). 0, or -1 with errno. */
static int private_tmpfs(const char *mnt)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char map[64];

	if (uid == 0) {
		if (unshare(CLONE_NEWNS) != 0)
			return -1;
	} else {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
			return -1;
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		if (write_file("/proc/self/uid_map", map) != 0 ||
		    write_file("/proc/self/setgroups", "deny") != 0)
			return -1;
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		if (write_file("/proc/self/gid_map", map) != 0)
			return -1;
	}
	/* Nothing mounted here may show in the namespace the test runs in. (The kernel ignores the
	 * source and type of a propagation change; valgrind wants them to be strings.) */
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
		return -1;
	return mount("mkhost-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=" FULL_FS_SIZE);
}

/* Fill the file system of (path) with a file there until it is full; then, when (leave_a_page),
 * give back one page, so that a write of two pages into a hole gets its first page and not its
 * second. */
static int fill(const char *path, bool leave_a_page)
{
	static const char page[4096];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	off_t size = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while ((n = write(fd, page, sizeof(page))) > 0)
		size += n;
	if (n == 0 || errno != ENOSPC ||
	    (leave_a_page && ftruncate(fd, size - (off_t)sizeof(page)) != 0)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

struct full {
	const char *image, *filler;
	int err[FULL_SECTORS]; /* what each write returned */
};

static int full_main(int argc, char **argv, void *arg)
{
	struct full *f = arg;
	mk_block *b = connect_disk();
	uint8_t buf[FULL_SECTOR];

	if (b == NULL)
		return 1;
	/* The file system fills up after connect, as a program's disk fills while it runs. */
	if (fill(f->filler, true) != 0) {
		mkt_failf(__LINE__, "cannot fill the file system: %s", strerror(errno));
		return 1;
	}
	for (uint64_t s = 0; s < FULL_SECTORS; s++) {
		pattern(buf, sizeof(buf), 1, s);
		f->err[s] = s % 2 ? mk_block_atomic_write(b, s * FULL_SECTOR, buf, sizeof(buf), 0)
		                  : mk_block_write(b, s * FULL_SECTOR, buf, sizeof(buf), 0);
	}
	return 0;
}

/* Refused: too little room left for the holes. */
static int full_refused_main(int argc, char **argv, void *arg)
{
	mk_block *b = NULL;

	CHECK_INT(mk_block_connect("disk", &b), ==, -ENOSPC);
	CHECK(b == NULL);
	CHECK_HAS(mk_last_error(), "'disk'");
	CHECK_HAS(mk_last_error(), "sparse");
	CHECK_HAS(mk_last_error(), "free");
	CHECK_HAS(mk_last_error(), "--block-sector-size:disk=4096");
	return 0;
}

/* A sparse file of (size) bytes at (path), made anew. */
static int make_sparse(const char *path, off_t size)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	int r = fd < 0 ? -1 : ftruncate(fd, size);

	if (fd >= 0)
		close(fd);
	return r;
}

/* The child: both cases on a tmpfs of its own. What fails is written on stderr. */
static int full_child(void *arg)
{
	const char *mnt = arg;
	char image[PATH_MAX], filler[PATH_MAX];
	static uint8_t got[FULL_SECTORS * FULL_SECTOR], zero[FULL_SECTOR];
	struct full f = {image, filler, {0}};
	struct stat st;

	if (private_tmpfs(mnt) != 0) {
		fprintf(stderr, "no tmpfs of its own: %s\n", strerror(errno));
		return MKT_SKIP;
	}
	snprintf(image, sizeof(image), "%s/image", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);

	/* A sparse image on a file system with room: its holes are allocated at connect, so every
	 * write of an 8192-byte sector succeeds whole once the file system is full. */
	if (make_sparse(image, FULL_SECTORS * FULL_SECTOR) != 0)
		return 2;
	if (run_disk(full_main, &f, image, FULL_SECTOR) != 0 || mkt_failed[0] != '\0') {
		fprintf(stderr, "run on the full file system: %s\n", mkt_failed);
		return 1;
	}
	read_whole(image, got, FULL_SECTORS * FULL_SECTOR);
	for (uint64_t s = 0; s < FULL_SECTORS; s++) {
		uint64_t gen;
		bool whole = pattern_valid(got + s * FULL_SECTOR, FULL_SECTOR, s, &gen) ||
		             memcmp(got + s * FULL_SECTOR, zero, FULL_SECTOR) == 0;
		if (f.err[s] != 0 || !whole) {
			fprintf(stderr, "sector %llu: write %s, sector %s\n", (unsigned long long)s,
			        f.err[s] ? mk_strerror(f.err[s]) : "returned 0",
			        whole ? "whole" : "torn (part written)");
			return 1;
		}
	}

	/* The same image made sparse again, on the full file system: refused, and left sparse. */
	if (unlink(image) != 0 || truncate(filler, 0) != 0 ||
	    make_sparse(image, FULL_SECTORS * FULL_SECTOR) != 0 || fill(filler, true) != 0)
		return 2;
	if (run_disk(full_refused_main, NULL, image, FULL_SECTOR) != 0 || mkt_failed[0] != '\0') {
		fprintf(stderr, "connect on the full file system: %s\n", mkt_failed);
		return 1;
	}
	if (stat(image, &st) != 0 || st.st_blocks != 0 ||
	    st.st_size != FULL_SECTORS * FULL_SECTOR) {
		fprintf(stderr, "the refused image was changed: %lld blocks, %lld bytes\n",
		        (long long)st.st_blocks, (long long)st.st_size);
		return 1;
	}
	return 0;
}

/* Run (child) in a child process, given a mount point of its own (it mounts a tmpfs there with
 * private_tmpfs); the child returns 0, MKT_SKIP when it cannot mount, or else says on stderr what
 * failed. */
static void in_tmpfs(const char *test, int (*child)(void *))
{
	char mnt[PATH_MAX];
	struct mkt_captured c;

	snprintf(mnt, sizeof(mnt), "%s/%s", dir, test);
	ck_assert_int_eq(mkdir(mnt, 0755), 0);
	mkt_run_captured(STDERR_FILENO, child, mnt, &c);
	rmdir(mnt);
	if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == MKT_SKIP) {
		skip_test(test, c.text);
		return;
	}
	ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status 0x%x: %s",
	              c.status, c.text);
}

START_TEST(full_file_system)
{
	in_tmpfs("full_file_system", full_child);
}
END_TEST

/* examples/kv-store tells its own fullness from its file system's. */
#define KV_STORE MK_BUILD_DIR "/examples/kv-store"

/* Run kv-store on (image) with (command); its exit status, with what it wrote in (out). */
static int kv_store(const char *image, const char *command, char *out, size_t size)
{
	char cmd[2 * PATH_MAX + 128];
	size_t len = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' --block:disk='%s' -- %s 2>&1", KV_STORE, image, command);
	p = popen(cmd, "r");
	if (p == NULL)
		return -1;
	while (len + 1 < size && fgets(out + len, (int)(size - len), p) != NULL)
		len += strlen(out + len);
	out[len] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int kv_store_child(void *arg)
{
	const char *mnt = arg;
	char image[PATH_MAX], filler[PATH_MAX], out[1024];

	if (private_tmpfs(mnt) != 0) {
		fprintf(stderr, "no tmpfs of its own: %s\n", strerror(errno));
		return MKT_SKIP;
	}
	snprintf(image, sizeof(image), "%s/kv.img", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);

	/* The store full: two slots, two keys, a third refused as such. */
	if (make_sparse(image, 1024) != 0 || kv_store(image, "set a 1", out, sizeof(out)) != 0 ||
	    kv_store(image, "set b 2", out, sizeof(out)) != 0)
		return fprintf(stderr, "kv-store: %s\n", out), 1;
	if (kv_store(image, "set c 3", out, sizeof(out)) != 1 ||
	    strstr(out, "the store is full") == NULL || strstr(out, "file system") != NULL)
		return fprintf(stderr, "a full store: %s\n", out), 1;

	/* The file system full under a sparse image: its first write finds no page. */
	if (make_sparse(image, 64 * 1024) != 0 || fill(filler, false) != 0)
		return fprintf(stderr, "cannot fill the file system: %s\n", strerror(errno)), 1;
	if (kv_store(image, "set colour blue", out, sizeof(out)) != 1 ||
	    strstr(out, "the file system that holds the image is full") == NULL ||
	    strstr(out, "the store is full") != NULL)
		return fprintf(stderr, "a full file system: %s\n", out), 1;
	return 0;
}

START_TEST(kv_store_full)
{
	ck_assert_msg(access(KV_STORE, X_OK) == 0, "%s is not built", KV_STORE);
	in_tmpfs("kv_store_full", kv_store_child);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  10,000 scheduled operations from 100 tasks                                               */
/* ---------------------------------------------------------------------------------------- */

#define C_TASKS   100
#define C_OPS     100 /* per task */
#define C_SECTORS 16  /* per task, its own */
#define C_SECTOR  512

struct conc {
	mk_block *b;
	int inflight, max_inflight;
	long ops;
};

struct conc_task {
	struct conc *c;
	int index;
	uint64_t gen[C_SECTORS]; /* what each of its sectors holds */
};

static intptr_t conc_task(void *arg)
{
	struct conc_task *t = arg;
	struct conc *c = t->c;
	uint8_t buf[C_SECTOR], want[C_SECTOR];

	for (int k = 0; k < C_OPS; k++) {
		int local = (k * 7 + t->index) % C_SECTORS;
		uint64_t sector = (uint64_t)t->index * C_SECTORS + (uint64_t)local;
		int r;

		c->inflight++;
		if (c->inflight > c->max_inflight)
			c->max_inflight = c->inflight;
		if (k % 2 == 0) {
			pattern(buf, sizeof(buf), t->gen[local] + 1, sector);
			r = mk_block_write(c->b, sector * C_SECTOR, buf, sizeof(buf), 0);
			if (r == 0)
				t->gen[local]++;
		} else {
			memset(buf, 0, sizeof(buf));
			r = mk_block_read(c->b, sector * C_SECTOR, buf, sizeof(buf), 0);
			pattern(want, sizeof(want), t->gen[local], sector);
			if (r == 0 && memcmp(buf, want, sizeof(buf)) != 0)
				mkt_failf(__LINE__, "task %d: sector %llu is not generation %llu",
				          t->index, (unsigned long long)sector,
				          (unsigned long long)t->gen[local]);
		}
		c->inflight--;
		if (r != 0)
			mkt_failf(__LINE__, "task %d op %d: %s", t->index, k, mk_strerror(r));
		c->ops++;
	}
	return 0;
}

static int conc_main(int argc, char **argv, void *arg)
{
	struct conc_task *tasks = arg;
	struct conc c = {0};
	mk_task *handles[C_TASKS];
	struct mk_block_stats st;

	c.b = connect_disk();
	if (c.b == NULL)
		return 1;
	for (int i = 0; i < C_TASKS; i++) {
		tasks[i].c = &c;
		tasks[i].index = i;
		CHECK_INT(mk_task_spawn(&handles[i], "io", conc_task, &tasks[i]), ==, 0);
	}
	for (int i = 0; i < C_TASKS; i++)
		CHECK_INT(mk_task_await(handles[i], NULL), ==, 0);
	CHECK_INT(c.ops, ==, C_TASKS * C_OPS);
	/* Every task had its operation in flight at once, on either backend. */
	CHECK_INT(c.max_inflight, ==, C_TASKS);
	CHECK_INT(mk_block_stats(c.b, &st), ==, 0);
	CHECK_INT(st.read_ops + st.write_ops, ==, C_TASKS * C_OPS);
	CHECK_INT(st.read_bytes + st.write_bytes, ==, (long long)C_TASKS * C_OPS * C_SECTOR);
	return 0;
}

START_TEST(concurrent_10000)
{
	size_t size = (size_t)C_TASKS * C_SECTORS * C_SECTOR;
	const char *path = make_file(path_of("concurrent"), size, C_SECTOR, 0);
	struct conc_task *tasks = calloc(C_TASKS, sizeof(*tasks));

	ck_assert_int_eq(run_disk(conc_main, tasks, path, C_SECTOR), 0);
	ASSERT_NO_FAILURE();
	/* Every byte of the file, from outside: each sector is its task's last generation. */
	uint8_t *got = malloc(size), want[C_SECTOR];
	read_whole(path, got, size);
	for (int i = 0; i < C_TASKS; i++)
		for (int l = 0; l < C_SECTORS; l++) {
			uint64_t sector = (uint64_t)i * C_SECTORS + (uint64_t)l;
			pattern(want, C_SECTOR, tasks[i].gen[l], sector);
			ck_assert_msg(memcmp(got + sector * C_SECTOR, want, C_SECTOR) == 0,
			              "sector %llu", (unsigned long long)sector);
		}
	free(got);
	free(tasks);
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Cancellation while in flight                                                             */
/* ---------------------------------------------------------------------------------------- */

#define K_SECTOR 4096

struct cancel_io {
	mk_block *b;
	bool write;
	uint8_t buf[K_SECTOR];
	int res, after;
	bool returned;
};

static intptr_t cancel_io_task(void *arg)
{
	struct cancel_io *io = arg;

	if (io->write)
		io->res = mk_block_write(io->b, K_SECTOR, io->buf, sizeof(io->buf), 0);
	else
		io->res = mk_block_read(io->b, K_SECTOR, io->buf, sizeof(io->buf), 0);
	io->returned = true;
	/* The cancel shows at the next suspending call, and a new operation is refused at once. */
	io->after = mk_block_read(io->b, 0, io->buf, sizeof(io->buf), 0);
	return 0;
}

static int cancel_main(int argc, char **argv, void *arg)
{
	struct cancel_io *io = arg;
	uint8_t want[K_SECTOR];
	mk_task *t;

	io->b = connect_disk();
	if (io->b == NULL)
		return 1;
	for (int w = 1; w >= 0; w--) {
		io->write = w;
		io->returned = false;
		if (w)
			pattern(io->buf, sizeof(io->buf), 9, 1);
		else
			memset(io->buf, 0, sizeof(io->buf));
		CHECK_INT(mk_task_spawn(&t, "cancelled", cancel_io_task, io), ==, 0);
		CHECK_INT(mk_yield(), ==, 0); /* the task starts its I/O and parks */
		CHECK(!io->returned);
		CHECK_INT(mk_task_cancel(t), ==, 0);
		CHECK(!io->returned); /* not resumed while the kernel has its buffer */
		CHECK_INT(mk_task_await(t, NULL), ==, -ECANCELED);
		CHECK_INT(io->res, ==, 0); /* the operation's own result */
		CHECK_INT(io->after, ==, -ECANCELED);
		pattern(want, sizeof(want), 9, 1);
		CHECK(memcmp(io->buf, want, sizeof(want)) == 0); /* whole sector, either way */
	}
	/* The written sector, read back. */
	uint8_t got[K_SECTOR];
	CHECK_INT(mk_block_atomic_read(io->b, K_SECTOR, got, sizeof(got), 0), ==, 0);
	CHECK(memcmp(got, want, sizeof(want)) == 0);
	return 0;
}

START_TEST(cancel_in_flight)
{
	const char *path = make_file(path_of("cancel"), 4 * K_SECTOR, K_SECTOR, 0);
	struct cancel_io *io = calloc(1, sizeof(*io));

	ck_assert_int_eq(run_disk(cancel_main, io, path, K_SECTOR), 0);
	ASSERT_NO_FAILURE();
	free(io);
	unlink(path);
}
END_TEST

/* Tasks still writing when main returns are cancelled by mk_run; each write in flight is
 * finished whole, and mk_run returns normally. */
struct stream {
	mk_block *b;
	int index;
	uint64_t written;
};

static intptr_t stream_task(void *arg)
{
	struct stream *st = arg;
	uint8_t buf[K_SECTOR];
	uint64_t sector = (uint64_t)st->index;

	for (uint64_t gen = 1;; gen++) {
		pattern(buf, sizeof(buf), gen, sector);
		if (mk_block_write(st->b, sector * K_SECTOR, buf, sizeof(buf), 0) != 0)
			return 0;
		st->written = gen;
	}
}

static int cancel_at_exit_main(int argc, char **argv, void *arg)
{
	struct stream *streams = arg;
	mk_block *b = connect_disk();
	mk_task *t;

	if (b == NULL)
		return 1;
	for (int i = 0; i < 4; i++) {
		streams[i].b = b;
		streams[i].index = i;
		CHECK_INT(mk_task_spawn(&t, "stream", stream_task, &streams[i]), ==, 0);
	}
	mk_sleep(20 * 1000000ull);
	return 0; /* the streams are cancelled in the middle of their writes */
}

START_TEST(cancel_at_exit)
{
	const char *path = make_file(path_of("cancel-exit"), 4 * K_SECTOR, K_SECTOR, 0);
	struct stream streams[4] = {{0}};
	uint8_t got[4 * K_SECTOR];

	ck_assert_int_eq(run_disk(cancel_at_exit_main, streams, path, K_SECTOR), 0);
	ASSERT_NO_FAILURE();
	read_whole(path, got, sizeof(got));
	for (int i = 0; i < 4; i++) {
		uint64_t gen;
		ck_assert_msg(pattern_valid(got + i * K_SECTOR, K_SECTOR, (uint64_t)i, &gen),
		              "sector %d is torn", i);
		/* The last write returned 0 and was counted, or finished whole as it was cancelled.
		 */
		ck_assert_msg(gen == streams[i].written || gen == streams[i].written + 1,
		              "sector %d: generation %llu, last written %llu", i,
		              (unsigned long long)gen, (unsigned long long)streams[i].written);
		ck_assert_uint_gt(streams[i].written, 0);
	}
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  Killed in the middle of a write stream                                                   */
/* ---------------------------------------------------------------------------------------- */

#define KILL_SECTORS 256
#define KILL_WRITERS 8
#define KILL_ROUNDS  6

struct writer {
	mk_block *b;
	int index;
	int ready_fd; /* told once the first write is done */
	size_t sector;
};

static intptr_t writer_task(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = malloc(w->sector);

	for (uint64_t gen = 1;; gen++)
		for (uint64_t s = (uint64_t)w->index; s < KILL_SECTORS; s += KILL_WRITERS) {
			pattern(buf, w->sector, gen, s);
			/* Mostly scheduled writes, with atomic ones mixed in. */
			int r = (s % 5 == 0)
			            ? mk_block_atomic_write(w->b, s * w->sector, buf, w->sector, 0)
			            : mk_block_write(w->b, s * w->sector, buf, w->sector, 0);
			if (r != 0)
				_exit(3);
			if (w->ready_fd >= 0) {
				if (write(w->ready_fd, "r", 1) != 1)
					_exit(4);
				close(w->ready_fd);
				w->ready_fd = -1;
			}
		}
}

static int writer_main(int argc, char **argv, void *arg)
{
	struct writer *ws = arg;
	mk_block *b;
	mk_task *t;

	if (mk_block_connect("disk", &b) != 0) {
		fprintf(stderr, "writer: %s\n", mk_last_error());
		_exit(2);
	}
	for (int i = 0; i < KILL_WRITERS; i++) {
		ws[i].b = b;
		if (mk_task_spawn(&t, "writer", writer_task, &ws[i]) != 0)
			_exit(2);
	}
	for (;;)
		mk_sleep(1000000000ull); /* until killed */
}

/* Start a writer process, let it write for a random while, kill it. */
static void kill_writer(const char *path, size_t sector, unsigned delay_us)
{
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct writer ws[KILL_WRITERS];
		for (int i = 0; i < KILL_WRITERS; i++)
			ws[i] = (struct writer){NULL, i, i == 0 ? p[1] : -1, sector};
		close(p[0]);
		run_disk(writer_main, ws, path, (unsigned)sector);
		_exit(5);
	}
	close(p[1]);
	struct pollfd pfd = {p[0], POLLIN, 0};
	char c;
	if (poll(&pfd, 1, 10000) != 1 || read(p[0], &c, 1) != 1) {
		int st = 0;
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		ck_abort_msg("the writer never wrote (wait status %#x)", st);
	}
	close(p[0]);
	usleep(delay_us);
	kill(pid, SIGKILL);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer ended by itself (%d)",
	              st);
	/* The kernel tears a killed program's io_uring down after it is reaped; until then its
	 * requests hold the file (and its lock). Read the file only once nothing else has it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int tries = 0;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0 && tries++ < 1000)
		usleep(1000);
	ck_assert_msg(tries < 1000, "the killed writer's file stays locked");
	close(fd);
}

START_TEST(killed_mid_stream)
{
	size_t sector = _i == 0 ? 512 : 4096;
	size_t size = KILL_SECTORS * sector;
	char name[64];
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	snprintf(name, sizeof(name), "killed-%zu", sector);
	const char *path = make_file(path_of(name), size, sector, 0);
	uint8_t *got = malloc(size);
	uint64_t newest = 0;

	srandom(seed);
	for (int round = 0; round < KILL_ROUNDS; round++) {
		unsigned delay = (unsigned)(random() % 50000); /* up to 50 ms */
		kill_writer(path, sector, delay);
		read_whole(path, got, size);
		size_t fresh = 0;
		for (size_t s = 0; s < KILL_SECTORS; s++) {
			uint64_t gen;
			ck_assert_msg(pattern_valid(got + s * sector, sector, s, &gen),
			              "seed %u, round %d (killed after %u us): sector %zu is torn",
			              seed, round, delay, s);
			fresh += gen > 0;
			if (gen > newest)
				newest = gen;
		}
		ck_assert_msg(fresh > 0, "round %d: no sector was written", round);
		ck_assert_int_eq(file_size(path), (off_t)size);
	}
	fprintf(stderr, "killed_mid_stream(%zu): seed %u, newest generation %llu\n", sector, seed,
	        (unsigned long long)newest);
	free(got);
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */
/*  The backend                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int backend_main(int argc, char **argv, void *arg)
{
	const char *want = getenv("MKHOST_BACKEND");
	mk_block *b = connect_disk();
	uint8_t buf[512], got[512];

	if (b == NULL)
		return 1;
	if (want != NULL && *want != '\0' && strcmp(want, "auto") != 0)
		CHECK(strcmp(mk_backend_name(), want) == 0);
	pattern(buf, sizeof(buf), 5, 0);
	CHECK_INT(mk_block_write(b, 0, buf, sizeof(buf), 0), ==, 0);
	CHECK_INT(mk_block_flush(b), ==, 0);
	CHECK_INT(mk_block_read(b, 0, got, sizeof(got), 0), ==, 0);
	CHECK(memcmp(buf, got, sizeof(buf)) == 0);
	return 0;
}

/* A sector in the page cache is read and written at once (RWF_NOWAIT), without a round trip
 * through the loop, and the task still yields: a task that loops over cached sectors lets the
 * others run. */
static intptr_t set_flag(void *arg)
{
	*(int *)arg = 1;
	return 0;
}

static int immediate_main(int argc, char **argv, void *arg)
{
	mk_block *b = connect_disk();
	uint8_t buf[512], got[512];
	struct mk_block_stats st;
	mk_task *t;
	int ran = 0;

	if (b == NULL)
		return 1;
	pattern(buf, sizeof(buf), 9, 0);
	CHECK_INT(mk_block_atomic_write(b, 0, buf, sizeof(buf), 0), ==, 0); /* now cached */
	CHECK_INT(mk_task_spawn(&t, "flag", set_flag, &ran), ==, 0);
	CHECK_INT(mk_block_read(b, 0, got, sizeof(got), 0), ==, 0);
	CHECK(memcmp(buf, got, sizeof(buf)) == 0);
	CHECK_INT(ran, ==, 1); /* it yielded */
	CHECK_INT(mk_task_await(t, NULL), ==, 0);
	CHECK_INT(mk_block_write(b, 512, buf, sizeof(buf), 0), ==, 0);
	CHECK_INT(mk_block_atomic_read(b, 512, got, sizeof(got), 0), ==, 0);
	CHECK(memcmp(buf, got, sizeof(buf)) == 0);
	CHECK_INT(mk_block_stats(b, &st), ==, 0);
	/* The read of a cached sector never blocks. A buffered write may be refused RWF_NOWAIT
	 * by some file systems; then it goes through the loop, and is not counted here. */
	CHECK(st.immediate_ops >= 1 && st.immediate_ops <= 2);
	CHECK_INT(st.read_ops, ==, 2);
	CHECK_INT(st.write_ops, ==, 2);
	return 0;
}

/* A file on tmpfs, which refuses RWF_NOWAIT: its data is in memory, so reads and writes are done
 * at once all the same, both of them. */
static int tmpfs_main(int argc, char **argv, void *arg)
{
	mk_block *b = connect_disk();
	uint8_t buf[512], got[512];
	struct mk_block_stats st;

	if (b == NULL)
		return 1;
	for (uint64_t k = 0; k < 8; k++) {
		pattern(buf, sizeof(buf), (int)k, 0);
		CHECK_INT(mk_block_write(b, k * 512, buf, sizeof(buf), 0), ==, 0);
		CHECK_INT(mk_block_read(b, k * 512, got, sizeof(got), 0), ==, 0);
		CHECK(memcmp(buf, got, sizeof(buf)) == 0);
	}
	CHECK_INT(mk_block_stats(b, &st), ==, 0);
	CHECK_INT(st.immediate_ops, ==, 16);
	CHECK_INT(st.read_ops, ==, 8);
	CHECK_INT(st.write_ops, ==, 8);
	return 0;
}

START_TEST(tmpfs_at_once)
{
	char path[] = "/dev/shm/mkhost-tmpfs-XXXXXX";
	int fd = mkstemp(path);
	struct statfs fs;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	ck_assert_int_eq(fstatfs(fd, &fs), 0);
	close(fd);
	if ((unsigned long)fs.f_type != 0x01021994) {
		unlink(path);
		return; /* /dev/shm is not a tmpfs here: nothing to show */
	}
	ck_assert_int_eq(run_disk(tmpfs_main, NULL, path, 512), 0);
	unlink(path);
	ASSERT_NO_FAILURE();
}
END_TEST

START_TEST(cached_sectors_at_once)
{
	const char *path = make_file(path_of("immediate"), 4096, 0, 0);

	ck_assert_int_eq(run_disk(immediate_main, NULL, path, 512), 0);
	ASSERT_NO_FAILURE();
	unlink(path);
}
END_TEST

START_TEST(scheduled_on_this_backend)
{
	const char *path = make_file(path_of("backend"), 4096, 0, 0);

	ck_assert_int_eq(run_disk(backend_main, NULL, path, 512), 0);
	ASSERT_NO_FAILURE();
	unlink(path);
}
END_TEST

/* Several tasks flushing at once, between writes. */
static intptr_t flusher(void *arg)
{
	mk_block *b = arg;
	uint8_t buf[512] = {1};

	for (int i = 0; i < 10; i++) {
		CHECK_INT(mk_block_write(b, 0, buf, sizeof(buf), 0), ==, 0);
		CHECK_INT(mk_block_flush(b), ==, 0);
	}
	return 0;
}

static int flush_main(int argc, char **argv, void *arg)
{
	mk_block *b = connect_disk();
	mk_task *t[4];
	struct mk_block_stats st;

	if (b == NULL)
		return 1;
	for (int i = 0; i < 4; i++)
		CHECK_INT(mk_task_spawn(&t[i], "flusher", flusher, b), ==, 0);
	for (int i = 0; i < 4; i++)
		CHECK_INT(mk_task_await(t[i], NULL), ==, 0);
	CHECK_INT(mk_block_stats(b, &st), ==, 0);
	CHECK_INT(st.flush_ops, ==, 40);
	return 0;
}

START_TEST(concurrent_flushes)
{
	const char *path = make_file(path_of("flush"), 4096, 0, 0);

	ck_assert_int_eq(run_disk(flush_main, NULL, path, 512), 0);
	ASSERT_NO_FAILURE();
	unlink(path);
}
END_TEST

/* ---------------------------------------------------------------------------------------- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static Suite *block_suite(void)
{
	Suite *s = suite_create("block");

	TCase *io = tcase_create("io");
	tcase_set_timeout(io, 60);
	tcase_add_loop_test(io, patterns_round_trip, 0, 3);
	tcase_add_test(io, default_sector_size);
	tcase_add_loop_test(io, known_file_digests, 0, 2);
	tcase_add_test(io, scheduled_on_this_backend);
	tcase_add_test(io, cached_sectors_at_once);
	tcase_add_test(io, tmpfs_at_once);
	tcase_add_test(io, concurrent_flushes);
	tcase_add_test(io, truncated_behind);
	tcase_add_test(io, full_file_system);
	tcase_add_test(io, kv_store_full);
	suite_add_tcase(s, io);

	TCase *args = tcase_create("arguments");
	tcase_set_timeout(args, 60);
	tcase_add_test(args, bad_arguments);
	tcase_add_test(args, outside_a_task);
	tcase_add_test(args, connect_errors);
	tcase_add_test(args, connect_same_file_twice);
	tcase_add_test(args, connect_special_files_unopened);
	tcase_add_test(args, connect_kernel_files);
	tcase_add_test(args, connect_unattached_loop);
	tcase_add_test(args, bad_sector_size_argument);
	tcase_add_test(args, read_only_file);
	suite_add_tcase(s, args);

	TCase *load = tcase_create("load");
	tcase_set_timeout(load, 120);
	tcase_add_test(load, concurrent_10000);
	tcase_add_test(load, cancel_in_flight);
	tcase_add_test(load, cancel_at_exit);
	tcase_add_loop_test(load, killed_mid_stream, 0, 2);
	suite_add_tcase(s, load);
	return s;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/mkhost-block-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
		return EXIT_FAILURE;
	}
	chmod(dir, 0755); /* the read-only test opens files in it as an unprivileged user */
	int failures = mkt_run_suite(block_suite(), false);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failures;
}
