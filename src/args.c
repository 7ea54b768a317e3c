/* Device arguments, as a Solo5 tender takes them: --net:NAME=IFACE, --net:NAME=@FD,
 * --net-mac:NAME=MAC, --block:NAME=FILE and --block-sector-size:NAME=N. They are taken out of argv;
 * a "--" ends them. A name given twice is kept and reported when the program connects that name (it
 * is the connect that cannot choose). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void mk__args_usage(void)
{
	printf(
	    "mkhost device options:\n"
	    "  --net:NAME=IFACE         attach net device NAME to the TAP interface IFACE\n"
	    "  --net:NAME=@FD           use the already-open TAP descriptor FD for NAME\n"
	    "  --net:NAME=unix:PATH[,mtu=N]  a cable to another program through the Unix\n"
	    "                           socket PATH (no root needed)\n"
	    "  --net:NAME=hub:LAN[,mtu=N][,latency=US][,rate=MBIT]  join NAME to the devices\n"
	    "                           of this program on LAN, an in-process switch; its\n"
	    "                           frames take US microseconds and MBIT Mbit/s to get there\n"
	    "  --net:NAME=slirp[,OPTS]  user-mode networking (libslirp): DHCP, the host's\n"
	    "                           loopback at 10.0.2.2; OPTS: "
	    "hostfwd=tcp:127.0.0.1:8080-:80,\n"
	    "                           net=10.0.2.0/24, mtu=N, restrict=on|off (outside access)\n"
	    "  --net-pcap:NAME=FILE     record every frame of NAME to FILE (pcap, for tshark)\n"
	    "  --net-fault:NAME=SPEC    inject faults on NAME, both ways; SPEC is a list of\n"
	    "                           drop=P,dup=P,corrupt=P,reorder=P (P: 0.1 or 10%%),\n"
	    "                           delay=MS, seed=S (the same seed, the same faults)\n"
	    "  --net-partition:LAN=FROM-TO:GROUPS  cut hub LAN into GROUPS (a,b|c) from FROM\n"
	    "                           to TO (times from the start: 10s-40s, 500ms-2s, ...)\n"
	    "  --net-down:NAME=FROM-TO  take the link of hub device NAME down from FROM to TO\n"
	    "  --net-mac:NAME=MAC       MAC address of NAME (default: random, locally "
	    "administered)\n"
	    "  --block:NAME=FILE        block device NAME on FILE (never created or truncated)\n"
	    "  --block-sector-size:NAME=N  sector size of NAME: a power of two >= 512 (512)\n"
	    "  --sandbox                open every device first, then allow only the system calls\n"
	    "                           and io_uring operations that devices need (seccomp)\n"
	    "  --busy-poll=US           before sleeping, poll for events this long (microseconds,\n"
	    "                           0 to 1000000; default 0, or the program's mk_config)\n"
	    "  --stack-size=SIZE        bytes of each task stack, K or M (16K to 1024M; default\n"
	    "                           256K, a Solo5 unikernel's 8M)\n"
	    "  --backend=NAME           the event loop: io_uring, epoll or auto (default auto)\n"
	    "  --clock=virtual          a simulated clock that jumps to the next deadline when\n"
	    "                           every task waits (hub: links only); --clock=real\n"
	    "  --seed=S                 the seed of random MACs and unseeded --net-fault specs\n"
	    "                           (default: random; 0 with --clock=virtual)\n"
	    "  --tx-batch=N             queue up to N frames written to a TAP and send them\n"
	    "                           together when the task suspends (io_uring; default 0)\n"
	    "  --                       the arguments after it go to the program untouched\n"
	    "environment: MKHOST_BACKEND=io_uring|epoll|auto (--backend wins over it)\n");
}

struct mk__netarg *mk__args_net(struct mk__args *a, const char *name)
{
	for (size_t i = 0; i < a->n_nets; i++)
		if (strcmp(a->nets[i].name, name) == 0)
			return &a->nets[i];
	return NULL;
}

static struct mk__netarg *net_add(struct mk__args *a, const char *name, size_t len)
{
	struct mk__netarg *n = realloc(a->nets, (a->n_nets + 1) * sizeof(*n));

	if (n == NULL)
		return NULL;
	a->nets = n;
	n = &a->nets[a->n_nets];
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	n->name = strndup(name, len);
	if (n->name == NULL)
		return NULL;
	a->n_nets++;
	return n;
}

/* The entry for NAME, created if needed. */
static struct mk__netarg *net_entry(struct mk__args *a, const char *name, size_t len)
{
	for (size_t i = 0; i < a->n_nets; i++)
		if (strlen(a->nets[i].name) == len && strncmp(a->nets[i].name, name, len) == 0)
			return &a->nets[i];
	return net_add(a, name, len);
}

