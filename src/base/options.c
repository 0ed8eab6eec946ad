/* base/options.c — see options.h */
#include "base/options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"

const tsi_option tsi_global_options[] = {
    {"config", TSI_OPT_PATH, NULL, "TSI_CONFIG", "configuration file of `key = value` lines", NULL},
    {"log-level", TSI_OPT_ENUM, "info", "TSI_LOG_LEVEL", "least severe log level written to stderr",
     "debug|info|warn|error|off"},
    {"home", TSI_OPT_PATH, "./var", "TSI_HOME",
     "directory for everything tsi keeps on disk (pg/, archive/, spool/)", NULL},
    {"db-connect-timeout", TSI_OPT_INT, "2", "TSI_DB_CONNECT_TIMEOUT",
     "seconds a database connection may take to open (libpq connect_timeout; 2 is its least)",
     "2..600"},
    {"db-tcp-timeout-ms", TSI_OPT_INT, "2000", "TSI_DB_TCP_TIMEOUT_MS",
     "a database connection whose sent data stays unacknowledged this long, or whose idle "
     "keepalives go unanswered as long, is dead (tcp_user_timeout and keepalives; 0: the "
     "kernel's)",
     "0..600000"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

static int db_connect_timeout = 2, db_tcp_timeout_ms = 2000;

int tsi_db_connect_timeout_s(void)
{
    return db_connect_timeout;
}

int tsi_db_tcp_timeout_ms(void)
{
    return db_tcp_timeout_ms;
}

static char home_abs[PATH_MAX];

const char *tsi_env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

const char *tsi_home(void)
{
    if (home_abs[0] == '\0') {
        const char *h = getenv("TSI_HOME");
        if (h == NULL || *h == '\0')
            h = "./var";
        if (h[0] == '/') {
            snprintf(home_abs, sizeof home_abs, "%s", h);
        } else {
            char cwd[PATH_MAX];
            if (getcwd(cwd, sizeof cwd) == NULL)
                snprintf(cwd, sizeof cwd, ".");
            if (strncmp(h, "./", 2) == 0)
                h += 2;
            snprintf(home_abs, sizeof home_abs, "%s/%s", cwd, h);
        }
    }
    return home_abs;
}

static void set_home(const char *h)
{
    home_abs[0] = '\0';
    setenv("TSI_HOME", h, 1);
    (void)tsi_home();
}

static int find(const tsi_opts *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->spec[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static int parse_range(const char *choices, double *lo, double *hi)
{
    if (choices == NULL)
        return 0;
    const char *dots = strstr(choices, "..");
    if (dots == NULL)
        return 0;
    *lo = strtod(choices, NULL);
    *hi = strtod(dots + 2, NULL);
    return 1;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return (*out = true), true;
        if (strcasecmp(v, no[i]) == 0)
            return (*out = false), true;
    }
    return false;
}

int tsi_opts_check_value(const tsi_option *opt, const char *v, tsi_error *err)
{
    double lo, hi;
    switch (opt->type) {
    case TSI_OPT_STRING:
    case TSI_OPT_PATH:
        if (opt->type == TSI_OPT_PATH && *v == '\0')
            return tsi_error_set(err, TSI_E_INVALID, "empty path", "--%s", opt->name);
        return 0;
    case TSI_OPT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (*v == '\0' || *end != '\0' || errno)
            return tsi_error_set(err, TSI_E_INVALID, "not an integer", "--%s '%s'", opt->name, v);
        if (parse_range(opt->choices, &lo, &hi) && ((double)x < lo || (double)x > hi))
            return tsi_error_set(err, TSI_E_INVALID, "out of range", "--%s %lld (allowed %s)",
                                 opt->name, x, opt->choices);
        return 0;
    }
    case TSI_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno || !isfinite(x))
            return tsi_error_set(err, TSI_E_INVALID, "not a number", "--%s '%s'", opt->name, v);
        if (parse_range(opt->choices, &lo, &hi) && (x < lo || x > hi))
            return tsi_error_set(err, TSI_E_INVALID, "out of range", "--%s %g (allowed %s)",
                                 opt->name, x, opt->choices);
        return 0;
    }
    case TSI_OPT_BOOL: {
        bool b;
        if (!parse_bool(v, &b))
            return tsi_error_set(err, TSI_E_INVALID, "not a boolean", "--%s '%s'", opt->name, v);
        return 0;
    }
    case TSI_OPT_ENUM: {
        size_t n = strlen(v);
        for (const char *c = opt->choices; c && *c;) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && strncmp(c, v, n) == 0)
                return 0;
            if (!bar)
                break;
            c = bar + 1;
        }
        return tsi_error_set(err, TSI_E_INVALID, "not one of the allowed values",
                             "--%s '%s' (allowed %s)", opt->name, v, opt->choices);
    }
    }
    return tsi_error_set(err, TSI_E_INTERNAL, "unknown option type", NULL);
}

