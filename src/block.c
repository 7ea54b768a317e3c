/* Block devices (Mkernel.Block): connect, one sector per read or write, flush, statistics.
 *
 * The atomic calls are pread(2)/pwrite(2) on the spot. The scheduled ones go through the event
 * loop's file operation: the request lives on the calling task's stack, and the task parks
 * uncancellably until its completion arrives, because the kernel may use the buffer (and the
 * request) until then. A cancel therefore never cuts an operation short; the task sees it at its
 * next suspending call. Short transfers are continued until the sector is done or fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/major.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifdef MK_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

struct mk_block {
	struct mk_block *next;
	struct mk__sched *sched;
	char name[64];
	char *file;
	int fd;
	bool read_only;
	bool block_device;
	bool claimed; /* returned by mk_block_connect (not just opened for --sandbox) */
	size_t sector_size;
	uint64_t length;
	struct mk_block_stats stats;
	bool no_nowait[2]; /* the file refused RWF_NOWAIT for reads [0] or writes [1] */
	bool in_memory;    /* on tmpfs or ramfs: a read or write never waits for a device */
};

#define DEFAULT_SECTOR 512

static struct mk_block *find_block(struct mk__sched *s, const char *name)
{
	for (struct mk_block *b = s->blocks; b != NULL; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

/* ---- connect -------------------------------------------------------------------------- */

static int args_error(const char *name, const struct mk__blockarg *a)
{
	if (a == NULL || a->times == 0)
		return mk__fail(
		    -ENOENT,
		    "block device '%s' is not on the command line; start the program with "
		    "--block:%s=FILE (an existing file, e.g. made with truncate -s 1M FILE)",
		    name, name);
	return mk__fail(-EEXIST,
	                "block device '%s' is given %d times on the command line; give --block:%s= "
	                "once",
	                name, a->times, name);
}

static int open_error(const mk_block *b, int err)
{
	switch (err) {
	case -ENOENT:
		return mk__fail(-ENODEV,
		                "block device '%s': file '%s' does not exist; create it with "
		                "truncate -s 1M %s (mkhost never creates or truncates it)",
		                b->name, b->file, b->file);
	case -EACCES:
	case -EPERM:
		return mk__fail(
		    -EACCES,
		    "block device '%s': no permission to read '%s'; give yourself access "
		    "with chmod u+rw %s",
		    b->name, b->file, b->file);
	case -EISDIR:
		return mk__fail(-EINVAL,
		                "block device '%s': '%s' is a directory; give a regular file or a "
		                "block device",
		                b->name, b->file);
	case -EWOULDBLOCK:
		return mk__fail(-EBUSY,
		                "block device '%s': '%s' is in use by another program (it holds a "
		                "lock on it); stop that program first",
		                b->name, b->file);
	default:
		return mk__fail(err, "block device '%s': cannot open '%s': %s", b->name, b->file,
		                strerror(-err));
	}
}

/* A program killed with io_uring requests in flight keeps its files (and their locks) until the
 * kernel has torn its ring down, asynchronously, some milliseconds after it is reaped. Wait that
 * long for the lock before calling the file busy. */
#define LOCK_RETRY_NS (200 * 1000000L)
#define LOCK_STEP_NS  (5 * 1000000L)

static int lock_file(mk_block *b)
{
	struct timespec step = {0, LOCK_STEP_NS};

	for (long waited = 0; flock(b->fd, LOCK_EX | LOCK_NB) != 0; waited += LOCK_STEP_NS) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK || waited >= LOCK_RETRY_NS)
			return open_error(b, -errno);
		nanosleep(&step, NULL);
	}
	return 0;
}

/* What a file that is neither a regular file nor a block device is, for a sentence. */
static const char *file_type(mode_t mode)
{
	return S_ISDIR(mode)    ? "a directory"
	       : S_ISCHR(mode)  ? "a character device"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISSOCK(mode) ? "a socket"
	                        : "not a regular file";
}

static int type_error(const mk_block *b, mode_t mode)
{
	return mk__fail(-EINVAL,
	                "block device '%s': '%s' is %s, neither a regular file nor a block "
	                "device; give an image file (e.g. made with truncate -s 1M FILE) or a "
	                "block device",
	                b->name, b->file, file_type(mode));
}

