/* Least privilege through the real binaries (issue 17): each tsi role, connected the way
 * tsi connects it (TLS, verify-full, its own client certificate) by `tsi db psql`, is
 * refused what it must not do (SQLSTATE 42501 = insufficient_privilege) and allowed what
 * it must; connections without TLS, without a certificate or with another role's
 * certificate are refused by the server; a configuration file holding a secret is
 * refused by tsi before anything connects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "base/proc.h"
#include "harness.h"

static char out[1 << 15];
static char dbname[64];

static int setup(void **state)
{
    (void)state;
    th_db_create(dbname);
    PGconn *c = th_connect("tsi_owner");
    th_exec(c,
            "INSERT INTO intersections (id, name, latitude, longitude) VALUES "
            "(1, 'Nutley & US-29', 38.8655, -77.2456)",
            NULL);
    th_exec(c,
            "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", "
            "combined_index, traffic_volume, vru_count, vehicle_event_count, vru_event_count, "
            "hour_of_day, day_of_week) VALUES (1, date_trunc('minute', now()), 42, 10, 0, 0, 0, "
            "0, 0)",
            NULL);
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    th_db_drop(dbname);
    return 0;
}

/* `tsi db psql --role ROLE -- -v VERBOSITY=verbose -v ON_ERROR_STOP=1 -c SQL` */
static int psql_as(const char *role, const char *sql)
{
    const char *args[] = {"db",     "psql",
                          "--role", role,
                          "--",     "-X",
                          "-v",     "VERBOSITY=verbose",
                          "-v",     "ON_ERROR_STOP=1",
                          "-c",     sql,
                          NULL};
    return th_run_tsi(args, NULL, out, sizeof out);
}

