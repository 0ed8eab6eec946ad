/* Unit tests of the operations room's parsers (issue 17): recovery target times,
 * paths that go into archive_command, pgaudit log records, Prometheus label escaping.
 * Expected values are written by hand from the formats' definitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "ops/audit.h"
#include "ops/backup.h"
#include "db/status.h"

static void test_parse_time_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"2026-11-25 10:42:48", "2026-11-25 10:42:48+00:00"},
        {"2026-11-25T10:42:48Z", "2026-11-25 10:42:48+00:00"},
        {"2026-11-25 10:42:48.040379+00", "2026-11-25 10:42:48.040379+00:00"},
        {"2026-11-25 10:42:48.5-05:30", "2026-11-25 10:42:48.5-05:30"},
        {"2026-11-25 10:42:48+0200", "2026-11-25 10:42:48+02:00"},
        {"2026-11-25 10:42:48 UTC", "2026-11-25 10:42:48+00:00"},
        {"2024-02-29 23:59:59", "2024-02-29 23:59:59+00:00"}, /* leap year */
        {"2000-02-29 00:00:00", "2000-02-29 00:00:00+00:00"}, /* divisible by 400 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[48];
        tsi_error e = {0};
        int rc = tsi_backup_parse_time(cases[i].in, out, sizeof out, &e);
        if (rc != 0)
            fail_msg("'%s' refused: %s %s", cases[i].in, e.message, e.detail);
        assert_string_equal(out, cases[i].want);
    }
}

static void test_parse_time_hostile(void **state)
{
    (void)state;
    char longer[200];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    const char *bad[] = {
        "",
        "now",
        "2026-11-25",                         /* no time */
        "2026-02-29 00:00:00",                /* not a leap year */
        "1900-02-29 00:00:00",                /* century, not leap; and before 1970 */
        "1969-12-31 23:59:59",                /* before the epoch */
        "2026-13-01 00:00:00",                /* month */
        "2026-11-31 00:00:00",                /* November has 30 days */
        "2026-11-25 24:00:00",                /* hour */
        "2026-11-25 10:60:00",                /* minute */
        "2026-11-25 10:42:48.1234567",        /* 7 fraction digits */
        "2026-11-25 10:42:48.",               /* empty fraction */
        "2026-11-25 10:42:48+25",             /* zone hours */
        "2026-11-25 10:42:48+05:3",           /* half a zone minute */
        "2026-11-25 10:42:48 PST",            /* named zones other than UTC */
        "2026-11-25 10:42:48'; DROP TABLE x", /* injection */
        "2026-11-25 10:42:48\n",              /* trailing newline */
        " 2026-11-25 10:42:48",               /* leading space */
        "2026-1-25 10:42:48",                 /* short month */
        "２０２６-11-25 10:42:48",            /* full-width digits (UTF-8) */
        longer,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[48] = "untouched";
        tsi_error e = {0};
        if (tsi_backup_parse_time(bad[i], out, sizeof out, &e) != TSI_E_INVALID)
            fail_msg("accepted '%s' as '%s'", bad[i], out);
        assert_int_equal(e.code, TSI_E_INVALID);
    }
    char out[48];
    assert_int_equal(tsi_backup_parse_time(NULL, out, sizeof out, NULL), TSI_E_INVALID);
}

static void test_path_ok(void **state)
{
    (void)state;
    assert_true(tsi_backup_path_ok("/var/lib/tsi/backup"));
    assert_true(tsi_backup_path_ok("/tmp/tsi-test.Ab_12/home/backup"));
    assert_false(tsi_backup_path_ok("backup"));             /* relative */
    assert_false(tsi_backup_path_ok(""));                   /* empty */
    assert_false(tsi_backup_path_ok(NULL));                 /* none */
    assert_false(tsi_backup_path_ok("/tmp/a b"));           /* splits in the shell */
    assert_false(tsi_backup_path_ok("/tmp/a'b"));           /* ends the conf string */
    assert_false(tsi_backup_path_ok("/tmp/$(reboot)"));     /* shell expansion */
    assert_false(tsi_backup_path_ok("/tmp/x;rm -rf /"));    /* command separator */
    assert_false(tsi_backup_path_ok("/tmp/a\nb"));          /* newline in a conf file */
    assert_false(tsi_backup_path_ok("/tmp/../etc/backup")); /* climbing */
    assert_false(tsi_backup_path_ok("/tmp/%p"));            /* archive_command escape */
}

