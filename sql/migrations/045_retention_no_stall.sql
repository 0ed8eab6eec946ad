-- 045_retention_no_stall: retention that never makes the collector's inserts wait, and a
-- retention for data_quality_log (issue 24). docs/jobs.md § Retention explains it.
--
-- Why the old path stalled: tsi_retention() dropped whole realtime partitions through
-- pg_partman inside the job's transaction. DROP of a partition takes ACCESS EXCLUSIVE on
-- the parent until the transaction ends, and the end (COMMIT) is where the dropped
-- partition's files (1.44 M rows at 1,000 intersections) are unlinked: inserts queued for
-- the lock wait, the drop, the unlink and the rest of the job (up to 558 ms measured).
--
-- Why not DETACH PARTITION ... CONCURRENTLY: PostgreSQL refuses it while the table has a
-- default partition ("cannot detach partitions concurrently when a default partition
-- exists"), and safety_indices_realtime keeps pg_partman's default partition (rows
-- outside the premade days, e.g. backfills of old days, land there instead of failing).
-- It also cannot run inside a function or procedure at all.
--
-- What replaces it, tsi_retention_drop(), a procedure run as tsi_owner after the job
-- (by `tsi jobs run retention`, and by pg_cron as `tsi-retention-drop`), one short
-- transaction per step:
--   a. TRUNCATE the partition: ACCESS EXCLUSIVE on that partition only. An INSERT (or
--      upsert) through the parent locks only the partition it routes to, so inserts of
--      current rows never wait for it; the files go at this step's COMMIT.
--   b. DROP TABLE of the now empty partition: the parent's lock, requested with
--      lock_timeout (inserts queue behind the request for at most that long), retried
--      lock_attempts times, held only for a catalog change of an empty table. When it is
--      never granted, the empty partition stays and the next run drops it.
-- A partition is dropped only when it lies wholly before the cut (its upper bound <= the
-- cut: a partition that ends exactly at the cut holds only rows that go; pg_partman's own
-- test is a strict <, which left such a partition to a DELETE of every row) and its hours
-- have been rolled up (upper bound <= the hourly watermark, no pending dirty mark).
--
-- data_quality_log: an index on "timestamp" exists since 001; pruning deletes the rows
-- older than data_quality_retention (90 days) oldest first in batches of batch_rows
-- (10,000), committing each batch, so no statement holds many row locks or a long
-- snapshot and autovacuum can reuse the space while it runs. Decision: no partitioning
-- (expected volume is a few rows per minute: one per issue, minute and source; the
-- identity primary key and the foreign key stay as the collector uses them).
-- Cuts are computed in UTC (no DST day of 23 or 25 hours moves them).

-- The job (tsi_jobs, through tsi_job_run): rollups first, hourly retention, job_runs, and
-- the exact DELETE in the realtime partitions that straddle the cut (and the default
-- partition). Whole realtime partitions are left to tsi_retention_drop(); the job lists
-- them (realtime_partitions_due).
CREATE OR REPLACE FUNCTION tsi_retention(p_at timestamptz, p_params jsonb, OUT buckets integer,
                                         OUT n_rows bigint, OUT detail jsonb)
LANGUAGE plpgsql SET search_path = public, partman, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    v_rt_keep  interval := coalesce((p_params ->> 'realtime_retention')::interval, interval '48 hours');
    v_hr_keep  interval := coalesce((p_params ->> 'hourly_retention')::interval, interval '90 days');
    v_jr_keep  interval := coalesce((p_params ->> 'job_runs_retention')::interval, interval '90 days');
    v_dq_keep  interval := coalesce((p_params ->> 'data_quality_retention')::interval, interval '90 days');
    v_lock_ms  integer  := coalesce((p_params ->> 'lock_timeout_ms')::integer, 50);
    v_tries    integer  := coalesce((p_params ->> 'lock_attempts')::integer, 20);
    v_batch    integer  := coalesce((p_params ->> 'batch_rows')::integer, 10000);
    v_rt_cut   timestamptz;
    v_hr_cut   timestamptz;
    v_daily    record;
    v_n        bigint;
    v_rt_del   bigint := 0;
    v_hr_del   bigint := 0;
    v_jr_del   bigint := 0;
    v_drop_hr  integer := 0;
    v_due      text[];
    v_touched  text[] := '{}';
    v_part     record;
