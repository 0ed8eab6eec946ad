/* base/arena.h — a region allocator: allocate many pieces, free once.
 *
 * Ownership: the arena owns every piece it hands out; tsi_arena_free() releases all of
 * them. Not thread-safe: one arena per request or per task. Allocation failure aborts
 * (the process cannot do anything sensible without memory). */
#ifndef TSI_BASE_ARENA_H
#define TSI_BASE_ARENA_H

#include <stddef.h>

typedef struct tsi_arena tsi_arena;

tsi_arena *tsi_arena_new(size_t block_size);
void tsi_arena_free(tsi_arena *a);              /* NULL-safe */
void tsi_arena_reset(tsi_arena *a);             /* keeps the first block */
void *tsi_arena_alloc(tsi_arena *a, size_t n);  /* 16-byte aligned, uninitialised */
void *tsi_arena_calloc(tsi_arena *a, size_t n); /* zeroed */
char *tsi_arena_strdup(tsi_arena *a, const char *s);
char *tsi_arena_strndup(tsi_arena *a, const char *s, size_t n);
char *tsi_arena_printf(tsi_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t tsi_arena_used(const tsi_arena *a);

#endif
