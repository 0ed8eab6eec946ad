/* base/dtoa.c — shortest round-trip decimal text of a double (see dtoa.h).
 *
 * The exact path. A finite v in [1e-5, 1e15) is m·2^-s with m < 2^53 and 0 < s < 70. Its
 * nearest p-significant-digit decimal D·10^-K (K = p - 1 - floor(log10 v), 0 <= K <= 22)
 * comes from N = m·10^K (< 2^127): D = N >> s rounded, and the distance between the
 * decimal and v, scaled by 10^K·2^s, is the shifted-out remainder (or its complement).
 * The decimal reads back as v when that distance is below half of v's gap to its
 * neighbour, 10^K / 2 on the same scale (a quarter below the first double of a binade,
 * whose lower gap is half as wide), ties accepted when m is even (strtod rounds half to
 * even). p = 15 first: at most one 15-digit decimal lies that close to v (their spacing
 * is over 1e-15·v, half a gap at most 1.2e-16·v), so when it reads back it is the
 * shortest once its trailing zeros go; else the nearest 16-digit decimal, else 17. */
#include "base/dtoa.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned __int128 u128;

static const uint64_t P10[20] = {1ull,
                                 10ull,
                                 100ull,
                                 1000ull,
                                 10000ull,
                                 100000ull,
                                 1000000ull,
                                 10000000ull,
                                 100000000ull,
                                 1000000000ull,
                                 10000000000ull,
                                 100000000000ull,
                                 1000000000000ull,
                                 10000000000000ull,
                                 100000000000000ull,
                                 1000000000000000ull,
                                 10000000000000000ull,
                                 100000000000000000ull,
                                 1000000000000000000ull,
                                 10000000000000000000ull};

/* 10^-5 .. 10^15 as doubles (those below 1 rounded: nearest() corrects a miss) */
static const double P10D[21] = {1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0,  1e1,  1e2,  1e3,  1e4, 1e5,
                                1e6,  1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

static u128 pow10_u128(int k) /* 0 <= k <= 22 */
{
    return k <= 19 ? (u128)P10[k] : (u128)P10[19] * P10[k - 19];
}

/* The nearest p-digit decimal of m·2^-s: 1 and *d, *q (value d·10^q) when it reads back
 * as the double, 0 when it does not, -1 when outside the exact path's range. k10 is
 * floor(log10 v) or one below it. */
static int nearest(uint64_t m, int s, int p, int k10, uint64_t *d, int *q)
{
    for (int tries = 0; tries < 3; tries++) {
        int K = p - 1 - k10;
        if (K < 0 || K > 22)
            return -1;
        u128 tenk = pow10_u128(K);
        u128 n = (u128)m * tenk;
        u128 one = (u128)1 << s;
        u128 D = n >> s, R = n & (one - 1), err;
        bool above = false;
        if (R > one / 2 || (R == one / 2 && (D & 1))) {
            D++;
            err = one - R;
            above = true;
        } else {
            err = R;
        }
        if (D >= P10[p]) { /* k10 was one too low */
            k10++;
            continue;
        }
        if (D < P10[p - 1]) {
            k10--;
            continue;
        }
        /* half a gap is 10^K / 2 on this scale; below the binade's first double, a quarter */
        u128 lim2 = (m == (1ull << 52) && !above && err != 0) ? 4 * err : 2 * err;
        bool ok = lim2 < tenk || (lim2 == tenk && (m & 1) == 0);
        *d = (uint64_t)D;
        *q = -K;
        return ok ? 1 : 0;
    }
    return -1;
}

/* printf's rounding, checked with strtod: 15 digits read back exactly when 15 or fewer
 * suffice for a normal double (the argument above); a subnormal has fewer bits, so its
 * shortest is looked for from one digit up (rare: below 2.2e-308) */
static size_t fallback(double v, char *out, bool subnormal)
{
    int n = 0;
    for (int prec = subnormal ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(out, TSI_DTOA_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v)
            break;
    }
    return (size_t)n;
}

size_t tsi_dtoa(double v, char out[TSI_DTOA_MAX])
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 63;
    int be = (int)((bits >> 52) & 0x7ff);
    if (v == 0) {
        memcpy(out, neg ? "-0" : "0", neg ? 3 : 2);
        return neg ? 2u : 1u;
    }
    double a = neg ? -v : v;
    if (!(a >= 1e-5 && a < 1e15) || be == 0)
        return fallback(v, out, be == 0);
    uint64_t m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    int s = 1075 - be;                            /* v = m·2^-s */
    int ex = be - 1023;                           /* 2^ex <= a < 2^(ex+1) */
    int k10 = (int)(((int64_t)ex * 78913) >> 18); /* floor(ex·log10 2): log10 a or one less */
    if (k10 >= -5 && k10 < 15 && a >= P10D[k10 + 6])
        k10++; /* now floor(log10 a), or one off near an inexact negative power (corrected) */
    uint64_t d = 0;
    int q = 0, rc = -1;
    for (int p = 15; p <= 17; p++) {
        rc = nearest(m, s, p, k10, &d, &q);
        if (rc != 0)
            break;
    }
    if (rc != 1)
        return fallback(v, out, false);
    while (d % 10000 == 0) {
        d /= 10000;
        q += 4;
    }
    while (d % 10 == 0) {
        d /= 10;
        q++;
    }
    char dig[24]; /* least significant first */
    int L = 0;
    uint64_t x = d;
    for (; x >= 100; x /= 100) {
        unsigned two = (unsigned)(x % 100);
        dig[L++] = (char)('0' + two % 10);
        dig[L++] = (char)('0' + two / 10);
    }
    dig[L++] = (char)('0' + x % 10);
    if (x >= 10)
        dig[L++] = (char)('0' + x / 10);
    size_t n = 0;
    if (neg)
        out[n++] = '-';
    int point = L + q; /* digits before the decimal point */
    if (q >= 0) {
        for (int i = L - 1; i >= 0; i--)
            out[n++] = dig[i];
        for (int i = 0; i < q; i++)
            out[n++] = '0';
    } else if (point > 0) {
        for (int i = L - 1; i >= 0; i--) {
            out[n++] = dig[i];
            if (i == L - point)
                out[n++] = '.';
        }
    } else {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -point; i++)
            out[n++] = '0';
        for (int i = L - 1; i >= 0; i--)
            out[n++] = dig[i];
    }
    out[n] = '\0';
    return n;
}
