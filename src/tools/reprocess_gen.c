/* tools/reprocess_gen.c — see reprocess_gen.h */
#include "tools/reprocess_gen.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "archive/indices.h"
#include "archive/pqfile.h"
#include "base/log.h"
#include "base/proc.h"
#include "db/conn.h"
#include "db/result.h"

#define US_DAY 86400000000LL

/* ------------------------------------------------------------------ names -- */

void tsi_rpgen_names_add(tsi_rpgen_names *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, l->cap * sizeof *v);
        if (!v)
            abort();
        l->v = v;
    }
    char *d = strdup(s);
    if (!d)
        abort();
    l->v[l->n++] = d;
}

bool tsi_rpgen_names_has(const tsi_rpgen_names *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

void tsi_rpgen_names_free(tsi_rpgen_names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (tsi_rpgen_names){0};
}

/* a published Parquet file name: not hidden, no slash, ends in .parquet, printable */
static bool parquet_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 9 || n > 255 || s[0] == '.' || strcmp(s + n - 8, ".parquet") != 0)
        return false;
    for (const char *q = s; *q; q++)
        if (*q == '/' || (unsigned char)*q < 0x20 || *q == 0x7f)
            return false;
    return true;
}

/* the regular *.parquet files of dir (a missing dir is empty) */
static int list_parquet(const char *dir, tsi_rpgen_names *out, tsi_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return tsi_error_set(err, TSI_E_IO, "cannot list the indices directory", "%s: %s", dir,
                             strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!parquet_name(e->d_name))
            continue;
        char p[PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            tsi_rpgen_names_add(out, e->d_name);
    }
    closedir(d);
    return 0;
}

static void day_paths(const char *archive, int64_t generation, int64_t day_us, tsi_rpgen *g)
{
    time_t t = (time_t)(day_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    g->generation = generation;
    g->day_us = day_us;
    snprintf(g->day, sizeof g->day, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    tsi_indices_day_dir(g->live, sizeof g->live, archive, (int64_t)t);
    snprintf(g->staging, sizeof g->staging, "%s/indices/" TSI_RPGEN_STAGING "/g%" PRId64 ".%s",
             archive, generation, g->day);
}

static int rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", "--", (char *)path, NULL};
    return tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

/* the generation named by dir/.tsi-generation, 0 when absent or unreadable */
static int64_t read_marker(const char *dir)
{
    char p[PATH_MAX + 32], line[64] = "";
    snprintf(p, sizeof p, "%s/" TSI_RPGEN_MARKER, dir);
    FILE *f = fopen(p, "re");
    if (!f)
        return 0;
    long long g = 0;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    if (!ok || sscanf(line, "generation %lld", &g) != 1 || g <= 0)
        return 0;
    return g;
}

static int write_marker(const char *dir, int64_t generation, tsi_error *err)
{
    char p[PATH_MAX + 32], tmp[PATH_MAX + 48];
    snprintf(p, sizeof p, "%s/" TSI_RPGEN_MARKER, dir);
    snprintf(tmp, sizeof tmp, "%s/" TSI_PQ_TMP_PREFIX "marker.tmp", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot write the generation marker", "%s: %s", tmp,
                             strerror(errno));
    char line[64];
    int n = snprintf(line, sizeof line, "generation %" PRId64 "\n", generation);
    bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, p) < 0) {
        unlink(tmp);
        return tsi_error_set(err, TSI_E_IO, "cannot write the generation marker", "%s: %s", p,
                             strerror(errno));
    }
    return tsi_fsync_dir(dir, err);
}

/* ------------------------------------------------------------------- stage -- */

