-- 010_jobs: the batch jobs (requirement FR-4, US-5; domain.md §4-§5; issue 14).
-- Runs as tsi_owner. Every job is a function owned by tsi_owner; tsi_jobs runs them
-- through one SECURITY DEFINER entry point, tsi_job_run(), which records each run in
-- job_runs. docs/jobs.md explains the arithmetic and the choices.

-- 1-minute features the normalisation constants need (the collector writes them) ----------
ALTER TABLE safety_indices_realtime
    ADD COLUMN IF NOT EXISTS avg_speed double precision
        CHECK (avg_speed >= 0 AND avg_speed < 'Infinity'::float8),
    ADD COLUMN IF NOT EXISTS speed_stddev double precision
        CHECK (speed_stddev >= 0 AND speed_stddev < 'Infinity'::float8),
    ADD COLUMN IF NOT EXISTS hard_braking_count integer CHECK (hard_braking_count >= 0);
COMMENT ON COLUMN safety_indices_realtime.avg_speed IS 'm/s, mean of per-vehicle means (domain §3)';
COMMENT ON COLUMN safety_indices_realtime.speed_stddev IS 'm/s, sample std of per-message speeds';
COMMENT ON COLUMN safety_indices_realtime.hard_braking_count IS 'vehicles with a hard-braking event';

-- Job bookkeeping -------------------------------------------------------------------------
CREATE TABLE job_runs (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job       text NOT NULL CHECK (job IN ('hourly', 'daily', 'retention', 'partitions', 'constants')),
    at        timestamptz NOT NULL,          -- the job's clock: now(), or `tsi jobs run --at`
    started   timestamptz NOT NULL,
    finished  timestamptz NOT NULL,
    buckets   integer NOT NULL DEFAULT 0 CHECK (buckets >= 0),
    rows      bigint NOT NULL DEFAULT 0 CHECK (rows >= 0),
    status    text NOT NULL CHECK (status IN ('ok', 'failed')),
    error     text,
    source    text NOT NULL DEFAULT '',      -- application_name of the caller (pg_cron, tsi)
    detail    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object'),
    CHECK (finished >= started),
    CHECK ((status = 'failed') = (error IS NOT NULL))
);
CREATE INDEX job_runs_job_started ON job_runs (job, started DESC);
CREATE INDEX job_runs_at ON job_runs (at);
COMMENT ON TABLE job_runs IS 'one row per job run (tsi_job_run); buckets = hours/days/partitions/sets, rows = rows written or deleted';

-- the watermark of each rollup: every bucket before it has been rolled up once
CREATE TABLE job_state (
    job        text PRIMARY KEY CHECK (job IN ('hourly', 'daily')),
    watermark  timestamptz NOT NULL,
    updated    timestamptz NOT NULL DEFAULT now()
);

