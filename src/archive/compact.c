/* archive/compact.c — see compact.h; also `tsi archive` */
#include "archive/compact.h"

#include <dirent.h>
#include <duckdb.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/pqfile.h"
#include "archive/raw.h"
#include "base/buf.h"
#include "base/log.h"

#define MANIFEST_FMT ".tsi-compact-%s.manifest"
#define MAX_INPUTS   100000

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_add(names *s, const char *x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            abort();
    }
    s->v[s->n++] = strdup(x);
}
static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* <prefix>_<start>_<seq>.parquet */
static int is_member(const char *name, const char *prefix)
{
    size_t pl = strlen(prefix), n = strlen(name);
    return n > pl + 9 && strncmp(name, prefix, pl) == 0 && name[pl] == '_' &&
           strcmp(name + n - 8, ".parquet") == 0;
}

static void list_members(const char *dir, const char *prefix, names *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (is_member(e->d_name, prefix))
            names_add(out, e->d_name);
    closedir(d);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
}

/* read_parquet([...]) over dir/names; by column name, so a day that holds files written
 * before and after a column was added (constants_id, algorithm_version: migration 060)
 * reads as one table, the older files' missing columns NULL */
static void sql_file_list(tsi_buf *b, const char *dir, char **v, size_t n)
{
    tsi_buf_puts(b, "read_parquet([");
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, v[i]);
        if (i)
            tsi_buf_putc(b, ',');
        tsi_sql_quote(b, path);
    }
    tsi_buf_puts(b, "], union_by_name = true)");
}

/* count and checksum of the rows of a file list */
static int count_sum(duckdb_connection con, const char *dir, char **v, size_t n, long long *count,
                     char *sum, size_t sumlen, tsi_error *err)
{
    tsi_buf sql = TSI_BUF_INIT;
    tsi_buf_puts(&sql, "SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR FROM ");
    sql_file_list(&sql, dir, v, n);
    tsi_buf_puts(&sql, " t");
    duckdb_result res;
    int rc = tsi_duck_exec(con, tsi_buf_cstr(&sql), &res, err);
    tsi_buf_free(&sql);
    if (rc < 0)
        return rc;
    *count = duckdb_value_int64(&res, 0, 0);
    char *s = duckdb_value_varchar(&res, 1, 0);
    snprintf(sum, sumlen, "%s", s ? s : "");
    duckdb_free(s);
    duckdb_destroy_result(&res);
    return 0;
}

static int write_manifest(const char *dir, const char *prefix, const char *final, const char *tmp,
                          long long rows, const char *sum, names *in, tsi_error *err)
{
    char path[PATH_MAX], tpath[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" MANIFEST_FMT, dir, prefix);
    snprintf(tpath, sizeof tpath, "%s.new", path);
    FILE *f = fopen(tpath, "w");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot write compaction manifest", "%s: %s", tpath,
                             strerror(errno));
    fprintf(f, "tsi-compact 1\nfinal %s\ntmp %s\nrows %lld\nchecksum %s\n", final, tmp, rows, sum);
    for (size_t i = 0; i < in->n; i++)
        fprintf(f, "input %s\n", in->v[i]);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tpath, path) < 0) {
        unlink(tpath);
        return tsi_error_set(err, TSI_E_IO, "cannot write compaction manifest", "%s: %s", path,
                             strerror(errno));
    }
    return tsi_fsync_dir(dir, err);
}

static void remove_manifest(const char *dir, const char *prefix)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" MANIFEST_FMT, dir, prefix);
    unlink(path);
    tsi_fsync_dir(dir, NULL);
}

