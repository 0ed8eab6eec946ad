/* The Parquet archive (issue 12): raw files by message hour, typed columns and the
 * original JSON, rejected messages kept, never overwritten, never torn (kill -9 of a
 * writer mid-flush), indices files by day, and `tsi archive compact` (counts and
 * checksums, interrupted compactions repaired); files in several row groups and the
 * buffer bounds that publish files between flushes. Every expectation is computed here from
 * the inputs, and every file is opened with DuckDB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <duckdb.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/compact.h"
#include "archive/indices.h"
#include "archive/pqfile.h"
#include "archive/raw.h"
#include "base/buf.h"
#include "base/proc.h"
#include "harness.h"

/* 2026-11-25T10:00:00Z */
#define T0 1795600800000LL

static char *mkroot(void)
{
    char tmpl[] = "/tmp/tsi-arch-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    /* a quote in the path: every path reaches DuckDB as an escaped SQL literal */
    char *root = malloc(PATH_MAX);
    snprintf(root, PATH_MAX, "%s/it's archive", tmpl);
    return root;
}

static void rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

static void cleanup_root(char *root)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", root);
    *strrchr(parent, '/') = '\0';
    rm_rf(parent);
    free(root);
}

static tsi_msg bsm(int64_t t_ms, int64_t id, int cnt)
{
    tsi_msg m;
    memset(&m, 0, sizeof m);
    m.type = TSI_MSG_BSM;
    m.timestamp_ms = t_ms;
    m.id = id;
    m.msg_cnt = cnt;
    m.sec_mark = (int)(t_ms % 60000);
    m.lat = 38.856 + id * 1e-5;
    m.lon = -77.3 - id * 1e-5;
    m.elev = NAN;
    m.speed = 10.5;
    m.heading = 90;
    m.accel_lon = -3.5;
    m.accel_lat = m.accel_vert = m.accel_yaw = NAN;
    m.width_m = 1.8;
    m.length_m = 4.5;
    m.basic_type = -1;
    snprintf(m.wheel_brakes, sizeof m.wheel_brakes, "01000");
    snprintf(m.rsu_name, sizeof m.rsu_name, "rsu-1");
    return m;
}

static tsi_msg psm(int64_t t_ms, int64_t id)
{
    tsi_msg m = bsm(t_ms, id, 1);
    m.type = TSI_MSG_PSM;
    m.basic_type = 1;
    m.width_m = m.length_m = NAN;
    m.wheel_brakes[0] = '\0';
    return m;
}

/* DuckDB in memory for reading what was written */
typedef struct reader {
    duckdb_database db;
    duckdb_connection con;
} reader;

static void reader_open(reader *r)
{
    assert_int_equal(duckdb_open(NULL, &r->db), DuckDBSuccess);
    assert_int_equal(duckdb_connect(r->db, &r->con), DuckDBSuccess);
}
static void reader_close(reader *r)
{
    duckdb_disconnect(&r->con);
    duckdb_close(&r->db);
}
/* one int64 value of a query over files: %s in sql is replaced by a quoted glob/path */
static long long q_int(reader *r, const char *sql_fmt, const char *path)
{
    tsi_buf q = TSI_BUF_INIT, lit = TSI_BUF_INIT;
    tsi_sql_quote(&lit, path);
    tsi_buf_printf(&q, sql_fmt, tsi_buf_cstr(&lit));
    duckdb_result res;
    if (duckdb_query(r->con, tsi_buf_cstr(&q), &res) == DuckDBError)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(&res), tsi_buf_cstr(&q));
    long long v = duckdb_value_int64(&res, 0, 0);
    duckdb_destroy_result(&res);
    tsi_buf_free(&q);
    tsi_buf_free(&lit);
    return v;
}
static char *q_str(reader *r, const char *sql_fmt, const char *path)
{
    tsi_buf q = TSI_BUF_INIT, lit = TSI_BUF_INIT;
    tsi_sql_quote(&lit, path);
    tsi_buf_printf(&q, sql_fmt, tsi_buf_cstr(&lit));
    duckdb_result res;
    if (duckdb_query(r->con, tsi_buf_cstr(&q), &res) == DuckDBError)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(&res), tsi_buf_cstr(&q));
    char *v = duckdb_value_varchar(&res, 0, 0);
    char *out = v ? strdup(v) : NULL;
    duckdb_free(v);
    duckdb_destroy_result(&res);
    tsi_buf_free(&q);
    tsi_buf_free(&lit);
    return out;
}

