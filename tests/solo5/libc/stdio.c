/* printf for the test unikernels, onto solo5_console_write(). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "solo5.h"

struct out {
	char *buf;
	size_t size, len; /* len counts every byte, even those past size */
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_number(struct out *o, uint64_t v, unsigned base, int negative, int width)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v != 0);
	if (negative)
		digits[n++] = '-';
	for (int pad = width - n; pad > 0; pad--)
		put(o, ' ');
	while (n > 0)
		put(o, digits[--n]);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};

	for (const char *p = fmt; *p != '\0'; p++) {
		int longs = 0, width = 0;

		if (*p != '%') {
			put(&o, *p);
			continue;
		}
		p++;
		while (*p >= '0' && *p <= '9')
			width = width * 10 + (*p++ - '0');
		for (; *p == 'l' || *p == 'z'; p++)
			longs += *p == 'z' ? 2 : 1;
		switch (*p) {
		case 'd':
		case 'i': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			put_number(&o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 10, v < 0, width);
			break;
		}
		case 'u':
		case 'x':
			put_number(&o, longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned),
			           *p == 'u' ? 10 : 16, 0, width);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_number(&o, (uintptr_t)va_arg(ap, void *), 16, 0, width);
			break;
		case 's':
			for (const char *s = va_arg(ap, const char *); *s != '\0'; s++)
				put(&o, *s);
			break;
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			return -1;
		}
	}
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		solo5_console_write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	return n;
}

int puts(const char *s)
{
	solo5_console_write(s, strlen(s));
	solo5_console_write("\n", 1);
	return 0;
}

int putchar(int c)
{
	char ch = (char)c;

	solo5_console_write(&ch, 1);
	return c;
}
