/* libFuzzer target: device argument parsing (mk__args_parse / mk__args_free).
 *
 * The input is split at NUL bytes into arguments, after an argv[0]. Checked for every input:
 * - a failure (-EINVAL or -ENOMEM) leaves argv and argc untouched, and -EINVAL comes with a
 *   sentence in mk_last_error();
 * - a success removes exactly the device arguments (and --sandbox, the tuning options) before
 *   the first "--" and the "--" itself, keeps every other argument in order, and NULL-terminates
 *   argv;
 * - every recorded device is well formed: a non-empty name without '=', an interface name or a
 *   descriptor >= 0, a unicast MAC, a power-of-two sector size from 512;
 * - nothing leaks (ASan's leak check) and nothing is read past an argument (ASan).
 * Each argument is a separate allocation of exactly its length + 1, so an overread is caught. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_ARGS 64

/* The arguments mkhost takes for itself (before a "--"): the device options, --sandbox and the
 * tuning options (--busy-poll=, --stack-size=, --backend=, --clock=, --seed=, --tx-batch=). */
static int is_mkhost_arg(const char *s)
{
	return strncmp(s, "--net:", 6) == 0 || strncmp(s, "--net-", 6) == 0 ||
	       strncmp(s, "--block:", 8) == 0 || strncmp(s, "--block-", 8) == 0 ||
	       strcmp(s, "--sandbox") == 0 || mk__tuning_is(s);
}

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_args: invariant broken: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *args[MAX_ARGS + 1];
	char *argv[MAX_ARGS + 2];
	char *orig[MAX_ARGS + 2];
	int n = 0;

	/* argv[0], then the pieces of the input between NULs (an empty input is no argument). */
	args[n++] = strdup("fuzz");
	for (size_t start = 0; size > 0 && start <= size && n <= MAX_ARGS;) {
		const uint8_t *nul = memchr(data + start, 0, size - start);
		size_t len = nul ? (size_t)(nul - (data + start)) : size - start;
		char *s = malloc(len + 1);
		if (s == NULL)
			break;
		memcpy(s, data + start, len);
		s[len] = '\0';
		args[n++] = s;
		start += len + 1;
	}
	for (int i = 0; i < n; i++)
		argv[i] = orig[i] = args[i];
	argv[n] = orig[n] = NULL;

	struct mk__args a = {0};
	int argc = n;
	mk__clear_error();
	int err = mk__args_parse(&a, &argc, argv);

	if (err != 0) {
		check(err == -EINVAL || err == -ENOMEM, "an error other than -EINVAL or -ENOMEM");
		check(argc == n, "argc changed by a failed parse");
		for (int i = 0; i <= n; i++)
			check(argv[i] == orig[i], "argv changed by a failed parse");
		if (err == -EINVAL)
			check(mk_last_error()[0] != '\0', "-EINVAL without a sentence");
	} else {
		/* What must remain: non-device arguments before "--", everything after it. */
		char *want[MAX_ARGS + 2];
		int w = 0, i;
		want[w++] = orig[0];
		for (i = 1; i < n && strcmp(orig[i], "--") != 0; i++)
			if (!is_mkhost_arg(orig[i]))
				want[w++] = orig[i];
		for (i++; i < n; i++)
			want[w++] = orig[i];
		check(argc == w, "argc after parse is not the count of non-device arguments");
		for (i = 0; i < w; i++)
			check(argv[i] == want[i], "argv after parse is not the non-device arguments in order");
		check(argv[argc] == NULL, "argv not NULL-terminated after parse");

		for (size_t k = 0; k < a.n_nets; k++) {
			const struct mk__netarg *na = &a.nets[k];
			check(na->name != NULL && na->name[0] != '\0', "a net device without a name");
			check(strchr(na->name, '=') == NULL, "a net device name with '='");
			check(na->times >= 1, "a net device recorded but never given");
			check(mk__args_net(&a, na->name) == na, "mk__args_net does not find a device");
			if (na->times == 1)
				check((na->value != NULL && na->value[0] != '\0') || na->fd >= 0,
				      "a net device with neither an interface nor a descriptor");
			if (na->has_mac)
				check(!(na->mac[0] & 1), "a multicast MAC accepted");
		}
		for (size_t k = 0; k < a.n_blocks; k++) {
			const struct mk__blockarg *b = &a.blocks[k];
			check(b->name != NULL && b->name[0] != '\0', "a block device without a name");
			check(b->times >= 1, "a block device recorded but never given");
			check(mk__args_block(&a, b->name) == b, "mk__args_block does not find a device");
			if (b->times == 1)
				check(b->file != NULL && b->file[0] != '\0', "a block device without a file");
			check(b->sector_size == 0 ||
			          (b->sector_size >= 512 && (b->sector_size & (b->sector_size - 1)) == 0),
			      "a bad sector size accepted");
		}
	}
	mk__args_free(&a);
	check(a.n_nets == 0 && a.nets == NULL, "mk__args_free left devices behind");
	for (int i = 0; i < n; i++)
		free(args[i]);
	return 0;
}
