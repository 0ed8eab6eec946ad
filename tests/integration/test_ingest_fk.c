/* The reference from safety_indices_realtime to intersections, checked per statement
 * (migration 030, issue 12: the per-row foreign key was 22-30 % of a spool replay's
 * database CPU). Referential integrity must stay exactly what the foreign key gave:
 *   - a row of an unknown intersection is refused with SQLSTATE 23503 whichever way it
 *     comes (INSERT, multi-row INSERT, INSERT ... ON CONFLICT, COPY text and binary, UPDATE
 *     of intersection_id also across partitions, MERGE), the statement writing nothing,
 *     the detail naming the smallest missing id;
 *   - removing an intersection id that a realtime row references (DELETE, UPDATE of id,
 *     TRUNCATE ... CASCADE) is refused with 23503; an unreferenced one goes; a TRUNCATE of
 *     both tables together goes;
 *   - concurrency: a delete waits for a writer that holds rows of the intersection and is
 *     refused once the writer commits (goes when it rolls back); a writer waits for a
 *     delete in flight and is refused once the delete commits (goes when it rolls back);
 *   - under REPEATABLE READ removing an intersection id is refused (0A000).
 * Each test runs as the role that does it in production: tsi_writer writes realtime rows,
 * tsi_owner maintains intersections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static char dbname[64];

/* the columns every test row gives (the rest of the table is nullable) */
#define COLS                                                                                       \
    "intersection_id, \"timestamp\", combined_index, traffic_volume, vru_count, "                  \
    "vehicle_event_count, vru_event_count, hour_of_day, day_of_week"
/* one row's values for an intersection id and a minute offset from an hour ago */
#define VALS(id, min)                                                                              \
    "(" id ", date_trunc('minute', now()) - interval '1 hour' + interval '" min " minutes', 50, "  \
    "5, 0, 0, 0, 3, 2)"

static int setup(void **state)
{
    (void)state;
    th_db_create(dbname);
    PGconn *c = th_connect("tsi_owner");
    /* intersections 1..6 exist; 99, 98 and 97 do not */
    th_sqlf(c, "INSERT INTO intersections (id, name, latitude, longitude) SELECT g, 'i' || g, "
               "38.8, -77.3 FROM generate_series(1, 6) g");
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_db_drop(dbname);
    return 0;
}

static void reset(void)
{
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c, "DELETE FROM safety_indices_realtime; DELETE FROM safety_indices_latest; "
               "INSERT INTO intersections (id, name, latitude, longitude) SELECT g, 'i' || g, "
               "38.8, -77.3 FROM generate_series(1, 6) g ON CONFLICT DO NOTHING");
    PQfinish(c);
}

/* runs sql; returns the result status; the SQLSTATE into state (>= 6 bytes) and the error's
 * detail line into detail (>= 256 bytes), both "" when absent */
static int exec_detail(PGconn *c, const char *sql, char *state, char *detail)
{
    PGresult *r = PQexec(c, sql);
    int st = PQresultStatus(r);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *d = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    snprintf(state, 6, "%s", s ? s : "");
    snprintf(detail, 256, "%s", d ? d : "");
    PQclear(r);
    return st;
}

/* a statement that must be refused with want (a SQLSTATE) and, when detail_has is not NULL,
 * a detail containing it */
static void refused(PGconn *c, const char *sql, const char *want, const char *detail_has)
{
    char st[8], detail[256];
    int s = exec_detail(c, sql, st, detail);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
        fail_msg("accepted (want SQLSTATE %s): %s", want, sql);
    if (strcmp(st, want) != 0)
        fail_msg("SQLSTATE %s (want %s): %s: %s", st, want, sql, PQerrorMessage(c));
    if (detail_has && !strstr(detail, detail_has))
        fail_msg("detail \"%s\" lacks \"%s\": %s", detail, detail_has, sql);
}

static void ok(PGconn *c, const char *sql)
{
    char st[8], detail[256];
    int s = exec_detail(c, sql, st, detail);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        fail_msg("refused (%s): %s: %s", st, sql, PQerrorMessage(c));
}

/* COPY FROM STDIN of data (the whole stream) with the COPY command sql: the final status,
 * SQLSTATE into state */
/* the result of the statement sent with PQsendQuery on c: status, SQLSTATE into state */
static int finish(PGconn *c, char *state)
{
    PGresult *r;
    int st = PGRES_COMMAND_OK;
    state[0] = '\0';
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            st = PQresultStatus(r);
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(state, 6, "%s", s ? s : "");
        }
        PQclear(r);
    }
    return st;
}

