/* db/result.c — see result.h */
#include "db/result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"

int tsi_pq_col(const PGresult *r, const char *name)
{
    /* PQfnumber folds unquoted names to lower case; the names here are exact */
    int n = PQnfields(r);
    for (int i = 0; i < n; i++)
        if (strcmp(PQfname(r, i), name) == 0)
            return i;
    tsi_buf have = TSI_BUF_INIT;
    for (int i = 0; i < n; i++)
        tsi_buf_printf(&have, "%s%s", i ? ", " : "", PQfname(r, i));
    tsi_err("db", "result has no column '%s' (it has: %s)", name,
            n ? tsi_buf_cstr(&have) : "no columns");
    tsi_buf_free(&have);
    return -1;
}

const char *tsi_pq_at(const PGresult *r, int row, int col)
{
    if (col < 0 || col >= PQnfields(r)) {
        fprintf(stderr, "tsi: a result column the code reads is missing (see the log)\n");
        abort();
    }
    return PQgetvalue(r, row, col);
}

const char *tsi_pq_get(const PGresult *r, int row, const char *name)
{
    return tsi_pq_at(r, row, tsi_pq_col(r, name));
}