BEGIN
    IF v_rt_keep < interval '1 hour' OR v_hr_keep < interval '1 day' OR v_jr_keep < interval '1 day'
       OR v_dq_keep < interval '1 day' OR v_lock_ms < 1 OR v_tries < 1 OR v_batch < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'retention periods must be at least 1 hour (realtime) and 1 day (hourly, job_runs, data_quality_log)';
    END IF;
    v_rt_cut := p_at - v_rt_keep;
    v_hr_cut := p_at - v_hr_keep;

    -- 0. nothing goes before it was rolled up
    SELECT * INTO v_daily FROM tsi_rollup_daily(p_at);

    -- 1. hourly (written by the jobs only): whole monthly partitions older than the cut,
    --    then the exact remainder
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

    -- 3. realtime: the exact remainder in the partitions that straddle the cut and in the
    --    default partition (row locks only, inserts go on). Partitions wholly before the
    --    cut are tsi_retention_drop()'s.
    FOR v_part IN SELECT * FROM tsi_partition_bounds('public.safety_indices_realtime')
                   WHERE lo < v_rt_cut AND (hi > v_rt_cut OR lo = '-infinity') LOOP
        EXECUTE format('DELETE FROM %s WHERE "timestamp" < $1', v_part.child) USING v_rt_cut;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n > 0 THEN
            v_rt_del := v_rt_del + v_n;
            v_touched := v_touched || v_part.child;
        END IF;
    END LOOP;
    SELECT coalesce(array_agg(child ORDER BY lo), '{}') INTO v_due
      FROM tsi_partition_bounds('public.safety_indices_realtime')
     WHERE lo > '-infinity' AND hi <= v_rt_cut;
    -- 4. "current" is what still exists: a current answer whose minute left the realtime
    --    table goes (the intersection stays in the rollups; one silent since the cut, or
    --    removed from MapData, is no longer current). Between --stale-seconds and the cut
    --    the API answers it as stale.
    DELETE FROM safety_indices_latest WHERE "timestamp" < v_rt_cut;
    GET DIAGNOSTICS v_n = ROW_COUNT;

    buckets := v_drop_hr;
    n_rows := v_rt_del + v_hr_del;
    detail := jsonb_build_object(
        'realtime_cut', v_rt_cut, 'hourly_cut', v_hr_cut,
        'data_quality_cut', (p_at AT TIME ZONE 'UTC' - v_dq_keep) AT TIME ZONE 'UTC',
        'realtime_deleted', v_rt_del, 'hourly_deleted', v_hr_del, 'job_runs_deleted', v_jr_del,
        'current_pruned', v_n,
        'realtime_partitions_due', to_jsonb(v_due), 'realtime_partitions_dropped', 0,
        'hourly_partitions_dropped', v_drop_hr, 'vacuum', to_jsonb(v_touched),
        'rollups', jsonb_build_object('daily', v_daily.buckets, 'detail', v_daily.detail));
END $$;