static int copy_data(PGconn *c, const char *sql, const char *data, size_t len, char *state)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        fail_msg("COPY not started: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (PQputCopyData(c, data, (int)len) != 1 || PQputCopyEnd(c, NULL) != 1)
        fail_msg("COPY send: %s", PQerrorMessage(c));
    return finish(c, state);
}

/* "YYYY-MM-DD HH:MI:00+00" of the minute an hour ago plus min minutes, as COPY text */
static void copy_ts(PGconn *c, int min, char *out, size_t len)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT to_char((date_trunc('minute', now()) - interval '1 hour' + %d * interval "
             "'1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00'",
             min);
    char *v = th_value(c, sql);
    snprintf(out, len, "%s", v);
    free(v);
}

/* binary COPY rows of the COLS columns: the signature, flags, no extension */
typedef struct binrows {
    unsigned char b[1024];
    size_t n;
} binrows;
static void put(binrows *r, const void *p, size_t l)
{
    assert_true(r->n + l <= sizeof r->b);
    memcpy(r->b + r->n, p, l);
    r->n += l;
}
static void put_field(binrows *r, const void *v, uint32_t l) /* v in network order */
{
    uint32_t be = htobe32(l);
    put(r, &be, 4);
    put(r, v, l);
}
static void bin_begin(binrows *r)
{
    r->n = 0;
    put(r, "PGCOPY\n\377\r\n\0", 11);
    uint32_t z = 0;
    put(r, &z, 4);
    put(r, &z, 4);
}
/* a row of intersection id, at the minute an hour ago (seconds since the Unix epoch) */
static void bin_row(binrows *r, int64_t id, int64_t minute_s)
{
    uint16_t nf = htobe16(9);
    put(r, &nf, 2);
    uint64_t v8 = htobe64((uint64_t)id);
    put_field(r, &v8, 8);
    /* timestamptz: microseconds since 2000-01-01 UTC */
    v8 = htobe64((uint64_t)((minute_s - 946684800LL) * 1000000LL));
    put_field(r, &v8, 8);
    double ci = 50;
    memcpy(&v8, &ci, 8);
    v8 = htobe64(v8);
    put_field(r, &v8, 8);
    const int32_t i4[4] = {5, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
        uint32_t v4 = htobe32((uint32_t)i4[k]);
        put_field(r, &v4, 4);
    }
    const int16_t i2[2] = {3, 2};
    for (int k = 0; k < 2; k++) {
        uint16_t v2 = htobe16((uint16_t)i2[k]);
        put_field(r, &v2, 2);
    }
}
static void bin_end(binrows *r)
{
    uint16_t end = 0xffff;
    put(r, &end, 2);
}

static void test_unknown_refused_insert(void **state)
{
    (void)state;
    reset();
    PGconn *w = th_connect("tsi_writer");
    /* positive control: known intersections are written */
    ok(w,
       "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("1", "0") ", " VALS("2", "0"));
    refused(w, "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("99", "1"), "23503",
            "(99)");
    /* several rows, two unknown ids: nothing of the statement stays, the smaller id named */
    refused(w,
            "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("3", "1") ", " VALS(
                "99", "2") ", " VALS("98", "3") ", " VALS("4", "4"),
            "23503", "(98)");
    /* the upsert path the collector used before (and still may) */
    refused(w,
            "INSERT INTO safety_indices_realtime AS r (" COLS ") VALUES " VALS(
                "97", "5") " ON CONFLICT (intersection_id, \"timestamp\") DO UPDATE SET "
                           "combined_index = EXCLUDED.combined_index",
            "23503", "(97)");
    /* an update that re-keys a row to an unknown intersection */
    refused(w, "UPDATE safety_indices_realtime SET intersection_id = 99 WHERE intersection_id = 1",
            "23503", "(99)");
    /* ... also when it moves the row to another day's partition at the same time */
    refused(w,
            "UPDATE safety_indices_realtime SET intersection_id = 98, \"timestamp\" = "
            "\"timestamp\" - interval '1 day' WHERE intersection_id = 2",
            "23503", "(98)");
    /* MERGE inserting a row of an unknown intersection */
    refused(w,
            "MERGE INTO safety_indices_realtime r USING (VALUES " VALS(
                "99", "6") ") AS s (" COLS ") ON r.intersection_id = s.intersection_id AND "
                           "r.\"timestamp\" = s.\"timestamp\" WHEN NOT MATCHED THEN INSERT (" COLS
                           ") VALUES (s.intersection_id, s.\"timestamp\", s.combined_index, "
                           "s.traffic_volume, s.vru_count, s.vehicle_event_count, "
                           "s.vru_event_count, s.hour_of_day, s.day_of_week)",
            "23503", "(99)");
    /* valid moves and re-keys still pass: to another partition, to another known id */
    ok(w, "UPDATE safety_indices_realtime SET \"timestamp\" = \"timestamp\" - interval '1 day' "
          "WHERE intersection_id = 2");
    ok(w, "UPDATE safety_indices_realtime SET intersection_id = 3 WHERE intersection_id = 1");
    /* what is left: exactly the two control rows, now of intersections 3 and 2 */
    assert_int_equal(th_int(w, "SELECT count(*) FROM safety_indices_realtime"), 2);
    assert_int_equal(th_int(w, "SELECT count(*) FROM safety_indices_realtime WHERE "
                               "intersection_id NOT IN (SELECT id FROM intersections)"),
                     0);
    assert_int_equal(th_int(w, "SELECT sum(intersection_id) FROM safety_indices_realtime"), 5);
    PQfinish(w);
}