/* Writes one kind's rewritten file into g->staging; the replaced files go to g. */
static int stage_kind(tsi_pqr *p, const char *scratch_day, const tsi_rpgen_names *live,
                      const char *kind, int64_t lo, int64_t hi, tsi_rpgen *g,
                      tsi_rpgen_names *replaced, tsi_error *err)
{
    size_t kl = strlen(kind);
    tsi_buf list = TSI_BUF_INIT, q = TSI_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < live->n; i++)
        if (strncmp(live->v[i], kind, kl) == 0 && live->v[i][kl] == '_') {
            char f[PATH_MAX + 256];
            snprintf(f, sizeof f, "%s/%s", g->live, live->v[i]);
            tsi_buf_puts(&list, list.len ? ", " : "");
            tsi_pqr_quote(&list, f);
        }
    /* the live files of this kind holding a row of the range */
    if (list.len) {
        tsi_buf_printf(&q,
                       "SELECT DISTINCT parse_filename(filename) FROM read_parquet([%s],"
                       " filename = true, union_by_name = true) WHERE epoch_us(\"timestamp\")"
                       " >= %" PRId64 " AND epoch_us(\"timestamp\") < %" PRId64,
                       tsi_buf_cstr(&list), lo, hi);
        duckdb_result res;
        if ((rc = tsi_pqr_query(p, tsi_buf_cstr(&q), &res, err)) < 0) {
            duckdb_destroy_result(&res);
            goto done;
        }
        for (idx_t r = 0; r < duckdb_row_count(&res); r++) {
            char *name = duckdb_value_varchar(&res, 0, r);
            if (name && tsi_rpgen_names_has(live, name))
                tsi_rpgen_names_add(replaced, name);
            duckdb_free(name);
        }
        duckdb_destroy_result(&res);
    }
    /* rewritten file: the replaced files' rows outside the range + the new rows */
    tsi_buf parts = TSI_BUF_INIT;
    bool any = false;
    for (size_t i = 0; i < replaced->n; i++)
        if (strncmp(replaced->v[i], kind, kl) == 0 && replaced->v[i][kl] == '_') {
            char f[PATH_MAX + 256];
            snprintf(f, sizeof f, "%s/%s", g->live, replaced->v[i]);
            tsi_buf_puts(&parts, any ? ", " : "SELECT * FROM read_parquet([");
            tsi_pqr_quote(&parts, f);
            any = true;
        }
    if (any)
        tsi_buf_printf(&parts,
                       "], union_by_name = true) WHERE epoch_us(\"timestamp\") < %" PRId64
                       " OR epoch_us(\"timestamp\") >= %" PRId64,
                       lo, hi);
    char glob_new[PATH_MAX + 64];
    snprintf(glob_new, sizeof glob_new, "%s/%s_*.parquet", scratch_day, kind);
    int64_t nnew = 0;
    tsi_buf_reset(&q);
    tsi_buf_puts(&q, "SELECT count(*) FROM glob(");
    tsi_pqr_quote(&q, glob_new);
    tsi_buf_puts(&q, ")");
    if ((rc = tsi_pqr_int(p, tsi_buf_cstr(&q), 0, &nnew, err)) < 0) {
        tsi_buf_free(&parts);
        goto done;
    }
    if (nnew) {
        tsi_buf_puts(&parts, any ? " UNION ALL BY NAME " : "");
        tsi_buf_puts(&parts, "SELECT * FROM read_parquet(");
        tsi_pqr_quote(&parts, glob_new);
        tsi_buf_printf(&parts,
                       ", union_by_name = true) WHERE epoch_us(\"timestamp\") >= %" PRId64
                       " AND epoch_us(\"timestamp\") < %" PRId64,
                       lo, hi);
    }
    if (parts.len) {
        tsi_buf_reset(&q);
        tsi_buf_printf(&q, "SELECT * FROM (%s) ORDER BY \"timestamp\"", tsi_buf_cstr(&parts));
        char start[64], stamp[32], out[PATH_MAX + 256];
        tsi_pq_stamp(g->day_us / 1000, stamp, sizeof stamp);
        snprintf(start, sizeof start, "%s-g%" PRId64, stamp, g->generation);
        long long n =
            tsi_pq_write(p->con, tsi_buf_cstr(&q), g->staging, kind, start, out, sizeof out, err);
        if (n < 0) {
            rc = (int)n;
        } else if (n == 0) {
            unlink(out); /* nothing to keep: no file */
        } else {
            const char *base = strrchr(out, '/');
            tsi_rpgen_names_add(&g->live_files, base ? base + 1 : out);
            if (strcmp(kind, "indices") == 0)
                g->rows_written += n;
        }
    }
    tsi_buf_free(&parts);
done:
    tsi_buf_free(&list);
    tsi_buf_free(&q);
    return rc;
}

int tsi_rpgen_stage(tsi_pqr *p, const char *archive, const char *scratch, int64_t generation,
                    int64_t day_us, int64_t lo, int64_t hi, tsi_rpgen *g, tsi_error *err)
{
    *g = (tsi_rpgen){0};
    day_paths(archive, generation, day_us, g);
    char scratch_day[PATH_MAX];
    snprintf(scratch_day, sizeof scratch_day, "%s/indices/%.4s/%.2s/%.2s", scratch, g->day,
             g->day + 5, g->day + 8);
    tsi_rpgen_names live = {0};
    int rc;
    if ((rc = list_parquet(g->live, &live, err)) < 0)
        goto done;
    rm_rf(g->staging); /* a leftover of this very generation number cannot be live */
    if ((rc = tsi_mkdirs(g->staging, err)) < 0)
        goto done;
    const char *kinds[2] = {"indices", "conflicts"};
    for (int k = 0; k < 2 && rc == 0; k++)
        rc = stage_kind(p, scratch_day, &live, kinds[k], lo, hi, g, &g->superseded_files, err);
    /* every other live file stays, as a hard link (the same inode) */
    for (size_t i = 0; i < live.n && rc == 0; i++) {
        if (tsi_rpgen_names_has(&g->superseded_files, live.v[i]))
            continue;
        char a[PATH_MAX + 256], b[PATH_MAX + 256];
        snprintf(a, sizeof a, "%s/%s", g->live, live.v[i]);
        snprintf(b, sizeof b, "%s/%s", g->staging, live.v[i]);
        if (link(a, b) < 0)
            rc = tsi_error_set(err, TSI_E_IO, "cannot link a kept indices file into the staging",
                               "%s: %s", a, strerror(errno));
        else
            tsi_rpgen_names_add(&g->live_files, live.v[i]);
    }
    if (rc == 0)
        rc = write_marker(g->staging, generation, err);
    if (rc == 0)
        rc = tsi_fsync_dir(g->staging, err);
    if (rc == 0)
        tsi_info("reprocess",
                 "indices generation staged day=%s generation=%" PRId64
                 " kept=%zu replaced=%zu rows=%" PRId64 " dir=%s",
                 g->day, generation, g->live_files.n, g->superseded_files.n, g->rows_written,
                 g->staging);
done:
    tsi_rpgen_names_free(&live);
    if (rc < 0)
        tsi_rpgen_discard(g);
    return rc;
}

/* ------------------------------------------------------------------ record -- */

static void text_array(tsi_buf *sql, const tsi_rpgen_names *l)
{
    tsi_buf a = TSI_BUF_INIT;
    tsi_buf_putc(&a, '{');
    for (size_t i = 0; i < l->n; i++) {
        tsi_buf_puts(&a, i ? ",\"" : "\"");
        for (const char *s = l->v[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                tsi_buf_putc(&a, '\\');
            tsi_buf_putc(&a, *s);
        }
        tsi_buf_putc(&a, '"');
    }
    tsi_buf_putc(&a, '}');
    tsi_sql_quote(sql, tsi_buf_cstr(&a));
    tsi_buf_puts(sql, "::text[]");
    tsi_buf_free(&a);
}

#define TS(x) "(timestamptz 'epoch' + %" PRId64 " * interval '1 microsecond')"

void tsi_rpgen_record_sql(tsi_buf *sql, const tsi_rpgen *g, int64_t lo, int64_t hi,
                          int64_t raw_messages, int64_t rows_before, int64_t rows_after,
                          bool forced)
{
    tsi_buf_printf(sql,
                   "INSERT INTO reprocess_generations (generation, day, range_from, range_until,"
                   " live_files, superseded_files, raw_messages, rows_before, rows_after, forced)"
                   " VALUES (%" PRId64 ", '%s', " TS("") ", " TS("") ", ",
                   g->generation, g->day, lo, hi);
    text_array(sql, &g->live_files);
    tsi_buf_puts(sql, ", ");
    text_array(sql, &g->superseded_files);
    tsi_buf_printf(sql, ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %s)", raw_messages, rows_before,
                   rows_after, forced ? "true" : "false");
}

/* ------------------------------------------------------------------ finish -- */

static int exchange(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

static int rename_noreplace(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE);
}

static void parent_of(const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s", path);
    char *s = strrchr(out, '/');
    if (s && s != out)
        *s = '\0';
}

int tsi_rpgen_finish(PGconn *c, const char *archive, int64_t generation, tsi_error *err)
{
    char sg[32];
    snprintf(sg, sizeof sg, "%" PRId64, generation);
    const char *pv[1] = {sg};
    PGresult *r = PQexecParams(c,
                               "SELECT (extract(epoch FROM day::timestamp) * 1000000)::bigint"
                               " AS day_us, unnest(CASE WHEN superseded_files = '{}' THEN"
                               " '{NULL}' ELSE superseded_files END) AS superseded"
                               " FROM reprocess_generations"
                               " WHERE generation = $1",
                               1, NULL, pv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "cannot read the generation record", err);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return tsi_error_set(err, TSI_E_NOTFOUND, "generation not committed", "generation=%s", sg);
    }
    tsi_rpgen g = {0};
    day_paths(archive, generation, strtoll(tsi_pq_get(r, 0, "day_us"), NULL, 10), &g);
    int c_sup = tsi_pq_col(r, "superseded");
    for (int i = 0; i < PQntuples(r); i++)
        if (!PQgetisnull(r, i, c_sup))
            tsi_rpgen_names_add(&g.superseded_files, tsi_pq_at(r, i, c_sup));
    PQclear(r);

    int rc = 0;
    struct stat st;
    char parent[PATH_MAX];
    tsi_rpgen_names old = {0};
    if (lstat(g.staging, &st) == 0) {
        /* 1. the exchange, unless a previous attempt did it (the marker moved with it) */
        if (read_marker(g.live) != generation) {
            if ((rc = tsi_mkdirs(g.live, err)) < 0)
                goto done;
            if (exchange(g.staging, g.live) < 0) {
                rc = tsi_error_set(err, TSI_E_IO, "cannot swap in the new indices generation",
                                   "%s: %s", g.live, strerror(errno));
                goto done;
            }
            parent_of(g.live, parent, sizeof parent);
            tsi_fsync_dir(parent, NULL);
        }
        /* 2. the old directory (now at the staging path): files the collector published
         *    after the staging go back to the live one; kept files are hard links of live
         *    ones; only the superseded files stay */
        if ((rc = list_parquet(g.staging, &old, err)) < 0)
            goto done;
        for (size_t i = 0; i < old.n; i++) {
            if (tsi_rpgen_names_has(&g.superseded_files, old.v[i]))
                continue;
            char a[PATH_MAX + 256], b[PATH_MAX + 256];
            snprintf(a, sizeof a, "%s/%s", g.staging, old.v[i]);
            snprintf(b, sizeof b, "%s/%s", g.live, old.v[i]);
            struct stat sa, sb;
            if (lstat(b, &sb) == 0) {
                if (lstat(a, &sa) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev)
                    unlink(a); /* the same file, live already */
                else
                    tsi_warn("reprocess",
                             "a file of the old generation has a live namesake: kept in"
                             " .superseded file=%s",
                             a);
                continue;
            }
            if (rename_noreplace(a, b) < 0) {
                rc = tsi_error_set(err, TSI_E_IO, "cannot move a collector file back to live",
                                   "%s: %s", a, strerror(errno));
                goto done;
            }
            tsi_info("reprocess", "file published during the swap kept live file=%s", b);
        }
        tsi_fsync_dir(g.live, NULL);
        /* 3. the old directory to .superseded */
        char sup[PATH_MAX + 64];
        snprintf(sup, sizeof sup, "%s/indices/" TSI_RPGEN_SUPERSEDED, archive);
        if ((rc = tsi_mkdirs(sup, err)) < 0)
            goto done;
        snprintf(sup, sizeof sup, "%s/indices/" TSI_RPGEN_SUPERSEDED "/%s.g%" PRId64, archive,
                 g.day, generation);
        if (rename_noreplace(g.staging, sup) < 0) {
            rc = tsi_error_set(err, TSI_E_IO, "cannot move the old generation to .superseded",
                               "%s: %s", g.staging, strerror(errno));
            goto done;
        }
        parent_of(g.staging, parent, sizeof parent);
        tsi_fsync_dir(parent, NULL);
        tsi_info("reprocess",
                 "indices generation live day=%s generation=%" PRId64 " superseded=%zu old=%s",
                 g.day, generation, g.superseded_files.n, sup);
    }
    /* 4. done: the record says so */
    r = PQexecParams(c,
                     "UPDATE reprocess_generations SET swapped_at = now()"
                     " WHERE generation = $1 AND swapped_at IS NULL",
                     1, NULL, pv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = tsi_db_result_error(r, "cannot mark the generation swapped", err);
    PQclear(r);
done:
    tsi_rpgen_names_free(&old);
    tsi_rpgen_free(&g);
    return rc;
}

/* ----------------------------------------------------------------- recover -- */

static int committed(PGconn *c, int64_t generation, bool *yes, tsi_error *err)
{
    char sg[32];
    snprintf(sg, sizeof sg, "%" PRId64, generation);
    const char *pv[1] = {sg};
    PGresult *r = PQexecParams(c, "SELECT 1 FROM reprocess_generations WHERE generation = $1", 1,
                               NULL, pv, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = tsi_db_result_error(r, "cannot read the generation records", err);
    else
        *yes = PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

int tsi_rpgen_recover(PGconn *c, const char *archive, bool dry_run, int *finished, int *rolled_back,
                      tsi_error *err)
{
    *finished = *rolled_back = 0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/indices/" TSI_RPGEN_STAGING, archive);
    tsi_rpgen_names ent = {0};
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                tsi_rpgen_names_add(&ent, e->d_name);
        closedir(d);
    }
    int rc = 0;
    for (size_t i = 0; i < ent.n && rc == 0; i++) {
        long long gen = 0;
        int y, m, dd, n = 0;
        if (sscanf(ent.v[i], "g%lld.%4d-%2d-%2d%n", &gen, &y, &m, &dd, &n) != 4 || gen <= 0 ||
            ent.v[i][n] != '\0') {
            tsi_warn("reprocess", "not a staging directory, left alone path=%s/%s", dir, ent.v[i]);
            continue;
        }
        bool yes = false;
        if ((rc = committed(c, gen, &yes, err)) < 0)
            break;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, ent.v[i]);
        if (yes) {
            tsi_warn("reprocess", "%s an interrupted swap: generation %lld is committed path=%s",
                     dry_run ? "would finish" : "finishing", gen, path);
            if (!dry_run && (rc = tsi_rpgen_finish(c, archive, gen, err)) < 0)
                break;
            (*finished)++;
        } else {
            tsi_warn("reprocess",
                     "%s an uncommitted generation: generation %lld never became live path=%s",
                     dry_run ? "would roll back" : "rolling back", gen, path);
            if (!dry_run)
                rm_rf(path);
            (*rolled_back)++;
        }
    }
    /* committed records whose swap finished on disk but not in the database */
    if (rc == 0 && !dry_run) {
        PGresult *r = PQexec(c, "SELECT generation FROM reprocess_generations"
                                " WHERE swapped_at IS NULL ORDER BY generation");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = tsi_db_result_error(r, "cannot read the generation records", err);
        for (int i = 0; rc == 0 && i < PQntuples(r); i++)
            rc = tsi_rpgen_finish(c, archive, strtoll(tsi_pq_get(r, i, "generation"), NULL, 10),
                                  err);
        PQclear(r);
    }
    tsi_rpgen_names_free(&ent);
    return rc;
}

void tsi_rpgen_discard(tsi_rpgen *g)
{
    if (g && g->staging[0])
        rm_rf(g->staging);
}

void tsi_rpgen_free(tsi_rpgen *g)
{
    if (!g)
        return;
    tsi_rpgen_names_free(&g->live_files);
    tsi_rpgen_names_free(&g->superseded_files);
}