-- The steps that must not hold locks together: run as tsi_owner (TRUNCATE and DROP need
-- the table's owner), outside any transaction block (it commits after every step). Not
-- SECURITY DEFINER and without SET clauses: PostgreSQL allows neither in a procedure that
-- commits; every name is schema-qualified instead. p_at NULL = now(); p_params as for the
-- job; p_run_id: the retention run whose job_runs row receives the result (NULL = the
-- latest successful one). Returns the result as JSON.
CREATE PROCEDURE tsi_retention_drop(p_at timestamptz DEFAULT NULL, p_params jsonb DEFAULT '{}',
                                    p_run_id bigint DEFAULT NULL, INOUT result jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    v_at       timestamptz := coalesce(p_at, now());
    v_params   jsonb := coalesce(p_params, '{}'::jsonb);
    v_rt_keep  interval;
    v_dq_keep  interval;
    v_lock_ms  integer;
    v_tries    integer;
    v_batch    integer;
    v_cut      timestamptz;
    v_dq_cut   timestamptz;
    v_wm       timestamptz;
    v_parts    text[];
    v_part     text;
    v_try      integer;
    v_max_try  integer := 0;
    v_ok       boolean;
    v_n        bigint;
    v_rows     bigint := 0;
    v_dropped  integer := 0;
    v_left     text[] := '{}';
    v_fallback boolean := false;
    v_err      text;
    v_t0       timestamptz;
    v_drop_ms  double precision := 0;
    v_dq_del   bigint := 0;
    v_batches  integer := 0;
    v_run      bigint;
BEGIN
    IF jsonb_typeof(v_params) <> 'object' OR NOT isfinite(v_at) THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'retention drop: bad clock or parameters';
    END IF;
    v_rt_keep := coalesce((v_params ->> 'realtime_retention')::interval, interval '48 hours');
    v_dq_keep := coalesce((v_params ->> 'data_quality_retention')::interval, interval '90 days');
    v_lock_ms := coalesce((v_params ->> 'lock_timeout_ms')::integer, 50);
    v_tries := coalesce((v_params ->> 'lock_attempts')::integer, 20);
    v_batch := coalesce((v_params ->> 'batch_rows')::integer, 10000);
    IF v_rt_keep < interval '1 hour' OR v_dq_keep < interval '1 day' OR v_lock_ms < 1
       OR v_tries < 1 OR v_batch < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = 'retention periods must be at least 1 hour (realtime) and 1 day (data_quality_log)';
    END IF;
    -- in UTC: a DST day of 23 or 25 hours in the session's zone never moves a cut
    v_cut := (v_at AT TIME ZONE 'UTC' - v_rt_keep) AT TIME ZONE 'UTC';
    v_dq_cut := (v_at AT TIME ZONE 'UTC' - v_dq_keep) AT TIME ZONE 'UTC';

    -- whole realtime partitions before the cut whose hours are rolled up
    SELECT watermark INTO v_wm FROM public.job_state WHERE job = 'hourly';
    SELECT coalesce(array_agg(b.child ORDER BY b.lo), '{}') INTO v_parts
      FROM public.tsi_partition_bounds('public.safety_indices_realtime') b
     WHERE b.lo > '-infinity' AND b.hi <= v_cut AND b.hi <= v_wm
       AND NOT EXISTS (SELECT 1 FROM public.rollup_dirty d
                        WHERE d.kind = 'hourly' AND d.bucket >= b.lo AND d.bucket < b.hi);
    COMMIT;

    FOREACH v_part IN ARRAY v_parts LOOP
        -- a. empty it: the lock is on this partition only
        v_try := 0;
        v_ok := false;
        LOOP
            v_try := v_try + 1;
            BEGIN
                PERFORM pg_catalog.set_config('lock_timeout', v_lock_ms || 'ms', true);
                EXECUTE format('SELECT count(*) FROM %s', v_part) INTO v_n;
                EXECUTE format('TRUNCATE %s', v_part);
                v_ok := true;
            EXCEPTION WHEN lock_not_available THEN
                v_err := SQLSTATE || ': ' || SQLERRM;
            END;
            EXIT WHEN v_ok OR v_try >= v_tries;
            PERFORM pg_catalog.pg_sleep(v_lock_ms / 1000.0);
        END LOOP;
        IF NOT v_ok THEN
            -- a reader held the partition all along: delete with row locks instead
            v_fallback := true;
            EXECUTE format('DELETE FROM %s', v_part);
            GET DIAGNOSTICS v_n = ROW_COUNT;
        END IF;
        v_rows := v_rows + v_n;
        COMMIT;

        -- b. drop the empty partition: the parent's lock, each wait bounded
        v_try := 0;
        v_ok := false;
        LOOP
            v_try := v_try + 1;
            v_t0 := pg_catalog.clock_timestamp();
            BEGIN
                PERFORM pg_catalog.set_config('lock_timeout', v_lock_ms || 'ms', true);
                EXECUTE format('DROP TABLE %s', v_part);
                v_ok := true;
            EXCEPTION WHEN lock_not_available THEN
                v_err := SQLSTATE || ': ' || SQLERRM;
            END;
            EXIT WHEN v_ok OR v_try >= v_tries;
            PERFORM pg_catalog.pg_sleep(v_lock_ms / 1000.0);
        END LOOP;
        v_max_try := greatest(v_max_try, v_try);
        IF v_ok THEN
            v_dropped := v_dropped + 1;
            v_drop_ms := greatest(v_drop_ms,
                                  extract(epoch FROM pg_catalog.clock_timestamp() - v_t0) * 1000);
        ELSE
            v_left := v_left || v_part;  -- empty; the next run drops it
        END IF;
        COMMIT;
    END LOOP;

    -- data_quality_log: oldest first, one batch per transaction
    LOOP
        DELETE FROM public.data_quality_log
         WHERE id IN (SELECT id FROM public.data_quality_log WHERE "timestamp" < v_dq_cut
                       ORDER BY "timestamp" LIMIT v_batch);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_dq_del := v_dq_del + v_n;
        IF v_n > 0 THEN
            v_batches := v_batches + 1;
        END IF;
        COMMIT;
        EXIT WHEN v_n < v_batch;
    END LOOP;

    result := jsonb_build_object(
        'realtime_partitions_dropped', v_dropped, 'realtime_partition_rows', v_rows,
        'realtime_partitions_left', to_jsonb(v_left), 'truncate_fallback', v_fallback,
        'drop_attempts', v_max_try, 'drop_ms', round(v_drop_ms::numeric, 1),
        'drop_error', CASE WHEN cardinality(v_left) > 0 OR v_fallback THEN v_err END,
        'data_quality_cut', v_dq_cut, 'data_quality_deleted', v_dq_del,
        'data_quality_batches', v_batches);

    -- the run's record gets the result (rows and partitions count into it)
    v_run := coalesce(p_run_id, (SELECT max(id) FROM public.job_runs
                                  WHERE job = 'retention' AND status = 'ok'));
    UPDATE public.job_runs
       SET detail = detail || result
                  || jsonb_build_object('realtime_deleted',
                                        coalesce((detail ->> 'realtime_deleted')::bigint, 0) + v_rows),
           buckets = buckets + v_dropped,
           rows = rows + v_rows + v_dq_del,
           finished = greatest(finished, pg_catalog.clock_timestamp())
     WHERE id = v_run AND job = 'retention';
    COMMIT;
END $$;

REVOKE ALL ON PROCEDURE tsi_retention_drop(timestamptz, jsonb, bigint, jsonb) FROM PUBLIC;

-- the retention job prunes current answers that no longer exist (step 4 above)
GRANT DELETE ON safety_indices_latest TO tsi_jobs;