/* The kernel's own file systems, whose files have sizes and contents made up when read. */
static const char *kernel_fs(const char *path)
{
	static const struct {
		long magic;
		const char *name;
	} kinds[] = {
	    {0x9fa0, "proc"},           {0x62656572, "sysfs"}, {0x64626720, "debugfs"},
	    {0x74726163, "tracefs"},    {0x27e0eb, "cgroup"},  {0x63677270, "cgroup2"},
	    {0x73636673, "securityfs"}, {0xcafe4a11, "bpf"},   {0xde5e81e4, "efivarfs"},
	};
	struct statfs fs;

	if (statfs(path, &fs) != 0)
		return NULL;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((long)fs.f_type == kinds[i].magic)
			return kinds[i].name;
	return NULL;
}

/* The file's type is looked at before it is opened, since opening some files does something
 * (a terminal, a FIFO's other end, a debugfs file): only regular files and block devices are
 * opened. Read-write if the file may be written, else read-only. Never O_CREAT, never O_TRUNC. */
static int open_file(mk_block *b)
{
	struct stat st;
	const char *fs;

	if (stat(b->file, &st) != 0)
		return open_error(b, -errno);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return type_error(b, st.st_mode);
	if (S_ISREG(st.st_mode) && (fs = kernel_fs(b->file)) != NULL)
		return mk__fail(-EINVAL,
		                "block device '%s': '%s' is a file of the kernel's %s file system, "
		                "whose size and contents the kernel makes up when it is read, not "
		                "a disk image; give an image file (e.g. made with truncate -s 1M "
		                "FILE) or a block device",
		                b->name, b->file, fs);
	b->fd = open(b->file, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (b->fd < 0 &&
	    (errno == EACCES || errno == EROFS || errno == EPERM || errno == ETXTBSY)) {
		b->fd = open(b->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		b->read_only = true;
	}
	if (b->fd < 0)
		return open_error(b, -errno);
	struct statfs sfs;
	b->in_memory = fstatfs(b->fd, &sfs) == 0 &&
	               ((unsigned long)sfs.f_type == 0x01021994 /* TMPFS_MAGIC */ ||
	                (unsigned long)sfs.f_type == 0x858458f6 /* RAMFS_MAGIC */);
	return lock_file(b);
}

/* Whether the loop device (dev) has a file attached: sysfs shows its loop/ directory then. */
static bool loop_attached(dev_t dev)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop", major(dev), minor(dev));
	return access(path, F_OK) == 0;
}

static int check_size(mk_block *b)
{
	struct stat st;
	off_t end;

	if (fstat(b->fd, &st) != 0)
		return mk__fail(-errno, "block device '%s': cannot stat '%s': %s", b->name, b->file,
		                strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) /* replaced since it was looked at */
		return type_error(b, st.st_mode);
	b->block_device = S_ISBLK(st.st_mode);
	end = st.st_size;
	if (b->block_device && (end = lseek(b->fd, 0, SEEK_END)) < 0) /* its st_size is 0 */
		return mk__fail(-errno, "block device '%s': cannot find the size of '%s': %s",
		                b->name, b->file, strerror(errno));
	b->length = (uint64_t)end;
	if (b->length == 0 && b->block_device && major(st.st_rdev) == LOOP_MAJOR &&
	    !loop_attached(st.st_rdev))
		return mk__fail(-EINVAL,
		                "block device '%s': '%s' is a loop device with no file attached "
		                "(its size is 0); attach an image to it with losetup %s FILE, or "
		                "give the device that losetup --find --show FILE prints",
		                b->name, b->file, b->file);
	if (b->length == 0 && b->block_device)
		return mk__fail(-EINVAL,
		                "block device '%s': '%s' is a block device of size 0 (no medium?); "
		                "give a device that holds data, or an image file",
		                b->name, b->file);
	if (b->length == 0)
		return mk__fail(-EINVAL,
		                "block device '%s': '%s' is empty; give it a size, e.g. "
		                "truncate -s 1M %s",
		                b->name, b->file, b->file);
	if (b->length % b->sector_size != 0 && b->block_device)
		return mk__fail(-EINVAL,
		                "block device '%s': the size of '%s' (%llu bytes) is not a "
		                "multiple of the sector size (%zu); give a smaller one with "
		                "--block-sector-size:%s",
		                b->name, b->file, (unsigned long long)b->length, b->sector_size,
		                b->name);
	if (b->length % b->sector_size != 0)
		return mk__fail(
		    -EINVAL,
		    "block device '%s': the size of '%s' (%llu bytes) is not a multiple "
		    "of the sector size (%zu); resize it, e.g. truncate -s %llu %s, or "
		    "change --block-sector-size:%s",
		    b->name, b->file, (unsigned long long)b->length, b->sector_size,
		    (unsigned long long)((b->length / b->sector_size + 1) * b->sector_size),
		    b->file, b->name);
	return 0;
}

/* ---- sparse files with sectors larger than a page ------------------------------------- */

/* The kernel copies a write into a file page by page, and a page in a hole needs new space. A
 * sector of up to a page gets its space whole or fails whole, but a larger one over a hole can be
 * cut short by a full file system: -ENOSPC, and part of the sector written. So the holes of such
 * a device are allocated at connect (they still read as zeros), after which a write needs no new
 * space on a file system that overwrites in place (ext4, xfs, tmpfs; not a copy-on-write one).
 * Files without holes, and file systems that report none, cost two lseek calls. */

struct hole {
	off_t start, len;
};

/* The holes of (b)'s file, at most (max) of them, into (holes); their count, or -errno. Counts
 * all of them, so a return above (max) asks for a larger array. */
static long find_holes(const mk_block *b, struct hole *holes, long max, off_t *bytes)
{
	off_t at = 0, end = (off_t)b->length;
	long n = 0;

	*bytes = 0;
	while (at < end) {
		off_t hole = lseek(b->fd, at, SEEK_HOLE), data;
		if (hole < 0)
			return errno == ENXIO || errno == EINVAL ? n : -errno;
		if (hole >= end)
			break;
		data = lseek(b->fd, hole, SEEK_DATA);
		if (data < 0 && errno != ENXIO)
			return -errno;
		if (data < 0 || data > end)
			data = end;
		if (n < max)
			holes[n] = (struct hole){hole, data - hole};
		n++;
		*bytes += data - hole;
		at = data;
	}
	return n;
}

/* Give the holes back after a failed allocation, so that a refused connect leaves the file as it
 * was. They were holes, and read as zeros either way. */
static void punch_holes(const mk_block *b, const struct hole *holes, long n)
{
	for (long i = 0; i < n; i++)
		fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, holes[i].start,
		          holes[i].len);
}