static void test_audit_records(void **state)
{
    (void)state;
    tsi_audit_entry e;
    /* a real line of the embedded cluster (prefix '%m [%p] %q%u@%d ') */
    const char *l1 = "2026-11-25 10:45:41.922 UTC [22063] tsi_owner@tsi LOG:  AUDIT: "
                     "SESSION,1,1,DDL,CREATE TABLE,TABLE,\"public.\"\"we2,ird\"\"\",\"create "
                     "table \"\"we2,ird\"\"(a int); alter table \"\"we2,ird\"\" add column b "
                     "text\",<not logged>";
    assert_int_equal(tsi_audit_parse_record(l1, &e), 1);
    assert_string_equal(e.time, "2026-11-25 10:45:41.922 UTC");
    assert_int_equal((long long)e.when, 1795603541LL); /* date -u -d '2026-11-25 10:45:41' +%s */
    assert_string_equal(e.role, "tsi_owner");
    assert_string_equal(e.database, "tsi");
    assert_string_equal(e.audit_class, "DDL");
    assert_string_equal(e.command, "CREATE TABLE");
    assert_string_equal(e.object_type, "TABLE");
    assert_string_equal(e.object, "public.\"we2,ird\"");
    assert_string_equal(
        e.statement, "create table \"we2,ird\"(a int); alter table \"we2,ird\" add column b text");

    /* a statement over two lines (continuation starts with a tab), no object */
    const char *l2 = "2026-11-25 10:45:37.307 UTC [21987] postgres@t_1 LOG:  AUDIT: "
                     "SESSION,3,1,DDL,CREATE INDEX,,,\"create index on t(a)\n\t where a > 1\","
                     "<not logged>";
    assert_int_equal(tsi_audit_parse_record(l2, &e), 1);
    assert_string_equal(e.role, "postgres");
    assert_string_equal(e.database, "t_1");
    assert_string_equal(e.command, "CREATE INDEX");
    assert_string_equal(e.object_type, "");
    assert_string_equal(e.object, "");
    assert_string_equal(e.statement, "create index on t(a)\n\t where a > 1");
}

static void test_audit_hostile(void **state)
{
    (void)state;
    tsi_audit_entry e;
    const char *not_audit[] = {
        NULL,
        "",
        "garbage",
        /* a plain log line */
        "2026-11-25 10:42:59.559 UTC [18874] LOG:  pgaudit extension initialized",
        /* an error's STATEMENT line that quotes an audit line: must not be believed */
        "2026-11-25 10:45:41.922 UTC [22063] tsi_reader@tsi STATEMENT:  SELECT 'x LOG:  "
        "AUDIT: SESSION,1,1,DDL,DROP TABLE,TABLE,public.intersections,drop,<x>'",
        /* a forged AUDIT tag after another severity */
        "2026-11-25 10:45:41.922 UTC [22063] tsi_reader@tsi ERROR:  LOG:  AUDIT: "
        "SESSION,1,1,DDL,DROP TABLE,TABLE,x,y,z",
        /* truncated at every structural point */
        "2026-11-25 10:45:41.922 UTC [22063",
        "2026-11-25 10:45:41.922 UTC [22063] tsi_owner@tsi",
        "2026-11-25 10:45:41.922 UTC [22063] tsi_owner@tsi LOG:  AUDIT: ",
        "2026-11-25 10:45:41.922 UTC [22063] tsi_owner@tsi LOG:  AUDIT: SESSION,1,1,DDL,",
        /* non-numeric statement ids */
        "2026-11-25 10:45:41.922 UTC [22063] tsi_owner@tsi LOG:  AUDIT: SESSION,x,1,DDL,CREATE "
        "TABLE,,,s,<not logged>",
        /* unknown audit type */
        "2026-11-25 10:45:41.922 UTC [22063] tsi_owner@tsi LOG:  AUDIT: EVIL,1,1,DDL,CREATE "
        "TABLE,,,s,<not logged>",
        /* bad dates and pid */
        "2026-13-25 10:45:41.922 UTC [22063] tsi_owner@tsi LOG:  AUDIT: SESSION,1,1,DDL,C,,,s,x",
        "2026-11-25 10:45:41.922 UTC [abc] tsi_owner@tsi LOG:  AUDIT: SESSION,1,1,DDL,C,,,s,x",
        /* no user@db */
        "2026-11-25 10:45:41.922 UTC [22063] LOG:  AUDIT: SESSION,1,1,DDL,C,,,s,x",
    };
    for (size_t i = 0; i < sizeof not_audit / sizeof not_audit[0]; i++)
        if (tsi_audit_parse_record(not_audit[i], &e) != 0)
            fail_msg("took record %zu as an audit line: %s", i, e.command);

    /* an unterminated quote runs to the end of the record and stops there */
    const char *open_quote = "2026-11-25 10:45:41.922 UTC [1] a@b LOG:  AUDIT: "
                             "SESSION,1,1,DDL,CREATE TABLE,TABLE,\"public.x";
    assert_int_equal(tsi_audit_parse_record(open_quote, &e), 1);
    assert_string_equal(e.object, "public.x");
    assert_string_equal(e.statement, "");

    /* oversized fields are truncated, never overflow */
    size_t n = 20000;
    char *big = malloc(n + 200);
    int k = snprintf(big, 200,
                     "2026-11-25 10:45:41.922 UTC [1] %s@b LOG:  AUDIT: "
                     "SESSION,1,1,DDL,CREATE TABLE,TABLE,",
                     "r");
    memset(big + k, 'x', n);
    strcpy(big + k + n, ",stmt,<not logged>");
    assert_int_equal(tsi_audit_parse_record(big, &e), 1);
    assert_int_equal(strlen(e.object), sizeof e.object - 1);
    assert_string_equal(e.statement, "stmt");
    /* a role longer than its field */
    memset(big, 0, n + 200);
    k = snprintf(big, 200, "2026-11-25 10:45:41.922 UTC [1] ");
    memset(big + k, 'r', 300);
    strcpy(big + k + 300, "@db LOG:  AUDIT: SESSION,1,1,DDL,DROP TABLE,TABLE,t,s,x");
    assert_int_equal(tsi_audit_parse_record(big, &e), 1);
    assert_int_equal(strlen(e.role), sizeof e.role - 1);
    assert_string_equal(e.command, "DROP TABLE");
    free(big);
}