static const struct {
    const char *role, *sql;
} refused[] = {
    /* the API's role reads, and only reads */
    {"tsi_reader", "INSERT INTO intersections (id, name, latitude, longitude) VALUES (2, 'x', 0, "
                   "0)"},
    {"tsi_reader", "UPDATE safety_indices_realtime SET combined_index = 0"},
    {"tsi_reader", "DELETE FROM safety_indices_realtime"},
    {"tsi_reader", "TRUNCATE safety_indices_daily"},
    {"tsi_reader", "CREATE TABLE evil (a int)"},
    {"tsi_reader", "INSERT INTO data_quality_log (issue_type, severity, message) VALUES ('x', "
                   "'info', 'y')"},
    /* the collector writes realtime rows and intersections, never deletes or rolls up */
    {"tsi_writer", "DELETE FROM safety_indices_realtime"},
    {"tsi_writer", "DELETE FROM intersections"},
    {"tsi_writer", "INSERT INTO safety_indices_daily (intersection_id, date, total_volume, "
                   "high_risk_hours) VALUES (1, current_date, 0, 0)"},
    {"tsi_writer", "INSERT INTO normalization_constants (constants, valid_from) VALUES ('{}', "
                   "now())"},
    {"tsi_writer", "DROP TABLE safety_indices_realtime"},
    {"tsi_writer", "ALTER TABLE intersections ADD COLUMN evil int"},
    /* jobs roll up and prune; they do not touch intersections or the schema */
    {"tsi_jobs", "INSERT INTO intersections (id, name, latitude, longitude) VALUES (3, 'x', 0, "
                 "0)"},
    {"tsi_jobs", "UPDATE intersections SET name = 'x'"},
    {"tsi_jobs", "DROP TABLE safety_indices_daily"},
    {"tsi_jobs", "CREATE TABLE evil (a int)"},
    /* ... and as backfill/reprocess (migration 055) they replace index rows and record
     * generations, nothing more: no other table, no other column, no sequence reset */
    {"tsi_jobs", "TRUNCATE safety_indices_realtime"},
    {"tsi_jobs", "DELETE FROM reprocess_generations"},
    {"tsi_jobs", "UPDATE reprocess_generations SET forced = true"},
    {"tsi_jobs", "SELECT setval('reprocess_generation_seq', 1)"},
    {"tsi_jobs", "ALTER TABLE reprocess_generations ADD COLUMN evil int"},
    {"tsi_jobs", "DELETE FROM data_quality_log"},
    {"tsi_jobs", "DELETE FROM job_runs"},
    {"tsi_jobs", "DELETE FROM intersections"},
    /* the collector and the API have no part in reprocessing */
    {"tsi_writer", "SELECT nextval('reprocess_generation_seq')"},
    {"tsi_writer", "INSERT INTO reprocess_generations (generation, day, range_from, range_until, "
                   "raw_messages, rows_before, rows_after) VALUES (1, current_date, now(), now() + "
                   "interval '1 day', 0, 0, 0)"},
    {"tsi_writer", "INSERT INTO rollup_dirty (kind, bucket) VALUES ('hourly', now())"},
    {"tsi_writer", "DELETE FROM safety_indices_hourly"},
    {"tsi_reader", "SELECT nextval('reprocess_generation_seq')"},
    {"tsi_reader", "INSERT INTO rollup_dirty (kind, bucket) VALUES ('hourly', now())"},
    {"tsi_reader", "UPDATE reprocess_generations SET swapped_at = now()"},
    /* the schema owner is no superuser */
    {"tsi_owner", "CREATE ROLE evil SUPERUSER"},
    {"tsi_owner", "ALTER SYSTEM SET archive_mode = off"},
    {"tsi_owner", "SELECT pg_read_file('/etc/passwd')"},
    {"tsi_owner", "COPY (SELECT 1) TO PROGRAM 'id'"},
    {"tsi_owner", "ALTER ROLE tsi_reader SUPERUSER"},
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int rc = psql_as(refused[i].role, refused[i].sql);
        if (rc == 0 || !strstr(out, "42501"))
            fail_msg("%s was not refused `%s` with 42501 (rc=%d):\n%s", refused[i].role,
                     refused[i].sql, rc, out);
    }
    /* nothing changed behind the refusals */
    PGconn *c = th_connect("tsi_owner");
    assert_int_equal(th_int(c, "SELECT count(*) FROM intersections"), 1);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_realtime"), 1);
    assert_int_equal(th_int(c, "SELECT count(*) FROM safety_indices_daily"), 0);
    assert_int_equal(th_int(c, "SELECT count(*) FROM pg_class WHERE relname = 'evil'"), 0);
    assert_int_equal(th_int(c, "SELECT count(*) FROM pg_roles WHERE rolname = 'evil'"), 0);
    PQfinish(c);
}

/* the same binaries let each role do its job (the refusals above are not a dead server) */
static void test_allowed(void **state)
{
    (void)state;
    static const struct {
        const char *role, *sql;
    } allowed[] = {
        {"tsi_reader", "SELECT count(*) FROM safety_indices_realtime"},
        {"tsi_writer", "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", "
                       "combined_index, traffic_volume, vru_count, vehicle_event_count, "
                       "vru_event_count, hour_of_day, day_of_week) VALUES (1, "
                       "date_trunc('minute', now()) - interval '1 minute', 40, 9, 0, 0, 0, 0, "
                       "0) ON CONFLICT (intersection_id, \"timestamp\") DO UPDATE SET "
                       "combined_index = EXCLUDED.combined_index"},
        {"tsi_jobs", "DELETE FROM safety_indices_realtime WHERE \"timestamp\" < now() - interval "
                     "'30 days'"},
        /* backfill and reprocess, as tsi_jobs: upsert and replace realtime rows, mark
         * buckets dirty, record a generation and its swap */
        {"tsi_jobs", "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", "
                     "combined_index, traffic_volume, vru_count, vehicle_event_count, "
                     "vru_event_count, hour_of_day, day_of_week) VALUES (1, "
                     "date_trunc('minute', now()) - interval '2 minutes', 40, 9, 0, 0, 0, 0, "
                     "0) ON CONFLICT (intersection_id, \"timestamp\") DO UPDATE SET "
                     "combined_index = EXCLUDED.combined_index"},
        {"tsi_jobs", "INSERT INTO rollup_dirty (kind, bucket) VALUES ('hourly', "
                     "date_trunc('hour', now()))"},
        {"tsi_jobs", "INSERT INTO reprocess_generations (generation, day, range_from, "
                     "range_until, raw_messages, rows_before, rows_after) SELECT "
                     "nextval('reprocess_generation_seq'), current_date, now(), now() + "
                     "interval '1 day', 0, 0, 0; UPDATE reprocess_generations SET swapped_at = "
                     "now()"},
        {"tsi_owner", "CREATE TABLE owner_may (a int); DROP TABLE owner_may"},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        int rc = psql_as(allowed[i].role, allowed[i].sql);
        if (rc != 0)
            fail_msg("%s was refused `%s` (rc=%d):\n%s", allowed[i].role, allowed[i].sql, rc, out);
    }
    /* every role's session is TLS with its certificate's name */
    const char *roles[] = {"tsi_reader", "tsi_writer", "tsi_jobs", "tsi_owner"};
    for (int i = 0; i < 4; i++) {
        int rc = psql_as(roles[i], "SELECT 'user=' || current_user || ' ssl=' || ssl FROM "
                                   "pg_stat_ssl WHERE pid = pg_backend_pid()");
        assert_int_equal(rc, 0);
        char want[64];
        snprintf(want, sizeof want, "user=%s ssl=t", roles[i]);
        if (!strstr(out, want))
            fail_msg("%s: want '%s' in:\n%s", roles[i], want, out);
    }
}

