/* base/arena.c — see arena.h */
#include "base/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} block;

struct tsi_arena {
    block *head; /* first block: kept by reset */
    block *cur;  /* where allocation happens; the last block of the list */
    size_t block_size;
    size_t total;
};

static block *block_new(size_t cap)
{
    block *b = malloc(sizeof *b + cap);
    if (!b) {
        fputs("tsi: out of memory\n", stderr);
        abort();
    }
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

tsi_arena *tsi_arena_new(size_t block_size)
{
    tsi_arena *a = calloc(1, sizeof *a);
    if (!a) {
        fputs("tsi: out of memory\n", stderr);
        abort();
    }
    a->block_size = block_size < 256 ? 256 : block_size;
    a->head = a->cur = block_new(a->block_size);
    return a;
}

void tsi_arena_free(tsi_arena *a)
{
    if (!a)
        return;
    for (block *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a);
}

void tsi_arena_reset(tsi_arena *a)
{
    block *b = a->head;
    while (b->next) {
        block *n = b->next;
        b->next = n->next;
        free(n);
    }
    b->used = 0;
    a->cur = b;
    a->total = 0;
}

void *tsi_arena_alloc(tsi_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    block *b = a->cur;
    if (b->cap - b->used < n) {
        b = block_new(n > a->block_size ? n : a->block_size);
        a->cur->next = b;
        a->cur = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

void *tsi_arena_calloc(tsi_arena *a, size_t n)
{
    void *p = tsi_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *tsi_arena_strndup(tsi_arena *a, const char *s, size_t n)
{
    char *p = tsi_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *tsi_arena_strdup(tsi_arena *a, const char *s)
{
    return tsi_arena_strndup(a, s, strlen(s));
}

char *tsi_arena_printf(tsi_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = tsi_arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

size_t tsi_arena_used(const tsi_arena *a)
{
    return a->total;
}
