/* Contract test of `tsi serve` against the ORIGINAL system it replaces: the public
 * repository Ulrixon/cs6604-trafficsafety (FastAPI 0.115 + pydantic 2.9 backend, Streamlit
 * frontend on Python 3.9) at commit 218052b. Every expectation here comes from that
 * system's files, quoted where it matters:
 *   backend/app/api/history.py            (the three history endpoints, their parameters)
 *   backend/app/services/history_service.py (windows, bins, statistics, 404 texts)
 *   backend/app/schemas/intersection.py   (field types: str / int / float / Optional)
 *   backend/app/api/intersection.py       (GET /safety/index/ and /safety/index/{id})
 *   frontend/app/services/api_client.py   (what the frontend sends)
 *   frontend/app/views/history_components.py (its presets; fromisoformat; number cards)
 * and from FastAPI's rules (422 {"detail":[{type,loc,msg,input[,ctx]}]}, HTTPException →
 * {"detail": text}, redirect_slashes → 307) — not from tsi's docs or code.
 *
 * One table of requests (path template, expected status, expected shape, checks, value
 * recomputations) runs twice:
 *   [pg]      `tsi serve` on a database this test seeds by SQL: 1-minute rows for the last
 *             47 hours (safety_indices_realtime), hourly rollups for 90 days and daily
 *             rollups for 130 days, computed here from the same minutes (kept in cx_min)
 *             the way sql/migrations' jobs do, with gaps of a minute, an hour, a day and
 *             a week; every history / stats answer is recomputed from cx_min by the
 *             original's definitions (pandas resample bins; minute means; sample sd);
 *   [parquet] `tsi serve --source parquet` on a `tsi seed` database + indices Parquet:
 *             the same shapes and statuses; where the window lies within the archived
 *             minutes the answer must equal a PostgreSQL server's on the same data.
 * /api/v2 (tsi's own conventions) gets a smaller table, for contrast. Every failure names
 * the request and the JSON pointer of the field; all failures of a run are listed
 * together. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "contract_util.h"
#include "test_api_util.h"

/* ---- shapes (backend/app/schemas/intersection.py) --------------------------------------- */
/* IntersectionRead: intersection_id int, intersection_name str, safety_index float ge=0
 * le=100, traffic_volume int ge=0, longitude float, latitude float */
static const fspec IDX_F[] = {
    {.key = "intersection_id", .type = J_INT},
    {.key = "intersection_name", .type = J_STR},
    {.key = "safety_index", .type = J_NUM, .flags = F_RNG, .lo = 0, .hi = 100},
    {.key = "traffic_volume", .type = J_INT, .flags = F_RNG, .lo = 0, .hi = 1e15},
    {.key = "longitude", .type = J_NUM},
    {.key = "latitude", .type = J_NUM},
    {0},
};
/* the list endpoint has no response_model (extra fields such as rt_si_score, timestamp
 * appear with include_rtsi); an extra datetime must still be naive */
static const fspec IDX_ITEM = {.type = J_OBJ, .sub = IDX_F, .obj = O_DT1};
static const fspec IDX_LIST = {.type = J_ARR, .sub = &IDX_ITEM};
/* @router.get("/{intersection_id}", response_model=IntersectionRead) wrote exactly these;
 * the issue allows extra fields (clients ignore them), an extra datetime naive */
static const fspec IDX_ONE = {.type = J_OBJ, .sub = IDX_F, .obj = O_DT1};

/* IntersectionHistoryPoint */
static const fspec POINT_F[] = {
    {.key = "timestamp", .type = J_STR, .fmt = X_DT1},
    {.key = "safety_index", .type = J_NUM, .flags = F_RNG, .lo = 0, .hi = 100},
    {.key = "vru_index", .type = J_NUM, .flags = F_NUL | F_RNG, .lo = 0, .hi = 100},
    {.key = "vehicle_index", .type = J_NUM, .flags = F_NUL | F_RNG, .lo = 0, .hi = 100},
    {.key = "traffic_volume", .type = J_INT, .flags = F_RNG, .lo = 0, .hi = 1e15},
    {.key = "hour_of_day", .type = J_INT, .flags = F_RNG, .lo = 0, .hi = 23},
    {.key = "day_of_week", .type = J_INT, .flags = F_RNG, .lo = 0, .hi = 6},
    {0},
};
static const fspec POINT = {.type = J_OBJ, .sub = POINT_F, .obj = O_CLOSED};
/* IntersectionHistory: intersection_id str (the path text), start_date/end_date datetime */
static const fspec HIST_F[] = {
    {.key = "intersection_id", .type = J_STR},
    {.key = "intersection_name", .type = J_STR},
    {.key = "data_points", .type = J_ARR, .sub = &POINT},
    {.key = "start_date", .type = J_STR, .fmt = X_DT1},
    {.key = "end_date", .type = J_STR, .fmt = X_DT1},
    {.key = "total_points", .type = J_INT, .flags = F_RNG, .lo = 0, .hi = 1e15},
    {.key = "aggregation", .type = J_STR, .fmt = X_AGG},
    {0},
};
static const fspec HIST = {.type = J_OBJ, .sub = HIST_F, .obj = O_CLOSED};
/* @router.get("/", response_model=List[IntersectionHistory]) */
static const fspec HIST_LIST = {.type = J_ARR, .sub = &HIST};
/* IntersectionAggregateStats: every number non-null (the frontend's cards format them:
 * f"{avg_si:.1f}", f"{high_risk_pct:.1f}%", f"{avg_volume:.0f}") */
static const fspec STATS_F[] = {
    {.key = "intersection_id", .type = J_STR},
    {.key = "intersection_name", .type = J_STR},
    {.key = "period_start", .type = J_STR, .fmt = X_DT1},
    {.key = "period_end", .type = J_STR, .fmt = X_DT1},
    {.key = "avg_safety_index", .type = J_NUM},
    {.key = "min_safety_index", .type = J_NUM},
    {.key = "max_safety_index", .type = J_NUM},
    {.key = "std_safety_index", .type = J_NUM},
    {.key = "total_traffic_volume", .type = J_INT},
    {.key = "avg_traffic_volume", .type = J_NUM},
    {.key = "high_risk_intervals", .type = J_INT},
    {.key = "high_risk_percentage", .type = J_NUM},
    {0},
};
/* response_model=IntersectionAggregateStats; extra fields allowed (as above) */
static const fspec STATS = {.type = J_OBJ, .sub = STATS_F, .obj = O_DT1};
/* HTTPException(status_code, detail="text") → {"detail": "text"} */
static const fspec DETAIL_F[] = {{.key = "detail", .type = J_STR}, {0}};
static const fspec DETAIL = {.type = J_OBJ, .sub = DETAIL_F, .obj = O_CLOSED};
/* FastAPI 0.115 RequestValidationError → 422 {"detail":[{type, loc, msg, input, ctx?}]} */
static const fspec LOC_ITEM = {.type = J_STR};
static const fspec VERR_ITEM_F[] = {
    {.key = "type", .type = J_STR},
    {.key = "loc", .type = J_ARR, .flags = F_MIN1, .sub = &LOC_ITEM},
    {.key = "msg", .type = J_STR},
    {.key = "input", .type = J_ANY, .flags = F_NUL},
    {.key = "ctx", .type = J_OBJ, .flags = F_OPT},
    {0},
};
static const fspec VERR_ITEM = {.type = J_OBJ, .sub = VERR_ITEM_F, .obj = O_CLOSED};
static const fspec VERR_F[] = {
    {.key = "detail", .type = J_ARR, .flags = F_MIN1, .sub = &VERR_ITEM},
    {0},
};
static const fspec VERR = {.type = J_OBJ, .sub = VERR_F, .obj = O_CLOSED};
/* GET /health → {"status": "ok"} (more fields allowed) */
static const fspec HEALTH_F[] = {{.key = "status", .type = J_STR}, {0}};
static const fspec HEALTH = {.type = J_OBJ, .sub = HEALTH_F, .obj = O_OPEN};

