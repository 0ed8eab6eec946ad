/* `tsi db --pg-listen / --pg-hostname` (issue 31, the Compose deployment: clients in other
 * containers connect to the db service by name with sslmode=verify-full). A private cluster
 * listening on 127.0.0.1 and 127.0.0.2 with the extra name tsi-db.test: a tsi role logs in
 * from 127.0.0.2 under that name, also after `tsi backup setup` restarted the cluster; a
 * name the certificate does not carry is refused by
 * verify-full; the superuser has no TCP line beyond loopback in pg_hba.conf; hostile values
 * of both options exit 2 before anything is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_helper.h"
#include "harness.h"

static th_cluster pc;

static PGconn *connect_as(const char *host, const char *hostaddr, const char *role)
{
    char ci[4 * PATH_MAX];
    snprintf(ci, sizeof ci,
             "host=%s hostaddr=%s port=%d dbname=tsi user=%s sslmode=verify-full "
             "sslrootcert=%s/certs/ca.crt sslcert=%s/certs/%s.crt sslkey=%s/certs/%s.key "
             "connect_timeout=5",
             host, hostaddr, pc.port, role, pc.home, pc.home, role, pc.home, role);
    return PQconnectdb(ci);
}

static void test_listen_by_name(void **state)
{
    (void)state;
    th_private_cluster_init(&pc, "listen", 900);
    pc.env[3] = "TSI_PG_LISTEN=127.0.0.1,127.0.0.2";
    pc.env[4] = "TSI_PG_HOSTNAME=tsi-db.test";
    th_private_cluster_start(&pc, 1);

    /* by the certificate's extra name, from the second address */
    PGconn *c = connect_as("tsi-db.test", "127.0.0.2", "tsi_reader");
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("tsi_reader via tsi-db.test at 127.0.0.2: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT inet_server_addr()::text, current_user");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "127.0.0.2/32");
    assert_string_equal(PQgetvalue(r, 0, 1), "tsi_reader");
    PQclear(r);
    PQfinish(c);

    /* another command that restarts the cluster (backup setup turns WAL archiving on)
     * writes the same listen_addresses: the options travel in the environment */
    char out[8192];
    const char *setup[] = {"backup", "setup", NULL};
    if (th_run_tsi(setup, pc.env, out, sizeof out) != 0)
        fail_msg("tsi backup setup: %s", out);
    c = connect_as("tsi-db.test", "127.0.0.2", "tsi_reader");
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("after tsi backup setup, via 127.0.0.2: %s", PQerrorMessage(c));
    PQfinish(c);

    /* a name the server certificate does not carry: verify-full refuses it */
    c = connect_as("not-the-db.test", "127.0.0.2", "tsi_reader");
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(c), "does not match host name"));
    PQfinish(c);

    /* pg_hba.conf: beyond loopback only the four tsi roles, never all (the superuser) */
    char path[PATH_MAX + 32], hba[8192];
    snprintf(path, sizeof path, "%s/pg/pg_hba.conf", pc.home);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(hba, 1, sizeof hba - 1, f);
    hba[n] = '\0';
    fclose(f);
    assert_non_null(strstr(
        hba, "hostssl all          tsi_owner,tsi_writer,tsi_jobs,tsi_reader  0.0.0.0/0  cert"));
    assert_null(strstr(hba, "all   0.0.0.0/0"));
    th_private_cluster_stop(&pc);
    th_private_cluster_remove(&pc);
}

static void test_hostile_options(void **state)
{
    (void)state;
    char out[4096];
    static const char *listen_bad[] = {"",   "127.0.0.1'", "127.0.0.1\nssl = off",
                                       "db", "a b",        "127.0.0.1;*"};
    for (size_t i = 0; i < sizeof listen_bad / sizeof *listen_bad; i++) {
        const char *a[] = {"db", "start", "--pg-listen", listen_bad[i], NULL};
        assert_int_equal(th_run_tsi(a, NULL, out, sizeof out), 2);
        assert_non_null(strstr(out, "--pg-listen"));
    }
    static const char *name_bad[] = {
        "db,IP:10.0.0.1", "db\nextendedKeyUsage=clientAuth", "-db", ".db", "d b", "db'"};
    for (size_t i = 0; i < sizeof name_bad / sizeof *name_bad; i++) {
        const char *a[] = {"db", "start", "--pg-hostname", name_bad[i], NULL};
        assert_int_equal(th_run_tsi(a, NULL, out, sizeof out), 2);
        assert_non_null(strstr(out, "--pg-hostname"));
    }
}

static int teardown(void **state)
{
    (void)state;
    th_private_cluster_remove_all();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_options),
        cmocka_unit_test(test_listen_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
