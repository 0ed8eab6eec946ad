-- 060_analytics_window: analytics a planner can compare over months (issue 26).
-- docs/jobs.md (§ Normalisation constants, § Rollup arithmetic) and docs/domain-core.md
-- (§ Model provenance) explain it. Additive: every new column is nullable or has a default.
--
-- 1. Model provenance: each 1-minute row records the normalisation constants set
--    (normalization_constants.id) and the algorithm version (core/index.h
--    TSI_ALGORITHM_VERSION) that computed it; the rollups keep the mix as sorted distinct
--    arrays (one element = one model; more = mixed; empty = rows older than provenance).
-- 2. Sub-indices through the rollups: hourly and daily rows gain, for VRU and vehicle, the
--    mean of the raw index, the mean of the EB index, and the mean/min/max of the index
--    the API reports (EB, else raw: "si"), each with its minute count so that a day (and
--    every coarser bin) is the exact minute-weighted mean of its hours. Rows rolled before
--    this migration keep NULL counts (not known): a bin with such a part has no sub-index,
--    never a mean over part of it that would pass for the bin's.
-- 3. Constants and priors over their true window: safety_features_hourly keeps, per
--    intersection, UTC hour and hour_of_day, exactly what the formulas of domain.md §4
--    need (minutes, the five maxima, the hour's avg_speed values > 0 sorted, sums and
--    counts of the raw indices). It is filled by the hourly rollup (so by everything that
--    writes realtime rows: collector, backfill, reprocess, seed) and kept by the constants
--    job for max(window, features_retention) days, independent of the 48 h realtime
--    retention. The constants job reads it.
-- 4. Constants a user can trust: a set whose window holds fewer than min_minutes minutes,
--    or one of whose maxima moves by more than max_jump times from the set before, is
--    refused: not stored, the previous set stays valid, data_quality_log says why.

-- 1. provenance ------------------------------------------------------------------------------
ALTER TABLE safety_indices_realtime
    ADD COLUMN IF NOT EXISTS constants_id bigint CHECK (constants_id > 0),
    ADD COLUMN IF NOT EXISTS algorithm_version smallint CHECK (algorithm_version > 0);
COMMENT ON COLUMN safety_indices_realtime.constants_id IS
    'normalization_constants.id the indices were computed with; NULL = built-in defaults or unknown';
COMMENT ON COLUMN safety_indices_realtime.algorithm_version IS
    'TSI_ALGORITHM_VERSION of the feature and index code; NULL = before provenance was recorded';

-- the minute history reads them with the indices, index-only (as 021 did for the indices)
ALTER TABLE safety_indices_realtime DROP CONSTRAINT safety_indices_realtime_pkey;
ALTER TABLE safety_indices_realtime
    ADD CONSTRAINT safety_indices_realtime_pkey PRIMARY KEY (intersection_id, "timestamp")
    INCLUDE (combined_index, combined_index_eb, vru_index, vru_index_eb, vehicle_index,
             vehicle_index_eb, traffic_volume, constants_id, algorithm_version);

-- the union of arrays, sorted and distinct (the provenance of a bin from its parts)
CREATE FUNCTION tsi_sorted_distinct(anycompatiblearray) RETURNS anycompatiblearray
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT DISTINCT x FROM unnest($1) x WHERE x IS NOT NULL ORDER BY x)
$$;
CREATE AGGREGATE tsi_union(anycompatiblearray) (
    SFUNC = array_cat, STYPE = anycompatiblearray, FINALFUNC = tsi_sorted_distinct);

