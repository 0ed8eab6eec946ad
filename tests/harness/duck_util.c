/* tests/harness/duck_util.c — see duck_util.h */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "duck_util.h"

void duck_query(duckdb_connection con, const char *sql, duckdb_result *res)
{
    duckdb_result tmp;
    duckdb_result *r = res ? res : &tmp;
    if (duckdb_query(con, sql, r) == DuckDBError)
        fail_msg("duckdb: %s\n%s", duckdb_result_error(r), sql);
    if (!res)
        duckdb_destroy_result(&tmp);
}
