/* base/dtoa.h — the shortest decimal text of a double that reads back as the same double.
 *
 *   char s[TSI_DTOA_MAX];
 *   size_t n = tsi_dtoa(17.986326, s);   // "17.986326", n = 9
 *
 * The digits are the fewest significant digits (1..17) whose decimal rounds to v under
 * round-to-nearest-even (what strtod does), and among those the nearest to v — the same
 * digits as PostgreSQL's float8 output and Ryu. Numbers in [1e-5, 1e15) (the API's
 * indices, volumes and averages) take an exact integer path: v = m·2^e is scaled by a
 * power of ten in 128-bit arithmetic and the candidate is checked against v's rounding
 * interval, no division and no strtod; it writes plain notation ("0.00012", "60",
 * "17.5"). Other magnitudes fall back to printf("%.15g") / "%.16g" / "%.17g" checked
 * with strtod, which may write an exponent ("1e-07", "1.5e+20"). Non-finite values are
 * the caller's business (JSON has none): they are written as printf would. -0 is "-0".
 * Both paths always write a valid JSON number for finite v. Pure, thread-safe. */
#ifndef TSI_BASE_DTOA_H
#define TSI_BASE_DTOA_H

#include <stddef.h>

#define TSI_DTOA_MAX 40 /* bytes a result needs, with its NUL */

/* Writes the text and a NUL into out; returns its length. */
size_t tsi_dtoa(double v, char out[TSI_DTOA_MAX]);

#endif