static void test_label_escape(void **state)
{
    (void)state;
    tsi_buf b = TSI_BUF_INIT;
    tsi_status_label_escape(&b, "a\"b\\c\nd");
    assert_string_equal(tsi_buf_cstr(&b), "a\\\"b\\\\c\\nd");
    tsi_buf_reset(&b);
    tsi_status_label_escape(&b, NULL);
    assert_string_equal(tsi_buf_cstr(&b), "");
    tsi_buf_free(&b);
}

/* The exposition of a hand-made status: every family once, HELP before TYPE before its
 * samples, labels escaped, optional families absent when their facts are. */
static void test_prometheus_shape(void **state)
{
    (void)state;
    tsi_status s;
    memset(&s, 0, sizeof s);
    snprintf(s.database, sizeof s.database, "tsi");
    s.database_bytes = 1234;
    s.standby_delay_s = -1;
    s.wal_last_archived_age_s = -1;
    tsi_status_table t = {.name = "weird\"name",
                          .parent = "",
                          .total_bytes = 30,
                          .heap_bytes = 10,
                          .index_bytes = 20,
                          .rows = 7};
    s.tables = &t;
    s.ntables = 1;
    tsi_status_job j = {.name = "hourly", .last_success_age_s = -1, .source = "pg_cron"};
    s.jobs = &j;
    s.njobs = 1;
    tsi_buf b = TSI_BUF_INIT;
    tsi_status_prometheus(&s, &b);
    const char *txt = tsi_buf_cstr(&b);
    assert_non_null(strstr(txt, "tsi_db_size_bytes{database=\"tsi\"} 1234\n"));
    assert_non_null(
        strstr(txt, "tsi_db_table_bytes{table=\"weird\\\"name\",parent=\"\",kind=\"index\"} 20\n"));
    assert_non_null(strstr(txt, "tsi_db_table_rows{table=\"weird\\\"name\",parent=\"\"} 7\n"));
    assert_non_null(strstr(txt, "tsi_job_succeeded{job=\"hourly\",source=\"pg_cron\"} 0\n"));
    /* never succeeded: no age sample; not archiving yet: no last-archived age; no spool */
    assert_null(strstr(txt, "tsi_job_last_success_age_seconds{"));
    assert_null(strstr(txt, "tsi_wal_last_archived_age_seconds"));
    assert_null(strstr(txt, "tsi_spool_files"));
    assert_null(strstr(txt, "tsi_db_standby_delay_seconds"));
    /* each family's TYPE appears exactly once */
    const char *p = txt;
    int types = 0, helps = 0;
    while ((p = strstr(p, "# TYPE ")) != NULL) {
        types++;
        p++;
    }
    p = txt;
    while ((p = strstr(p, "# HELP ")) != NULL) {
        helps++;
        p++;
    }
    assert_int_equal(types, helps);
    assert_non_null(strstr(txt, "# TYPE tsi_db_table_bytes gauge\n"));
    /* the table's family is contiguous: its last sample comes before the next HELP */
    const char *fam = strstr(txt, "# TYPE tsi_db_table_bytes gauge\n");
    const char *next = strstr(fam + 1, "# HELP ");
    const char *last = strstr(fam, "kind=\"total\"} 30\n");
    assert_non_null(last);
    assert_true(last < next);
    tsi_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_time_valid), cmocka_unit_test(test_parse_time_hostile),
        cmocka_unit_test(test_path_ok),          cmocka_unit_test(test_audit_records),
        cmocka_unit_test(test_audit_hostile),    cmocka_unit_test(test_label_escape),
        cmocka_unit_test(test_prometheus_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
