/* api/names.h — the server's cache of intersection names and positions: read from
 * PostgreSQL by the monitor (at start and every 30 s), or from the archive's
 * intersections Parquet when PostgreSQL was never reached, so that a request learns an
 * intersection's name without a round trip and answers from Parquet still carry names.
 *
 * Ownership: the cache is static and guarded by a mutex (thread-safe); tsi_api_int_info
 * copies into the caller's buffers. The connection given to refresh is borrowed. */
#ifndef TSI_API_NAMES_H
#define TSI_API_NAMES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* name/position of an intersection from the server's cache (PostgreSQL when it was
 * up, else archive/intersections/<file>.parquet); returns false when unknown. */
bool tsi_api_int_info(int64_t id, char *name, size_t len, double *lat, double *lon);
/* Every cached intersection, by id, copied into a malloc'd array the caller frees (NULL
 * and *n = 0 when the cache is empty or out of memory). */
typedef struct tsi_api_int_rec {
    int64_t id;
    char name[160];
    double lat, lon;
} tsi_api_int_rec;
tsi_api_int_rec *tsi_api_int_all(int *n);
/* Replaces the cache with PostgreSQL's intersections (kept as it is on failure). */
void tsi_api_int_refresh(PGconn *c);
/* Fills the cache from $archive/intersections/<file>.parquet through the server's DuckDB, unless
 * PostgreSQL's view is already there. */
void tsi_api_int_load_parquet(void);

#endif
