/* tests/harness/ingest_util.h — what the ingest tests (test_ingest*.c) share: a fresh
 * start between tests (tables emptied, spool file removed), the teardown of a test file
 * (spool directory and test database removed) and a realtime row to start from.
 * Compiled once in tests/harness (ingest_util.c). */
#ifndef TSI_TEST_INGEST_UTIL_H
#define TSI_TEST_INGEST_UTIL_H

#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "base/proc.h"
#include "db/ingest.h"
#include "harness.h"

/* runs delete_sql as tsi_owner (fails the test on error) and removes the spool file */
void iu_reset(const char *spool, const char *delete_sql);

/* removes the spool directory and drops the test database */
void iu_teardown(const char *spool, const char *dbname);

/* a realtime row of intersection isect at minute `minute` after base_ms: combined index
 * ci, volume; every other index and the speeds NULL (NaN), counts and hour 0; each test
 * sets what it looks at */
tsi_rt_row iu_row(int64_t base_ms, int64_t isect, int minute, double ci, int volume);

#endif