static int assign(tsi_opts *o, int i, const char *v, const char *source, tsi_error *err)
{
    if (tsi_opts_check_value(o->spec[i], v, err) < 0)
        return TSI_E_INVALID;
    free(o->value[i]);
    o->value[i] = strdup(v);
    o->source[i] = source;
    return o->value[i] ? 0 : TSI_E_NOMEM;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static bool looks_secret(const char *key)
{
    static const char *const words[] = {"password", "passwd", "secret", "token", "credential"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(key, words[i]))
            return true;
    return false;
}

static const tsi_option *const *known_tables;

void tsi_opts_set_known_tables(const tsi_option *const *tables)
{
    known_tables = tables;
}

/* Optimal string alignment distance (insert, delete, substitute, swap of neighbours),
 * bounded: keys longer than KEY_MAX compare as their first KEY_MAX bytes. */
#define KEY_MAX 64
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strnlen(a, KEY_MAX), lb = strnlen(b, KEY_MAX);
    size_t d[KEY_MAX + 1][KEY_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static bool known_elsewhere(const char *key)
{
    for (size_t t = 0; known_tables && known_tables[t]; t++)
        for (const tsi_option *p = known_tables[t]; p->name; p++)
            if (strcmp(p->name, key) == 0)
                return true;
    return false;
}

const char *tsi_opts_nearest_key(const tsi_opts *o, const char *key)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < o->n; i++) { /* the command's own table, then the globals */
        size_t d = edit_distance(key, o->spec[i]->name);
        if (d < best_d)
            best = o->spec[i]->name, best_d = d;
    }
    for (size_t t = 0; known_tables && known_tables[t]; t++) {
        for (const tsi_option *p = known_tables[t]; p->name; p++) {
            size_t d = edit_distance(key, p->name);
            if (d < best_d)
                best = p->name, best_d = d;
        }
    }
    return best;
}

/* Reads a config file; keys of this command's table are applied unless already set by
 * a flag or the environment; keys of another command's table are skipped (the file is
 * shared); keys known to no table are refused, with the nearest known key. */
