/* db/copybin.c — binary COPY encoding of realtime rows; see copybin.h */
#include "db/copybin.h"

#include <endian.h>
#include <math.h>
#include <string.h>

const char *const tsi_rt_feat_cols[TSI_RT_NFEAT] = {
    "avg_speed", "speed_stddev", "hard_braking_count", "constants_id", "algorithm_version"};

/* binary COPY (the rows' staging: no text formatting here, no parsing in the server) */
static void be16(tsi_buf *b, uint16_t v)
{
    v = htobe16(v);
    tsi_buf_append(b, &v, 2);
}
static void be32(tsi_buf *b, uint32_t v)
{
    v = htobe32(v);
    tsi_buf_append(b, &v, 4);
}
static void be64(tsi_buf *b, uint64_t v)
{
    v = htobe64(v);
    tsi_buf_append(b, &v, 8);
}
static void bin_i8(tsi_buf *b, int64_t v)
{
    be32(b, 8);
    be64(b, (uint64_t)v);
}
static void bin_i4(tsi_buf *b, int32_t v)
{
    be32(b, 4);
    be32(b, (uint32_t)v);
}
static void bin_i2(tsi_buf *b, int16_t v)
{
    be32(b, 2);
    be16(b, (uint16_t)v);
}
static void bin_f8(tsi_buf *b, double v) /* not finite: NULL, as in the text form */
{
    if (!isfinite(v)) {
        be32(b, UINT32_MAX); /* length -1 */
        return;
    }
    uint64_t u;
    memcpy(&u, &v, 8);
    be32(b, 8);
    be64(b, u);
}
/* timestamptz: microseconds since 2000-01-01 UTC; beyond int64, a value the server refuses
 * as out of range (not its infinity) */
static void bin_ts(tsi_buf *b, int64_t ms)
{
    const int64_t pg_epoch_ms = 946684800000LL, lim = INT64_MAX / 1000 - pg_epoch_ms;
    bin_i8(b, ms > lim || ms < -lim ? INT64_MAX - 1 : (ms - pg_epoch_ms) * 1000);
}

/* binary COPY: the signature, flags, no header extension; per row the field count, then each
 * field's length and bytes (network order); -1 as the end */
void tsi_copybin_begin(tsi_buf *b)
{
    tsi_buf_append(b, "PGCOPY\n\377\r\n\0", 11);
    be32(b, 0);
    be32(b, 0);
}

void tsi_copybin_end(tsi_buf *b)
{
    be16(b, UINT16_MAX); /* -1 */
}

void tsi_copybin_rt_row(tsi_buf *d, const tsi_rt_row *r, int64_t seq, const bool *feat)
{
    int nf = 14 + (seq >= 0);
    for (int f = 0; f < TSI_RT_NFEAT; f++)
        nf += !feat || feat[f];
    be16(d, (uint16_t)nf);
    if (seq >= 0)
        bin_i8(d, seq);
    bin_i8(d, r->intersection_id);
    bin_ts(d, r->minute_ms);
    const double dv[6] = {r->combined_index, r->combined_index_eb, r->vru_index,
                          r->vru_index_eb,   r->vehicle_index,     r->vehicle_index_eb};
    for (int k = 0; k < 6; k++)
        bin_f8(d, dv[k]);
    bin_i4(d, r->traffic_volume);
    bin_i4(d, r->vru_count);
    bin_i4(d, r->vehicle_event_count);
    bin_i4(d, r->vru_event_count);
    bin_i2(d, r->hour_of_day);
    bin_i2(d, r->day_of_week);
    if (!feat || feat[0])
        bin_f8(d, r->avg_speed);
    if (!feat || feat[1])
        bin_f8(d, r->speed_stddev);
    if (!feat || feat[2])
        bin_i4(d, r->hard_braking_count);
    if (!feat || feat[3]) {
        if (r->constants_id > 0)
            bin_i8(d, r->constants_id);
        else
            be32(d, UINT32_MAX); /* NULL */
    }
    if (!feat || feat[4]) {
        if (r->algorithm_version > 0 && r->algorithm_version <= INT16_MAX)
            bin_i2(d, (int16_t)r->algorithm_version);
        else
            be32(d, UINT32_MAX);
    }
}
