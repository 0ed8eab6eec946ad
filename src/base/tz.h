/* base/tz.h — the deployment's time zone (TSI_TIMEZONE): the API's day boundaries, and the
 * local hour of day and weekday of every stored minute (collector, reprocess, features),
 * one implementation for all (tz.c).
 *
 * init validates the IANA name, sets TZ and builds the offset table, once, before the
 * server accepts requests; the rest are lock-free and thread-safe. Days are day numbers
 * since 1970-01-01 of the local calendar. Ownership: the table is static, never freed;
 * tsi_tz_name's text is static. */
#ifndef TSI_BASE_TZ_H
#define TSI_BASE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

int tsi_tz_init(const char *name, tsi_error *err);
bool tsi_tz_utc(void);
const char *tsi_tz_name(void);
int32_t tsi_tz_offset(int64_t t);      /* seconds east of UTC at instant t */
int64_t tsi_tz_day_start(int64_t day); /* first instant of a local day */
int64_t tsi_tz_local_day(int64_t t);   /* the local day of instant t */
/* hour of day 0..23 and weekday 0..6 (0 = Monday) of instant t (epoch seconds) */
void tsi_tz_hour_dow(int64_t t, int *hour, int *dow);
/* epoch ms as "YYYY-MM-DDTHH:MM:SSZ" (UTC, whatever the zone) into buf (>= 21 bytes) */
void tsi_tz_iso_utc(int64_t ms, char *buf, size_t len);

#endif