/* psql with a conninfo derived from tsi's own for a role */
static int psql_conninfo(const char *ci)
{
    char *argv[] = {"psql", "-X", (char *)ci, "-c", "SELECT 1", NULL};
    return tsi_proc_run(argv, NULL, out, sizeof out, NULL);
}

static void test_connection_refusals(void **state)
{
    (void)state;
    int rc = th_run_tsi((const char *[]){"db", "url", "--role", "tsi_reader", NULL}, NULL, out,
                        sizeof out);
    assert_int_equal(rc, 0);
    char reader[4096];
    snprintf(reader, sizeof reader, "%s", out);
    reader[strcspn(reader, "\n")] = '\0';
    char ci[8192];

    /* without TLS: no pg_hba line lets it in */
    snprintf(ci, sizeof ci, "%s sslmode=disable", reader);
    rc = psql_conninfo(ci);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "no encryption"));

    /* the reader's certificate presented as the owner */
    snprintf(ci, sizeof ci, "%s user=tsi_owner", reader);
    rc = psql_conninfo(ci);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "certificate authentication failed"));

    /* TLS without a client certificate */
    snprintf(ci, sizeof ci, "%s sslcert=/nonexistent.crt sslkey=/nonexistent.key", reader);
    rc = psql_conninfo(ci);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "certificate"));

    /* a password is no way in either: there is none, and cert auth ignores it */
    snprintf(ci, sizeof ci, "%s user=postgres password=postgres", reader);
    rc = psql_conninfo(ci);
    assert_int_not_equal(rc, 0);
}

/* ---- forged certificates (issue 31) ------------------------------------------------
 * Whoever holds the CA key can sign a certificate with any CN. pg_hba.conf must still
 * refuse every TCP login that is not one of the four tsi roles (and replication only for
 * the replication role): the superuser comes in through the local socket alone. */

/* The CA key `tsi db` signs with: $TSI_HOME/ca/ca.key (outside certs/, which the other
 * processes read). */
static void ca_key_path(char *buf, size_t len)
{
    const char *home = getenv("TSI_HOME");
    assert_non_null(home);
    snprintf(buf, len, "%s/ca/ca.key", home);
}

