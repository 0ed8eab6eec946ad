/* tests/harness/duck_util.h — DuckDB in integration tests: a statement that must
 * succeed (tests/harness/duck_util.c). */
#ifndef TSI_TEST_DUCK_UTIL_H
#define TSI_TEST_DUCK_UTIL_H

#include <duckdb.h>

/* Runs sql; fails the test with DuckDB's message on an error. res (may be NULL: the
 * result is dropped) is the caller's to destroy on success. */
void duck_query(duckdb_connection con, const char *sql, duckdb_result *res);

/* duck_query of printf-formatted SQL (only SQL the test itself writes); the result is
 * dropped. */
void duck_queryf(duckdb_connection con, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
