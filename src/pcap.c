/* --net-pcap:NAME=FILE: every frame the program receives and sends on NAME, in pcap format.
 *
 * The file is the classic libpcap format with nanosecond timestamps (magic 0xa1b23c4d, link type
 * Ethernet) that tcpdump, tshark and Wireshark read. Frames are recorded as the program sees
 * them: a sent frame when the program hands it over, a received one when the program gets it
 * (so with --net-fault, after the faults on the way in and before those on the way out).
 *
 * Each record (header and frame) goes to the file with one write(2) as the frame passes; nothing
 * is buffered in the process. So the file is complete up to the last frame whatever stops the
 * program: mk_run returning, SIGINT or SIGTERM, even SIGKILL. Closing the device closes the file.
 * If a write fails (disk full), capture stops with one line on stderr, and the traffic goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int mk__pcap_open(mk_net *n, const char *file)
{
	struct pcap_file_header h = {PCAP_MAGIC_NS,         2, 4, 0, 0, PCAP_SNAPLEN,
	                             PCAP_LINKTYPE_ETHERNET};
	struct iovec iov = {&h, sizeof(h)};
	struct mk__pcap *p = calloc(1, sizeof(*p));
	int err;

	if (p == NULL)
		return mk__fail(-ENOMEM, "net device '%s': out of memory", n->name);
	p->fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (p->fd < 0) {
		err = -errno;
		free(p);
		return mk__fail(err, "net device '%s': cannot create the capture file '%s': %s",
		                n->name, file, strerror(-err));
	}
	err = write_all(p->fd, &iov, 1, sizeof(h));
	if (err != 0) {
		close(p->fd);
		free(p);
		return mk__fail(err, "net device '%s': cannot write the capture file '%s': %s",
		                n->name, file, strerror(-err));
	}
	snprintf(p->file, sizeof(p->file), "%s", file);
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
