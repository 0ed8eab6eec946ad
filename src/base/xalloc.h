/* base/xalloc.h — allocation that aborts on failure, and a 64-bit hash finaliser.
 *
 * For code whose only sensible answer to an exhausted heap is to stop (the domain core's
 * tables, arenas): callers own what they get and free() it. Header-only. */
#ifndef TSI_BASE_XALLOC_H
#define TSI_BASE_XALLOC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void *tsi_xnull_check(void *p)
{
    if (p == NULL) {
        fputs("tsi: out of memory\n", stderr);
        abort();
    }
    return p;
}

static inline void *tsi_xmalloc(size_t n)
{
    return tsi_xnull_check(malloc(n ? n : 1));
}

static inline void *tsi_xcalloc(size_t n, size_t size)
{
    return tsi_xnull_check(calloc(n ? n : 1, size ? size : 1));
}

static inline void *tsi_xrealloc(void *p, size_t n)
{
    return tsi_xnull_check(realloc(p, n ? n : 1));
}

/* The murmur3 64-bit finaliser: spreads the bits of a key for open-addressing tables. */
static inline uint64_t tsi_hash_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#endif