static int parse_fd(const char *s, int *fd)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > INT_MAX)
		return -EINVAL;
	*fd = (int)v;
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		int hi = hex_digit(s[0]);
		int lo = hi < 0 ? -1 : hex_digit(s[1]);
		if (lo < 0)
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < 5 && *s++ != ':')
			return -EINVAL;
	}
	return *s == '\0' ? 0 : -EINVAL;
}

static int set_net(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                   const char *value)
{
	struct mk__netarg *n = net_entry(a, name, nlen);

	if (n == NULL)
		return -ENOMEM;
	n->times++;
	if (n->times > 1)
		return 0; /* reported at connect, with both values in hand */
	if (value[0] == '@') {
		if (parse_fd(value + 1, &n->fd) != 0)
			return mk__fail(-EINVAL,
			                "'%s': '%s' is not a file descriptor number; write @FD, "
			                "e.g. --net:%s=@3",
			                arg, value + 1, n->name);
		return 0;
	}
	n->value = strdup(value);
	return n->value == NULL ? -ENOMEM : 0;
}

static int set_mac(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                   const char *value)
{
	struct mk__netarg *n = net_entry(a, name, nlen);

	if (n == NULL)
		return -ENOMEM;
	if (n->has_mac)
		return mk__fail(-EINVAL, "'%s': the MAC of net device '%s' is given twice", arg,
		                n->name);
	if (parse_mac(value, n->mac) != 0)
		return mk__fail(-EINVAL,
		                "'%s': '%s' is not a MAC address; write six hex bytes, "
		                "e.g. 02:00:00:00:00:01",
		                arg, value);
	if (n->mac[0] & 1)
		return mk__fail(-EINVAL,
		                "'%s': %s is a multicast address; a device needs a unicast MAC "
		                "(first byte even, e.g. 02:...)",
		                arg, value);
	n->has_mac = true;
	return 0;
}

static int set_pcap(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                    const char *value)
{
	struct mk__netarg *n = net_entry(a, name, nlen);

	if (n == NULL)
		return -ENOMEM;
	if (n->pcap != NULL)
		return mk__fail(-EINVAL, "'%s': the capture file of net device '%s' is given twice",
		                arg, n->name);
	n->pcap = strdup(value);
	return n->pcap == NULL ? -ENOMEM : 0;
}

/* The spec is checked here, so that a bad one stops mk_run before anything starts. */
static int set_fault(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                     const char *value)
{
	struct mk__netarg *n = net_entry(a, name, nlen);

	if (n == NULL)
		return -ENOMEM;
	if (n->has_fault)
		return mk__fail(-EINVAL, "'%s': the faults of net device '%s' are given twice", arg,
		                n->name);
	int err = mk__fault_parse(arg, value, &n->fault);
	if (err == 0)
		n->has_fault = true;
	return err;
}

static struct mk__blockarg *block_entry(struct mk__args *a, const char *name, size_t len)
{
	struct mk__blockarg *b;

	for (size_t i = 0; i < a->n_blocks; i++)
		if (strlen(a->blocks[i].name) == len && strncmp(a->blocks[i].name, name, len) == 0)
			return &a->blocks[i];
	b = realloc(a->blocks, (a->n_blocks + 1) * sizeof(*b));
	if (b == NULL)
		return NULL;
	a->blocks = b;
	b = &a->blocks[a->n_blocks];
	memset(b, 0, sizeof(*b));
	b->name = strndup(name, len);
	if (b->name == NULL)
		return NULL;
	a->n_blocks++;
	return b;
}