/* Signs a fresh key's certificate for CN `cn` with the cluster's CA key into dir. */
static void forge(const char *dir, const char *cn, char *crt, char *key, size_t len)
{
    const char *home = getenv("TSI_HOME");
    char csr[PATH_MAX], cacrt[PATH_MAX], cakey[PATH_MAX], srl[PATH_MAX], subj[128];
    snprintf(key, len, "%s/%s.key", dir, cn);
    snprintf(crt, len, "%s/%s.crt", dir, cn);
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, cn);
    snprintf(srl, sizeof srl, "%s/forged.srl", dir);
    snprintf(cacrt, sizeof cacrt, "%s/certs/ca.crt", home);
    ca_key_path(cakey, sizeof cakey);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    char *req[] = {"openssl", "req", "-new",     "-nodes",
                   "-newkey", "ec",  "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-keyout", key,   "-out",     csr,
                   "-subj",   subj,  NULL};
    if (tsi_proc_run(req, NULL, out, sizeof out, NULL) != 0)
        fail_msg("openssl req: %s", out);
    char *sign[] = {"openssl", "x509",   "-req",    "-in",       csr, "-CA",
                    cacrt,     "-CAkey", cakey,     "-CAserial", srl, "-CAcreateserial",
                    "-days",   "1",      "-sha256", "-out",      crt, NULL};
    if (tsi_proc_run(sign, NULL, out, sizeof out, NULL) != 0)
        fail_msg("openssl x509 -req (signing with %s): %s", cakey, out);
}

/* psql over TCP with the reader's conninfo, as `user` with a forged certificate */
static int psql_forged(const char *user, const char *crt, const char *key, const char *extra,
                       const char *sql)
{
    int rc = th_run_tsi((const char *[]){"db", "url", "--role", "tsi_reader", NULL}, NULL, out,
                        sizeof out);
    assert_int_equal(rc, 0);
    char ci[8192];
    out[strcspn(out, "\n")] = '\0';
    snprintf(ci, sizeof ci, "%s user=%s sslcert=%s sslkey=%s %s", out, user, crt, key, extra);
    char *argv[] = {"psql", "-X", ci, "-c", (char *)sql, NULL};
    return tsi_proc_run(argv, NULL, out, sizeof out, NULL);
}

static void test_forged_certificates(void **state)
{
    (void)state;
    char dir[] = "/tmp/tsi-forged-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char crt[PATH_MAX], key[PATH_MAX];

    /* the forging works: a CA-signed certificate for a tsi role logs in as that role */
    forge(dir, "tsi_reader", crt, key, sizeof crt);
    int rc = psql_forged("tsi_reader", crt, key, "", "SELECT 'whoami=' || current_user");
    if (rc != 0 || !strstr(out, "whoami=tsi_reader"))
        fail_msg("a CA-signed certificate for tsi_reader did not log in (rc=%d): %s", rc, out);

    /* the superuser: refused over TCP, for queries and for replication */
    forge(dir, "postgres", crt, key, sizeof crt);
    rc = psql_forged("postgres", crt, key, "", "SELECT 'whoami=' || current_user");
    if (rc == 0 || !strstr(out, "no pg_hba.conf entry"))
        fail_msg("a CA-signed certificate for postgres was not refused over TCP (rc=%d): %s", rc,
                 out);
    rc = psql_forged("postgres", crt, key, "replication=true", "IDENTIFY_SYSTEM");
    if (rc == 0 || !strstr(out, "no pg_hba.conf entry"))
        fail_msg("a CA-signed certificate for postgres got a replication connection (rc=%d): %s",
                 rc, out);

    /* any other superuser too (pg_hba names the roles it lets in) */
    PGconn *a = th_connect("postgres");
    th_exec(a, "DROP ROLE IF EXISTS tsi_forged_su", NULL);
    assert_int_equal(th_exec(a, "CREATE ROLE tsi_forged_su LOGIN SUPERUSER", NULL),
                     PGRES_COMMAND_OK);
    forge(dir, "tsi_forged_su", crt, key, sizeof crt);
    rc = psql_forged("tsi_forged_su", crt, key, "", "SELECT 'whoami=' || current_user");
    th_exec(a, "DROP ROLE IF EXISTS tsi_forged_su", NULL);
    PQfinish(a);
    if (rc == 0 || !strstr(out, "no pg_hba.conf entry"))
        fail_msg("a CA-signed certificate for another superuser was not refused (rc=%d): %s", rc,
                 out);

    char *rm[] = {"rm", "-rf", dir, NULL};
    tsi_proc_run(rm, NULL, NULL, 0, NULL);
}

