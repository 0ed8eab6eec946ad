/* db/constants.c — see constants.h */
#include "db/constants.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"

static const char SQL_CONSTANTS[] = "SELECT tsi_constants_at(now())::text";
static const char SQL_PRIORS[] =
    "SELECT i.key::bigint, h.key::int, (h.value->>'vru')::float8,"
    " (h.value->>'vehicle')::float8, (h.value->>'combined')::float8,"
    " coalesce((h.value->>'minutes')::bigint, 0)"
    "  FROM jsonb_each(tsi_constants_at(now())->'priors'->'intersections') i,"
    "       jsonb_each(i.value) h";

int tsi_db_constants_now(PGconn *c, tsi_constants *k, tsi_priors **priors, tsi_error *err)
{
    *k = tsi_constants_default;
    *priors = NULL;
    PGresult *r = PQexec(c, SQL_CONSTANTS);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = tsi_db_result_error(r, "cannot read the normalisation constants", err);
        PQclear(r);
        return rc;
    }
    if (PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return 0;
    }
    const char *js = PQgetvalue(r, 0, 0);
    int rc = tsi_constants_from_json(js, strlen(js), k, err);
    PQclear(r);
    if (rc < 0) {
        *k = tsi_constants_default;
        return rc;
    }
    r = PQexec(c, SQL_PRIORS);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        *priors = tsi_priors_new();
        for (int i = 0; i < PQntuples(r); i++) {
            if (PQgetisnull(r, i, 2) || PQgetisnull(r, i, 3) || PQgetisnull(r, i, 4))
                continue;
            double mean[3] = {strtod(PQgetvalue(r, i, 2), NULL), strtod(PQgetvalue(r, i, 3), NULL),
                              strtod(PQgetvalue(r, i, 4), NULL)};
            tsi_priors_set(*priors, atoll(PQgetvalue(r, i, 0)), atoi(PQgetvalue(r, i, 1)), mean,
                           atol(PQgetvalue(r, i, 5)));
        }
    }
    PQclear(r);
    return 1;
}
