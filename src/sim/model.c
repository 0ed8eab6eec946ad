/* sim/model.c — see model.h
 *
 * Geometry of one intersection, in its local plane (x east, y north, metres), rotated by
 * rot_deg: approach a (0 N, 1 E, 2 S, 3 W) points outward along bearing rot + 90a.
 * Vehicles entering on approach a share its ingress lane (5 m right of the road axis,
 * path coordinate s from 0 at 140 m out, stop line at s = 124) and then take one of
 * three movements: through (straight on to 140 m out on the opposite leg, s up to 280),
 * right (a 7 m quarter circle from s = 128 into the egress lane of leg a+3) or left (a
 * 10 m quarter circle from s = 135 into the egress lane of leg a+1). In the approach's
 * frame (f forward from the centre, l to the driver's right) the through lane is l = 5,
 * the right arc is centred at (-12, 12), the left arc at (-5, -5); each egress lane is
 * 5 m right of its leg's axis. Crosswalk a crosses leg a at 11 m from the centre, from
 * one corner (±12 m) to the other.
 *
 * Signals: split phasing. Approach k (0..3) is green from 21 s k to 21 s k + 14 s, then
 * yellow 4 s, then red (3 s all-red between approaches); after approach 3, 6 s all-red,
 * then all four crosswalks walk together (7 s walk, 23 s flashing, the last 3 s of the
 * 120 s cycle all-red). Movements of one approach never cross, opposing approaches are
 * never green together and no vehicle moves through a crosswalk while pedestrians walk:
 * ordinary traffic has no conflicts by construction. */
#include "sim/model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DT          0.1
#define SUBSTEPS    5
#define PATH_LEN    (2 * TSI_SIM_APPROACH_LEN)
#define STOP_S      (TSI_SIM_APPROACH_LEN - TSI_SIM_STOP_LINE)
#define IDM_A       1.5
#define IDM_B       2.0
#define IDM_S0      3.0
#define IDM_T       1.8
#define COMFORT_MAX 2.9 /* m/s²: ordinary braking never reaches the hard-braking 3.0 */
#define MAX_VRU     64
#define MAX_PAIRS   16
#define PH_LEN      21000 /* ms per vehicle phase */
#define PH_GREEN    14000
#define PH_YELLOW   4000
#define PED_START   87000 /* ms in the cycle the pedestrian phase starts */
#define PED_WALK    7000
#define PED_CLEAR   30000 /* walk + flashing */
#define CYCLE_MS    ((int64_t)TSI_SIM_CYCLE_S * 1000)
#define SPAWN_RATE  0.045 /* vehicles per s per approach at profile 1, demand 1 */
#define TURN_BRAKE  1.0   /* m/s², deceleration towards the turn speed */
#define EG_CAP      96

enum { MV_THRU = 0, MV_LEFT = 1, MV_RIGHT = 2 };

const tsi_sim_vendor tsi_sim_vendors[4] = {
    {"Commsignia", false, false, false},
    {"Cohda Wireless", true, false, false},
    {"Kapsch", false, true, false},
    {"Siemens", false, false, true},
};

enum {
    M_NORMAL = 0,
    M_HB,         /* spontaneous hard brake */
    M_VVL_CRUISE, /* rear-end near miss: leader cruising to the trigger point */
    M_VVL_BRAKE,
    M_VVF_CRUISE, /* follower: distracted, keeps speed for 1 s after the leader brakes */
    M_VVF_BRAKE,
    M_HOLD,
    M_JAY, /* jaywalker ahead: 0.5 s reaction, then hard brake, then wait */
    M_JAY_BRAKE,
    M_WAITPED,
};

enum { D_NONE = 0, D_STOP, D_GO };
enum { W_WAIT = 0, W_CROSS, W_DONE, J_OUT, J_HOLD, J_BACK };

typedef struct veh {
    uint32_t id, partner;
    uint8_t mode, vendor, msgcnt, decision, mv, egress;
    float s, v, a, v0, len, wid, timer, prev_speed;
    int64_t minute, hb_minute, prev_ts;
} veh;

typedef struct path {
    veh *v; /* front (largest s) first */
    int n, cap, pending;
} path;

typedef struct vru {
    uint32_t id, partner;
    uint8_t type, state, leg, msgcnt;
    float x, y, tx, ty, ox, oy, speed, heading, cur_speed, timer;
    int64_t minute;
} vru;

typedef struct pairtrack {
    uint32_t a, b;
    char kind;
    bool met;
    int64_t until_ms;
} pairtrack;

typedef struct istate {
    uint64_t rng;
    path paths[4];
    vru *vrus;
    int nvru;
    pairtrack pairs[MAX_PAIRS];
    int npairs;
    int pend_vv, pend_vru, pend_hb;
    tsi_sim_minute *ring;
    /* geometry cache (local plane) */
    double p0x[4], p0y[4], dx[4], dy[4], rx[4], ry[4], ux[4], uy[4], px[4], py[4], head[4];
    uint64_t map_phase;
    uint32_t id_salt, id_next; /* temporary ids: see new_id */
} istate;

struct tsi_sim_model {
    tsi_sim_cfg cfg;
    int n;
    tsi_sim_isect *is;
    istate *st;
    int64_t now_ms;
    bool emitting;
    tsi_sim_sample *smp;
    size_t nsmp, capsmp;
    tsi_sim_conflict *cf;
    size_t ncf, capcf;
    uint64_t inj_vv, inj_vru, missed;
    double qx, qy; /* quirks offset of positions, m */
};

/* ---- random numbers: splitmix64, one stream per intersection ---- */

static uint64_t rnext(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double runif(uint64_t *s)
{
    return (double)(rnext(s) >> 11) * 0x1.0p-53;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0xD6E8FEB86659FD93ull);
    return rnext(&s);
}

static double round_to(double v, double q)
{
    return round(v / q) * q;
}

void tsi_sim_cfg_defaults(tsi_sim_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->n_intersections = 10;
    c->seed = 1;
    c->start_ms = 1764068400000LL; /* 2025-11-25T11:00:00Z */
    c->demand = 1.0;
    c->vv_rate = 2.0;
    c->vru_rate = 2.0;
    c->hard_brake_rate = 4.0;
    c->ped_rate = 40.0;
    c->tz_offset_min = -300;
    c->truth_minutes = 240;
    c->warmup_s = 120;
    c->turn_left = 0.15;
    c->turn_right = 0.15;
}

/* ---- daily profile ---- */

double tsi_sim_profile(int64_t t_ms, int tz_offset_min)
{
    static const double h[25] = {0.12, 0.08, 0.06, 0.06, 0.10, 0.25, 0.55, 0.95, 1.00,
                                 0.70, 0.55, 0.55, 0.60, 0.55, 0.55, 0.70, 0.90, 1.00,
                                 0.95, 0.60, 0.40, 0.32, 0.25, 0.18, 0.12};
    int64_t local = t_ms + (int64_t)tz_offset_min * 60000;
    int64_t day = 86400000LL;
    int64_t ms = ((local % day) + day) % day;
    double hours = (double)ms / 3600000.0;
    int i = (int)hours;
    double f = hours - i;
    return h[i] * (1 - f) + h[i + 1] * f;
}

/* ---- signals ---- */