/* The replication role streams over TCP with its own certificate, and does nothing else. */
static void test_replication_role(void **state)
{
    (void)state;
    int rc = th_run_tsi((const char *[]){"db", "url", "--role", "tsi_replication", NULL}, NULL, out,
                        sizeof out);
    assert_int_equal(rc, 0);
    char repl[4096], ci[8192];
    snprintf(repl, sizeof repl, "%s", out);
    repl[strcspn(repl, "\n")] = '\0';
    assert_non_null(strstr(repl, "tsi_replication.key"));

    snprintf(ci, sizeof ci, "%s replication=true", repl);
    char *ident[] = {"psql", "-X", ci, "-c", "IDENTIFY_SYSTEM", NULL};
    rc = tsi_proc_run(ident, NULL, out, sizeof out, NULL);
    if (rc != 0 || !strstr(out, "systemid"))
        fail_msg("tsi_replication could not open a replication connection (rc=%d): %s", rc, out);

    /* a plain database session: no pg_hba line lets the replication role in */
    char *sql[] = {"psql", "-X", repl, "-c", "SELECT 1", NULL};
    rc = tsi_proc_run(sql, NULL, out, sizeof out, NULL);
    if (rc == 0 || !strstr(out, "no pg_hba.conf entry"))
        fail_msg("tsi_replication opened a database session (rc=%d): %s", rc, out);
}

/* The certificates every process reads hold no CA key: it is in $TSI_HOME/ca (0700), which
 * only `tsi db start` reads. */
static void test_ca_key_apart(void **state)
{
    (void)state;
    const char *home = getenv("TSI_HOME");
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/certs/ca.key", home);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/certs/ca.srl", home);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/ca", home);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/ca/ca.key", home);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* the keys in certs/: the server's and one per login role, nothing else */
    static const char *const keys[] = {"server.key",   "tsi_owner.key",  "tsi_writer.key",
                                       "tsi_jobs.key", "tsi_reader.key", "tsi_replication.key"};
    char certs[PATH_MAX];
    snprintf(certs, sizeof certs, "%s/certs", home);
    DIR *d = opendir(certs);
    assert_non_null(d);
    struct dirent *e;
    int nkeys = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".key") != 0)
            continue;
        int known = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            known |= strcmp(e->d_name, keys[i]) == 0;
        if (!known)
            fail_msg("unexpected key %s/%s", certs, e->d_name);
        nkeys++;
    }
    closedir(d);
    assert_int_equal(nkeys, (int)(sizeof keys / sizeof keys[0]));
}

/* An install from before issue 31 — the CA key and serial in certs/ beside the certificates
 * every process reads, a pg_hba.conf that lets any CA-signed certificate in over TCP — is
 * upgraded by `tsi db start` on the running cluster: the key moves into $TSI_HOME/ca, and
 * the new pg_hba.conf is written and takes effect at once (reload, no restart). */
