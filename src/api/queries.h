/* api/queries.h — the API's SQL, as named prepared statements (queries.c).
 *
 * Ownership: static text; tsi_api_prepare() prepares every statement on a new
 * connection (the pool's, pool.c). Every result column has a name of its own (an alias
 * for each expression) and the handlers read columns by those names, never by position
 * (h_common.h's tsi_hc_cols, looked up once per result): reordering a SELECT cannot shift
 * values; renaming a column the code reads answers 500 and logs the missing name. */
#ifndef TSI_API_QUERIES_H
#define TSI_API_QUERIES_H

#include <libpq-fe.h>

typedef struct tsi_api_stmt {
    const char *name;
    const char *sql;
} tsi_api_stmt;

extern const tsi_api_stmt tsi_api_stmts[]; /* terminated by name == NULL */

/* Prepares every statement on a fresh connection (borrowed); returns 0 or -1. */
int tsi_api_prepare(PGconn *c);

#endif
