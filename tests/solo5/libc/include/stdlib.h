/* The test unikernels' allocator, over the Solo5 heap, and their ways out. */
#ifndef UK_STDLIB_H
#define UK_STDLIB_H

#include <stddef.h>
#include <stdint.h>

/* Hand the allocator the heap solo5_app_main() was given. Call once, first. */
void uk_heap_init(uintptr_t start, size_t size);
void *malloc(size_t n);
void *calloc(size_t count, size_t n);
void free(void *p);
int atoi(const char *s);
void abort(void) __attribute__((noreturn));

#endif