static int allocate_holes(mk_block *b)
{
	long page = sysconf(_SC_PAGESIZE), n, max = 16;
	struct hole *holes = NULL;
	off_t bytes;
	int err = 0;

	if (b->read_only || b->block_device || b->sector_size <= (size_t)page)
		return 0;
	for (;;) {
		struct hole *more = realloc(holes, (size_t)max * sizeof(*holes));
		if (more == NULL) {
			free(holes);
			return mk__fail(-ENOMEM, "block device '%s': out of memory", b->name);
		}
		holes = more;
		n = find_holes(b, holes, max, &bytes);
		if (n <= max)
			break;
		max = n;
	}
	if (n < 0) {
		free(holes);
		return mk__fail((int)n, "block device '%s': cannot find the holes of '%s': %s",
		                b->name, b->file, strerror((int)-n));
	}
	for (long i = 0; i < n && err == 0; i++) {
		do
			err = posix_fallocate(b->fd, holes[i].start, holes[i].len);
		while (err == EINTR);
	}
	if (err != 0)
		punch_holes(b, holes, n);
	free(holes);
	if (err == ENOSPC || err == EDQUOT)
		return mk__fail(
		    -ENOSPC,
		    "block device '%s': '%s' is sparse and its sectors (%zu bytes) are larger than "
		    "a "
		    "page, so a write into a hole could be cut short by a full file system; mkhost "
		    "allocates the holes first, and %lld bytes do not fit (%s); free that much "
		    "space "
		    "on its file system, or use --block-sector-size:%s=%ld",
		    b->name, b->file, b->sector_size, (long long)bytes, strerror(err), b->name,
		    page);
	if (err != 0)
		return mk__fail(
		    -err,
		    "block device '%s': '%s' is sparse and its sectors (%zu bytes) are larger than "
		    "a "
		    "page; mkhost allocates the holes first, and that failed: %s; make the file "
		    "whole (cp --sparse=never), or use --block-sector-size:%s=%ld",
		    b->name, b->file, b->sector_size, strerror(err), b->name, page);
	return 0;
}