/* .parquet files (and hidden ones) directly in dir */
static int count_files(const char *dir, const char *suffix, int hidden)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((e->d_name[0] == '.') != hidden)
            continue;
        if (l >= s && strcmp(e->d_name + l - s, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void test_raw_layout_and_roundtrip(void **state)
{
    (void)state;
    char *root = mkroot();
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    /* 90 BSMs: 60 in hour 10 (one every minute), 30 in hour 11; 5 PSMs in hour 10 */
    char json[256];
    for (int i = 0; i < 90; i++) {
        tsi_msg m = bsm(T0 + (int64_t)i * 60000 + 123, 1000 + i, i % 128);
        int n = snprintf(json, sizeof json, "{\"i\":%d,\"q\":\"it's\"}", i);
        assert_int_equal(
            tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, json, (size_t)n, T0 + 7200000 + i, &e),
            0);
    }
    for (int i = 0; i < 5; i++) {
        tsi_msg m = psm(T0 + i * 1000, 50 + i);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_PSM, &m, NULL, "{}", 2, T0, &e), 0);
    }
    /* a rejected BSM, hostile bytes: invalid UTF-8, a NUL, a quote; dated by receive time */
    const char bad[] = "{\"x\":\"\xff\xfe\x00'\"}";
    assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, NULL, "range", bad, sizeof bad - 1,
                                         T0 + 3 * 3600000 + 5, &e),
                     0);
    /* a BSM handed in as a PSM is refused */
    tsi_msg wrong = bsm(T0, 1, 1);
    assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_PSM, &wrong, NULL, "{}", 2, T0, &e),
                     TSI_E_INVALID);
    assert_int_equal(tsi_archive_pending(a), 96);
    tsi_archive_stats st;
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.files, 4); /* bsm 10h, bsm 11h, bsm 13h (rejected), psm 10h */
    assert_int_equal(st.rows[TSI_RAW_BSM], 91);
    assert_int_equal(st.rows[TSI_RAW_PSM], 5);
    assert_int_equal(tsi_archive_pending(a), 0);
    /* a flush with nothing pending writes nothing */
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.files, 0);
    tsi_archive_close(a);

    char dir[PATH_MAX + 64], path[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/raw/bsm/2026/11/25/10", root);
    assert_int_equal(count_files(dir, ".parquet", 0), 1);
    assert_int_equal(count_files(dir, ".tmp", 1), 0);
    /* the name: <type>_<start>_<seq>: start is the earliest message, 10:00:00.123 */
    snprintf(path, sizeof path, "%s/bsm_20261125T100000Z_0.parquet", dir);
    reader r;
    reader_open(&r);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", path), 60);
    /* typed columns round-trip: sum of ids 1000..1059 */
    assert_int_equal(q_int(&r, "SELECT sum(id) FROM read_parquet(%s)", path),
                     60 * 1000 + 59 * 60 / 2);
    assert_int_equal(q_int(&r,
                           "SELECT count(*) FROM read_parquet(%s) WHERE elev IS NULL AND "
                           "accel_lon = -3.5 AND wheel_brakes = '01000' AND speed = 10.5",
                           path),
                     60);
    assert_int_equal(q_int(&r, "SELECT min(epoch_ms(message_time)) FROM read_parquet(%s)", path),
                     T0 + 123);
    assert_int_equal(q_int(&r, "SELECT max(timestamp_ms) FROM read_parquet(%s)", path),
                     T0 + 59 * 60000 + 123);
    assert_int_equal(q_int(&r, "SELECT min(epoch_ms(received_at)) FROM read_parquet(%s)", path),
                     T0 + 7200000);
    char *j = q_str(&r, "SELECT json FROM read_parquet(%s) WHERE id = 1007", path);
    assert_string_equal(j, "{\"i\":7,\"q\":\"it's\"}");
    free(j);
    snprintf(dir, sizeof dir, "%s/raw/bsm/2026/11/25/11", root);
    snprintf(path, sizeof path, "%s/*.parquet", dir);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", path), 30);
    /* the rejected message: typed columns NULL, reason and bytes kept */
    snprintf(path, sizeof path, "%s/raw/bsm/2026/11/25/13/*.parquet", root);
    assert_int_equal(q_int(&r,
                           "SELECT count(*) FROM read_parquet(%s) WHERE id IS NULL AND "
                           "reject_reason = 'range' AND timestamp_ms IS NULL",
                           path),
                     1);
    j = q_str(&r, "SELECT json FROM read_parquet(%s)", path);
    assert_string_equal(j, "{\"x\":\"\\xff\\xfe\\x00'\"}");
    free(j);
    snprintf(path, sizeof path, "%s/raw/psm/2026/11/25/10/*.parquet", root);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s) WHERE basic_type = 1", path),
                     5);
    /* every file of the archive opens, and the whole holds every row once */
    snprintf(path, sizeof path, "%s/raw/*/*/*/*/*/*.parquet", root);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", path), 96);
    reader_close(&r);
    cleanup_root(root);
}