/* finishes or drops an interrupted compaction; returns 1 when there was one */
static int recover(duckdb_connection con, const char *dir, const char *prefix)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" MANIFEST_FMT, dir, prefix);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[PATH_MAX + 32], final[PATH_MAX] = "", tmp[PATH_MAX] = "", sum[128] = "";
    long long rows = -1;
    names in = {0};
    int ok = fgets(line, sizeof line, f) && strcmp(line, "tsi-compact 1\n") == 0;
    while (ok && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "final ", 6) == 0)
            snprintf(final, sizeof final, "%s", line + 6);
        else if (strncmp(line, "tmp ", 4) == 0)
            snprintf(tmp, sizeof tmp, "%s", line + 4);
        else if (strncmp(line, "rows ", 5) == 0)
            rows = atoll(line + 5);
        else if (strncmp(line, "checksum ", 9) == 0)
            snprintf(sum, sizeof sum, "%s", line + 9);
        else if (strncmp(line, "input ", 6) == 0 && strchr(line + 6, '/') == NULL)
            names_add(&in, line + 6);
    }
    fclose(f);
    struct stat st;
    char fpath[2 * PATH_MAX];
    snprintf(fpath, sizeof fpath, "%s/%s", dir, final);
    int published = ok && final[0] && strchr(final, '/') == NULL && stat(fpath, &st) == 0 &&
                    (tmp[0] == '\0' || stat(tmp, &st) != 0);
    if (published) {
        char *one[1] = {final};
        long long n = -1;
        char s2[128] = "";
        if (count_sum(con, dir, one, 1, &n, s2, sizeof s2, NULL) == 0 && n == rows &&
            strcmp(s2, sum) == 0) {
            for (size_t i = 0; i < in.n; i++) {
                if (strcmp(in.v[i], final) == 0)
                    continue;
                char ip[2 * PATH_MAX];
                snprintf(ip, sizeof ip, "%s/%s", dir, in.v[i]);
                unlink(ip);
            }
            tsi_info("archive", "finished an interrupted compaction dir=%s file=%s", dir, final);
        } else {
            tsi_warn("archive",
                     "interrupted compaction left a file that does not match its "
                     "manifest: inputs kept dir=%s file=%s",
                     dir, final);
        }
    } else {
        if (tmp[0] && strchr(tmp, '\n') == NULL && strncmp(tmp, dir, strlen(dir)) == 0)
            unlink(tmp);
        tsi_info("archive", "dropped an interrupted compaction dir=%s", dir);
    }
    names_free(&in);
    remove_manifest(dir, prefix);
    return 1;
}

static int compact_dir(duckdb_connection con, const char *dir, const char *prefix,
                       const char *order, tsi_compact_stats *st, tsi_error *err)
{
    st->recovered += recover(con, dir, prefix);
    st->tmp_removed += tsi_pq_clean_tmp(dir, 3600);
    names in = {0};
    list_members(dir, prefix, &in);
    if (in.n < 2 || in.n > MAX_INPUTS) {
        names_free(&in);
        return 0;
    }
    int rc;
    long long rows = 0, rows2 = 0, written;
    char sum[128] = "", sum2[128] = "", tmp[PATH_MAX] = "", final[PATH_MAX] = "";
    tsi_buf sql = TSI_BUF_INIT;
    if ((rc = count_sum(con, dir, in.v, in.n, &rows, sum, sizeof sum, err)) < 0)
        goto done;
    tsi_buf_puts(&sql, "SELECT * FROM ");
    sql_file_list(&sql, dir, in.v, in.n);
    tsi_buf_printf(&sql, " ORDER BY %s", order);
    written = tsi_pq_write_tmp(con, tsi_buf_cstr(&sql), dir, prefix, tmp, sizeof tmp, err);
    if (written < 0) {
        rc = (int)written;
        tmp[0] = '\0';
        goto done;
    }
    {
        const char *base = strrchr(tmp, '/') + 1;
        char *one[1] = {(char *)base};
        if ((rc = count_sum(con, dir, one, 1, &rows2, sum2, sizeof sum2, err)) < 0)
            goto done;
    }
    if (rows2 != rows || written != rows || strcmp(sum, sum2) != 0) {
        rc = tsi_error_set(err, TSI_E_CHECKSUM, "merged file does not match its inputs",
                           "%s: rows %lld/%lld checksum %s/%s", dir, rows2, rows, sum2, sum);
        goto done;
    }
    /* the start of the merged file: the earliest input's (names sort by start) */
    char start[64] = "";
    {
        const char *s = in.v[0] + strlen(prefix) + 1;
        const char *u = strchr(s, '_');
        size_t n = u ? (size_t)(u - s) : 0;
        if (n == 0 || n >= sizeof start)
            n = 0;
        memcpy(start, s, n);
        start[n] = '\0';
        if (!start[0])
            snprintf(start, sizeof start, "merged");
    }
    /* choose the final name now (first free); the manifest names it */
    for (int seq = 0;; seq++) {
        struct stat stt;
        snprintf(final, sizeof final, "%s_%s_%d.parquet", prefix, start, seq);
        char fp[2 * PATH_MAX];
        snprintf(fp, sizeof fp, "%s/%s", dir, final);
        if (stat(fp, &stt) != 0)
            break;
    }
    if ((rc = write_manifest(dir, prefix, final, tmp, rows, sum, &in, err)) < 0)
        goto done;
    {
        char fp[2 * PATH_MAX];
        snprintf(fp, sizeof fp, "%s/%s", dir, final);
        int r = renameat2(AT_FDCWD, tmp, AT_FDCWD, fp, RENAME_NOREPLACE);
        if (r < 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP)) {
            r = link(tmp, fp);
            if (r == 0)
                unlink(tmp);
        }
        if (r < 0) {
            rc = tsi_error_set(err, TSI_E_IO, "cannot rename merged file into place", "%s: %s", fp,
                               strerror(errno));
            remove_manifest(dir, prefix); /* first the manifest, then the temporary file */
            goto done;
        }
        tmp[0] = '\0';
        tsi_fsync_dir(dir, NULL);
    }
    for (size_t i = 0; i < in.n; i++) {
        char ip[2 * PATH_MAX];
        snprintf(ip, sizeof ip, "%s/%s", dir, in.v[i]);
        if (unlink(ip) == 0)
            st->files_in++;
    }
    tsi_fsync_dir(dir, NULL);
    remove_manifest(dir, prefix);
    st->dirs++;
    st->files_out++;
    st->rows += rows;
    tsi_info("archive", "compacted dir=%s files=%zu rows=%lld into=%s", dir, in.n, rows, final);
    rc = 0;
