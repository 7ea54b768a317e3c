/* bench-block: 4 KiB random reads or writes on a file, printed as JSON lines (see benchlib.h).
 *
 *   bench-block IMPL randread|randwrite FILE SECONDS [DEPTH]
 *
 *   IMPL mkhost   DEPTH tasks (default 32), each with one mk_block_read/mk_block_write in flight
 *                 at a time: the queue depth the event loop sees. MKHOST_BACKEND picks the backend
 *                 (the results name it "mkhost-epoll" on epoll).
 *   IMPL pread    one thread calling pread(2)/pwrite(2) in a loop: queue depth 1, no event loop
 *
 * FILE must exist and hold a whole number of 4 KiB blocks; it is read or overwritten in place,
 * at offsets from a fixed-seed generator, for SECONDS of wall time. Printed: "iops" and
 * "mb_per_s" (10^6 bytes), under workload "block", variant "randread-qd32" and the like.
 * scripts/bench-block runs fio's io_uring engine beside it on the same file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchlib.h"
#include "mkhost.h"

#define BLOCK      4096
#define DEADLINE_S 300

struct run {
	bool write;
	const char *file;
	uint64_t blocks; /* in the file */
	uint64_t seconds;
	unsigned depth;
	uint64_t ops; /* done, by every task */
	uint64_t elapsed_ns;
	const char *impl; /* for the results: "mkhost", "mkhost-epoll" or "pread" */
};

static uint64_t next_block(uint64_t *x, uint64_t blocks)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x % blocks;
}

/* ---- mkhost ------------------------------------------------------------------------------- */

struct worker {
	struct run *run;
	mk_block *disk;
	uint64_t end_ns;
	uint64_t seed;
};

static intptr_t worker(void *arg)
{
	struct worker *w = arg;
	struct run *r = w->run;
	uint8_t *buf = aligned_alloc(BLOCK, BLOCK);

	memset(buf, 0x5a, BLOCK);
	while (mk_clock_monotonic() < w->end_ns) {
		uint64_t off = next_block(&w->seed, r->blocks) * BLOCK;
		int err = r->write ? mk_block_write(w->disk, off, buf, BLOCK, 0)
		                   : mk_block_read(w->disk, off, buf, BLOCK, 0);
		if (err != 0)
			bench_die("%s at %llu: %s", r->write ? "write" : "read",
			          (unsigned long long)off, mk_strerror(err));
		r->ops++;
	}
	free(buf);
	return 0;
}

static int mkhost_main(int argc, char **argv, void *arg)
{
	struct run *r = arg;
	struct worker *ws = calloc(r->depth, sizeof(*ws));
	mk_task **tasks = calloc(r->depth, sizeof(*tasks));
	mk_block *disk;

	(void)argc, (void)argv;
	if (mk_block_connect("disk", &disk) != 0)
		bench_die("%s", mk_last_error());
	r->blocks = mk_block_length(disk) / BLOCK;
	r->impl = strcmp(mk_backend_name(), "io_uring") == 0 ? "mkhost" : "mkhost-epoll";
	uint64_t start = mk_clock_monotonic();
	for (unsigned i = 0; i < r->depth; i++) {
		ws[i] = (struct worker){r, disk, start + r->seconds * 1000000000ull,
		                        0x9e3779b97f4a7c15ull * (i + 1)};
		if (mk_task_spawn(&tasks[i], "io", worker, &ws[i]) != 0)
			bench_die("spawn failed");
	}
	for (unsigned i = 0; i < r->depth; i++)
		mk_task_await(tasks[i], NULL);
	r->elapsed_ns = mk_clock_monotonic() - start;
	free(ws);
	free(tasks);
	return 0;
}

static void run_mkhost(struct run *r)
{
	char dev[4096];
	char *argv[] = {"bench-block", dev, "--block-sector-size:disk=4096", NULL};

	snprintf(dev, sizeof(dev), "--block:disk=%s", r->file);
	int rc = mk_run(3, argv, mkhost_main, r);
	if (rc != 0)
		bench_die("mk_run: %s", mk_strerror(rc));
}

/* ---- pread/pwrite ------------------------------------------------------------------------- */

static void run_pread(struct run *r)
{
	int fd = open(r->file, (r->write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	struct stat st;
	uint8_t *buf = aligned_alloc(BLOCK, BLOCK);
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	if (fd < 0 || fstat(fd, &st) != 0)
		bench_die("open %s: %s", r->file, strerror(errno));
	r->blocks = (uint64_t)st.st_size / BLOCK;
	memset(buf, 0x5a, BLOCK);
	uint64_t start = bench_now_ns(), end = start + r->seconds * 1000000000ull;
	while (bench_now_ns() < end) {
		off_t off = (off_t)(next_block(&seed, r->blocks) * BLOCK);
		ssize_t n = r->write ? pwrite(fd, buf, BLOCK, off) : pread(fd, buf, BLOCK, off);
		if (n != BLOCK)
			bench_die("%s: %zd (%s)", r->write ? "pwrite" : "pread", n,
			          strerror(errno));
		r->ops++;
	}
	r->elapsed_ns = bench_now_ns() - start;
	free(buf);
	close(fd);
}

int main(int argc, char **argv)
{
	struct run r = {0};
	char variant[64];

	bench_prog = "bench-block";
	bench_deadline(DEADLINE_S);
	if (argc < 5 || argc > 6)
		bench_die(
		    "usage: bench-block mkhost|pread randread|randwrite FILE SECONDS [DEPTH]");
	if (strcmp(argv[2], "randread") != 0 && strcmp(argv[2], "randwrite") != 0)
		bench_die("the workload is randread or randwrite, not '%s'", argv[2]);
	r.write = strcmp(argv[2], "randwrite") == 0;
	r.file = argv[3];
	r.seconds = bench_ulong(argv[4], "SECONDS");
	r.depth = argc == 6 ? (unsigned)bench_ulong(argv[5], "DEPTH") : 32;
	if (r.depth == 0)
		bench_die("DEPTH must be at least 1");
	if (strcmp(argv[1], "mkhost") == 0) {
		run_mkhost(&r);
	} else if (strcmp(argv[1], "pread") == 0) {
		r.depth = 1;
		r.impl = "pread";
		run_pread(&r);
	} else {
		bench_die("the implementation is mkhost or pread, not '%s'", argv[1]);
	}
	if (r.blocks == 0 || r.elapsed_ns == 0)
		bench_die("nothing was measured");
	double iops = (double)r.ops * 1e9 / (double)r.elapsed_ns;
	snprintf(variant, sizeof(variant), "%s-qd%u", argv[2], r.depth);
	bench_result("block", variant, r.impl, "iops", iops);
	bench_result("block", variant, r.impl, "mb_per_s", iops * BLOCK / 1e6);
	return 0;
}