static int read_config(tsi_opts *o, const char *path, bool *from_flag, tsi_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot read configuration file", "%s: %s", path,
                             strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = tsi_error_set(err, TSI_E_INVALID, "configuration line is not `key = value`",
                               "%s:%d", path, lineno);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 &&
            ((val[0] == '"' && val[vl - 1] == '"') || (val[0] == '\'' && val[vl - 1] == '\''))) {
            val[vl - 1] = '\0';
            val++;
        }
        if (looks_secret(key)) {
            rc = tsi_error_set(err, TSI_E_INVALID,
                               "secrets are not read from configuration files; use the "
                               "environment or a libpq passfile",
                               "%s:%d key '%s'", path, lineno, key);
            break;
        }
        int i = find(o, key);
        if (i < 0 && known_elsewhere(key))
            continue; /* a key for another command: the file is shared by all of them */
        if (i < 0) {
            const char *near = tsi_opts_nearest_key(o, key);
            char shown[81]; /* the key as written, control bytes shown as '?' */
            size_t k = 0;
            for (; key[k] && k < sizeof shown - 1; k++)
                shown[k] = ((unsigned char)key[k] < 0x20 || key[k] == 0x7f) ? '?' : key[k];
            shown[k] = '\0';
            rc = tsi_error_set(err, TSI_E_INVALID, "unknown configuration key", "%s:%d '%s'%s%s%s",
                               path, lineno, shown, near ? " (nearest known key: '" : "",
                               near ? near : "", near ? "')" : "");
            break;
        }
        if (from_flag[i] || (o->spec[i]->env && getenv(o->spec[i]->env)))
            continue;
        if (assign(o, i, val, "config", err) < 0) {
            char d[sizeof err->detail];
            snprintf(d, sizeof d, "%s (%s:%d)", err->detail, path, lineno);
            snprintf(err->detail, sizeof err->detail, "%s", d);
            rc = TSI_E_INVALID;
            break;
        }
    }
    fclose(f);
    return rc;
}

void tsi_opts_free(tsi_opts *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->value[i]);
        o->value[i] = NULL;
    }
    o->n = 0;
}

static int fail(const tsi_opts *o, const tsi_error *e)
{
    char buf[800];
    fprintf(stderr, "%s: %s (see %s --help)\n", o->command, tsi_error_str(e, buf, sizeof buf),
            o->command);
    return TSI_E_INVALID;
}

static int parse_inner(tsi_opts *o, const char *command, const char *usage, const tsi_option *spec,
                       int max_args, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->command = command;
    for (const tsi_option *p = spec; p && p->name; p++)
        if (o->n < TSI_OPTS_MAX)
            o->spec[o->n++] = p;
    for (const tsi_option *p = tsi_global_options; p->name; p++)
        if (o->n < TSI_OPTS_MAX && find(o, p->name) < 0)
            o->spec[o->n++] = p;

    tsi_error e = {0};
    bool from_flag[TSI_OPTS_MAX] = {false};
    bool only_args = false;
    for (int a = 1; a < argc; a++) {
        char *arg = argv[a];
        if (only_args || arg[0] != '-' || arg[1] == '\0') {
            if (o->nargs >= max_args || o->nargs >= TSI_ARGS_MAX) {
                tsi_error_set(&e, TSI_E_INVALID, "unexpected argument", "'%s'", arg);
                return fail(o, &e);
            }
            o->args[o->nargs++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_args = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            tsi_opts_print_help(stdout, usage, spec);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            tsi_error_set(&e, TSI_E_INVALID, "unknown option", "'%s'", arg);
            return fail(o, &e);
        }
        char name[128];
        const char *val = NULL;
        const char *eq = strchr(arg + 2, '=');
        size_t nl = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nl >= sizeof name) {
            tsi_error_set(&e, TSI_E_INVALID, "unknown option", "'%.60s...'", arg);
            return fail(o, &e);
        }
        memcpy(name, arg + 2, nl);
        name[nl] = '\0';
        int i = find(o, name);
        if (i < 0) {
            tsi_error_set(&e, TSI_E_INVALID, "unknown option", "'--%s'", name);
            return fail(o, &e);
        }
        if (eq) {
            val = eq + 1;
        } else if (o->spec[i]->type == TSI_OPT_BOOL) {
            val = "true";
        } else {
            if (a + 1 >= argc) {
                tsi_error_set(&e, TSI_E_INVALID, "option needs a value", "'--%s'", name);
                return fail(o, &e);
            }
            val = argv[++a];
        }
        if (assign(o, i, val, "flag", &e) < 0)
            return fail(o, &e);
        from_flag[i] = true;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (from_flag[i] || !o->spec[i]->env)
            continue;
        const char *v = getenv(o->spec[i]->env);
        if (v && *v) {
            if (assign(o, (int)i, v, "env", &e) < 0) {
                char d[sizeof e.detail];
                snprintf(d, sizeof d, "%s (from %s)", e.detail, o->spec[i]->env);
                snprintf(e.detail, sizeof e.detail, "%s", d);
                return fail(o, &e);
            }
        }
    }
    const char *cfg = tsi_opts_str(o, "config");
    if (cfg && read_config(o, cfg, from_flag, &e) < 0)
        return fail(o, &e);
    for (size_t i = 0; i < o->n; i++)
        if (!o->value[i] && o->spec[i]->def &&
            assign(o, (int)i, o->spec[i]->def, "default", &e) < 0)
            return fail(o, &e);

    int lvl = tsi_log_parse_level(tsi_opts_str(o, "log-level"));
    if (lvl >= 0)
        tsi_log_set_level((enum tsi_log_level)lvl);
    if (strcmp(o->source[find(o, "home")], "default") != 0 || !getenv("TSI_HOME"))
        set_home(tsi_opts_str(o, "home"));
    db_connect_timeout = (int)tsi_opts_int(o, "db-connect-timeout");
    db_tcp_timeout_ms = (int)tsi_opts_int(o, "db-tcp-timeout-ms");
    return 0;
}

