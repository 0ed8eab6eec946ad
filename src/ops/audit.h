/* ops/audit.h — `tsi audit`: recent schema changes, read from pgaudit's DDL log lines.
 *
 * The embedded cluster logs DDL through pgaudit (pgaudit.log = 'ddl', turned on after
 * PostGIS is installed) into <data directory>/log/postgresql-<weekday>.log with the line
 * prefix '%m [%p] %q%u@%d ' (cluster.c). A record is one such line plus the continuation
 * lines of a multi-line statement. tsi audit reads every log file, keeps the AUDIT
 * records, and prints time, role, database, command, object and statement. The logs
 * rotate weekly (a weekday's file is truncated when reused), so the window is 7 days.
 *
 * Ownership: tsi_audit_parse_record borrows the record and writes into the caller's
 * struct; nothing is allocated. */
#ifndef TSI_OPS_AUDIT_H
#define TSI_OPS_AUDIT_H

#include <stddef.h>
#include <time.h>

#include "base/options.h"

typedef struct tsi_audit_entry {
    char time[40];        /* as logged: "2026-11-25 10:31:07.412 UTC" */
    time_t when;          /* the same, seconds since the epoch (UTC) */
    char role[64];        /* who ran it */
    char database[64];    /* where */
    char audit_class[16]; /* "DDL" */
    char command[64];     /* "CREATE TABLE" */
    char object_type[32]; /* "TABLE" (may be empty) */
    char object[256];     /* "public.foo" (may be empty) */
    char statement[1024]; /* the statement text, truncated */
} tsi_audit_entry;

extern const tsi_option tsi_audit_options[];

int tsi_cmd_audit(int argc, char **argv);

/* Parses one log record (its first line and any continuation lines joined by '\n').
 * Returns 1 and fills e when it is a pgaudit record of the session log, 0 when it is
 * another kind of record (a plain LOG, an ERROR, a STATEMENT line that merely contains
 * the word AUDIT), never reading past the record's NUL. */
int tsi_audit_parse_record(const char *record, tsi_audit_entry *e);

#endif