static void test_mapdata_spat(void **state)
{
    (void)state;
    char *root = mkroot();
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    tsi_map_intersection mi;
    memset(&mi, 0, sizeof mi);
    mi.id = 3 * 65536 + 12;
    mi.revision = 4;
    mi.ref_lat = 38.85;
    mi.ref_lon = -77.31;
    mi.vehicle_lanes = 8;
    snprintf(mi.name, sizeof mi.name, "US-29 & Nutley");
    tsi_mapdata md = {.n = 1, .items = &mi};
    assert_int_equal(tsi_archive_add_mapdata(a, &md, NULL, "{\"m\":1}", 7, T0 + 5, &e), 0);
    assert_int_equal(tsi_archive_add_mapdata(a, NULL, "json", "{", 1, T0 + 6, &e), 0);
    tsi_spat_intersection si;
    memset(&si, 0, sizeof si);
    si.id = 12;
    si.revision = 1;
    si.status = -1;
    si.nstates = 3;
    tsi_spat sp = {.n = 1, .items = &si};
    assert_int_equal(tsi_archive_add_spat(a, &sp, NULL, "\"{}\"", 4, T0 + 3600000, &e), 0);
    tsi_archive_stats st;
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.rows[TSI_RAW_MAPDATA], 2);
    assert_int_equal(st.rows[TSI_RAW_SPAT], 1);
    tsi_archive_close(a);
    reader r;
    reader_open(&r);
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/raw/mapdata/2026/11/25/10/*.parquet", root);
    assert_int_equal(q_int(&r,
                           "SELECT intersection_id FROM read_parquet(%s) WHERE name = "
                           "'US-29 & Nutley' AND lane_count = 8 AND revision = 4",
                           path),
                     3 * 65536 + 12);
    assert_int_equal(
        q_int(&r, "SELECT count(*) FROM read_parquet(%s) WHERE reject_reason = 'json'", path), 1);
    snprintf(path, sizeof path, "%s/raw/spat/2026/11/25/11/*.parquet", root);
    assert_int_equal(q_int(&r, "SELECT n_states FROM read_parquet(%s) WHERE status IS NULL", path),
                     3);
    reader_close(&r);
    cleanup_root(root);
}

/* an existing file under the chosen name is never replaced; a failed flush keeps its
 * rows and the next flush writes them once */
static void test_never_overwrite_and_retry(void **state)
{
    (void)state;
    char *root = mkroot();
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    char dir[PATH_MAX + 64], taken[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/raw/bsm/2026/11/25/10", root);
    assert_int_equal(tsi_mkdirs(dir, &e), 0);
    snprintf(taken, sizeof taken, "%s/bsm_20261125T100000Z_0.parquet", dir);
    FILE *f = fopen(taken, "w");
    fputs("not mine", f);
    fclose(f);
    for (int i = 0; i < 10; i++) {
        tsi_msg m = bsm(T0 + i, i, i);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{}", 2, T0, &e), 0);
    }
    assert_int_equal(tsi_archive_flush(a, NULL, &e), 0);
    f = fopen(taken, "r");
    char buf[32] = "";
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "not mine");
    char next[PATH_MAX + 128];
    snprintf(next, sizeof next, "%s/bsm_20261125T100000Z_1.parquet", dir);
    reader r;
    reader_open(&r);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", next), 10);

    /* hour 12's directory cannot be created (a file is in the way): the flush fails, hour
     * 10's rows still go out, hour 12's stay pending */
    char blocker[PATH_MAX + 64];
    snprintf(blocker, sizeof blocker, "%s/raw/bsm/2026/11/25/12", root);
    f = fopen(blocker, "w");
    fclose(f);
    for (int i = 0; i < 7; i++) {
        tsi_msg m = bsm(T0 + 2 * 3600000 + i, i, i);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{}", 2, T0, &e), 0);
        m = bsm(T0 + 60000 + i, 100 + i, i);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{}", 2, T0, &e), 0);
    }
    assert_true(tsi_archive_flush(a, NULL, &e) < 0);
    assert_int_equal(e.code, TSI_E_IO);
    assert_int_equal(tsi_archive_pending(a), 7);
    assert_int_equal(count_files(dir, ".parquet", 0), 3);
    unlink(blocker);
    assert_int_equal(tsi_archive_flush(a, NULL, &e), 0);
    assert_int_equal(tsi_archive_pending(a), 0);
    char glob[PATH_MAX + 128];
    snprintf(glob, sizeof glob, "%s/*.parquet", blocker);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 7);
    snprintf(glob, sizeof glob, "%s/bsm_20261125T100100Z_*.parquet", dir);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 7);
    reader_close(&r);
    tsi_archive_close(a);
    cleanup_root(root);
}

/* kill -9 of a writer in the middle of its flushes: every .parquet file left is whole
 * (opens, and holds exactly the rows of one flush); no torn file under an archive name */