int tsi_opts_parse(tsi_opts *o, const char *command, const char *usage, const tsi_option *spec,
                   int max_args, int argc, char **argv)
{
    int rc = parse_inner(o, command, usage, spec, max_args, argc, argv);
    if (rc != 0)
        tsi_opts_free(o); /* on --help or error the caller has nothing to free */
    return rc;
}

static int index_or_abort(const tsi_opts *o, const char *name)
{
    int i = find(o, name);
    if (i < 0) {
        fprintf(stderr, "internal error: option '%s' is not in the table of %s\n", name,
                o->command);
        abort();
    }
    return i;
}

const char *tsi_opts_str(const tsi_opts *o, const char *name)
{
    return o->value[index_or_abort(o, name)];
}

bool tsi_opts_isset(const tsi_opts *o, const char *name)
{
    int i = index_or_abort(o, name);
    return o->value[i] != NULL && strcmp(o->source[i], "default") != 0;
}

long long tsi_opts_int(const tsi_opts *o, const char *name)
{
    const char *v = tsi_opts_str(o, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

double tsi_opts_double(const tsi_opts *o, const char *name)
{
    const char *v = tsi_opts_str(o, name);
    return v ? strtod(v, NULL) : 0.0;
}

bool tsi_opts_bool(const tsi_opts *o, const char *name)
{
    const char *v = tsi_opts_str(o, name);
    bool b = false;
    return v && parse_bool(v, &b) && b;
}

static void print_table(FILE *out, const tsi_option *spec)
{
    for (const tsi_option *p = spec; p && p->name; p++) {
        char flag[96];
        if (p->type == TSI_OPT_BOOL)
            snprintf(flag, sizeof flag, "--%s", p->name);
        else if (p->type == TSI_OPT_ENUM)
            snprintf(flag, sizeof flag, "--%s %s", p->name, p->choices);
        else
            snprintf(flag, sizeof flag, "--%s %s", p->name,
                     p->type == TSI_OPT_INT      ? "N"
                     : p->type == TSI_OPT_DOUBLE ? "X"
                     : p->type == TSI_OPT_PATH   ? "PATH"
                                                 : "S");
        fprintf(out, "  %-34s %s", flag, p->help);
        if (p->def)
            fprintf(out, " [default: %s]", p->def);
        if (p->env)
            fprintf(out, " [env: %s]", p->env);
        fputc('\n', out);
    }
}

void tsi_opts_print_help(FILE *out, const char *usage, const tsi_option *spec)
{
    fprintf(out, "%s\n", usage);
    if (spec && spec->name) {
        fprintf(out, "\nOptions:\n");
        print_table(out, spec);
    }
    fprintf(out, "\nGlobal options:\n");
    print_table(out, tsi_global_options);
    fprintf(out, "  %-34s %s\n", "--help", "show this help");
}
