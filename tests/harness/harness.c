/* tests/harness/harness.c — see harness.h */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "base/proc.h"
#include "db/conn.h"

const char *th_tsi_bin(void)
{
    const char *b = getenv("TSI_BIN");
    if (!b || !*b)
        fail_msg("TSI_BIN is not set: run the tests with `make test` (scripts/test)");
    return b;
}

const char *th_source_dir(void)
{
    const char *s = getenv("TSI_SOURCE_DIR");
    return (s && *s) ? s : TSI_SOURCE_DIR;
}

char *th_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        fail_msg("cannot read %s", path);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

char *th_fixture(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", th_source_dir(), rel);
    return th_read_file(path, len);
}

void th_require_cluster(void)
{
    if (!getenv("TSI_TEST_TEMPLATE"))
        fail_msg("TSI_TEST_TEMPLATE is not set: integration tests need the cluster that "
                 "`make test` (scripts/test) starts");
}

static PGconn *admin(const char *db)
{
    tsi_error e = {0};
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, db, &e);
    if (!c)
        fail_msg("cannot connect as admin: %s %s", e.message, e.detail);
    return c;
}

void th_db_create(char *name)
{
    static int seq;
    th_require_cluster();
    snprintf(name, 64, "t_%d_%d", (int)getpid(), ++seq);
    PGconn *c = admin("postgres");
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s", name, getenv("TSI_TEST_TEMPLATE"));
    char state[8] = "";
    int st = PGRES_FATAL_ERROR;
    /* the template may be busy for a moment (another test copying it): retry */
    for (int i = 0; i < 50; i++) {
        st = th_exec(c, sql, state);
        if (st == PGRES_COMMAND_OK || strcmp(state, "55006") != 0)
            break;
        usleep(100000);
    }
    if (st != PGRES_COMMAND_OK)
        fail_msg("cannot create test database %s: %s", name, PQerrorMessage(c));
    PQfinish(c);
    setenv("TSI_DB_NAME", name, 1);
}

void th_db_drop(const char *name)
{
    if (!name || !*name)
        return;
    PGconn *c = admin("postgres");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    th_exec(c, sql, NULL);
    PQfinish(c);
}

static char test_db[64];

int th_db_setup(void **state)
{
    (void)state;
    th_db_create(test_db);
    return 0;
}

int th_db_teardown(void **state)
{
    (void)state;
    th_db_drop(test_db);
    test_db[0] = '\0';
    return 0;
}

const char *th_db_name(void)
{
    return test_db;
}

PGconn *th_connect(const char *role)
{
    for (int i = 0; i < TSI_ROLE__COUNT; i++) {
        if (strcmp(tsi_db_role_name((tsi_db_role)i), role) == 0) {
            tsi_error e = {0};
            PGconn *c = tsi_db_connect((tsi_db_role)i, NULL, &e);
            if (!c)
                fail_msg("cannot connect as %s: %s %s", role, e.message, e.detail);
            PQclear(PQexec(c, "SET client_min_messages = warning"));
            return c;
        }
    }
    fail_msg("unknown role %s", role);
    return NULL;
}

int th_exec(PGconn *c, const char *sql, char *state)
{
    PGresult *r = PQexec(c, sql);
    int st = PQresultStatus(r);
    if (state) {
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(state, 6, "%s", s ? s : "");
    }
    PQclear(r);
    return st;
}

char *th_value(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("query failed: %s\n%s", sql, msg);
    }
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long long th_int(PGconn *c, const char *sql)
{
    char *v = th_value(c, sql);
    if (!v)
        fail_msg("query returned NULL: %s", sql);
    long long x = strtoll(v, NULL, 10);
    free(v);
    return x;
}

double th_double(PGconn *c, const char *sql)
{
    char *v = th_value(c, sql);
    if (!v)
        fail_msg("query returned NULL: %s", sql);
    double x = strtod(v, NULL);
    free(v);
    return x;
}

int th_run_tsi(const char *const *args, const char *const *env, char *out, size_t outlen)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        int dn = open("/dev/null", O_RDONLY);
        dup2(dn, 0);
        const char *as = NULL;
        for (const char *const *e = env; e && *e; e++) {
            if (strncmp(*e, "TH_RUN_AS=", 10) == 0)
                as = *e + 10;
            else
                putenv((char *)*e);
        }
        if (as) {
            uid_t uid;
            gid_t gid;
            if (tsi_proc_user(as, &uid, &gid) < 0 || setgroups(0, NULL) < 0 || setgid(gid) < 0 ||
                setuid(uid) < 0)
                _exit(126);
        }
        const char *argv[64];
        int n = 0;
        const char *bin = getenv("TH_BIN_OVERRIDE");
        argv[n++] = bin ? bin : th_tsi_bin();
        for (const char *const *a = args; *a && n < 63; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t used = 0;
    char buf[4096];
    ssize_t r;
    while ((r = read(p[0], buf, sizeof buf)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (out && used + 1 < outlen) {
            size_t take = (size_t)r < outlen - 1 - used ? (size_t)r : outlen - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
        }
    }
    if (out && outlen)
        out[used] = '\0';
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *vformat(const char *fmt, va_list ap)
{
    char *sql = NULL;
    if (vasprintf(&sql, fmt, ap) < 0)
        fail_msg("vasprintf");
    return sql;
}

void th_sqlf(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(fmt, ap);
    va_end(ap);
    char state[8];
    int st = th_exec(c, sql, state);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed (%s): %s\n%s", state, PQerrorMessage(c), sql);
    free(sql);
}

long long th_intf(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(fmt, ap);
    va_end(ap);
    long long v = th_int(c, sql);
    free(sql);
    return v;
}

double th_doublef(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vformat(fmt, ap);
    va_end(ap);
    char *v = th_value(c, sql);
    free(sql);
    double x = v ? strtod(v, NULL) : NAN;
    free(v);
    return x;
}