static void test_kill9_mid_flush(void **state)
{
    (void)state;
    char *root = mkroot();
    const int per_flush = 20000;
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            tsi_archive *a = NULL;
            if (tsi_archive_open(&a, root, NULL) < 0)
                _exit(3);
            for (int flush = 0;; flush++) {
                for (int i = 0; i < per_flush; i++) {
                    tsi_msg m = bsm(T0 + (int64_t)(flush % 50) * 1000 + i % 1000, i, i % 128);
                    tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{\"payload\":\"xxxxxxxxxxxx\"}",
                                        26, T0, NULL);
                }
                tsi_archive_flush(a, NULL, NULL);
            }
        }
        /* once this writer has published a file (a loaded machine may take long to get
         * there), into a later flush: the kill lands at a different point each round */
        char d0[PATH_MAX + 64];
        snprintf(d0, sizeof d0, "%s/raw/bsm/2026/11/25/10", root);
        int before = count_files(d0, ".parquet", 0);
        for (int i = 0; i < 1200 && count_files(d0, ".parquet", 0) <= before; i++)
            usleep(100000);
        usleep(200000 + round * 450000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status));
    }
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/raw/bsm/2026/11/25/10", root);
    int files = count_files(dir, ".parquet", 0);
    assert_true(files >= 1);
    reader r;
    reader_open(&r);
    char glob[PATH_MAX + 128];
    snprintf(glob, sizeof glob, "%s/*.parquet", dir);
    /* every file holds whole flushes only */
    assert_int_equal(q_int(&r,
                           "SELECT count(*) FROM (SELECT filename, count(*) AS n FROM "
                           "read_parquet(%s, filename=true) GROUP BY 1) WHERE n <> 20000",
                           glob),
                     0);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob),
                     (long long)files * per_flush);
    /* temporary files of the dead writers are cleaned (they are dead: any age) */
    int tmps = count_files(dir, ".tmp", 1);
    assert_int_equal(tsi_pq_clean_tmp(dir, 1000000), tmps);
    assert_int_equal(count_files(dir, ".tmp", 1), 0);
    reader_close(&r);
    cleanup_root(root);
}

/* A flush larger than one row group (issue 27): 5,000 BSMs of one hour handed in out of
 * time order, some rejected, some with bytes that are not UTF-8, written with row groups
 * of 2,048 rows (DuckDB's vector; it rounds smaller sizes up to it): one file of three row
 * groups (2,048, 2,048, 904), rows in message-time order, and every row's columns equal
 * to what was handed in. */
static void test_raw_row_groups(void **state)
{
    (void)state;
    char *root = mkroot();
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    tsi_archive_set_limits(a, &(tsi_archive_limits){0, 0, 2048});
    const int n = 5000;
    long long want_ids = 0, want_len = 0;
    int rejected = 0;
    char json[256];
    for (int i = 0; i < n; i++) {
        int j = (i * 7919) % n; /* a permutation of 0..n-1: times out of order */
        int len = snprintf(json, sizeof json, "{\"j\":%d,\"pad\":\"%0*d\"}", j, 1 + j % 200, j);
        if (j % 97 == 0) { /* rejected, dated by receive time: the same hour */
            json[len++] = (char)0xff;
            assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, NULL, "range", json, (size_t)len,
                                                 T0 + (int64_t)j * 700, &e),
                             0);
            rejected++;
            want_len += len + 3; /* 0xff kept as the text \xff */
            continue;
        }
        tsi_msg m = bsm(T0 + (int64_t)j * 700, 100000 + j, j % 128);
        assert_int_equal(
            tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, json, (size_t)len, T0 + 5000000, &e), 0);
        want_ids += 100000 + j;
        want_len += len;
    }
    assert_int_equal(tsi_archive_pending(a), n);
    tsi_archive_stats st;
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.rows[TSI_RAW_BSM], n);
    assert_int_equal(st.flush_errors, 0);
    tsi_archive_close(a);

    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/raw/bsm/2026/11/25/10/bsm_20261125T100000Z_0.parquet", root);
    reader r;
    reader_open(&r);
    assert_int_equal(
        q_int(&r, "SELECT count(DISTINCT row_group_id) FROM parquet_metadata(%s)", path), 3);
    assert_int_equal(
        q_int(&r,
              "SELECT CASE WHEN string_agg(n::VARCHAR, ',' ORDER BY g) = '2048,2048,904' THEN 1 "
              "ELSE 0 END FROM "
              "(SELECT DISTINCT row_group_id AS g, row_group_num_rows AS n FROM "
              "parquet_metadata(%s))",
              path),
        1);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", path), n);
    /* in message-time order, file order being the row number */
    assert_int_equal(q_int(&r,
                           "SELECT count(*) FROM (SELECT message_time, lag(message_time) OVER "
                           "(ORDER BY file_row_number) AS p FROM read_parquet(%s, "
                           "file_row_number = true)) WHERE p > message_time",
                           path),
                     0);
    /* each row's columns are those of its input j (taken back from its JSON) */
    assert_int_equal(
        q_int(&r,
              "SELECT count(*) FROM (SELECT *, regexp_extract(json, '\"j\":([0-9]+)', "
              "1)::BIGINT AS j FROM read_parquet(%s)) WHERE epoch_ms(message_time) = "
              "1795600800000 + j * 700 AND (CASE WHEN j %% 97 = 0 THEN id IS NULL "
              "AND reject_reason = 'range' AND ends_with(json, '\\xff') ELSE id = 100000 + "
              "j AND msg_cnt = j %% 128 AND timestamp_ms = 1795600800000 + j * 700 "
              "AND speed = 10.5 AND elev IS NULL AND wheel_brakes = '01000' AND "
              "rsu_name = 'rsu-1' AND reject_reason IS NULL AND "
              "epoch_ms(received_at) = 1795605800000 END) AND length(json) = "
              "length('{\"j\":' || j || ',\"pad\":\"') + greatest(1 + j %% 200, "
              "length(j::VARCHAR)) + 2 + (CASE WHEN j %% 97 = 0 THEN 4 ELSE 0 "
              "END)",
              path),
        n);
    assert_int_equal(q_int(&r, "SELECT count(DISTINCT json) FROM read_parquet(%s)", path), n);
    assert_int_equal(q_int(&r, "SELECT sum(id) FROM read_parquet(%s)", path), want_ids);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s) WHERE id IS NULL", path),
                     rejected);
    assert_int_equal(q_int(&r, "SELECT sum(strlen(json)) FROM read_parquet(%s)", path), want_len);
    reader_close(&r);
    cleanup_root(root);
}