/* ---- /api/v2 shapes (tsi's conventions; the brief of this test) -------------------------- */
static const fspec V2_ERR_F[] = {
    {.key = "detail", .type = J_STR},
    {.key = "code", .type = J_STR},
    {.key = "field", .type = J_STR},
    {0},
};
static const fspec V2_ERR = {.type = J_OBJ, .sub = V2_ERR_F, .obj = O_OPEN};
static const fspec V2_ERR_NF_F[] = {
    {.key = "detail", .type = J_STR},
    {.key = "code", .type = J_STR},
    {.key = "field", .type = J_STR, .flags = F_NUL | F_OPT},
    {0},
};
static const fspec V2_ERR_NF = {.type = J_OBJ, .sub = V2_ERR_NF_F, .obj = O_OPEN};
static const fspec V2_IDX_F[] = {{.key = "intersection_id", .type = J_INT}, {0}};
static const fspec V2_IDX_ITEM = {.type = J_OBJ, .sub = V2_IDX_F, .obj = O_DT2};
static const fspec V2_IDX_LIST = {.type = J_ARR, .sub = &V2_IDX_ITEM};
static const fspec V2_POINT_F[] = {
    {.key = "timestamp", .type = J_STR, .fmt = X_DT2},
    {.key = "safety_index", .type = J_NUM, .flags = F_RNG, .lo = 0, .hi = 100},
    {0},
};
static const fspec V2_POINT = {.type = J_OBJ, .sub = V2_POINT_F, .obj = O_DT2};
static const fspec V2_HIST_F[] = {
    {.key = "intersection_id", .type = J_INT},
    {.key = "start_date", .type = J_STR, .fmt = X_DATE},
    {.key = "end_date", .type = J_STR, .fmt = X_DATE},
    {.key = "data_points", .type = J_ARR, .sub = &V2_POINT},
    {0},
};
static const fspec V2_HIST = {.type = J_OBJ, .sub = V2_HIST_F, .obj = O_DT2};
/* the brief names no form for v2's period_start/period_end: a date or a Z instant, never
 * a naive datetime */
static const fspec V2_STATS_F[] = {
    {.key = "period_start", .type = J_STR, .fmt = X_DT2_OR_DATE},
    {.key = "period_end", .type = J_STR, .fmt = X_DT2_OR_DATE},
    {0},
};
static const fspec V2_STATS = {.type = J_OBJ, .sub = V2_STATS_F, .obj = O_DT2};
static const fspec V2_ALL = {.type = J_OBJ, .obj = O_DT2};

/* ---- the table ------------------------------------------------------------------------------ */
enum {
    PG = 1,   /* needs this test's own SQL data (ids {S} {E}, the gaps): [pg] run only */
    VH = 2,   /* [pg]: recompute the history series from cx_min */
    VS = 4,   /* [pg]: recompute the statistics from cx_min */
    VA = 8,   /* [pg]: recompute every series of the all-intersections list */
    CMP = 16, /* [parquet]: the answer equals the PostgreSQL server's on the same data */
    MON = 32, /* v2: every weekly bin is labelled with a Monday 00:00Z */
};

/* Path templates: {A} an intersection with data, {S} one with a single minute, {E} one
 * registered without data, {U} an unknown id, {D0} today (UTC), {D-n} / {D+n} days from it.
 * Checks: "<ptr><op><value>", op = (string) # (number) @ (list length) ~ (prefix)
 * $ (suffix); ptr a JSON pointer or H:<header>. */
typedef struct crow {
    const char *path;
    int status;
    const fspec *shape; /* NULL: no body check */
    int flags;
    const char *chk[6];
} crow;

#define H                "/api/v1/safety/history/"
#define NODATA(id, a, b) "/detail=No data found for intersection " id " between " a " and " b
/* FastAPI's 422 for a query parameter */
#define Q422(name, type, input)                                                                    \
    "/detail/0/loc/0=query", "/detail/0/loc/1=" name, "/detail/0/type" type,                       \
        "/detail/0/input=" input

