/* db/result.h — result columns read by name, so a reordered or widened SELECT cannot
 * silently shift values.
 *
 * The SQL beside the code names every column it reads (an alias for an expression);
 * the code asks for the column by that name. A name the result lacks is a programming
 * error (the statement and its reader disagree): tsi_pq_col logs it with the columns the
 * result has and returns -1; tsi_pq_get aborts, so a test finds it at once rather than a
 * user seeing a wrong number. Use tsi_pq_col once per statement where a loop reads many
 * rows, tsi_pq_get where it reads one.
 *
 *   PGresult *r = PQexec(c, "SELECT job, coalesce(r.status, 'never') AS status FROM ...");
 *   int job = tsi_pq_col(r, "job"), status = tsi_pq_col(r, "status");
 *   for (int i = 0; i < PQntuples(r); i++) printf("%s %s\n", tsi_pq_at(r, i, job), ...);
 *
 * Ownership: nothing is kept; the result is borrowed. Thread-safe. */
#ifndef TSI_DB_RESULT_H
#define TSI_DB_RESULT_H

#include <libpq-fe.h>

/* The number of the column called name in r, or -1 (logged) when r has none. */
int tsi_pq_col(const PGresult *r, const char *name);

/* The value of row `row` at a column number from tsi_pq_col; aborts on -1 (the column is
 * missing: logged by tsi_pq_col). */
const char *tsi_pq_at(const PGresult *r, int row, int col);

/* The value of row `row` of the column called name; aborts when r has no such column. */
const char *tsi_pq_get(const PGresult *r, int row, const char *name);

#endif
