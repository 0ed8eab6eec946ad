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

#include "base/error.h"

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

/* The pgaudit entries of every *.log file in dir, since the given time, of database db
 * (NULL: all), oldest first. out->v is malloc'd (free it); out->files says how many log
 * files were read. Returns 0, or TSI_E_IO when dir cannot be read. */
typedef struct tsi_audit_list {
    tsi_audit_entry *v;
    size_t n;
    int files;
} tsi_audit_list;
int tsi_audit_read(const char *dir, time_t since, const char *db, tsi_audit_list *out,
                   tsi_error *err);

/* "N" followed by m, h or d (N <= 100000) as seconds; -1 when malformed. */
long tsi_audit_parse_since(const char *s);

/* Parses one log record (its first line and any continuation lines joined by '\n').
 * Returns 1 and fills e when it is a pgaudit record of the session log, 0 when it is
 * another kind of record (a plain LOG, an ERROR, a STATEMENT line that merely contains
 * the word AUDIT), never reading past the record's NUL. */
int tsi_audit_parse_record(const char *record, tsi_audit_entry *e);

#endif
