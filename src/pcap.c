/* --net-pcap:NAME=FILE: every frame the program receives and sends on NAME, in pcap format.
 *
 * The file is the classic libpcap format with nanosecond timestamps (magic 0xa1b23c4d, link type
 * Ethernet) that tcpdump, tshark and Wireshark read. Frames are recorded as the program sees
 * them: a sent frame when the program hands it over, a received one when the program gets it
 * (so with --net-fault, after the faults on the way in and before those on the way out).
 *
 * Each record (header and frame) goes to the file with one write(2) as the frame passes; nothing
 * is buffered in the process. So the file is complete up to the last frame whatever stops the
 * program: mk_run returning, SIGINT or SIGTERM, even SIGKILL, with one exception no process can
 * prevent: the kernel ends a write(2) between two pages of the file when a fatal signal is
 * pending, so a SIGKILL landing inside the write of a record that crosses a page may leave that
 * last record cut short (readers show every frame before it). Closing the device closes the
 * file.
 * If a write fails (disk full), capture stops with one line on stderr, and the traffic goes on.
 *
 * The file is emptied only once it is known to be a regular file of its own: not a FIFO or a
 * device (opened non-blocking, so that open(2) never waits for a FIFO's reader), not the file of
 * a block device or of another device's capture, compared by inode so that links are caught.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

#define PCAP_MAGIC_NS          0xa1b23c4du
#define PCAP_LINKTYPE_ETHERNET 1
#define PCAP_SNAPLEN           262144

struct mk__pcap {
	int fd;
	off_t size;     /* bytes of whole records written: a torn record is cut off again */
	char file[256]; /* for the message when a write fails */
};

struct pcap_file_header {
	uint32_t magic;
	uint16_t version_major, version_minor;
	int32_t thiszone;
	uint32_t sigfigs, snaplen, linktype;
};

struct pcap_record_header {
	uint32_t ts_sec, ts_nsec, caplen, len;
};

static int write_all(int fd, const struct iovec *iov, int n, size_t total)
{
	ssize_t w = writev(fd, iov, n);

	if (w == (ssize_t)total)
		return 0;
	return w < 0 ? -errno : -ENOSPC;
}

/* What kind of file (mode) is, for a sentence. */
static const char *file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFDIR:
		return "a directory";
	case S_IFSOCK:
		return "a socket";
	default:
		return "not a regular file";
	}
}

static int not_regular(mk_net *n, const char *file, mode_t mode)
{
	return mk__fail(-EINVAL,
	                "net device '%s': the capture file '%s' is %s, not a regular file; give "
	                "--net-pcap:%s= the path of a regular file (it is created, or emptied)",
	                n->name, file, file_kind(mode), n->name);
}

static bool same_file(const char *path, const struct stat *st)
{
	struct stat o;

	return stat(path, &o) == 0 && o.st_dev == st->st_dev && o.st_ino == st->st_ino;
}

/* The capture (st) must not be a file that another device of the command line uses, whatever
 * name it goes by (a hard link, a symbolic link, another spelling of the path): emptying it
 * would destroy a block image, and two devices writing one capture overwrite each other. */
static int clash(mk_net *n, const char *file, const struct stat *st)
{
	const struct mk__args *a = &n->sched->args;

	for (size_t i = 0; i < a->n_blocks; i++)
		if (a->blocks[i].file != NULL && same_file(a->blocks[i].file, st))
			return mk__fail(
			    -EINVAL,
			    "net device '%s': the capture file '%s' is the file of block "
			    "device '%s' ('%s'); capturing into it would destroy it; give "
			    "--net-pcap:%s= a file of its own",
			    n->name, file, a->blocks[i].name, a->blocks[i].file, n->name);
	for (size_t i = 0; i < a->n_nets; i++)
		if (strcmp(a->nets[i].name, n->name) != 0 && a->nets[i].pcap != NULL &&
		    same_file(a->nets[i].pcap, st))
			return mk__fail(
			    -EINVAL,
			    "net device '%s': the capture file '%s' is also the capture "
			    "file of net device '%s' ('%s'); the two would overwrite each "
			    "other's records; give each device a file of its own",
			    n->name, file, a->nets[i].name, a->nets[i].pcap);
	return 0;
}

