/* api/h_common.h — what the handlers of several resource families share (internal to the
 * h_*.c files): strict parameter parsing, the PostgreSQL plumbing of a request (the
 * worker's connection, prepared statements, reading values) and the JSON writers of the
 * objects more than one endpoint answers (an index object, a statistics object).
 * Names are prefixed tsi_hc_ (handlers' common); what one family alone uses stays static
 * in its file.
 *
 * Parsing: each failure is answered in the request's dialect — v2 400 {detail, code,
 * field}; v1 422 with pydantic 2's error type, message and context for the same value —
 * and the function returns -1 (or false), the handler then returns 0.
 * Ownership: everything borrows the request; results from tsi_hc_run/tsi_hc_run_fmt are
 * the caller's (PQclear on every path); rows of tsi_hc_pg_stats live in the request's
 * arena. */
#ifndef TSI_API_H_COMMON_H
#define TSI_API_H_COMMON_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/dialect.h"
#include "api/fallback.h"
#include "api/req.h"
#include "base/jsonw.h"

/* ---- parameter parsing ------------------------------------------------------------------ */
/* a value pydantic would refuse with a ValueError of its validator (fmt names the field
 * with %s); returns -1 */
int tsi_hc_bad(tsi_req *r, const char *field, const char *fmt, const char *v);
/* optional integer in [lo, hi]; absent → def */
int tsi_hc_arg_int(tsi_req *r, const char *name, long long lo, long long hi, long long def,
                   long long *out);
/* whether v is a finite number (at most 40 characters of digits, sign, '.', exponent) */
bool tsi_hc_parse_num(const char *v, double *out);
/* number in [lo, hi] (lo_open: lo excluded); required when def is NAN */
int tsi_hc_arg_num(tsi_req *r, const char *name, double lo, bool lo_open, double hi, double def,
                   double *out);
/* a SQL timestamptz parameter: UTC with Z (>= TSI_DIALECT_TIME_MAX bytes) */
void tsi_hc_fmt_ts(char *buf, size_t len, int64_t t);

/* A requested window of whole local days. d0..d1 are the days asked for (echoed); the
 * query reads [q0, q1] (the part from 1970 on); empty: nothing can be in it (v1 answers
 * such a window as one without data, as the original did). */
typedef struct {
    int64_t d0, d1; /* inclusive day numbers */
    int64_t q0, q1;
    int64_t n;
    const char *agg; /* 1min|1hour|1day|1week|1month */
    bool empty;
    int64_t t0, t1;      /* the query's instants [t0, t1) */
    char sd[48], ed[48]; /* the range's start and end as the dialect writes them */
} tsi_hc_range;

enum tsi_hc_range_kind {
    TSI_HC_RANGE_ONE,
    TSI_HC_RANGE_ALL,
    TSI_HC_RANGE_STATS,
    TSI_HC_RANGE_OTHER
};

/* start_date, end_date, days → range, by the dialect's rules:
 * v1 (history.py): end defaults to today, start to end - (days - 1) (days is ignored, but
 *   validated, when start is given); history: start > end → 400, (end - start).days > 365
 *   → 400; all: days <= 30, (end - start).days > 30 → 400, start > end → no histories;
 *   stats: neither check (an empty window is answered 404, a long one 200).
 * v2: both absent → the last `days` days; one given → `days` days from it (forward from
 *   start, back from end); start > end and more than one_max_days/all_max_days → 400. */
int tsi_hc_arg_range(tsi_req *r, tsi_hc_range *g, enum tsi_hc_range_kind kind);
/* aggregation → g->agg: the one asked for, or history_service.py's smart default by the
 * range's days (all: the history of all intersections, no minutes unless the dialect
 * allows them) */
int tsi_hc_arg_agg(tsi_req *r, tsi_hc_range *g, bool all);
/* risk_level filter: NULL absent, else "Low|Medium|High"; -1 on error */
int tsi_hc_arg_risk(tsi_req *r, const char **out);
/* a path id that must be an integer (v1: FastAPI's int path parameter); false: answered */
bool tsi_hc_need_id(tsi_req *r);
/* Auto mode: a request whose query found the database gone (answered 503) is answered
 * again from the archive. When that holds, forgets the error (body, status 200, codes,
 * JSON) and returns true; else leaves the answer as it is. */
bool tsi_hc_retry_on_parquet(tsi_req *r);
/* Forgets an answer begun or failed: an empty JSON body, status 200, no error codes. */
void tsi_hc_answer_afresh(tsi_req *r);
/* v1's history and stats read the id's text as the original did (its storage kept ids as
 * floats: float(text)): "12", "12.0", " 12 " name intersection 12. Sets r->path_id when
 * the text is such a number (integral, 0 <= id < 2^53); else leaves it -1. */
