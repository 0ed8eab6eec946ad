/* Unit tests of base/dtoa: every result reads back as the same double, has the fewest
 * significant digits that do, and those digits are the nearest ones — each checked against
 * an independent oracle built from the C library alone (printf "%.*e" at 1..17 digits,
 * read back with strtod), over random doubles of the whole finite range, the API's range
 * (0..100, full precision and 6 decimals), and the edges (powers of two and ten and their
 * neighbours, binade starts, subnormals, integers, negatives). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/dtoa.h"

/* the oracle: fewest digits p whose correctly rounded "%.{p-1}e" reads back; its digits */
static int oracle(double v, char *digits)
{
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, v);
        if (strtod(buf, NULL) == v) {
            int n = 0;
            for (const char *c = buf; *c && *c != 'e'; c++)
                if (isdigit((unsigned char)*c))
                    digits[n++] = *c;
            while (n > 1 && digits[n - 1] == '0')
                n--;
            digits[n] = '\0';
            return p;
        }
    }
    return -1;
}

/* the significant digits of a decimal text (no sign, point, exponent or leading zeros) */
static void sig_digits(const char *s, char *digits)
{
    int n = 0;
    bool lead = true;
    for (const char *c = s; *c && *c != 'e' && *c != 'E'; c++) {
        if (!isdigit((unsigned char)*c))
            continue;
        if (lead && *c == '0')
            continue;
        lead = false;
        digits[n++] = *c;
    }
    while (n > 1 && digits[n - 1] == '0')
        n--;
    if (n == 0)
        digits[n++] = '0';
    digits[n] = '\0';
}

/* RFC 8259 number grammar */
static bool json_number(const char *s)
{
    const char *c = s;
    if (*c == '-')
        c++;
    if (*c == '0')
        c++;
    else if (*c >= '1' && *c <= '9')
        while (isdigit((unsigned char)*c))
            c++;
    else
        return false;
    if (*c == '.') {
        c++;
        if (!isdigit((unsigned char)*c))
            return false;
        while (isdigit((unsigned char)*c))
            c++;
    }
    if (*c == 'e' || *c == 'E') {
        c++;
        if (*c == '+' || *c == '-')
            c++;
        if (!isdigit((unsigned char)*c))
            return false;
        while (isdigit((unsigned char)*c))
            c++;
    }
    return *c == '\0';
}

static unsigned long long rng = 88172645463325252ull;
static uint64_t next64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int checked;

static void check(double v)
{
    if (!isfinite(v))
        return;
    char out[TSI_DTOA_MAX + 8];
    memset(out, 'x', sizeof out);
    size_t n = tsi_dtoa(v, out);
    if (n != strlen(out) || n >= TSI_DTOA_MAX || !json_number(out) || strtod(out, NULL) != v ||
        signbit(strtod(out, NULL)) != signbit(v))
        fail_msg("%.17g -> \"%s\" (length %zu): not a JSON number reading back as the value", v,
                 out, n);
    if (v != 0) {
        char want[32], got[32];
        int p = oracle(v, want);
        sig_digits(out, got);
        if (p < 0 || strcmp(want, got) != 0)
            fail_msg("%.17g -> \"%s\": digits %s, the shortest nearest are %s (%d)", v, out, got,
                     want, p);
    }
    checked++;
}

static void test_known(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {17.986326, "17.986326"},
        {60, "60"},
        {0.1, "0.1"},
        {100, "100"},
        {1e-5, "0.00001"},
        {0.00012, "0.00012"},
        {123456789012345.0, "123456789012345"},
        {-2.5, "-2.5"},
        {0, "0"},
        {-0.0, "-0"},
        {1.0 / 3.0, "0.3333333333333333"},
        {2.0 / 3.0, "0.6666666666666666"},
        {5e-324, "5e-324"},
        {1e300, "1e+300"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {9007199254740993.0, "9007199254740992"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[TSI_DTOA_MAX];
        size_t n = tsi_dtoa(cases[i].v, out);
        assert_string_equal(out, cases[i].s);
        assert_int_equal(n, strlen(cases[i].s));
    }
}

static void test_api_range(void **state)
{
    (void)state;
    checked = 0;
    for (int i = 0; i < 50000; i++) {
        double u = (double)(next64() >> 11) / 9007199254740992.0; /* [0, 1), 53 bits */
        check(u * 100);
        check((double)(next64() % 100000001) / 1e6); /* 6 decimals, 0..100 */
        check(-u * 1000);
        check(round(u * 1e9) / 1e3);
    }
    assert_int_equal(checked, 200000);
}

static void test_whole_range(void **state)
{
    (void)state;
    checked = 0;
    int tried = 0;
    while (checked < 100000) {
        uint64_t b = next64();
        double v;
        memcpy(&v, &b, sizeof v);
        tried++;
        check(v);
    }
    assert_true(tried >= 100000);
}

static void test_edges(void **state)
{
    (void)state;
    checked = 0;
    for (int e = -1074; e <= 1023; e++) {
        double v = ldexp(1.0, e);
        check(v);
        check(nextafter(v, 0));
        check(nextafter(v, INFINITY));
        check(-v);
    }
    for (int k = -20; k <= 22; k++) {
        double v = pow(10, k);
        check(v);
        check(nextafter(v, 0));
        check(nextafter(v, INFINITY));
        check(v * 9.999999999999999);
        check(v * 0.5);
    }
    for (int i = 0; i <= 1000; i++) {
        check(i);
        check(i + 0.5);
        check(i / 7.0);
        check(nextafter(i, INFINITY));
    }
    check(1e-5);
    check(nextafter(1e-5, 0));
    check(1e15);
    check(nextafter(1e15, 0));
    check(DBL_MIN);
    check(DBL_TRUE_MIN);
    check(DBL_MAX);
    assert_true(checked > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_api_range),
        cmocka_unit_test(test_whole_range),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