static const crow TABLE[] = {
    /* ---- GET /api/v1/safety/index/ (intersection.py list_intersections) ---- */
    {"/api/v1/safety/index/", 200, &IDX_LIST, CMP, {0}},
    /* 9b0bf1a's frontend sends these; unknown to 218052b: ignored */
    {"/api/v1/safety/index/?include_rtsi=true&bin_minutes=15", 200, &IDX_LIST, 0, {0}},
    /* Starlette redirect_slashes: 307 to the slash form, the query kept */
    {"/api/v1/safety/index", 307, NULL, 0, {"H:Location$/api/v1/safety/index/"}},
    {"/api/v1/safety/index?include_rtsi=true",
     307,
     NULL,
     0,
     {"H:Location$/api/v1/safety/index/?include_rtsi=true"}},
    {"/api/v1/safety/index/{A}", 200, &IDX_ONE, CMP, {"/intersection_id#{A}"}},
    /* raise HTTPException(status_code=404, detail="Intersection not found") */
    {"/api/v1/safety/index/{U}", 404, &DETAIL, 0, {"/detail=Intersection not found"}},
    /* def get_intersection(intersection_id: int) */
    {"/api/v1/safety/index/abc",
     422,
     &VERR,
     0,
     {"/detail/0/loc/0=path", "/detail/0/loc/1=intersection_id", "/detail/0/type=int_parsing",
      "/detail/0/input=abc"}},
    {"/api/v1/safety/index/1.5",
     422,
     &VERR,
     0,
     {"/detail/0/loc/0=path", "/detail/0/loc/1=intersection_id", "/detail/0/type=int_parsing",
      "/detail/0/input=1.5"}},
    {"/health", 200, &HEALTH, 0, {"/status=ok"}},

    /* ---- the frontend's six presets (history_components.py render_date_range_selector) -- */
    {H "{A}?days=1&aggregation=1min", 200, &HIST, VH | CMP, {"/aggregation=1min"}},
    {H "{A}?days=3&aggregation=1hour", 200, &HIST, VH, {"/aggregation=1hour"}},
    {H "{A}?days=7&aggregation=1hour", 200, &HIST, VH, {"/aggregation=1hour"}},
    {H "{A}?days=14&aggregation=1day", 200, &HIST, VH, {"/aggregation=1day"}},
    {H "{A}?days=30&aggregation=1day", 200, &HIST, VH, {"/aggregation=1day"}},
    /* spans the gap week: the original answered 404 (a NaN bin); tsi omits the bin (VH) */
    {H "{A}?days=90&aggregation=1week", 200, &HIST, VH, {"/aggregation=1week"}},
    /* fetch_intersection_stats(intersection_id, days) */
    {H "{A}/stats?days=1", 200, &STATS, VS | CMP, {0}},
    {H "{A}/stats?days=3", 200, &STATS, VS, {0}},
    {H "{A}/stats?days=7", 200, &STATS, VS, {0}},
    {H "{A}/stats?days=14", 200, &STATS, VS, {0}},
    {H "{A}/stats?days=30", 200, &STATS, VS, {0}},
    {H "{A}/stats?days=90", 200, &STATS, VS, {0}},
    /* windows inside the Parquet minutes, compared between the sources */
    {H "{A}?days=2&aggregation=1hour", 200, &HIST, VH | CMP, {0}},
    {H "{A}?days=2&aggregation=1day", 200, &HIST, VH | CMP, {0}},
    {H "{A}/stats?days=2", 200, &STATS, VS | CMP, {0}},

    /* ---- defaults: days=7, end today, aggregation by n = (end - start).days + 1 ---- */
    {H "{A}",
     200,
     &HIST,
     VH,
     {"/aggregation=1hour", "/start_date={D-6}T00:00:00", "/end_date={D0}T23:59:59.999999",
      "/intersection_id={A}"}},
    {H "{A}/stats", 200, &STATS, VS, {"/intersection_id={A}"}},
    {H "{A}?start_date={D0}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1min"}},     /* n=1 */
    {H "{A}?start_date={D-1}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1hour"}},   /* 2 */
    {H "{A}?start_date={D-6}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1hour"}},   /* 7 */
    {H "{A}?start_date={D-7}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1day"}},    /* 8 */
    {H "{A}?start_date={D-29}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1day"}},   /* 30 */
    {H "{A}?start_date={D-30}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1week"}},  /* 31 */
    {H "{A}?start_date={D-89}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1week"}},  /* 90 */
    {H "{A}?start_date={D-90}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1month"}}, /* 91 */
    /* days le=365: start = end - (days - 1) */
    {H "{A}?days=365",
     200,
     &HIST,
     VH,
     {"/aggregation=1month", "/start_date={D-364}T00:00:00", "/end_date={D0}T23:59:59.999999"}},

    /* ---- days: Query(7, ge=1, le=365) ---- */
    {H "{A}?days=0",
     422,
     &VERR,
     0,
     {Q422("days", "=greater_than_equal", "0"), "/detail/0/ctx/ge#1"}},
    {H "{A}?days=-1", 422, &VERR, 0, {Q422("days", "=greater_than_equal", "-1")}},
    {H "{A}?days=366",
     422,
     &VERR,
     0,
     {Q422("days", "=less_than_equal", "366"), "/detail/0/ctx/le#365"}},
    {H "{A}?days=abc", 422, &VERR, 0, {Q422("days", "=int_parsing", "abc")}},
    {H "{A}?days=7.5", 422, &VERR, 0, {Q422("days", "=int_parsing", "7.5")}},
    /* ---- aggregation: pattern="^(1min|1hour|1day|1week|1month)$" ---- */
    {H "{A}?days=7&aggregation=1week", 200, &HIST, VH, {"/aggregation=1week"}},
    {H "{A}?days=90&aggregation=1month", 200, &HIST, VH, {"/aggregation=1month"}},
    {H "{A}?days=1&aggregation=1day", 200, &HIST, VH, {"/aggregation=1day"}},
    {H "{A}?aggregation=5min",
     422,
     &VERR,
     0,
     {Q422("aggregation", "=string_pattern_mismatch", "5min"),
      "/detail/0/ctx/pattern=^(1min|1hour|1day|1week|1month)$"}},
    /* FastAPI treats "" as missing only for Form fields: a query "" meets the pattern */
    {H "{A}?aggregation=", 422, &VERR, 0, {Q422("aggregation", "=string_pattern_mismatch", "")}},
    /* ---- start_date / end_date: Optional[date] (pydantic: YYYY-MM-DD, a real date) ---- */
    {H "{A}?start_date=2025-13-01", 422, &VERR, 0, {Q422("start_date", "~date_", "2025-13-01")}},
    {H "{A}?start_date=2025-02-30", 422, &VERR, 0, {Q422("start_date", "~date_", "2025-02-30")}},
    {H "{A}?start_date=yesterday", 422, &VERR, 0, {Q422("start_date", "~date_", "yesterday")}},
    {H "{A}?start_date=2025-1-1", 422, &VERR, 0, {Q422("start_date", "~date_", "2025-1-1")}},
    {H "{A}?end_date=2025-13-01", 422, &VERR, 0, {Q422("end_date", "~date_", "2025-13-01")}},
    /* if start_date > end_date: HTTPException(400, "start_date must be before or equal to
     * end_date") */
    {H "{A}?start_date={D0}&end_date={D-1}",
     400,
     &DETAIL,
     0,
     {"/detail=start_date must be before or equal to end_date"}},
    /* if (end_date - start_date).days > 365: HTTPException(400, "Date range cannot exceed
     * 365 days"): 365 and 366 inclusive days pass, 367 do not */
    {H "{A}?start_date={D-364}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1month"}},
    {H "{A}?start_date={D-365}&end_date={D0}", 200, &HIST, VH, {"/aggregation=1month"}},
    {H "{A}?start_date={D-366}&end_date={D0}",
     400,
     &DETAIL,
     0,
     {"/detail=Date range cannot exceed 365 days"}},
    /* start_date alone runs to today; days is then ignored but still validated */
    {H "{A}?start_date={D-2}",
     200,
     &HIST,
     VH,
     {"/start_date={D-2}T00:00:00", "/end_date={D0}T23:59:59.999999", "/aggregation=1hour"}},
    {H "{A}?start_date={D-5}&days=1", 200, &HIST, VH, {"/start_date={D-5}T00:00:00"}},
    {H "{A}?start_date={D-5}&days=0", 422, &VERR, 0, {Q422("days", "=greater_than_equal", "0")}},
    /* end_date alone: start = end - (days - 1) */
    {H "{A}?end_date={D-1}",
     200,
     &HIST,
     VH,
     {"/start_date={D-7}T00:00:00", "/end_date={D-1}T23:59:59.999999", "/aggregation=1hour"}},
    {H "{A}?end_date={D-1}&days=3", 200, &HIST, VH, {"/start_date={D-3}T00:00:00"}},
    {H "{A}?end_date={D+1}&days=2", 200, &HIST, VH, {"/end_date={D+1}T23:59:59.999999"}},
    /* unknown parameters are ignored */
    {H "{A}?days=1&include_rtsi=true&foo=bar", 200, &HIST, VH, {0}},
    /* ValueError(f"No data found for intersection {intersection_id} between {start_date}
     * and {end_date}") → 404; the id is a str in the path, so "abc" is a 404 too */
    {H "{U}", 404, &DETAIL, 0, {NODATA("{U}", "{D-6}", "{D0}")}},
    {H "{U}?days=1&aggregation=1min", 404, &DETAIL, 0, {NODATA("{U}", "{D0}", "{D0}")}},
    {H "abc", 404, &DETAIL, 0, {NODATA("abc", "{D-6}", "{D0}")}},
    {H "{E}", 404, &DETAIL, PG, {NODATA("{E}", "{D-6}", "{D0}")}},
    {H "{A}?start_date={D-300}&end_date={D-250}",
     404,
     &DETAIL,
     0,
     {NODATA("{A}", "{D-300}", "{D-250}")}},
    /* the gap day: a window without data inside the data's span */
    {H "{A}?start_date={D-10}&end_date={D-10}",
     404,
     &DETAIL,
     PG,
     {NODATA("{A}", "{D-10}", "{D-10}")}},

    /* ---- /stats: days Query(7, ge=1, le=365); no start > end check, no range limit ---- */
    {H "{A}/stats?days=0", 422, &VERR, 0, {Q422("days", "=greater_than_equal", "0")}},
    {H "{A}/stats?days=366", 422, &VERR, 0, {Q422("days", "=less_than_equal", "366")}},
    {H "{A}/stats?days=abc", 422, &VERR, 0, {Q422("days", "=int_parsing", "abc")}},
    {H "{A}/stats?start_date=2025-02-30",
     422,
     &VERR,
     0,
     {Q422("start_date", "~date_", "2025-02-30")}},
    /* an empty window: ValueError(f"No data found for intersection {intersection_id}") */
    {H "{A}/stats?start_date={D0}&end_date={D-1}",
     404,
     &DETAIL,
     0,
     {"/detail=No data found for intersection {A}"}},
    {H "{A}/stats?start_date={D-366}&end_date={D0}", 200, &STATS, 0, {"/intersection_id={A}"}},
    {H "{A}/stats?start_date={D-2}", 200, &STATS, VS, {0}},
    {H "{A}/stats?end_date={D-1}", 200, &STATS, VS, {0}},
    {H "{A}/stats?start_date={D-5}&days=1", 200, &STATS, VS, {0}},
    /* get_statistics has no aggregation parameter: ignored */
    {H "{A}/stats?days=7&aggregation=5min", 200, &STATS, VS, {0}},
    {H "{U}/stats", 404, &DETAIL, 0, {"/detail=No data found for intersection {U}"}},
    {H "abc/stats", 404, &DETAIL, 0, {"/detail=No data found for intersection abc"}},
    {H "{E}/stats", 404, &DETAIL, PG, {"/detail=No data found for intersection {E}"}},
    {H "{A}/stats?start_date={D-300}&end_date={D-250}",
     404,
     &DETAIL,
     0,
     {"/detail=No data found for intersection {A}"}},
    {H "{A}/stats?start_date={D-10}&end_date={D-10}",
     404,
     &DETAIL,
     PG,
     {"/detail=No data found for intersection {A}"}},
    /* one minute: std NaN → 0.0; 1 of 1 minutes > 75 → 100.0 */
    {H "{S}/stats?days=1",
     200,
     &STATS,
     PG | VS,
     {"/std_safety_index#0", "/high_risk_intervals#1", "/high_risk_percentage#100",
      "/total_traffic_volume#7", "/intersection_id={S}"}},
    {H "{S}?days=1", 200, &HIST, PG | VH, {"/total_points#1", "/data_points@1"}},
    /* the original read the id as float(text) (its storage kept float ids), and echoed
     * the text */
    {H "{S}.0/stats?days=1",
     200,
     &STATS,
     PG,
     {"/intersection_id={S}.0", "/total_traffic_volume#7"}},
    {H "{S}.0?days=1", 200, &HIST, PG, {"/intersection_id={S}.0", "/total_points#1"}},

    /* ---- GET /safety/history/: days Query(7, ge=1, le=30); (end - start).days > 30 → 400 */
    {H, 200, &HIST_LIST, VA, {0}},
    {H "?days=1&aggregation=1hour", 200, &HIST_LIST, VA | CMP, {0}},
    {H "?days=30", 200, &HIST_LIST, VA, {0}},
    {H "?days=31", 422, &VERR, 0, {Q422("days", "=less_than_equal", "31"), "/detail/0/ctx/le#30"}},
    {H "?days=0", 422, &VERR, 0, {Q422("days", "=greater_than_equal", "0")}},
    {H "?aggregation=5min",
     422,
     &VERR,
     0,
     {Q422("aggregation", "=string_pattern_mismatch", "5min")}},
    {H "?start_date={D-29}&end_date={D0}", 200, &HIST_LIST, VA, {0}},
    {H "?start_date={D-30}&end_date={D0}", 200, &HIST_LIST, VA, {0}},
    {H "?start_date={D-31}&end_date={D0}",
     400,
     &DETAIL,
     0,
     {"/detail=All-intersections query limited to 30 days. Use single-intersection endpoint "
      "for longer periods."}},
    /* no start > end check here: load_indices finds nothing → [] */
    {H "?start_date={D0}&end_date={D-1}", 200, &HIST_LIST, 0, {"@0"}},
    /* if len(indices_df) == 0: return [] */
    {H "?start_date={D-300}&end_date={D-290}", 200, &HIST_LIST, 0, {"@0"}},
    {"/api/v1/safety/history", 307, NULL, 0, {"H:Location$/api/v1/safety/history/"}},

    /* ---- /api/v2: tsi's conventions (400 {detail,code,field}, instants with Z, dates,
     * integer ids, an object for all intersections, weeks labelled by their Monday) ---- */
    {"/api/v2/safety/index/", 200, &V2_IDX_LIST, 0, {0}},
    {"/api/v2/safety/history/{A}?days=7&aggregation=1hour",
     200,
     &V2_HIST,
     0,
     {"/intersection_id#{A}", "/start_date={D-6}", "/end_date={D0}"}},
    {"/api/v2/safety/history/{A}?days=90&aggregation=1week", 200, &V2_HIST, MON, {0}},
    {"/api/v2/safety/history/{A}/stats?days=7", 200, &V2_STATS, 0, {0}},
    {"/api/v2/safety/history/?days=1", 200, &V2_ALL, 0, {0}},
    {"/api/v2/safety/history/{A}?days=0", 400, &V2_ERR, 0, {"/field=days"}},
    {"/api/v2/safety/history/{A}?days=abc", 400, &V2_ERR, 0, {"/field=days"}},
    {"/api/v2/safety/history/{A}?days=366", 400, &V2_ERR, 0, {"/field=days"}},
    {"/api/v2/safety/history/{A}?aggregation=5min", 400, &V2_ERR, 0, {"/field=aggregation"}},
    {"/api/v2/safety/history/{A}?start_date=2025-13-01", 400, &V2_ERR, 0, {"/field=start_date"}},
    {"/api/v2/safety/history/{A}/stats?days=abc", 400, &V2_ERR, 0, {"/field=days"}},
    /* v2: days 1..365; the 30-day range limit of all intersections names end_date */
    {"/api/v2/safety/history/?days=31", 400, &V2_ERR, 0, {"/field=end_date"}},
    {"/api/v2/safety/index/abc", 400, &V2_ERR, 0, {0}},
    {"/api/v2/safety/history/{U}?days=7", 404, &V2_ERR_NF, 0, {0}},
};
#undef H

