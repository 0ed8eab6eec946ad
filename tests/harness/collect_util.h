/* tests/harness/collect_util.h — shared by the collector's end-to-end tests: the
 * simulator and the collector as processes, the simulator's truth, DuckDB over the run's
 * archive, the database-versus-indices-Parquet comparison. Compiled once
 * (tests/harness/collect_util.c). */
#ifndef TSI_TEST_COLLECT_UTIL_H
#define TSI_TEST_COLLECT_UTIL_H

#include <duckdb.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/pqfile.h"
#include "base/buf.h"
#include "core/json.h"
#include "harness.h"
#include "proc_helper.h"

extern char work[PATH_MAX];
extern int sim_port;
extern th_proc sim;

#define NISECT 10

/* the simulator's speed under the sanitizer build: a few simulated minutes per test */
int speed(void);
int minutes(void);

void start_sim(const char *const *extra);

int64_t collect_sim_now(void);

void wait_sim_until(int64_t t_ms);

void start_collect(th_proc *p, const char *const *extra_env);

/* truth of one intersection-minute */
typedef struct truth {
    int64_t isect, minute;
    int complete, vehicles, vrus, vconf, pconf, bsm, psm, dup, malformed;
} truth;

size_t get_truth(int64_t from, int64_t to, truth *out, size_t cap);

/* One complete intersection-minute of the truth against PostgreSQL: -1 when it had no
 * traffic (then it has no row), 0 when its row's volume and VRUs equal the truth, 1 when
 * they fall short and the collector itself logged late messages for that
 * intersection-minute (a loaded machine delaying it beyond the grace period; callers
 * bound how often). Fails the test otherwise. */
int truth_minute_check(PGconn *c, const truth *t);

/* DuckDB over the run's archive: sql_fmt's %s (up to 3) → the archive root as a SQL
 * literal (the format uses it with ||); fails the test on error */
typedef struct duck_q {
    duckdb_database db;
    duckdb_connection con;
    duckdb_result res;
} duck_q;

void duck_open_query(duck_q *d, const char *sql_fmt);

void duck_close_query(duck_q *d);

long long duck_int(const char *sql_fmt);

/* the first value as text (malloc'd; "" for NULL) */
char *duck_str(const char *sql_fmt);

/* The database and the indices Parquet hold the same rows. */
void check_db_equals_parquet(PGconn *c);

/* SIGTERM, then up to 120 s for a clean stop (the collector processes what it received
 * and flushes: slow under the sanitizer on a loaded machine); fails the test, printing
 * the collector's log, unless it exits 0. */
void stop_collect(th_proc *p);

#endif