static void test_upgrade_running_install(void **state)
{
    (void)state;
    const char *home = getenv("TSI_HOME");
    char from[PATH_MAX], to[PATH_MAX], hba[PATH_MAX], dir[] = "/tmp/tsi-upgrade-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char crt[PATH_MAX], key[PATH_MAX];
    forge(dir, "postgres", crt, key, sizeof crt); /* signed while the key is where it is now */
    static const char *const moved[] = {"ca.key", "ca.srl"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/ca/%s", home, moved[i]);
        snprintf(to, sizeof to, "%s/certs/%s", home, moved[i]);
        if (access(from, F_OK) == 0)
            assert_int_equal(rename(from, to), 0);
    }
    snprintf(hba, sizeof hba, "%s/pg/pg_hba.conf", home);
    FILE *f = fopen(hba, "a");
    assert_non_null(f);
    fputs("hostssl all all 127.0.0.1/32 cert\n", f); /* the old rule: any role, by certificate */
    fclose(f);
    PGconn *a = th_connect("postgres");
    assert_int_equal(th_exec(a, "SELECT pg_reload_conf()", NULL), PGRES_TUPLES_OK);
    PQfinish(a);
    int rc = psql_forged("postgres", crt, key, "", "SELECT 'whoami=' || current_user");
    if (rc != 0 || !strstr(out, "whoami=postgres"))
        fail_msg("the old-style install did not let the forged superuser in (rc=%d): %s", rc, out);

    rc = th_run_tsi((const char *[]){"db", "start", NULL}, NULL, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi db start on the running cluster: rc=%d: %s", rc, out);
    snprintf(from, sizeof from, "%s/certs/ca.key", home);
    assert_int_not_equal(access(from, F_OK), 0);
    snprintf(from, sizeof from, "%s/certs/ca.srl", home);
    assert_int_not_equal(access(from, F_OK), 0);
    struct stat st;
    snprintf(to, sizeof to, "%s/ca/ca.key", home);
    assert_int_equal(stat(to, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    rc = psql_forged("postgres", crt, key, "", "SELECT 'whoami=' || current_user");
    if (rc == 0 || !strstr(out, "no pg_hba.conf entry"))
        fail_msg("after the upgrade the forged superuser still logs in (rc=%d): %s", rc, out);
    /* the CA still signs at its new place (a role certificate made after the move) */
    forge(dir, "tsi_reader", crt, key, sizeof crt);
    rc = psql_forged("tsi_reader", crt, key, "", "SELECT 'whoami=' || current_user");
    if (rc != 0 || !strstr(out, "whoami=tsi_reader"))
        fail_msg("a certificate signed after the move did not log in (rc=%d): %s", rc, out);
    char *rm[] = {"rm", "-rf", dir, NULL};
    tsi_proc_run(rm, NULL, NULL, 0, NULL);
}

/* `tsi db psql` runs the psql of the server's own version (--pg-bin) with no psql on PATH,
 * as in the db image, which carries no Debian wrapper (psql must get its own path). */
static void test_psql_without_path(void **state)
{
    (void)state;
    const char *env[] = {"PATH=/nonexistent", NULL};
    int rc = th_run_tsi((const char *[]){"db", "psql", "--role", "tsi_reader", "--", "-X", "-Atc",
                                         "SELECT 'psql as ' || current_user", NULL},
                        env, out, sizeof out);
    if (rc != 0 || !strstr(out, "psql as tsi_reader"))
        fail_msg("tsi db psql with no psql on PATH (rc=%d): %s", rc, out);
}

static void test_config_secret_refused(void **state)
{
    (void)state;
    static const char *const lines[] = {"password = hunter2\n", "db_password=x\n",
                                        "api-token = abc\n", "client_secret = s\n",
                                        "PGPASSWORD = x\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char path[] = "/tmp/tsi-ops-conf-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, lines[i], strlen(lines[i])), (ssize_t)strlen(lines[i]));
        close(fd);
        /* through several commands: db url, status, backup list */
        const char *cmds[][5] = {{"db", "url", "--config", path, NULL},
                                 {"status", "--config", path, NULL, NULL},
                                 {"backup", "list", "--config", path, NULL}};
        for (int k = 0; k < 3; k++) {
            int rc = th_run_tsi(cmds[k], NULL, out, sizeof out);
            if (rc != 2 || !strstr(out, "secrets are not read from configuration files"))
                fail_msg("`%s` in a config file was not refused by tsi %s (rc=%d): %s", lines[i],
                         cmds[k][0], rc, out);
            assert_null(strstr(out, "hunter2")); /* and the secret is not echoed */
        }
        unlink(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_connection_refusals),
        cmocka_unit_test(test_config_secret_refused),
        cmocka_unit_test(test_forged_certificates),
        cmocka_unit_test(test_replication_role),
        cmocka_unit_test(test_ca_key_apart),
        cmocka_unit_test(test_upgrade_running_install),
        cmocka_unit_test(test_psql_without_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