struct mk__blockarg *mk__args_block(struct mk__args *a, const char *name)
{
	for (size_t i = 0; i < a->n_blocks; i++)
		if (strcmp(a->blocks[i].name, name) == 0)
			return &a->blocks[i];
	return NULL;
}

static int set_block(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                     const char *value)
{
	struct mk__blockarg *b = block_entry(a, name, nlen);

	if (b == NULL)
		return -ENOMEM;
	if (++b->times > 1)
		return 0; /* reported at connect, like net devices */
	b->file = strdup(value);
	return b->file == NULL ? -ENOMEM : 0;
}

static int set_sector_size(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                           const char *value)
{
	struct mk__blockarg *b = block_entry(a, name, nlen);
	int n;

	if (b == NULL)
		return -ENOMEM;
	if (b->sector_size != 0)
		return mk__fail(-EINVAL,
		                "'%s': the sector size of block device '%s' is given twice", arg,
		                b->name);
	if (parse_fd(value, &n) != 0 || n < 512 || n > (1 << 20) || (n & (n - 1)) != 0)
		return mk__fail(-EINVAL,
		                "'%s': a sector size must be a power of two from 512 to 1048576, "
		                "e.g. --block-sector-size:%s=4096",
		                arg, b->name);
	b->sector_size = (unsigned)n;
	return 0;
}

/* "FROM-TO": two times from the start of the run, each a whole number with a unit (us, ms, s
 * or m; ms when none), FROM before TO. */
static int parse_interval(const char *arg, const char *v, uint64_t *from, uint64_t *to,
                          const char **rest)
{
	uint64_t *t[2] = {from, to};

	for (int i = 0; i < 2; i++) {
		char *end;
		if (*v < '0' || *v > '9')
			break;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		uint64_t unit = 1000000; /* ms */
		if (strncmp(end, "us", 2) == 0)
			unit = 1000, end += 2;
		else if (strncmp(end, "ms", 2) == 0)
			end += 2;
		else if (*end == 's')
			unit = 1000000000, end += 1;
		else if (*end == 'm')
			unit = 60000000000ULL, end += 1;
		if (errno != 0 || n > UINT64_MAX / unit || *end != (i == 0 ? '-' : *end))
			break;
		*t[i] = (uint64_t)n * unit;
		v = end + (i == 0);
		if (i == 1) {
			if (*from >= *to)
				break;
			*rest = v;
			return 0;
		}
	}
	return mk__fail(-EINVAL,
	                "'%s': write the interval as FROM-TO, two times from the start with a unit "
	                "(us, ms, s or m), FROM before TO, e.g. 10s-40s",
	                arg);
}

static int add_change(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                      const char *value, bool down)
{
	struct mk__change c = {.down = down};
	const char *rest = "";
	int err = parse_interval(arg, value, &c.from_ns, &c.to_ns, &rest);

	if (err != 0)
		return err;
	if (down ? *rest != '\0' : (*rest != ':' || rest[1] == '\0'))
		return mk__fail(-EINVAL, "'%s': expected %s", arg,
		                down ? "--net-down:NAME=FROM-TO"
		                     : "--net-partition:LAN=FROM-TO:GROUPS, GROUPS as a,b|c");
	struct mk__change *list = realloc(a->changes, (a->n_changes + 1) * sizeof(*list));
	if (list == NULL)
		return -ENOMEM;
	a->changes = list;
	c.target = strndup(name, nlen);
	c.groups = down ? NULL : strdup(rest + 1);
	if (c.target == NULL || (!down && c.groups == NULL)) {
		free(c.target);
		free(c.groups);
		return -ENOMEM;
	}
	a->changes[a->n_changes++] = c;
	return 0;
}

static int set_partition(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                         const char *value)
{
	return add_change(a, arg, name, nlen, value, false);
}

static int set_down(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                    const char *value)
{
	return add_change(a, arg, name, nlen, value, true);
}

typedef int (*set_fn)(struct mk__args *a, const char *arg, const char *name, size_t nlen,
                      const char *value);