static void block_free(mk_block *b)
{
	if (b->fd >= 0)
		close(b->fd);
	free(b->file);
	free(b);
}

static int block_open(struct mk__sched *s, const struct mk__blockarg *a, mk_block **out)
{
	mk_block *b = calloc(1, sizeof(*b));
	int err;

	if (b == NULL || (b->file = strdup(a->file)) == NULL) {
		free(b);
		return mk__fail(-ENOMEM, "block device '%s': out of memory", a->name);
	}
	snprintf(b->name, sizeof(b->name), "%s", a->name);
	b->sched = s;
	b->fd = -1;
	b->sector_size = a->sector_size ? a->sector_size : DEFAULT_SECTOR;
	err = open_file(b);
	if (err == 0)
		err = check_size(b);
	if (err == 0)
		err = allocate_holes(b);
	if (err != 0) {
		block_free(b);
		return err;
	}
	b->next = s->blocks;
	s->blocks = b;
	*out = b;
	return 0;
}

int mk_block_connect(const char *name, mk_block **out)
{
	struct mk__sched *s = mk__sched_current;
	struct mk__blockarg *a;
	mk_block *b;
	int err;

	if (s == NULL)
		return mk__fail(-EPERM, "mk_block_connect('%s') called outside mk_run",
		                name ? name : "(null)");
	if (name == NULL || out == NULL)
		return mk__fail(-EINVAL, "mk_block_connect: %s is NULL", name ? "out" : "name");
	a = mk__args_block(&s->args, name);
	if (a == NULL || a->times != 1)
		return args_error(name, a);
	b = find_block(s, name);
	if (b != NULL && b->claimed)
		return mk__fail(-EALREADY,
		                "block device '%s' is already connected; connect it once and share "
		                "the handle between tasks",
		                name);
	/* With --sandbox, mk_run opened every device before main: hand that one over. */
	err = b != NULL ? 0 : block_open(s, a, &b);
	if (err != 0)
		return err;
	b->claimed = true;
	*out = b;
	return 0;
}

int mk__block_open_all(struct mk__sched *s)
{
	for (size_t i = 0; i < s->args.n_blocks; i++) {
		struct mk__blockarg *a = &s->args.blocks[i];
		mk_block *b;
		int err = a->times == 1 ? block_open(s, a, &b) : args_error(a->name, a);
		if (err != 0)
			return err;
	}
	return 0;
}

/* ---- arguments ------------------------------------------------------------------------ */

/* The scheduler running on this thread when (b) is one of its devices, else NULL. Only the
 * pointer is compared, never dereferenced: a handle kept after its mk_run returned (freed), or
 * used from another thread, is refused without being touched. */
static struct mk__sched *block_sched(const mk_block *b)
{
	struct mk__sched *s = mk__sched_current;

	if (s == NULL || b == NULL)
		return NULL;
	for (struct mk_block *m = s->blocks; m != NULL; m = m->next)
		if (m == b)
			return s;
	return NULL;
}

/* -EINVAL for no handle, -EPERM for one that is not this thread's scheduler's (or from outside a
 * task when (task) is asked for), else 0. */
static int block_check(const mk_block *b, bool task)
{
	if (b == NULL)
		return -EINVAL;
	if (block_sched(b) == NULL || (task && mk__sched_task() == NULL))
		return -EPERM;
	return 0;
}

/* The checks shared by every sector transfer: a sector-aligned sector inside the device, and a
 * buffer of (size) bytes that holds a sector from (off). */
static bool sector_ok(const mk_block *b, uint64_t dev_off, const void *buf, size_t size, size_t off)
{
	return b != NULL && buf != NULL && dev_off % b->sector_size == 0 && dev_off < b->length &&
	       b->length - dev_off >= b->sector_size && off <= size && size - off >= b->sector_size;
}

