/* api/queries.h — the API's SQL, as named prepared statements (queries.c).
 *
 * Ownership: static text; tsi_api_prepare() (api.h) prepares every statement on a new
 * connection. Column order of each result is documented beside its SQL in queries.c. */
#ifndef TSI_API_QUERIES_H
#define TSI_API_QUERIES_H

typedef struct tsi_api_stmt {
    const char *name;
    const char *sql;
} tsi_api_stmt;

extern const tsi_api_stmt tsi_api_stmts[]; /* terminated by name == NULL */

#endif
