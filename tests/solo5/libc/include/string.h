/* The test unikernels' own C library: what a Solo5 unikernel's libc gives, and nothing of the
 * host's. Built freestanding by mkhost-solo5-cc; see tests/solo5/Makefile. */
#ifndef UK_STRING_H
#define UK_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif
