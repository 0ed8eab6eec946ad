/* ops/backup.c — see backup.h */
#include "ops/backup.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "base/log.h"
#include "base/options.h"
#include "base/proc.h"
#include "core/json.h"
#include "db/cluster.h"
#include "db/conn.h"
#include "db/result.h"

#define STANZA TSI_BACKUP_STANZA

static char repo_override[PATH_MAX];

void tsi_backup_set_repo_dir(const char *dir)
{
    snprintf(repo_override, sizeof repo_override, "%s", dir ? dir : "");
}

void tsi_backup_repo_dir(char *buf, size_t len)
{
    static char fallback[PATH_MAX];
    const char *e = getenv("TSI_BACKUP_DIR");
    if (repo_override[0]) {
        snprintf(buf, len, "%s", repo_override);
    } else if (e && *e) {
        snprintf(buf, len, "%s", e);
    } else if (geteuid() == 0 && access(tsi_home(), F_OK) == 0 &&
               (fallback[0] || !tsi_proc_user_can_reach("postgres", tsi_home()))) {
        /* as for the data directory (cluster.c): a TSI_HOME the postgres user cannot
         * enter (a checkout under a 0700 home) keeps its backups in /var/lib/tsi */
        if (!fallback[0]) {
            uint64_t h = 1469598103934665603ULL;
            for (const char *c = tsi_home(); *c; c++) {
                h ^= (unsigned char)*c;
                h *= 1099511628211ULL;
            }
            snprintf(fallback, sizeof fallback, "/var/lib/tsi/backup-%016llx",
                     (unsigned long long)h);
        }
        snprintf(buf, len, "%s", fallback);
    } else {
        snprintf(buf, len, "%s/backup", tsi_home());
    }
}

int tsi_backup_path_ok(const char *path)
{
    if (!path || path[0] != '/' || strlen(path) > 1024)
        return 0;
    for (const char *c = path; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("/._-+@:=,", *c))
            return 0;
    return strstr(path, "/../") == NULL;
}

/* ---- time ----------------------------------------------------------------------------- */

static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int tsi_backup_parse_time(const char *text, char *out, size_t outlen, tsi_error *err)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, s, zh = 0, zm = 0;
    char frac[8] = "";
    char sign = '+';
    const char *p = text;
    if (!text || strlen(text) > 64)
        goto bad;
    if (read_digits(&p, 4, &y) < 0 || *p++ != '-' || read_digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        read_digits(&p, 2, &d) < 0)
        goto bad;
    if (*p != ' ' && *p != 'T')
        goto bad;
    p++;
    if (read_digits(&p, 2, &h) < 0 || *p++ != ':' || read_digits(&p, 2, &mi) < 0 || *p++ != ':' ||
        read_digits(&p, 2, &s) < 0)
        goto bad;
    if (*p == '.') {
        p++;
        size_t n = 0;
        while (isdigit((unsigned char)p[n]))
            n++;
        if (n == 0 || n > 6)
            goto bad;
        memcpy(frac, p, n);
        frac[n] = '\0';
        p += n;
    }
    if (*p == ' ')
        p++;
    if (*p == '\0' || strcmp(p, "Z") == 0 || strcmp(p, "UTC") == 0) {
        /* UTC */
    } else if (*p == '+' || *p == '-') {
        sign = *p++;
        if (read_digits(&p, 2, &zh) < 0)
            goto bad;
        if (*p == ':')
            p++;
        if (*p && read_digits(&p, 2, &zm) < 0)
            goto bad;
        if (*p)
            goto bad;
    } else {
        goto bad;
    }
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59 || zh > 15 ||
        zm > 59)
        goto bad;
    int dim = mdays[mo - 1] + (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (d < 1 || d > dim)
        goto bad;
    snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d%s%s%c%02d:%02d", y, mo, d, h, mi, s,
             frac[0] ? "." : "", frac, sign, zh, zm);
    return 0;
bad:
    return tsi_error_set(err, TSI_E_INVALID, "not a recovery target time",
                         "'%.80s': expected YYYY-MM-DD HH:MM:SS[.ffffff][Z|+HH:MM]",
                         text ? text : "(null)");
}

/* ---- helpers -------------------------------------------------------------------------- */

static bool am_root(void)
{
    return geteuid() == 0;
}

static const char *server_user(void)
{
    return am_root() ? "postgres" : NULL;
}

static int mkdir_owned(const char *path, mode_t mode, tsi_error *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                goto fail;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        goto fail;
    if (am_root()) {
        uid_t uid;
        gid_t gid;
        if (tsi_proc_user("postgres", &uid, &gid) < 0 || chown(path, uid, gid) < 0)
            goto fail;
    }
    return 0;
fail:
    return tsi_error_set(err, TSI_E_IO, "cannot create a directory", "%s: %s", path,
                         strerror(errno));
}

static int write_owned(const char *path, const char *text, mode_t mode, tsi_error *err)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot write file", "%s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return tsi_error_set(err, TSI_E_IO, "cannot write file", "%s: %s", tmp, strerror(e));
    }
    close(fd);
    if (am_root()) {
        uid_t uid;
        gid_t gid;
        if (tsi_proc_user("postgres", &uid, &gid) == 0 && chown(tmp, uid, gid) < 0) {
            unlink(tmp);
            return tsi_error_set(err, TSI_E_IO, "cannot give a file to postgres", "%s: %s", tmp,
                                 strerror(errno));
        }
    }
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return tsi_error_set(err, TSI_E_IO, "cannot rename file", "%s: %s", path, strerror(errno));
    }
    return 0;
}

static void conf_path(char *buf, size_t len)
{
    char repo[PATH_MAX];
    tsi_backup_repo_dir(repo, sizeof repo);
    snprintf(buf, len, "%s/pgbackrest.conf", repo);
}

/* "--config=<repo>/pgbackrest.conf --config-include-path=<repo>/conf.d --stanza=tsi": what
 * every pgbackrest call of tsi starts with (also archive_command and the pg_cron jobs).
 * tsi rewrites pgbackrest.conf at each setup; conf.d/ (*.conf) is the operator's: another
 * repository (repo2-*: another host, S3, SFTP), TLS to a repository host, ... */
static void conf_args(char *buf, size_t len)
{
    char repo[PATH_MAX];
    tsi_backup_repo_dir(repo, sizeof repo);
    snprintf(buf, len,
             "--config=%s/pgbackrest.conf --config-include-path=%s/conf.d --stanza=" STANZA, repo,
             repo);
}

/* Runs pgbackrest with --config and --stanza, as postgres when root. `out` gets the
 * output (stdout + stderr). Returns 0, or TSI_E_PROC with the tail of the output. */
static int pgbackrest(const char *cmd, char *const extra[], char *out, size_t outlen,
                      tsi_error *err)
{
    char conf[PATH_MAX + 16], incl[PATH_MAX + 32], repo[PATH_MAX];
    tsi_backup_repo_dir(repo, sizeof repo);
    snprintf(conf, sizeof conf, "--config=%s/pgbackrest.conf", repo);
    snprintf(incl, sizeof incl, "--config-include-path=%s/conf.d", repo);
    char *argv[32];
    int n = 0;
    argv[n++] = "pgbackrest";
    argv[n++] = conf;
    argv[n++] = incl;
    argv[n++] = "--stanza=" STANZA;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n++] = (char *)cmd;
    argv[n] = NULL;
    char local[4096];
    if (!out) {
        out = local;
        outlen = sizeof local;
    }
    tsi_debug("backup", "running pgbackrest %s", cmd);
    int rc = tsi_proc_run(argv, server_user(), out, outlen, err);
    if (rc < 0)
        return rc;
    if (rc != 0) {
        size_t k = strlen(out);
        while (k && (out[k - 1] == '\n' || out[k - 1] == ' '))
            out[--k] = '\0';
        const char *tail = k > 420 ? out + k - 420 : out;
        return tsi_error_set(err, TSI_E_PROC, "pgbackrest failed", "pgbackrest %s exited %d: %s",
                             cmd, rc, tail);
    }
    return 0;
}

static int need_embedded(tsi_error *err)
{
    if (tsi_db_external())
        return tsi_error_set(err, TSI_E_INVALID, "tsi backup manages the embedded cluster only",
                             "DATABASE_URL or PG* is set: back that server up with its own "
                             "tools (pgBackRest on its host)");
    return 0;
}

static int check_repo(char *repo, size_t len, tsi_error *err)
{
    tsi_backup_repo_dir(repo, len);
    if (!tsi_backup_path_ok(repo))
        return tsi_error_set(err, TSI_E_INVALID, "unusable backup directory",
                             "'%s': use an absolute path of letters, digits and / . _ - + @ : = "
                             ", (it goes into archive_command)",
                             repo);
    return 0;
}

/* ---- setup ---------------------------------------------------------------------------- */

static int archive_mode_on(tsi_error *err)
{
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    PGresult *r = PQexec(c, "SELECT current_setting('archive_mode') <> 'off' AS archiving");
    int on = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
             strcmp(tsi_pq_get(r, 0, "archiving"), "t") == 0;
    PQclear(r);
    PQfinish(c);
    return on;
}

/* ---- backup info: what the repository holds, cached in the database -------------------
 *
 * `tsi status` and the API's /metrics must not wait on pgBackRest (nor need its
 * repository: the API holds only the reader's key), so they read one row,
 * tsi_ops.backup_info, which the superuser refreshes: the pg_cron job `tsi-backup-info`
 * (--schedule-info, every 5 minutes), and `tsi backup run|setup` after their work. The
 * refresh runs `pgbackrest info --output=json` through COPY FROM PROGRAM, bounded by
 * `timeout 120`; a failure keeps the last good facts and records the error.
 *
 * Everything here belongs to the superuser (schema tsi_ops, created by setup, not by a
 * migration): a job that runs as the superuser must never call a function or fill a table
 * that tsi_owner could redefine or put a trigger on. */
static const char SQL_INFO_SCHEMA[] =
    "SET client_min_messages = warning;\n"
    "SET pgaudit.log = 'none';\n"
    "CREATE SCHEMA IF NOT EXISTS tsi_ops AUTHORIZATION CURRENT_USER;\n"
    "REVOKE ALL ON SCHEMA tsi_ops FROM PUBLIC;\n"
    "GRANT USAGE ON SCHEMA tsi_ops TO tsi_owner, tsi_jobs, tsi_reader;\n"
    "CREATE TABLE IF NOT EXISTS tsi_ops.backup_info (\n"
    "  id boolean PRIMARY KEY DEFAULT true CHECK (id),\n"
    "  checked_at timestamptz NOT NULL,    -- the last refresh attempt\n"
    "  refreshed_at timestamptz,           -- the last one that read the repository\n"
    "  last_full timestamptz,              -- stop time of the newest full backup\n"
    "  last_diff timestamptz,              -- of the newest differential\n"
    "  last_incr timestamptz,              -- of the newest incremental\n"
    "  oldest_recoverable timestamptz,     -- stop time of the oldest backup WAL reaches\n"
    "  backups integer,\n"
    "  stanza_status text,\n"
    "  error text);                        -- why the last attempt failed; NULL: it worked\n"
    "CREATE TABLE IF NOT EXISTS tsi_ops.backup_info_out (n bigserial PRIMARY KEY, line text);\n"
    "REVOKE ALL ON ALL TABLES IN SCHEMA tsi_ops FROM PUBLIC;\n"
    "GRANT SELECT ON tsi_ops.backup_info TO tsi_owner, tsi_jobs, tsi_reader;\n"
    "CREATE OR REPLACE FUNCTION tsi_ops.backup_info_refresh(p_command text) RETURNS text\n"
    "LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $f$\n"
    "DECLARE doc text; st jsonb; amin text;\n"
    "BEGIN\n"
    "  DELETE FROM tsi_ops.backup_info_out;\n"
    "  BEGIN\n"
    "    EXECUTE format('COPY tsi_ops.backup_info_out (line) FROM PROGRAM %L'\n"
    "                   ' WITH (FORMAT csv, DELIMITER E''\\x02'', QUOTE E''\\x01'')', p_command);\n"
    "    SELECT string_agg(line, E'\\n' ORDER BY n) INTO doc FROM tsi_ops.backup_info_out;\n"
    "    st := doc::jsonb -> 0;\n"
    "    IF st IS NULL OR st->>'name' IS NULL THEN\n"
    "      RAISE EXCEPTION 'pgbackrest info printed no stanza: %', left(doc, 200);\n"
    "    END IF;\n"
    "    SELECT min(a->>'min') INTO amin FROM jsonb_array_elements(\n"
    "      COALESCE(st->'archive', '[]')) a;\n"
    "    INSERT INTO tsi_ops.backup_info AS i (id, checked_at, refreshed_at, last_full,\n"
    "        last_diff, last_incr, oldest_recoverable, backups, stanza_status, error)\n"
    "    SELECT true, now(), now(),\n"
    "           to_timestamp(max(stop) FILTER (WHERE type = 'full')),\n"
    "           to_timestamp(max(stop) FILTER (WHERE type = 'diff')),\n"
    "           to_timestamp(max(stop) FILTER (WHERE type = 'incr')),\n"
    "           to_timestamp(min(stop) FILTER (WHERE amin IS NOT NULL AND wal >= amin)),\n"
    "           count(*), st->'status'->>'message', NULL\n"
    "      FROM (SELECT b->>'type' AS type, (b->'timestamp'->>'stop')::bigint AS stop,\n"
    "                   b->'archive'->>'start' AS wal\n"
    "              FROM jsonb_array_elements(COALESCE(st->'backup', '[]')) b) x\n"
    "    ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at,\n"
    "        refreshed_at = EXCLUDED.refreshed_at, last_full = EXCLUDED.last_full,\n"
    "        last_diff = EXCLUDED.last_diff, last_incr = EXCLUDED.last_incr,\n"
    "        oldest_recoverable = EXCLUDED.oldest_recoverable, backups = EXCLUDED.backups,\n"
    "        stanza_status = EXCLUDED.stanza_status, error = NULL;\n"
    "    DELETE FROM tsi_ops.backup_info_out;\n"
    "    RETURN NULL;\n"
    "  EXCEPTION WHEN OTHERS THEN\n"
    "    INSERT INTO tsi_ops.backup_info (id, checked_at, error) VALUES (true, now(), SQLERRM)\n"
    "    ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at,\n"
    "        error = EXCLUDED.error;\n"
    "    RETURN SQLERRM;\n"
    "  END;\n"
    "END $f$;\n"
    "REVOKE ALL ON FUNCTION tsi_ops.backup_info_refresh(text) FROM PUBLIC;\n";

/* The command the refresh runs (as the server's user): pgbackrest info, bounded. */
static void info_command(char *buf, size_t len)
{
    char args[3 * PATH_MAX];
    conf_args(args, sizeof args);
    snprintf(buf, len, "timeout 120 pgbackrest %s --log-level-console=error info --output=json",
             args);
}

/* Refreshes tsi_ops.backup_info now (as the superuser); a failure is only a warning: the
 * row records it, and /metrics shows how old the facts are. */
static void info_refresh(void)
{
    tsi_error e = {0};
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, NULL, &e);
    if (!c) {
        tsi_warn("backup", "cannot refresh the backup info: %s %s", e.message, e.detail);
        return;
    }
    char cmd[3 * PATH_MAX + 160];
    info_command(cmd, sizeof cmd);
    const char *p[1] = {cmd};
    PGresult *r = PQexecParams(c,
                               "SELECT to_regprocedure('tsi_ops.backup_info_refresh(text)') "
                               "IS NOT NULL AS have",
                               0, NULL, NULL, NULL, NULL, 0);
    bool have = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(tsi_pq_get(r, 0, "have"), "t") == 0;
    PQclear(r);
    if (!have) {
        PQfinish(c);
        return; /* setup not run yet in this database */
    }
    r = PQexecParams(c, "SELECT tsi_ops.backup_info_refresh($1) AS error", 1, NULL, p, NULL, NULL,
                     0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        tsi_warn("backup", "backup info refresh failed: %s", PQresultErrorMessage(r));
    else if (!PQgetisnull(r, 0, tsi_pq_col(r, "error")))
        tsi_warn("backup", "backup info refresh failed: %s", tsi_pq_get(r, 0, "error"));
    PQclear(r);
    PQfinish(c);
}

static int info_schema(tsi_error *err)
{
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, NULL, err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    int rc = tsi_db_exec(c, SQL_INFO_SCHEMA, err);
    PQfinish(c);
    return rc;
}

/* The daily backup runs from the jobs schedule (pg_cron, in the database named by
 * cron.database_name): a job owned by the superuser whose command hands pgbackrest to the
 * server through COPY ... TO PROGRAM, so it runs as the server's own user. A failed
 * backup fails the job (pg_cron's job_run_details records it). */
static const char SQL_SCHEDULE_BACKUP[] =
    "SELECT cron.schedule($1, $2, format('COPY (SELECT 1) TO PROGRAM %L', $3::text))";

static int schedule(const char *full, const char *diff, const char *sinfo, tsi_error *err)
{
    char args[3 * PATH_MAX];
    conf_args(args, sizeof args);
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, NULL, err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    int rc = 0;
    PGresult *r = PQexec(c, "SELECT to_regnamespace('cron') IS NOT NULL AND "
                            "current_setting('cron.database_name', true) = current_database()"
                            " AS here");
    bool here = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                strcmp(tsi_pq_get(r, 0, "here"), "t") == 0;
    PQclear(r);
    if (!here) {
        tsi_warn("backup",
                 "pg_cron does not run in database %s: no backup schedule installed "
                 "(run `tsi backup run` from cron instead)",
                 tsi_db_name());
        PQfinish(c);
        return 0;
    }
    const char *jobs[2][2] = {{"tsi-backup-full", full}, {"tsi-backup-diff", diff}};
    for (int i = 0; i < 2 && rc == 0; i++) {
        char cmd[3 * PATH_MAX + 160];
        snprintf(cmd, sizeof cmd, "pgbackrest %s --log-level-console=error backup --type=%s", args,
                 i == 0 ? "full" : "diff");
        const char *p[3] = {jobs[i][0], jobs[i][1], cmd};
        r = PQexecParams(c, SQL_SCHEDULE_BACKUP, 3, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = tsi_db_result_error(r, "cannot schedule the backups", err);
        PQclear(r);
    }
    if (rc == 0) {
        char cmd[3 * PATH_MAX + 160];
        info_command(cmd, sizeof cmd);
        const char *p[2] = {sinfo, cmd};
        r = PQexecParams(c,
                         "SELECT cron.schedule('tsi-backup-info', $1, "
                         "format('SELECT tsi_ops.backup_info_refresh(%L)', $2::text))",
                         2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = tsi_db_result_error(r, "cannot schedule the backup info refresh", err);
        PQclear(r);
    }
    PQfinish(c);
    if (rc == 0)
        tsi_info("backup",
                 "scheduled with pg_cron: full '%s', differential '%s' (UTC), info refresh '%s'",
                 full, diff, sinfo);
    return rc;
}

int tsi_backup_setup(int retention_days, const char *sched_full, const char *sched_diff,
                     const char *sched_info, tsi_error *err)
{
    char repo[PATH_MAX], dir[PATH_MAX], path[PATH_MAX + 32], sock[PATH_MAX], cpath[PATH_MAX];
    char text[8192];
    int rc;
    if ((rc = need_embedded(err)) < 0 || (rc = check_repo(repo, sizeof repo, err)) < 0)
        return rc;
    if ((rc = mkdir_owned(repo, 0750, err)) < 0)
        return rc;
    if (am_root() && !tsi_proc_user_can_reach("postgres", repo))
        return tsi_error_set(err, TSI_E_IO, "the postgres user cannot reach the backup directory",
                             "%s: set TSI_BACKUP_DIR to a directory postgres can enter (e.g. "
                             "/var/lib/tsi/backup)",
                             repo);
    if ((rc = tsi_cluster_start(err)) < 0)
        return rc;
    tsi_cluster_data_dir(dir, sizeof dir);
    if (!tsi_backup_path_ok(dir))
        return tsi_error_set(err, TSI_E_INVALID, "unusable data directory path for pgBackRest",
                             "'%s'", dir);
    if ((rc = tsi_cluster_socket_dir(sock, sizeof sock, err)) < 0)
        return rc;
    static const char *const subs[] = {"log", "lock", "spool", "conf.d"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", repo, subs[i]);
        if ((rc = mkdir_owned(path, 0750, err)) < 0)
            return rc;
    }
    conf_path(cpath, sizeof cpath);
    char args[3 * PATH_MAX];
    conf_args(args, sizeof args);
    snprintf(text, sizeof text,
             "# written by `tsi backup setup` (rewritten each time); tsi passes --config and\n"
             "# --config-include-path=<this directory>/conf.d to every pgbackrest call: put\n"
             "# your own settings (another repository, repo2-*) into conf.d/*.conf\n"
             "[global]\n"
             "repo1-path=%s\n"
             "# full backups (and the differentials on them) are kept until a newer full is\n"
             "# %d days old; WAL is kept from the oldest backup kept (no\n"
             "# repo1-retention-archive), so point-in-time recovery reaches back %d days or\n"
             "# more however many full backups were taken\n"
             "repo1-retention-full-type=time\n"
             "repo1-retention-full=%d\n"
             "compress-type=zst\n"
             "compress-level=3\n"
             "start-fast=y\n"
             "log-path=%s/log\n"
             "lock-path=%s/lock\n"
             "# the archive-get queue: Debian's default /var/spool/pgbackrest is the postgres\n"
             "# user's, which a cluster run by a normal user cannot list (restore failed)\n"
             "spool-path=%s/spool\n"
             "log-level-console=warn\n"
             "log-level-file=info\n"
             "archive-timeout=120\n"
             "\n[" STANZA "]\n"
             "pg1-path=%s\n"
             "pg1-port=%d\n"
             "pg1-socket-path=%s\n"
             "pg1-user=postgres\n",
             repo, retention_days, retention_days, retention_days, repo, repo, repo, dir,
             tsi_db_port(), sock);
    if ((rc = write_owned(cpath, text, 0640, err)) < 0)
        return rc;

    snprintf(text, sizeof text,
             "# written by `tsi backup setup`: WAL archiving into the pgBackRest repository\n"
             "archive_mode = on\n"
             "archive_command = 'pgbackrest %s archive-push %%p'\n"
             "archive_timeout = 60\n",
             args);
    snprintf(path, sizeof path, "%s/backup.conf", dir);
    if ((rc = write_owned(path, text, 0600, err)) < 0)
        return rc;

    int on = archive_mode_on(err);
    if (on < 0)
        return on;
    if (!on) {
        tsi_info("backup", "restarting the cluster to turn WAL archiving on");
        if ((rc = tsi_cluster_stop(err)) < 0 || (rc = tsi_cluster_start(err)) < 0)
            return rc;
        if ((on = archive_mode_on(err)) < 0)
            return on;
        if (!on)
            return tsi_error_set(err, TSI_E_INTERNAL, "archive_mode is still off after restart",
                                 "does %s/tsi.conf include backup.conf?", dir);
    } else {
        /* archive_command may have changed: a reload is enough for it */
        if ((rc = tsi_cluster_reload(err)) < 0)
            return rc;
    }
    if ((rc = pgbackrest("stanza-create", NULL, NULL, 0, err)) < 0)
        return rc;
    if ((rc = pgbackrest("check", NULL, NULL, 0, err)) < 0)
        return rc;
    if ((rc = info_schema(err)) < 0 || (rc = schedule(sched_full, sched_diff, sched_info, err)) < 0)
        return rc;
    info_refresh();
    tsi_info("backup", "WAL archiving on: repository=%s stanza=" STANZA " retention_days=%d", repo,
             retention_days);
    return 0;
}

/* ---- info ----------------------------------------------------------------------------- */

typedef struct backup_set {
    char label[64];
    char type[8];
    int64_t start, stop;
    int64_t size, delta, repo_size, repo_delta;
    char wal_start[32], wal_stop[32];
} backup_set;

typedef struct info {
    backup_set sets[512];
    int n;
    char wal_min[32], wal_max[32];
    char status[128];
} info;

static int64_t jint(const tsi_json *d, int obj, const char *a, const char *b)
{
    int i = b ? tsi_json_path(d, obj, a, b, NULL) : tsi_json_get(d, obj, a);
    int64_t v = 0;
    if (tsi_json_int64(d, i, &v) < 0)
        return 0;
    return v;
}

static void jstr(const tsi_json *d, int i, char *buf, size_t len)
{
    buf[0] = '\0';
    if (tsi_json_str(d, i, buf, len) < 0)
        buf[0] = '\0';
}

static int read_info(info *in, tsi_error *err)
{
    memset(in, 0, sizeof *in);
    size_t cap = 4 << 20;
    char *out = malloc(cap);
    if (!out)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    char *const extra[] = {"--output=json", "--log-level-console=error", NULL};
    int rc = pgbackrest("info", extra, out, cap, err);
    if (rc < 0) {
        free(out);
        return rc;
    }
    tsi_json d;
    if ((rc = tsi_json_parse_alloc(&d, out, strlen(out), 1 << 20, err)) < 0) {
        free(out);
        return tsi_error_set(err, TSI_E_JSON, "cannot read pgbackrest info", "%s",
                             err ? err->detail : "");
    }
    int stanza = tsi_json_first(&d, 0);
    if (stanza < 0) {
        rc = tsi_error_set(err, TSI_E_NOTFOUND, "no backup stanza: run `tsi backup setup`", NULL);
        goto done;
    }
    jstr(&d, tsi_json_path(&d, stanza, "status", "message", NULL), in->status, sizeof in->status);
    int bs = tsi_json_get(&d, stanza, "backup");
    for (int b = tsi_json_first(&d, bs); b >= 0 && in->n < 512; b = tsi_json_next(&d, bs, b)) {
        backup_set *s = &in->sets[in->n++];
        jstr(&d, tsi_json_get(&d, b, "label"), s->label, sizeof s->label);
        jstr(&d, tsi_json_get(&d, b, "type"), s->type, sizeof s->type);
        s->start = jint(&d, b, "timestamp", "start");
        s->stop = jint(&d, b, "timestamp", "stop");
        int inf = tsi_json_get(&d, b, "info");
        s->size = jint(&d, inf, "size", NULL);
        s->delta = jint(&d, inf, "delta", NULL);
        s->repo_size = jint(&d, tsi_json_get(&d, inf, "repository"), "size", NULL);
        s->repo_delta = jint(&d, tsi_json_get(&d, inf, "repository"), "delta", NULL);
        jstr(&d, tsi_json_path(&d, b, "archive", "start", NULL), s->wal_start, sizeof s->wal_start);
        jstr(&d, tsi_json_path(&d, b, "archive", "stop", NULL), s->wal_stop, sizeof s->wal_stop);
    }
    int ar = tsi_json_get(&d, stanza, "archive");
    for (int a = tsi_json_first(&d, ar); a >= 0; a = tsi_json_next(&d, ar, a)) {
        char mn[32], mx[32];
        jstr(&d, tsi_json_get(&d, a, "min"), mn, sizeof mn);
        jstr(&d, tsi_json_get(&d, a, "max"), mx, sizeof mx);
        if (mn[0] && (!in->wal_min[0] || strcmp(mn, in->wal_min) < 0))
            snprintf(in->wal_min, sizeof in->wal_min, "%s", mn);
        if (mx[0] && strcmp(mx, in->wal_max) > 0)
            snprintf(in->wal_max, sizeof in->wal_max, "%s", mx);
    }
    rc = 0;
done:
    tsi_json_free(&d);
    free(out);
    return rc;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void fmt_bytes(int64_t b, char *buf, size_t len)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int list(void)
{
    info *in = malloc(sizeof *in);
    tsi_error e = {0};
    if (!in)
        return 1;
    int rc = read_info(in, &e);
    if (rc < 0) {
        char b[900];
        fprintf(stderr, "tsi backup list: %s\n", tsi_error_str(&e, b, sizeof b));
        free(in);
        return 1;
    }
    printf("stanza %s: %s\n", STANZA, in->status[0] ? in->status : "?");
    printf("%-26s %-5s %-21s %8s %10s %10s %10s\n", "label", "type", "finished (UTC)", "seconds",
           "database", "changed", "stored");
    for (int i = 0; i < in->n; i++) {
        backup_set *s = &in->sets[i];
        char t[32], a[24], b[24], c[24];
        fmt_time(s->stop, t, sizeof t);
        fmt_bytes(s->size, a, sizeof a);
        fmt_bytes(s->delta, b, sizeof b);
        fmt_bytes(s->repo_delta, c, sizeof c);
        printf("%-26s %-5s %-21s %8lld %10s %10s %10s\n", s->label, s->type, t,
               (long long)(s->stop - s->start), a, b, c);
    }
    if (in->n > 0) {
        char t[32];
        fmt_time(in->sets[0].stop, t, sizeof t);
        printf("point-in-time recovery: from %s to the newest archived WAL", t);
        if (in->wal_max[0])
            printf(" (%s)", in->wal_max);
        printf("\n");
    } else {
        printf("no backup yet: run `tsi backup run`\n");
    }
    free(in);
    return 0;
}

/* ---- run ------------------------------------------------------------------------------ */

int tsi_backup_run(const char *type, tsi_error *err)
{
    int rc;
    if ((rc = need_embedded(err)) < 0)
        return rc;
    char chosen[8];
    snprintf(chosen, sizeof chosen, "%s", type);
    if (strcmp(type, "auto") == 0) {
        info *in = malloc(sizeof *in);
        if (!in)
            return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
        if ((rc = read_info(in, err)) < 0) {
            free(in);
            return rc;
        }
        int64_t newest_full = 0;
        for (int i = 0; i < in->n; i++)
            if (strcmp(in->sets[i].type, "full") == 0 && in->sets[i].stop > newest_full)
                newest_full = in->sets[i].stop;
        free(in);
        int64_t age = (int64_t)time(NULL) - newest_full;
        snprintf(chosen, sizeof chosen, "%s",
                 (newest_full == 0 || age > 6 * 86400 + 43200) ? "full" : "diff");
    }
    char typearg[32];
    snprintf(typearg, sizeof typearg, "--type=%s", chosen);
    char *const extra[] = {typearg, NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tsi_info("backup", "starting a %s backup", chosen);
    rc = pgbackrest("backup", extra, NULL, 0, err);
    info_refresh(); /* a failed backup is seen too: the facts stay those of the last good one */
    if (rc < 0)
        return rc;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tsi_info("backup", "backup done type=%s seconds=%.1f", chosen,
             (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

/* ---- restore -------------------------------------------------------------------------- */

static bool dir_empty_or_absent(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT;
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = false;
            break;
        }
    closedir(d);
    return empty;
}

/* The socket lives in the data directory, so a backup carries the socket's lock file
 * (.s.PGSQL.<port>.lock) with the old postmaster's pid: when that pid has been reused by
 * a live process, the restored server refuses to start. They are stale after a restore. */
static void remove_socket_locks(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, ".s.PGSQL.", 9) == 0 && n > 5 &&
            strcmp(e->d_name + n - 5, ".lock") == 0) {
            char path[PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* Waits (up to 10 minutes) until the server has left recovery. */
static int wait_promoted(tsi_error *err)
{
    for (int i = 0; i < 6000; i++) {
        PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", NULL);
        if (c) {
            PGresult *r = PQexec(c, "SELECT pg_is_in_recovery() AS in_recovery");
            int in = PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
                     strcmp(tsi_pq_get(r, 0, "in_recovery"), "f") != 0;
            PQclear(r);
            PQfinish(c);
            if (!in)
                return 0;
        }
        usleep(100000);
    }
    return tsi_error_set(err, TSI_E_TIMEOUT, "the restored cluster did not finish recovery",
                         "still in recovery after 10 minutes: see its log");
}

int tsi_backup_restore(const char *to, const char *target_dir, bool in_place, char *restored,
                       size_t rlen, tsi_error *err)
{
    int rc;
    char target[48] = "", dir[PATH_MAX], typearg[32], targetarg[80], patharg[PATH_MAX + 16];
    if ((rc = need_embedded(err)) < 0)
        return rc;
    if (to && (rc = tsi_backup_parse_time(to, target, sizeof target, err)) < 0)
        return rc;
    if (in_place && target_dir)
        return tsi_error_set(err, TSI_E_INVALID, "--in-place and --target-dir exclude each other",
                             NULL);
    char cpath[PATH_MAX];
    conf_path(cpath, sizeof cpath);
    if (access(cpath, F_OK) != 0)
        return tsi_error_set(err, TSI_E_NOTFOUND, "no backup configuration: run `tsi backup setup`",
                             "%s", cpath);
    if (in_place) {
        tsi_cluster_data_dir(dir, sizeof dir);
    } else if (target_dir) {
        if (target_dir[0] != '/') {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd))
                return tsi_error_set(err, TSI_E_IO, "cannot read the working directory", NULL);
            snprintf(dir, sizeof dir, "%s/%s", cwd, target_dir);
        } else {
            snprintf(dir, sizeof dir, "%s", target_dir);
        }
    } else {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(dir, sizeof dir, "%s/pg-restored-%s", tsi_home(), stamp);
    }
    if (!tsi_backup_path_ok(dir))
        return tsi_error_set(err, TSI_E_INVALID, "unusable restore directory",
                             "'%s': use an absolute path of letters, digits and / . _ - + @ : = ,",
                             dir);
    if (!in_place) {
        if (!dir_empty_or_absent(dir))
            return tsi_error_set(err, TSI_E_EXISTS, "the restore directory is not empty",
                                 "%s: give a fresh --target-dir (or --in-place)", dir);
        if ((rc = mkdir_owned(dir, 0700, err)) < 0)
            return rc;
        chmod(dir, 0700);
        if (am_root() && !tsi_proc_user_can_reach("postgres", dir))
            return tsi_error_set(err, TSI_E_IO,
                                 "the postgres user cannot reach the restore "
                                 "directory",
                                 "%s", dir);
    } else {
        tsi_info("backup", "stopping the cluster for an in-place restore");
        if ((rc = tsi_cluster_stop(err)) < 0)
            return rc;
    }
    snprintf(patharg, sizeof patharg, "--pg1-path=%s", dir);
    char *extra[12];
    int n = 0;
    extra[n++] = patharg;
    if (target[0]) {
        snprintf(typearg, sizeof typearg, "--type=time");
        snprintf(targetarg, sizeof targetarg, "--target=%s", target);
        extra[n++] = typearg;
        extra[n++] = targetarg;
        extra[n++] = "--target-action=promote";
    }
    if (in_place)
        extra[n++] = "--delta";
    else
        extra[n++] = "--archive-mode=off";
    extra[n] = NULL;
    tsi_info("backup", "restoring into %s target=%s", dir, target[0] ? target : "end of WAL");
    char out[4096];
    if ((rc = pgbackrest("restore", extra, out, sizeof out, err)) < 0) {
        if (strstr(out, "[075]"))
            tsi_error_set(err, rc, "no backup ended before the target time",
                          "%s: the window starts at the end of the oldest backup (`tsi backup "
                          "list`; pgBackRest counts whole seconds)",
                          target);
        return rc;
    }
    remove_socket_locks(dir);
    if (in_place) {
        tsi_info("backup", "starting the restored cluster (recovery runs first)");
        /* the server accepts connections while it still replays WAL (hot standby), and the
         * bootstrap's GRANTs fail until it is promoted: wait for that, then bootstrap */
        if ((rc = tsi_cluster_start(err)) < 0) {
            if (!tsi_cluster_running())
                return rc;
            if ((rc = wait_promoted(err)) < 0 || (rc = tsi_cluster_bootstrap(err)) < 0)
                return rc;
        }
    } else {
        /* the restored cluster must not use the primary's socket directory */
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/postmaster.opts", dir);
        unlink(path);
    }
    snprintf(restored, rlen, "%s", dir);
    return 0;
}

int tsi_backup_list(tsi_error *err)
{
    int rc = need_embedded(err);
    return rc < 0 ? rc : list();
}