static int read_only_error(const mk_block *b)
{
	return mk__fail(-EROFS,
	                "block device '%s': '%s' was opened read-only (no permission to write it, "
	                "or a read-only file system); make it writable, e.g. chmod u+w %s, and "
	                "restart",
	                b->name, b->file, b->file);
}

static void count(mk_block *b, enum mk__file_op op)
{
	if (op == MK__FILE_READ) {
		b->stats.read_ops++;
		b->stats.read_bytes += b->sector_size;
	} else if (op == MK__FILE_WRITE) {
		b->stats.write_ops++;
		b->stats.write_bytes += b->sector_size;
	} else {
		b->stats.flush_ops++;
	}
}

/* ---- atomic: on the spot -------------------------------------------------------------- */

static int transfer_now(mk_block *b, enum mk__file_op op, uint8_t *buf, uint64_t off)
{
	size_t done = 0;

	while (done < b->sector_size) {
		ssize_t r;
		if (op == MK__FILE_READ)
			r = pread(b->fd, buf + done, b->sector_size - done, (off_t)(off + done));
		else
			r = pwrite(b->fd, buf + done, b->sector_size - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) /* the file shrank behind us */
			return -EIO;
		done += (size_t)r;
	}
	count(b, op);
	return 0;
}

int mk_block_atomic_read(mk_block *b, uint64_t src_off, void *dst, size_t dst_size, size_t dst_off)
{
	int err = block_check(b, false);

	if (err != 0)
		return err;
	if (!sector_ok(b, src_off, dst, dst_size, dst_off))
		return -EINVAL;
	return transfer_now(b, MK__FILE_READ, (uint8_t *)dst + dst_off, src_off);
}

int mk_block_atomic_write(mk_block *b, uint64_t dst_off, const void *src, size_t src_size,
                          size_t src_off)
{
	int err = block_check(b, false);

	if (err != 0)
		return err;
	if (!sector_ok(b, dst_off, src, src_size, src_off))
		return -EINVAL;
	if (b->read_only)
		return read_only_error(b);
	return transfer_now(b, MK__FILE_WRITE, (uint8_t *)src + src_off, dst_off);
}

/* ---- scheduled: through the event loop ------------------------------------------------ */

/* One request in flight, on the stack of the task that waits for it. */
struct request {
	struct mk__io io;
	struct mk__sched *sched;
	struct mk_task *task;
	int res;
	bool completed;
};

static void on_complete(struct mk__io *io, int res)
{
	struct request *r = (struct request *)((char *)io - offsetof(struct request, io));

	r->res = res;
	r->completed = true;
	mk__wake(r->sched, r->task, 0);
}

/* Hand one operation to the loop and park until it completes, whatever else happens. */
static int submit_and_wait(struct request *r, enum mk__file_op op, void *buf, size_t len,
                           uint64_t off)
{
	struct mk__sched *s = r->sched;
	int err;

	r->completed = false;
	err = s->loop.ops->file(&s->loop, &r->io, op, buf, len, off);
	if (err != 0)
		return err;
	while (!r->completed)
		mk__park(s);
	return r->res;
}

/* A read or write that cannot block (RWF_NOWAIT): data in the page cache is copied at once, far
 * cheaper than a round trip through the ring. Returns the bytes done (maybe fewer than len), or
 * 0 when it would block (or the file takes no RWF_NOWAIT: then it is not tried again), or the
 * error that the operation itself met. */
static ssize_t transfer_nowait(mk_block *b, enum mk__file_op op, uint8_t *buf, size_t len,
                               uint64_t off)
{
	struct iovec iov = {buf, len};
	bool write = op == MK__FILE_WRITE;
	ssize_t r;

	if (b->no_nowait[write] && b->in_memory) {
		/* tmpfs refuses RWF_NOWAIT (Linux 6.18 still does), but its data is in memory: a
		 * plain read or write is a copy, cheaper than the ring, which hands tmpfs I/O to
		 * its worker threads. (Swapped-out pages are the one wait left; so be it.) */
		r = write ? pwrite(b->fd, buf, len, (off_t)off) : pread(b->fd, buf, len, (off_t)off);
		if (r >= 0)
			return r;
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	}
	if (b->no_nowait[write])
		return 0;
	r = write ? pwritev2(b->fd, &iov, 1, (off_t)off, RWF_NOWAIT)
	          : preadv2(b->fd, &iov, 1, (off_t)off, RWF_NOWAIT);
	if (r >= 0)
		return r;
	if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS) {
		b->no_nowait[write] = true;
		return b->in_memory ? transfer_nowait(b, op, buf, len, off) : 0;
	}
	if (errno != EAGAIN && errno != EINTR)
		return -errno;
	return 0;
}

