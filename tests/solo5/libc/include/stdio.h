/* The test unikernels' console: on solo5_console_write(). */
#ifndef UK_STDIO_H
#define UK_STDIO_H

#include <stdarg.h>
#include <stddef.h>

int puts(const char *s);
int putchar(int c);
/* %d %i %u %x %s %c %p and %%, with the l, ll and z sizes and a field width. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
