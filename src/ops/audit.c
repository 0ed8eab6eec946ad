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
#include "base/jsonw.h"
#include "db/cluster.h"
#include "db/conn.h"

const tsi_option tsi_audit_options[] = {
    {"since", TSI_OPT_STRING, "7d", NULL, "how far back: N followed by m, h or d", NULL},
    {"limit", TSI_OPT_INT, "50", NULL, "at most this many changes (the newest)", "1..100000"},
    {"db", TSI_OPT_STRING, NULL, NULL, "only changes in this database", NULL},
    {"log-dir", TSI_OPT_PATH, NULL, "TSI_AUDIT_LOG_DIR",
     "the server's log directory (default: the embedded cluster's <data>/log)", NULL},
    {"json", TSI_OPT_BOOL, NULL, NULL, "one JSON object per line instead of a table", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

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

static long parse_since(const char *s)
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

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

int tsi_cmd_audit(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi audit",
                            "usage: tsi audit [--since 7d] [--limit 50] [--db NAME] [--json]\n\n"
                            "Recent schema changes (DDL) from pgaudit's log: time, role, "
                            "database, command, object, statement.",
                            tsi_audit_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    long window = parse_since(tsi_opts_str(&o, "since"));
    if (window < 0) {
        fprintf(stderr, "tsi audit: --since '%s': expected N followed by m, h or d (e.g. 7d)\n",
                tsi_opts_str(&o, "since"));
        tsi_opts_free(&o);
        return 2;
    }
    char dir[PATH_MAX];
    if (tsi_opts_str(&o, "log-dir")) {
        snprintf(dir, sizeof dir, "%s", tsi_opts_str(&o, "log-dir"));
    } else if (tsi_db_external()) {
        fprintf(stderr, "tsi audit: with an external database (DATABASE_URL/PG*), pgaudit "
                        "writes to that server's log: give its directory with --log-dir\n");
        tsi_opts_free(&o);
        return 1;
    } else {
        char data[PATH_MAX];
        tsi_cluster_data_dir(data, sizeof data);
        snprintf(dir, sizeof dir, "%s/log", data);
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "tsi audit: cannot read the server's log directory %s: %s\n", dir,
                strerror(errno));
        tsi_opts_free(&o);
        return 1;
    }
    entries es = {0};
    time_t since = time(NULL) - window;
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".log") != 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (read_log(path, &es, since, tsi_opts_str(&o, "db")) == 0)
            files++;
    }
    closedir(d);
    if (es.n > 1)
        qsort(es.v, es.n, sizeof *es.v, by_time);
    size_t limit = (size_t)tsi_opts_int(&o, "limit");
    size_t first = es.n > limit ? es.n - limit : 0;
    bool json = tsi_opts_bool(&o, "json");
    if (!json)
        printf("%-27s %-12s %-14s %-24s %-32s %s\n", "time", "role", "database", "command",
               "object", "statement");
    for (size_t i = first; i < es.n; i++) {
        tsi_audit_entry *e = &es.v[i];
        if (json) {
            tsi_buf b = TSI_BUF_INIT;
            tsi_jsonw w;
            tsi_jsonw_init(&w, &b);
            tsi_jsonw_object(&w);
            tsi_jsonw_kv_str(&w, "time", e->time);
            tsi_jsonw_kv_str(&w, "role", e->role);
            tsi_jsonw_kv_str(&w, "database", e->database);
            tsi_jsonw_kv_str(&w, "class", e->audit_class);
            tsi_jsonw_kv_str(&w, "command", e->command);
            tsi_jsonw_kv_str(&w, "object_type", e->object_type);
            tsi_jsonw_kv_str(&w, "object", e->object);
            tsi_jsonw_kv_str(&w, "statement", e->statement);
            tsi_jsonw_end(&w);
            printf("%s\n", tsi_buf_cstr(&b));
            tsi_buf_free(&b);
        } else {
            one_line(e->statement);
            printf("%-27s %-12s %-14s %-24s %-32s %.100s\n", e->time, e->role, e->database,
                   e->command, e->object[0] ? e->object : "-", e->statement);
        }
    }
    if (!json)
        fprintf(stderr, "tsi audit: %zu schema change(s) in %d log file(s) of %s\n", es.n - first,
                files, dir);
    free(es.v);
    tsi_opts_free(&o);
    return 0;
}