static int transfer_scheduled(struct mk__sched *s, mk_block *b, enum mk__file_op op, uint8_t *buf,
                              uint64_t off)
{
	struct request r = {
	    .io = {.fd = b->fd, .done = on_complete}, .sched = s, .task = s->current};
	size_t len = op == MK__FILE_FSYNC ? 0 : b->sector_size;
	bool was_uncancellable = r.task->uncancellable_park;
	size_t done = 0;
	int res;

	if (r.task->cancelled)
		return -ECANCELED;
	if (op != MK__FILE_FSYNC) {
		ssize_t now = transfer_nowait(b, op, buf, len, off);
		if (now < 0)
			return (int)now;
		done = (size_t)now;
		if (done == len) {
			count(b, op);
			b->stats.immediate_ops++;
			/* Done without waiting: still let the other runnable tasks have their turn,
			 * so that a loop of cached reads cannot starve them. */
			mk_yield();
			return 0;
		}
	}
	r.task->uncancellable_park = true;
	for (;;) {
		res = submit_and_wait(&r, op, buf != NULL ? buf + done : NULL, len - done,
		                      off + done);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res < 0 || op == MK__FILE_FSYNC)
			break;
		if (res == 0) { /* the file shrank behind us */
			res = -EIO;
			break;
		}
#ifdef MK_HAVE_VALGRIND
		/* The kernel filled the buffer behind Memcheck's back. */
		if (op == MK__FILE_READ)
			VALGRIND_MAKE_MEM_DEFINED(buf + done, (size_t)res);
#endif
		done += (size_t)res;
		if (done == len) {
			res = 0;
			break;
		}
	}
	r.task->uncancellable_park = was_uncancellable;
	if (res == 0)
		count(b, op);
	return res;
}

int mk_block_read(mk_block *b, uint64_t src_off, void *dst, size_t dst_size, size_t dst_off)
{
	int err = block_check(b, true);

	if (err != 0)
		return err;
	if (!sector_ok(b, src_off, dst, dst_size, dst_off))
		return -EINVAL;
	return transfer_scheduled(b->sched, b, MK__FILE_READ, (uint8_t *)dst + dst_off, src_off);
}

int mk_block_write(mk_block *b, uint64_t dst_off, const void *src, size_t src_size, size_t src_off)
{
	int err = block_check(b, true);

	if (err != 0)
		return err;
	if (!sector_ok(b, dst_off, src, src_size, src_off))
		return -EINVAL;
	if (b->read_only)
		return read_only_error(b);
	/* The loop's file operation takes a mutable buffer for both directions; a write only reads
	 * it. */
	return transfer_scheduled(b->sched, b, MK__FILE_WRITE, (uint8_t *)src + src_off, dst_off);
}

int mk_block_flush(mk_block *b)
{
	int err = block_check(b, true);

	if (err != 0)
		return err;
	return transfer_scheduled(b->sched, b, MK__FILE_FSYNC, NULL, 0);
}

/* ---- the rest ------------------------------------------------------------------------- */

size_t mk_block_sector_size(const mk_block *b)
{
	return block_sched(b) != NULL ? b->sector_size : 0;
}

uint64_t mk_block_length(const mk_block *b)
{
	return block_sched(b) != NULL ? b->length : 0;
}

int mk_block_read_only(const mk_block *b)
{
	return block_sched(b) != NULL && b->read_only;
}

int mk_block_stats(const mk_block *b, struct mk_block_stats *out)
{
	int err = block_check(b, false);

	if (err != 0)
		return err;
	if (out == NULL)
		return -EINVAL;
	*out = b->stats;
	return 0;
}

const char *mk_block_name(const mk_block *b)
{
	return block_sched(b) != NULL ? b->name : NULL;
}

void mk__block_close_all(struct mk__sched *s)
{
	while (s->blocks != NULL) {
		struct mk_block *b = s->blocks;
		s->blocks = b->next;
		block_free(b);
	}
}
