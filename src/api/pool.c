/* api/pool.c — worker and helper PostgreSQL connections, the data source switch and the
 * database monitor (pool.h). */
#include "api/pool.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include "api/names.h"
#include "api/queries.h"
#include "api/state.h"
#include "base/tz.h"
#include "base/log.h"
#include "db/conn.h"
#include "db/result.h"

/* ---- workers ------------------------------------------------------------------------ */
static _Thread_local tsi_worker *tl_worker;
static pthread_mutex_t workers_mu = PTHREAD_MUTEX_INITIALIZER;
static tsi_worker *workers[1024];
static int nworkers;

tsi_worker *tsi_api_worker(void)
{
    if (!tl_worker) {
        tl_worker = calloc(1, sizeof *tl_worker);
        if (!tl_worker)
            abort();
        pthread_mutex_lock(&workers_mu);
        if (nworkers < 1024)
            workers[nworkers++] = tl_worker;
        pthread_mutex_unlock(&workers_mu);
    }
    return tl_worker;
}

static double last_fail_at; /* do not hammer a dead server from every request */

/* a new session as the API's statements want it, or NULL (logged); a helper's session
 * says so in pg_stat_activity (application_name "tsi serve helper") */
static PGconn *session_open(tsi_req *r, bool helper, tsi_error *e)
{
    PGconn *c = tsi_db_connect(TSI_ROLE_READER, NULL, e);
    if (!c)
        return NULL;
    /* generic plans: planning over the partitions costs more than running these
     * index lookups (14 ms vs 0.7 ms measured); runtime pruning still prunes. The
     * session's zone is TSI_TIMEZONE: date_trunc and ::date of timestamptz are local. */
    char *zq = PQescapeLiteral(c, tsi_tz_name(), strlen(tsi_tz_name()));
    char set[384];
    snprintf(set, sizeof set,
             "SET TIME ZONE %s; SET statement_timeout = %d;"
             " SET plan_cache_mode = force_generic_plan%s",
             zq ? zq : "'UTC'", tsi_api_g->statement_ms > 0 ? tsi_api_g->statement_ms : 30000,
             helper ? "; SET application_name = 'tsi serve helper'" : "");
    PQfreemem(zq);
    PGresult *sr = PQexec(c, set);
    if (PQresultStatus(sr) != PGRES_COMMAND_OK) {
        tsi_err("api", "req=%s cannot set the session (time zone %s): %s", r ? r->id : "-",
                tsi_tz_name(), PQerrorMessage(c));
        PQclear(sr);
        PQfinish(c);
        return NULL;
    }
    PQclear(sr);
    if (tsi_api_prepare(c) < 0) {
        tsi_err("api", "req=%s cannot prepare statements: %s", r ? r->id : "-", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    atomic_fetch_add(&tsi_api_g->m.pool_connected, 1);
    atomic_fetch_add(&tsi_api_g->m.reconnects, 1);
    return c;
}

PGconn *tsi_api_pg(tsi_req *r)
{
    tsi_api *a = tsi_api_g;
    tsi_worker *w = tsi_api_worker();
    if (w->pg && PQstatus(w->pg) == CONNECTION_OK)
        return w->pg;
    if (w->pg) {
        PQfinish(w->pg);
        w->pg = NULL;
        atomic_fetch_sub(&a->m.pool_connected, 1);
    }
    if (!atomic_load(&a->db_up) && tsi_api_now() - last_fail_at < 1.0)
        return NULL;
    tsi_error e = {0};
    PGconn *c = session_open(r, false, &e);
    if (!c && e.message[0]) {
        last_fail_at = tsi_api_now();
        tsi_api_db_state(false);
        tsi_warn("api", "req=%s database unreachable: %s %s", r ? r->id : "-", e.message, e.detail);
    }
    w->pg = c;
    return c;
}

/* ---- helper connections: a second backend for a request that splits its reading ------ */
#define HELPERS_MAX 8
static struct {
    atomic_int busy;
    PGconn *pg; /* owned by whoever holds busy */
} helpers[HELPERS_MAX];
static _Atomic double helper_fail_at;

PGconn *tsi_api_pg_borrow(tsi_req *r, int *slot)
{
    tsi_api *a = tsi_api_g;
    if (!atomic_load(&a->db_up) || tsi_api_now() - atomic_load(&helper_fail_at) < 1.0)
        return NULL;
    long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    n = n < 1 ? 1 : n > HELPERS_MAX ? HELPERS_MAX : n;
    for (int i = 0; i < (int)n; i++) {
        int free_ = 0;
        if (!atomic_compare_exchange_strong(&helpers[i].busy, &free_, 1))
            continue;
        if (helpers[i].pg && PQstatus(helpers[i].pg) != CONNECTION_OK) {
            PQfinish(helpers[i].pg);
            helpers[i].pg = NULL;
            atomic_fetch_sub(&a->m.pool_connected, 1);
        }
        if (!helpers[i].pg) {
            tsi_error e = {0};
            if (!(helpers[i].pg = session_open(r, true, &e))) {
                atomic_store(&helper_fail_at, tsi_api_now());
                atomic_store(&helpers[i].busy, 0);
                return NULL;
            }
        }
        *slot = i;
        return helpers[i].pg;
    }
    return NULL;
}

void tsi_api_pg_return(int slot, bool broken)
{
    if (slot < 0 || slot >= HELPERS_MAX)
        return;
    if (broken && helpers[slot].pg) {
        atomic_fetch_add(&tsi_api_g->m.db_errors, 1);
        PQfinish(helpers[slot].pg);
        helpers[slot].pg = NULL;
        atomic_fetch_sub(&tsi_api_g->m.pool_connected, 1);
    }
    atomic_store(&helpers[slot].busy, 0);
}

void tsi_api_pg_broken(tsi_req *r)
{
    tsi_worker *w = tsi_api_worker();
    atomic_fetch_add(&tsi_api_g->m.db_errors, 1);
    if (w->pg && PQstatus(w->pg) != CONNECTION_OK) {
        PQfinish(w->pg);
        w->pg = NULL;
        atomic_fetch_sub(&tsi_api_g->m.pool_connected, 1);
        /* db_up stays the monitor's call: a connection that died while the server
         * restarted is replaced by the caller's retry */
        tsi_warn("api", "req=%s database connection lost", r ? r->id : "-");
    }
}

bool tsi_api_db_state(bool up)
{
    tsi_api *a = tsi_api_g;
    if (atomic_exchange(&a->db_up, up ? 1 : 0) == (up ? 1 : 0))
        return false;
    atomic_fetch_add(&a->gen, 1);
    atomic_store(&a->source_since, (long long)time(NULL));
    return true;
}

bool tsi_api_use_parquet(void)
{
    tsi_api *a = tsi_api_g;
    if (a->source_mode == TSI_SRC_PARQUET)
        return true;
    if (a->source_mode == TSI_SRC_POSTGRES)
        return false;
    return !atomic_load(&a->db_up);
}

/* ---- the monitor: LISTEN, liveness, reconnect --------------------------------------- */
void *tsi_api_monitor(void *arg)
{
    tsi_api *a = arg;
    PGconn *c = NULL;
    double last_refresh = 0;
    while (!atomic_load(&a->stop)) {
        if (a->source_mode == TSI_SRC_PARQUET) {
            sleep(1);
            continue;
        }
        if (!c || PQstatus(c) != CONNECTION_OK) {
            if (c) {
                PQfinish(c);
                c = NULL;
            }
            atomic_store(&a->listening, 0);
            tsi_error e = {0};
            c = tsi_db_connect(TSI_ROLE_READER, NULL, &e);
            if (!c) {
                if (tsi_api_db_state(false)) {
                    tsi_warn("api",
                             "database unreachable, answering from Parquet where possible:"
                             " %s",
                             e.detail);
                }
                for (int i = 0; i < 10 && !atomic_load(&a->stop); i++)
                    usleep(100000);
                continue;
            }
            PQclear(PQexec(c, "SET TIME ZONE 'UTC'; SET application_name = 'tsi serve monitor'"));
            PGresult *res = PQexec(c, "LISTEN tsi_latest");
            int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            PQclear(res);
            res = PQexec(c, "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname ="
                            " 'postgis'), '') AS postgis,"
                            " current_setting('server_version') AS server_version");
            if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
                pthread_mutex_lock(&a->info_mu);
                snprintf(a->postgis, sizeof a->postgis, "%s", tsi_pq_get(res, 0, "postgis"));
                snprintf(a->pgversion, sizeof a->pgversion, "%s",
                         tsi_pq_get(res, 0, "server_version"));
                pthread_mutex_unlock(&a->info_mu);
            }
            PQclear(res);
            tsi_api_int_refresh(c);
            last_refresh = tsi_api_now();
            atomic_store(&a->listening, ok);
            if (tsi_api_db_state(true)) {
                tsi_info("api", "database reachable, answering from PostgreSQL");
            }
        }
        int fd = PQsocket(c);
        fd_set rs;
        FD_ZERO(&rs);
        FD_SET(fd, &rs);
        struct timeval tv = {0, 500000};
        int n = select(fd + 1, &rs, NULL, NULL, &tv);
        if (n < 0 && errno != EINTR)
            continue;
        if (n == 0) {
            /* idle: probe liveness (also notices a server that went away quietly) */
            PGresult *res = PQexec(c, "SELECT 1");
            int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
            PQclear(res);
            if (!ok) {
                PQfinish(c);
                c = NULL;
                continue;
            }
            /* reachable: a worker that lost its connection may have said otherwise */
            if (tsi_api_db_state(true)) {
                tsi_info("api", "database reachable again, answering from PostgreSQL");
            }
            if (tsi_api_now() - last_refresh > 30) {
                tsi_api_int_refresh(c);
                last_refresh = tsi_api_now();
            }
        }
        if (!PQconsumeInput(c)) {
            PQfinish(c);
            c = NULL;
            continue;
        }
        PGnotify *nt;
        int got = 0;
        while ((nt = PQnotifies(c)) != NULL) {
            got = 1;
            PQfreemem(nt);
        }
        if (got)
            atomic_fetch_add(&a->gen, 1);
    }
    if (c)
        PQfinish(c);
    return NULL;
}

void tsi_api_pool_close(void)
{
    pthread_mutex_lock(&workers_mu);
    for (int i = 0; i < nworkers; i++) {
        if (workers[i]->pg)
            PQfinish(workers[i]->pg);
        if (workers[i]->dc_ok)
            duckdb_disconnect(&workers[i]->dc);
        free(workers[i]);
    }
    nworkers = 0;
    pthread_mutex_unlock(&workers_mu);
    for (int i = 0; i < HELPERS_MAX; i++)
        if (helpers[i].pg) {
            PQfinish(helpers[i].pg);
            helpers[i].pg = NULL;
            atomic_fetch_sub(&tsi_api_g->m.pool_connected, 1);
        }
}
