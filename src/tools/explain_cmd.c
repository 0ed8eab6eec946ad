/* tools/explain_cmd.c — `tsi explain`: see features_cmd.h */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/indices.h"
#include "archive/raw.h"
#include "base/buf.h"
#include "base/jsonw.h"
#include "core/index.h"
#include "core/json.h"
#include "db/conn.h"
#include "db/result.h"
#include "db/constants.h"
#include "tools/features_cmd.h"
#include "archive/parquet_read.h"

static const char *const int_keys[] = {"traffic_volume", "vru_count", "hard_braking_count",
                                       "vru_event_count", "vehicle_event_count"};

static int read_features(const char *js, size_t len, tsi_features *f, double prior[3],
                         bool *has_prior, tsi_error *err)
{
    tsi_json d;
    int rc = tsi_json_parse_alloc(&d, js, len, 100000, err);
    if (rc < 0)
        return rc;
    rc = 0;
    memset(f, 0, sizeof *f);
    if (!tsi_json_is_object(&d, 0)) {
        rc = tsi_error_set(err, TSI_E_NOT_OBJECT, "features must be a JSON object", NULL);
        goto done;
    }
    int *ip[] = {&f->traffic_volume, &f->vru_count, &f->hard_braking_count, &f->vru_event_count,
                 &f->vehicle_event_count};
    for (size_t i = 0; i < 5; i++) {
        int64_t v;
        int r = tsi_json_int64(&d, tsi_json_get(&d, 0, int_keys[i]), &v);
        if (r == TSI_E_MISSING) {
            rc = tsi_error_set(err, r, "feature missing", "%s", int_keys[i]);
            goto done;
        }
        if (r < 0 || v < 0 || v > 1000000000) {
            rc = tsi_error_set(err, r < 0 ? r : TSI_E_RANGE,
                               "feature must be a non-negative integer", "%s", int_keys[i]);
            goto done;
        }
        *ip[i] = (int)v;
    }
    const char *dk[] = {"avg_speed", "speed_stddev"};
    double *dp[] = {&f->avg_speed, &f->speed_stddev};
    for (size_t i = 0; i < 2; i++) {
        int r = tsi_json_num_range(&d, tsi_json_get(&d, 0, dk[i]), 0, 1e6, dp[i], dk[i], err);
        if (r < 0) {
            rc = r;
            goto done;
        }
    }
    /* optional EB prior: prior_vru, prior_vehicle, prior_combined (all three) */
    const char *pk[] = {"prior_vru", "prior_vehicle", "prior_combined"};
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        int t = tsi_json_get(&d, 0, pk[i]);
        if (t < 0 || tsi_json_is_null(&d, t))
            continue;
        int r = tsi_json_num_range(&d, t, 0, 100, &prior[i], pk[i], err);
        if (r < 0) {
            rc = r;
            goto done;
        }
        seen++;
    }
    if (seen != 0 && seen != 3) {
        rc = tsi_error_set(err, TSI_E_MISSING,
                           "a prior needs all three of prior_vru, "
                           "prior_vehicle, prior_combined",
                           NULL);
        goto done;
    }
    *has_prior = seen == 3;
done:
    tsi_json_free(&d);
    return rc;
}

