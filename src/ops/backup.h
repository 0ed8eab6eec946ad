/* ops/backup.h — pgBackRest for the embedded cluster (its command line, `tsi backup
 * setup|run|list|restore`, is cli/cmd_backup.c).
 *
 * Layout: the repository is TSI_BACKUP_DIR (default $TSI_HOME/backup, see
 * tsi_backup_repo_dir); tsi writes the
 * pgBackRest configuration into it (<repo>/pgbackrest.conf, stanza `tsi`, logs in
 * <repo>/log, locks in <repo>/lock) and passes --config to every pgbackrest call. As
 * root, pgbackrest runs as the `postgres` user, which owns the repository.
 *
 * setup: writes <data directory>/backup.conf (archive_mode, archive_command through
 * pgbackrest archive-push, archive_timeout) which tsi.conf includes when it exists,
 * restarts the cluster when archiving was off, creates the stanza and checks that a WAL
 * segment reaches the repository. Idempotent.
 * run: a backup of --type full|diff|incr, or auto (the default): full when the newest
 * full backup is older than 6.5 days (or none exists), differential otherwise. Retention
 * (pgBackRest's time-based full retention, --retention-days, 30 by default, at least 7):
 * a full backup goes once a newer full is that old, with the differentials that depend
 * on it; WAL is kept from the oldest backup kept, so point-in-time recovery reaches back
 * at least --retention-days whatever the number of full backups.
 * Every pgbackrest call passes --config=<repo>/pgbackrest.conf (rewritten by setup) and
 * --config-include-path=<repo>/conf.d (the operator's own settings: another repository).
 * Backup info: setup creates tsi_ops.backup_info (owned by the superuser, readable by the
 * tsi roles) and the pg_cron job tsi-backup-info that refreshes it from `pgbackrest info`
 * (every 5 minutes; run and setup refresh it too): tsi status and /metrics read that row
 * and never wait on pgBackRest.
 * restore: --to TIME (ISO 8601; UTC when no offset is given) into a fresh data
 * directory (--target-dir, default $TSI_HOME/pg-restored-<stamp>) with archiving off,
 * or --in-place: stops the cluster, restores over its data directory (delta) and starts
 * it again. Without --to, restores to the end of the archived WAL. */
#ifndef TSI_OPS_BACKUP_H
#define TSI_OPS_BACKUP_H

#include <stddef.h>

#include "base/error.h"

#include <stdbool.h>

#define TSI_BACKUP_STANZA "tsi"

/* Turns WAL archiving on into the repository, creates the stanza and schedules full,
 * differential and info-refresh backups with pg_cron (5-field cron expressions, UTC);
 * restarts the cluster once. */
int tsi_backup_setup(int retention_days, const char *sched_full, const char *sched_diff,
                     const char *sched_info, tsi_error *err);
/* Takes a backup: type auto (weekly full, else differential), full, diff or incr; expires
 * those past retention. */
int tsi_backup_run(const char *type, tsi_error *err);
/* Prints the backups and the point-in-time window; returns the exit status, or a negative
 * TSI_E_* with err set when there is no embedded cluster. */
int tsi_backup_list(tsi_error *err);
/* Point-in-time restore (to: NULL = latest) into target_dir (NULL: a fresh directory) or,
 * in_place, over the stopped cluster (then started); the directory into restored. */
int tsi_backup_restore(const char *to, const char *target_dir, bool in_place, char *restored,
                       size_t rlen, tsi_error *err);
/* The repository for this process (`--backup-dir`); NULL or "" = the default. */
void tsi_backup_set_repo_dir(const char *dir);

/* Parses a recovery target time and writes it normalised as
 * "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM" into out (>= 40 bytes). Accepts a space or 'T'
 * between date and time, optional fractional seconds (1-6 digits), and an optional zone
 * "Z", "UTC", "+HH", "+HHMM" or "+HH:MM" (also '-'); no zone means UTC. Every field is
 * range-checked (the day against the month and leap years). Returns 0 or TSI_E_INVALID. */
int tsi_backup_parse_time(const char *text, char *out, size_t outlen, tsi_error *err);

/* The repository directory into buf: TSI_BACKUP_DIR (or --backup-dir), else
 * $TSI_HOME/backup, or /var/lib/tsi/backup-<hash of TSI_HOME> when tsi runs as root and
 * the postgres user cannot enter TSI_HOME (the data directory moves the same way). */
void tsi_backup_repo_dir(char *buf, size_t len);

/* True (1) when a path may be used inside archive_command and pgBackRest's
 * configuration: absolute, and only letters, digits and / . _ - + @ : = , */
int tsi_backup_path_ok(const char *path);

#endif