done:
    if (tmp[0])
        unlink(tmp);
    tsi_buf_free(&sql);
    names_free(&in);
    return rc;
}

/* numeric subdirectories of dir, sorted */
static void list_subdirs(const char *dir, names *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strspn(e->d_name, "0123456789") != strlen(e->d_name))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            names_add(out, e->d_name);
    }
    closedir(d);
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
}

typedef struct walk {
    duckdb_connection con;
    int64_t cutoff_s; /* directories ending at or before this are closed */
    tsi_compact_stats *st;
    int first_rc;
    tsi_error *err;
} walk;

/* depth: 4 levels (YYYY/MM/DD/HH) for raw, 3 (YYYY/MM/DD) for indices */
static void walk_tree(walk *w, const char *dir, int level, int depth, int parts[4],
                      const char *const *prefixes, const char *order)
{
    if (level == depth) {
        struct tm tm = {0};
        tm.tm_year = parts[0] - 1900;
        tm.tm_mon = parts[1] - 1;
        tm.tm_mday = parts[2];
        tm.tm_hour = depth == 4 ? parts[3] : 0;
        int64_t end = (int64_t)timegm(&tm) + (depth == 4 ? 3600 : 86400);
        if (end > w->cutoff_s)
            return;
        for (const char *const *p = prefixes; *p; p++) {
            tsi_error e = {0};
            int rc = compact_dir(w->con, dir, *p, order, w->st, &e);
            if (rc < 0) {
                tsi_warn("archive", "compaction failed dir=%s err=%s detail=%s", dir,
                         tsi_error_name(e.code), e.detail);
                if (!w->first_rc) {
                    w->first_rc = rc;
                    if (w->err)
                        *w->err = e;
                }
            }
        }
        return;
    }
    names subs = {0};
    list_subdirs(dir, &subs);
    for (size_t i = 0; i < subs.n; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, subs.v[i]);
        parts[level] = atoi(subs.v[i]);
        walk_tree(w, p, level + 1, depth, parts, prefixes, order);
    }
    names_free(&subs);
}

int tsi_archive_compact(const char *root, const char *kind, int min_age_hours, int64_t now_ms,
                        tsi_compact_stats *stats, tsi_error *err)
{
    tsi_compact_stats st = {0};
    if (kind && strcmp(kind, "all") == 0)
        kind = NULL;
    if (kind && strcmp(kind, "indices") != 0) {
        int ok = 0;
        for (int k = 0; k < TSI_RAW__COUNT; k++)
            ok |= strcmp(kind, tsi_raw_kind_name((tsi_raw_kind)k)) == 0;
        if (!ok)
            return tsi_error_set(err, TSI_E_INVALID, "unknown archive kind",
                                 "%s (bsm|psm|mapdata|spat|indices|all)", kind);
    }
    duckdb_database db = NULL;
    duckdb_connection con = NULL;
    if (duckdb_open(NULL, &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError) {
        if (db)
            duckdb_close(&db);
        return tsi_error_set(err, TSI_E_PARQUET, "cannot open DuckDB", NULL);
    }
    walk w = {con, now_ms / 1000 - (int64_t)min_age_hours * 3600, &st, 0, err};
    int parts[4] = {0};
    char dir[PATH_MAX];
    for (int k = 0; k < TSI_RAW__COUNT; k++) {
        const char *name = tsi_raw_kind_name((tsi_raw_kind)k);
        if (kind && strcmp(kind, name) != 0)
            continue;
        snprintf(dir, sizeof dir, "%s/raw/%s", root, name);
        const char *pre[] = {name, NULL};
        walk_tree(&w, dir, 0, 4, parts, pre, "message_time");
    }
    if (!kind || strcmp(kind, "indices") == 0) {
        snprintf(dir, sizeof dir, "%s/indices", root);
        const char *pre[] = {"indices", "conflicts", NULL};
        walk_tree(&w, dir, 0, 3, parts, pre, "\"timestamp\", intersection_id");
    }
    duckdb_disconnect(&con);
    duckdb_close(&db);
    if (stats)
        *stats = st;
    return w.first_rc;
}