static void print_text(const tsi_features *f, const tsi_constants *c, const char *csrc,
                       const tsi_index *x)
{
    printf("constants (%s): I_vru_max=%g I_veh_max=%g V_max=%g sigma_max=%g S_ref=%g "
           "HB_max=%g k=%g\n\n",
           csrc, c->I_vru_max, c->I_veh_max, c->V_max, c->sigma_max, c->S_ref, c->HB_max, c->k);
    printf("VRU index = %.6f  (%s)\n", x->vru, tsi_risk_level(x->vru));
    printf("  %-36s %12.6f\n", "0.4 x vru_event_count / I_vru_max", x->vru_t_events);
    printf("      = 100 x 0.4 x %d / %g\n", f->vru_event_count, c->I_vru_max);
    printf("  %-36s %12.6f\n", "0.2 x traffic_volume / V_max", x->vru_t_volume);
    printf("      = 100 x 0.2 x %d / %g\n", f->traffic_volume, c->V_max);
    printf("  %-36s %12.6f\n", "0.2 x avg_speed / S_ref", x->vru_t_speed);
    printf("      = 100 x 0.2 x %g / %g\n", f->avg_speed, c->S_ref);
    printf("  %-36s %12.6f\n", "0.2 x speed_stddev / sigma_max", x->vru_t_stddev);
    printf("      = 100 x 0.2 x %g / %g\n", f->speed_stddev, c->sigma_max);
    printf("  %-36s %12.6f%s\n\n", "sum", x->vru_unclipped,
           x->vru_unclipped > 100 ? "  (clipped to 100)" : "");
    printf("Vehicle index = %.6f  (%s)\n", x->vehicle, tsi_risk_level(x->vehicle));
    printf("  %-36s %12.6f\n", "0.3 x vehicle_event_count / I_veh_max", x->veh_t_events);
    printf("      = 100 x 0.3 x %d / %g\n", f->vehicle_event_count, c->I_veh_max);
    printf("  %-36s %12.6f\n", "0.3 x traffic_volume / V_max", x->veh_t_volume);
    printf("      = 100 x 0.3 x %d / %g\n", f->traffic_volume, c->V_max);
    printf("  %-36s %12.6f\n", "0.2 x speed_stddev / sigma_max", x->veh_t_stddev);
    printf("      = 100 x 0.2 x %g / %g\n", f->speed_stddev, c->sigma_max);
    printf("  %-36s %12.6f\n", "0.2 x hard_braking_count / HB_max", x->veh_t_braking);
    printf("      = 100 x 0.2 x %d / %g\n", f->hard_braking_count, c->HB_max);
    printf("  %-36s %12.6f%s\n\n", "sum", x->vehicle_unclipped,
           x->vehicle_unclipped > 100 ? "  (clipped to 100)" : "");
    printf("Combined index = 0.6 x %.6f + 0.4 x %.6f = %.6f  (%s)\n\n", x->vru, x->vehicle,
           x->combined, tsi_risk_level(x->combined));
    printf("Empirical Bayes: N = traffic_volume + vru_count = %g, lambda = N/(N+k) = %.6f\n", x->n,
           x->lambda);
    if (x->prior_source == TSI_PRIOR_NONE)
        printf("  no prior given (prior_vru/prior_vehicle/prior_combined): P = X, EB = raw\n");
    else
        printf("  prior P: vru %.6f, vehicle %.6f, combined %.6f\n", x->prior_vru, x->prior_vehicle,
               x->prior_combined);
    printf("  vru_index_eb      = %.6f\n", x->vru_eb);
    printf("  vehicle_index_eb  = %.6f\n", x->vehicle_eb);
    printf("  combined_index_eb = %.6f  (%s)\n", x->combined_eb, tsi_risk_level(x->combined_eb));
}

static void print_json(const tsi_constants *c, const char *csrc, const tsi_index *x)
{
    tsi_buf b = TSI_BUF_INIT;
    tsi_jsonw w;
    tsi_jsonw_init(&w, &b);
    w.double_digits = 17;
    tsi_jsonw_object(&w);
    tsi_jsonw_key(&w, "constants");
    tsi_buf cj = TSI_BUF_INIT;
    tsi_constants_to_json(c, &cj);
    tsi_jsonw_raw(&w, cj.data, cj.len);
    tsi_buf_free(&cj);
    tsi_jsonw_kv_str(&w, "constants_source", csrc);
    tsi_jsonw_kv_double(&w, "vru_index", x->vru);
    tsi_jsonw_kv_double(&w, "vehicle_index", x->vehicle);
    tsi_jsonw_kv_double(&w, "combined_index", x->combined);
    tsi_jsonw_kv_str(&w, "risk_level", tsi_risk_level(x->combined));
    tsi_jsonw_kv_str(&w, "risk_colour", tsi_risk_colour(x->combined));
    tsi_jsonw_key(&w, "vru_terms");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_double(&w, "vru_event_count", x->vru_t_events);
    tsi_jsonw_kv_double(&w, "traffic_volume", x->vru_t_volume);
    tsi_jsonw_kv_double(&w, "avg_speed", x->vru_t_speed);
    tsi_jsonw_kv_double(&w, "speed_stddev", x->vru_t_stddev);
    tsi_jsonw_kv_double(&w, "sum", x->vru_unclipped);
    tsi_jsonw_end(&w);
    tsi_jsonw_key(&w, "vehicle_terms");
    tsi_jsonw_object(&w);
    tsi_jsonw_kv_double(&w, "vehicle_event_count", x->veh_t_events);
    tsi_jsonw_kv_double(&w, "traffic_volume", x->veh_t_volume);
    tsi_jsonw_kv_double(&w, "speed_stddev", x->veh_t_stddev);
    tsi_jsonw_kv_double(&w, "hard_braking_count", x->veh_t_braking);
    tsi_jsonw_kv_double(&w, "sum", x->vehicle_unclipped);
    tsi_jsonw_end(&w);
    tsi_jsonw_kv_double(&w, "n", x->n);
    tsi_jsonw_kv_double(&w, "lambda", x->lambda);
    tsi_jsonw_kv_str(&w, "prior", x->prior_source == TSI_PRIOR_NONE ? "none" : "given");
    tsi_jsonw_kv_double(&w, "vru_index_eb", x->vru_eb);
    tsi_jsonw_kv_double(&w, "vehicle_index_eb", x->vehicle_eb);
    tsi_jsonw_kv_double(&w, "combined_index_eb", x->combined_eb);
    tsi_jsonw_end(&w);
    tsi_buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, stdout);
    tsi_buf_free(&b);
}