static int sg_state(int sg, int64_t tc, int64_t *rem)
{
    int st, k;
    int64_t r, rel;
    switch (sg) {
    case 6:
    case 8:
    case 2:
    case 4: /* split phasing: approach k = 0,1,2,3 (groups 6,8,2,4) green in turn */
        k = sg == 6 ? 0 : sg == 8 ? 1 : sg == 2 ? 2 : 3;
        rel = (tc - (int64_t)k * PH_LEN + CYCLE_MS) % CYCLE_MS;
        if (rel < PH_GREEN)
            st = 6, r = PH_GREEN - rel;
        else if (rel < PH_GREEN + PH_YELLOW)
            st = 8, r = PH_GREEN + PH_YELLOW - rel;
        else
            st = 3, r = CYCLE_MS - rel;
        break;
    case 10:
    case 12:
    case 14:
    case 16: /* exclusive pedestrian phase: every crosswalk at once */
        rel = (tc - PED_START + CYCLE_MS) % CYCLE_MS;
        if (rel < PED_WALK)
            st = 6, r = PED_WALK - rel;
        else if (rel < PED_CLEAR)
            st = 8, r = PED_CLEAR - rel;
        else
            st = 3, r = CYCLE_MS - rel;
        break;
    default:
        st = 0, r = 0;
    }
    if (rem)
        *rem = r;
    return st;
}

static int64_t cycle_pos(const tsi_sim_isect *s, int64_t t_ms)
{
    int64_t c = (int64_t)TSI_SIM_CYCLE_S * 1000;
    int64_t v = (t_ms + (int64_t)s->offset_s * 1000) % c;
    return v < 0 ? v + c : v;
}

static const int veh_sg[4] = {6, 8, 2, 4};

int tsi_sim_signal(const tsi_sim_model *m, int i, int signal_group, int64_t t_ms, int64_t *end_ms)
{
    int64_t rem = 0;
    int st = sg_state(signal_group, cycle_pos(&m->is[i], t_ms), &rem);
    if (end_ms)
        *end_ms = t_ms + rem;
    return st;
}

/* ---- geometry ---- */

static void dir(double bearing, double *x, double *y)
{
    double r = bearing * M_PI / 180.0;
    *x = sin(r);
    *y = cos(r);
}

static void setup_geometry(istate *st, const tsi_sim_isect *s)
{
    for (int a = 0; a < 4; a++) {
        double th = s->rot_deg + 90.0 * a;
        dir(th, &st->ux[a], &st->uy[a]);
        dir(th + 180.0, &st->dx[a], &st->dy[a]);
        dir(th - 90.0, &st->rx[a], &st->ry[a]);
        dir(th + 90.0, &st->px[a], &st->py[a]);
        st->p0x[a] = TSI_SIM_APPROACH_LEN * st->ux[a] + TSI_SIM_LANE_OFFSET * st->rx[a];
        st->p0y[a] = TSI_SIM_APPROACH_LEN * st->uy[a] + TSI_SIM_LANE_OFFSET * st->ry[a];
        double h = fmod(th + 180.0, 360.0);
        st->head[a] = h < 0 ? h + 360.0 : h;
    }
}

static void path_xy(const istate *st, int a, double s, double *x, double *y)
{
    *x = st->p0x[a] + s * st->dx[a];
    *y = st->p0y[a] + s * st->dy[a];
}

/* Movement geometry in the approach frame (f forward from the centre, l to the right). */
typedef struct mvgeo {
    double s0;   /* arc start (path s) */
    double alen; /* arc length */
    double r;    /* radius */
    double fc, lc;
    double q0;        /* outward distance along the egress leg where the arc ends */
    double vt;        /* turn speed: lateral acceleration TSI_SIM_TURN_ALAT */
    double block_end; /* a vehicle's rear past this s frees the shared ingress lane */
    double vcap[4];   /* turn speed per vehicle length (LEN_T): see ped_cap */
} mvgeo;

static const double LEN_T[4] = {4.6, 4.8, 5.0, 9.0}; /* the lengths vehicles have */

static mvgeo MG[3];
static pthread_once_t mg_once = PTHREAD_ONCE_INIT;

static void veh_pose(const istate *st, int a, int mv, double s, double *x, double *y, double *hd,
                     double *curv);

/* A turning vehicle passes pedestrians waiting at the corners (crosswalk ends, 12 m off
 * the road axis): near its end, the tangent of a left-turn arc points at the far corner
 * of the egress leg, about 15 m away (a TTC near 2 s at 4.9 m/s). Returns the largest arc
 * speed that keeps the TTC of domain.md §3 to every corner above 3 s (with 10 % margin)
 * for this vehicle length; computed once per length at start. */
static double ped_cap(int mv, double len)
{
    istate st;
    memset(&st, 0, sizeof st);
    st.dx[0] = 0, st.dy[0] = 1, st.rx[0] = 1, st.ry[0] = 0; /* f = y, l = x */
    double best = 1e9;
    const mvgeo *g = &MG[mv];
    for (int i = 0; i <= 180; i++) {
        double x, y, hd, curv;
        veh_pose(&st, 0, mv, g->s0 + g->alen * i / 180.0, &x, &y, &hd, &curv);
        double vx = sin(hd * M_PI / 180), vy = cos(hd * M_PI / 180);
        for (int c = 0; c < 8; c++) {
            double sgn1 = (c & 1) ? 1 : -1, sgn2 = (c & 2) ? 1 : -1;
            double px = (c & 4) ? sgn1 * TSI_SIM_CW_HALF : sgn1 * TSI_SIM_CROSSWALK;
            double py = (c & 4) ? sgn2 * TSI_SIM_CROSSWALK : sgn2 * TSI_SIM_CW_HALF;
            double t = tsi_sim_ttc(x, y, vx, vy, px, py, 0, 0, len / 2 + 0.5);
            if (t >= 0 && t < best)
                best = t;
        }
    }
    return best / (TSI_SIM_VRU_TTC * 1.1);
}

static void init_mvgeo(void)
{
    const double L = TSI_SIM_APPROACH_LEN, o = TSI_SIM_LANE_OFFSET;
    const double rl = TSI_SIM_LEFT_R, rr = TSI_SIM_RIGHT_R;
    MG[MV_LEFT] =
        (mvgeo){L + o - rl, rl * M_PI / 2, rl, o - rl, o - rl, rl - o, sqrt(TSI_SIM_TURN_ALAT * rl),
                0,          {0, 0, 0, 0}};
    MG[MV_LEFT].block_end = MG[MV_LEFT].s0 + MG[MV_LEFT].alen;
    MG[MV_RIGHT] = (mvgeo){
        L - o - rr, rr * M_PI / 2, rr, -(o + rr), o + rr, o + rr, sqrt(TSI_SIM_TURN_ALAT * rr),
        0,          {0, 0, 0, 0}};
    MG[MV_RIGHT].block_end = MG[MV_RIGHT].s0 + MG[MV_RIGHT].alen;
    MG[MV_THRU] = (mvgeo){1e9, 0, 0, 0, 0, 0, 1e9, MG[MV_LEFT].s0 + 4.0, {1e9, 1e9, 1e9, 1e9}};
    for (int mv = MV_LEFT; mv <= MV_RIGHT; mv++)
        for (int k = 0; k < 4; k++)
            MG[mv].vcap[k] = fmin(MG[mv].vt, ped_cap(mv, LEN_T[k]));
}