-- 2. sub-indices and provenance of the rollups ----------------------------------------------
-- the same columns on both rollup tables
DO $$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['safety_indices_hourly', 'safety_indices_daily'] LOOP
        EXECUTE format('ALTER TABLE %I
            ADD COLUMN IF NOT EXISTS avg_vru_index double precision CHECK (avg_vru_index BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS n_vru_index integer CHECK (n_vru_index >= 0),
            ADD COLUMN IF NOT EXISTS avg_vru_index_eb double precision CHECK (avg_vru_index_eb BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS n_vru_index_eb integer CHECK (n_vru_index_eb >= 0),
            ADD COLUMN IF NOT EXISTS avg_vru_si double precision CHECK (avg_vru_si BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS min_vru_si double precision CHECK (min_vru_si BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS max_vru_si double precision CHECK (max_vru_si BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS n_vru_si integer CHECK (n_vru_si >= 0),
            ADD COLUMN IF NOT EXISTS avg_vehicle_index double precision CHECK (avg_vehicle_index BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS n_vehicle_index integer CHECK (n_vehicle_index >= 0),
            ADD COLUMN IF NOT EXISTS avg_vehicle_index_eb double precision CHECK (avg_vehicle_index_eb BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS n_vehicle_index_eb integer CHECK (n_vehicle_index_eb >= 0),
            ADD COLUMN IF NOT EXISTS avg_vehicle_si double precision CHECK (avg_vehicle_si BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS min_vehicle_si double precision CHECK (min_vehicle_si BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS max_vehicle_si double precision CHECK (max_vehicle_si BETWEEN 0 AND 100),
            ADD COLUMN IF NOT EXISTS n_vehicle_si integer CHECK (n_vehicle_si >= 0),
            ADD COLUMN IF NOT EXISTS constants_ids bigint[] NOT NULL DEFAULT ''{}'',
            ADD COLUMN IF NOT EXISTS algorithm_versions smallint[] NOT NULL DEFAULT ''{}''', v_table);
    END LOOP;
END $$;

-- 3. the features store of the constants --------------------------------------------------------
CREATE TABLE safety_features_hourly (
    intersection_id     bigint NOT NULL REFERENCES intersections (id),
    hour_timestamp      timestamptz NOT NULL CHECK (hour_timestamp = date_trunc('hour', hour_timestamp)),
    hour_of_day         smallint NOT NULL CHECK (hour_of_day BETWEEN 0 AND 23),
    minutes             integer NOT NULL CHECK (minutes > 0),
    max_vru_events      integer CHECK (max_vru_events >= 0),
    max_vehicle_events  integer CHECK (max_vehicle_events >= 0),
    max_volume          integer CHECK (max_volume >= 0),
    max_speed_stddev    double precision CHECK (max_speed_stddev >= 0),
    max_hard_braking    integer CHECK (max_hard_braking >= 0),
    speeds              double precision[] NOT NULL DEFAULT '{}',  -- avg_speed > 0, ascending
    n_vru               integer NOT NULL CHECK (n_vru >= 0),
    sum_vru             double precision,
    n_vehicle           integer NOT NULL CHECK (n_vehicle >= 0),
    sum_vehicle         double precision,
    n_combined          integer NOT NULL CHECK (n_combined >= 0),
    sum_combined        double precision,
    PRIMARY KEY (intersection_id, hour_timestamp, hour_of_day)
);
CREATE INDEX safety_features_hourly_hour ON safety_features_hourly (hour_timestamp);
COMMENT ON TABLE safety_features_hourly IS
    'per intersection x UTC hour x hour_of_day: what the constants and EB priors need, exactly (issue 26)';
GRANT SELECT, INSERT, UPDATE, DELETE ON safety_features_hourly TO tsi_jobs;
GRANT SELECT ON safety_features_hourly TO tsi_reader;

-- 'constants_refused' rows come from the constants job; the jobs may also write the log
-- (001 granted INSERT to tsi_jobs already).

-- The rollup of a list of UTC hours: hourly rows (combined, sub-indices, provenance) and
-- the features store, from the realtime rows of those hours. Used by the hourly job, and
-- by this migration for the rows that exist. Returns rows written and rows read.
CREATE FUNCTION tsi_rollup_hours(p_buckets timestamptz[], OUT n_rows bigint, OUT n_read bigint)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    n_rows := 0;
    n_read := 0;
    IF coalesce(array_length(p_buckets, 1), 0) = 0 THEN
        RETURN;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS tsi_rollup_src (
        intersection_id bigint, hour_timestamp timestamptz, ts timestamptz, si float8,
        vru float8, vru_eb float8, vru_si float8, veh float8, veh_eb float8, veh_si float8,
        combined float8, traffic_volume integer, vru_event_count integer,
        vehicle_event_count integer, avg_speed float8, speed_stddev float8,
        hard_braking_count integer, hour_of_day smallint, constants_id bigint,
        algorithm_version smallint) ON COMMIT DROP;
    TRUNCATE tsi_rollup_src;
    INSERT INTO tsi_rollup_src
    SELECT r.intersection_id, date_trunc('hour', r."timestamp"), r."timestamp",
           coalesce(r.combined_index_eb, r.combined_index),
           r.vru_index, r.vru_index_eb, coalesce(r.vru_index_eb, r.vru_index),
           r.vehicle_index, r.vehicle_index_eb, coalesce(r.vehicle_index_eb, r.vehicle_index),
           r.combined_index, r.traffic_volume, r.vru_event_count, r.vehicle_event_count,
           r.avg_speed, r.speed_stddev, r.hard_braking_count, r.hour_of_day, r.constants_id,
           r.algorithm_version
      FROM safety_indices_realtime r
     WHERE r."timestamp" >= (SELECT min(b) FROM unnest(p_buckets) b)
       AND r."timestamp" < (SELECT max(b) FROM unnest(p_buckets) b) + interval '1 hour'
       AND date_trunc('hour', r."timestamp") = ANY (p_buckets);

    -- The aggregates read the rows in (intersection, time) order: the same rows always sum
    -- in the same order, so a re-roll reproduces identical bits and an unchanged hour is
    -- not rewritten. One sort for all of them (a subquery's order feeds the aggregates, as
    -- the documentation of array_agg describes; the source is a temporary table, never
    -- scanned in parallel), where ORDER BY inside each of the ~15 aggregates sorted every
    -- group once per aggregate (PostgreSQL 15).
    WITH agg AS (
        SELECT intersection_id, hour_timestamp,
               avg(si) AS avg_si, min(si) AS min_si, max(si) AS max_si,
               stddev_samp(si) AS std_si,
               sum(traffic_volume)::bigint AS total_volume,
               avg(traffic_volume)::double precision AS avg_volume,
               least(count(*) FILTER (WHERE si > 75), 60)::integer AS high_risk_minutes,
               least(count(*), 60)::double precision / 60 AS data_quality_score,
               avg(vru) AS avg_vru_index, count(vru)::integer AS n_vru_index,
               avg(vru_eb) AS avg_vru_index_eb, count(vru_eb)::integer AS n_vru_index_eb,
               avg(vru_si) AS avg_vru_si, min(vru_si) AS min_vru_si,
               max(vru_si) AS max_vru_si, count(vru_si)::integer AS n_vru_si,
               avg(veh) AS avg_vehicle_index, count(veh)::integer AS n_vehicle_index,
               avg(veh_eb) AS avg_vehicle_index_eb,
               count(veh_eb)::integer AS n_vehicle_index_eb,
               avg(veh_si) AS avg_vehicle_si, min(veh_si) AS min_vehicle_si,
               max(veh_si) AS max_vehicle_si, count(veh_si)::integer AS n_vehicle_si,
               coalesce(array_agg(DISTINCT constants_id ORDER BY constants_id)
                        FILTER (WHERE constants_id IS NOT NULL), '{}') AS constants_ids,
               coalesce(array_agg(DISTINCT algorithm_version ORDER BY algorithm_version)
                        FILTER (WHERE algorithm_version IS NOT NULL), '{}') AS algorithm_versions,
               count(*) AS n
          FROM (SELECT * FROM tsi_rollup_src ORDER BY intersection_id, hour_timestamp, ts) o
         GROUP BY intersection_id, hour_timestamp),
    up AS (
        INSERT INTO safety_indices_hourly AS h
               (intersection_id, hour_timestamp, avg_si, min_si, max_si, std_si, total_volume,
                avg_volume, high_risk_minutes, data_quality_score,
                avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si,
                min_vru_si, max_vru_si, n_vru_si, avg_vehicle_index, n_vehicle_index,
                avg_vehicle_index_eb, n_vehicle_index_eb, avg_vehicle_si, min_vehicle_si,
                max_vehicle_si, n_vehicle_si, constants_ids, algorithm_versions)
        SELECT intersection_id, hour_timestamp, avg_si, min_si, max_si, std_si, total_volume,
               avg_volume, high_risk_minutes, data_quality_score,
               avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si,
               min_vru_si, max_vru_si, n_vru_si, avg_vehicle_index, n_vehicle_index,
               avg_vehicle_index_eb, n_vehicle_index_eb, avg_vehicle_si, min_vehicle_si,
               max_vehicle_si, n_vehicle_si, constants_ids, algorithm_versions
          FROM agg
        ON CONFLICT (intersection_id, hour_timestamp) DO UPDATE
           SET avg_si = EXCLUDED.avg_si, min_si = EXCLUDED.min_si, max_si = EXCLUDED.max_si,
               std_si = EXCLUDED.std_si, total_volume = EXCLUDED.total_volume,
               avg_volume = EXCLUDED.avg_volume,
               high_risk_minutes = EXCLUDED.high_risk_minutes,
               data_quality_score = EXCLUDED.data_quality_score,
               avg_vru_index = EXCLUDED.avg_vru_index, n_vru_index = EXCLUDED.n_vru_index,
               avg_vru_index_eb = EXCLUDED.avg_vru_index_eb, n_vru_index_eb = EXCLUDED.n_vru_index_eb,
               avg_vru_si = EXCLUDED.avg_vru_si, min_vru_si = EXCLUDED.min_vru_si,
               max_vru_si = EXCLUDED.max_vru_si, n_vru_si = EXCLUDED.n_vru_si,
               avg_vehicle_index = EXCLUDED.avg_vehicle_index,
               n_vehicle_index = EXCLUDED.n_vehicle_index,
               avg_vehicle_index_eb = EXCLUDED.avg_vehicle_index_eb,
               n_vehicle_index_eb = EXCLUDED.n_vehicle_index_eb,
               avg_vehicle_si = EXCLUDED.avg_vehicle_si, min_vehicle_si = EXCLUDED.min_vehicle_si,
               max_vehicle_si = EXCLUDED.max_vehicle_si, n_vehicle_si = EXCLUDED.n_vehicle_si,
               constants_ids = EXCLUDED.constants_ids,
               algorithm_versions = EXCLUDED.algorithm_versions
         WHERE (h.avg_si, h.min_si, h.max_si, h.std_si, h.total_volume, h.avg_volume,
                h.high_risk_minutes, h.data_quality_score, h.avg_vru_index, h.n_vru_index,
                h.avg_vru_index_eb, h.n_vru_index_eb, h.avg_vru_si, h.min_vru_si, h.max_vru_si,
                h.n_vru_si, h.avg_vehicle_index, h.n_vehicle_index, h.avg_vehicle_index_eb,
                h.n_vehicle_index_eb, h.avg_vehicle_si, h.min_vehicle_si, h.max_vehicle_si,
                h.n_vehicle_si, h.constants_ids, h.algorithm_versions)
               IS DISTINCT FROM
               (EXCLUDED.avg_si, EXCLUDED.min_si, EXCLUDED.max_si, EXCLUDED.std_si,
                EXCLUDED.total_volume, EXCLUDED.avg_volume, EXCLUDED.high_risk_minutes,
                EXCLUDED.data_quality_score, EXCLUDED.avg_vru_index, EXCLUDED.n_vru_index,
                EXCLUDED.avg_vru_index_eb, EXCLUDED.n_vru_index_eb, EXCLUDED.avg_vru_si,
                EXCLUDED.min_vru_si, EXCLUDED.max_vru_si, EXCLUDED.n_vru_si,
                EXCLUDED.avg_vehicle_index, EXCLUDED.n_vehicle_index,
                EXCLUDED.avg_vehicle_index_eb, EXCLUDED.n_vehicle_index_eb,
                EXCLUDED.avg_vehicle_si, EXCLUDED.min_vehicle_si, EXCLUDED.max_vehicle_si,
                EXCLUDED.n_vehicle_si, EXCLUDED.constants_ids, EXCLUDED.algorithm_versions)
        RETURNING 1)
    SELECT (SELECT count(*) FROM up), (SELECT coalesce(sum(n), 0) FROM agg)
      INTO n_rows, n_read;

    -- the features store: an (intersection, hour) read here is replaced whole
    DELETE FROM safety_features_hourly f
     USING (SELECT DISTINCT intersection_id, hour_timestamp FROM tsi_rollup_src) s
     WHERE f.intersection_id = s.intersection_id AND f.hour_timestamp = s.hour_timestamp;
    INSERT INTO safety_features_hourly
    SELECT intersection_id, hour_timestamp, hour_of_day, count(*)::integer,
           max(vru_event_count), max(vehicle_event_count), max(traffic_volume),
           max(speed_stddev), max(hard_braking_count),
           coalesce(array_agg(avg_speed ORDER BY avg_speed) FILTER (WHERE avg_speed > 0), '{}'),
           count(vru)::integer, sum(vru), count(veh)::integer, sum(veh),
           count(combined)::integer, sum(combined)
      FROM (SELECT * FROM tsi_rollup_src
             ORDER BY intersection_id, hour_timestamp, hour_of_day, ts) o
     GROUP BY intersection_id, hour_timestamp, hour_of_day;
    TRUNCATE tsi_rollup_src;
END $$;

-- The daily rows of a list of UTC days, from their hourly rows (docs/jobs.md: minute-weighted
-- means, pooled standard deviation; each sub-index weighted by its own minute count; the
-- provenance arrays are the union of the hours').
CREATE FUNCTION tsi_rollup_days(p_days timestamptz[], OUT n_rows bigint, OUT n_read bigint)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    n_rows := 0;
    n_read := 0;
    IF coalesce(array_length(p_days, 1), 0) = 0 THEN
        RETURN;
    END IF;
    WITH h AS (
        SELECT x.*, x.hour_timestamp::date AS date,
               extract(hour FROM x.hour_timestamp)::smallint AS hr,
               CASE WHEN x.avg_si IS NULL THEN 0
                    ELSE round(x.data_quality_score * 60) END::double precision AS n
          FROM safety_indices_hourly x
         WHERE x.hour_timestamp >= (SELECT min(d) FROM unnest(p_days) d)
           AND x.hour_timestamp < (SELECT max(d) FROM unnest(p_days) d) + interval '1 day'
           AND date_trunc('day', x.hour_timestamp) = ANY (p_days)),
    g AS (
        SELECT intersection_id, date, sum(n * avg_si ORDER BY hr) / nullif(sum(n), 0) AS m
          FROM h GROUP BY intersection_id, date),
    w AS (
        SELECT h.*, g.m FROM h JOIN g USING (intersection_id, date)),
    agg AS (
        SELECT intersection_id, date,
               min(m) AS avg_si, min(min_si) AS min_si, max(max_si) AS max_si,
               CASE WHEN sum(n) >= 2 THEN
                   sqrt(greatest(sum(CASE WHEN n > 0 THEN (n - 1) * coalesce(std_si * std_si, 0)
                                              + n * (avg_si - m) * (avg_si - m)
                                          ELSE 0 END ORDER BY hr) / (sum(n) - 1), 0))
               END AS std_si,
               sum(total_volume)::bigint AS total_volume,
               sum(total_volume)::double precision / nullif(sum(n), 0) AS avg_volume,
               count(*) FILTER (WHERE avg_si > 75)::integer AS high_risk_hours,
               (array_agg(hr ORDER BY avg_si DESC NULLS LAST, hr))[1] AS peak_hour,
               max(avg_si) AS peak_si,
               sum(n_vru_index * avg_vru_index ORDER BY hr) / nullif(sum(n_vru_index), 0) AS avg_vru_index,
               sum(n_vru_index)::integer AS n_vru_index,
               sum(n_vru_index_eb * avg_vru_index_eb ORDER BY hr) / nullif(sum(n_vru_index_eb), 0) AS avg_vru_index_eb,
               sum(n_vru_index_eb)::integer AS n_vru_index_eb,
               sum(n_vru_si * avg_vru_si ORDER BY hr) / nullif(sum(n_vru_si), 0) AS avg_vru_si,
               min(min_vru_si) AS min_vru_si, max(max_vru_si) AS max_vru_si,
               sum(n_vru_si)::integer AS n_vru_si,
               sum(n_vehicle_index * avg_vehicle_index ORDER BY hr) / nullif(sum(n_vehicle_index), 0) AS avg_vehicle_index,
               sum(n_vehicle_index)::integer AS n_vehicle_index,
               sum(n_vehicle_index_eb * avg_vehicle_index_eb ORDER BY hr) / nullif(sum(n_vehicle_index_eb), 0) AS avg_vehicle_index_eb,
               sum(n_vehicle_index_eb)::integer AS n_vehicle_index_eb,
               sum(n_vehicle_si * avg_vehicle_si ORDER BY hr) / nullif(sum(n_vehicle_si), 0) AS avg_vehicle_si,
               min(min_vehicle_si) AS min_vehicle_si, max(max_vehicle_si) AS max_vehicle_si,
               sum(n_vehicle_si)::integer AS n_vehicle_si,
               -- the hours' sub-indices are known (n_* not NULL: rolled since 060) in all
               bool_and(n_vru_si IS NOT NULL AND n_vehicle_si IS NOT NULL) AS known,
               -- the hours' provenance lists merged (in this aggregate: a separate one
               -- joined back was planned as a nested loop re-aggregating per row)
               tsi_union(constants_ids) AS constants_ids,
               tsi_union(algorithm_versions) AS algorithm_versions,
               count(*) AS hours
          FROM w GROUP BY intersection_id, date),
    up AS (
        INSERT INTO safety_indices_daily AS d
               (intersection_id, date, avg_si, min_si, max_si, std_si, total_volume,
                avg_volume, high_risk_hours, peak_hour, peak_si,
                avg_vru_index, n_vru_index, avg_vru_index_eb, n_vru_index_eb, avg_vru_si,
                min_vru_si, max_vru_si, n_vru_si, avg_vehicle_index, n_vehicle_index,
                avg_vehicle_index_eb, n_vehicle_index_eb, avg_vehicle_si, min_vehicle_si,
                max_vehicle_si, n_vehicle_si, constants_ids, algorithm_versions)
        SELECT a.intersection_id, a.date, avg_si, min_si, max_si, std_si, total_volume,
               avg_volume, high_risk_hours, CASE WHEN peak_si IS NULL THEN NULL ELSE peak_hour END,
               peak_si,
               CASE WHEN known THEN avg_vru_index END,
               CASE WHEN known THEN n_vru_index END,
               CASE WHEN known THEN avg_vru_index_eb END,
               CASE WHEN known THEN n_vru_index_eb END,
               CASE WHEN known THEN avg_vru_si END,
               CASE WHEN known THEN min_vru_si END,
               CASE WHEN known THEN max_vru_si END,
               CASE WHEN known THEN n_vru_si END,
               CASE WHEN known THEN avg_vehicle_index END,
               CASE WHEN known THEN n_vehicle_index END,
               CASE WHEN known THEN avg_vehicle_index_eb END,
               CASE WHEN known THEN n_vehicle_index_eb END,
               CASE WHEN known THEN avg_vehicle_si END,
               CASE WHEN known THEN min_vehicle_si END,
               CASE WHEN known THEN max_vehicle_si END,
               CASE WHEN known THEN n_vehicle_si END,
               coalesce(a.constants_ids, '{}'), coalesce(a.algorithm_versions, '{}')
          FROM agg a
        ON CONFLICT (intersection_id, date) DO UPDATE
           SET avg_si = EXCLUDED.avg_si, min_si = EXCLUDED.min_si, max_si = EXCLUDED.max_si,
               std_si = EXCLUDED.std_si, total_volume = EXCLUDED.total_volume,
               avg_volume = EXCLUDED.avg_volume, high_risk_hours = EXCLUDED.high_risk_hours,
               peak_hour = EXCLUDED.peak_hour, peak_si = EXCLUDED.peak_si,
               avg_vru_index = EXCLUDED.avg_vru_index, n_vru_index = EXCLUDED.n_vru_index,
               avg_vru_index_eb = EXCLUDED.avg_vru_index_eb, n_vru_index_eb = EXCLUDED.n_vru_index_eb,
               avg_vru_si = EXCLUDED.avg_vru_si, min_vru_si = EXCLUDED.min_vru_si,
               max_vru_si = EXCLUDED.max_vru_si, n_vru_si = EXCLUDED.n_vru_si,
               avg_vehicle_index = EXCLUDED.avg_vehicle_index,
               n_vehicle_index = EXCLUDED.n_vehicle_index,
               avg_vehicle_index_eb = EXCLUDED.avg_vehicle_index_eb,
               n_vehicle_index_eb = EXCLUDED.n_vehicle_index_eb,
               avg_vehicle_si = EXCLUDED.avg_vehicle_si, min_vehicle_si = EXCLUDED.min_vehicle_si,
               max_vehicle_si = EXCLUDED.max_vehicle_si, n_vehicle_si = EXCLUDED.n_vehicle_si,
               constants_ids = EXCLUDED.constants_ids,
               algorithm_versions = EXCLUDED.algorithm_versions
         WHERE (d.avg_si, d.min_si, d.max_si, d.std_si, d.total_volume, d.avg_volume,
                d.high_risk_hours, d.peak_hour, d.peak_si, d.avg_vru_index, d.n_vru_index,
                d.avg_vru_index_eb, d.n_vru_index_eb, d.avg_vru_si, d.min_vru_si, d.max_vru_si,
                d.n_vru_si, d.avg_vehicle_index, d.n_vehicle_index, d.avg_vehicle_index_eb,
                d.n_vehicle_index_eb, d.avg_vehicle_si, d.min_vehicle_si, d.max_vehicle_si,
                d.n_vehicle_si, d.constants_ids, d.algorithm_versions)
               IS DISTINCT FROM
               (EXCLUDED.avg_si, EXCLUDED.min_si, EXCLUDED.max_si, EXCLUDED.std_si,
                EXCLUDED.total_volume, EXCLUDED.avg_volume, EXCLUDED.high_risk_hours,
                EXCLUDED.peak_hour, EXCLUDED.peak_si, EXCLUDED.avg_vru_index,
                EXCLUDED.n_vru_index, EXCLUDED.avg_vru_index_eb, EXCLUDED.n_vru_index_eb,
                EXCLUDED.avg_vru_si, EXCLUDED.min_vru_si, EXCLUDED.max_vru_si, EXCLUDED.n_vru_si,
                EXCLUDED.avg_vehicle_index, EXCLUDED.n_vehicle_index,
                EXCLUDED.avg_vehicle_index_eb, EXCLUDED.n_vehicle_index_eb,
                EXCLUDED.avg_vehicle_si, EXCLUDED.min_vehicle_si, EXCLUDED.max_vehicle_si,
                EXCLUDED.n_vehicle_si, EXCLUDED.constants_ids, EXCLUDED.algorithm_versions)
        RETURNING 1)
    SELECT (SELECT count(*) FROM up), (SELECT coalesce(sum(hours), 0) FROM agg)
      INTO n_rows, n_read;
END $$;

-- The jobs, now through the two functions above (bucket choice, watermark and detail as in 010).
CREATE OR REPLACE FUNCTION tsi_rollup_hourly(p_at timestamptz, OUT buckets integer, OUT n_rows bigint,
                                             OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_limit   timestamptz := date_trunc('hour', p_at);
    v_wm      timestamptz;
    v_from    timestamptz;
    v_dirty   timestamptz[];
    v_buckets timestamptz[];
    v_r       record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tsi_job'), hashtext('hourly'));
    SELECT watermark INTO v_wm FROM job_state WHERE job = 'hourly';
    WITH d AS (DELETE FROM rollup_dirty WHERE kind = 'hourly' AND bucket < v_limit RETURNING bucket)
    SELECT coalesce(array_agg(DISTINCT bucket), '{}') INTO v_dirty FROM d;
    v_from := greatest(v_wm, (SELECT date_trunc('hour', min("timestamp")) FROM safety_indices_realtime));
    SELECT coalesce(array_agg(b ORDER BY b), '{}') INTO v_buckets FROM (
        SELECT unnest(v_dirty) AS b
        UNION
        SELECT g FROM generate_series(v_from, v_limit - interval '1 hour', interval '1 hour') g
         WHERE v_from IS NOT NULL) s;
    buckets := coalesce(array_length(v_buckets, 1), 0);
    SELECT * INTO v_r FROM tsi_rollup_hours(v_buckets);
    n_rows := v_r.n_rows;
    INSERT INTO job_state AS s (job, watermark) VALUES ('hourly', greatest(v_wm, v_limit))
    ON CONFLICT (job) DO UPDATE SET watermark = EXCLUDED.watermark, updated = now()
     WHERE s.watermark IS DISTINCT FROM EXCLUDED.watermark;
    detail := jsonb_build_object('rows_read', v_r.n_read, 'dirty', coalesce(array_length(v_dirty, 1), 0),
                                 'first', v_buckets[1], 'last', v_buckets[array_upper(v_buckets, 1)],
                                 'watermark', greatest(v_wm, v_limit));
END $$;

CREATE OR REPLACE FUNCTION tsi_rollup_daily(p_at timestamptz, OUT buckets integer, OUT n_rows bigint,
                                            OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_limit   timestamptz := date_trunc('day', p_at);
    v_hourly  record;
    v_wm      timestamptz;
    v_from    timestamptz;
    v_dirty   timestamptz[];
    v_days    timestamptz[];
    v_r       record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tsi_job'), hashtext('daily'));
    SELECT * INTO v_hourly FROM tsi_rollup_hourly(p_at);
    SELECT watermark INTO v_wm FROM job_state WHERE job = 'daily';
    WITH d AS (DELETE FROM rollup_dirty WHERE kind = 'daily' AND bucket < v_limit RETURNING bucket)
    SELECT coalesce(array_agg(DISTINCT bucket), '{}') INTO v_dirty FROM d;
    v_from := greatest(v_wm, (SELECT date_trunc('day', min(hour_timestamp)) FROM safety_indices_hourly));
    SELECT coalesce(array_agg(b ORDER BY b), '{}') INTO v_days FROM (
        SELECT unnest(v_dirty) AS b
        UNION
        SELECT g FROM generate_series(v_from, v_limit - interval '1 day', interval '1 day') g
         WHERE v_from IS NOT NULL) s;
    buckets := coalesce(array_length(v_days, 1), 0);
    SELECT * INTO v_r FROM tsi_rollup_days(v_days);
    n_rows := v_r.n_rows;
    INSERT INTO job_state AS s (job, watermark) VALUES ('daily', greatest(v_wm, v_limit))
    ON CONFLICT (job) DO UPDATE SET watermark = EXCLUDED.watermark, updated = now()
     WHERE s.watermark IS DISTINCT FROM EXCLUDED.watermark;
    detail := jsonb_build_object('rows_read', v_r.n_read, 'dirty', coalesce(array_length(v_dirty, 1), 0),
                                 'first', v_days[1], 'last', v_days[array_upper(v_days, 1)],
                                 'watermark', greatest(v_wm, v_limit),
                                 'hourly', jsonb_build_object('buckets', v_hourly.buckets,
                                                              'rows', v_hourly.n_rows));
END $$;

-- 3/4. constants over the features store, with refusal ----------------------------------------
-- Window: the whole UTC hours [date_trunc('hour', at) - window_days, date_trunc('hour', at))
-- from safety_features_hourly (the hourly rollup is caught up first), plus the minutes of
-- the current hour [date_trunc('hour', at), at) from the realtime rows. Same formulas as 010.
CREATE OR REPLACE FUNCTION tsi_constants(p_at timestamptz, p_params jsonb, OUT buckets integer,
                                         OUT n_rows bigint, OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_days    integer := coalesce((p_params ->> 'window_days')::integer, 28);
    v_k       double precision := coalesce((p_params ->> 'k')::double precision, 50);
    v_min     integer := coalesce((p_params ->> 'prior_min_minutes')::integer, 60);
    v_need    integer := coalesce((p_params ->> 'min_minutes')::integer, 60);
    v_jump    double precision := coalesce((p_params ->> 'max_jump')::double precision, 10);
    v_keep    integer := coalesce((p_params ->> 'features_retention_days')::integer, 35);
    v_def     jsonb := jsonb_build_object('I_vru_max', 8, 'I_veh_max', 8, 'V_max', 200,
                                          'sigma_max', 20, 'S_ref', 40, 'HB_max', 15)
                       || coalesce(p_params -> 'defaults', '{}'::jsonb);
    v_hour    timestamptz := date_trunc('hour', p_at);
    v_lo      timestamptz;
    v_n       bigint;
    v_raw     jsonb;
    v_c       jsonb := '{}'::jsonb;
    v_used    text[] := '{}';
    v_key     text;
    v_val     double precision;
    v_priors  jsonb;
    v_old     record;
    v_prev    record;
    v_prev_id bigint;
    v_next    timestamptz;
    v_why     text;
    v_hourly  record;
    v_pruned  bigint;
BEGIN
    IF v_days < 1 OR v_days > 366 OR v_k <= 0 OR v_k = 'NaN' OR v_k = 'Infinity' OR v_min < 1
       OR v_need < 1 OR NOT (v_jump > 1) OR v_jump = 'Infinity' OR v_keep < v_days THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('bad constants parameters: window_days=%s k=%s prior_min_minutes=%s '
                             'min_minutes=%s max_jump=%s features_retention_days=%s (>= window_days)',
                             v_days, v_k, v_min, v_need, v_jump, v_keep);
    END IF;
    IF jsonb_typeof(p_params -> 'defaults') IS DISTINCT FROM NULL
       AND jsonb_typeof(p_params -> 'defaults') <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'defaults must be a JSON object';
    END IF;
    v_lo := v_hour - v_days * interval '1 day';

    -- every whole hour of the window is in the features store
    SELECT * INTO v_hourly FROM tsi_rollup_hourly(p_at);

    CREATE TEMP TABLE IF NOT EXISTS tsi_constants_src (
        intersection_id bigint, hour_of_day smallint, minutes bigint, max_vru integer,
        max_veh integer, max_vol integer, max_sd float8, max_hb integer, speeds float8[],
        n_vru bigint, sum_vru float8, n_vehicle bigint, sum_vehicle float8, n_combined bigint,
        sum_combined float8) ON COMMIT DROP;
    TRUNCATE tsi_constants_src;
    INSERT INTO tsi_constants_src
    SELECT intersection_id, hour_of_day, minutes, max_vru_events, max_vehicle_events, max_volume,
           max_speed_stddev, max_hard_braking, speeds, n_vru, sum_vru, n_vehicle, sum_vehicle,
           n_combined, sum_combined
      FROM safety_features_hourly WHERE hour_timestamp >= v_lo AND hour_timestamp < v_hour
    UNION ALL
    SELECT intersection_id, hour_of_day, count(*), max(vru_event_count), max(vehicle_event_count),
           max(traffic_volume), max(speed_stddev), max(hard_braking_count),
           coalesce(array_agg(avg_speed) FILTER (WHERE avg_speed > 0), '{}'),
           count(vru_index), sum(vru_index), count(vehicle_index), sum(vehicle_index),
           count(combined_index), sum(combined_index)
      FROM safety_indices_realtime WHERE "timestamp" >= v_hour AND "timestamp" < p_at
     GROUP BY intersection_id, hour_of_day;

    SELECT coalesce(sum(minutes), 0),
           jsonb_build_object(
               'I_vru_max', max(max_vru), 'I_veh_max', max(max_veh), 'V_max', max(max_vol),
               'sigma_max', max(max_sd), 'HB_max', max(max_hb),
               'S_ref', (SELECT percentile_cont(0.85) WITHIN GROUP (ORDER BY s)
                           FROM tsi_constants_src, unnest(speeds) s))
      INTO v_n, v_raw
      FROM tsi_constants_src;

    IF v_n = 0 THEN
        buckets := 0;
        n_rows := 0;
        detail := jsonb_build_object('skipped', 'no 1-minute rows in the window',
                                     'window_start', v_lo, 'window_end', p_at);
        RETURN;
    END IF;

    FOREACH v_key IN ARRAY ARRAY['I_vru_max', 'I_veh_max', 'V_max', 'sigma_max', 'S_ref', 'HB_max'] LOOP
        IF jsonb_typeof(v_raw -> v_key) = 'number' THEN
            v_val := (v_raw ->> v_key)::double precision;
            IF v_val = 0 THEN
                v_val := 1;
            END IF;
        ELSE
            IF jsonb_typeof(v_def -> v_key) IS DISTINCT FROM 'number' OR (v_def ->> v_key)::double precision <= 0 THEN
                RAISE EXCEPTION USING ERRCODE = '22023',
                    MESSAGE = format('default for %s must be a positive number', v_key);
            END IF;
            v_val := (v_def ->> v_key)::double precision;
            v_used := v_used || v_key;
        END IF;
        v_c := v_c || jsonb_build_object(v_key, v_val);
    END LOOP;

    WITH net AS (
        SELECT hour_of_day, sum(minutes) AS minutes,
               sum(sum_vru) / nullif(sum(n_vru), 0) AS vru,
               sum(sum_vehicle) / nullif(sum(n_vehicle), 0) AS vehicle,
               sum(sum_combined) / nullif(sum(n_combined), 0) AS combined
          FROM tsi_constants_src GROUP BY hour_of_day),
    own AS (
        SELECT intersection_id, hour_of_day, sum(minutes) AS minutes,
               sum(n_vru) AS n_vru, sum(sum_vru) / nullif(sum(n_vru), 0) AS vru,
               sum(n_vehicle) AS n_vehicle, sum(sum_vehicle) / nullif(sum(n_vehicle), 0) AS vehicle,
               sum(n_combined) AS n_combined,
               sum(sum_combined) / nullif(sum(n_combined), 0) AS combined
          FROM tsi_constants_src GROUP BY intersection_id, hour_of_day),
    resolved AS (
        SELECT o.intersection_id, o.hour_of_day,
               jsonb_strip_nulls(jsonb_build_object(
                   'vru', o.vru, 'vehicle', o.vehicle, 'combined', o.combined,
                   'minutes', o.minutes,
                   'source', CASE WHEN o.n_combined >= v_min THEN 'intersection' ELSE 'network' END,
                   'prior', jsonb_strip_nulls(jsonb_build_object(
                       'vru', CASE WHEN o.n_vru >= v_min THEN o.vru ELSE n.vru END,
                       'vehicle', CASE WHEN o.n_vehicle >= v_min THEN o.vehicle ELSE n.vehicle END,
                       'combined', CASE WHEN o.n_combined >= v_min THEN o.combined ELSE n.combined END))
                   )) AS p
          FROM own o JOIN net n USING (hour_of_day)),
    per_int AS (
        SELECT intersection_id, jsonb_object_agg(hour_of_day::text, p ORDER BY hour_of_day) AS hours
          FROM resolved GROUP BY intersection_id)
    SELECT jsonb_build_object(
               'min_minutes', v_min,
               'network', (SELECT coalesce(jsonb_object_agg(hour_of_day::text,
                                   jsonb_strip_nulls(jsonb_build_object('vru', vru, 'vehicle', vehicle,
                                                                        'combined', combined,
                                                                        'minutes', minutes))
                                   ORDER BY hour_of_day), '{}') FROM net),
               'intersections', (SELECT coalesce(jsonb_object_agg(intersection_id::text, hours
                                                                  ORDER BY intersection_id), '{}')
                                   FROM per_int))
      INTO v_priors;

    v_c := v_c || jsonb_build_object('k', v_k, 'window_days', v_days, 'window_start', v_lo,
                                     'window_end', p_at, 'minutes', v_n,
                                     'source', 'safety_features_hourly',
                                     'defaulted', to_jsonb(v_used), 'priors', v_priors);

    -- plausibility: enough minutes, and no maximum moving by more than max_jump times from
    -- the set in force just before (keys defaulted in either set are not compared)
    IF v_n < v_need THEN
        v_why := format('the window holds %s minutes, fewer than min_minutes = %s', v_n, v_need);
    ELSE
        SELECT id, constants INTO v_prev FROM normalization_constants
         WHERE valid_from < p_at ORDER BY valid_from DESC LIMIT 1;
        IF FOUND THEN
            v_prev_id := v_prev.id;
            FOREACH v_key IN ARRAY ARRAY['I_vru_max', 'I_veh_max', 'V_max', 'sigma_max', 'HB_max'] LOOP
                CONTINUE WHEN v_key = ANY (v_used)
                           OR coalesce(v_prev.constants -> 'defaulted', '[]'::jsonb) ? v_key
                           OR jsonb_typeof(v_prev.constants -> v_key) IS DISTINCT FROM 'number';
                IF greatest((v_c ->> v_key)::float8 / (v_prev.constants ->> v_key)::float8,
                            (v_prev.constants ->> v_key)::float8 / (v_c ->> v_key)::float8) > v_jump THEN
                    v_why := format('%s moves from %s (set %s) to %s, more than max_jump = %s times',
                                    v_key, v_prev.constants ->> v_key, v_prev.id, v_c ->> v_key, v_jump);
                    EXIT;
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF v_why IS NOT NULL THEN
        INSERT INTO data_quality_log ("timestamp", issue_type, severity, message, metadata)
        VALUES (p_at, 'constants_refused', 'warning', 'normalisation constants refused: ' || v_why,
                jsonb_build_object('window_start', v_lo, 'window_end', p_at, 'minutes', v_n,
                                   'candidate', v_c - 'priors', 'previous_set', v_prev_id,
                                   'min_minutes', v_need, 'max_jump', v_jump));
        buckets := 0;
        n_rows := 0;
        detail := jsonb_build_object('refused', v_why, 'minutes', v_n, 'window_start', v_lo,
                                     'window_end', p_at, 'previous_set', v_prev_id);
        RETURN;
    END IF;

    SELECT id, constants INTO v_old FROM normalization_constants WHERE valid_from = p_at;
    IF FOUND THEN
        UPDATE normalization_constants SET constants = v_c, computed_at = now()
         WHERE id = v_old.id AND constants IS DISTINCT FROM v_c;
        GET DIAGNOSTICS n_rows = ROW_COUNT;
    ELSE
        SELECT min(valid_from) INTO v_next FROM normalization_constants WHERE valid_from > p_at;
        UPDATE normalization_constants SET valid_until = p_at
         WHERE valid_from < p_at AND (valid_until IS NULL OR valid_until > p_at);
        INSERT INTO normalization_constants (computed_at, constants, valid_from, valid_until)
        VALUES (now(), v_c, p_at, v_next);
        n_rows := 1;
    END IF;

    -- the features store keeps what the window needs (and features_retention_days)
    DELETE FROM safety_features_hourly
     WHERE hour_timestamp < v_hour - v_keep * interval '1 day';
    GET DIAGNOSTICS v_pruned = ROW_COUNT;

    buckets := 1;
    detail := jsonb_build_object('minutes', v_n, 'valid_from', p_at, 'valid_until', v_next,
                                 'set', (SELECT id FROM normalization_constants WHERE valid_from = p_at),
                                 'window_start', v_lo, 'defaulted', to_jsonb(v_used),
                                 'features_pruned', v_pruned,
                                 'intersections', (SELECT count(*) FROM jsonb_object_keys(v_priors -> 'intersections')));
END $$;

REVOKE ALL ON FUNCTION tsi_rollup_hours(timestamptz[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_rollup_days(timestamptz[]) FROM PUBLIC;

-- existing rows: hourly rows whose realtime rows still exist are rolled again (sub-indices,
-- provenance, features), then their days; older hourly and daily rows keep NULL sub-indices
-- and counts (n_* NULL = not known) and empty provenance. Hours not rolled up yet are left to the hourly job.
SELECT tsi_rollup_hours(coalesce((SELECT array_agg(h.hour_timestamp) FROM safety_indices_hourly h
                                   WHERE EXISTS (SELECT 1 FROM safety_indices_realtime r
                                                  WHERE r.intersection_id = h.intersection_id
                                                    AND r."timestamp" >= h.hour_timestamp
                                                    AND r."timestamp" < h.hour_timestamp + interval '1 hour')),
                                 '{}'));
SELECT tsi_rollup_days(coalesce((SELECT array_agg(DISTINCT date_trunc('day', h.hour_timestamp, 'UTC'))
                                   FROM safety_indices_hourly h WHERE h.n_vru_si IS NOT NULL),
                                '{}'));
