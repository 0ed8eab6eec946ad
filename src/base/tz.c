/* base/tz.c — the deployment's time zone (TSI_TIMEZONE) for the API's day boundaries and
 * local hour/day-of-week, without glibc's time-zone lock on the request path.
 *
 * At start the zone's UTC offsets are sampled with localtime_r every 6 hours from 1970
 * to 2200 and each change is located to the second by bisection: the result is a sorted
 * table of transitions, read by binary search (lock-free, shared by all workers).
 * Instants outside the table fall back to localtime_r. See tz.h (tsi_tz_*) and
 * docs/api.md "Time zone". Ownership: the table is static, built once before the
 * server accepts requests, never freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/tz.h"

typedef struct {
    int64_t at;  /* first instant (epoch seconds) of this offset */
    int32_t off; /* seconds east of UTC */
} tz_step;

static tz_step *steps;
static int nsteps;
static int64_t tab_lo, tab_hi; /* the table answers for [tab_lo, tab_hi) */
static bool is_utc = true;
static char zone_name[128] = "UTC";

static int32_t libc_offset(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm))
        return 0;
    return (int32_t)tm.tm_gmtoff;
}

bool tsi_tz_utc(void)
{
    return is_utc;
}

const char *tsi_tz_name(void)
{
    return zone_name;
}

int tsi_tz_init(const char *name, tsi_error *err)
{
    bool utc = !name || !*name || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0;
    char path[512];
    struct stat st;
    if (!utc) { /* a refused name changes nothing */
        snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
        if (strlen(name) >= sizeof zone_name || name[0] == '/' || strstr(name, "..") ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            return tsi_error_set(err, TSI_E_INVALID, "unknown time zone",
                                 "'%s' is not an IANA zone name (no %s)", name, path);
    }
    free(steps);
    steps = NULL;
    nsteps = 0;
    if (utc) {
        is_utc = true;
        snprintf(zone_name, sizeof zone_name, "UTC");
        return 0;
    }
    setenv("TZ", name, 1);
    tzset();
    snprintf(zone_name, sizeof zone_name, "%s", name);
    is_utc = false;
    const int64_t step = 6 * 3600;
    tab_lo = 0;
    tab_hi = 7258118400LL; /* 2200-01-01 */
    int cap = 64;
    steps = malloc(sizeof *steps * (size_t)cap);
    if (!steps)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", "time zone table");
    steps[0].at = tab_lo;
    steps[0].off = libc_offset(tab_lo);
    nsteps = 1;
    int32_t cur = steps[0].off;
    for (int64_t t = tab_lo + step; t < tab_hi; t += step) {
        int32_t o = libc_offset(t);
        if (o == cur)
            continue;
        /* the change lies in (t - step, t]: bisect to the first second of o */
        int64_t lo = t - step, hi = t;
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (libc_offset(mid) == cur)
                lo = mid;
            else
                hi = mid;
        }
        if (nsteps == cap) {
            cap *= 2;
            tz_step *n = realloc(steps, sizeof *steps * (size_t)cap);
            if (!n)
                return tsi_error_set(err, TSI_E_NOMEM, "out of memory", "time zone table");
            steps = n;
        }
        steps[nsteps].at = hi;
        steps[nsteps].off = libc_offset(hi);
        cur = steps[nsteps].off;
        nsteps++;
    }
    return 0;
}

int32_t tsi_tz_offset(int64_t t)
{
    if (is_utc)
        return 0;
    if (t < tab_lo || t >= tab_hi)
        return libc_offset(t);
    int lo = 0, hi = nsteps - 1; /* last step with at <= t */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (steps[mid].at <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return steps[lo].off;
}

int64_t tsi_tz_day_start(int64_t day)
{
    int64_t L = day * 86400; /* local midnight, as local seconds */
    if (is_utc)
        return L;
    /* the instant is within 14 h of L; try the offsets in force around it */
    int64_t best = INT64_MAX;
    const int64_t probe[2] = {L - 14 * 3600, L + 14 * 3600};
    for (int i = 0; i < 2; i++) {
        int32_t o = tsi_tz_offset(probe[i]);
        int64_t t = L - o;
        if (tsi_tz_offset(t) == o && t < best)
            best = t;
    }
    if (best != INT64_MAX)
        return best;
    /* midnight does not exist (a forward jump over it): the day begins at the jump */
    int64_t lo = probe[0], hi = probe[1];
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (mid + tsi_tz_offset(mid) >= L)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

int64_t tsi_tz_local_day(int64_t t)
{
    int64_t l = t + tsi_tz_offset(t);
    return l >= 0 ? l / 86400 : (l - 86399) / 86400;
}

void tsi_tz_hour_dow(int64_t t, int *hour, int *dow)
{
    int64_t l = t + tsi_tz_offset(t);
    int64_t day = l >= 0 ? l / 86400 : (l - 86399) / 86400;
    *hour = (int)((l - day * 86400) / 3600);
    *dow = (int)(((day + 3) % 7 + 7) % 7); /* 1970-01-01 was a Thursday (3 with Monday 0) */
}

void tsi_tz_iso_utc(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