/* ---- the fixture -------------------------------------------------------------------------- */
/* [pg] data: 901 has minutes from today-130 to now-2min with gaps (in the last 47 hours
 * every 17th minute, the hour today-1 05:00, the hour today-5 10:00, the day today-10 and
 * the Monday..Sunday week holding today-40; at least today's first minute); 902 one
 * minute (index 80) 10 minutes ago, or at today's midnight if that is later;
 * 903 none. Minutes of the last 47 hours are realtime rows (EB missing every 29th minute,
 * VRU index missing every 62nd); hourly rows for the completed hours of the last 90 days
 * and daily rows for the completed days, rolled up from the same minutes as
 * sql/migrations/010_jobs.sql does. cx_min keeps every minute as the API must see it:
 * si = coalesce(combined_index_eb, combined_index). */
static const char SETUP_SQL[] =
    "SET TIME ZONE 'UTC';"
    "INSERT INTO intersections (id, name, latitude, longitude, geometry, lane_count, metadata)"
    " VALUES (901, 'Contract Ave & Spec St', 38.90, -77.10,"
    "         ST_SetSRID(ST_MakePoint(-77.10, 38.90), 4326), 4, '{}'),"
    "        (902, 'Single Minute Rd', 38.91, -77.11,"
    "         ST_SetSRID(ST_MakePoint(-77.11, 38.91), 4326), 2, '{}'),"
    "        (903, 'Quiet Corner', 38.92, -77.12,"
    "         ST_SetSRID(ST_MakePoint(-77.12, 38.92), 4326), 2, '{}');"
    "CREATE TABLE cx_const AS SELECT date_trunc('hour', now()) - interval '47 hours' AS b,"
    " date_trunc('day', now()) AS d0;"
    "CREATE TABLE cx_raw AS"
    " SELECT 901::bigint AS intersection_id, t, m, t >= k.b AS rt, c,"
    "  CASE WHEN t >= k.b AND m % 29 = 3 THEN NULL ELSE least(c * 0.97 + 2, 100) END AS e,"
    "  CASE WHEN m % 62 = 7 THEN NULL ELSE c * 0.9 END AS vru,"
    "  CASE WHEN m % 31 = 7 THEN NULL ELSE c * 0.8 END AS vru_eb,"
    "  c * 0.7 AS veh, CASE WHEN m % 37 = 11 THEN NULL ELSE c * 0.6 END AS veh_eb,"
    "  ((m * 13) % 23)::int AS vol"
    " FROM cx_const k, LATERAL ("
    "   SELECT t, m, 5 + (m * 7919 % 9000) / 100.0::float8 AS c"
    "   FROM (SELECT t, (extract(epoch FROM t) / 60)::bigint AS m"
    "         FROM generate_series(k.d0 - interval '130 days', greatest(date_trunc('minute',"
    "              now()) - interval '2 minutes', k.d0), interval '1 minute') t) s"
    " ) g"
    " WHERE NOT (t >= k.b AND m % 17 = 5)"
    "   AND date_trunc('hour', t) <> k.d0 - interval '1 day' + interval '5 hours'"
    "   AND date_trunc('hour', t) <> k.d0 - interval '5 days' + interval '10 hours'"
    "   AND date_trunc('day', t) <> k.d0 - interval '10 days'"
    "   AND date_trunc('week', t) <> date_trunc('week', k.d0 - interval '40 days');"
    "INSERT INTO cx_raw SELECT 902, greatest(date_trunc('minute', now()) - interval '10 minutes',"
    " date_trunc('day', now())), 0, true, 80, 80, NULL, NULL, NULL, NULL, 7;"
    "CREATE TABLE cx_min AS SELECT intersection_id, t, coalesce(e, c) AS si, vol,"
    " coalesce(vru_eb, vru) AS vru_v, coalesce(veh_eb, veh) AS veh_v FROM cx_raw;"
    "CREATE INDEX ON cx_min (intersection_id, t);"
    "INSERT INTO safety_indices_realtime (intersection_id, \"timestamp\", combined_index,"
    " combined_index_eb, vru_index, vru_index_eb, vehicle_index, vehicle_index_eb, traffic_volume,"
    " vru_count, vehicle_event_count, vru_event_count, hour_of_day, day_of_week)"
    " SELECT intersection_id, t, c, e, vru, vru_eb, veh, veh_eb, vol, vol % 3, 0, 0,"
    "  extract(hour FROM t), extract(isodow FROM t) - 1 FROM cx_raw WHERE rt;"
    "INSERT INTO safety_indices_hourly (intersection_id, hour_timestamp, avg_si, min_si, max_si,"
    " std_si, total_volume, avg_volume, high_risk_minutes, data_quality_score)"
    " SELECT intersection_id, date_trunc('hour', t), avg(si ORDER BY t), min(si), max(si),"
    "  stddev_samp(si ORDER BY t), sum(vol), avg(vol), count(*) FILTER (WHERE si > 75),"
    "  least(count(*), 60)::float8 / 60"
    " FROM cx_min WHERE t >= date_trunc('hour', now() - interval '90 days')"
    "  AND t < date_trunc('hour', now()) GROUP BY 1, 2;"
    "INSERT INTO safety_indices_daily (intersection_id, date, avg_si, min_si, max_si, std_si,"
    " total_volume, avg_volume, high_risk_hours, peak_hour, peak_si)"
    " SELECT d.intersection_id, d.day, d.a, d.mn, d.mx, d.sd, d.tv, d.av, h.hrh, h.ph, h.ps"
    " FROM (SELECT intersection_id, t::date AS day, avg(si) AS a, min(si) AS mn, max(si) AS mx,"
    "        stddev_samp(si) AS sd, sum(vol) AS tv, avg(vol) AS av"
    "       FROM cx_min WHERE t < date_trunc('day', now()) GROUP BY 1, 2) d"
    " JOIN (SELECT intersection_id, day, count(*) FILTER (WHERE a > 75) AS hrh,"
    "        (array_agg(hr ORDER BY a DESC, hr))[1] AS ph, max(a) AS ps"
    "       FROM (SELECT intersection_id, t::date AS day, extract(hour FROM t)::smallint AS hr,"
    "              avg(si) AS a FROM cx_min GROUP BY 1, 2, 3) x GROUP BY 1, 2) h"
    " USING (intersection_id, day);"
    "DROP TABLE cx_raw;"
    "ANALYZE;";

