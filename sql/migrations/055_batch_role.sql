-- 055_batch_role: `tsi backfill` and `tsi reprocess` run as tsi_jobs, not as the schema
-- owner (issue 31, NFR-5). tsi_jobs already holds what the rollups and retention need
-- (001, 010, 045): SELECT on intersections and normalization_constants; SELECT, DELETE on
-- safety_indices_realtime; SELECT, INSERT, UPDATE, DELETE on safety_indices_hourly and
-- safety_indices_daily; EXECUTE on tsi_job_run() and tsi_constants_at(). The two batch
-- tools need exactly these on top, and nothing of the schema:
--   backfill  upserts realtime rows (INSERT ... ON CONFLICT DO UPDATE);
--   reprocess replaces realtime rows (DELETE + INSERT), marks the replaced hours and day
--             dirty for the rollups (rollup_dirty), and records each day's generation
--             (reprocess_generations: a number from reprocess_generation_seq, the row,
--             then swapped_at once the Parquet swap is done).
-- Both make TEMP tables (the database's default TEMPORARY privilege) and take advisory
-- locks (no privilege needed). Additive: nothing is revoked.
GRANT INSERT, UPDATE ON safety_indices_realtime TO tsi_jobs;
GRANT INSERT ON rollup_dirty TO tsi_jobs;
GRANT SELECT, INSERT ON reprocess_generations TO tsi_jobs;
GRANT UPDATE (swapped_at) ON reprocess_generations TO tsi_jobs;
GRANT USAGE ON SEQUENCE reprocess_generation_seq TO tsi_jobs;
