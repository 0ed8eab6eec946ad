/* The Prometheus alert rules of docs/operations.md (issue 31): the block between
 * <!-- alerts:begin --> and <!-- alerts:end --> is written to a file and must pass
 * `promtool check rules` (Debian `prometheus`; scripts/deps and scripts/test install
 * it: a missing promtool fails the test, it is never skipped), and every tsi_ metric an
 * expression names must be one that src/db/status.c exports (a renamed metric would
 * leave an alert that never fires). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/proc.h"
#include "harness.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void test_alert_rules(void **state)
{
    (void)state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/docs/operations.md", th_source_dir());
    char *doc = slurp(path);
    const char *b = strstr(doc, "<!-- alerts:begin -->\n```yaml\n");
    const char *e = strstr(doc, "```\n<!-- alerts:end -->");
    assert_non_null(b);
    assert_non_null(e);
    b += strlen("<!-- alerts:begin -->\n```yaml\n");
    assert_true(e > b);
    char rules[] = "/tmp/tsi-alerts-XXXXXX.yml";
    int fd = mkstemps(rules, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, (size_t)(e - b)), (ssize_t)(e - b));
    close(fd);

    if (access("/usr/bin/promtool", X_OK) != 0)
        fail_msg("promtool is missing: apt-get install prometheus (scripts/deps installs it)");
    static char out[1 << 14];
    char *argv[] = {"promtool", "check", "rules", rules, NULL};
    int rc = tsi_proc_run(argv, NULL, out, sizeof out, NULL);
    unlink(rules);
    if (rc != 0)
        fail_msg("promtool check rules refused docs/operations.md's alerts:\n%s", out);
    assert_non_null(strstr(out, "SUCCESS: 10 rules found"));

    /* every tsi_ metric the rules name is exported by tsi status --metrics */
    snprintf(path, sizeof path, "%s/src/db/status.c", th_source_dir());
    char *src = slurp(path);
    int names = 0;
    for (const char *p = b; p < e && (p = strstr(p, "tsi_")) != NULL && p < e;) {
        char name[128];
        size_t n = 0;
        while ((isalnum((unsigned char)p[n]) || p[n] == '_') && n < sizeof name - 3)
            n++;
        snprintf(name, sizeof name, "\"%.*s\"", (int)n, p);
        if (!strstr(src, name))
            fail_msg("the alert rules name %s, which src/db/status.c does not export", name);
        names++;
        p += n;
    }
    /* tsi_backup_last_success_timestamp_seconds x3, _recovery_window_seconds,
     * _info_refreshed_timestamp_seconds, _info_refresh_failed, tsi_wal_archive_failed_total,
     * tsi_wal_archiving; the HA formation's tsi_ha_secondaries, _failovers_total, _primary,
     * _monitor_up (issue 30) */
    assert_int_equal(names, 12);
    free(src);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alert_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
