/* main() for Solo5 programs: what a Solo5 tender does before and after the unikernel runs.
 *
 *   ./app [--mem=MB] [device options] [--] [ARGS...]
 *
 * Options come first, as on the tenders; the first "--", or else the first argument that is not
 * an option, ends them, and what follows is the unikernel's cmdline. The device options are
 * mk_run's (--net:, --net-mac:, --block:, --block-sector-size:). Every device named is attached
 * before solo5_app_main() runs, and one that cannot be stops the program with exit status 1, the
 * way a tender refuses to start; an unknown option or a malformed --mem does too.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "host.h"
#include "internal.h"
#include "mkhost.h"
#include "solo5.h"

bool mk__solo5_quiet;

#define DEFAULT_MEM_MB 512               /* the tenders' default */
#define APP_STACK      (8 * 1024 * 1024) /* as a Linux main thread gets */

struct dev_name {
	enum mk__solo5_kind kind;
	const char *name; /* points into argv */
	size_t len;
	const char *value; /* after the '=' */
};

struct launch {
	int argc; /* the options for mk_run, argv[0] first (mk_run takes its own out) */
	char **argv;
	int main_argc; /* main()'s, untouched */
	char **main_argv;
	struct dev_name *devs;
	size_t n_devs;
	struct solo5_start_info info;
	int status;
	bool stopped; /* by a signal, now in (status) */
};

static void usage(const char *prog)
{
	printf("usage: %s [--mem=MB] [DEVICE OPTIONS] [--] [ARGS...]\n"
	       "A Solo5 unikernel run as a Linux program by mkhost. ARGS are its command line.\n"
	       "  --mem=MB                 size of the heap in megabytes (default %d)\n",
	       prog, DEFAULT_MEM_MB);
	mk__args_usage();
}

static int parse_mem(const char *arg, size_t *bytes)
{
	const char *v = arg + strlen("--mem=");
	char *end;
	unsigned long long mb;

	errno = 0;
	mb = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || mb == 0 ||
	    mb > (SIZE_MAX >> 20)) {
		fprintf(stderr,
		        "mkhost: malformed '%s': write the heap size in megabytes, e.g. --mem=64\n",
		        arg);
		return -EINVAL;
	}
	*bytes = (size_t)mb << 20;
	return 0;
}

/* The name of a --net:NAME=... or --block:NAME=... argument, recorded for attaching. */
static void note_device(struct launch *l, const char *arg)
{
	static const struct {
		const char *prefix;
		enum mk__solo5_kind kind;
	} kinds[] = {{"--net:", MK__SOLO5_NET}, {"--block:", MK__SOLO5_BLOCK}};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t plen = strlen(kinds[i].prefix);
		const char *eq;
		if (strncmp(arg, kinds[i].prefix, plen) != 0)
			continue;
		eq = strchr(arg + plen, '=');
		if (eq == NULL)
			return; /* mk_run says what is wrong with it */
		l->devs[l->n_devs].kind = kinds[i].kind;
		l->devs[l->n_devs].name = arg + plen;
		l->devs[l->n_devs].len = (size_t)(eq - (arg + plen));
		l->devs[l->n_devs].value = eq + 1;
		l->n_devs++;
	}
}

/* The cmdline: (args) joined by spaces, without Solo5's own leading --solo5: flags; NULL, with
 * (*bad) set and a line on stderr, when a leading one is not a Solo5 flag. */
static char *join_cmdline(int n, char **args, bool *bad)
{
	size_t len = 1;
	char *s, *p;

	while (n > 0 && strncasecmp(args[0], "--solo5", 7) == 0) {
		if (strcmp(args[0], "--solo5:quiet") != 0 && strcmp(args[0], "--solo5:debug") != 0) {
			/* A typo would otherwise reach the unikernel as its first argument, and
			 * the flag it meant would silently not apply. */
			fprintf(stderr,
			        "mkhost: '%s' is not one of the Solo5 flags, which are --solo5:quiet "
			        "and --solo5:debug; a unikernel that takes it itself must get it "
			        "after another argument\n",
			        args[0]);
			*bad = true;
			return NULL;
		}
		/* the last one wins, as Solo5's log level */
		mk__solo5_quiet = strcmp(args[0], "--solo5:quiet") == 0;
		args++;
		n--;
	}
	for (int i = 0; i < n; i++)
		len += strlen(args[i]) + 1;
	s = p = malloc(len);
	if (s == NULL)
		return NULL;
	*p = '\0';
	for (int i = 0; i < n; i++) {
		size_t k = strlen(args[i]);
		if (i > 0)
			*p++ = ' ';
		memcpy(p, args[i], k + 1);
		p += k;
	}
	return s;
}