/* The buffer bounds (issue 27): a type whose rows pass max_rows or max_bytes is handed to
 * the writer thread at once, between flushes; a write that fails there keeps its rows
 * (counted in flush_errors) and the next flush writes them; every row once in the end. */
static void test_raw_bounds(void **state)
{
    (void)state;
    char *root = mkroot();
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    tsi_archive_set_limits(a, &(tsi_archive_limits){1000, 0, 0});
    for (int i = 0; i < 2500; i++) {
        tsi_msg m = bsm(T0 + i, i, i % 128);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{}", 2, T0, &e), 0);
        /* waiting: at most the buffer and the file being written */
        assert_true(tsi_archive_pending(a) <= 1000 + (i + 1) % 1000);
    }
    char dir[PATH_MAX + 64], glob[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/raw/bsm/2026/11/25/10", root);
    tsi_archive_stats st;
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.files, 3); /* the two written at the bound are counted here */
    assert_int_equal(st.rows[TSI_RAW_BSM], 2500);
    assert_int_equal(st.flush_errors, 0);
    assert_int_equal(count_files(dir, ".parquet", 0), 3);
    reader r;
    reader_open(&r);
    snprintf(glob, sizeof glob, "%s/*.parquet", dir);
    /* the rows 0..999, 1,000..1,999 (at the bound) and the rest (the flush): by file */
    assert_int_equal(q_int(&r,
                           "SELECT string_agg(n::VARCHAR, ',' ORDER BY lo) = '1000,1000,500' "
                           "FROM (SELECT min(id) AS lo, count(*) AS n, max(id) - min(id) + 1 AS "
                           "span FROM read_parquet(%s, filename = true) GROUP BY filename) "
                           "WHERE span = n",
                           glob),
                     1);
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.files, 0);

    /* by bytes: 64 KiB, messages of 1,000 bytes: a file every ~60 rows */
    tsi_archive_set_limits(a, &(tsi_archive_limits){0, 64 << 10, 0});
    char big[1001];
    memset(big, 'x', sizeof big);
    big[0] = '"';
    big[999] = '"';
    big[1000] = '\0';
    for (int i = 0; i < 300; i++) {
        tsi_msg m = psm(T0 + 3600000 + i, 5000 + i);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_PSM, &m, NULL, big, 1000, T0, &e), 0);
        assert_true(tsi_archive_pending(a) * 1000 < 2 * (64 << 10)); /* buffer + writer */
    }
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_true(st.files >= 300 * 1000 / (64 << 10));
    assert_int_equal(st.rows[TSI_RAW_PSM], 300);

    /* hour 12's directory cannot be created (a file in the way): the bound's write fails,
     * the rows stay, adding goes on; once the way is free the flush writes them all */
    tsi_archive_set_limits(a, &(tsi_archive_limits){100, 0, 0});
    char blocker[PATH_MAX + 64];
    snprintf(blocker, sizeof blocker, "%s/raw/bsm/2026/11/25/12", root);
    FILE *f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    for (int i = 0; i < 450; i++) {
        tsi_msg m = bsm(T0 + 2 * 3600000 + i, 9000 + i, 1);
        assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{}", 2, T0, &e), 0);
    }
    assert_int_equal(tsi_archive_pending(a), 450);
    assert_true(tsi_archive_flush(a, &st, &e) < 0);
    assert_true(st.flush_errors >= 1 && st.flush_errors <= 4); /* not one try per row */
    assert_int_equal(tsi_archive_pending(a), 450);
    unlink(blocker);
    assert_int_equal(tsi_archive_flush(a, &st, &e), 0);
    assert_int_equal(st.rows[TSI_RAW_BSM], 450);
    assert_int_equal(tsi_archive_pending(a), 0);
    tsi_archive_close(a);

    snprintf(glob, sizeof glob, "%s/raw/*/*/*/*/*/*.parquet", root);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 2500 + 300 + 450);
    assert_int_equal(q_int(&r, "SELECT count(DISTINCT id) FROM read_parquet(%s)", glob),
                     2500 + 300 + 450);
    snprintf(glob, sizeof glob, "%s/*.parquet", blocker);
    assert_int_equal(q_int(&r, "SELECT sum(id) FROM read_parquet(%s)", glob),
                     450LL * 9000 + 449 * 450 / 2);
    reader_close(&r);
    cleanup_root(root);
}

