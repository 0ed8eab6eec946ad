/* db/migrate.h — numbered SQL migrations embedded at build time (its command line,
 * `tsi migrate`, is cli/cmd_migrate.c).
 *
 * sql/migrations/NNN_name.sql become tsi_migrations[] (cmake/embed_migrations.cmake).
 * The runner connects as tsi_owner, takes an advisory lock, and applies every missing
 * version in order, each in its own transaction, recording version, name, sha256 and
 * time in schema_migrations. An applied version whose text changed stops the run. */
#ifndef TSI_DB_MIGRATE_H
#define TSI_DB_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "base/error.h"

typedef struct tsi_migration {
    int version;
    const char *name;
    const char *sql; /* NUL-terminated */
    size_t len;
} tsi_migration;

extern const tsi_migration tsi_migrations[];
extern const int tsi_migrations_count;

/* Applies what is missing on an open connection; returns the number applied (>= 0) or a
 * negative TSI_E_* (TSI_E_CHECKSUM when an applied file changed). */
int tsi_migrate_apply(PGconn *c, tsi_error *err);

/* Same, but with a caller-given list (tests use it to simulate a changed file). */
int tsi_migrate_apply_list(PGconn *c, const tsi_migration *list, int count, tsi_error *err);

/* Prints every embedded migration with its state (applied, pending, CHANGED) and when it
 * was applied, one a line on stdout (`tsi migrate --status`). Returns 0. */
int tsi_migrate_print_status(PGconn *c);

#endif
