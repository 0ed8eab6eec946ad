/* db/constants.c — see constants.h */
#include "db/constants.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"

/* $1 = the set's id, or NULL for the set valid now. The scalar constants only: the priors
 * (thousands of JSON tokens for a network, more than tsi_constants_from_json parses) are
 * read by SQL_PRIORS */
static const char SQL_CONSTANTS[] =
    "SELECT id, (constants - 'priors')::text FROM normalization_constants"
    " WHERE CASE WHEN $1::bigint IS NULL"
    "            THEN valid_from <= now() AND (valid_until IS NULL OR valid_until > now())"
    "            ELSE id = $1::bigint END"
    " ORDER BY valid_from DESC LIMIT 1";
static const char SQL_PRIORS[] = "SELECT i.key::bigint, h.key::int, (h.value->>'vru')::float8,"
                                 " (h.value->>'vehicle')::float8, (h.value->>'combined')::float8,"
                                 " coalesce((h.value->>'minutes')::bigint, 0)"
                                 "  FROM normalization_constants n,"
                                 "       jsonb_each(n.constants->'priors'->'intersections') i,"
                                 "       jsonb_each(i.value) h"
                                 " WHERE n.id = $1::bigint";

static int load(PGconn *c, const char *id, tsi_constants *k, tsi_priors **priors, tsi_error *err)
{
    *k = tsi_constants_default;
    *priors = NULL;
    const char *pv[1] = {id};
    PGresult *r = PQexecParams(c, SQL_CONSTANTS, 1, NULL, pv, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = tsi_db_result_error(r, "cannot read the normalisation constants", err);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    char set_id[32];
    snprintf(set_id, sizeof set_id, "%s", PQgetvalue(r, 0, 0));
    const char *js = PQgetvalue(r, 0, 1);
    int rc = tsi_constants_from_json(js, strlen(js), k, err);
    PQclear(r);
    if (rc < 0) {
        *k = tsi_constants_default;
        return rc;
    }
    k->set_id = strtoll(set_id, NULL, 10);
    const char *pp[1] = {set_id};
    r = PQexecParams(c, SQL_PRIORS, 1, NULL, pp, NULL, NULL, 0);
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

int tsi_db_constants_now(PGconn *c, tsi_constants *k, tsi_priors **priors, tsi_error *err)
{
    return load(c, NULL, k, priors, err);
}

int tsi_db_constants_by_id(PGconn *c, int64_t id, tsi_constants *k, tsi_priors **priors,
                           tsi_error *err)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)id);
    return load(c, s, k, priors, err);
}
