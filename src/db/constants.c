/* db/constants.c — see constants.h */
#include "db/constants.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/conn.h"
#include "db/result.h"

/* $1 = the set's id, or NULL for the set valid now. The scalar constants only: the priors
 * (thousands of JSON tokens for a network, more than tsi_constants_from_json parses) are
 * read by SQL_PRIORS */
static const char SQL_CONSTANTS[] =
    "SELECT id, (constants - 'priors')::text AS constants FROM normalization_constants"
    " WHERE CASE WHEN $1::bigint IS NULL"
    "            THEN valid_from <= now() AND (valid_until IS NULL OR valid_until > now())"
    "            ELSE id = $1::bigint END"
    " ORDER BY valid_from DESC LIMIT 1";
static const char SQL_PRIORS[] = "SELECT i.key::bigint AS intersection, h.key::int AS hour,"
                                 " (h.value->>'vru')::float8 AS vru,"
                                 " (h.value->>'vehicle')::float8 AS vehicle,"
                                 " (h.value->>'combined')::float8 AS combined,"
                                 " coalesce((h.value->>'minutes')::bigint, 0) AS minutes"
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
    snprintf(set_id, sizeof set_id, "%s", tsi_pq_get(r, 0, "id"));
    const char *js = tsi_pq_get(r, 0, "constants");
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
        int ci = tsi_pq_col(r, "intersection"), ch = tsi_pq_col(r, "hour");
        int cm[3] = {tsi_pq_col(r, "vru"), tsi_pq_col(r, "vehicle"), tsi_pq_col(r, "combined")};
        int cn = tsi_pq_col(r, "minutes");
        for (int i = 0; i < PQntuples(r); i++) {
            double mean[3];
            bool null = false;
            for (int j = 0; j < 3; j++) {
                const char *v = tsi_pq_at(r, i, cm[j]);
                null |= PQgetisnull(r, i, cm[j]);
                mean[j] = strtod(v, NULL);
            }
            if (null)
                continue;
            tsi_priors_set(*priors, atoll(tsi_pq_at(r, i, ci)), atoi(tsi_pq_at(r, i, ch)), mean,
                           atol(tsi_pq_at(r, i, cn)));
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