/* ---- a stored minute: `tsi explain --intersection ID --at TIME` ---------------------------- */

/* one stored minute of the indices Parquet: its features and the values stored with them */
typedef struct stored_min {
    tsi_features f;
    int hour_of_day;
    double idx[6]; /* vru, vru_eb, vehicle, vehicle_eb, combined, combined_eb; NAN = NULL */
    int64_t constants_id, algorithm_version; /* 0 = NULL */
    int copies;                              /* rows of that key in the day's files */
} stored_min;

static const char *const IDX_COLS[6] = {"vru_index",        "vru_index_eb",   "vehicle_index",
                                        "vehicle_index_eb", "combined_index", "combined_index_eb"};

static int col_of(duckdb_result *r, const char *name)
{
    for (idx_t c = 0; c < duckdb_column_count(r); c++)
        if (strcmp(duckdb_column_name(r, c), name) == 0)
            return (int)c;
    return -1;
}

static double cell(duckdb_result *r, int c, double dflt)
{
    return c < 0 || duckdb_value_is_null(r, (idx_t)c, 0) ? dflt
                                                         : duckdb_value_double(r, (idx_t)c, 0);
}

/* reads the row of (iid, minute) from the day's indices files under root; 1 found, 0 none */
static int read_stored(const char *root, int64_t iid, int64_t minute_us, stored_min *m,
                       tsi_error *err)
{
    char dir[4096];
    tsi_indices_day_dir(dir, sizeof dir, root, minute_us / 1000000 - (minute_us / 1000000) % 86400);
    tsi_pqr p = {0};
    int rc = tsi_pqr_open(&p, err);
    if (rc < 0)
        return rc;
    tsi_buf q = TSI_BUF_INIT, glob = TSI_BUF_INIT;
    tsi_buf_printf(&glob, "%s/*.parquet", dir);
    tsi_buf_puts(&q, "SELECT *, count(*) OVER () AS copies FROM read_parquet(");
    tsi_pqr_quote(&q, tsi_buf_cstr(&glob));
    tsi_buf_printf(&q,
                   ", union_by_name = true, filename = true) WHERE parse_filename(filename) NOT"
                   " LIKE 'conflicts%%' AND intersection_id = %" PRId64
                   " AND epoch_us(\"timestamp\") = %" PRId64 " ORDER BY filename DESC LIMIT 1",
                   iid, minute_us);
    duckdb_result r;
    memset(&r, 0, sizeof r);
    rc = tsi_pqr_query(&p, tsi_buf_cstr(&q), &r, err);
    if (rc < 0 && strstr(err ? err->detail : "", "No files found")) {
        rc = 0; /* no file that day: no such minute */
    } else if (rc == 0 && duckdb_row_count(&r) == 1) {
        memset(m, 0, sizeof *m);
        m->f.intersection_id = iid;
        m->f.minute_ms = minute_us / 1000;
        m->f.traffic_volume = (int)cell(&r, col_of(&r, "traffic_volume"), 0);
        m->f.vru_count = (int)cell(&r, col_of(&r, "vru_count"), 0);
        m->f.vru_event_count = (int)cell(&r, col_of(&r, "vru_event_count"), 0);
        m->f.vehicle_event_count = (int)cell(&r, col_of(&r, "vehicle_event_count"), 0);
        m->f.hard_braking_count = (int)cell(&r, col_of(&r, "hard_braking_count"), 0);
        m->f.avg_speed = cell(&r, col_of(&r, "avg_speed"), 0);
        m->f.speed_stddev = cell(&r, col_of(&r, "speed_stddev"), 0);
        m->hour_of_day = (int)cell(&r, col_of(&r, "hour_of_day"), 0);
        for (int k = 0; k < 6; k++)
            m->idx[k] = cell(&r, col_of(&r, IDX_COLS[k]), NAN);
        m->constants_id = (int64_t)cell(&r, col_of(&r, "constants_id"), 0);
        m->algorithm_version = (int64_t)cell(&r, col_of(&r, "algorithm_version"), 0);
        m->copies = (int)cell(&r, col_of(&r, "copies"), 1);
        rc = 1;
    }
    duckdb_destroy_result(&r);
    tsi_buf_free(&q);
    tsi_buf_free(&glob);
    tsi_pqr_close(&p);
    return rc;
}

