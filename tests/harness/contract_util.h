/* tests/harness/contract_util.h — what test_api_contract.c checks answers with,
 * written from the ORIGINAL system's code (Ulrixon/cs6604-trafficsafety, FastAPI 0.115 +
 * pydantic 2.9 backend, Streamlit frontend on Python 3.9), not from tsi's:
 *
 *   - py39_fromisoformat(): the rules of CPython 3.9's datetime.fromisoformat (its C
 *     implementation, _datetimemodule.c: parse_isoformat_date, parse_isoformat_time,
 *     parse_hh_mm_ss_ff), which the frontend calls on every history timestamp
 *     (history_components.py: `datetime.fromisoformat(p["timestamp"])`): date YYYY-MM-DD,
 *     then optionally any one separator character and HH[:MM[:SS[.fff|.ffffff]]], then
 *     optionally an offset +HH:MM, +HH:MM:SS or +HH:MM:SS.ffffff ('-' too); no 'Z'; the
 *     values in range (the datetime constructor's checks);
 *   - pyd_naive_dt(): what pydantic 2.9 writes for a naive datetime:
 *     YYYY-MM-DDTHH:MM:SS, plus .ffffff only when the microseconds are not zero;
 *   - a shape checker: per field a JSON type (string; integer = a number literal without
 *     '.', 'e', 'E'; number; bool; any; list; object), null allowed or not, optional or
 *     not, a range, a format (v1 naive datetime, v2 UTC instant ending in Z, a date), and
 *     per object whether unknown keys are refused or their datetime-looking strings must
 *     still have the version's format. A mismatch is reported with its JSON pointer;
 *   - a small check language for the case table: "<ptr><op><value>", op one of
 *     = (string equal), # (number equal), @ (array length), ~ (string prefix),
 *     $ (string suffix); ptr a JSON pointer ("" the root) or "H:<header name>".
 *
 * Compiled once in tests/harness (contract_util.c); used by test_api_contract.c. */
#ifndef TSI_TEST_CONTRACT_UTIL_H
#define TSI_TEST_CONTRACT_UTIL_H

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* ---- calendar -------------------------------------------------------------------------- */
/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
long long cu_days_from_civil(long long y, int m, int d);

void cu_civil(long long z, int *y, int *m, int *d);

/* YYYY-MM-DD of a day number */
void cu_day_str(char *out, size_t len, long long day);

int cu_mdays(int y, int m);

/* 0 = Monday .. 6 = Sunday (Python's weekday()) */
int cu_weekday(long long day);

/* n ASCII digits at s into *v; false when one is not a digit */
bool cu_digits(const char *s, int n, int *v);

/* YYYY-MM-DD, a real date, nothing after; *day receives its day number */
bool cu_parse_date(const char *s, long long *day);

/* ---- CPython 3.9 datetime.fromisoformat ------------------------------------------------ */
/* parse_hh_mm_ss_ff over [p, end): HH[:MM[:SS[.fff|.ffffff]]] (3.9 also breaks to the
 * fraction after HH or HH:MM; kept). Returns false on any error; values into v[0..3]. */
bool py39_hh_mm_ss_ff(const char *p, const char *end, int v[4]);

/* true when CPython 3.9's datetime.fromisoformat(s) returns a datetime */
bool py39_fromisoformat(const char *s);

/* whether s (at least 19 bytes) starts with a valid YYYY-MM-DDTHH:MM:SS; max_sec: 59, or
 * 60 where a leap second may be written */
bool cu_date_time(const char *s, int max_sec);

/* what pydantic 2.9 writes for a naive datetime (and Python 3.9 reads back) */
bool pyd_naive_dt(const char *s);

/* tsi's /api/v2 instants: YYYY-MM-DDTHH:MM:SS[.f+]Z */
bool v2_utc_dt(const char *s);

/* a string that looks like a datetime: YYYY-MM-DD followed by T or a space */
bool cu_looks_dt(const char *s);

/* ---- failures ---------------------------------------------------------------------------- */
typedef struct cu_report {
    char *text; /* every failure line */
    size_t len, cap;
    int n;          /* failures in total */
    int n_req;      /* failures of the current request */
    char what[600]; /* the current request, e.g. "[pg] GET /api/v1/..." */
} cu_report;

void cu_fail(cu_report *r, const char *ptr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- shapes -------------------------------------------------------------------------- */
enum { J_STR = 1, J_INT, J_NUM, J_BOOL, J_ANY, J_ARR, J_OBJ };
enum { F_NUL = 1, F_OPT = 2, F_RNG = 4, F_MIN1 = 8 };
enum { X_NONE = 0, X_DT1, X_DT2, X_DATE, X_AGG, X_DT2_OR_DATE };
/* objects: O_CLOSED refuses keys the shape does not list; O_DT1 / O_DT2: a datetime-looking
 * string anywhere under a key the shape does not list must still be a v1 / v2 datetime */
enum { O_OPEN = 0, O_CLOSED = 1, O_DT1 = 2, O_DT2 = 4 };

typedef struct fspec {
    const char *key;         /* object member name; NULL ends a member list */
    int type;                /* J_* */
    int flags;               /* F_* */
    int fmt;                 /* X_* (strings) */
    double lo, hi;           /* with F_RNG */
    const struct fspec *sub; /* J_ARR: the item; J_OBJ: the member list */
    int obj;                 /* J_OBJ: O_* */
} fspec;

typedef struct cu_ctx {
    const tsi_json *d;
    cu_report *r;
    char ptr[512];
    size_t plen;
} cu_ctx;

size_t cu_push(cu_ctx *c, const char *seg);

void cu_pop(cu_ctx *c, size_t old);

const char *cu_kind(const tsi_json *d, int t);

bool cu_fmt_ok(int fmt, const char *s);

const char *cu_fmt_name(int fmt);

/* the datetime-looking strings anywhere under t must satisfy fmt */
void cu_extra_dt(cu_ctx *c, int t, int fmt);

/* true when the item fails its shape (checked on a scratch report) */
bool cu_item_fails(cu_ctx *c, int t, const fspec *f);

void cu_check(cu_ctx *c, int t, const fspec *f);

/* checks the whole document against the shape; failures go to r */
void cu_check_doc(const tsi_json *d, const fspec *shape, cu_report *r);

/* ---- JSON pointers ----------------------------------------------------------------------- */
/* the token at pointer ptr ("" = the root; segments ~0/~1 unescaped); -1 when absent */
int cu_at(const tsi_json *d, const char *ptr);

/* ---- deep comparison (Parquet answer against the PostgreSQL answer) ------------------- */
/* whether the value at the context's pointer is a sub-index of a history point */
bool cu_at_subindex(const cu_ctx *c);

void cu_same(cu_ctx *c, const tsi_json *b, int ta, int tb);

/* a and b hold the same values (numbers within 1e-9 relative) */
void cu_same_doc(const tsi_json *a, const tsi_json *b, cu_report *r);

#endif