/* The sector size given for block device (d), or 0 when none was; from the options. */
static unsigned long sector_size_of(const struct launch *l, const struct dev_name *d)
{
	static const char prefix[] = "--block-sector-size:";
	unsigned long n = 0;

	for (int i = 1; i < l->main_argc && strcmp(l->main_argv[i], "--") != 0; i++) {
		const char *a = l->main_argv[i];
		if (strncmp(a, prefix, sizeof(prefix) - 1) == 0 &&
		    strncmp(a + sizeof(prefix) - 1, d->name, d->len) == 0 &&
		    a[sizeof(prefix) - 1 + d->len] == '=')
			n = strtoul(a + sizeof(prefix) - 1 + d->len + 1, NULL, 10);
	}
	return n;
}

/* Solo5's tenders refuse these before mkhost would; scripts written for them look for their
 * words, so they come first, and mkhost's sentence with the fix follows. */
static void solo5_block_words(const struct launch *l, const struct dev_name *d)
{
	unsigned long sector = sector_size_of(l, d);
	struct stat st;

	if (sector == 0)
		sector = 512;
	if (stat(d->value, &st) != 0 || !S_ISREG(st.st_mode) || (sector & (sector - 1)) != 0)
		return;
	if ((unsigned long long)st.st_size % sector != 0)
		fprintf(stderr,
		        "mkhost: %.*s: Backing storage size must be block aligned (%lu bytes)\n",
		        (int)d->len, d->name, sector);
	else if ((unsigned long long)st.st_size < sector)
		fprintf(
		    stderr,
		    "mkhost: %.*s: Backing storage must be at least 1 block (%lu bytes) in size\n",
		    (int)d->len, d->name, sector);
}

/* --block-sector-size:NAME=N as a tender checks it; mk_run then refuses it with its own fix. */
static void solo5_sector_size_words(const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *end;
	unsigned long n;

	if (strncmp(arg, "--block-sector-size:", 20) != 0 || eq == NULL)
		return;
	n = strtoul(eq + 1, &end, 10);
	if (eq[1] >= '0' && eq[1] <= '9' && *end == '\0' && n >= 512 && (n & (n - 1)) == 0)
		return;
	fprintf(stderr, "mkhost: Block size must be a multiple of 2 greater than or equal 512\n");
}

static int attach_all(struct launch *l)
{
	for (size_t i = 0; i < l->n_devs; i++) {
		char name[256];
		int err;

		snprintf(name, sizeof(name), "%.*s", (int)l->devs[i].len, l->devs[i].name);
		err = mk__solo5_attach(l->devs[i].kind, name);
		if (err == -ENOSPC) {
			fprintf(stderr,
			        "mkhost: more than 64 devices; a Solo5 program has 64 handles\n");
			return err;
		}
		if (err != 0) {
			if (l->devs[i].kind == MK__SOLO5_BLOCK)
				solo5_block_words(l, &l->devs[i]);
			fprintf(stderr, "mkhost: %s\n",
			        *mk_last_error() ? mk_last_error() : mk_strerror(err));
			return err;
		}
	}
	return 0;
}

/* A random canary, as Solo5 gives its own at start, with a zero low byte as glibc's has (a string
 * overflow cannot write it). AT_RANDOM holds 16 random bytes the kernel gave the process. */
static void init_stack_guard(void)
{
	const uint8_t *r = (const uint8_t *)getauxval(AT_RANDOM);
	uintptr_t g = 0;

	if (r != NULL)
		memcpy(&g, r + 8, sizeof(g)); /* glibc's own canary takes the first 8 */
	mk__solo5_stack_chk_guard = g & ~(uintptr_t)0xff;
}

/* The unikernel's manifest, when it was linked with one (mkhost-solo5-elftool gen-manifest);
 * NULL otherwise, and then every device given on the command line is attached. */
extern const struct mk__solo5_mft mk__solo5_manifest __attribute__((weak));

static const char *mft_type_name(uint32_t type)
{
	return type == MK__SOLO5_MFT_NET_BASIC ? "NET_BASIC" : "BLOCK_BASIC";
}

static bool mft_valid(const struct mk__solo5_mft *m)
{
	if (m->version != MK__SOLO5_MFT_VERSION || m->entries > MK__SOLO5_MFT_MAX_ENTRIES)
		return false;
	for (uint32_t i = 0; i < m->entries; i++)
		if (memchr(m->e[i].name, '\0', sizeof(m->e[i].name)) == NULL ||
		    m->e[i].name[0] == '\0' ||
		    (m->e[i].type != MK__SOLO5_MFT_NET_BASIC &&
		     m->e[i].type != MK__SOLO5_MFT_BLOCK_BASIC))
			return false;
	return true;
}

/* Check the devices of the command line against the manifest, as a tender does: each device
 * given must be declared, with its kind, and each declared one must be given. */