/* the same minute in safety_indices_realtime (48 h), when the database has it */
static bool read_db_row(PGconn *c, int64_t iid, int64_t minute_us, double out[6])
{
    char a[32], b[32];
    snprintf(a, sizeof a, "%" PRId64, iid);
    snprintf(b, sizeof b, "%" PRId64, minute_us);
    const char *pv[2] = {a, b};
    PGresult *r = PQexecParams(c,
                               "SELECT vru_index, vru_index_eb, vehicle_index, vehicle_index_eb,"
                               " combined_index, combined_index_eb FROM safety_indices_realtime"
                               " WHERE intersection_id = $1::bigint AND \"timestamp\" ="
                               " timestamptz 'epoch' + $2::bigint * interval '1 microsecond'",
                               2, NULL, pv, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    static const char *const cols[6] = {"vru_index",        "vru_index_eb",   "vehicle_index",
                                        "vehicle_index_eb", "combined_index", "combined_index_eb"};
    for (int k = 0; ok && k < 6; k++) {
        int col = tsi_pq_col(r, cols[k]);
        out[k] = col >= 0 && PQgetisnull(r, 0, col) ? NAN : strtod(tsi_pq_at(r, 0, col), NULL);
    }
    PQclear(r);
    return ok;
}

static bool same(double a, double b)
{
    return (isnan(a) && isnan(b)) || fabs(a - b) <= 1e-9;
}

static int explain_stored(const tsi_opts *o)
{
    tsi_error err = {0};
    int64_t iid = strtoll(tsi_opts_str(o, "intersection"), NULL, 10), us;
    if (!tsi_opts_str(o, "at") || tsi_pqr_parse_time(tsi_opts_str(o, "at"), &us, &err) < 0) {
        fprintf(stderr, "tsi explain: --at: %s %s\n", err.message, err.detail);
        return 2;
    }
    us -= ((us % 60000000) + 60000000) % 60000000; /* the minute's start */
    char root[4096], when[32];
    if (tsi_opts_str(o, "archive"))
        snprintf(root, sizeof root, "%s", tsi_opts_str(o, "archive"));
    else
        tsi_archive_root(root, sizeof root);
    tsi_pqr_fmt_time(us, when, sizeof when);
    stored_min m;
    int rc = read_stored(root, iid, us, &m, &err);
    if (rc < 0) {
        fprintf(stderr, "tsi explain: cannot read the indices Parquet: %s %s\n", err.message,
                err.detail);
        return 1;
    }
    if (rc == 0) {
        fprintf(stderr,
                "tsi explain: no stored minute of intersection %" PRId64 " at %s UTC in %s\n", iid,
                when, root);
        return 1;
    }
    /* the constants set the row records (and its priors), as the collector loaded them */
    tsi_constants k = tsi_constants_default;
    tsi_priors *pri = NULL;
    double dbrow[6];
    bool have_db = false;
    PGconn *c = tsi_db_connect(TSI_ROLE_READER, NULL, &err);
    if (m.constants_id > 0) {
        if (!c) {
            fprintf(stderr,
                    "tsi explain: the row records constants set %" PRId64
                    " and the database holding it is unreachable: %s %s\n",
                    m.constants_id, err.message, err.detail);
            return 1;
        }
        rc = tsi_db_constants_by_id(c, m.constants_id, &k, &pri, &err);
        if (rc <= 0) {
            fprintf(stderr, "tsi explain: constants set %" PRId64 " %s %s\n", m.constants_id,
                    rc == 0 ? "does not exist" : err.message, rc == 0 ? "" : err.detail);
            PQfinish(c);
            return 1;
        }
    }
    if (c)
        have_db = read_db_row(c, iid, us, dbrow);
    PQfinish(c);
    tsi_index x;
    tsi_index_compute(&m.f, &k, &x);
    double prior[3];
    int src = pri ? tsi_priors_get(pri, iid, m.hour_of_day, prior) : TSI_PRIOR_NONE;
    tsi_index_eb(&x, &m.f, k.k, src != TSI_PRIOR_NONE ? prior : NULL, src);
    tsi_priors_free(pri);
    const double re[6] = {x.vru, x.vru_eb, x.vehicle, x.vehicle_eb, x.combined, x.combined_eb};
    bool match = true;
    for (int j = 0; j < 6; j++)
        match = match && same(m.idx[j], re[j]) && (!have_db || same(dbrow[j], re[j]));
    bool json = strcmp(tsi_opts_str(o, "format"), "json") == 0;
    if (json) {
        tsi_buf b = TSI_BUF_INIT;
        tsi_jsonw w;
        tsi_jsonw_init(&w, &b);
        w.double_digits = 17;
        tsi_jsonw_object(&w);
        tsi_jsonw_kv_int(&w, "intersection_id", iid);
        tsi_jsonw_kv_str(&w, "minute", when);
        if (m.constants_id > 0)
            tsi_jsonw_kv_int(&w, "constants_id", m.constants_id);
        else
            tsi_jsonw_kv_null(&w, "constants_id");
        if (m.algorithm_version > 0)
            tsi_jsonw_kv_int(&w, "algorithm_version", m.algorithm_version);
        else
            tsi_jsonw_kv_null(&w, "algorithm_version");
        tsi_jsonw_kv_int(&w, "current_algorithm_version", TSI_ALGORITHM_VERSION);
        tsi_jsonw_kv_str(&w, "prior",
                         src == TSI_PRIOR_INTERSECTION ? "intersection"
                         : src == TSI_PRIOR_NETWORK    ? "network"
                                                       : "none");
        const char *groups[3] = {"stored_parquet", "stored_database", "recomputed"};
        for (int g = 0; g < 3; g++) {
            if (g == 1 && !have_db)
                continue;
            tsi_jsonw_key(&w, groups[g]);
            tsi_jsonw_object(&w);
            for (int j = 0; j < 6; j++) {
                double v = g == 0 ? m.idx[j] : g == 1 ? dbrow[j] : re[j];
                if (isnan(v))
                    tsi_jsonw_kv_null(&w, IDX_COLS[j]);
                else
                    tsi_jsonw_kv_double(&w, IDX_COLS[j], v);
            }
            tsi_jsonw_end(&w);
        }
        tsi_jsonw_kv_bool(&w, "match", match);
        tsi_jsonw_end(&w);
        tsi_buf_putc(&b, '\n');
        fwrite(b.data, 1, b.len, stdout);
        tsi_buf_free(&b);
    } else {
        printf("intersection %" PRId64 " minute %s UTC (hour_of_day %d)\n", iid, when,
               m.hour_of_day);
        printf("features: traffic_volume=%d vru_count=%d vru_event_count=%d "
               "vehicle_event_count=%d avg_speed=%.17g speed_stddev=%.17g hard_braking_count=%d\n",
               m.f.traffic_volume, m.f.vru_count, m.f.vru_event_count, m.f.vehicle_event_count,
               m.f.avg_speed, m.f.speed_stddev, m.f.hard_braking_count);
        if (m.constants_id > 0)
            printf("constants set %" PRId64 ": I_vru_max=%g I_veh_max=%g V_max=%g sigma_max=%g "
                   "S_ref=%g HB_max=%g k=%g; prior %s\n",
                   m.constants_id, k.I_vru_max, k.I_veh_max, k.V_max, k.sigma_max, k.S_ref,
                   k.HB_max, k.k,
                   src == TSI_PRIOR_INTERSECTION ? "of the intersection"
                   : src == TSI_PRIOR_NETWORK    ? "of the network"
                                                 : "none");
        else
            printf("constants: none recorded: the built-in defaults (I_vru_max=%g I_veh_max=%g "
                   "V_max=%g sigma_max=%g S_ref=%g HB_max=%g k=%g), no prior\n",
                   k.I_vru_max, k.I_veh_max, k.V_max, k.sigma_max, k.S_ref, k.HB_max, k.k);
        if (m.algorithm_version > 0)
            printf("algorithm version: stored %" PRId64 ", this build %d%s\n", m.algorithm_version,
                   TSI_ALGORITHM_VERSION,
                   m.algorithm_version != TSI_ALGORITHM_VERSION ? " (recomputed with this build's)"
                                                                : "");
        else
            printf("algorithm version: not recorded, this build %d\n", TSI_ALGORITHM_VERSION);
        if (m.copies > 1)
            printf("note: %d rows of this minute in the day's files; the last file's is shown\n",
                   m.copies);
        printf("\n  %-18s %22s %22s %22s\n", "", "stored (Parquet)",
               have_db ? "stored (database)" : "", "recomputed");
        for (int j = 0; j < 6; j++) {
            char d[32] = "";
            if (have_db)
                snprintf(d, sizeof d, "%.12f", dbrow[j]);
            printf("  %-18s %22.12f %22s %22.12f %s\n", IDX_COLS[j], m.idx[j], d, re[j],
                   same(m.idx[j], re[j]) && (!have_db || same(dbrow[j], re[j])) ? "=" : "DIFFERS");
        }
        printf("\n%s (tolerance 1e-9)\n", match ? "match" : "MISMATCH");
    }
    return match ? 0 : 1;
}

int tsi_explain_run(const tsi_opts *o)
{
    int status = 1;
    tsi_error err = {0};
    char *fjs = NULL, *cjs = NULL;
    const char *fpath = tsi_opts_str(o, "features"), *cpath = tsi_opts_str(o, "constants");
    bool stored = tsi_opts_str(o, "intersection") || tsi_opts_str(o, "at");
    if (stored && (fpath || cpath || !tsi_opts_str(o, "intersection") || !tsi_opts_str(o, "at"))) {
        fprintf(stderr, "tsi explain: --intersection and --at go together, without --features "
                        "or --constants\n");
        status = 2;
        goto done;
    }
    if (stored) {
        status = explain_stored(o);
        goto done;
    }
    if (fpath == NULL) {
        fprintf(stderr, "tsi explain: --features is required\n");
        status = 2;
        goto done;
    }
    tsi_constants c = tsi_constants_default;
    const char *csrc = "configured defaults";
    size_t len;
    if (cpath) {
        cjs = tsi_read_file(cpath, &len, 1u << 20, &err);
        if (cjs == NULL || tsi_constants_from_json(cjs, len, &c, &err) < 0) {
            fprintf(stderr, "tsi explain: %s: %s: %s: %s\n", cpath, tsi_error_name(err.code),
                    err.message, err.detail);
            goto done;
        }
        csrc = cpath;
    }
    fjs = tsi_read_file(fpath, &len, 16u << 20, &err);
    tsi_features f;
    double prior[3];
    bool has_prior = false;
    if (fjs == NULL || read_features(fjs, len, &f, prior, &has_prior, &err) < 0) {
        fprintf(stderr, "tsi explain: %s: %s: %s: %s\n", fpath, tsi_error_name(err.code),
                err.message, err.detail);
        goto done;
    }
    tsi_index x;
    tsi_index_compute(&f, &c, &x);
    if (has_prior)
        tsi_index_eb(&x, &f, c.k, prior, TSI_PRIOR_INTERSECTION);
    else
        tsi_index_eb(&x, &f, c.k, NULL, TSI_PRIOR_NONE);
    if (strcmp(tsi_opts_str(o, "format"), "json") == 0)
        print_json(&c, csrc, &x);
    else
        print_text(&f, &c, csrc, &x);
    status = 0;
done:
    free(fjs);
    free(cjs);
    return status;
}