/* Turn speed of a vehicle of this length and movement. */
static double turn_speed(int mv, double len)
{
    for (int k = 0; k < 4; k++)
        if (len <= LEN_T[k] + 1e-3)
            return MG[mv].vcap[k];
    return MG[mv].vcap[3];
}

/* Outward distance along the egress leg (negative before the movement reaches it). */
static double veh_q(const veh *v)
{
    if (v->mv == MV_THRU)
        return v->s - TSI_SIM_APPROACH_LEN;
    const mvgeo *g = &MG[v->mv];
    return v->s - (g->s0 + g->alen) + g->q0;
}

static double mv_len(int mv)
{
    if (mv == MV_THRU)
        return PATH_LEN;
    return MG[mv].s0 + MG[mv].alen + TSI_SIM_APPROACH_LEN - MG[mv].q0;
}

static bool on_egress(const veh *v)
{
    return v->mv == MV_THRU ? v->s >= TSI_SIM_APPROACH_LEN : v->s >= MG[v->mv].s0 + MG[v->mv].alen;
}

/* Position and heading of a vehicle of approach a with movement mv at s; *curv is the
 * signed curvature (1/m, + right) at that point. */
static void veh_pose(const istate *st, int a, int mv, double s, double *x, double *y, double *hd,
                     double *curv)
{
    double f, l, phi = 0, k = 0;
    const mvgeo *g = &MG[mv];
    if (mv == MV_THRU || s <= g->s0) {
        f = s - TSI_SIM_APPROACH_LEN;
        l = TSI_SIM_LANE_OFFSET;
    } else if (s <= g->s0 + g->alen) {
        double ang = (s - g->s0) / g->r;
        f = g->fc + g->r * sin(ang);
        if (mv == MV_RIGHT) {
            l = g->lc - g->r * cos(ang);
            phi = ang;
            k = 1.0 / g->r;
        } else {
            l = g->lc + g->r * cos(ang);
            phi = -ang;
            k = -1.0 / g->r;
        }
    } else {
        double e = s - (g->s0 + g->alen) + g->q0;
        if (mv == MV_RIGHT) {
            f = -TSI_SIM_LANE_OFFSET;
            l = e;
            phi = M_PI / 2;
        } else {
            f = TSI_SIM_LANE_OFFSET;
            l = -e;
            phi = -M_PI / 2;
        }
    }
    *x = f * st->dx[a] + l * st->rx[a];
    *y = f * st->dy[a] + l * st->ry[a];
    double h = fmod(st->head[a] + phi * 180.0 / M_PI + 360.0, 360.0);
    *hd = h;
    *curv = k;
}

/* ---- construction ---- */

static void build_isects(tsi_sim_model *m)
{
    /* the corridor: Nutley St (running about 328° from US-50 to US-29), Fairfax VA */
    static const struct {
        const char *name, *rsu, *loc;
        double lat, lon;
        int id;
    } corridor[] = {
        {"US-29 (Lee Hwy) & Nutley St", "rsu-us29-nutley", "US-29 & Nutley", 38.8735, -77.2710,
         4101},
        {"US-50 (Arlington Blvd) & Nutley St", "rsu-us50-nutley", "US-50 & Nutley", 38.8666,
         -77.2655, 4102},
    };
    int ncor = (int)(sizeof corridor / sizeof corridor[0]);
    int cols = (int)ceil(sqrt((double)m->n));
    tsi_ltp base;
    tsi_ltp_init(&base, 38.8600, -77.2500); /* grid origin, south-east of the corridor */
    for (int i = 0; i < m->n; i++) {
        tsi_sim_isect *s = &m->is[i];
        uint64_t h = mix(m->cfg.seed, (uint64_t)i + 1);
        s->region = 1;
        if (i < ncor) {
            s->local_id = corridor[i].id;
            snprintf(s->name, sizeof s->name, "%s", corridor[i].name);
            snprintf(s->rsu, sizeof s->rsu, "%s", corridor[i].rsu);
            snprintf(s->location, sizeof s->location, "%s", corridor[i].loc);
            s->lat = corridor[i].lat;
            s->lon = corridor[i].lon;
            s->rot_deg = 328.0;
            s->speed_limit = 35 * 0.44704;
            s->demand_ns = 1.3;
            s->demand_ew = 0.8;
            s->offset_s = (int)(i * 20);
        } else {
            int k = i - ncor;
            int r = k / cols, c = k % cols;
            s->local_id = 5001 + k;
            snprintf(s->name, sizeof s->name, "Sim Ave %d & Grid St %d", r + 1, c + 1);
            snprintf(s->rsu, sizeof s->rsu, "rsu-g%04d", k + 1);
            s->location[0] = '\0';
            tsi_ltp_to_ll(&base, 600.0 * c, -600.0 * r, &s->lat, &s->lon);
            s->rot_deg = 0.0;
            static const double limits[3] = {25, 35, 45};
            s->speed_limit = limits[h % 3] * 0.44704;
            s->demand_ns = 0.6 + 0.6 * (double)((h >> 8) % 100) / 100.0;
            s->demand_ew = 0.4 + 0.6 * (double)((h >> 16) % 100) / 100.0;
            s->offset_s = (int)((h >> 24) % TSI_SIM_CYCLE_S);
        }
        s->elev = 95.0 + (double)((h >> 32) % 400) / 10.0;
        tsi_ltp_init(&s->ltp, s->lat, s->lon);
        if (m->cfg.quirks && !s->location[0])
            snprintf(s->location, sizeof s->location, "Sim Ave %d & Grid St %d",
                     (i - ncor) / cols + 1, (i - ncor) % cols + 1);
        if (m->cfg.quirks)
            snprintf(s->rsu, sizeof s->rsu, "From_WebSocket"); /* the real streams' rsuName */
        istate *st = &m->st[i];
        st->rng = mix(m->cfg.seed ^ 0x5157ull, (uint64_t)i);
        st->map_phase = h % (6ull * 3600 * 1000);
        st->id_salt = (uint32_t)(mix(m->cfg.seed ^ 0x1d5ull, (uint64_t)i) & 0x7fffffff);
        setup_geometry(st, s);
        st->ring = malloc(sizeof(tsi_sim_minute) * (size_t)m->cfg.truth_minutes);
        if (!st->ring)
            abort();
        for (int k = 0; k < m->cfg.truth_minutes; k++)
            st->ring[k].minute_ms = -1;
    }
}

tsi_sim_model *tsi_sim_model_new(const tsi_sim_cfg *cfg)
{
    if (cfg->n_intersections < 1 || cfg->n_intersections > TSI_SIM_MAX_ISECT ||
        cfg->truth_minutes < 1 || cfg->demand < 0 || cfg->vv_rate < 0 || cfg->vru_rate < 0 ||
        cfg->hard_brake_rate < 0 || cfg->ped_rate < 0 || cfg->warmup_s < 0 ||
        !(cfg->turn_left >= 0 && cfg->turn_left <= 1) ||
        !(cfg->turn_right >= 0 && cfg->turn_right <= 1) ||
        cfg->turn_left + cfg->turn_right > 1 + 1e-12)
        return NULL;
    pthread_once(&mg_once, init_mvgeo);
    tsi_sim_model *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->cfg = *cfg;
    m->n = cfg->n_intersections;
    m->is = calloc((size_t)m->n, sizeof *m->is);
    m->st = calloc((size_t)m->n, sizeof *m->st);
    if (!m->is || !m->st)
        abort();
    if (cfg->quirks) {
        m->qx = 300.0 * sin(M_PI / 4);
        m->qy = 300.0 * cos(M_PI / 4);
    }
    build_isects(m);
    int64_t start = cfg->start_ms;
    if (start % TSI_SIM_TICK_MS)
        start += TSI_SIM_TICK_MS - (start % TSI_SIM_TICK_MS);
    m->cfg.start_ms = start;
    int warm_ticks = cfg->warmup_s * 1000 / TSI_SIM_TICK_MS;
    m->now_ms = start - (int64_t)(warm_ticks + 1) * TSI_SIM_TICK_MS;
    m->emitting = false;
    size_t n;
    for (int k = 0; k < warm_ticks; k++)
        tsi_sim_model_step(m, &n);
    m->emitting = true;
    return m;
}

