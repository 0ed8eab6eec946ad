/* tests/harness/harness.h — what integration tests share.
 *
 * scripts/test starts one PostgreSQL cluster per run (TSI_HOME in a temporary
 * directory, a random TSI_PG_PORT) with a migrated template database; each test gets a
 * fresh database copied from it (CREATE DATABASE ... TEMPLATE: milliseconds) and
 * tsi_db_connect() then points at it (TSI_DB_NAME). Helpers run the tsi binary
 * (TSI_BIN) and capture its output. */
#ifndef TSI_TEST_HARNESS_H
#define TSI_TEST_HARNESS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Creates a fresh database from the template, makes it the current one (TSI_DB_NAME),
 * and writes its name into name (>= 64 bytes). Fails the test on error. */
void th_db_create(char *name);
/* Drops it (NULL-safe, ignores errors). */
void th_db_drop(const char *name);

/* cmocka setup and teardown of a test that wants its own fresh database (th_db_create
 * before, th_db_drop after); th_db_name() is its name while it runs. */
int th_db_setup(void **state);
int th_db_teardown(void **state);
const char *th_db_name(void);

/* Connects as a role ("tsi_owner", "tsi_writer", "tsi_jobs", "tsi_reader", "postgres")
 * to the current test database; fails the test on error. */
PGconn *th_connect(const char *role);

/* Runs SQL; returns the result status (PGRES_*), puts the SQLSTATE (or "") into state
 * (>= 6 bytes) when not NULL. */
int th_exec(PGconn *c, const char *sql, char *state);
/* Runs a query expected to give one value; returns it as a malloc'd string (NULL for SQL
 * NULL). Fails the test on error. */
char *th_value(PGconn *c, const char *sql);
long long th_int(PGconn *c, const char *sql);
double th_double(PGconn *c, const char *sql);
/* printf-style forms: th_sqlf runs statements and fails the test unless they succeed;
 * th_intf is th_int on the formatted text. Only for SQL the test itself writes. */
void th_sqlf(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long th_intf(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* th_doublef: the first value as a double, NAN when it is NULL. */
double th_doublef(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs the tsi binary with args (NULL-terminated) and extra env "K=V" entries
 * (NULL-terminated, may be NULL); captures stdout+stderr into out (may be NULL). Returns
 * the exit status, or -1 when killed. The pseudo-entry "TH_RUN_AS=user" runs it as that
 * user (the caller must be root); TH_BIN_OVERRIDE in the environment replaces TSI_BIN. */
int th_run_tsi(const char *const *args, const char *const *env, char *out, size_t outlen);

/* A path to the tsi binary under test; fails when TSI_BIN is unset. */
const char *th_tsi_bin(void);
/* The source tree (TSI_SOURCE_DIR). */
const char *th_source_dir(void);
/* The whole of a file (malloc'd, NUL-terminated; its length in *len); fails the test
 * when it cannot be read. th_fixture: of tests/fixtures/<rel>. */
char *th_read_file(const char *path, size_t *len);
char *th_fixture(const char *rel, size_t *len);

/* Asserts that the harness environment exists (scripts/test sets it). */
void th_require_cluster(void);

#endif
