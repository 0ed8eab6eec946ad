/* bench/bench_soak_check.c — the end-of-run checks of bench/soak.sh (issue 12, the
 * requirement's "no errors in dual-write mode for 48 hours" gate), after the collector
 * has stopped:
 *  - every raw archive file (raw/{bsm,psm,mapdata,spat}/YYYY/MM/DD/HH/ files) and every
 *    indices file (indices/YYYY/MM/DD/{indices,conflicts}_ files) opened on its own in
 *    DuckDB (a file that does not open is counted, and named on stderr);
 *  - the indices Parquet against safety_indices_realtime per intersection-minute: rows on
 *    each side, keys on one side only, keys written twice, and the keys on both sides whose
 *    counts (traffic_volume, vru_count, vehicle_event_count, vru_event_count) or combined
 *    index (|a - b| > 1e-9) differ.
 * Needs the database of TSI_HOME / TSI_PG_PORT (role tsi_reader). Prints key=value lines;
 * exit status 0 when the run passed (every file opens, the two sides equal), 1 otherwise.
 *   bench_soak_check --archive DIR */
#include <duckdb.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/pqfile.h"
#include "base/buf.h"
#include "db/conn.h"

static int q(duckdb_connection con, const char *sql, duckdb_result *res)
{
    if (duckdb_query(con, sql, res) == DuckDBError) {
        fprintf(stderr, "bench_soak_check: duckdb: %s\n  %s\n", duckdb_result_error(res), sql);
        duckdb_destroy_result(res);
        return -1;
    }
    return 0;
}

static long long q_int(duckdb_connection con, const char *sql)
{
    duckdb_result r;
    if (q(con, sql, &r) < 0)
        return -1;
    long long v = (long long)duckdb_value_int64(&r, 0, 0);
    duckdb_destroy_result(&r);
    return v;
}

/* opens every file of the glob on its own; returns the files, adds rows and failures */
static long long open_each(duckdb_connection con, const char *pattern, long long *rows,
                           long long *failed)
{
    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_puts(&sql, "SELECT file FROM glob(");
    tsi_sql_quote(&sql, pattern);
    tsi_buf_puts(&sql, ") ORDER BY file");
    duckdb_result files;
    long long n = 0;
    if (q(con, tsi_buf_cstr(&sql), &files) < 0) {
        tsi_buf_free(&sql);
        (*failed)++;
        return 0;
    }
    idx_t nf = duckdb_row_count(&files);
    for (idx_t i = 0; i < nf; i++) {
        char *f = duckdb_value_varchar(&files, 0, i);
        tsi_buf_reset(&sql);
        tsi_buf_puts(&sql, "SELECT count(*) FROM read_parquet(");
        tsi_sql_quote(&sql, f);
        tsi_buf_puts(&sql, ")");
        duckdb_result r;
        if (duckdb_query(con, tsi_buf_cstr(&sql), &r) == DuckDBError) {
            fprintf(stderr, "bench_soak_check: does not open: %s: %s\n", f,
                    duckdb_result_error(&r));
            (*failed)++;
        } else {
            *rows += (long long)duckdb_value_int64(&r, 0, 0);
        }
        duckdb_destroy_result(&r);
        duckdb_free(f);
        n++;
    }
    duckdb_destroy_result(&files);
    tsi_buf_free(&sql);
    return n;
}

