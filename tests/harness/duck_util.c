/* tests/harness/duck_util.c — see duck_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "duck_util.h"

#include <stdio.h>
#include <stdlib.h>

void duck_query(duckdb_connection con, const char *sql, duckdb_result *res)
{
    duckdb_result tmp;
    duckdb_result *r = res ? res : &tmp;
    if (duckdb_query(con, sql, r) == DuckDBError)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(r), sql);
    if (!res)
        duckdb_destroy_result(&tmp);
}

void duck_queryf(duckdb_connection con, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&sql, fmt, ap) < 0)
        fail_msg("vasprintf");
    va_end(ap);
    duck_query(con, sql, NULL);
    free(sql);
}
