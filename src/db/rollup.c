/* db/rollup.c — see rollup.h */
#include "db/rollup.h"

#include <math.h>

#include "core/index.h"

void tsi_rollup_hour_of_minutes(tsi_rollup_hour *h, const double *si, const int *vol, int n)
{
    double sum = 0, mn = 1e9, mx = -1e9;
    int64_t tv = 0;
    int hr = 0;
    for (int i = 0; i < n; i++) {
        sum += si[i];
        mn = si[i] < mn ? si[i] : mn;
        mx = si[i] > mx ? si[i] : mx;
        tv += vol[i];
        hr += si[i] > TSI_RISK_HIGH;
    }
    double avg = sum / n, ss = 0;
    for (int i = 0; i < n; i++)
        ss += (si[i] - avg) * (si[i] - avg);
    h->n = n;
    h->avg = avg;
    h->min = mn;
    h->max = mx;
    h->sd = n > 1 ? sqrt(ss / (n - 1)) : NAN;
    h->has_sub = false;
    h->total_vol = tv;
    h->high_risk_minutes = hr;
}

void tsi_rollup_day_of_hours(tsi_rollup_day *d, const tsi_rollup_hour *hs, int nh)
{
    int64_t n = 0, tv = 0;
    double sw = 0, mn = 1e9, mx = -1e9, q = 0, peak = -1;
    int hrh = 0, peak_h = 0;
    bool has_sub = true;
    double sub[2][3] = {{0, 1e9, -1e9}, {0, 1e9, -1e9}};
    for (int i = 0; i < nh; i++) {
        const tsi_rollup_hour *h = &hs[i];
        has_sub = has_sub && h->has_sub;
        for (int j = 0; j < 2 && has_sub; j++) {
            sub[j][0] += h->n * h->sub[j][0];
            sub[j][1] = h->sub[j][1] < sub[j][1] ? h->sub[j][1] : sub[j][1];
            sub[j][2] = h->sub[j][2] > sub[j][2] ? h->sub[j][2] : sub[j][2];
        }
        n += h->n;
        sw += h->n * h->avg;
        mn = h->min < mn ? h->min : mn;
        mx = h->max > mx ? h->max : mx;
        double s = isnan(h->sd) ? 0 : h->sd;
        q += (h->n - 1) * s * s + h->n * h->avg * h->avg;
        tv += h->total_vol;
        hrh += h->avg > TSI_RISK_HIGH;
        if (h->avg > peak) {
            peak = h->avg;
            peak_h = (int)((h->hour % 86400) / 3600);
        }
    }
    d->n = (int)n;
    d->avg = sw / (double)n;
    d->min = mn;
    d->max = mx;
    double var = n > 1 ? (q - (double)n * d->avg * d->avg) / (double)(n - 1) : NAN;
    d->sd = isnan(var) ? NAN : sqrt(var < 0 ? 0 : var);
    d->total_vol = tv;
    d->high_risk_hours = hrh;
    d->peak_hour = peak_h;
    d->peak_si = peak;
    d->has_sub = has_sub;
    for (int j = 0; j < 2; j++) {
        d->sub[j][0] = sub[j][0] / (double)n;
        d->sub[j][1] = sub[j][1];
        d->sub[j][2] = sub[j][2];
    }
}