void tsi_sim_model_free(tsi_sim_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        for (int a = 0; a < 4; a++)
            free(m->st[i].paths[a].v);
        free(m->st[i].vrus);
        free(m->st[i].ring);
    }
    free(m->is);
    free(m->st);
    free(m->smp);
    free(m->cf);
    free(m);
}

int64_t tsi_sim_model_now(const tsi_sim_model *m)
{
    return m->now_ms;
}

const tsi_sim_cfg *tsi_sim_model_cfg(const tsi_sim_model *m)
{
    return &m->cfg;
}

int tsi_sim_model_count(const tsi_sim_model *m)
{
    return m->n;
}

const tsi_sim_isect *tsi_sim_model_isect(const tsi_sim_model *m, int i)
{
    return (i >= 0 && i < m->n) ? &m->is[i] : NULL;
}

int64_t tsi_sim_isect_id(const tsi_sim_isect *s)
{
    return (int64_t)s->region * 65536 + s->local_id;
}

int tsi_sim_model_find(const tsi_sim_model *m, int64_t id)
{
    for (int i = 0; i < m->n; i++)
        if (tsi_sim_isect_id(&m->is[i]) == id)
            return i;
    return -1;
}

int tsi_sim_model_map_revision(const tsi_sim_model *m, int i, int64_t t_ms, int64_t *changed_ms)
{
    const int64_t period = 6LL * 3600 * 1000;
    int64_t x = t_ms + (int64_t)m->st[i].map_phase;
    int64_t k = x / period;
    if (changed_ms)
        *changed_ms = t_ms - (x % period);
    return (int)(1 + k % 127);
}

/* ---- vehicles ---- */

static veh *path_push(path *p)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->v = realloc(p->v, sizeof(veh) * (size_t)p->cap);
        if (!p->v)
            abort();
    }
    veh *v = &p->v[p->n++];
    memset(v, 0, sizeof *v);
    v->minute = -1;
    v->hb_minute = -1;
    v->prev_speed = -1;
    v->prev_ts = -1;
    return v;
}

/* A temporary id that looks random but never repeats within an intersection (2^31 road
 * users): a bijection of 31-bit integers applied to a counter. Two road users of one
 * intersection-minute never share an id, so "distinct ids" counts road users exactly. */
static uint32_t new_id(istate *st)
{
    uint32_t x;
    do { /* 0 is skipped (never an id) */
        x = (st->id_next++ ^ st->id_salt) & 0x7fffffff;
        x ^= x >> 15;
        x = (x * 0x2c1b3c6du) & 0x7fffffff; /* odd multiplier: bijective modulo 2^31 */
        x ^= x >> 12;
        x = (x * 0x297a2d39u) & 0x7fffffff;
        x ^= x >> 15;
    } while (x == 0);
    return x;
}

static void new_vehicle(const tsi_sim_model *m, istate *st, veh *v, int a, double speed_limit)
{
    v->id = new_id(st);
    double t = runif(&st->rng);
    v->mv = t < m->cfg.turn_left                       ? MV_LEFT
            : t < m->cfg.turn_left + m->cfg.turn_right ? MV_RIGHT
                                                       : MV_THRU;
    v->egress = (uint8_t)((a + (v->mv == MV_THRU ? 2 : v->mv == MV_LEFT ? 1 : 3)) % 4);
    double u = runif(&st->rng);
    v->vendor = u < 0.5 ? 0 : u < 0.7 ? 1 : u < 0.9 ? 2 : 3;
    v->msgcnt = (uint8_t)(rnext(&st->rng) % 128);
    double k = runif(&st->rng);
    v->len = k < 0.08 ? 9.0f : k < 0.5 ? 4.6f : 5.0f;
    v->wid = v->len > 8 ? 2.5f : 1.9f;
    v->v0 = (float)(speed_limit * (0.88 + 0.22 * runif(&st->rng)));
}

/* Largest entry speed for a bumper gap: gap >= s0 + T v + v²/5. */
static double spawn_speed(double gap, double v0)
{
    double disc = IDM_T * IDM_T + 4 * 0.2 * (gap - IDM_S0);
    if (gap <= IDM_S0 || disc < 0)
        return 0;
    double v = (-IDM_T + sqrt(disc)) / (2 * 0.2);
    return v < v0 ? v : v0;
}

static double idm(double v, double v0, double gap, double dv)
{
    double sstar = IDM_S0 + fmax(0.0, v * IDM_T + v * dv / (2 * sqrt(IDM_A * IDM_B)));
    if (gap < 0.1)
        gap = 0.1;
    double r = sstar / gap;
    double f = v / (v0 > 0.1 ? v0 : 0.1);
    return IDM_A * (1 - f * f * f * f - r * r);
}

/* Vehicles on the egress lanes (past the end of their movement's arc), per leg: the
 * leaders of vehicles of other approaches heading into the same lane. */
typedef struct egent {
    float q, v, len;
    int ap;
} egent;

typedef struct egtab {
    int n[4];
    egent e[4][EG_CAP];
} egtab;

static void build_egress(const istate *st, egtab *t)
{
    memset(t->n, 0, sizeof t->n);
    for (int a = 0; a < 4; a++) {
        const path *p = &st->paths[a];
        for (int k = 0; k < p->n; k++) {
            const veh *v = &p->v[k];
            if (!on_egress(v) || t->n[v->egress] >= EG_CAP)
                continue;
            egent *e = &t->e[v->egress][t->n[v->egress]++];
            e->q = (float)veh_q(v);
            e->v = v->v;
            e->len = v->len;
            e->ap = a;
        }
    }
}

/* Bumper gap to the leader on the vehicle's own path (1e9: none) and the leader's speed:
 * the nearest vehicle ahead on the same movement, or a vehicle of another movement of the
 * same approach still in the shared lane, or a vehicle of another approach already on
 * the egress lane this one is heading for. */
static double leader_gap(const istate *st, const egtab *t, int a, int k, double *lv)
{
    const path *p = &st->paths[a];
    const veh *x = &p->v[k];
    double best = 1e9;
    *lv = 0;
    for (int j = k - 1; j >= 0; j--) {
        const veh *y = &p->v[j];
        if (y->mv == x->mv || y->s - y->len / 2 < MG[y->mv].block_end) {
            best = y->s - y->len / 2 - (x->s + x->len / 2);
            *lv = y->v;
            break;
        }
    }
    double qx = veh_q(x);
    if (qx > -25) {
        const egent *e = t->e[x->egress];
        for (int j = 0; j < t->n[x->egress]; j++) {
            if (e[j].ap == a || e[j].q <= qx)
                continue;
            double g = e[j].q - e[j].len / 2 - (qx + x->len / 2);
            if (g < best) {
                best = g;
                *lv = e[j].v;
            }
        }
    }
    return best;
}

