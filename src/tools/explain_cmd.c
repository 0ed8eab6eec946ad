/* tools/explain_cmd.c — `tsi explain`: see features_cmd.h */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/jsonw.h"
#include "core/index.h"
#include "core/json.h"
#include "tools/features_cmd.h"

const tsi_option tsi_explain_options[] = {
    {"features", TSI_OPT_PATH, NULL, NULL,
     "one minute's features as a JSON object (keys of domain.md §3; a `tsi features` record "
     "works)",
     NULL},
    {"constants", TSI_OPT_PATH, NULL, NULL,
     "normalisation constants JSON (I_vru_max, I_veh_max, V_max, sigma_max, S_ref, HB_max, "
     "k); default: the configured defaults",
     NULL},
    {"format", TSI_OPT_ENUM, "text", NULL, "output format", "text|json"},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

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

int tsi_cmd_explain(int argc, char **argv)
{
    tsi_opts o;
    int rc = tsi_opts_parse(&o, "tsi explain",
                            "usage: tsi explain --features FILE.json [--constants FILE.json] "
                            "[--format text|json]",
                            tsi_explain_options, 0, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    int status = 1;
    tsi_error err = {0};
    char *fjs = NULL, *cjs = NULL;
    const char *fpath = tsi_opts_str(&o, "features"), *cpath = tsi_opts_str(&o, "constants");
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
    if (strcmp(tsi_opts_str(&o, "format"), "json") == 0)
        print_json(&c, csrc, &x);
    else
        print_text(&f, &c, csrc, &x);
    status = 0;
done:
    free(fjs);
    free(cjs);
    tsi_opts_free(&o);
    return status;
}