static tsi_rt_row rt(int64_t isect, int64_t minute_ms, double ci)
{
    tsi_rt_row x;
    memset(&x, 0, sizeof x);
    x.intersection_id = isect;
    x.minute_ms = minute_ms;
    x.combined_index = ci;
    x.combined_index_eb = ci / 2;
    x.vru_index = NAN;
    x.vru_index_eb = x.vehicle_index = x.vehicle_index_eb = 1;
    x.traffic_volume = 10 + (int)isect;
    x.vru_count = 2;
    x.hour_of_day = 23;
    x.day_of_week = 2;
    x.avg_speed = 11.0;
    x.speed_stddev = NAN;
    x.hard_braking_count = 1;
    return x;
}

static void test_indices_files(void **state)
{
    (void)state;
    char *root = mkroot();
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    /* 2026-11-25T23:58 and 23:59 and 2026-11-26T00:00, 3 intersections each */
    int64_t m0 = T0 + 13 * 3600000LL + 58 * 60000LL;
    tsi_rt_row rows[9];
    for (int i = 0; i < 9; i++)
        rows[i] = rt(i % 3 + 1, m0 + (i / 3) * 60000LL, 10 * i);
    tsi_conflict_row c = {2, m0, 2, 7, 9, 1.25, 3.5, m0 + 1500};
    tsi_indices_stats st;
    if (tsi_indices_write(tsi_archive_duck(a), root, rows, 9, &c, 1, &st, &e) != 0)
        fail_msg("indices write: %d %s %s", e.code, e.message, e.detail);
    assert_int_equal(st.files, 3);
    assert_int_equal(st.rows, 9);
    assert_int_equal(st.conflicts, 1);
    /* a row without its combined index is refused whole */
    rows[0].combined_index = NAN;
    assert_int_equal(tsi_indices_write(tsi_archive_duck(a), root, rows, 9, NULL, 0, &st, &e),
                     TSI_E_INVALID);
    tsi_archive_close(a);
    reader r;
    reader_open(&r);
    char glob[PATH_MAX + 128];
    snprintf(glob, sizeof glob, "%s/indices/2026/11/25/indices_20261125T235800Z_0.parquet", root);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 6);
    snprintf(glob, sizeof glob, "%s/indices/2026/11/26/indices_*.parquet", root);
    assert_int_equal(q_int(&r, "SELECT sum(combined_index)::BIGINT FROM read_parquet(%s)", glob),
                     60 + 70 + 80);
    assert_int_equal(q_int(&r,
                           "SELECT count(*) FROM read_parquet(%s) WHERE vru_index IS NULL AND "
                           "speed_stddev IS NULL AND avg_speed = 11 AND hour_of_day = 23",
                           glob),
                     3);
    snprintf(glob, sizeof glob, "%s/indices/2026/11/25/conflicts_*.parquet", root);
    assert_int_equal(q_int(&r,
                           "SELECT id_a * 100 + id_b FROM read_parquet(%s) WHERE kind = "
                           "'vru_vehicle' AND min_ttc_s = 1.25",
                           glob),
                     709);
    reader_close(&r);
    cleanup_root(root);
}