static char db_own[64], db_seed[64];
static PGconn *owner; /* [pg] database, TimeZone UTC */
static api_srv s_pg, s_seed_pg, s_seed_pq;
static char workdir[256];
static long long today; /* UTC day number */

static char e_db_own[96], e_db_seed[96], e_arch[320];

static void tsi_ok(const char *const *args, const char *const *env)
{
    char out[16384];
    int rc = th_run_tsi(args, env, out, sizeof out);
    if (rc != 0)
        fail_msg("tsi %s failed (%d): %s", args[0], rc, out);
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* "today" must not change while the table runs (well under a minute), and today must
     * hold the minutes of {A} and {S} (SETUP_SQL keeps them in today, even just after
     * midnight): within a minute of midnight, wait for it */
    long tod = (long)(time(NULL) % 86400);
    if (tod > 86400 - 60) { /* the table would run across midnight: start after it */
        long wait = 86400 - tod + 1;
        fprintf(stderr, "test_api_contract: %ld s to 00:00 UTC, waiting\n", wait);
        sleep((unsigned)wait);
    }
    snprintf(workdir, sizeof workdir, "%s/tsi-api-contract-%d",
             getenv("TSI_TEST_TMP") ? getenv("TSI_TEST_TMP") : "/tmp", (int)getpid());
    mkdir(workdir, 0755);
    snprintf(e_arch, sizeof e_arch, "TSI_ARCHIVE_DIR=%s/archive", workdir);

    /* the `tsi seed` database (and its indices Parquet) for the Parquet run */
    th_db_create(db_seed);
    snprintf(e_db_seed, sizeof e_db_seed, "TSI_DB_NAME=%s", db_seed);
    const char *seed_env[] = {e_db_seed, e_arch, "TSI_TIMEZONE=UTC", NULL};
    const char *seed_args[] = {"seed", "--intersections", "3", "--days", "3", NULL};
    tsi_ok(seed_args, seed_env);

    /* this test's own database */
    th_db_create(db_own);
    snprintf(e_db_own, sizeof e_db_own, "TSI_DB_NAME=%s", db_own);
    owner = th_connect("tsi_owner");
    char st[8];
    if (th_exec(owner, SETUP_SQL, st) != PGRES_COMMAND_OK)
        fail_msg("setup SQL failed (%s): %s", st, PQerrorMessage(owner));
    today = th_int(owner, "SELECT current_date - date '1970-01-01'");

    const char *args[] = {"--threads", "4", NULL};
    const char *pargs[] = {"--threads", "4", "--source", "parquet", NULL};
    static char e_arch_own[340];
    snprintf(e_arch_own, sizeof e_arch_own, "TSI_ARCHIVE_DIR=%s/archive-own", workdir);
    const char *own_env[] = {e_db_own, e_arch_own, "TSI_TIMEZONE=UTC", NULL};
    srv_start(&s_pg, args, own_env);
    srv_start(&s_seed_pg, args, seed_env);
    srv_start(&s_seed_pq, pargs, seed_env);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    srv_stop_clean(&s_seed_pq);
    srv_stop_clean(&s_seed_pg);
    th_db_drop(db_seed);
    api_teardown(&s_pg, owner, db_own, workdir);
    return 0;
}

/* ---- one run of the table --------------------------------------------------------------- */
typedef struct run {
    const char *tag;
    int port;
    int ref_port;  /* CMP rows: the PostgreSQL server on the same data (0: none) */
    bool own_data; /* this test's SQL data: PG rows, value recomputation */
    long long A, S, E, U;
} run;

/* the path template with its placeholders filled in */
static void expand(const run *rn, const char *tpl, char *out, size_t len)
{
    size_t j = 0;
    for (const char *p = tpl; *p && j + 1 < len;) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            char v[32] = "";
            if (e && e - p == 2 && strchr("ASEU", p[1]))
                snprintf(v, sizeof v, "%lld",
                         p[1] == 'A'   ? rn->A
                         : p[1] == 'S' ? rn->S
                         : p[1] == 'E' ? rn->E
                                       : rn->U);
            else if (e && p[1] == 'D')
                cu_day_str(v, sizeof v, today + strtoll(p + 2, NULL, 10));
            else
                fail_msg("table: bad placeholder in %s", tpl);
            j += (size_t)snprintf(out + j, len - j, "%s", v);
            p = e + 1;
        } else
            out[j++] = *p++;
    }
    out[j < len ? j : len - 1] = '\0';
}

/* a query parameter's value (raw text) into out; false when absent */
static bool qparam(const char *path, const char *name, char *out, size_t len)
{
    const char *q = strchr(path, '?');
    size_t nl = strlen(name);
    while (q && *q) {
        q++;
        if (strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t k = strcspn(q + nl + 1, "&");
            snprintf(out, len, "%.*s", (int)k, q + nl + 1);
            return true;
        }
        q = strchr(q, '&');
    }
    return false;
}

