/* Unit tests of db/spool (the spool file's format, appends, reads and recovery) and
 * db/copybin (the binary COPY encoding of realtime rows), without a database: records
 * written and read back; a spool locked by one opener refuses a second; hostile bytes (a
 * torn tail, a flipped payload byte, a wrong version or length, garbage before a frame)
 * skipped or cut as the recovery promises, from a table of cases; the COPY stream's
 * signature, a row's field count and fields in network order, NULLs for non-finite values
 * and missing provenance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <endian.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/copybin.h"
#include "db/spool.h"

static char dir[256], path[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tsi-test-spool.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/sub/ingest.spool", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    return 0;
}

static tsi_rt_row row_of(int64_t id, int64_t minute_ms)
{
    tsi_rt_row r;
    memset(&r, 0, sizeof r);
    r.intersection_id = id;
    r.minute_ms = minute_ms;
    r.combined_index = 42.5;
    r.traffic_volume = 7;
    r.constants_id = 3;
    r.algorithm_version = 2;
    return r;
}

/* frames of n rows (ids 1..n) into b */
static void rows_framed(tsi_buf *b, int n)
{
    for (int i = 1; i <= n; i++) {
        tsi_rt_row r = row_of(i, 60000LL * i);
        tsi_spool_frame(b, TSI_SPOOL_ROW, &r, sizeof r);
    }
}

static off_t file_size(void)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

static void test_roundtrip_and_lock(void **state)
{
    (void)state;
    int fd = -1, fd2 = -1;
    tsi_error e = {0};
    assert_int_equal(tsi_spool_open(path, &fd, &e), 0); /* creates the directory */
    assert_true(fd >= 0);
    assert_int_equal(tsi_spool_open(path, &fd2, &e), TSI_E_EXISTS); /* flock: one opener */
    assert_int_equal(fd2, -1);

    tsi_buf b = TSI_BUF_INIT;
    rows_framed(&b, 3);
    tsi_isect_row x;
    memset(&x, 0, sizeof x);
    x.id = 9;
    snprintf(x.name, sizeof x.name, "Main & 1st");
    x.latitude = 37.5;
    x.lane_count = 4;
    x.revision = 2;
    x.metadata = "{\"lanes\":4}";
    tsi_buf p = TSI_BUF_INIT;
    tsi_spool_isect_payload(&p, &x);
    tsi_spool_frame(&b, TSI_SPOOL_ISECT, p.data, (uint32_t)p.len);
    assert_int_equal(tsi_spool_write(fd, path, b.data, b.len, 0, &e), 0);
    assert_int_equal(file_size(), (off_t)b.len);

    off_t size = 0;
    long long records = 0, corrupt = 0;
    assert_int_equal(tsi_spool_scan(fd, path, &size, &records, &corrupt, &e), 0);
    assert_int_equal(size, (off_t)b.len);
    assert_int_equal(records, 4);
    assert_int_equal(corrupt, 0);

    /* one type per read: the three rows, then the intersection */
    tsi_spool_rec v[8];
    off_t next = 0;
    size_t n = tsi_spool_read(fd, 0, size, v, 8, &next, &corrupt);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].type, TSI_SPOOL_ROW);
        assert_int_equal(v[i].u.row.intersection_id, (int64_t)i + 1);
        assert_int_equal(v[i].u.row.constants_id, 3);
        assert_true(v[i].u.row.combined_index == 42.5);
    }
    assert_int_equal(v[1].off - v[0].off, 16 + (off_t)sizeof(tsi_rt_row));
    n = tsi_spool_read(fd, next, size, v, 8, &next, &corrupt);
    assert_int_equal(n, 1);
    assert_int_equal(next, size);
    assert_int_equal(v[0].type, TSI_SPOOL_ISECT);
    assert_int_equal(v[0].u.isect.id, 9);
    assert_string_equal(v[0].u.isect.name, "Main & 1st");
    assert_string_equal(v[0].u.isect.metadata, "{\"lanes\":4}");
    assert_int_equal(v[0].u.isect.lane_count, 4);
    tsi_spool_recs_free(v, n);
    assert_null(v[0].u.isect.metadata);

    assert_int_equal(tsi_spool_empty(fd, path, &e), 0);
    assert_int_equal(file_size(), 0);
    tsi_buf_free(&b);
    tsi_buf_free(&p);
    close(fd);
    /* closed: the lock is gone */
    assert_int_equal(tsi_spool_open(path, &fd, &e), 0);
    close(fd);
}

/* hostile bytes: what the scan keeps, counts and cuts */
typedef struct spool_case {
    const char *name;
    int at;           /* which of 5 row frames (0..4) is damaged; -1: none */
    int byte;         /* offset inside that frame to overwrite */
    unsigned char to; /* the new byte */
    size_t tail;      /* bytes of a sixth frame appended (a torn append) */
    size_t garbage;   /* bytes of 0xAB before the first frame */
    long long records, corrupt;
    int cut; /* the scan cuts the file's end */
} spool_case;

