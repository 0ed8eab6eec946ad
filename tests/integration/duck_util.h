/* tests/integration/duck_util.h — DuckDB in integration tests: a statement that must
 * succeed. Header-only (static functions); include after cmocka.h. */
#ifndef TSI_TEST_DUCK_UTIL_H
#define TSI_TEST_DUCK_UTIL_H

#include <duckdb.h>

/* Runs sql; fails the test with DuckDB's message on an error. res (may be NULL: the
 * result is dropped) is the caller's to destroy on success. */
__attribute__((unused)) static void duck_query(duckdb_connection con, const char *sql,
                                               duckdb_result *res)
{
    duckdb_result tmp;
    duckdb_result *r = res ? res : &tmp;
    if (duckdb_query(con, sql, r) == DuckDBError)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(r), sql);
    if (!res)
        duckdb_destroy_result(&tmp);
}

#endif