static void step_path(tsi_sim_model *m, int i, int a, int64_t t_ms, const egtab *eg)
{
    istate *st = &m->st[i];
    path *p = &st->paths[a];
    int sg_st = tsi_sim_signal(m, i, veh_sg[a], t_ms, NULL);
    for (int k = 0; k < p->n; k++) {
        veh *v = &p->v[k];
        double lv = 0;
        double lgap = leader_gap(st, eg, a, k, &lv);
        double front = v->s + v->len / 2;
        double acc = 0;
        switch (v->mode) {
        case M_NORMAL: {
            acc = idm(v->v, v->v0, 1e9, 0);
            if (lgap < 1e8)
                acc = fmin(acc, idm(v->v, v->v0, lgap, v->v - lv));
            if (v->mv != MV_THRU) { /* turn speed on the arc (see turn_speed) */
                const mvgeo *g = &MG[v->mv];
                double d = g->s0 - v->s, vt = turn_speed(v->mv, v->len);
                if (v->s <= g->s0 + g->alen) {
                    double vallow = sqrt(vt * vt + 2 * TURN_BRAKE * fmax(0.0, d));
                    if (v->v <= vallow)
                        acc = fmin(acc, (vallow - v->v) / DT);
                    else
                        acc = fmin(acc, -(v->v * v->v - vt * vt) / (2 * fmax(0.5, d)));
                }
            }
            bool must_stop = false;
            if (front < STOP_S + 0.3) {
                if (sg_st == 6) {
                    v->decision = D_NONE;
                } else if (v->decision == D_NONE) {
                    double d = STOP_S - 1.0 - front;
                    double breq = v->v * v->v / (2 * fmax(0.1, d));
                    v->decision = (sg_st == 8 && breq > 2.7) ? D_GO : D_STOP;
                }
                must_stop = sg_st != 6 && v->decision == D_STOP;
            } else {
                v->decision = D_NONE;
            }
            if (must_stop) {
                double d = STOP_S - 1.0 - front;
                acc = fmin(acc, idm(v->v, v->v0, d, v->v));
                acc = fmin(acc, -(v->v * v->v) / (2 * fmax(0.05, d)));
            }
            if (acc < -COMFORT_MAX)
                acc = -COMFORT_MAX;
            break;
        }
        case M_HB:
            acc = -4.5;
            v->timer -= (float)DT;
            if (v->timer <= 0 || v->v <= 0.01)
                v->mode = M_NORMAL;
            break;
        case M_VVL_CRUISE:
            acc = 0;
            if (v->s >= 50.0) {
                v->mode = M_VVL_BRAKE;
                if (k + 1 < p->n && p->v[k + 1].id == v->partner)
                    p->v[k + 1].timer = 1.0f;
            }
            break;
        case M_VVF_CRUISE:
            acc = 0;
            if (v->timer > 0) {
                v->timer -= (float)DT;
                if (v->timer <= 1e-4f)
                    v->mode = M_VVF_BRAKE;
            }
            break;
        case M_VVL_BRAKE:
        case M_VVF_BRAKE:
        case M_JAY_BRAKE:
            acc = v->mode == M_VVL_BRAKE ? -6.0 : v->mode == M_VVF_BRAKE ? -8.0 : -5.0;
            if (v->v + acc * DT <= 0) {
                if (v->mode == M_JAY_BRAKE) {
                    v->mode = M_WAITPED;
                } else {
                    v->mode = M_HOLD;
                    v->timer = 2.0f;
                }
            }
            break;
        case M_HOLD:
            acc = -v->v / DT;
            v->timer -= (float)DT;
            if (v->timer <= 0)
                v->mode = M_NORMAL;
            break;
        case M_JAY:
            acc = 0;
            v->timer -= (float)DT;
            if (v->timer <= 1e-4f)
                v->mode = M_JAY_BRAKE;
            break;
        case M_WAITPED: {
            acc = -v->v / DT;
            bool gone = true;
            for (int j = 0; j < st->nvru; j++)
                if (st->vrus[j].id == v->partner && st->vrus[j].state != W_DONE)
                    gone = false;
            if (gone)
                v->mode = M_NORMAL;
            break;
        }
        }
        double nv = v->v + acc * DT;
        if (nv < 0)
            nv = 0;
        double ns = v->s + (v->v + nv) / 2 * DT;
        if (lgap < 1e8) {
            double max_s = v->s + lgap - 0.3;
            if (ns > max_s) {
                ns = max_s > v->s ? max_s : v->s;
                if (nv > lv)
                    nv = lv;
            }
        }
        v->a = (float)((nv - v->v) / DT);
        v->v = (float)nv;
        v->s = (float)ns;
    }
    /* leave at the far end of the movement */
    int kept = 0;
    for (int k = 0; k < p->n; k++) {
        if (p->v[k].s > mv_len(p->v[k].mv))
            continue;
        if (kept != k)
            p->v[kept] = p->v[k];
        kept++;
    }
    p->n = kept;
}

static void spawn_vehicles(tsi_sim_model *m, int i, double prof)
{
    istate *st = &m->st[i];
    const tsi_sim_isect *s = &m->is[i];
    for (int a = 0; a < 4; a++) {
        path *p = &st->paths[a];
        double rate =
            SPAWN_RATE * prof * m->cfg.demand * ((a % 2 == 0) ? s->demand_ns : s->demand_ew);
        double pr = rate * TSI_SIM_TICK_MS / 1000.0;
        if (runif(&st->rng) < pr && p->pending < 20)
            p->pending++;
        if (p->pending == 0)
            continue;
        double gap = 1e9, lv = 0;
        if (p->n > 0) {
            veh *last = &p->v[p->n - 1];
            gap = last->s - last->len / 2 - 2.5 - 0; /* new vehicle centre at s = len/2 */
            lv = last->v;
        }
        double v0 = s->speed_limit * 0.95;
        double v = spawn_speed(gap, v0);
        if (p->n > 0 && v > lv + 6)
            v = lv + 6 > v0 ? v0 : lv + 6;
        if (gap < 8 || (v < 3 && gap < 40))
            continue;
        veh *nvh = path_push(p);
        new_vehicle(m, st, nvh, a, s->speed_limit);
        nvh->s = nvh->len / 2;
        nvh->v = (float)(v > nvh->v0 ? nvh->v0 : v);
        p->pending--;
    }
}

