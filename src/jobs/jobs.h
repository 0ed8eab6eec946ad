/* jobs/jobs.h — the batch jobs: rollups, retention, partitions, constants (`tsi jobs`).
 *
 * The jobs themselves are SQL functions created by sql/migrations/010_jobs.sql and owned
 * by tsi_owner; tsi_jobs runs them through tsi_job_run(job, at, params), which records
 * every run in job_runs (a failed run leaves the tables as they were). pg_cron calls the
 * same function (CALL tsi_job_cron(...)). This module is the C side: build the parameters
 * from the option table, run a job, VACUUM ANALYZE what retention touched (as tsi_owner:
 * VACUUM needs the table's owner and cannot run inside a function), install the pg_cron
 * schedule, report status. docs/jobs.md has the details.
 *
 * Ownership: connections are borrowed; tsi_job_result owns nothing (fixed buffers). */
#ifndef TSI_JOBS_JOBS_H
#define TSI_JOBS_JOBS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/options.h"

/* The jobs in the order `tsi jobs run all` runs them; NULL-terminated. */
extern const char *const tsi_job_names[];

/* True when name is one of tsi_job_names. */
bool tsi_job_known(const char *name);

typedef struct tsi_job_result {
    long long run_id;  /* job_runs.id */
    char status[16];   /* "ok" | "failed" */
    int buckets;       /* hours, days, partitions or constant sets handled */
    long long rows;    /* rows written or deleted */
    char error[512];   /* SQLSTATE: message, when failed */
    char detail[2048]; /* job_runs.detail (JSON), truncated to fit */
    double seconds;    /* wall time of the call */
} tsi_job_result;

/* Runs one job on c (connected as tsi_jobs). at: a PostgreSQL timestamptz text (read in
 * UTC when it has no zone), or NULL for now(). params: a JSON object text (see
 * tsi_jobs_params). Returns 0 with out filled (out->status says whether the job itself
 * succeeded; a failed job is recorded in job_runs); TSI_E_INVALID for a bad job name or
 * clock; TSI_E_DB when the call itself failed. */
int tsi_jobs_run_one(PGconn *c, const char *job, const char *at, const char *params,
                     tsi_job_result *out, tsi_error *err);

/* VACUUM (ANALYZE) of the tables a retention run (job_runs.id = run_id) touched, and
 * ANALYZE of their partitioned parents, on c connected as tsi_owner. Only partitions of
 * the rollup tables named by that run are touched. Returns the number of tables vacuumed
 * or a negative TSI_E_*. */
int tsi_jobs_vacuum(PGconn *owner, long long run_id, tsi_error *err);

/* The second half of retention, on owner (connected as tsi_owner, autocommit): CALL
 * tsi_retention_drop(at, params, run_id) — TRUNCATE, then DROP with a bounded lock wait, each
 * realtime partition wholly before the cut and rolled up, then data_quality_log pruned in
 * batches; each step commits. at NULL = now(); run_id <= 0 = the latest successful
 * retention run, whose job_runs row receives the result. Appends the result (JSON) to
 * result (may be NULL). TSI_E_INVALID for a bad parameter, TSI_E_DB otherwise. */
int tsi_jobs_retention_drop(PGconn *owner, const char *at, const char *params, long long run_id,
                            tsi_buf *result, tsi_error *err);

/* The job parameters (a JSON object) from options parsed with tsi_jobs_options (cli/), validated
 * and assembled by PostgreSQL on c (so --constants-defaults must be a JSON object). Appends to out.
 * TSI_E_INVALID on a bad value. */
int tsi_jobs_params(PGconn *c, const tsi_opts *o, tsi_buf *out, tsi_error *err);

/* Checks a 5-field cron schedule ("5 * * * *"): digits, '*', '/', ',', '-' only. */
bool tsi_jobs_schedule_valid(const char *s);

/* `tsi jobs run|install|status` on options parsed with the table of cli/cmd_jobs.c
 * (tsi_jobs_options); each returns the exit status. run: o->args[0] names the job (or
 * "all"), runs it (retention: then the drop and VACUUM as tsi_owner) and prints a line per
 * job; 1 when one failed, 2 for a bad job or value. install: schedules the jobs with
 * pg_cron (--remove: removes them); 2 for a bad schedule. status: prints the last runs,
 * failures, the constants in force and the pg_cron schedule; 1 when a last run failed. */
int tsi_jobs_run_now(const tsi_opts *o);
int tsi_jobs_install(const tsi_opts *o);
int tsi_jobs_status(const tsi_opts *o);

#endif
