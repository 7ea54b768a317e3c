/* Helpers for the test unikernels, which use solo5.h and nothing else (no C library), as a
 * unikernel on a real Solo5 target would. */
#ifndef SOLO5_TEST_UTIL_H
#define SOLO5_TEST_UTIL_H

#include "solo5.h"

static inline size_t t_strlen(const char *s)
{
	size_t n = 0;
	while (s[n] != '\0')
		n++;
	return n;
}

static inline int t_streq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b)
		a++, b++;
	return *a == *b;
}

static inline void t_puts(const char *s)
{
	solo5_console_write(s, t_strlen(s));
}

static inline void t_putu(uint64_t v)
{
	char buf[21];
	size_t i = sizeof(buf);
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	solo5_console_write(buf + i, sizeof(buf) - i);
}

static inline void t_fill(uint8_t *p, uint8_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = v;
}

static inline void t_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i];
}

static inline int t_same(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* Count a failed check: print it, and remember it for the exit status. */
static int t_failures;

static inline void t_check(int ok, const char *what)
{
	if (!ok) {
		t_puts("FAIL: ");
		t_puts(what);
		t_puts("\n");
		t_failures++;
	}
}

#endif
