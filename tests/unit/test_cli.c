/* The tsi command line: --help on every level, --version, bad flags exit 2 with a one-line
 * message naming the flag, and the README's configuration section equals
 * `tsi config --markdown` (so the documentation cannot drift from the table). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "harness.h"

static char out[1 << 16];

static int tsi(const char *const *args)
{
    return th_run_tsi(args, NULL, out, sizeof out);
}

static void test_version_and_help(void **state)
{
    (void)state;
    assert_int_equal(tsi((const char *[]){"--version", NULL}), 0);
    assert_non_null(strstr(out, "tsi " TSI_VERSION));
    assert_int_equal(tsi((const char *[]){"--help", NULL}), 0);
    /* every registered command is listed and answers --help with exit 0 */
    for (const tsi_command *c = tsi_commands; c->name; c++) {
        assert_int_equal(tsi((const char *[]){"--help", NULL}), 0);
        assert_non_null(strstr(out, c->name));
        int rc = tsi((const char *[]){c->name, "--help", NULL});
        if (rc != 0)
            fail_msg("tsi %s --help exited %d: %s", c->name, rc, out);
        assert_true(strstr(out, "usage:") != NULL || strstr(out, "Usage") != NULL);
    }
    assert_int_equal(tsi((const char *[]){"db", "start", "--help", NULL}), 0);
    assert_non_null(strstr(out, "--pg-port"));
    assert_non_null(strstr(out, "TSI_PG_PORT"));
}

static const struct {
    const char *args[6];
    const char *want; /* a piece of the one-line message */
} bad[] = {
    {{"nosuchcommand", NULL}, "unknown command 'nosuchcommand'"},
    {{"db", "nosuch", NULL}, "unknown command 'nosuch'"},
    {{"db", "start", "--bogus", NULL}, "unknown option: '--bogus'"},
    {{"db", "start", "--pg-port", "99999", NULL}, "out of range"},
    {{"db", "start", "--pg-port", "12ab", NULL}, "not an integer"},
    {{"db", "url", "--role", "root", NULL}, "not one of the allowed values"},
    {{"migrate", "--status=maybe", NULL}, "not a boolean"},
    {{"migrate", "extra", NULL}, "unexpected argument: 'extra'"},
    {{"db", "start", "--pg-port", NULL}, "option needs a value"},
    {{"config", "--log-level", "loud", NULL}, "not one of the allowed values"},
};

static void test_bad_flags_exit_2(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tsi(bad[i].args);
        if (rc != 2 || strstr(out, bad[i].want) == NULL)
            fail_msg("case %zu: exit %d, output: %s", i, rc, out);
        /* one line */
        char *nl = strchr(out, '\n');
        assert_true(nl == NULL || nl[1] == '\0');
    }
    assert_int_equal(tsi((const char *[]){NULL}), 2);
}

static void test_config_file_with_secret_refused(void **state)
{
    (void)state;
    char path[] = "/tmp/tsi-cli-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("log-level = warn\ndatabase_password = x\n", f);
    fclose(f);
    int rc = tsi((const char *[]){"config", "--config", path, NULL});
    unlink(path);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "secrets are not read from configuration files"));
}

/* A misspelt key in a configuration file: exit 2, one line naming the file, the line and
 * the nearest known key; a key of another command in the shared file is accepted. */
static const struct {
    const char *text;
    const char *args[4]; /* the command; --config FILE is appended */
    int want;
    const char *line;    /* ":N '" in the message */
    const char *nearest; /* the suggestion */
} misspelt[] = {
    {"log-level = warn\nlog-levle = warn\n", {"config", NULL}, 2, ":2 'log-levle'", "'log-level'"},
    {"# jobs\nlock-timout-ms = 20\n",
     {"jobs", "run", NULL},
     2,
     ":2 'lock-timout-ms'",
     "'lock-timeout-ms'"},
    {"data-quality-retention-day = 30\n",
     {"jobs", "status", NULL},
     2,
     ":1 'data-quality-retention-day'",
     "'data-quality-retention-days'"},
    {"pg_port = 5432\n", {"db", "url", NULL}, 2, ":1 'pg_port'", "'pg-port'"},
    {"pg-port = 5432\nlock-timeout-ms = 20\n", {"config", NULL}, 0, NULL, NULL},
};

static void test_config_file_misspelt_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof misspelt / sizeof misspelt[0]; i++) {
        char path[] = "/tmp/tsi-cli-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        FILE *f = fdopen(fd, "w");
        fputs(misspelt[i].text, f);
        fclose(f);
        const char *args[8] = {NULL};
        size_t n = 0;
        for (; misspelt[i].args[n]; n++)
            args[n] = misspelt[i].args[n];
        args[n++] = "--config";
        args[n++] = path;
        int rc = tsi(args);
        unlink(path);
        if (rc != misspelt[i].want)
            fail_msg("case %zu: exit %d, expected %d: %s", i, rc, misspelt[i].want, out);
        if (misspelt[i].want == 0)
            continue;
        char where[64];
        snprintf(where, sizeof where, "%s%s", path, misspelt[i].line);
        if (!strstr(out, "unknown configuration key") || !strstr(out, where) ||
            !strstr(out, misspelt[i].nearest))
            fail_msg("case %zu: message lacks the file:line, key or nearest key (%s, %s): %s", i,
                     where, misspelt[i].nearest, out);
        char *nl = strchr(out, '\n');
        assert_true(nl == NULL || nl[1] == '\0');
    }
}

static void test_readme_config_section(void **state)
{
    (void)state;
    assert_int_equal(tsi((const char *[]){"config", "--markdown", NULL}), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/README.md", th_source_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char readme[1 << 18];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    fclose(f);
    readme[n] = '\0';
    const char *b = strstr(readme, "<!-- config:begin -->\n");
    const char *e = strstr(readme, "<!-- config:end -->");
    assert_non_null(b);
    assert_non_null(e);
    b += strlen("<!-- config:begin -->\n");
    size_t len = (size_t)(e - b);
    if (len != strlen(out) || memcmp(b, out, len) != 0)
        fail_msg("README.md's configuration section differs from `tsi config --markdown`: "
                 "regenerate it with scripts/gen-readme-config");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_bad_flags_exit_2),
        cmocka_unit_test(test_config_file_with_secret_refused),
        cmocka_unit_test(test_config_file_misspelt_key),
        cmocka_unit_test(test_readme_config_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
