/* libFuzzer target: the pcap writer (src/pcap.c).
 *
 * The input is a list of frames (two length bytes, then that many bytes, up to the end of the
 * input), and a first byte that may set a file-size limit, so that a write fails part-way as on
 * a full disk. The frames are recorded through mk__pcap_frame into a file, which is then read
 * back and checked as a pcap reader would: the file header (nanosecond magic, version 2.4,
 * Ethernet), then for every frame written before any failure a whole record, its lengths equal
 * to the frame's, its bytes equal, its timestamps valid and in order, and nothing after the last
 * whole record: a failed write never leaves a torn record behind.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"

#define MAX_FRAMES 64

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_pcap: invariant broken: %s\n", what);
		abort();
	}
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

struct frame {
	const uint8_t *data;
	size_t len;
};

static size_t split(const uint8_t *in, size_t n, struct frame *f)
{
	size_t count = 0;

	while (n >= 2 && count < MAX_FRAMES) {
		size_t len = (size_t)in[0] << 8 | in[1];
		in += 2;
		n -= 2;
		if (len > n)
			len = n;
		f[count].data = in;
		f[count].len = len;
		count++;
		in += len;
		n -= len;
	}
	return count;
}

/* The file must hold the header and the first (whole) records, each as written, and no more. */
static void read_back(const char *path, const struct frame *f, size_t count, int limited)
{
	FILE *fp = fopen(path, "rb");
	uint8_t hdr[24], rec[16];
	uint64_t last_ts = 0;
	size_t i = 0;

	check(fp != NULL, "the capture file is gone");
	check(fread(hdr, 1, 24, fp) == 24 || limited, "the file header is missing");
	if (ferror(fp) || feof(fp)) {
		fclose(fp);
		return; /* the limit was below the file header: opening reported it */
	}
	check(get32(hdr) == 0xa1b23c4du, "wrong magic");
	check(hdr[4] == 2 && hdr[6] == 4, "wrong version");
	check(get32(hdr + 20) == 1, "link type is not Ethernet");
	for (;; i++) {
		size_t got = fread(rec, 1, 16, fp);
		if (got == 0)
			break;
		check(got == 16, "a torn record header");
		check(i < count, "more records than frames");
		check(get32(rec + 8) == f[i].len && get32(rec + 12) == f[i].len, "record lengths");
		check(get32(rec + 4) < 1000000000u, "nanoseconds out of range");
		uint64_t ts = (uint64_t)get32(rec) * 1000000000u + get32(rec + 4);
		check(ts >= last_ts, "timestamps go back");
		last_ts = ts;
		uint8_t *data = malloc(f[i].len + 1);
		check(data != NULL, "out of memory");
		check(fread(data, 1, f[i].len, fp) == f[i].len, "a torn record");
		check(memcmp(data, f[i].data, f[i].len) == 0, "record bytes differ from the frame");
		free(data);
	}
	check(limited || i == count, "records are missing");
	fclose(fp);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	static char path[64];
	struct frame f[MAX_FRAMES];
	struct mk_net net;
	struct rlimit old, lim;
	int limited = n > 0 && (in[0] & 1);

	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/tmp/fuzz_pcap.%d.pcap", (int)getpid());
		signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
	}
	size_t count = n > 1 ? split(in + 2, n - 2, f) : 0;
	memset(&net, 0, sizeof(net));
	snprintf(net.name, sizeof(net.name), "fuzz");
	getrlimit(RLIMIT_FSIZE, &old);
	if (limited) {
		lim = old;
		lim.rlim_cur = (rlim_t)(n > 1 ? in[1] : 0) * 64;
		setrlimit(RLIMIT_FSIZE, &lim);
	}
	int err = mk__pcap_open(&net, path);
	for (size_t i = 0; err == 0 && i < count; i++)
		mk__pcap_frame(&net, f[i].data, f[i].len);
	mk__pcap_close(&net);
	setrlimit(RLIMIT_FSIZE, &old);
	check(err == 0 || limited, "the capture file could not be created");
	if (err == 0)
		read_back(path, f, count, limited);
	unlink(path);
	return 0;
}
