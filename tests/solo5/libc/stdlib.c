/* malloc for the test unikernels: first fit over a free list, inside the Solo5 heap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "solo5.h"

struct block {
	size_t size;        /* bytes after the header */
	struct block *next; /* in the free list */
};

#define ALIGN  16
#define HEADER ((sizeof(struct block) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

static uintptr_t brk_at, heap_end;
static struct block *free_list;

void uk_heap_init(uintptr_t start, size_t size)
{
	brk_at = (start + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);
	heap_end = start + size;
	free_list = NULL;
}

void *malloc(size_t n)
{
	struct block **at, *b;

	n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	for (at = &free_list; *at != NULL; at = &(*at)->next)
		if ((*at)->size >= n) {
			b = *at;
			*at = b->next;
			return (char *)b + HEADER;
		}
	if (n > heap_end - brk_at || HEADER > heap_end - brk_at - n)
		return NULL;
	b = (struct block *)brk_at;
	b->size = n;
	brk_at += HEADER + n;
	return (char *)b + HEADER;
}

void *calloc(size_t count, size_t n)
{
	void *p;

	if (n != 0 && count > SIZE_MAX / n)
		return NULL;
	p = malloc(count * n);
	if (p != NULL)
		memset(p, 0, count * n);
	return p;
}

void free(void *p)
{
	struct block *b;

	if (p == NULL)
		return;
	b = (struct block *)((char *)p - HEADER);
	b->next = free_list;
	free_list = b;
}

int atoi(const char *s)
{
	int v = 0, neg = *s == '-';

	if (neg)
		s++;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return neg ? -v : v;
}

void abort(void)
{
	solo5_abort();
}