static const struct option {
	const char *opt;
	const char *value; /* what the value is, for messages */
	set_fn set;
} options[] = {
    {"--net", "IFACE", set_net},      {"--net-mac", "MAC", set_mac},
    {"--net-pcap", "FILE", set_pcap}, {"--net-fault", "SPEC", set_fault},
    {"--block", "FILE", set_block},   {"--block-sector-size", "N", set_sector_size},
    {"--net-partition", "FROM-TO:GROUPS", set_partition},
    {"--net-down", "FROM-TO", set_down},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* One argument that starts with "--net" or "--block": OPTION:NAME=VALUE. */
static int parse_one(struct mk__args *a, const char *arg)
{
	const char *colon = strchr(arg, ':');
	const char *eq = colon ? strchr(colon, '=') : NULL;
	const struct option *o = NULL;

	for (size_t i = 0; colon != NULL && i < N_OPTIONS; i++)
		if (strlen(options[i].opt) == (size_t)(colon - arg) &&
		    strncmp(arg, options[i].opt, (size_t)(colon - arg)) == 0)
			o = &options[i];
	if (o == NULL)
		return mk__fail(-EINVAL,
		                "unknown device option '%s'; the options are --net:NAME=IFACE, "
		                "--net:NAME=@FD, --net-mac:NAME=MAC, --net-pcap:NAME=FILE, "
		                "--net-fault:NAME=SPEC, --net-partition:LAN=FROM-TO:GROUPS, "
		                "--net-down:NAME=FROM-TO, --block:NAME=FILE and "
		                "--block-sector-size:NAME=N (see --help)",
		                arg);
	if (eq == NULL || eq == colon + 1)
		return mk__fail(-EINVAL, "'%s': expected %s:NAME=%s", arg, o->opt, o->value);
	if (eq[1] == '\0')
		return mk__fail(-EINVAL, "'%s': the value after '=' is empty", arg);
	return o->set(a, arg, colon + 1, (size_t)(eq - colon - 1), eq + 1);
}

/* Settings for a device that was never given. */
static int check_orphans(struct mk__args *a)
{
	for (size_t i = 0; i < a->n_nets; i++) {
		const struct mk__netarg *n = &a->nets[i];
		if (n->times == 0)
			return mk__fail(
			    -EINVAL,
			    "%s:%s is given but no --net:%s=IFACE; add the device or drop "
			    "its %s",
			    n->has_mac ? "--net-mac"
			    : n->pcap  ? "--net-pcap"
			               : "--net-fault",
			    n->name, n->name,
			    n->has_mac ? "MAC"
			    : n->pcap  ? "capture"
			               : "faults");
	}
	for (size_t i = 0; i < a->n_blocks; i++)
		if (a->blocks[i].times == 0)
			return mk__fail(
			    -EINVAL,
			    "--block-sector-size:%s is given but no --block:%s=FILE; add "
			    "the device or drop its sector size",
			    a->blocks[i].name, a->blocks[i].name);
	return 0;
}

static bool is_device_arg(const char *arg)
{
	return strncmp(arg, "--net:", 6) == 0 || strncmp(arg, "--net-", 6) == 0 ||
	       strncmp(arg, "--block:", 8) == 0 || strncmp(arg, "--block-", 8) == 0;
}

/* Every option of mkhost's, by its key (what comes before ':' or '='), with how it is written. */
static const struct known {
	const char *key;
	char sep;          /* ':' for the device options, '=' for the tuning ones, 0: no value */
	const char *value; /* for a suggestion that has none */
} known[] = {
    {"--net", ':', "NAME=IFACE"},     {"--net-mac", ':', "NAME=MAC"},
    {"--net-pcap", ':', "NAME=FILE"}, {"--net-fault", ':', "NAME=SPEC"},
    {"--block", ':', "NAME=FILE"},    {"--block-sector-size", ':', "NAME=N"},
    {"--net-partition", ':', "LAN=FROM-TO:GROUPS"},
    {"--net-down", ':', "NAME=FROM-TO"},
    {"--sandbox", 0, NULL},           {"--busy-poll", '=', "US"},
    {"--stack-size", '=', "SIZE"},    {"--backend", '=', "NAME"},
    {"--clock", '=', "virtual"},      {"--seed", '=', "S"},
    {"--tx-batch", '=', "N"},
};

/* Edit distance of (a) and (b), both shorter than 64 bytes, letters compared without case. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t row[64], diag, up;

	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			up = row[j];
			size_t best = diag + (tolower((unsigned char)a[i - 1]) !=
			                      tolower((unsigned char)b[j - 1]));
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* An argument before "--" that looks like one of mkhost's options but is not one (a typo, a
 * capital, '=' for ':', a value given to --sandbox) would otherwise reach main silently, and
 * the program would run without it. Refuse it, saying what it may have meant; a program that
 * takes such an argument itself gets it after "--". */
static int refuse_lookalike(const char *arg)
{
	size_t klen = strcspn(arg, ":=");
	const char *rest = arg + klen;
	char fix[300];

	if (strncmp(arg, "--", 2) != 0 || klen >= 64)
		return 0;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const struct known *k = &known[i];
		if (strlen(k->key) == klen && strncmp(arg, k->key, klen) == 0 &&
		    (*rest == k->sep || (k->sep == '=' && *rest == '\0')))
			return 0; /* written right (or a tuning option without its value, which its
			             own parser refuses with the fix) */
	}
	const struct known *k = NULL;
	size_t best = 2; /* a look-alike is at most one edit away, letters' case aside */
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		size_t d = distance(arg, klen, known[i].key, strlen(known[i].key));
		if (d < best) {
			best = d;
			k = &known[i];
		}
	}
	if (k != NULL) {
		if (k->sep == 0)
			snprintf(fix, sizeof(fix), "%s (it takes no value)", k->key);
		else if (*rest == ':' || *rest == '=')
			snprintf(fix, sizeof(fix), "%s%c%s%s", k->key, k->sep,
			         k->sep == ':' && *rest == '=' ? "NAME=" : "", rest + 1);
		else
			snprintf(fix, sizeof(fix), "%s%c%s", k->key, k->sep, k->value);
		return mk__fail(-EINVAL,
		                "'%s' is not an option of mkhost's: did you mean %s? A program "
		                "that takes '%s' itself must get it after '--'",
		                arg, fix, arg);
	}
	return 0;
}