static void test_unknown_refused_copy(void **state)
{
    (void)state;
    reset();
    PGconn *w = th_connect("tsi_writer");
    char t0[64], t1[64], data[512], st[8];
    copy_ts(w, 0, t0, sizeof t0);
    copy_ts(w, 1, t1, sizeof t1);
    static const char copy_text[] = "COPY safety_indices_realtime (" COLS ") FROM STDIN";
    /* positive control */
    int n = snprintf(data, sizeof data,
                     "1\t%s\t50\t5\t0\t0\t0\t3\t2\n2\t%s\t50\t5\t0\t0\t0\t3\t2\n", t0, t0);
    assert_int_equal(copy_data(w, copy_text, data, (size_t)n, st), PGRES_COMMAND_OK);
    /* a known row, then a row of intersection 99: the whole COPY is refused */
    n = snprintf(data, sizeof data, "3\t%s\t50\t5\t0\t0\t0\t3\t2\n99\t%s\t50\t5\t0\t0\t0\t3\t2\n",
                 t1, t1);
    assert_int_equal(copy_data(w, copy_text, data, (size_t)n, st), PGRES_FATAL_ERROR);
    assert_string_equal(st, "23503");
    /* binary COPY: a known row, then one of intersection 98 */
    binrows br;
    int64_t minute_s = ((int64_t)time(NULL) / 60) * 60 - 3600 + 120;
    bin_begin(&br);
    bin_row(&br, 4, minute_s);
    bin_row(&br, 98, minute_s);
    bin_end(&br);
    static const char copy_bin[] =
        "COPY safety_indices_realtime (" COLS ") FROM STDIN (FORMAT binary)";
    assert_int_equal(copy_data(w, copy_bin, (const char *)br.b, br.n, st), PGRES_FATAL_ERROR);
    assert_string_equal(st, "23503");
    /* the same binary stream without the unknown row passes (the encoding is right) */
    bin_begin(&br);
    bin_row(&br, 4, minute_s);
    bin_end(&br);
    assert_int_equal(copy_data(w, copy_bin, (const char *)br.b, br.n, st), PGRES_COMMAND_OK);
    /* what is left: the two rows of the first COPY and the last one */
    assert_int_equal(th_int(w, "SELECT count(*) FROM safety_indices_realtime"), 3);
    assert_int_equal(th_int(w, "SELECT sum(intersection_id) FROM safety_indices_realtime"), 7);
    PQfinish(w);
}