static int open_error(mk_net *n, const char *file, int err)
{
	/* Not -ENOENT, which mk_net_connect returns for a device not on the command line. */
	if (err == -ENOENT)
		return mk__fail(
		    -ENOTDIR,
		    "net device '%s': cannot create the capture file '%s': its directory "
		    "does not exist; create it (mkdir -p) or give --net-pcap:%s= a file "
		    "in an existing directory",
		    n->name, file, n->name);
	if (err == -ENXIO) /* O_NONBLOCK on a FIFO with no reader, swapped in after the check */
		return not_regular(n, file, S_IFIFO);
	if (err == -EACCES || err == -EPERM || err == -EROFS)
		return mk__fail(
		    err,
		    "net device '%s': cannot create the capture file '%s': %s; give "
		    "--net-pcap:%s= a file you may write, in a directory you may write to",
		    n->name, file, strerror(-err), n->name);
	return mk__fail(err, "net device '%s': cannot create the capture file '%s': %s", n->name,
	                file, strerror(-err));
}

#define OPEN_FLAGS (O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

/* Open (file) for the capture without emptying it yet, and without ever blocking: O_NONBLOCK,
 * because open(2) of a FIFO waits for a reader (and FIFOs are refused anyway). Returns the
 * descriptor, or a negative errno value with the sentence set. (*created) says whether this
 * call made the file. */
static int open_capture(mk_net *n, const char *file, bool *created)
{
	struct stat st;
	int fd, err;

	if (file[0] == '\0')
		return mk__fail(-EINVAL,
		                "net device '%s': --net-pcap:%s= gives no file; give the path of "
		                "the capture, e.g. --net-pcap:%s=%s.pcap",
		                n->name, n->name, n->name, n->name);
	/* Look before opening: opening a device may have effects of its own. */
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
		return not_regular(n, file, st.st_mode);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | OPEN_FLAGS, 0644);
	*created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(file, O_WRONLY | OPEN_FLAGS);
	if (fd < 0 && errno == ENOENT && !*created) /* a dangling symbolic link, or just deleted */
		fd = open(file, O_WRONLY | O_CREAT | OPEN_FLAGS, 0644);
	if (fd < 0)
		return open_error(n, file, -errno);
	/* What was opened, whatever happened to the path since the look. */
	if (fstat(fd, &st) != 0) {
		err = mk__fail(-errno, "net device '%s': cannot examine the capture file '%s': %s",
		               n->name, file, strerror(errno));
		*created = false;
	} else if (!S_ISREG(st.st_mode)) {
		err = not_regular(n, file, st.st_mode);
	} else {
		err = n->sched != NULL ? clash(n, file, &st) : 0;
	}
	if (err != 0) {
		if (*created && same_file(file, &st))
			unlink(file); /* leave nothing behind */
		close(fd);
		return err;
	}
	return fd;
}

int mk__pcap_open(mk_net *n, const char *file)
{
	struct pcap_file_header h = {PCAP_MAGIC_NS,         2, 4, 0, 0, PCAP_SNAPLEN,
	                             PCAP_LINKTYPE_ETHERNET};
	struct iovec iov = {&h, sizeof(h)};
	struct mk__pcap *p = calloc(1, sizeof(*p));
	bool created = false;
	int err;

	if (p == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", n->name);
	p->fd = open_capture(n, file, &created);
	if (p->fd < 0) {
		err = p->fd;
		free(p);
		return err;
	}
	/* Only now, every check passed, is an existing file emptied. */
	err = ftruncate(p->fd, 0) == 0 ? write_all(p->fd, &iov, 1, sizeof(h)) : -errno;
	if (err != 0) {
		close(p->fd);
		if (created)
			unlink(file);
		free(p);
		return mk__fail(err, "net device '%s': cannot write the capture file '%s': %s",
		                n->name, file, strerror(-err));
	}
	mk__elide(p->file, sizeof(p->file), file);
	p->size = sizeof(h);
	n->pcap = p;
	return 0;
}

void mk__pcap_frame(mk_net *n, const uint8_t *frame, size_t len)
{
	struct mk__pcap *p = n->pcap;
	uint64_t now = mk_clock_wall();
	struct pcap_record_header h = {(uint32_t)(now / 1000000000u), (uint32_t)(now % 1000000000u),
	                               (uint32_t)len, (uint32_t)len};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)frame, len}};
	int err;

	if (p == NULL || p->fd < 0)
		return;
	err = write_all(p->fd, iov, 2, sizeof(h) + len);
	if (err == 0) {
		p->size += (off_t)(sizeof(h) + len);
	} else {
		/* Cut a torn record off, so that readers find every record whole. */
		int cut = ftruncate(p->fd, p->size);
		fprintf(stderr,
		        "mkhost: net device '%s': writing the capture '%s' failed (%s); "
		        "capture stopped%s\n",
		        n->name, p->file, strerror(-err),
		        cut == 0 ? "" : ", its last record is torn");
		close(p->fd);
		p->fd = -1;
	}
}

void mk__pcap_close(mk_net *n)
{
	struct mk__pcap *p = n->pcap;

	if (p == NULL)
		return;
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	n->pcap = NULL;
}