/* history.py's window: end_date or today; start_date or end - (days - 1); and
 * history_service._get_smart_default_aggregation for a missing aggregation */
static void window_of(const char *path, long long *d0, long long *d1, char *agg, size_t alen)
{
    char v[64];
    long long days = qparam(path, "days", v, sizeof v) ? strtoll(v, NULL, 10) : 7;
    *d1 = today;
    if (qparam(path, "end_date", v, sizeof v) && !cu_parse_date(v, d1))
        fail_msg("table: bad end_date in %s", path);
    *d0 = *d1 - (days - 1);
    if (qparam(path, "start_date", v, sizeof v) && !cu_parse_date(v, d0))
        fail_msg("table: bad start_date in %s", path);
    if (!qparam(path, "aggregation", agg, alen)) {
        long long n = *d1 - *d0 + 1;
        snprintf(agg, alen, "%s",
                 n <= 1    ? "1min"
                 : n <= 7  ? "1hour"
                 : n <= 30 ? "1day"
                 : n <= 90 ? "1week"
                           : "1month");
    }
}

/* pandas resample labels: 1h / 1D by their start, 1W (W-SUN) by the week's Sunday (the
 * bins run Monday 00:00 .. Sunday 23:59:59.999), 1ME by the month's last day */
static const char *bin_sql(const char *agg)
{
    if (strcmp(agg, "1min") == 0)
        return "t";
    if (strcmp(agg, "1hour") == 0)
        return "date_trunc('hour', t)";
    if (strcmp(agg, "1day") == 0)
        return "date_trunc('day', t)";
    if (strcmp(agg, "1week") == 0)
        return "date_trunc('week', t) + interval '6 days'";
    return "date_trunc('month', t) + interval '1 month' - interval '1 day'";
}

static int num_at(const tsi_json *d, int obj, const char *key, double *v)
{
    int t = tsi_json_get(d, obj, key);
    if (t < 0 || tsi_json_is_null(d, t))
        return -1;
    return tsi_json_num(d, t, v);
}

static bool near(double got, double want)
{
    return fabs(got - want) <= 1e-9 * (1 + fabs(want));
}

/* the series at token h (an IntersectionHistory) against cx_min; idtext: the expected
 * intersection_id (NULL: not checked); base: the JSON pointer of h */
