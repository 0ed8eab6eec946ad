/* base/options.h — configuration as one declarative table per command.
 *
 * A table of tsi_option (terminated by an entry with name == NULL) drives parsing,
 * `--help` and the generated configuration section of the README (`tsi config
 * --markdown`). Values come from, in order of precedence: command-line flags,
 * environment variables, the `key = value` file named by --config / TSI_CONFIG, and
 * the default. Every command also accepts the global options of tsi_global_options.
 *
 * Secrets never come from flags or the config file: a config key that looks like a
 * secret (password, secret, token) is refused with a clear error. The file is shared by
 * every command, so a key of another command's table is skipped; a key known to no table
 * (a typo) is refused with the file, the line and the nearest known key (exit 2).
 *
 * Ownership: tsi_opts owns copies of every value; free with tsi_opts_free(). Positional
 * arguments are borrowed from argv. */
#ifndef TSI_BASE_OPTIONS_H
#define TSI_BASE_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "base/error.h"

typedef enum {
    TSI_OPT_STRING,
    TSI_OPT_PATH,
    TSI_OPT_INT,    /* range in `choices` as "min..max" (optional) */
    TSI_OPT_DOUBLE, /* range in `choices` as "min..max" (optional) */
    TSI_OPT_BOOL,   /* a flag: --name sets true; env/config accept 1/0/true/false/yes/no */
    TSI_OPT_ENUM,   /* choices "a|b|c" */
} tsi_opt_type;

typedef struct tsi_option {
    const char *name; /* --name, and the config file key */
    tsi_opt_type type;
    const char *def;     /* default as text; NULL = unset */
    const char *env;     /* environment variable, or NULL */
    const char *help;    /* one line */
    const char *choices; /* ENUM: "a|b"; INT/DOUBLE: "min..max"; else NULL */
} tsi_option;

#define TSI_OPTS_MAX 64
#define TSI_ARGS_MAX 64

typedef struct tsi_opts {
    const char *command; /* "tsi db start", for messages */
    size_t n;
    const tsi_option *spec[TSI_OPTS_MAX];
    char *value[TSI_OPTS_MAX];        /* NULL = unset */
    const char *source[TSI_OPTS_MAX]; /* "flag", "env", "config", "default" */
    int nargs;
    char *args[TSI_ARGS_MAX];
} tsi_opts;

extern const tsi_option tsi_global_options[];

/* Parses argv[1..argc-1] (argv[0] is ignored) against spec + the global options.
 * Returns 0 on success, 1 when --help was given (help already printed to stdout),
 * TSI_E_INVALID on a bad flag or value (a one-line message on stderr naming it: the
 * caller exits 2); in both cases nothing is left to free. `usage` is the synopsis line printed by
 * --help; `max_args` bounds the positional arguments. Also applies --log-level. */
int tsi_opts_parse(tsi_opts *o, const char *command, const char *usage, const tsi_option *spec,
                   int max_args, int argc, char **argv);
void tsi_opts_free(tsi_opts *o);

/* Accessors by option name; abort() on a name not in the table (a programming error). */
const char *tsi_opts_str(const tsi_opts *o, const char *name); /* NULL when unset */
long long tsi_opts_int(const tsi_opts *o, const char *name);   /* 0 when unset */
double tsi_opts_double(const tsi_opts *o, const char *name);   /* 0 when unset */
bool tsi_opts_bool(const tsi_opts *o, const char *name);
bool tsi_opts_isset(const tsi_opts *o, const char *name);

/* Registers every option table of the program (a NULL-terminated array of tables,
 * borrowed: it must outlive every parse) for the configuration file check. main()
 * registers the tables of commands.c; until something is registered, only the command's
 * own table and the global options are known. NULL unregisters. */
void tsi_opts_set_known_tables(const tsi_option *const *tables);

/* The known option name nearest to key (edit distance, a swap of two neighbours counting
 * one): the parsed command's own table first, then the global options, then the
 * registered tables; NULL when nothing is known. Borrowed from the tables. */
const char *tsi_opts_nearest_key(const tsi_opts *o, const char *key);

/* Prints the --help text of a table. */
void tsi_opts_print_help(FILE *out, const char *usage, const tsi_option *spec);

/* Validates one value against its option; returns 0 or TSI_E_INVALID with err set. */
int tsi_opts_check_value(const tsi_option *opt, const char *value, tsi_error *err);

/* The tsi home directory (--home / TSI_HOME, default ./var) as an absolute path. */
const char *tsi_home(void);
/* The environment variable `name`, or NULL when it is unset or empty (an empty value
 * counts as unset everywhere tsi reads its own variables). */
const char *tsi_env(const char *name);
/* The global database timeouts (--db-connect-timeout, --db-tcp-timeout-ms), as the last
 * parse set them (defaults 2 s and 2000 ms before any): db/conn.c applies them to every
 * connection. */
int tsi_db_connect_timeout_s(void);
int tsi_db_tcp_timeout_ms(void);

#endif
