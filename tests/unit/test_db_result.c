/* db/result.h: result columns read by name (issue 28). The results are built with libpq's
 * own result constructor (PQmakeEmptyPGresult, PQsetResultAttrs, PQsetvalue), the shape a
 * server's answer has; no database is needed. A missing column is found, logged and, when
 * read, ends the process (checked in a child). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/result.h"

/* A tuples result with the given column names and one row of values. */
static PGresult *make(const char *const *names, const char *const *row, int n)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(r);
    PGresAttDesc att[8];
    assert_true(n <= 8);
    memset(att, 0, sizeof att);
    for (int i = 0; i < n; i++) {
        att[i].name = (char *)names[i];
        att[i].typid = 25; /* text */
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    assert_int_equal(PQsetResultAttrs(r, n, att), 1);
    for (int i = 0; row && i < n; i++)
        assert_int_equal(PQsetvalue(r, 0, i, (char *)row[i], (int)strlen(row[i])), 1);
    return r;
}

static void test_columns_by_name(void **state)
{
    (void)state;
    /* the order of the SELECT does not matter: each value comes by its name */
    const char *names[] = {"status", "run_id", "error"};
    const char *row[] = {"ok", "42", ""};
    PGresult *r = make(names, row, 3);
    assert_int_equal(tsi_pq_col(r, "run_id"), 1);
    assert_int_equal(tsi_pq_col(r, "status"), 0);
    assert_string_equal(tsi_pq_get(r, 0, "run_id"), "42");
    assert_string_equal(tsi_pq_get(r, 0, "status"), "ok");
    assert_string_equal(tsi_pq_at(r, 0, tsi_pq_col(r, "error")), "");
    PQclear(r);
}

static void test_missing_and_hostile_names(void **state)
{
    (void)state;
    const char *names[] = {"job", "n_rows", "coalesce"};
    PGresult *r = make(names, NULL, 3);
    /* exact names only: no case folding, no prefixes, no quoting */
    static const char *const bad[] = {"Job", "JOB",  "jo",       "job ",        "\"job\"",
                                      "",    "rows", "n_rows\n", "coalesce(x)", "%s%s%n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(tsi_pq_col(r, bad[i]), -1);
    PQclear(r);
    /* a result without columns (a command's) has none of them */
    r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    assert_int_equal(tsi_pq_col(r, "job"), -1);
    PQclear(r);
}

/* reading a missing column ends the process (SIGABRT) instead of giving a wrong value */
static void test_missing_column_read_aborts(void **state)
{
    (void)state;
    const char *names[] = {"a"};
    const char *row[] = {"1"};
    for (int how = 0; how < 2; how++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            PGresult *r = make(names, row, 1);
            const char *v = how == 0 ? tsi_pq_get(r, 0, "b") : tsi_pq_at(r, 0, 7);
            printf("read %s\n", v);
            _exit(0);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGABRT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_by_name),
        cmocka_unit_test(test_missing_and_hostile_names),
        cmocka_unit_test(test_missing_column_read_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