static void write_flushes(const char *root, int flushes, int per, int64_t base)
{
    tsi_archive *a = NULL;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_open(&a, root, &e), 0);
    for (int f = 0; f < flushes; f++) {
        for (int i = 0; i < per; i++) {
            tsi_msg m = bsm(base + f * 60000 + i, f * 1000 + i, i % 128);
            assert_int_equal(tsi_archive_add_msg(a, TSI_RAW_BSM, &m, NULL, "{}", 2, base, &e), 0);
        }
        assert_int_equal(tsi_archive_flush(a, NULL, &e), 0);
    }
    tsi_archive_close(a);
}

static void test_compact(void **state)
{
    (void)state;
    char *root = mkroot();
    /* five flushes of 100 rows each in hour 10, and two in hour 11 */
    write_flushes(root, 5, 100, T0);
    write_flushes(root, 2, 100, T0 + 3600000);
    char d10[PATH_MAX + 64], d11[PATH_MAX + 64], glob[PATH_MAX + 128];
    snprintf(d10, sizeof d10, "%s/raw/bsm/2026/11/25/10", root);
    snprintf(d11, sizeof d11, "%s/raw/bsm/2026/11/25/11", root);
    assert_int_equal(count_files(d10, ".parquet", 0), 5);
    reader r;
    reader_open(&r);
    snprintf(glob, sizeof glob, "%s/*.parquet", d10);
    /* sum of ids: flushes f=0..4, ids f*1000+i, i=0..99 */
    long long want_sum = 0;
    for (int f = 0; f < 5; f++)
        want_sum += 100LL * f * 1000 + 99 * 100 / 2;
    assert_int_equal(q_int(&r, "SELECT sum(id) FROM read_parquet(%s)", glob), want_sum);

    /* at 11:30 with min age 0, hour 10 is closed, hour 11 is not */
    tsi_compact_stats st;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_compact(root, "bsm", 0, T0 + 5400000, &st, &e), 0);
    assert_int_equal(st.dirs, 1);
    assert_int_equal(st.files_in, 5);
    assert_int_equal(st.files_out, 1);
    assert_int_equal(st.rows, 500);
    assert_int_equal(count_files(d10, ".parquet", 0), 1);
    assert_int_equal(count_files(d10, "", 1), 0); /* no manifest, no temporary file */
    assert_int_equal(count_files(d11, ".parquet", 0), 2);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 500);
    assert_int_equal(q_int(&r, "SELECT sum(id) FROM read_parquet(%s)", glob), want_sum);
    assert_int_equal(
        q_int(&r, "SELECT count(DISTINCT (id, timestamp_ms)) FROM read_parquet(%s)", glob), 500);
    /* the merged file keeps the archive name pattern, earliest start */
    char merged[PATH_MAX + 128];
    snprintf(merged, sizeof merged, "%s/bsm_20261125T100000Z_1.parquet", d10);
    struct stat sb;
    assert_int_equal(stat(merged, &sb), 0);
    /* idempotent: a single file is left alone */
    assert_int_equal(tsi_archive_compact(root, "all", 0, T0 + 5400000, &st, &e), 0);
    assert_int_equal(st.dirs, 0);
    /* min age: at 12:30 with 2 hours, hour 11 (ended 12:00) is still too young */
    assert_int_equal(tsi_archive_compact(root, NULL, 2, T0 + 9000000, &st, &e), 0);
    assert_int_equal(st.dirs, 0);
    assert_int_equal(tsi_archive_compact(root, NULL, 2, T0 + 4 * 3600000, &st, &e), 0);
    assert_int_equal(st.dirs, 1);
    assert_int_equal(count_files(d11, ".parquet", 0), 1);
    /* an unknown kind is refused */
    assert_int_equal(tsi_archive_compact(root, "bogus", 0, T0, &st, &e), TSI_E_INVALID);
    reader_close(&r);
    cleanup_root(root);
}

/* an interrupted compaction: (a) renamed but inputs not yet removed: the next run
 * removes them, no row twice; (b) manifest written, rename not done: dropped, inputs kept */
