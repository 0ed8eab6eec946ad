/* `tsi db` (issue 9): a private cluster started from a checkout under a 0700 directory
 * (as root the server runs as `postgres`, which cannot enter such a directory), reached
 * over TLS with a client certificate, stopped, restarted cleanly, idempotent start; and
 * the same as a normal (non-root) user. Each case makes its own cluster on its own port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/proc.h"
#include "db/conn.h"
#include "harness.h"

static char out[1 << 15];

static int free_port(void)
{
    /* the run's cluster port + 1.. is a cheap choice that avoids it; check it is free */
    int base = atoi(getenv("TSI_PG_PORT") ? getenv("TSI_PG_PORT") : "30000");
    return base + 1 + (int)(getpid() % 500);
}

static void rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
}

/* start, connect as a role over TLS, stop, status says stopped, start again, connect */
static void cycle(const char *home, int port, const char *as_user)
{
    char e_home[PATH_MAX + 16], e_port[32], e_as[64];
    snprintf(e_home, sizeof e_home, "TSI_HOME=%s", home);
    snprintf(e_port, sizeof e_port, "TSI_PG_PORT=%d", port);
    snprintf(e_as, sizeof e_as, "TH_RUN_AS=%s", as_user ? as_user : "");
    const char *env[] = {e_home, e_port, "TSI_DB_NAME=tsi", as_user ? e_as : NULL, NULL};

    int rc = th_run_tsi((const char *[]){"db", "start", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi db start: %s", out);
    assert_non_null(strstr(out, "sslmode='verify-full'"));
    /* idempotent */
    rc = th_run_tsi((const char *[]){"db", "start", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("second tsi db start: %s", out);
    rc = th_run_tsi((const char *[]){"db", "status", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "running"));
    rc = th_run_tsi((const char *[]){"migrate", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi migrate: %s", out);

    /* a role connects over TLS with its certificate (root can read the user's keys) */
    if (!as_user) {
        char old_home[PATH_MAX], old_port[32], old_db[64];
        snprintf(old_home, sizeof old_home, "%s", getenv("TSI_HOME"));
        snprintf(old_port, sizeof old_port, "%s", getenv("TSI_PG_PORT"));
        snprintf(old_db, sizeof old_db, "%s", getenv("TSI_DB_NAME") ? getenv("TSI_DB_NAME") : "");
        setenv("TSI_HOME", home, 1);
        setenv("TSI_PG_PORT", e_port + strlen("TSI_PG_PORT="), 1);
        setenv("TSI_DB_NAME", "tsi", 1);
        /* this process keeps the TSI_HOME it saw first (tsi_home() caches it), so the
         * second cycle (test_normal_user as a normal user) names its certificates itself */
        char certs[PATH_MAX + 8];
        snprintf(certs, sizeof certs, "%s/certs", home);
        setenv("TSI_CERTS_DIR", certs, 1);
        PGconn *c = th_connect("tsi_reader");
        assert_int_equal(PQsslInUse(c), 1);
        assert_int_equal(th_int(c, "SELECT count(*) FROM intersections"), 0);
        PQfinish(c);
        unsetenv("TSI_CERTS_DIR");
        setenv("TSI_HOME", old_home, 1);
        setenv("TSI_PG_PORT", old_port, 1);
        setenv("TSI_DB_NAME", old_db, 1);
    }

    rc = th_run_tsi((const char *[]){"db", "stop", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi db stop: %s", out);
    rc = th_run_tsi((const char *[]){"db", "status", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(out, "stopped"));
    rc = th_run_tsi((const char *[]){"db", "stop", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 0); /* stopping a stopped cluster is fine */

    rc = th_run_tsi((const char *[]){"db", "start", NULL}, env, out, sizeof out);
    if (rc != 0)
        fail_msg("restart: %s", out);
    rc = th_run_tsi((const char *[]){"migrate", "--status", NULL}, env, out, sizeof out);
    if (rc != 0 || strstr(out, "applied") == NULL)
        fail_msg("after restart: %s", out);
    rc = th_run_tsi((const char *[]){"db", "stop", NULL}, env, out, sizeof out);
    assert_int_equal(rc, 0);
}

static void test_root_from_0700_parent(void **state)
{
    (void)state;
    char parent[] = "/tmp/tsi-0700-XXXXXX";
    assert_non_null(mkdtemp(parent));
    assert_int_equal(chmod(parent, 0700), 0);
    char home[PATH_MAX];
    snprintf(home, sizeof home, "%s/checkout/var", parent);
    cycle(home, free_port(), NULL);
    /* as root the data directory had to move out of the user's reach and be linked */
    char link[PATH_MAX + 8], real[PATH_MAX];
    snprintf(link, sizeof link, "%s/pg", home);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    if (geteuid() == 0) {
        assert_true(S_ISLNK(st.st_mode));
        assert_non_null(realpath(link, real));
        assert_int_equal(strncmp(real, "/var/lib/tsi/pg-", 16), 0);
        rm_rf(real);
    }
    rm_rf(parent);
}

static void test_normal_user(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        /* we are the normal user already */
        char parent[] = "/tmp/tsi-user-XXXXXX";
        assert_non_null(mkdtemp(parent));
        char home[PATH_MAX];
        snprintf(home, sizeof home, "%s/var", parent);
        cycle(home, free_port() + 500, NULL);
        rm_rf(parent);
        return;
    }
    /* as root: run tsi as `nobody` from a directory nobody owns; the binary and DuckDB are
     * copied where nobody can read them (the checkout may sit under a 0700 directory) */
    uid_t uid;
    gid_t gid;
    assert_int_equal(tsi_proc_user("nobody", &uid, &gid), 0);
    char dir[] = "/tmp/tsi-nobody-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chmod(dir, 0755), 0);
    char bin[PATH_MAX], lib[PATH_MAX], home[PATH_MAX], cmd[4 * PATH_MAX];
    snprintf(bin, sizeof bin, "%s/tsi", dir);
    snprintf(home, sizeof home, "%s/home", dir);
    snprintf(lib, sizeof lib, "%s/third_party/duckdb/lib/libduckdb.so", th_source_dir());
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s' '%s/' && mkdir '%s' && chown nobody '%s'",
             th_tsi_bin(), bin, lib, dir, home, home);
    char *argv[] = {"sh", "-c", cmd, NULL};
    assert_int_equal(tsi_proc_run(argv, NULL, NULL, 0, NULL), 0);
    char ldp[PATH_MAX + 32];
    snprintf(ldp, sizeof ldp, "%s", dir);
    setenv("TH_BIN_OVERRIDE", bin, 1);
    setenv("LD_LIBRARY_PATH", ldp, 1);
    char h2[PATH_MAX + 8];
    snprintf(h2, sizeof h2, "%s/var", home);
    cycle(h2, free_port() + 500, "nobody");
    unsetenv("TH_BIN_OVERRIDE");
    unsetenv("LD_LIBRARY_PATH");
    /* the cluster belonged to nobody, not root, and stayed inside TSI_HOME */
    char pgdir[PATH_MAX + 16];
    snprintf(pgdir, sizeof pgdir, "%s/pg", h2);
    struct stat st;
    assert_int_equal(lstat(pgdir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_uid, uid);
    rm_rf(dir);
}

int main(void)
{
    th_require_cluster();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_from_0700_parent),
        cmocka_unit_test(test_normal_user),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
