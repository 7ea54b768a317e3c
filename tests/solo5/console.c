/* console: a unikernel with a C library of its own (libc/), as real ones have: printf, malloc,
 * memcpy. It says hello with its cmdline, then does what the cmdline's first word asks:
 *   (nothing)  exercise its libc at -O2 (GCC's memcpy/memset calls reach its own) and return 0
 *   exit N | return N | abort     end that way
 *   smash N    overflow a stack buffer by N bytes: the stack protector stops it
 *   null       write through a NULL pointer;  ud2  execute an invalid instruction
 *   exec       call into a data buffer (a `ret`, in .data, which is not executable)
 *   dup        make a raw system call, dup(1), as a unikernel must never do
 * Built with -DOWN_SSP it has a __stack_chk_fail of its own, which must be the one called. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "solo5.h"

struct record {
	char name[200];
	unsigned long values[64];
};

static struct record table[8]; /* .bss */
static int initialised = 42;   /* .data */
/* an x86-64 `ret`: valid code, so only the page's lack of PROT_EXEC can stop it */
static unsigned char data_code[16] = {0xc3};

#ifdef OWN_SSP
void __stack_chk_fail(void);
void __stack_chk_fail(void)
{
	puts("console: my own __stack_chk_fail");
	solo5_exit(77);
}
#endif

/* Copies and fills that GCC turns into memcpy and memset calls at -O2. */
static int exercise_libc(void)
{
	struct record r, *heap;
	int fails = 0;

	for (int i = 0; i < 64; i++)
		r.values[i] = (unsigned long)i * 3;
	memset(r.name, 0, sizeof(r.name));
	strncmp("a", "b", 1) < 0 ? (void)0 : (void)fails++;
	for (int i = 0; i < 8; i++)
		table[i] = r; /* a struct copy: a memcpy call */
	heap = malloc(8 * sizeof(*heap));
	if (heap == NULL)
		return 1;
	memcpy(heap, table, sizeof(table));
	fails += memcmp(heap, table, sizeof(table)) != 0;
	fails += heap[7].values[63] != 189;
	free(heap);
	char *again = calloc(1, 100);
	fails += again == NULL || again[99] != 0;
	free(again);
	char buf[32];
	snprintf(buf, sizeof(buf), "%d-%x-%s-%5u", -12, 255u, "ok", 7u);
	fails += strcmp(buf, "-12-ff-ok-    7") != 0;
	fails += initialised != 42;
	printf("libc: %s\n", fails == 0 ? "ok" : "FAILED");
	return fails;
}

static void __attribute__((noinline)) smash(const char *arg)
{
	volatile char buf[16]; /* volatile: the stores are not optimised away */
	volatile size_t n = sizeof(buf) + (size_t)atoi(arg);

	for (size_t i = 0; i < n; i++)
		buf[i] = 'A';
	printf("smash: wrote %d bytes into %d\n", (int)n, (int)sizeof(buf));
}

static long raw_dup(long fd)
{
	long r;

	__asm__ volatile("syscall"
	                 : "=a"(r)
	                 : "a"(32L /* dup */), "D"(fd)
	                 : "rcx", "r11", "memory");
	return r;
}

static const char *arg_of(const char *cmdline, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(cmdline, word, n) != 0 || (cmdline[n] != '\0' && cmdline[n] != ' '))
		return NULL;
	return cmdline[n] == ' ' ? cmdline + n + 1 : cmdline + n;
}

int solo5_app_main(const struct solo5_start_info *si)
{
	const char *cmd = si->cmdline, *arg;

	uk_heap_init(si->heap_start, si->heap_size);
	printf("Hello, world\ncmdline: [%s]\n", cmd);
	if ((arg = arg_of(cmd, "exit")) != NULL)
		solo5_exit(atoi(arg));
	if ((arg = arg_of(cmd, "return")) != NULL)
		return atoi(arg);
	if (arg_of(cmd, "abort") != NULL)
		solo5_abort();
	if ((arg = arg_of(cmd, "smash")) != NULL) {
		smash(arg);
		return 0;
	}
	if (arg_of(cmd, "null") != NULL) {
		volatile int *volatile p = NULL;
		*p = 1;
		puts("null: survived");
		return 0;
	}
	if (arg_of(cmd, "ud2") != NULL) {
		__asm__ volatile("ud2");
		return 0;
	}
	if (arg_of(cmd, "exec") != NULL) {
		void (*volatile fn)(void);
		/* an object pointer to a function pointer, through memcpy: ISO C has no cast */
		void *code = data_code;
		memcpy((void *)&fn, &code, sizeof(code));
		fn();
		puts("exec: survived");
		return 0;
	}
	if (arg_of(cmd, "dup") != NULL) {
		printf("dup: %ld\n", raw_dup(1));
		return 0;
	}
	return exercise_libc() == 0 ? SOLO5_EXIT_SUCCESS : SOLO5_EXIT_FAILURE;
}