-- Buckets that received rows after (or while) they were rolled up. Append-only marks
-- written by statement-level triggers (one row per statement and bucket, never a
-- conflict, never a lock between writers); a rollup deletes the marks it can see and
-- re-aggregates their buckets. A writer still in flight keeps its mark invisible until
-- it commits, so its rows are picked up by the next run: nothing is lost to a race.
CREATE TABLE rollup_dirty (
    kind    text NOT NULL CHECK (kind IN ('hourly', 'daily')),
    bucket  timestamptz NOT NULL,
    marked  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_dirty_kind_bucket ON rollup_dirty (kind, bucket);

CREATE FUNCTION tsi_mark_realtime() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO rollup_dirty (kind, bucket)
        SELECT 'hourly', b FROM (SELECT date_trunc('hour', "timestamp") AS b FROM new_rows
                                 UNION SELECT date_trunc('hour', "timestamp") FROM old_rows) s;
    ELSE
        INSERT INTO rollup_dirty (kind, bucket)
        SELECT DISTINCT 'hourly', date_trunc('hour', "timestamp") FROM new_rows;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tsi_mark_hourly() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO rollup_dirty (kind, bucket)
        SELECT 'daily', b FROM (SELECT date_trunc('day', hour_timestamp) AS b FROM new_rows
                                UNION SELECT date_trunc('day', hour_timestamp) FROM old_rows) s;
    ELSE
        INSERT INTO rollup_dirty (kind, bucket)
        SELECT DISTINCT 'daily', date_trunc('day', hour_timestamp) FROM new_rows;
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION tsi_mark_realtime() FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_mark_hourly() FROM PUBLIC;

CREATE TRIGGER safety_indices_realtime_mark_insert AFTER INSERT ON safety_indices_realtime
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tsi_mark_realtime();
CREATE TRIGGER safety_indices_realtime_mark_update AFTER UPDATE ON safety_indices_realtime
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tsi_mark_realtime();
CREATE TRIGGER safety_indices_hourly_mark_insert AFTER INSERT ON safety_indices_hourly
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tsi_mark_hourly();
CREATE TRIGGER safety_indices_hourly_mark_update AFTER UPDATE ON safety_indices_hourly
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tsi_mark_hourly();

-- Hourly rollup: realtime -> hourly ---------------------------------------------------------
-- Rolls every completed hour (< date_trunc('hour', p_at)) that is past the watermark or
-- marked dirty. Runs as the caller of tsi_job_run (tsi_owner); not executable by others.
CREATE FUNCTION tsi_rollup_hourly(p_at timestamptz, OUT buckets integer, OUT n_rows bigint,
                                  OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_limit   timestamptz := date_trunc('hour', p_at);
    v_wm      timestamptz;
    v_from    timestamptz;
    v_dirty   timestamptz[];
    v_buckets timestamptz[];
    v_read    bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tsi_job'), hashtext('hourly'));
    SELECT watermark INTO v_wm FROM job_state WHERE job = 'hourly';
    WITH d AS (DELETE FROM rollup_dirty WHERE kind = 'hourly' AND bucket < v_limit RETURNING bucket)
    SELECT coalesce(array_agg(DISTINCT bucket), '{}') INTO v_dirty FROM d;
    -- catch-up from the watermark, never before the oldest row there is
    v_from := greatest(v_wm, (SELECT date_trunc('hour', min("timestamp")) FROM safety_indices_realtime));
    SELECT coalesce(array_agg(b ORDER BY b), '{}') INTO v_buckets FROM (
        SELECT unnest(v_dirty) AS b
        UNION
        SELECT g FROM generate_series(v_from, v_limit - interval '1 hour', interval '1 hour') g
         WHERE v_from IS NOT NULL) s;

    buckets := coalesce(array_length(v_buckets, 1), 0);
    n_rows := 0;
    v_read := 0;
    IF buckets > 0 THEN
        WITH src AS (
            SELECT r.intersection_id, date_trunc('hour', r."timestamp") AS hour_timestamp,
                   coalesce(r.combined_index_eb, r.combined_index) AS si, r.traffic_volume,
                   r."timestamp" AS ts
              FROM safety_indices_realtime r
             WHERE r."timestamp" >= v_buckets[1]
               AND r."timestamp" < v_buckets[array_upper(v_buckets, 1)] + interval '1 hour'
               AND date_trunc('hour', r."timestamp") = ANY (v_buckets)),
        agg AS (
            SELECT intersection_id, hour_timestamp,
                   -- ordered: the same rows always sum in the same order, so a re-roll
                   -- reproduces identical bits and an unchanged hour is not rewritten
                   avg(si ORDER BY ts) AS avg_si, min(si) AS min_si, max(si) AS max_si,
                   stddev_samp(si ORDER BY ts) AS std_si,
                   sum(traffic_volume)::bigint AS total_volume,
                   avg(traffic_volume)::double precision AS avg_volume,
                   least(count(*) FILTER (WHERE si > 75), 60)::integer AS high_risk_minutes,
                   least(count(*), 60)::double precision / 60 AS data_quality_score,
                   count(*) AS n
              FROM src GROUP BY intersection_id, hour_timestamp),
        up AS (
            INSERT INTO safety_indices_hourly AS h
                   (intersection_id, hour_timestamp, avg_si, min_si, max_si, std_si, total_volume,
                    avg_volume, high_risk_minutes, data_quality_score)
            SELECT intersection_id, hour_timestamp, avg_si, min_si, max_si, std_si, total_volume,
                   avg_volume, high_risk_minutes, data_quality_score
              FROM agg
            ON CONFLICT (intersection_id, hour_timestamp) DO UPDATE
               SET avg_si = EXCLUDED.avg_si, min_si = EXCLUDED.min_si, max_si = EXCLUDED.max_si,
                   std_si = EXCLUDED.std_si, total_volume = EXCLUDED.total_volume,
                   avg_volume = EXCLUDED.avg_volume,
                   high_risk_minutes = EXCLUDED.high_risk_minutes,
                   data_quality_score = EXCLUDED.data_quality_score
             WHERE (h.avg_si, h.min_si, h.max_si, h.std_si, h.total_volume, h.avg_volume,
                    h.high_risk_minutes, h.data_quality_score)
                   IS DISTINCT FROM
                   (EXCLUDED.avg_si, EXCLUDED.min_si, EXCLUDED.max_si, EXCLUDED.std_si,
                    EXCLUDED.total_volume, EXCLUDED.avg_volume, EXCLUDED.high_risk_minutes,
                    EXCLUDED.data_quality_score)
            RETURNING 1)
        SELECT (SELECT count(*) FROM up), (SELECT coalesce(sum(n), 0) FROM agg)
          INTO n_rows, v_read;
    END IF;

    INSERT INTO job_state AS s (job, watermark) VALUES ('hourly', greatest(v_wm, v_limit))
    ON CONFLICT (job) DO UPDATE SET watermark = EXCLUDED.watermark, updated = now()
     WHERE s.watermark IS DISTINCT FROM EXCLUDED.watermark;

    detail := jsonb_build_object('rows_read', v_read, 'dirty', coalesce(array_length(v_dirty, 1), 0),
                                 'first', v_buckets[1], 'last', v_buckets[array_upper(v_buckets, 1)],
                                 'watermark', greatest(v_wm, v_limit));
END $$;

-- Daily rollup: hourly -> daily ---------------------------------------------------------------
-- Rolls every completed UTC day (< date_trunc('day', p_at)) past the watermark or marked
-- dirty, after catching up the hourly rollup. Per hour h with n_h minutes
-- (= data_quality_score * 60), mean m_h and sample std s_h, over N = sum n_h:
--   mean M = sum(n_h m_h) / N
--   std    = sqrt( (sum((n_h - 1) s_h^2) + sum(n_h (m_h - M)^2)) / (N - 1) )   (N >= 2)
-- which is exactly the sample standard deviation of all the day's minutes (docs/jobs.md).
CREATE FUNCTION tsi_rollup_daily(p_at timestamptz, OUT buckets integer, OUT n_rows bigint,
                                 OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_limit   timestamptz := date_trunc('day', p_at);
    v_hourly  record;
    v_wm      timestamptz;
    v_from    timestamptz;
    v_dirty   timestamptz[];
    v_days    timestamptz[];
    v_read    bigint;
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
    n_rows := 0;
    v_read := 0;
    IF buckets > 0 THEN
        WITH h AS (
            SELECT intersection_id, hour_timestamp::date AS date,
                   extract(hour FROM hour_timestamp)::smallint AS hr,
                   avg_si, min_si, max_si, std_si, total_volume,
                   CASE WHEN avg_si IS NULL THEN 0
                        ELSE round(data_quality_score * 60) END::double precision AS n
              FROM safety_indices_hourly
             WHERE hour_timestamp >= v_days[1]
               AND hour_timestamp < v_days[array_upper(v_days, 1)] + interval '1 day'
               AND date_trunc('day', hour_timestamp) = ANY (v_days)),
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
                   count(*) AS hours
              FROM w GROUP BY intersection_id, date),
        up AS (
            INSERT INTO safety_indices_daily AS d
                   (intersection_id, date, avg_si, min_si, max_si, std_si, total_volume,
                    avg_volume, high_risk_hours, peak_hour, peak_si)
            SELECT intersection_id, date, avg_si, min_si, max_si, std_si, total_volume,
                   avg_volume, high_risk_hours, CASE WHEN peak_si IS NULL THEN NULL ELSE peak_hour END,
                   peak_si
              FROM agg
            ON CONFLICT (intersection_id, date) DO UPDATE
               SET avg_si = EXCLUDED.avg_si, min_si = EXCLUDED.min_si, max_si = EXCLUDED.max_si,
                   std_si = EXCLUDED.std_si, total_volume = EXCLUDED.total_volume,
                   avg_volume = EXCLUDED.avg_volume, high_risk_hours = EXCLUDED.high_risk_hours,
                   peak_hour = EXCLUDED.peak_hour, peak_si = EXCLUDED.peak_si
             WHERE (d.avg_si, d.min_si, d.max_si, d.std_si, d.total_volume, d.avg_volume,
                    d.high_risk_hours, d.peak_hour, d.peak_si)
                   IS DISTINCT FROM
                   (EXCLUDED.avg_si, EXCLUDED.min_si, EXCLUDED.max_si, EXCLUDED.std_si,
                    EXCLUDED.total_volume, EXCLUDED.avg_volume, EXCLUDED.high_risk_hours,
                    EXCLUDED.peak_hour, EXCLUDED.peak_si)
            RETURNING 1)
        SELECT (SELECT count(*) FROM up), (SELECT coalesce(sum(hours), 0) FROM agg)
          INTO n_rows, v_read;
    END IF;

    INSERT INTO job_state AS s (job, watermark) VALUES ('daily', greatest(v_wm, v_limit))
    ON CONFLICT (job) DO UPDATE SET watermark = EXCLUDED.watermark, updated = now()
     WHERE s.watermark IS DISTINCT FROM EXCLUDED.watermark;

    detail := jsonb_build_object('rows_read', v_read, 'dirty', coalesce(array_length(v_dirty, 1), 0),
                                 'first', v_days[1], 'last', v_days[array_upper(v_days, 1)],
                                 'watermark', greatest(v_wm, v_limit),
                                 'hourly', jsonb_build_object('buckets', v_hourly.buckets,
                                                              'rows', v_hourly.n_rows));
END $$;

-- Retention -------------------------------------------------------------------------------------
-- Realtime older than realtime_retention (48 h) and hourly older than hourly_retention
-- (90 days) go; daily stays forever. Whole partitions are dropped through pg_partman; the
-- rest of a boundary partition (and the default partition) is deleted exactly. Pending
-- rollups run first, so no row is deleted before it was rolled up. The realtime drop
-- comes last; each attempt waits at most lock_timeout_ms (50) for its lock (dropping a
-- partition locks the parent, so inserts queue behind the request), up to lock_attempts
-- (20) times: when it never gets it, the rows are deleted instead and the partition is
-- dropped by a later run. VACUUM ANALYZE of the touched
-- tables happens outside (tsi jobs run retention, or the tsi-vacuum cron job).
CREATE FUNCTION tsi_partition_bounds(p_parent text)
RETURNS TABLE (child text, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
    SELECT format('%I.%I', n.nspname, c.relname),
           CASE WHEN pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' THEN '-infinity'::timestamptz
                ELSE (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz END,
           CASE WHEN pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' THEN 'infinity'::timestamptz
                ELSE (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz END
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.inhparent = p_parent::regclass
$$;

CREATE FUNCTION tsi_retention(p_at timestamptz, p_params jsonb, OUT buckets integer,
                              OUT n_rows bigint, OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, partman, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_rt_keep  interval := coalesce((p_params ->> 'realtime_retention')::interval, interval '48 hours');
    v_hr_keep  interval := coalesce((p_params ->> 'hourly_retention')::interval, interval '90 days');
    v_jr_keep  interval := coalesce((p_params ->> 'job_runs_retention')::interval, interval '90 days');
    v_lock_ms  integer  := coalesce((p_params ->> 'lock_timeout_ms')::integer, 50);
    v_tries    integer  := coalesce((p_params ->> 'lock_attempts')::integer, 20);
    v_try      integer  := 0;
    v_rt_cut   timestamptz;
    v_hr_cut   timestamptz;
    v_daily    record;
    v_n        bigint;
    v_rt_del   bigint := 0;
    v_hr_del   bigint := 0;
    v_jr_del   bigint := 0;
    v_drop_rt  integer := 0;
    v_drop_hr  integer := 0;
    v_want     integer;
    v_keep_lo  timestamptz;
    v_fallback boolean := false;
    v_touched  text[] := '{}';
    v_part     record;
    v_old_lock text := current_setting('lock_timeout');
    v_t0       timestamptz;
    v_drop_ms  double precision := 0;
    v_drop_err text;
BEGIN
    IF v_rt_keep < interval '1 hour' OR v_hr_keep < interval '1 day' OR v_jr_keep < interval '1 day'
       OR v_lock_ms < 1 OR v_tries < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'retention periods must be at least 1 hour (realtime) and 1 day (hourly, job_runs)';
    END IF;
    v_rt_cut := p_at - v_rt_keep;
    v_hr_cut := p_at - v_hr_keep;

    -- 0. nothing goes before it was rolled up
    SELECT * INTO v_daily FROM tsi_rollup_daily(p_at);

    -- 1. hourly: drop whole monthly partitions older than the cut, delete the remainder
    v_drop_hr := partman.drop_partition_time('public.safety_indices_hourly', v_hr_keep,
                                             p_keep_table => false, p_reference_timestamp => p_at);
    FOR v_part IN SELECT * FROM tsi_partition_bounds('public.safety_indices_hourly') WHERE lo < v_hr_cut LOOP
        EXECUTE format('DELETE FROM %s WHERE hour_timestamp < $1', v_part.child) USING v_hr_cut;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n > 0 THEN
            v_hr_del := v_hr_del + v_n;
            v_touched := v_touched || v_part.child;
        END IF;
    END LOOP;

    -- 2. job_runs of long ago
    DELETE FROM job_runs WHERE at < p_at - v_jr_keep;
    GET DIAGNOSTICS v_jr_del = ROW_COUNT;

    -- 3. realtime: first the exact remainder in the partitions that stay (row locks only) ...
    SELECT count(*), max(hi) INTO v_want, v_keep_lo
      FROM tsi_partition_bounds('public.safety_indices_realtime')
     WHERE lo > '-infinity' AND hi < v_rt_cut;   -- what pg_partman drops: end before the cut
    v_keep_lo := coalesce(v_keep_lo, '-infinity');
    FOR v_part IN SELECT * FROM tsi_partition_bounds('public.safety_indices_realtime')
                   WHERE lo < v_rt_cut AND (hi >= v_rt_cut OR lo = '-infinity') LOOP
        EXECUTE format('DELETE FROM %s WHERE "timestamp" < $1', v_part.child) USING v_rt_cut;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n > 0 THEN
            v_rt_del := v_rt_del + v_n;
            v_touched := v_touched || v_part.child;
        END IF;
    END LOOP;

    -- ... then the whole partitions, last, with a bounded wait for the parent's lock
    IF v_want > 0 THEN
        v_n := (SELECT count(*) FROM safety_indices_realtime WHERE "timestamp" < v_keep_lo);
        -- each attempt makes inserts queue behind it for at most lock_timeout_ms
        LOOP
            v_try := v_try + 1;
            v_t0 := clock_timestamp();
            BEGIN
                PERFORM set_config('lock_timeout', v_lock_ms || 'ms', true);
                v_drop_rt := partman.drop_partition_time('public.safety_indices_realtime', v_rt_keep,
                                                         p_keep_table => false,
                                                         p_reference_timestamp => p_at);
                PERFORM set_config('lock_timeout', v_old_lock, true);
                v_drop_ms := extract(epoch FROM clock_timestamp() - v_t0) * 1000;
                EXIT;
            EXCEPTION WHEN OTHERS THEN
                v_drop_rt := 0;
                v_drop_err := SQLSTATE || ': ' || SQLERRM;
            END;
            EXIT WHEN v_try >= v_tries;
            PERFORM pg_sleep(v_lock_ms / 1000.0);
        END LOOP;
        IF EXISTS (SELECT 1 FROM safety_indices_realtime WHERE "timestamp" < v_keep_lo) THEN
            -- not dropped (lock not granted, or pg_partman busy): delete exactly instead
            v_fallback := true;
            DELETE FROM safety_indices_realtime WHERE "timestamp" < v_keep_lo;
            v_touched := v_touched || 'public.safety_indices_realtime'::text;
        END IF;
        v_rt_del := v_rt_del + v_n;
    END IF;

    buckets := v_drop_rt + v_drop_hr;
    n_rows := v_rt_del + v_hr_del;
    detail := jsonb_build_object(
        'realtime_cut', v_rt_cut, 'hourly_cut', v_hr_cut,
        'realtime_deleted', v_rt_del, 'hourly_deleted', v_hr_del, 'job_runs_deleted', v_jr_del,
        'realtime_partitions_dropped', v_drop_rt, 'hourly_partitions_dropped', v_drop_hr,
        'drop_fallback', v_fallback, 'drop_attempts', v_try,
        'drop_ms', round(v_drop_ms::numeric, 1), 'drop_error', v_drop_err, 'vacuum', to_jsonb(v_touched),
        'rollups', jsonb_build_object('daily', v_daily.buckets, 'detail', v_daily.detail));
END $$;

-- Partition maintenance ----------------------------------------------------------------------------
CREATE FUNCTION tsi_partitions(p_at timestamptz, OUT buckets integer, OUT n_rows bigint,
                               OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, partman, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_rt_before integer := (SELECT count(*) FROM partman.show_partitions('public.safety_indices_realtime'));
    v_hr_before integer := (SELECT count(*) FROM partman.show_partitions('public.safety_indices_hourly'));
    v_rt_after  integer;
    v_hr_after  integer;
BEGIN
    PERFORM partman.run_maintenance('public.safety_indices_realtime', false, false);
    PERFORM partman.run_maintenance('public.safety_indices_hourly', false, false);
    v_rt_after := (SELECT count(*) FROM partman.show_partitions('public.safety_indices_realtime'));
    v_hr_after := (SELECT count(*) FROM partman.show_partitions('public.safety_indices_hourly'));
    buckets := greatest(v_rt_after - v_rt_before, 0) + greatest(v_hr_after - v_hr_before, 0);
    n_rows := 0;
    detail := jsonb_build_object(
        'realtime_partitions', v_rt_after, 'hourly_partitions', v_hr_after,
        'realtime_created', greatest(v_rt_after - v_rt_before, 0),
        'hourly_created', greatest(v_hr_after - v_hr_before, 0),
        'realtime_last', (SELECT max(hi) FROM tsi_partition_bounds('public.safety_indices_realtime')
                           WHERE hi < 'infinity'),
        'hourly_last', (SELECT max(hi) FROM tsi_partition_bounds('public.safety_indices_hourly')
                         WHERE hi < 'infinity'),
        'note', 'pg_partman premakes from the wall clock, not from --at');
END $$;

-- Normalisation constants and EB priors ----------------------------------------------------------------
-- From the 1-minute realtime rows in [p_at - window, p_at), all intersections (domain §4):
-- maxima of vru/vehicle events, volume, speed std, hard braking (0 -> 1), the 85th
-- percentile (linear interpolation) of avg_speed over minutes with avg_speed > 0. A
-- feature with no value at all in the window takes the configured default. Priors: mean
-- raw VRU/Vehicle/Combined per intersection x hour_of_day (with its minutes) and per
-- hour network-wide; each intersection-hour also carries the prior to use, resolved:
-- its own mean, or with fewer than prior_min_minutes minutes the network-wide mean. The set is valid
-- from p_at until the next set starts; the previous open period is closed at p_at.
CREATE FUNCTION tsi_constants(p_at timestamptz, p_params jsonb, OUT buckets integer,
                              OUT n_rows bigint, OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_days    integer := coalesce((p_params ->> 'window_days')::integer, 28);
    v_k       double precision := coalesce((p_params ->> 'k')::double precision, 50);
    v_min     integer := coalesce((p_params ->> 'prior_min_minutes')::integer, 60);
    v_def     jsonb := jsonb_build_object('I_vru_max', 8, 'I_veh_max', 8, 'V_max', 200,
                                          'sigma_max', 20, 'S_ref', 40, 'HB_max', 15)
                       || coalesce(p_params -> 'defaults', '{}'::jsonb);
    v_lo      timestamptz;
    v_n       bigint;
    v_raw     jsonb;
    v_c       jsonb := '{}'::jsonb;
    v_used    text[] := '{}';
    v_key     text;
    v_val     double precision;
    v_priors  jsonb;
    v_old     record;
    v_next    timestamptz;
BEGIN
    IF v_days < 1 OR v_days > 366 OR v_k <= 0 OR v_k = 'NaN' OR v_k = 'Infinity' OR v_min < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('bad constants parameters: window_days=%s k=%s prior_min_minutes=%s',
                             v_days, v_k, v_min);
    END IF;
    IF jsonb_typeof(p_params -> 'defaults') IS DISTINCT FROM NULL
       AND jsonb_typeof(p_params -> 'defaults') <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'defaults must be a JSON object';
    END IF;
    v_lo := p_at - v_days * interval '1 day';

    SELECT count(*),
           jsonb_build_object(
               'I_vru_max', max(vru_event_count), 'I_veh_max', max(vehicle_event_count),
               'V_max', max(traffic_volume), 'sigma_max', max(speed_stddev),
               'HB_max', max(hard_braking_count),
               'S_ref', percentile_cont(0.85) WITHIN GROUP (ORDER BY avg_speed)
                        FILTER (WHERE avg_speed > 0))
      INTO v_n, v_raw
      FROM safety_indices_realtime
     WHERE "timestamp" >= v_lo AND "timestamp" < p_at;

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

    WITH rt AS (
        SELECT intersection_id, hour_of_day, vru_index, vehicle_index, combined_index
          FROM safety_indices_realtime WHERE "timestamp" >= v_lo AND "timestamp" < p_at),
    net AS (
        SELECT hour_of_day, count(*) AS minutes, avg(vru_index) AS vru,
               avg(vehicle_index) AS vehicle, avg(combined_index) AS combined
          FROM rt GROUP BY hour_of_day),
    own AS (
        SELECT intersection_id, hour_of_day, count(*) AS minutes,
               count(vru_index) AS n_vru, avg(vru_index) AS vru,
               count(vehicle_index) AS n_vehicle, avg(vehicle_index) AS vehicle,
               count(combined_index) AS n_combined, avg(combined_index) AS combined
          FROM rt GROUP BY intersection_id, hour_of_day),
    resolved AS (
        SELECT o.intersection_id, o.hour_of_day,
               -- the intersection's own means and minutes (what a consumer that applies
               -- the hierarchy itself needs), and the prior to use, resolved
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
                                     'defaulted', to_jsonb(v_used), 'priors', v_priors);

    -- validity: [p_at, start of the next set); the set before is closed at p_at
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
    buckets := 1;
    detail := jsonb_build_object('minutes', v_n, 'valid_from', p_at, 'valid_until', v_next,
                                 'defaulted', to_jsonb(v_used),
                                 'intersections', (SELECT count(*) FROM jsonb_object_keys(v_priors -> 'intersections')));
END $$;

-- The set valid at a timestamp (NULL before the first set: the collector's defaults apply).
CREATE FUNCTION tsi_constants_at(p_ts timestamptz) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT constants FROM normalization_constants
     WHERE valid_from <= p_ts AND (valid_until IS NULL OR valid_until > p_ts)
     ORDER BY valid_from DESC LIMIT 1
$$;

-- The entry point: tsi_jobs runs every job through it ----------------------------------------------------
-- A job runs inside a subtransaction: when it fails, everything it did is rolled back and
-- the failure (SQLSTATE and message) is recorded in job_runs; the function returns
-- normally with status 'failed' so the record survives. Each job takes an advisory lock:
-- two runs of one job queue instead of racing.
CREATE FUNCTION tsi_job_run(p_job text, p_at timestamptz DEFAULT NULL, p_params jsonb DEFAULT '{}')
RETURNS TABLE (run_id bigint, status text, buckets integer, n_rows bigint, error text, detail jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, partman, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_at      timestamptz := coalesce(p_at, now());
    v_params  jsonb := coalesce(p_params, '{}'::jsonb);
    v_r       record;
    v_msg     text;
    v_state   text;
    v_hint    text;
BEGIN
    IF p_job IS NULL OR p_job NOT IN ('hourly', 'daily', 'retention', 'partitions', 'constants') THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('unknown job %s (hourly|daily|retention|partitions|constants)',
                             coalesce(quote_literal(p_job), 'NULL'));
    END IF;
    IF NOT isfinite(v_at) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'the job clock must be a finite time';
    END IF;
    IF jsonb_typeof(v_params) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'job parameters must be a JSON object';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tsi_job'), hashtext(p_job));
    status := 'ok';
    BEGIN
        CASE p_job
            WHEN 'hourly' THEN SELECT * INTO v_r FROM tsi_rollup_hourly(v_at);
            WHEN 'daily' THEN SELECT * INTO v_r FROM tsi_rollup_daily(v_at);
            WHEN 'retention' THEN SELECT * INTO v_r FROM tsi_retention(v_at, v_params);
            WHEN 'partitions' THEN SELECT * INTO v_r FROM tsi_partitions(v_at);
            WHEN 'constants' THEN SELECT * INTO v_r FROM tsi_constants(v_at, v_params);
        END CASE;
        buckets := v_r.buckets;
        n_rows := v_r.n_rows;
        detail := v_r.detail;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE,
                                v_hint = PG_EXCEPTION_DETAIL;
        status := 'failed';
        buckets := 0;
        n_rows := 0;
        error := v_state || ': ' || v_msg || CASE WHEN coalesce(v_hint, '') <> '' THEN ' (' || v_hint || ')' ELSE '' END;
        detail := jsonb_build_object('sqlstate', v_state);
    END;
    INSERT INTO job_runs (job, at, started, finished, buckets, rows, status, error, source, detail)
    VALUES (p_job, v_at, v_started, clock_timestamp(), buckets, n_rows, status, error,
            coalesce(current_setting('application_name', true), ''), coalesce(detail, '{}'))
    RETURNING id INTO run_id;
    RETURN NEXT;
END $$;

-- What pg_cron calls: commits the run (and its job_runs row), then fails loudly when the
-- job failed so cron.job_run_details says so too. Not SECURITY DEFINER (a procedure that
-- commits cannot be); it runs as the scheduling role and calls tsi_job_run.
CREATE PROCEDURE tsi_job_cron(p_job text, p_params jsonb DEFAULT '{}')
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_error  text;
BEGIN
    IF coalesce(current_setting('application_name', true), '') = '' THEN
        PERFORM pg_catalog.set_config('application_name', 'pg_cron', true);
    END IF;
    SELECT r.status, r.error INTO v_status, v_error FROM public.tsi_job_run(p_job, NULL, p_params) r;
    COMMIT;
    IF v_status <> 'ok' THEN
        RAISE EXCEPTION 'tsi job % failed: %', p_job, v_error;
    END IF;
END $$;

-- Least privilege: only tsi_jobs runs jobs; internals are reachable only through them.
REVOKE ALL ON FUNCTION tsi_rollup_hourly(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_rollup_daily(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_retention(timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_partitions(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_constants(timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_partition_bounds(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_job_run(text, timestamptz, jsonb) FROM PUBLIC;
REVOKE ALL ON PROCEDURE tsi_job_cron(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tsi_job_run(text, timestamptz, jsonb) TO tsi_jobs;
GRANT EXECUTE ON PROCEDURE tsi_job_cron(text, jsonb) TO tsi_jobs;
GRANT EXECUTE ON FUNCTION tsi_constants_at(timestamptz) TO tsi_writer, tsi_jobs, tsi_reader;

GRANT SELECT ON job_runs, job_state TO tsi_jobs, tsi_reader;
GRANT SELECT ON rollup_dirty TO tsi_jobs;
