/* archive/pqfile.c — see pqfile.h */
#include "archive/pqfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void tsi_sql_quote(tsi_buf *b, const char *s)
{
    tsi_buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            tsi_buf_putc(b, '\'');
        tsi_buf_putc(b, *s);
    }
    tsi_buf_putc(b, '\'');
}

int tsi_duck_exec(duckdb_connection con, const char *sql, duckdb_result *res, tsi_error *err)
{
    duckdb_result local;
    duckdb_result *r = res ? res : &local;
    if (duckdb_query(con, sql, r) == DuckDBError) {
        const char *m = duckdb_result_error(r);
        tsi_error_set(err, TSI_E_PARQUET, "DuckDB statement failed", "%.300s | %.150s", m ? m : "?",
                      sql);
        duckdb_destroy_result(r);
        return TSI_E_PARQUET;
    }
    if (!res)
        duckdb_destroy_result(r);
    return 0;
}

void tsi_pq_stamp(int64_t t_ms, char *buf, size_t len)
{
    time_t t = (time_t)(t_ms >= 0 ? t_ms / 1000 : (t_ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm);
}

static int fsync_path(const char *path, tsi_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot open written file", "%s: %s", path,
                             strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot fsync written file", "%s: %s", path,
                             strerror(e));
    return 0;
}

/* Moves tmp to a free final name; never replaces an existing file. */
static int publish(const char *tmp, const char *dir, const char *prefix, const char *start,
                   char *out, size_t outlen, tsi_error *err)
{
    char final[PATH_MAX];
    for (int seq = 0; seq < 100000; seq++) {
        int n = snprintf(final, sizeof final, "%s/%s_%s_%d.parquet", dir, prefix, start, seq);
        if (n < 0 || (size_t)n >= sizeof final)
            return tsi_error_set(err, TSI_E_INVALID, "archive path too long", "%s", dir);
        int rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE);
        if (rc < 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP)) {
            rc = link(tmp, final); /* atomic, fails on an existing name */
            if (rc == 0)
                unlink(tmp);
        }
        if (rc == 0) {
            if (out)
                snprintf(out, outlen, "%s", final);
            return 0;
        }
        if (errno != EEXIST)
            return tsi_error_set(err, TSI_E_IO, "cannot rename archive file into place",
                                 "%s -> %s: %s", tmp, final, strerror(errno));
    }
    return tsi_error_set(err, TSI_E_EXISTS, "no free archive file name", "%s/%s_%s_*", dir, prefix,
                         start);
}

static long long write_tmp(duckdb_connection con, const char *select_sql, const char *copy_options,
                           const char *dir, const char *prefix, char *tmp, size_t tmplen,
                           tsi_error *err)
{
    static atomic_uint counter;
    long long rows = -1;
    int rc = tsi_mkdirs(dir, err);
    if (rc < 0)
        return rc;
    int n = snprintf(tmp, tmplen, "%s/" TSI_PQ_TMP_PREFIX "%d-%u-%s.tmp", dir, (int)getpid(),
                     atomic_fetch_add(&counter, 1), prefix);
    if (n < 0 || (size_t)n >= tmplen)
        return tsi_error_set(err, TSI_E_INVALID, "archive path too long", "%s", dir);

    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_puts(&sql, "COPY (");
    tsi_buf_puts(&sql, select_sql);
    tsi_buf_puts(&sql, ") TO ");
    tsi_sql_quote(&sql, tmp);
    tsi_buf_puts(&sql, " (FORMAT parquet, COMPRESSION zstd");
    if (copy_options && *copy_options) {
        tsi_buf_puts(&sql, ", ");
        tsi_buf_puts(&sql, copy_options);
    }
    tsi_buf_putc(&sql, ')');
    duckdb_result res;
    rc = tsi_duck_exec(con, tsi_buf_cstr(&sql), &res, err);
    tsi_buf_free(&sql);
    if (rc < 0)
        goto fail;
    rows = duckdb_value_int64(&res, 0, 0);
    duckdb_destroy_result(&res);
    if ((rc = fsync_path(tmp, err)) < 0)
        goto fail;
    return rows;
fail:
    unlink(tmp);
    return rc;
}

long long tsi_pq_write_tmp(duckdb_connection con, const char *select_sql, const char *dir,
                           const char *prefix, char *tmp, size_t tmplen, tsi_error *err)
{
    return write_tmp(con, select_sql, NULL, dir, prefix, tmp, tmplen, err);
}

int tsi_pq_publish(const char *tmp, const char *dir, const char *prefix, const char *start,
                   char *out, size_t outlen, tsi_error *err)
{
    int rc = publish(tmp, dir, prefix, start, out, outlen, err);
    if (rc < 0)
        return rc;
    return tsi_fsync_dir(dir, err);
}

long long tsi_pq_write(duckdb_connection con, const char *select_sql, const char *dir,
                       const char *prefix, const char *start, char *out, size_t outlen,
                       tsi_error *err)
{
    return tsi_pq_write_opts(con, select_sql, NULL, dir, prefix, start, out, outlen, err);
}

long long tsi_pq_write_opts(duckdb_connection con, const char *select_sql, const char *copy_options,
                            const char *dir, const char *prefix, const char *start, char *out,
                            size_t outlen, tsi_error *err)
{
    char tmp[PATH_MAX];
    long long rows = write_tmp(con, select_sql, copy_options, dir, prefix, tmp, sizeof tmp, err);
    if (rows < 0)
        return rows;
    int rc = publish(tmp, dir, prefix, start, out, outlen, err);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    if ((rc = tsi_fsync_dir(dir, err)) < 0)
        return rc; /* the file is complete and named; only its directory entry may be lost */
    return rows;
}

int tsi_pq_clean_tmp(const char *dir, int min_age_s)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    size_t plen = strlen(TSI_PQ_TMP_PREFIX);
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, TSI_PQ_TMP_PREFIX, plen) != 0 || len < plen + 4 ||
            strcmp(e->d_name + len - 4, ".tmp") != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        long pid = strtol(e->d_name + plen, NULL, 10);
        if (pid == (long)getpid())
            continue; /* ours, in progress */
        int dead = pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
        struct stat st;
        int old = stat(path, &st) == 0 && now - st.st_mtime >= min_age_s;
        if ((dead || old) && unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