void tsi_hc_text_id(tsi_req *r);

/* ---- PostgreSQL plumbing ---------------------------------------------------------------- */
/* the worker's connection, or NULL with 503 database_unavailable answered */
PGconn *tsi_hc_need_pg(tsi_req *r);
/* runs a prepared statement; NULL with a 503/500 error set on failure (binary: results in
 * binary format) */
PGresult *tsi_hc_run_fmt(tsi_req *r, PGconn *c, const char *stmt, int n, const char *const *vals,
                         int binary);
PGresult *tsi_hc_run(tsi_req *r, PGconn *c, const char *stmt, int n, const char *const *vals);
/* a statement whose one parameter is the path's intersection id */
PGresult *tsi_hc_run_id(tsi_req *r, PGconn *c, const char *stmt);
/* a text column as a double (NaN when NULL; *isnull, when given, says which) */
double tsi_hc_dval(PGresult *res, int row, int col, bool *isnull);
/* a text integer column (0 when NULL) */
long long tsi_hc_ival(PGresult *res, int row, int col);

/* ---- result columns by name (db/result.h) ----------------------------------------------- */
/* The numbers of the columns called names[0..n) in res into col[0..n), looked up once per
 * result (never per row). False when one is missing — the statement and its reader
 * disagree, each missing name logged: answered 500 (and true otherwise, r untouched). */
bool tsi_hc_cols(tsi_req *r, const PGresult *res, int n, const char *const *names, int *col);

/* The columns of an index object: the intersection's id, name, latitude, longitude and
 * queries.c's LATEST_COLS (ts, the six indices, traffic_volume, vru_count), by name. */
typedef struct {
    int id, name, lat, lon, ts, ci, ci_eb, vru, vru_eb, veh, veh_eb, vol, vru_count;
} tsi_hc_index_cols;
/* cols of res as tsi_hc_cols does (false: answered 500) */
bool tsi_hc_index_cols_of(tsi_req *r, const PGresult *res, tsi_hc_index_cols *cols);

/* ---- writers ---------------------------------------------------------------------------- */
/* a float column */
void tsi_hc_kv_pg(tsi_jsonw *w, const tsi_dialect *dl, const char *k, PGresult *res, int row,
                  int col);
/* whether a current row of instant ts is stale now (older than --stale-seconds) */
bool tsi_hc_stale(double ts);
/* v2's age_seconds and stale of a current row at instant ts (has: there is one; else
 * both null); nothing in a dialect without stale markers */
void tsi_hc_kv_age(tsi_jsonw *w, const tsi_dialect *dl, bool has, double ts);
/* one /safety/index/ object from row i of a result with the columns c (from
 * tsi_hc_index_cols_of); open: the object's braces too (else only its members) */
void tsi_hc_write_index_obj(tsi_jsonw *w, const tsi_dialect *dl, PGresult *res, int i,
                            const tsi_hc_index_cols *c, bool open);
/* the intersection_id of a history or stats object: the path's text in v1 (a string),
 * else the integer */
void tsi_hc_kv_id(tsi_jsonw *w, const tsi_dialect *dl, const char *text, int64_t id);

/* ---- statistics ------------------------------------------------------------------------- */
typedef struct {
    tsi_stats s;
    const char *name;
    double lat, lon;
} tsi_hc_stat_row;

/* k: a JSON array of the integers of a comma-separated list ("" → []), null when list is
 * NULL (model provenance: constants set ids, algorithm versions) */
void tsi_hc_kv_list(tsi_jsonw *w, const char *k, const char *list);
/* one statistics object (history_service.get_aggregate_stats; v2: tsi's, with nulls for a
 * window without data). sd/ed: the requested range's texts; text: the id as asked (v1) */
void tsi_hc_write_stats(tsi_jsonw *w, const tsi_dialect *dl, const tsi_hc_stat_row *x,
                        const char *sd, const char *ed, const char *text);
/* stats of ids (text array or NULL = all) from PostgreSQL; rows in the arena */
/* Stats rows of ids (a "{1,2}" array text, or NULL = all) from wherever reads go now:
 * PostgreSQL, or — with --source parquet, or in auto mode while PostgreSQL is away — the
 * indices Parquet through DuckDB, named and placed from the server's cache (an id the
 * cache does not know and the archive has no minutes of is left out). Sets
 * r->data_source; -1 with the error answered. */
int tsi_hc_stats_rows(tsi_req *r, const char *ids, int64_t t0, int64_t t1, tsi_hc_stat_row **out,
                      int *n);
int tsi_hc_pg_stats(tsi_req *r, PGconn *c, const char *ids, int64_t t0, int64_t t1,
                    tsi_hc_stat_row **out, int *n);

#endif