int main(int argc, char **argv)
{
    const char *archive = NULL;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--archive"))
            archive = argv[i + 1];
    if (!archive) {
        fprintf(stderr, "usage: bench_soak_check --archive DIR\n");
        return 2;
    }
    duckdb_database db;
    duckdb_connection con;
    if (duckdb_open(NULL, &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError) {
        fprintf(stderr, "bench_soak_check: cannot open DuckDB\n");
        return 1;
    }
    int ok = 1;
    char pat[4096];
    long long failed = 0;
    static const char *const kinds[] = {"bsm", "psm", "mapdata", "spat"};
    for (int k = 0; k < 4; k++) {
        long long rows = 0;
        snprintf(pat, sizeof pat, "%s/raw/%s/*/*/*/*/*.parquet", archive, kinds[k]);
        long long n = open_each(con, pat, &rows, &failed);
        printf("raw_%s_files=%lld\nraw_%s_rows=%lld\n", kinds[k], n, kinds[k], rows);
    }
    long long irows = 0, crows = 0;
    snprintf(pat, sizeof pat, "%s/indices/*/*/*/indices_*.parquet", archive);
    long long nif = open_each(con, pat, &irows, &failed);
    snprintf(pat, sizeof pat, "%s/indices/*/*/*/conflicts_*.parquet", archive);
    long long ncf = open_each(con, pat, &crows, &failed);
    printf("indices_files=%lld\nconflicts_files=%lld\nconflicts_rows=%lld\nfiles_failed=%lld\n",
           nif, ncf, crows, failed);
    if (failed)
        ok = 0;

    /* the Parquet side */
    tsi_buf sql = TSI_BUF_INIT;
    snprintf(pat, sizeof pat, "%s/indices/*/*/*/indices_*.parquet", archive);
    tsi_buf_puts(&sql, "CREATE TABLE pq AS SELECT intersection_id AS i, "
                       "epoch_ms(\"timestamp\") AS t, traffic_volume AS v, vru_count AS p, "
                       "vehicle_event_count AS ve, vru_event_count AS pe, combined_index AS c "
                       "FROM read_parquet(");
    tsi_sql_quote(&sql, pat);
    tsi_buf_puts(&sql, ")");
    duckdb_result r;
    if (nif == 0 || q(con, tsi_buf_cstr(&sql), &r) < 0) {
        printf("parquet_rows=0\n");
        fprintf(stderr, "bench_soak_check: no indices Parquet\n");
        return 1;
    }
    duckdb_destroy_result(&r);
    tsi_buf_free(&sql);

    /* the PostgreSQL side, through the appender */
    tsi_error e = {0};
    PGconn *pg = tsi_db_connect(TSI_ROLE_READER, NULL, &e);
    if (!pg) {
        fprintf(stderr, "bench_soak_check: cannot connect: %s\n", e.detail);
        return 1;
    }
    PGresult *pr = PQexec(pg, "SELECT intersection_id, (extract(epoch FROM \"timestamp\") * "
                              "1000)::bigint, traffic_volume, vru_count, vehicle_event_count, "
                              "vru_event_count, combined_index FROM safety_indices_realtime");
    if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_soak_check: %s", PQresultErrorMessage(pr));
        return 1;
    }
    if (q(con,
          "CREATE TABLE pg (i BIGINT, t BIGINT, v INTEGER, p INTEGER, ve INTEGER, pe INTEGER, "
          "c DOUBLE)",
          &r) < 0)
        return 1;
    duckdb_destroy_result(&r);
    duckdb_appender ap;
    if (duckdb_appender_create(con, NULL, "pg", &ap) == DuckDBError)
        return 1;
    int nr = PQntuples(pr);
    for (int i = 0; i < nr; i++) {
        duckdb_append_int64(ap, strtoll(PQgetvalue(pr, i, 0), NULL, 10));
        duckdb_append_int64(ap, strtoll(PQgetvalue(pr, i, 1), NULL, 10));
        for (int k = 2; k < 6; k++)
            duckdb_append_int32(ap, atoi(PQgetvalue(pr, i, k)));
        duckdb_append_double(ap, strtod(PQgetvalue(pr, i, 6), NULL));
        duckdb_appender_end_row(ap);
    }
    if (duckdb_appender_close(ap) == DuckDBError) {
        fprintf(stderr, "bench_soak_check: append: %s\n", duckdb_appender_error(ap));
        return 1;
    }
    duckdb_appender_destroy(&ap);
    PQclear(pr);
    PQfinish(pg);

    long long pq_rows = q_int(con, "SELECT count(*) FROM pq");
    long long pq_keys = q_int(con, "SELECT count(*) FROM (SELECT DISTINCT i, t FROM pq)");
    long long pg_rows = q_int(con, "SELECT count(*) FROM pg");
    long long only_pq =
        q_int(con, "SELECT count(*) FROM (SELECT DISTINCT i, t FROM pq) a "
                   "WHERE NOT EXISTS (SELECT 1 FROM pg b WHERE b.i = a.i AND b.t = a.t)");
    long long only_pg =
        q_int(con, "SELECT count(*) FROM pg b "
                   "WHERE NOT EXISTS (SELECT 1 FROM pq a WHERE b.i = a.i AND b.t = a.t)");
    /* against the last Parquet row of a key (a key written twice is counted above) */
    long long differ =
        q_int(con, "SELECT count(*) FROM pg b JOIN (SELECT i, t, any_value(v) v, any_value(p) p, "
                   "any_value(ve) ve, any_value(pe) pe, any_value(c) c FROM pq GROUP BY i, t) a "
                   "USING (i, t) WHERE a.v <> b.v OR a.p <> b.p OR a.ve <> b.ve OR a.pe <> b.pe OR "
                   "abs(a.c - b.c) > 1e-9");
    long long isects = q_int(con, "SELECT count(DISTINCT i) FROM pg");
    long long first = q_int(con, "SELECT coalesce(min(t), 0) FROM pg");
    long long last = q_int(con, "SELECT coalesce(max(t), 0) FROM pg");
    printf("parquet_rows=%lld\nparquet_keys=%lld\nparquet_dup_keys=%lld\npg_rows=%lld\n"
           "only_parquet=%lld\nonly_pg=%lld\nvalues_differ=%lld\npg_intersections=%lld\n"
           "pg_first_minute_ms=%lld\npg_last_minute_ms=%lld\n",
           pq_rows, pq_keys, pq_rows - pq_keys, pg_rows, only_pq, only_pg, differ, isects, first,
           last);
    if (pq_rows < 0 || pg_rows <= 0 || pq_rows != pg_rows || pq_keys != pq_rows || only_pq ||
        only_pg || differ)
        ok = 0;
    printf("check=%s\n", ok ? "pass" : "FAIL");
    duckdb_disconnect(&con);
    duckdb_close(&db);
    return ok ? 0 : 1;
}