static int check_manifest(const struct launch *l, const struct mk__solo5_mft *m, const char *prog)
{
	for (size_t i = 0; i < l->n_devs; i++) {
		const struct dev_name *d = &l->devs[i];
		uint32_t want =
		    d->kind == MK__SOLO5_NET ? MK__SOLO5_MFT_NET_BASIC : MK__SOLO5_MFT_BLOCK_BASIC;
		bool found = false;
		for (uint32_t j = 0; j < m->entries && !found; j++)
			found = m->e[j].type == want && strlen(m->e[j].name) == d->len &&
			        strncmp(m->e[j].name, d->name, d->len) == 0;
		if (!found) {
			fprintf(stderr,
			        "mkhost: Resource not declared in manifest: '%.*s'\n"
			        "mkhost: %s's manifest declares no %s device '%.*s'; drop "
			        "--%s:%.*s or declare it in the unikernel's manifest.json\n",
			        (int)d->len, d->name, prog, mft_type_name(want), (int)d->len,
			        d->name, d->kind == MK__SOLO5_NET ? "net" : "block", (int)d->len,
			        d->name);
			return -EINVAL;
		}
	}
	for (uint32_t j = 0; j < m->entries; j++) {
		bool given = false;
		for (size_t i = 0; i < l->n_devs && !given; i++)
			given = strlen(m->e[j].name) == l->devs[i].len &&
			        strncmp(m->e[j].name, l->devs[i].name, l->devs[i].len) == 0;
		if (!given) {
			bool net = m->e[j].type == MK__SOLO5_MFT_NET_BASIC;
			fprintf(
			    stderr,
			    "mkhost: Device '%s' of type %s declared but not attached\n"
			    "mkhost: the unikernel's manifest declares it; give it with %s:%s=%s\n",
			    m->e[j].name, mft_type_name(m->e[j].type), net ? "--net" : "--block",
			    m->e[j].name, net ? "IFACE" : "FILE");
			return -EINVAL;
		}
	}
	return 0;
}

static int app_task(int argc, char **argv, void *arg)
{
	struct launch *l = arg;

	if (argc > 1) {
		fprintf(stderr, "mkhost: invalid option '%s'; see --help\n", argv[1]);
		l->status = 1;
		return 0;
	}
	if (attach_all(l) != 0) {
		l->status = 1;
		return 0;
	}
	init_stack_guard();
	mk__solo5_tls_setup();
	mk__solo5_tls_wrap_signals(); /* mk_run's are in place by now */
	l->stopped = mk__solo5_run_app(&l->info, &l->status) == -EINTR;
	return 0;
}

int main(int argc, char **argv)
{
	struct launch l = {0};
	struct mk_config cfg = {.stack_size = APP_STACK};
	size_t mem = (size_t)DEFAULT_MEM_MB << 20;
	char *cmdline = NULL;
	void *heap = MAP_FAILED;
	int i, rc, status = 1;

	l.argv = calloc((size_t)argc + 1, sizeof(*l.argv));
	l.devs = calloc((size_t)argc + 1, sizeof(*l.devs));
	if (l.argv == NULL || l.devs == NULL)
		goto out;
	l.argv[l.argc++] = argv[0];
	l.main_argc = argc;
	l.main_argv = argv;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "--help") == 0) {
			usage(argv[0]);
			status = 0;
			goto out;
		}
		if (strncmp(argv[i], "--mem=", 6) == 0) {
			if (parse_mem(argv[i], &mem) != 0)
				goto out;
			continue;
		}
		note_device(&l, argv[i]);
		solo5_sector_size_words(argv[i]);
		l.argv[l.argc++] = argv[i];
	}
	if (&mk__solo5_manifest != NULL) {
		if (!mft_valid(&mk__solo5_manifest)) {
			fprintf(stderr,
			        "mkhost: %s: Solo5 manifest is invalid; rebuild it with "
			        "mkhost-solo5-elftool gen-manifest\n",
			        argv[0]);
			goto out;
		}
		if (check_manifest(&l, &mk__solo5_manifest, argv[0]) != 0)
			goto out;
	}
	bool bad_flag = false;
	cmdline = join_cmdline(argc - i, argv + i, &bad_flag);
	if (cmdline == NULL) {
		if (!bad_flag)
			fprintf(stderr, "mkhost: no memory for the cmdline\n");
		goto out;
	}
	heap = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	            -1, 0);
	if (heap == MAP_FAILED) {
		fprintf(stderr, "mkhost: cannot map a heap of --mem=%zu MB: %s\n", mem >> 20,
		        strerror(errno));
		goto out;
	}
	l.info.cmdline = cmdline;
	l.info.heap_start = (uintptr_t)heap;
	l.info.heap_size = mem;

	rc = mk_run_config(&cfg, l.argc, l.argv, app_task, &l);
	mk__solo5_detach_all();
	if (l.stopped) {
		/* Stopped by SIGINT or SIGTERM: die of it, as a tender would, now that the devices
		 * are closed. mk_run has given the signal back its default action. */
		if (l.status > 0) {
			signal(l.status, SIG_DFL);
			raise(l.status);
		}
		status = l.status > 0 ? 128 + l.status : 1;
	} else if (rc < 0 && rc != -EINTR) {
		if (rc != -EINVAL) /* mk_run has printed its argument errors */
			fprintf(stderr, "mkhost: %s\n", mk_strerror(rc));
		status = 1;
	} else {
		status = l.status;
	}
out:
	if (heap != MAP_FAILED)
		munmap(heap, mem);
	free(cmdline);
	free(l.devs);
	free(l.argv);
	return status;
}