/* Record every device argument first and change argv only when all of them are good. */
int mk__args_parse(struct mk__args *a, int *argc, char **argv)
{
	bool help = false;
	int i, out = 1;

	/* argv ends at argc or at the first NULL, whichever comes first (a program may hand us an
	 * argv that an earlier mk_run already shortened) */
	for (i = 1; i < *argc; i++)
		if (argv[i] == NULL)
			*argc = i;
	for (i = 1; i < *argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--help") == 0)
			help = true;
		if (strcmp(argv[i], "--sandbox") == 0)
			a->sandbox = true;
		else if (refuse_lookalike(argv[i]) != 0)
			return -EINVAL;
		else if (mk__tuning_is(argv[i])) {
			int err = mk__tuning_parse(&a->tuning, argv[i]);
			if (err != 0)
				return err;
		} else if (is_device_arg(argv[i])) {
			int err = parse_one(a, argv[i]);
			if (err != 0)
				return err;
		}
	}
	int err = check_orphans(a);
	if (err != 0)
		return err;
	for (i = 1; i < *argc && strcmp(argv[i], "--") != 0; i++)
		if (!is_device_arg(argv[i]) && strcmp(argv[i], "--sandbox") != 0 &&
		    !mk__tuning_is(argv[i]))
			argv[out++] = argv[i];
	for (i++; i < *argc; i++)
		argv[out++] = argv[i];
	if (*argc > 0) {
		argv[out] = NULL;
		*argc = out;
	}
	if (help)
		mk__args_usage();
	return 0;
}

void mk__args_free(struct mk__args *a)
{
	for (size_t i = 0; i < a->n_nets; i++) {
		free(a->nets[i].name);
		free(a->nets[i].value);
		free(a->nets[i].pcap);
	}
	free(a->nets);
	a->nets = NULL;
	a->n_nets = 0;
	for (size_t i = 0; i < a->n_blocks; i++) {
		free(a->blocks[i].name);
		free(a->blocks[i].file);
	}
	free(a->blocks);
	a->blocks = NULL;
	a->n_blocks = 0;
	for (size_t i = 0; i < a->n_changes; i++) {
		free(a->changes[i].target);
		free(a->changes[i].groups);
	}
	free(a->changes);
	a->changes = NULL;
	a->n_changes = 0;
}