static const spool_case CASES[] = {
    {"intact", -1, 0, 0, 0, 0, 5, 0, 0},
    {"torn tail", -1, 0, 0, 21, 0, 5, 1, 1},
    {"torn header", -1, 0, 0, 7, 0, 5, 1, 1},
    {"payload byte flipped", 2, 40, 0xFF, 0, 0, 4, 1, 0},
    {"wrong version", 1, 5, 2, 0, 0, 4, 1, 0},
    {"reserved byte set", 3, 6, 1, 0, 0, 4, 1, 0},
    {"unknown type", 0, 4, 77, 0, 0, 4, 1, 0},
    {"length beyond a row", 2, 9, 0x7F, 0, 0, 4, 1, 0},
    {"bad magic", 4, 0, 'X', 0, 0, 4, 1, 1},
    {"garbage before the first frame", -1, 0, 0, 0, 33, 5, 1, 0},
    {"last frame's checksum wrong", 4, 12, 0, 0, 0, 4, 1, 1},
};

static void test_hostile_bytes(void **state)
{
    (void)state;
    size_t fl = 16 + sizeof(tsi_rt_row);
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const spool_case *k = &CASES[c];
        tsi_buf b = TSI_BUF_INIT;
        for (size_t g = 0; g < k->garbage; g++)
            tsi_buf_putc(&b, (char)0xAB);
        rows_framed(&b, 5);
        if (k->at >= 0) {
            unsigned char *fp = (unsigned char *)b.data + k->garbage + (size_t)k->at * fl;
            fp[k->byte] = fp[k->byte] == k->to ? (unsigned char)~k->to : k->to;
        }
        tsi_buf t = TSI_BUF_INIT;
        rows_framed(&t, 1);
        tsi_buf_append(&b, t.data, k->tail);
        int fd = -1;
        tsi_error e = {0};
        unlink(path);
        assert_int_equal(tsi_spool_open(path, &fd, &e), 0);
        assert_int_equal(tsi_spool_write(fd, path, b.data, b.len, 0, &e), 0);
        off_t size = 0;
        long long records = 0, corrupt = 0;
        assert_int_equal(tsi_spool_scan(fd, path, &size, &records, &corrupt, &e), 0);
        print_message("case %s: records=%lld corrupt=%lld size=%lld of %zu\n", k->name, records,
                      corrupt, (long long)size, b.len);
        assert_int_equal(records, k->records);
        assert_int_equal(corrupt, k->corrupt);
        assert_int_equal(size, file_size());
        if (k->cut)
            assert_true(size < (off_t)b.len);
        else if (k->tail == 0)
            assert_int_equal(size, (off_t)b.len);
        /* reading back yields the records the scan counted, all rows with ids in order */
        tsi_spool_rec v[8];
        off_t next = 0;
        long long skipped = 0;
        size_t n = tsi_spool_read(fd, 0, size, v, 8, &next, &skipped);
        assert_int_equal((long long)n, k->records);
        assert_int_equal(next, size);
        for (size_t i = 1; i < n; i++)
            assert_true(v[i].u.row.intersection_id > v[i - 1].u.row.intersection_id);
        close(fd);
        tsi_buf_free(&b);
        tsi_buf_free(&t);
    }
}

static uint32_t be32_at(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return be32toh(v);
}

static void test_copybin_row(void **state)
{
    (void)state;
    tsi_buf d = TSI_BUF_INIT;
    tsi_copybin_begin(&d);
    assert_int_equal(d.len, 19);
    assert_memory_equal(d.data, "PGCOPY\n\377\r\n\0", 11);
    size_t row_at = d.len;
    tsi_rt_row r = row_of(5, 946684800000LL + 60000); /* 2000-01-01 00:01 UTC */
    r.vru_index = NAN;
    r.constants_id = 0;          /* not recorded: NULL */
    r.algorithm_version = 70000; /* beyond smallint: NULL */
    tsi_copybin_rt_row(&d, &r, 7, NULL);
    const unsigned char *p = (const unsigned char *)d.data + row_at;
    assert_int_equal(((unsigned)p[0] << 8) | p[1], 20); /* seq + key + 12 + 5 features */
    p += 2;
    assert_int_equal(be32_at(p), 8); /* seq */
    assert_int_equal(be32_at(p + 8), 7);
    p += 12;
    assert_int_equal(be32_at(p), 8); /* intersection_id */
    assert_int_equal(be32_at(p + 8), 5);
    p += 12;
    assert_int_equal(be32_at(p), 8); /* "timestamp": microseconds since 2000-01-01 */
    assert_int_equal(be32_at(p + 8), 60000000u);
    p += 12;
    p += 12;                                  /* combined_index */
    p += 12;                                  /* combined_index_eb */
    assert_int_equal(be32_at(p), UINT32_MAX); /* vru_index NaN: NULL */
    size_t full = d.len;
    /* without seq and with no feature columns: 14 fields */
    bool none[TSI_RT_NFEAT] = {false};
    tsi_copybin_rt_row(&d, &r, -1, none);
    p = (const unsigned char *)d.data + full;
    assert_int_equal(((unsigned)p[0] << 8) | p[1], 14);
    /* the NULL provenance: the last two fields of the full row are length -1 */
    p = (const unsigned char *)d.data + full - 8;
    assert_int_equal(be32_at(p), UINT32_MAX);
    assert_int_equal(be32_at(p + 4), UINT32_MAX);
    tsi_copybin_end(&d);
    p = (const unsigned char *)d.data + d.len - 2;
    assert_int_equal(p[0], 0xFF);
    assert_int_equal(p[1], 0xFF);
    assert_string_equal(tsi_rt_feat_cols[0], "avg_speed");
    assert_string_equal(tsi_rt_feat_cols[TSI_RT_NFEAT - 1], "algorithm_version");
    tsi_buf_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bytes, setup, teardown),
        cmocka_unit_test(test_copybin_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