static void test_delete_referenced(void **state)
{
    (void)state;
    reset();
    PGconn *w = th_connect("tsi_writer"), *o = th_connect("tsi_owner");
    ok(w, "INSERT INTO safety_indices_realtime (" COLS
          ") VALUES " VALS("1", "0") ", " VALS("1", "1") ", " VALS("2", "0"));
    /* a referenced intersection cannot go, nor change its id */
    refused(o, "DELETE FROM intersections WHERE id = 1", "23503", "(1)");
    refused(o, "DELETE FROM intersections WHERE id IN (2, 5)", "23503", "(2)");
    refused(o, "UPDATE intersections SET id = 100 WHERE id = 1", "23503", "(1)");
    /* an update that keeps the id (even naming it) passes */
    ok(o, "UPDATE intersections SET id = id, name = 'renamed' WHERE id = 1");
    assert_int_equal(th_int(o, "SELECT count(*) FROM intersections WHERE id IN (1, 2, 5)"), 3);
    /* unreferenced ones go, alone or several at once; re-keying an unreferenced one passes */
    ok(o, "DELETE FROM intersections WHERE id = 5");
    ok(o, "UPDATE intersections SET id = 60 WHERE id = 6");
    ok(o, "DELETE FROM intersections WHERE id IN (4, 60)");
    assert_int_equal(th_int(o, "SELECT count(*) FROM intersections WHERE id IN (4, 5, 6, 60)"), 0);
    /* TRUNCATE ... CASCADE would empty the tables with real foreign keys but not realtime */
    refused(o, "TRUNCATE intersections CASCADE", "23503", NULL);
    assert_int_equal(th_int(o, "SELECT count(*) FROM intersections"), 3);
    /* under REPEATABLE READ the check could not see rows committed after the snapshot */
    ok(o, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    refused(o, "DELETE FROM intersections WHERE id = 3", "0A000", NULL);
    ok(o, "ROLLBACK");
    /* once its rows are gone, an intersection can go */
    ok(o, "DELETE FROM safety_indices_realtime WHERE intersection_id = 2");
    ok(o, "DELETE FROM safety_indices_latest WHERE intersection_id = 2");
    ok(o, "DELETE FROM intersections WHERE id = 2");
    /* both tables truncated together pass, as with the foreign key */
    ok(o, "TRUNCATE intersections, safety_indices_realtime CASCADE");
    assert_int_equal(th_int(o, "SELECT count(*) FROM intersections"), 0);
    assert_int_equal(th_int(o, "SELECT count(*) FROM safety_indices_realtime"), 0);
    PQfinish(w);
    PQfinish(o);
}

/* waits (up to 20 s) until the backend of c waits for a lock; fails the test otherwise */
static void wait_for_lock(PGconn *c)
{
    PGconn *a = th_connect("postgres");
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'",
             PQbackendPID(c));
    for (int i = 0; i < 400; i++) {
        if (th_int(a, sql) == 1) {
            PQfinish(a);
            return;
        }
        usleep(50000);
    }
    PQfinish(a);
    fail_msg("the statement did not wait for a lock");
}

static void test_concurrent_writer_and_delete(void **state)
{
    (void)state;
    reset();
    PGconn *w = th_connect("tsi_writer"), *o = th_connect("tsi_owner");
    char st[8];
    /* 1. a writer holds uncommitted rows of intersection 1: a delete waits for it, and is
     *    refused once the rows are committed */
    ok(w, "BEGIN");
    ok(w, "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("1", "0"));
    assert_int_equal(PQsendQuery(o, "DELETE FROM intersections WHERE id = 1"), 1);
    wait_for_lock(o);
    ok(w, "COMMIT");
    assert_int_equal(finish(o, st), PGRES_FATAL_ERROR);
    assert_string_equal(st, "23503");
    /* 2. the same, but the writer rolls back: the delete goes */
    ok(w, "BEGIN");
    ok(w, "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("2", "0"));
    assert_int_equal(PQsendQuery(o, "DELETE FROM intersections WHERE id = 2"), 1);
    wait_for_lock(o);
    ok(w, "ROLLBACK");
    assert_int_equal(finish(o, st), PGRES_COMMAND_OK);
    /* 3. a delete of intersection 3 is in flight: a writer's row of 3 waits for it, and is
     *    refused once the delete commits */
    ok(o, "BEGIN");
    ok(o, "DELETE FROM intersections WHERE id = 3");
    assert_int_equal(
        PQsendQuery(w, "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("3", "0")), 1);
    wait_for_lock(w);
    ok(o, "COMMIT");
    assert_int_equal(finish(w, st), PGRES_FATAL_ERROR);
    assert_string_equal(st, "23503");
    /* 4. the same, but the delete rolls back: the row is written */
    ok(o, "BEGIN");
    ok(o, "DELETE FROM intersections WHERE id = 4");
    assert_int_equal(
        PQsendQuery(w, "INSERT INTO safety_indices_realtime (" COLS ") VALUES " VALS("4", "0")), 1);
    wait_for_lock(w);
    ok(o, "ROLLBACK");
    assert_int_equal(finish(w, st), PGRES_COMMAND_OK);
    /* the outcome, computed from the four cases: rows of 1 and 4, intersections 1, 4, 5, 6
     * (2 and 3 deleted); no row without its intersection */
    assert_int_equal(th_int(o, "SELECT count(*) FROM safety_indices_realtime"), 2);
    assert_int_equal(th_int(o, "SELECT sum(intersection_id) FROM safety_indices_realtime"), 5);
    assert_int_equal(th_int(o, "SELECT sum(id) FROM intersections"), 1 + 4 + 5 + 6);
    assert_int_equal(th_int(o, "SELECT count(*) FROM safety_indices_realtime r WHERE NOT EXISTS "
                               "(SELECT 1 FROM intersections i WHERE i.id = r.intersection_id)"),
                     0);
    PQfinish(w);
    PQfinish(o);
}

int main(void)
{
    th_require_cluster();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_refused_insert),
        cmocka_unit_test(test_unknown_refused_copy),
        cmocka_unit_test(test_delete_referenced),
        cmocka_unit_test(test_concurrent_writer_and_delete),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
