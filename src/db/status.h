/* db/status.h — the database facts of `tsi status`, for a person and for /metrics.
 *
 * tsi_status_collect() reads, over one connection (any tsi role: tsi_reader is enough,
 * it holds pg_read_all_stats), the facts an operator watches:
 *   - database size; per table and partition: total, heap and index bytes and live rows
 *     (pg_stat_user_tables.n_live_tup: an estimate kept by autovacuum/ANALYZE, exact
 *     enough to watch growth, not a count(*));
 *   - partitions ready ahead: per range-partitioned table, the partitions whose lower
 *     bound lies in the future, and the upper bound of the newest;
 *   - the slowest statements from pg_stat_statements (by mean time; empty when the
 *     extension is absent from the database);
 *   - connections per role and state (pg_stat_activity, this database);
 *   - replication: on a primary, each standby's state and replay lag (seconds, bytes);
 *     on a standby, its own replay delay;
 *   - WAL archiving (pg_stat_archiver): archived and failed counts, age of the last
 *     archived segment;
 *   - job last-success age: the newest successful run per job from the `job_runs`
 *     table of migration 010 (job, finished, status = 'ok') when it exists, and from
 *     pg_cron's cron.job_run_details when the role may read it (tsi_jobs, tsi_owner);
 *   - backups: the row tsi_ops.backup_info that `tsi backup` keeps from pgBackRest's
 *     `info` (ops/backup.h): the stop time of the newest full and differential backup,
 *     the point-in-time window (now - the oldest recoverable point), how old those facts
 *     are and whether the last refresh failed; absent until `tsi backup setup` ran;
 *   - spool depth: files and bytes under spool_dir when that directory exists;
 *   - the HA formation, when this machine has one: each node's reported and assigned
 *     state, health and lag behind the primary (bytes, from the monitor's LSNs), which
 *     is primary, how many promotions happened and when the last one did.
 * Every query is read-only and fixed text (no input goes into SQL).
 *
 * tsi_status_prometheus() renders the same facts in the Prometheus text exposition
 * format (HELP/TYPE lines, label values escaped), ready to append to /metrics;
 * tsi_status_print() renders them for a person.
 *
 * Usage from the API (one call per scrape, on a reader connection):
 *   tsi_status s; tsi_error e = {0};
 *   if (tsi_status_collect(conn, spool_dir, &s, &e) == 0) tsi_status_prometheus(&s, &buf);
 *   tsi_status_free(&s);
 *
 * Ownership: tsi_status owns its arrays; tsi_status_free releases them (NULL-safe, also
 * after a failed collect). The connection is borrowed. Not thread-safe per struct. */
#ifndef TSI_DB_STATUS_H
#define TSI_DB_STATUS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/error.h"
#include "db/ha.h"

typedef struct tsi_status_table {
    char name[128];   /* schema-qualified when not in public */
    char parent[128]; /* the partitioned table it belongs to, or "" */
    long long total_bytes, heap_bytes, index_bytes;
    long long rows; /* estimate (n_live_tup); -1 for a partitioned parent */
} tsi_status_table;

typedef struct tsi_status_ahead {
    char parent[128];
    int partitions;      /* every partition of the table */
    int ahead;           /* partitions whose lower bound is after now() */
    char newest_end[40]; /* upper bound of the newest partition, or "" */
} tsi_status_ahead;

typedef struct tsi_status_stmt {
    char queryid[24];
    long long calls;
    double mean_ms, max_ms, total_ms;
    char query[256]; /* normalised text, truncated, one line */
} tsi_status_stmt;

typedef struct tsi_status_conn {
    char role[64];
    char state[32];
    int count;
} tsi_status_conn;

typedef struct tsi_status_replica {
    char name[64];       /* application_name */
    char client[64];     /* client address, or "local" */
    char state[32];      /* streaming, catchup, ... */
    double replay_lag_s; /* -1 when the server does not know (idle) */
    long long lag_bytes; /* sent but not yet replayed */
} tsi_status_replica;

typedef struct tsi_status_job {
    char name[64];
    double last_success_age_s; /* -1 when it never succeeded */
    char source[16];           /* "pg_cron" or "job_runs" */
} tsi_status_job;

typedef struct tsi_status_backup {
    bool present;                /* tsi_ops.backup_info exists and has its row */
    double last_full, last_diff; /* epoch seconds of the newest stop; -1: none */
    double recovery_window_s;    /* now - oldest recoverable point; -1: none */
    double refreshed_age_s;      /* since the facts were read; -1: never */
    double refreshed_at;         /* epoch seconds; -1: never */
    long long backups;           /* backup sets in the repository */
    char error[256];             /* why the last refresh failed, or "" */
} tsi_status_backup;

typedef struct tsi_status {
    char collected_at[40]; /* server time of the collection */
    char database[64];
    long long database_bytes;
    bool in_recovery;       /* this server is a standby */
    double standby_delay_s; /* on a standby: now() - last replayed transaction; else -1 */
    long long wal_archived, wal_archive_failed;
    double wal_last_archived_age_s; /* -1 when nothing was archived */
    bool archiving;                 /* archive_mode is on */
    bool spool_present;
    long long spool_files, spool_bytes;
    tsi_status_table *tables;
    size_t ntables;
    tsi_status_ahead *ahead;
    size_t nahead;
    tsi_status_stmt *stmts;
    size_t nstmts;
    tsi_status_conn *conns;
    size_t nconns;
    tsi_status_replica *replicas;
    size_t nreplicas;
    tsi_status_job *jobs;
    size_t njobs;
    tsi_status_backup backup;
    /* the HA formation (db/ha.h), read from its monitor through the local socket as the
     * superuser, when a formation file exists on this machine and this process may enter
     * its sockets' directory (root or postgres); otherwise absent */
    bool ha_formation;  /* this machine has one */
    bool ha_monitor_up; /* its monitor answered: ha holds the nodes */
    tsi_ha_state ha;
} tsi_status;

/* Fills s (zeroed first). spool_dir may be NULL (no spool facts). Returns 0, or
 * TSI_E_DB with err set when a required query fails (optional sources — pg_stat_statements,
 * pg_cron, job_runs — are skipped silently when absent or not readable). */
int tsi_status_collect(PGconn *c, const char *spool_dir, tsi_status *s, tsi_error *err);
void tsi_status_free(tsi_status *s);

/* Appends the Prometheus text exposition of s to out (metrics prefixed tsi_db_, tsi_job_,
 * tsi_spool_, tsi_wal_, tsi_backup_, tsi_ha_). */
void tsi_status_prometheus(const tsi_status *s, tsi_buf *out);
/* Prints s for a person. */
void tsi_status_print(FILE *out, const tsi_status *s);

/* Appends a Prometheus label value, escaped (\\, \", \n), without the quotes. */
void tsi_status_label_escape(tsi_buf *out, const char *value);

#endif