static void test_compact_recovery(void **state)
{
    (void)state;
    char *root = mkroot();
    write_flushes(root, 3, 50, T0);
    char d10[PATH_MAX + 64], glob[PATH_MAX + 128], cmd[4 * PATH_MAX];
    snprintf(d10, sizeof d10, "%s/raw/bsm/2026/11/25/10", root);
    snprintf(glob, sizeof glob, "%s/*.parquet", d10);
    reader r;
    reader_open(&r);
    /* (a): merge by hand into bsm_..._9.parquet, write the manifest as compaction would */
    char merged[PATH_MAX + 128];
    snprintf(merged, sizeof merged, "%s/bsm_20261125T100000Z_9.parquet", d10);
    tsi_buf q = TSI_BUF_INIT;
    tsi_buf_puts(&q, "COPY (SELECT * FROM read_parquet(");
    tsi_sql_quote(&q, glob);
    tsi_buf_puts(&q, ")) TO ");
    tsi_sql_quote(&q, merged);
    tsi_buf_puts(&q, " (FORMAT parquet)");
    duckdb_result res;
    assert_int_equal(duckdb_query(r.con, tsi_buf_cstr(&q), &res), DuckDBSuccess);
    duckdb_destroy_result(&res);
    tsi_buf_free(&q);
    char *sum = q_str(&r, "SELECT sum(hash(t)::HUGEINT)::VARCHAR FROM read_parquet(%s) t", merged);
    char man[PATH_MAX + 128];
    snprintf(man, sizeof man, "%s/.tsi-compact-bsm.manifest", d10);
    FILE *f = fopen(man, "w");
    fprintf(f,
            "tsi-compact 1\nfinal bsm_20261125T100000Z_9.parquet\ntmp %s/.gone.tmp\nrows 150\n"
            "checksum %s\n",
            d10, sum);
    for (int s = 0; s < 3; s++)
        fprintf(f, "input bsm_20261125T10%02d00Z_0.parquet\n", s);
    fclose(f);
    free(sum);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 300);
    tsi_compact_stats st;
    tsi_error e = {0};
    assert_int_equal(tsi_archive_compact(root, "bsm", 0, T0 + 7200000, &st, &e), 0);
    assert_int_equal(st.recovered, 1);
    assert_int_equal(st.dirs, 0); /* one file left: nothing more to merge */
    assert_int_equal(count_files(d10, ".parquet", 0), 1);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 150);
    assert_int_equal(
        q_int(&r, "SELECT count(DISTINCT (id, timestamp_ms)) FROM read_parquet(%s)", glob), 150);

    /* (b): a manifest whose merged file never appeared, its temporary file still there */
    write_flushes(root, 2, 10, T0 + 1800000);
    char tmpf[PATH_MAX + 128];
    snprintf(tmpf, sizeof tmpf, "%s/" TSI_PQ_TMP_PREFIX "%d-0-bsm.tmp", d10, (int)getpid() + 1);
    snprintf(cmd, sizeof cmd, "%s", tmpf);
    f = fopen(tmpf, "w");
    fputs("half", f);
    fclose(f);
    f = fopen(man, "w");
    fprintf(f,
            "tsi-compact 1\nfinal bsm_x_0.parquet\ntmp %s\nrows 5\nchecksum 1\n"
            "input bsm_20261125T100000Z_9.parquet\n",
            tmpf);
    fclose(f);
    assert_int_equal(tsi_archive_compact(root, "bsm", 0, T0 + 7200000, &st, &e), 0);
    assert_int_equal(st.recovered, 1);
    assert_int_equal(st.dirs, 1); /* then the three files merge normally */
    assert_int_equal(count_files(d10, ".parquet", 0), 1);
    assert_int_equal(count_files(d10, "", 1), 0);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 170);
    reader_close(&r);
    cleanup_root(root);
}

static void test_cli(void **state)
{
    (void)state;
    char *root = mkroot();
    /* a day before T0: closed for any wall clock after T0 + 2 h */
    write_flushes(root, 2, 10, T0 - 86400000LL);
    char env_dir[PATH_MAX + 32], out[4096];
    snprintf(env_dir, sizeof env_dir, "TSI_ARCHIVE_DIR=%s", root);
    const char *env[] = {env_dir, NULL};
    int rc = th_run_tsi((const char *[]){"archive", "compact", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi archive compact: %s", out);
    assert_non_null(strstr(out, "dirs=1 files_in=2 files_out=1 rows=20"));
    rc = th_run_tsi((const char *[]){"archive", "compact", "--kind", "nope", NULL}, env, out,
                    sizeof out);
    assert_int_equal(rc, 2);
    rc = th_run_tsi((const char *[]){"archive", "compact", "--min-age-hours", "-1", NULL}, env, out,
                    sizeof out);
    assert_int_equal(rc, 2);
    rc = th_run_tsi((const char *[]){"archive", "frobnicate", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 2);
    reader r;
    reader_open(&r);
    char glob[PATH_MAX + 128];
    snprintf(glob, sizeof glob, "%s/raw/bsm/2026/11/24/10/*.parquet", root);
    assert_int_equal(q_int(&r, "SELECT count(*) FROM read_parquet(%s)", glob), 20);
    reader_close(&r);
    cleanup_root(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_layout_and_roundtrip),
        cmocka_unit_test(test_mapdata_spat),
        cmocka_unit_test(test_never_overwrite_and_retry),
        cmocka_unit_test(test_kill9_mid_flush),
        cmocka_unit_test(test_raw_row_groups),
        cmocka_unit_test(test_raw_bounds),
        cmocka_unit_test(test_indices_files),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_compact_recovery),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