static void spawn_vrus(tsi_sim_model *m, int i, double prof)
{
    istate *st = &m->st[i];
    for (int leg = 0; leg < 4; leg++) {
        double pr = m->cfg.ped_rate / 3600.0 * prof * m->cfg.demand * TSI_SIM_TICK_MS / 1000.0;
        if (!(runif(&st->rng) < pr) || st->nvru >= MAX_VRU)
            continue;
        st->vrus = realloc(st->vrus, sizeof(vru) * (size_t)(st->nvru + 1));
        if (!st->vrus)
            abort();
        vru *w = &st->vrus[st->nvru++];
        memset(w, 0, sizeof *w);
        w->minute = -1;
        w->id = new_id(st);
        w->msgcnt = (uint8_t)(rnext(&st->rng) % 128);
        bool cyc = runif(&st->rng) < 0.2;
        w->type = cyc ? 2 : 1;
        w->speed = (float)(cyc ? 3.5 + runif(&st->rng) : 1.2 + 0.3 * runif(&st->rng));
        double side = runif(&st->rng) < 0.5 ? 1 : -1;
        double cx = TSI_SIM_CROSSWALK * st->ux[leg], cy = TSI_SIM_CROSSWALK * st->uy[leg];
        w->x = (float)(cx + side * TSI_SIM_CW_HALF * st->px[leg]);
        w->y = (float)(cy + side * TSI_SIM_CW_HALF * st->py[leg]);
        w->tx = (float)(cx - side * TSI_SIM_CW_HALF * st->px[leg]);
        w->ty = (float)(cy - side * TSI_SIM_CW_HALF * st->py[leg]);
        w->leg = (uint8_t)leg;
        w->state = W_WAIT;
        double hb = atan2(w->tx - w->x, w->ty - w->y) * 180.0 / M_PI;
        w->heading = (float)(hb < 0 ? hb + 360 : hb);
    }
}

static bool move_to(vru *w, double sp)
{
    double dx = w->tx - w->x, dy = w->ty - w->y;
    double d = sqrt(dx * dx + dy * dy);
    if (d < 1e-6) {
        w->cur_speed = 0;
        return true;
    }
    double hb = atan2(dx, dy) * 180.0 / M_PI;
    w->heading = (float)(hb < 0 ? hb + 360 : hb);
    double step = sp * DT;
    if (step >= d) {
        w->x = w->tx;
        w->y = w->ty;
        w->cur_speed = (float)sp;
        return true;
    }
    w->x += (float)(dx / d * step);
    w->y += (float)(dy / d * step);
    w->cur_speed = (float)sp;
    return false;
}

static const veh *find_veh(const istate *st, uint32_t id)
{
    for (int a = 0; a < 4; a++)
        for (int k = 0; k < st->paths[a].n; k++)
            if (st->paths[a].v[k].id == id)
                return &st->paths[a].v[k];
    return NULL;
}

static void step_vrus(tsi_sim_model *m, int i, int64_t t_ms)
{
    istate *st = &m->st[i];
    int64_t tc = cycle_pos(&m->is[i], t_ms);
    for (int j = 0; j < st->nvru; j++) {
        vru *w = &st->vrus[j];
        switch (w->state) {
        case W_WAIT: {
            int sg = 10 + 2 * w->leg;
            w->cur_speed = 0;
            if (sg_state(sg, tc, NULL) == 6 && (tc - PED_START + CYCLE_MS) % CYCLE_MS >= 1500)
                w->state = W_CROSS;
            break;
        }
        case W_CROSS:
            if (move_to(w, w->speed)) {
                w->state = W_DONE;
                w->timer = 1.0f;
            }
            break;
        case W_DONE:
            w->cur_speed = 0;
            w->timer -= (float)DT;
            break;
        case J_OUT:
            if (move_to(w, w->speed)) {
                w->state = J_HOLD;
                w->timer = 0;
            }
            break;
        case J_HOLD: {
            w->cur_speed = 0;
            const veh *v = find_veh(st, w->partner);
            if (!v || v->v < 0.01)
                w->timer += (float)DT;
            if (w->timer >= 1.0f) {
                w->tx = w->ox; /* walk back to the curb */
                w->ty = w->oy;
                w->state = J_BACK;
            }
            break;
        }
        case J_BACK:
            if (move_to(w, w->speed)) {
                w->state = W_DONE;
                w->timer = 1.0f;
            }
            break;
        }
    }
    /* remove finished VRUs */
    int k = 0;
    for (int j = 0; j < st->nvru; j++) {
        if (st->vrus[j].state == W_DONE && st->vrus[j].timer <= 0)
            continue;
        st->vrus[k++] = st->vrus[j];
    }
    st->nvru = k;
}

/* ---- injections ---- */

static void track_pair(tsi_sim_model *m, istate *st, uint32_t a, uint32_t b, char kind)
{
    if (st->npairs >= MAX_PAIRS)
        return;
    pairtrack *pt = &st->pairs[st->npairs++];
    pt->a = a;
    pt->b = b;
    pt->kind = kind;
    pt->met = false;
    pt->until_ms = m->now_ms + 25000;
    if (m->emitting) {
        if (kind == 'v')
            m->inj_vv++;
        else
            m->inj_vru++;
    }
}

static bool inject_vv(tsi_sim_model *m, int i)
{
    istate *st = &m->st[i];
    int a0 = (int)(rnext(&st->rng) % 4);
    for (int t = 0; t < 4; t++) {
        int a = (a0 + t) % 4;
        path *p = &st->paths[a];
        if (p->n > 0 && p->v[p->n - 1].s - p->v[p->n - 1].len / 2 < 90)
            continue;
        veh *L = path_push(p);
        new_vehicle(m, st, L, a, m->is[i].speed_limit);
        veh *F = path_push(p);
        new_vehicle(m, st, F, a, m->is[i].speed_limit);
        L = &p->v[p->n - 2];
        L->len = F->len = 4.8f;
        L->wid = F->wid = 1.9f;
        F->s = 2.0f;
        L->s = 2.0f + 11.0f + 4.8f;
        L->v = F->v = 12.0f;
        L->mode = M_VVL_CRUISE;
        F->mode = M_VVF_CRUISE;
        F->timer = -1;
        L->partner = F->id;
        F->partner = L->id;
        track_pair(m, st, L->id, F->id, 'v');
        return true;
    }
    return false;
}

static bool inject_vru(tsi_sim_model *m, int i)
{
    istate *st = &m->st[i];
    if (st->nvru >= MAX_VRU)
        return false;
    int a0 = (int)(rnext(&st->rng) % 4);
    for (int t = 0; t < 4; t++) {
        int a = (a0 + t) % 4;
        path *p = &st->paths[a];
        for (int k = 0; k < p->n; k++) {
            veh *v = &p->v[k];
            if (v->mode != M_NORMAL || v->v < 8 || v->s < 10 || v->s > 60)
                continue;
            if (k + 1 < p->n) {
                veh *f = &p->v[k + 1];
                if (v->s - v->len / 2 - (f->s + f->len / 2) < 25)
                    continue;
            }
            double s_stop = v->s + 0.5 * v->v + v->v * v->v / 10.0;
            double s_p = s_stop + v->len / 2 + 3.0;
            if (s_p > 100)
                continue;
            if (k > 0 && p->v[k - 1].s - p->v[k - 1].len / 2 < s_p + 3)
                continue;
            st->vrus = realloc(st->vrus, sizeof(vru) * (size_t)(st->nvru + 1));
            if (!st->vrus)
                abort();
            vru *w = &st->vrus[st->nvru++];
            memset(w, 0, sizeof *w);
            w->minute = -1;
            w->id = new_id(st);
            w->msgcnt = (uint8_t)(rnext(&st->rng) % 128);
            w->type = 1;
            w->speed = 1.5f;
            double lx, ly;
            path_xy(st, a, s_p, &lx, &ly);
            w->x = (float)(lx + 2.5 * st->rx[a]);
            w->y = (float)(ly + 2.5 * st->ry[a]);
            w->ox = w->x;
            w->oy = w->y;
            w->tx = (float)(lx - 0.3 * st->rx[a]);
            w->ty = (float)(ly - 0.3 * st->ry[a]);
            w->state = J_OUT;
            w->partner = v->id;
            w->leg = (uint8_t)a;
            double hb = atan2(w->tx - w->x, w->ty - w->y) * 180.0 / M_PI;
            w->heading = (float)(hb < 0 ? hb + 360 : hb);
            v->mode = M_JAY;
            v->timer = 0.5f;
            v->partner = w->id;
            track_pair(m, st, v->id, w->id, 'p');
            return true;
        }
    }
    return false;
}

