/* api/pool.h — the database connections of `tsi serve`: each worker thread's PostgreSQL
 * (and DuckDB) connection, the helper connections a request may borrow for a second
 * backend, where reads go now (PostgreSQL or Parquet), and the database monitor thread
 * (LISTEN tsi_latest, liveness, reconnect, the fallback switch).
 *
 * Ownership: a worker belongs to its thread (created on first use, freed by
 * tsi_api_pool_close); its connections are the pool's, borrowed by the request that runs
 * on the thread and never closed by it. A helper belongs to whoever borrowed it until
 * tsi_api_pg_return. The monitor thread owns its own connection. */
#ifndef TSI_API_POOL_H
#define TSI_API_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>

#include <duckdb.h>

#include "api/req.h"

typedef struct tsi_worker {
    PGconn *pg;
    duckdb_connection dc;
    bool dc_ok;
} tsi_worker;

/* The worker of the calling thread (created on first use). */
tsi_worker *tsi_api_worker(void);
/* A connected PostgreSQL connection of this worker with statements prepared, or NULL
 * when the database is unreachable (the monitor is told). */
PGconn *tsi_api_pg(tsi_req *r);
/* Tells the server that a query failed on a broken connection: drops it. */
void tsi_api_pg_broken(tsi_req *r);
/* A helper connection (statements prepared, as tsi_api_pg's) for a request that reads
 * on a second backend at once, or NULL when none is free or the database is down: never
 * waits. One per two cores; *slot names it for tsi_api_pg_return, which every borrow must
 * reach (broken: the connection is dropped, and reconnected by a later borrow). */
PGconn *tsi_api_pg_borrow(tsi_req *r, int *slot);
void tsi_api_pg_return(int slot, bool broken);
/* Whether reads go to Parquet now (mode parquet, or auto while the DB is down). */
bool tsi_api_use_parquet(void);
/* Records whether the database is reachable; on a change bumps the answers' generation
 * and restarts the clock of X-Data-Source-Since. Returns whether it changed. */
bool tsi_api_db_state(bool up);

/* The monitor thread's body (pthread_create(..., tsi_api_monitor, a)): runs until a->stop,
 * keeping a->db_up, a->listening, a->gen, the server versions and the intersections cache
 * (names.h) current. */
void *tsi_api_monitor(void *arg);

/* At shutdown, after the HTTP threads and the monitor stopped: closes and frees every
 * worker's connections and the helpers'. */
void tsi_api_pool_close(void);

#endif