static void check_series(cu_report *rep, const tsi_json *d, int h, long long id, const char *idtext,
                         long long d0, long long d1, const char *agg, const char *base)
{
    char a[16], b[16], got[64], ptr[128];
    cu_day_str(a, sizeof a, d0);
    cu_day_str(b, sizeof b, d1);
    /* start_date=datetime.combine(start_date, datetime.min.time()),
     * end_date=datetime.combine(end_date, datetime.max.time()) */
    struct {
        const char *key;
        char want[64];
    } top[4] = {{"start_date", ""}, {"end_date", ""}, {"aggregation", ""}, {"intersection_id", ""}};
    snprintf(top[0].want, sizeof top[0].want, "%sT00:00:00", a);
    snprintf(top[1].want, sizeof top[1].want, "%sT23:59:59.999999", b);
    snprintf(top[2].want, sizeof top[2].want, "%s", agg);
    snprintf(top[3].want, sizeof top[3].want, "%s", idtext ? idtext : "");
    for (int k = 0; k < (idtext ? 4 : 3); k++) {
        int t = tsi_json_get(d, h, top[k].key);
        snprintf(ptr, sizeof ptr, "%s/%s", base, top[k].key);
        if (t >= 0 && tsi_json_str(d, t, got, sizeof got) >= 0 && strcmp(got, top[k].want) != 0)
            cu_fail(rep, ptr, "\"%s\", the original gives \"%s\"", got, top[k].want);
    }
    char sql[1200];
    snprintf(sql, sizeof sql,
             "SELECT to_char(b, 'YYYY-MM-DD\"T\"HH24:MI:SS'), avg(si), sum(vol),"
             " extract(hour FROM min(t))::int, (extract(isodow FROM min(t)) - 1)::int,"
             " avg(vru_v), avg(veh_v)"
             " FROM (SELECT %s AS b, t, si, vol, vru_v, veh_v FROM cx_min"
             "       WHERE intersection_id = %lld AND t >= date '%s' AND t < date '%s' + 1) s"
             " GROUP BY b ORDER BY b",
             bin_sql(agg), id, a, b);
    PGresult *res = PQexec(owner, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("recompute: %s", PQerrorMessage(owner));
    int n = PQntuples(res);
    if (n == 0)
        cu_fail(rep, base, "table error: no minutes of %lld in %s..%s, yet 200 expected", id, a, b);
    int pts = tsi_json_get(d, h, "data_points");
    double tp;
    snprintf(ptr, sizeof ptr, "%s/total_points", base);
    if (num_at(d, h, "total_points", &tp) == 0 && (long long)tp != n)
        cu_fail(rep, ptr, "%lld, the original's non-empty bins are %d (empty bins omitted)",
                (long long)tp, n);
    int k = 0;
    int p = tsi_json_first(d, pts);
    for (; p >= 0 && k < n; p = tsi_json_next(d, pts, p), k++) {
        snprintf(ptr, sizeof ptr, "%s/data_points/%d", base, k);
        int t = tsi_json_get(d, p, "timestamp");
        const char *wts = PQgetvalue(res, k, 0);
        got[0] = '\0';
        /* the label's value; its format is the shape's business (a 'Z' is reported there) */
        if (t >= 0 && tsi_json_str(d, t, got, sizeof got) >= 0 && strlen(got) == 20 &&
            got[19] == 'Z')
            got[19] = '\0';
        if (t < 0 || strcmp(got, wts) != 0) {
            cu_fail(rep, ptr, "timestamp \"%s\", the original's bin %d is labelled \"%s\"", got, k,
                    wts);
            continue;
        }
        double v, w = atof(PQgetvalue(res, k, 1));
        if (num_at(d, p, "safety_index", &v) == 0 && !near(v, w))
            cu_fail(rep, ptr, "safety_index %.12g, the minute mean of the bin is %.12g", v, w);
        long long vol = atoll(PQgetvalue(res, k, 2));
        if (num_at(d, p, "traffic_volume", &v) == 0 && (long long)v != vol)
            cu_fail(rep, ptr, "traffic_volume %.0f, the bin's sum is %lld", v, vol);
        int hr = atoi(PQgetvalue(res, k, 3)), dw = atoi(PQgetvalue(res, k, 4));
        if (num_at(d, p, "hour_of_day", &v) == 0 && (int)v != hr)
            cu_fail(rep, ptr, "hour_of_day %.0f, the bin's first minute has %d", v, hr);
        if (num_at(d, p, "day_of_week", &v) == 0 && (int)v != dw)
            cu_fail(rep, ptr, "day_of_week %.0f, the bin's first minute has %d", v, dw);
        if (strcmp(agg, "1min") == 0) {
            /* vru_index: VRU_Index_EB, else VRU_Index, else None (same for vehicles) */
            static const char *const key[2] = {"vru_index", "vehicle_index"};
            for (int c = 0; c < 2; c++) {
                int tv = tsi_json_get(d, p, key[c]);
                bool wnull = PQgetisnull(res, k, 5 + c);
                double wv = wnull ? 0 : atof(PQgetvalue(res, k, 5 + c));
                if (tv < 0)
                    continue;
                if (wnull != tsi_json_is_null(d, tv) ||
                    (!wnull && (tsi_json_num(d, tv, &v) < 0 || !near(v, wv))))
                    cu_fail(rep, ptr, "%s does not match the minute's (EB first) %s", key[c],
                            wnull ? "null" : PQgetvalue(res, k, 5 + c));
            }
        }
    }
    int np = 0;
    for (int q = tsi_json_first(d, pts); q >= 0; q = tsi_json_next(d, pts, q))
        np++;
    if (np != n) {
        snprintf(ptr, sizeof ptr, "%s/data_points", base);
        cu_fail(rep, ptr, "%d points, the original's non-empty bins are %d", np, n);
    }
    PQclear(res);
}

/* history_service.get_aggregate_stats recomputed over the window's minutes */
static void check_stats(cu_report *rep, const tsi_json *d, long long id, long long d0, long long d1)
{
    char a[16], b[16], sql[900];
    cu_day_str(a, sizeof a, d0);
    cu_day_str(b, sizeof b, d1);
    snprintf(sql, sizeof sql,
             "SELECT count(*), avg(si), min(si), max(si), coalesce(stddev_samp(si), 0), sum(vol),"
             " avg(vol), count(*) FILTER (WHERE si > 75),"
             " to_char(min(t), 'YYYY-MM-DD\"T\"HH24:MI:SS'),"
             " to_char(max(t), 'YYYY-MM-DD\"T\"HH24:MI:SS')"
             " FROM cx_min WHERE intersection_id = %lld AND t >= date '%s' AND t < date '%s' + 1",
             id, a, b);
    PGresult *res = PQexec(owner, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("recompute: %s", PQerrorMessage(owner));
    long long n = atoll(PQgetvalue(res, 0, 0));
    if (n == 0) {
        cu_fail(rep, "", "table error: no minutes of %lld in %s..%s, yet 200 expected", id, a, b);
        PQclear(res);
        return;
    }
    long long hr = atoll(PQgetvalue(res, 0, 7));
    /* round((high_risk_count / total_intervals) * 100, 2): Python rounds the binary value
     * correctly (half even), as glibc's printf does */
    char pct[64];
    snprintf(pct, sizeof pct, "%.2f", ((double)hr / (double)n) * 100);
    static const char *const nk[] = {"avg_safety_index",     "min_safety_index",
                                     "max_safety_index",     "std_safety_index",
                                     "total_traffic_volume", "avg_traffic_volume",
                                     "high_risk_intervals",  "high_risk_percentage"};
    double want[8];
    for (int k = 0; k < 7; k++)
        want[k] = atof(PQgetvalue(res, 0, k + 1));
    want[7] = atof(pct);
    for (int k = 0; k < 8; k++) {
        double v;
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/%s", nk[k]);
        if (num_at(d, 0, nk[k], &v) == 0 && !near(v, want[k]))
            cu_fail(rep, ptr,
                    "%.12g, the original's definition over the window's %lld minutes "
                    "gives %.12g",
                    v, n, want[k]);
    }
    /* period_start=indices_df['time_15min'].min(), period_end=...max() */
    static const char *const tk[] = {"period_start", "period_end"};
    for (int k = 0; k < 2; k++) {
        char got[64], ptr[64];
        snprintf(ptr, sizeof ptr, "/%s", tk[k]);
        int t = tsi_json_get(d, 0, tk[k]);
        got[0] = '\0';
        if (t >= 0 && tsi_json_str(d, t, got, sizeof got) >= 0 && strlen(got) == 20 &&
            got[19] == 'Z')
            got[19] = '\0';
        if (t >= 0 && strcmp(got, PQgetvalue(res, 0, 8 + k)) != 0)
            cu_fail(rep, ptr, "\"%s\", the %s minute with data is %s", got, k ? "last" : "first",
                    PQgetvalue(res, 0, 8 + k));
    }
    PQclear(res);
}

/* one check of the little language */
static void run_check(cu_report *rep, const run *rn, const resp *r, const tsi_json *d,
                      const char *tpl)
{
    char c[512];
    expand(rn, tpl, c, sizeof c);
    size_t k = strcspn(c, "=#@~$");
    if (!c[k])
        fail_msg("table: check without an operator: %s", tpl);
    char op = c[k];
    c[k] = '\0';
    const char *ptr = c, *want = c + k + 1;
    char got[1024];
    if (strncmp(ptr, "H:", 2) == 0) {
        if (!resp_header(r, ptr + 2, got, sizeof got)) {
            cu_fail(rep, ptr, "header missing");
            return;
        }
    } else {
        int t = d ? cu_at(d, ptr) : -1;
        if (t < 0) {
            cu_fail(rep, ptr, "missing");
            return;
        }
        if (op == '@') {
            int n = 0;
            if (!tsi_json_is_array(d, t))
                cu_fail(rep, ptr, "not a list");
            for (int i = tsi_json_first(d, t); i >= 0; i = tsi_json_next(d, t, i))
                n++;
            if (n != atoi(want))
                cu_fail(rep, ptr, "a list of %d items, expected %s", n, want);
            return;
        }
        if (op == '#') {
            double v;
            if (tsi_json_num(d, t, &v) < 0 || !near(v, atof(want))) {
                size_t n;
                const char *raw = tsi_json_raw(d, t, &n);
                cu_fail(rep, ptr, "%.*s, expected the number %s", (int)n, raw ? raw : "?", want);
            }
            return;
        }
        if (!tsi_json_is_string(d, t) || tsi_json_str(d, t, got, sizeof got) < 0) {
            size_t n;
            const char *raw = tsi_json_raw(d, t, &n);
            cu_fail(rep, ptr, "%.*s, expected a string", (int)n, raw ? raw : "?");
            return;
        }
    }
    size_t gl = strlen(got), wl = strlen(want);
    bool ok = op == '='   ? strcmp(got, want) == 0
              : op == '~' ? strncmp(got, want, wl) == 0
                          : gl >= wl && strcmp(got + gl - wl, want) == 0;
    if (!ok)
        cu_fail(rep, ptr, "\"%s\", expected %s\"%s\"", got,
                op == '='   ? ""
                : op == '~' ? "a prefix "
                            : "a suffix ",
                want);
}

static void run_row(const run *rn, const crow *row, cu_report *rep)
{
    char path[512];
    expand(rn, row->path, path, sizeof path);
    snprintf(rep->what, sizeof rep->what, "[%s] GET %s (expected %d)", rn->tag, path, row->status);
    rep->n_req = 0;
    resp r = get(rn->port, path);
    if (r.status != row->status) {
        cu_fail(rep, "", "HTTP %ld: %.300s", r.status, r.body ? r.body : "");
        resp_free(&r);
        return;
    }
    /* every /api/v1 answer names its successor: Link: </api/v2/...>; rel="successor-version" */
    if (strncmp(path, "/api/v1/", 8) == 0) {
        char link[600], want[600];
        snprintf(want, sizeof want, "</api/v2/%.*s", (int)strcspn(path + 8, "?"), path + 8);
        if (!resp_header(&r, "Link", link, sizeof link))
            cu_fail(rep, "H:Link", "missing; expected %s>; rel=\"successor-version\"", want);
        else if (strncmp(link, want, strlen(want)) != 0 || !strchr(">?", link[strlen(want)]) ||
                 !strstr(link, "rel=\"successor-version\""))
            cu_fail(rep, "H:Link", "\"%s\", expected %s>; rel=\"successor-version\"", link, want);
    }
    tsi_json d = {0};
    bool parsed = false;
    if (row->shape || (row->chk[0] && row->chk[0][0] != 'H')) {
        tsi_error e = {0};
        if (tsi_json_parse_alloc(&d, r.body, r.len, 1 << 22, &e) < 0)
            cu_fail(rep, "", "not JSON (%s): %.1500s", e.message, r.body);
        else
            parsed = true;
    }
    if (parsed && row->shape)
        cu_check_doc(&d, row->shape, rep);
    for (int k = 0; k < 6 && row->chk[k]; k++)
        run_check(rep, rn, &r, parsed ? &d : NULL, row->chk[k]);

    if (parsed && row->status == 200 && rn->own_data && (row->flags & (VH | VS | VA))) {
        long long d0, d1;
        char agg[16];
        window_of(path, &d0, &d1, agg, sizeof agg);
        const char *idp = path + strlen("/api/v1/safety/history/");
        char idtext[64];
        snprintf(idtext, sizeof idtext, "%.*s", (int)strcspn(idp, "/?"), idp);
        if (row->flags & VH)
            check_series(rep, &d, 0, atoll(idtext), idtext, d0, d1, agg, "");
        if (row->flags & VS)
            check_stats(rep, &d, atoll(idtext), d0, d1);
        if (row->flags & VA) {
            /* one history per intersection with data in the window */
            char a[16], b[16];
            cu_day_str(a, sizeof a, d0);
            cu_day_str(b, sizeof b, d1);
            long long want = th_intf(owner,
                                     "SELECT count(DISTINCT intersection_id) FROM cx_min"
                                     " WHERE t >= date '%s' AND t < date '%s' + 1",
                                     a, b);
            int k = 0;
            for (int h = tsi_json_first(&d, 0); h >= 0; h = tsi_json_next(&d, 0, h), k++) {
                char base[32], ids[64] = "";
                snprintf(base, sizeof base, "/%d", k);
                int t = tsi_json_get(&d, h, "intersection_id");
                if (t >= 0 && tsi_json_str(&d, t, ids, sizeof ids) >= 0)
                    check_series(rep, &d, h, (long long)strtod(ids, NULL), NULL, d0, d1, agg, base);
            }
            if (k != want)
                cu_fail(rep, "", "%d histories, %lld intersections have data in the window", k,
                        want);
        }
    }
    if (parsed && (row->flags & MON)) {
        int pts = tsi_json_get(&d, 0, "data_points"), k = 0;
        for (int p = tsi_json_first(&d, pts); p >= 0; p = tsi_json_next(&d, pts, p), k++) {
            char ts[64], ptr[64], day[11];
            long long dn;
            snprintf(ptr, sizeof ptr, "/data_points/%d/timestamp", k);
            int t = tsi_json_get(&d, p, "timestamp");
            if (t < 0 || tsi_json_str(&d, t, ts, sizeof ts) < 0 || strlen(ts) < 19)
                continue;
            snprintf(day, sizeof day, "%.10s", ts);
            if (!cu_parse_date(day, &dn) || cu_weekday(dn) != 0 ||
                strncmp(ts + 10, "T00:00:00", 9) != 0)
                cu_fail(rep, ptr,
                        "\"%s\" is not a Monday 00:00 (v2 weeks are labelled by their "
                        "start)",
                        ts);
        }
    }
    if (parsed && rn->ref_port && (row->flags & CMP)) {
        resp rr = get(rn->ref_port, path);
        tsi_json dr = {0};
        tsi_error e = {0};
        if (rr.status != r.status)
            cu_fail(rep, "", "HTTP %ld here, %ld from PostgreSQL on the same data", r.status,
                    rr.status);
        else if (tsi_json_parse_alloc(&dr, rr.body, rr.len, 1 << 22, &e) < 0)
            cu_fail(rep, "", "the PostgreSQL answer is not JSON");
        else
            cu_same_doc(&d, &dr, rep);
        tsi_json_free(&dr);
        resp_free(&rr);
    }
    if (parsed)
        tsi_json_free(&d);
    resp_free(&r);
}

static void run_table(const run *rn)
{
    cu_report rep = {0};
    int ran = 0, v1 = 0, v2 = 0, bad_rows = 0;
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++) {
        const crow *row = &TABLE[i];
        if (!rn->own_data && (row->flags & PG))
            continue;
        run_row(rn, row, &rep);
        bad_rows += rep.n_req > 0;
        ran++;
        if (strncmp(row->path, "/api/v2/", 8) == 0)
            v2++;
        else
            v1++;
    }
    fprintf(stderr, "[%s] %d requests (%d v1 incl. /health, %d v2): %d failures in %d requests\n",
            rn->tag, ran, v1, v2, rep.n, bad_rows);
    if (rep.n) {
        fprintf(stderr, "%s", rep.text);
        free(rep.text);
        fail_msg("[%s] %d contract failures in %d of %d requests (listed above)", rn->tag, rep.n,
                 bad_rows, ran);
    }
    free(rep.text);
}

static void test_contract_pg(void **state)
{
    (void)state;
    run rn = {.tag = "pg",
              .port = s_pg.port,
              .own_data = true,
              .A = 901,
              .S = 902,
              .E = 903,
              .U = 999999};
    run_table(&rn);
}

static void test_contract_parquet(void **state)
{
    (void)state;
    run rn = {
        .tag = "parquet", .port = s_seed_pq.port, .ref_port = s_seed_pg.port, .A = 1, .U = 999999};
    run_table(&rn);
}

/* ---- the frontend's parser: CPython 3.9 datetime.fromisoformat, and pydantic's form ---- */
static void test_py39_fromisoformat(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool py39;     /* datetime.fromisoformat(s) succeeds on Python 3.9 */
        bool pydantic; /* what pydantic 2.9 writes for a naive datetime */
    } cases[] = {
        {"2025-11-20T14:30:00", true, true},
        {"2025-11-20T23:59:59.999999", true, true},
        {"2025-11-20T00:00:00.000001", true, true},
        {"2025-11-20", true, false},
        {"2025-11-20 14:30:00", true, false},
        {"2025-11-20T14", true, false},
        {"2025-11-20T14:30", true, false},
        {"2025-11-20T14:30:00.123", true, false},
        {"2025-11-20T14:30:00.000000", true, false}, /* pydantic omits zero microseconds */
        {"2025-11-20T14:30:00+00:00", true, false},
        {"2025-11-20T14:30:00-05:00", true, false},
        {"2025-11-20T14:30:00+05:30:15", true, false},
        {"2025-11-20T14:30:00+05:30:15.123456", true, false},
        {"2024-02-29T00:00:00", true, true},
        {"2025-11-20T14:30:00Z", false, false}, /* 3.9 has no 'Z' (3.11 does) */
        {"2025-11-20T14:30:00.000Z", false, false},
        {"2025-11-20T14:30:00.12", false, false},
        {"2025-11-20T14:30:00.1234", false, false},
        {"2025-11-20T14:30:00.1234567", false, false},
        {"2025-11-20T14:30:00+0000", false, false},
        {"2025-11-20T14:30:00+00", false, false},
        {"2025-11-20T14:30:00+24:00", false, false},
        {"2025-1-20T00:00:00", false, false},
        {"2025-13-01T00:00:00", false, false},
        {"2025-02-29T00:00:00", false, false},
        {"2025-02-30", false, false},
        {"0000-01-01T00:00:00", false, false},
        {"2025-11-20T24:00:00", false, false},
        {"2025-11-20T14:60:00", false, false},
        {"2025-11-20T14:30:60", false, false},
        {"2025-11-20T14:30:00:00", false, false},
        {"20251120T143000", false, false},
        {"2025-11-20T", false, false},
        {"2025-11-20T14:30:00 ", false, false},
        {"2025-11-20T14:30:00+00:00Z", false, false},
        {"yesterday", false, false},
        {"", false, false},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool p = py39_fromisoformat(cases[i].s), y = pyd_naive_dt(cases[i].s);
        if (p != cases[i].py39 || y != cases[i].pydantic) {
            fprintf(stderr, "case \"%s\": fromisoformat %s (want %s), pydantic form %s (want %s)\n",
                    cases[i].s, p ? "accepts" : "rejects", cases[i].py39 ? "accepts" : "rejects",
                    y ? "yes" : "no", cases[i].pydantic ? "yes" : "no");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    /* v2's instants, for contrast */
    assert_true(v2_utc_dt("2025-11-20T14:30:00Z"));
    assert_true(v2_utc_dt("2025-11-20T14:30:00.5Z"));
    assert_false(v2_utc_dt("2025-11-20T14:30:00"));
    assert_false(v2_utc_dt("2025-11-20T14:30:00+00:00"));
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_py39_fromisoformat),
    };
    int rc = cmocka_run_group_tests_name("checkers", unit, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_pg),
        cmocka_unit_test(test_contract_parquet),
    };
    return rc | cmocka_run_group_tests_name("contract", tests, setup, teardown);
}