static bool inject_hb(tsi_sim_model *m, int i)
{
    istate *st = &m->st[i];
    int a0 = (int)(rnext(&st->rng) % 4);
    for (int t = 0; t < 4; t++) {
        path *p = &st->paths[(a0 + t) % 4];
        for (int k = 0; k < p->n; k++) {
            veh *v = &p->v[k];
            if (v->mode != M_NORMAL || v->v < 8 || v->s > 100)
                continue;
            if (k > 0 && p->v[k - 1].s - p->v[k - 1].len / 2 - (v->s + v->len / 2) < 30)
                continue;
            if (k + 1 < p->n && v->s - v->len / 2 - (p->v[k + 1].s + p->v[k + 1].len / 2) < 25)
                continue;
            v->mode = M_HB;
            v->timer = 1.5f;
            return true;
        }
    }
    return false;
}

/* ---- truth ---- */

static tsi_sim_minute *minute_slot(tsi_sim_model *m, int i, int64_t ts)
{
    int64_t minute = ts - (ts % 60000);
    int K = m->cfg.truth_minutes;
    tsi_sim_minute *r = &m->st[i].ring[(minute / 60000) % K];
    if (r->minute_ms != minute) {
        memset(r, 0, sizeof *r);
        r->minute_ms = minute;
    }
    return r;
}

void tsi_sim_truth_note(tsi_sim_model *m, int isect, int64_t ts_ms, int duplicates, int malformed)
{
    if (isect < 0 || isect >= m->n)
        return;
    tsi_sim_minute *r = minute_slot(m, isect, ts_ms);
    r->duplicates += (uint32_t)duplicates;
    r->malformed += (uint32_t)malformed;
}

const tsi_sim_minute *tsi_sim_truth_minute(const tsi_sim_model *m, int i, int64_t minute_ms)
{
    if (i < 0 || i >= m->n || minute_ms % 60000)
        return NULL;
    int K = m->cfg.truth_minutes;
    const tsi_sim_minute *r = &m->st[i].ring[(minute_ms / 60000) % K];
    return r->minute_ms == minute_ms ? r : NULL;
}

const tsi_sim_conflict *tsi_sim_truth_conflicts(const tsi_sim_model *m, size_t *n)
{
    *n = m->ncf;
    return m->cf;
}

void tsi_sim_truth_injections(const tsi_sim_model *m, uint64_t *vv, uint64_t *vru_,
                              uint64_t *missed)
{
    *vv = m->inj_vv;
    *vru_ = m->inj_vru;
    *missed = m->missed;
}

double tsi_sim_ttc(double ax, double ay, double avx, double avy, double bx, double by, double bvx,
                   double bvy, double r)
{
    double dx = bx - ax, dy = by - ay, wx = bvx - avx, wy = bvy - avy;
    double dw = dx * wx + dy * wy;
    if (dw >= 0)
        return -1; /* separating or keeping distance */
    double dd = dx * dx + dy * dy;
    if (dd <= r * r)
        return 0;
    double ww = wx * wx + wy * wy;
    double disc = dw * dw - ww * (dd - r * r);
    if (disc < 0)
        return -1;
    return (-dw - sqrt(disc)) / ww;
}

static void record_conflict(tsi_sim_model *m, int i, const tsi_sim_sample *a,
                            const tsi_sim_sample *b, char kind, double ttc, double dist)
{
    int64_t minute = a->ts_ms - (a->ts_ms % 60000);
    for (size_t k = m->ncf; k-- > 0;) {
        tsi_sim_conflict *c = &m->cf[k];
        if (c->minute_ms < minute)
            break;
        if (c->isect == i && c->minute_ms == minute && c->a == a->id && c->b == b->id) {
            if (ttc >= 0 && (c->min_ttc < 0 || ttc < c->min_ttc))
                c->min_ttc = (float)ttc;
            if (dist < c->min_dist)
                c->min_dist = (float)dist;
            return;
        }
    }
    if (m->ncf == m->capcf) {
        m->capcf = m->capcf ? m->capcf * 2 : 256;
        m->cf = realloc(m->cf, sizeof *m->cf * m->capcf);
        if (!m->cf)
            abort();
    }
    tsi_sim_conflict *c = &m->cf[m->ncf++];
    c->isect = i;
    c->minute_ms = minute;
    c->a = a->id;
    c->b = b->id;
    c->kind = kind;
    c->min_ttc = (float)ttc;
    c->min_dist = (float)dist;
}

static const tsi_sim_sample *find_sample(const tsi_sim_model *m, size_t from, int kind, uint32_t id)
{
    for (size_t k = from; k < m->nsmp; k++)
        if (m->smp[k].kind == kind && m->smp[k].id == id)
            return &m->smp[k];
    return NULL;
}

static void check_pairs(tsi_sim_model *m, int i, size_t from)
{
    istate *st = &m->st[i];
    const tsi_sim_isect *is = &m->is[i];
    int k = 0;
    for (int j = 0; j < st->npairs; j++) {
        pairtrack *pt = &st->pairs[j];
        const tsi_sim_sample *a = find_sample(m, from, TSI_SIM_BSM, pt->a);
        const tsi_sim_sample *b =
            find_sample(m, from, pt->kind == 'v' ? TSI_SIM_BSM : TSI_SIM_PSM, pt->b);
        if (a && b) {
            double ax, ay, bx, by, avx, avy, bvx, bvy;
            tsi_ltp_to_xy(&is->ltp, a->lat, a->lon, &ax, &ay);
            tsi_ltp_to_xy(&is->ltp, b->lat, b->lon, &bx, &by);
            tsi_geo_velocity(a->speed, a->heading, &avx, &avy);
            tsi_geo_velocity(b->speed, b->heading, &bvx, &bvy);
            double la = a->length_cm / 100.0;
            double r = pt->kind == 'v' ? (la + b->length_cm / 100.0) / 2 : la / 2 + 0.5;
            double ttc = tsi_sim_ttc(ax, ay, avx, avy, bx, by, bvx, bvy, r);
            double dist = hypot(bx - ax, by - ay);
            double tthr = pt->kind == 'v' ? TSI_SIM_VV_TTC : TSI_SIM_VRU_TTC;
            double dthr = pt->kind == 'v' ? TSI_SIM_VV_DIST : TSI_SIM_VRU_DIST;
            if ((ttc >= 0 && ttc <= tthr) || dist < dthr) {
                pt->met = true;
                record_conflict(m, i, a, b, pt->kind, ttc, dist);
            }
        }
        if (m->now_ms > pt->until_ms) {
            if (!pt->met)
                m->missed++;
            continue;
        }
        st->pairs[k++] = *pt;
    }
    st->npairs = k;
}

/* ---- emission ---- */

