/* ops/audit.c — see audit.h */
#include "ops/audit.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* copies [s, s+n) into buf (truncating), NUL-terminated */
static void copy_n(char *buf, size_t len, const char *s, size_t n)
{
    if (len == 0)
        return;
    if (n >= len)
        n = len - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DD HH:MM:SS.mmm ZZZ": returns the length of the timestamp or 0 */
static size_t parse_stamp(const char *s, time_t *when)
{
    int y = digits(s, 4);
    if (y < 0 || s[4] != '-')
        return 0;
    int mo = digits(s + 5, 2), d = (s[7] == '-') ? digits(s + 8, 2) : -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || s[10] != ' ')
        return 0;
    int h = digits(s + 11, 2), mi = (s[13] == ':') ? digits(s + 14, 2) : -1,
        sec = (s[16] == ':') ? digits(s + 17, 2) : -1;
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return 0;
    size_t n = 19;
    if (s[n] == '.') {
        n++;
        while (isdigit((unsigned char)s[n]))
            n++;
    }
    if (s[n] == ' ') { /* zone abbreviation */
        size_t z = n + 1;
        while (isalpha((unsigned char)s[z]) || s[z] == '+' || s[z] == '-' ||
               isdigit((unsigned char)s[z]))
            z++;
        if (z > n + 1)
            n = z;
    }
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *when = timegm(&tm);
    return n;
}

/* One CSV field of pgaudit's line: plain up to ',' or "quoted with "" doubled".
 * Returns the position after the field's terminating comma (or at the NUL). */
static const char *csv_field(const char *p, char *buf, size_t len)
{
    size_t n = 0;
    if (*p == '"') {
        p++;
        for (;;) {
            if (*p == '\0')
                break;
            if (*p == '"') {
                if (p[1] == '"') {
                    if (n + 1 < len)
                        buf[n++] = '"';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            if (n + 1 < len)
                buf[n++] = *p;
            p++;
        }
        while (*p && *p != ',')
            p++;
    } else {
        while (*p && *p != ',') {
            if (n + 1 < len)
                buf[n++] = *p;
            p++;
        }
    }
    if (len)
        buf[n < len ? n : len - 1] = '\0';
    return *p == ',' ? p + 1 : p;
}

int tsi_audit_parse_record(const char *rec, tsi_audit_entry *e)
{
    memset(e, 0, sizeof *e);
    if (!rec)
        return 0;
    size_t n = parse_stamp(rec, &e->when);
    if (n == 0)
        return 0;
    copy_n(e->time, sizeof e->time, rec, n);
    const char *p = rec + n;
    /* " [pid] " */
    if (p[0] != ' ' || p[1] != '[')
        return 0;
    p += 2;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        p++;
    if (p[0] != ']' || p[1] != ' ')
        return 0;
    p += 2;
    /* "user@db " (%q: absent for background processes, which do no DDL) */
    const char *sp = strchr(p, ' ');
    const char *at = memchr(p, '@', sp ? (size_t)(sp - p) : 0);
    if (!sp || !at)
        return 0;
    copy_n(e->role, sizeof e->role, p, (size_t)(at - p));
    copy_n(e->database, sizeof e->database, at + 1, (size_t)(sp - at - 1));
    p = sp + 1;
    static const char tag[] = "LOG:  AUDIT: ";
    if (strncmp(p, tag, sizeof tag - 1) != 0)
        return 0;
    p += sizeof tag - 1;
    char type[16], sid[24], ssid[24];
    p = csv_field(p, type, sizeof type);
    if (strcmp(type, "SESSION") != 0 && strcmp(type, "OBJECT") != 0)
        return 0;
    p = csv_field(p, sid, sizeof sid);
    p = csv_field(p, ssid, sizeof ssid);
    if (!isdigit((unsigned char)sid[0]) || !isdigit((unsigned char)ssid[0]))
        return 0;
    p = csv_field(p, e->audit_class, sizeof e->audit_class);
    p = csv_field(p, e->command, sizeof e->command);
    p = csv_field(p, e->object_type, sizeof e->object_type);
    p = csv_field(p, e->object, sizeof e->object);
    csv_field(p, e->statement, sizeof e->statement);
    return e->command[0] ? 1 : 0;
}

/* ---- reading the logs ----------------------------------------------------------------- */

typedef struct entries {
    tsi_audit_entry *v;
    size_t n, cap;
} entries;

static void add_record(entries *es, tsi_buf *rec, time_t since, const char *db)
{
    tsi_audit_entry e;
    if (rec->len == 0 || !tsi_audit_parse_record(tsi_buf_cstr(rec), &e))
        return;
    if (e.when < since || (db && strcmp(db, e.database) != 0))
        return;
    if (es->n == es->cap) {
        size_t cap = es->cap ? es->cap * 2 : 64;
        tsi_audit_entry *v = realloc(es->v, cap * sizeof *v);
        if (!v)
            return;
        es->v = v;
        es->cap = cap;
    }
    es->v[es->n++] = e;
}

static int read_log(const char *path, entries *es, time_t since, const char *db)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    tsi_buf rec = TSI_BUF_INIT;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    time_t dummy;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len && line[len - 1] == '\n')
            line[--len] = '\0';
        if (parse_stamp(line, &dummy) > 0) {
            add_record(es, &rec, since, db);
            tsi_buf_reset(&rec);
        } else if (rec.len) {
            tsi_buf_putc(&rec, '\n');
        } else {
            continue; /* a continuation without its start (file began mid-record) */
        }
        if (rec.len < 64 * 1024)
            tsi_buf_append(&rec, line, (size_t)len);
    }
    add_record(es, &rec, since, db);
    tsi_buf_free(&rec);
    free(line);
    fclose(f);
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const tsi_audit_entry *x = a, *y = b;
    if (x->when != y->when)
        return x->when < y->when ? -1 : 1;
    return strcmp(x->time, y->time);
}

long tsi_audit_parse_since(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0 || v > 100000 || end[1] != '\0')
        return -1;
    switch (*end) {
    case 'm':
        return v * 60;
    case 'h':
        return v * 3600;
    case 'd':
        return v * 86400;
    }
    return -1;
}

int tsi_audit_read(const char *dir, time_t since, const char *db, tsi_audit_list *out,
                   tsi_error *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return tsi_error_set(err, TSI_E_IO, "cannot read the server's log directory", "%s: %s", dir,
                             strerror(errno));
    entries es = {0};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".log") != 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (read_log(path, &es, since, db) == 0)
            out->files++;
    }
    closedir(d);
    if (es.n > 1)
        qsort(es.v, es.n, sizeof *es.v, by_time);
    out->v = es.v;
    out->n = es.n;
    return 0;
}
