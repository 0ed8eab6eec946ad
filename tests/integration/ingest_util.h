/* tests/integration/ingest_util.h — what the ingest tests (test_ingest.c,
 * test_ingest_parallel.c) share: a fresh start between tests (tables emptied, spool file
 * removed) and the teardown of a test file (spool directory and test database removed).
 * Header-only (static functions). */
#ifndef TSI_TEST_INGEST_UTIL_H
#define TSI_TEST_INGEST_UTIL_H

#include <limits.h>
#include <unistd.h>

#include "base/proc.h"
#include "db/ingest.h"
#include "harness.h"

/* runs delete_sql as tsi_owner (fails the test on error) and removes the spool file */
__attribute__((unused)) static void iu_reset(const char *spool, const char *delete_sql)
{
    PGconn *c = th_connect("tsi_owner");
    th_sqlf(c, "%s", delete_sql);
    PQfinish(c);
    char path[PATH_MAX + 32];
    tsi_ingest_spool_path(spool, path, sizeof path);
    unlink(path);
}

/* removes the spool directory and drops the test database */
__attribute__((unused)) static void iu_teardown(const char *spool, const char *dbname)
{
    char *argv[] = {"rm", "-rf", (char *)spool, NULL};
    tsi_proc_run(argv, NULL, NULL, 0, NULL);
    th_db_drop(dbname);
}

#endif