static tsi_sim_sample *new_sample(tsi_sim_model *m)
{
    if (m->nsmp == m->capsmp) {
        m->capsmp = m->capsmp ? m->capsmp * 2 : 4096;
        m->smp = realloc(m->smp, sizeof *m->smp * m->capsmp);
        if (!m->smp)
            abort();
    }
    return &m->smp[m->nsmp++];
}

static int64_t jitter(uint32_t id)
{
    return 20 + (int64_t)((id * 2654435761u) >> 16) % 100;
}

static void emit(tsi_sim_model *m, int i)
{
    istate *st = &m->st[i];
    const tsi_sim_isect *is = &m->is[i];
    size_t from = m->nsmp;
    int64_t t = m->now_ms;
    for (int a = 0; a < 4; a++) {
        path *p = &st->paths[a];
        for (int k = 0; k < p->n; k++) {
            veh *v = &p->v[k];
            tsi_sim_sample *o = new_sample(m);
            const tsi_sim_vendor *vd = &tsi_sim_vendors[v->vendor];
            double x, y, hd, curv;
            veh_pose(st, a, v->mv, v->s, &x, &y, &hd, &curv);
            o->kind = TSI_SIM_BSM;
            o->vendor = v->vendor;
            v->msgcnt = (uint8_t)((v->msgcnt + 5) % 128);
            o->msgcnt = v->msgcnt;
            o->basic_type = 0;
            o->isect = i;
            o->id = v->id;
            o->gen_ms = t;
            o->ts_ms = t + jitter(v->id);
            tsi_ltp_to_ll(&is->ltp, x + m->qx, y + m->qy, &o->lat, &o->lon);
            o->lat = round_to(o->lat, 1e-7);
            o->lon = round_to(o->lon, 1e-7);
            o->elev = vd->elev_null ? NAN : vd->elev_zero ? 0.0 : round_to(is->elev + 1.2, 0.1);
            o->speed = round_to(v->v, 0.01);
            o->heading = round_to(hd, 0.0125);
            if (o->heading >= 360.0)
                o->heading -= 360.0;
            if (vd->accel_null) {
                o->accel_lon = o->accel_lat = o->accel_vert = o->yaw = NAN;
            } else {
                o->accel_lon = round_to(v->a, 0.01);
                /* on an arc: v²/r to the right (+) or left (-), yaw rate v/r in deg/s */
                o->accel_lat = curv != 0 ? round_to((double)v->v * v->v * curv, 0.01)
                                         : round_to(((int)((v->id >> 3) % 21) - 10) / 100.0, 0.01);
                o->accel_vert = 0;
                o->yaw = round_to((double)v->v * curv * 180.0 / M_PI, 0.01);
            }
            o->brakes = v->a < -0.5 ? 0x0f : 0;
            o->width_cm = (int)lround(v->wid * 100);
            o->length_cm = (int)lround(v->len * 100);
            /* truth */
            tsi_sim_minute *r = minute_slot(m, i, o->ts_ms);
            r->bsm++;
            if (v->minute != r->minute_ms) {
                v->minute = r->minute_ms;
                r->vehicles++;
            }
            bool hard;
            if (!isnan(o->accel_lon))
                hard = o->accel_lon <= -3.0;
            else
                hard = v->prev_speed >= 0 && v->prev_ts >= 0 && o->ts_ms > v->prev_ts &&
                       (v->prev_speed - o->speed) / ((double)(o->ts_ms - v->prev_ts) / 1000.0) >=
                           3.0 - 1e-9;
            if (hard && v->hb_minute != r->minute_ms) {
                v->hb_minute = r->minute_ms;
                r->hard_braking++;
            }
            v->prev_speed = (float)o->speed;
            v->prev_ts = o->ts_ms;
        }
    }
    for (int j = 0; j < st->nvru; j++) {
        vru *w = &st->vrus[j];
        tsi_sim_sample *o = new_sample(m);
        o->kind = TSI_SIM_PSM;
        o->vendor = 0;
        w->msgcnt = (uint8_t)((w->msgcnt + 5) % 128);
        o->msgcnt = w->msgcnt;
        o->basic_type = w->type;
        o->isect = i;
        o->id = w->id;
        o->gen_ms = t;
        o->ts_ms = t + jitter(w->id);
        tsi_ltp_to_ll(&is->ltp, w->x + m->qx, w->y + m->qy, &o->lat, &o->lon);
        o->lat = round_to(o->lat, 1e-7);
        o->lon = round_to(o->lon, 1e-7);
        o->elev = round_to(is->elev, 0.1);
        o->speed = round_to(w->cur_speed, 0.01);
        o->heading = round_to(w->heading, 0.0125);
        o->accel_lon = o->accel_lat = o->accel_vert = o->yaw = 0;
        o->brakes = 0;
        o->width_cm = o->length_cm = 0;
        tsi_sim_minute *r = minute_slot(m, i, o->ts_ms);
        r->psm++;
        if (w->minute != r->minute_ms) {
            w->minute = r->minute_ms;
            r->vrus++;
            if (w->type == 2)
                r->cyclists++;
            else
                r->pedestrians++;
        }
    }
    check_pairs(m, i, from);
}

const tsi_sim_sample *tsi_sim_model_step(tsi_sim_model *m, size_t *n)
{
    int64_t t0 = m->now_ms;
    m->now_ms += TSI_SIM_TICK_MS;
    m->nsmp = 0;
    double prof = tsi_sim_profile(m->now_ms, m->cfg.tz_offset_min);
    double p_vv = m->cfg.vv_rate / 7200.0, p_vru = m->cfg.vru_rate / 7200.0;
    double p_hb = m->cfg.hard_brake_rate / 7200.0;
    static _Thread_local egtab eg;
    for (int i = 0; i < m->n; i++) {
        istate *st = &m->st[i];
        spawn_vehicles(m, i, prof);
        spawn_vrus(m, i, prof);
        if (runif(&st->rng) < p_vv && st->pend_vv < 4)
            st->pend_vv++;
        if (runif(&st->rng) < p_vru && st->pend_vru < 4)
            st->pend_vru++;
        if (runif(&st->rng) < p_hb && st->pend_hb < 4)
            st->pend_hb++;
        if (!m->emitting)
            st->pend_vv = st->pend_vru = st->pend_hb = 0;
        if (st->pend_vv > 0 && inject_vv(m, i))
            st->pend_vv--;
        if (st->pend_vru > 0 && inject_vru(m, i))
            st->pend_vru--;
        if (st->pend_hb > 0 && inject_hb(m, i))
            st->pend_hb--;
        for (int k = 1; k <= SUBSTEPS; k++) {
            int64_t t = t0 + k * (TSI_SIM_TICK_MS / SUBSTEPS);
            build_egress(st, &eg);
            for (int a = 0; a < 4; a++)
                step_path(m, i, a, t, &eg);
            step_vrus(m, i, t);
        }
        if (m->emitting)
            emit(m, i);
        else
            st->npairs = 0;
    }
    /* forget conflicts older than the truth window, once a minute */
    if (m->now_ms % 60000 == 0 && m->ncf > 0) {
        int64_t oldest = m->now_ms - (int64_t)m->cfg.truth_minutes * 60000;
        size_t k = 0;
        while (k < m->ncf && m->cf[k].minute_ms < oldest)
            k++;
        if (k) {
            memmove(m->cf, m->cf + k, sizeof *m->cf * (m->ncf - k));
            m->ncf -= k;
        }
    }
    *n = m->nsmp;
    return m->smp;
}
