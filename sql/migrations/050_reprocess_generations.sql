-- 050_reprocess_generations: the record that decides which indices Parquet files of a day
-- are live after `tsi reprocess` (issue 24, "reprocess that cannot destroy").
--
-- A reprocess of one UTC day stages the day's new indices Parquet directory under
-- archive/indices/.staging/g<generation>.<YYYY-MM-DD>/ (hard links of the files it keeps,
-- the rewritten files, and a `.tsi-generation` manifest), then replaces the day's rows
-- in ONE database transaction that also inserts the day's row here. That commit is the
-- decision: a staged generation with a row here is live (the next `tsi reprocess`, or
-- `tsi reprocess --recover`, finishes swapping it in), one without a row never happened
-- (its staging directory is removed). `swapped_at` is set once the Parquet swap is done;
-- a committed row whose swapped_at is NULL is a swap still to finish.
--
-- The generation number comes from the sequence before the transaction (a sequence is
-- not transactional, so numbers of rolled-back attempts are simply skipped); it only
-- ever grows, so a higher number is a newer generation of its day.
CREATE SEQUENCE reprocess_generation_seq;

CREATE TABLE reprocess_generations (
    generation        bigint PRIMARY KEY CHECK (generation > 0),
    day               date NOT NULL,
    range_from        timestamptz NOT NULL,
    range_until       timestamptz NOT NULL,
    -- file names (no directory) of indices/YYYY/MM/DD after the swap, and the ones moved
    -- to indices/.superseded/<day>.g<generation>/; files the collector publishes in the
    -- day directory meanwhile are in neither list and are never moved
    live_files        text[] NOT NULL DEFAULT '{}',
    superseded_files  text[] NOT NULL DEFAULT '{}',
    raw_messages      bigint NOT NULL CHECK (raw_messages >= 0),
    rows_before       bigint NOT NULL CHECK (rows_before >= 0),
    rows_after        bigint NOT NULL CHECK (rows_after >= 0),
    forced            boolean NOT NULL DEFAULT false,
    committed_at      timestamptz NOT NULL DEFAULT now(),
    swapped_at        timestamptz,
    CHECK (range_until > range_from)
);
CREATE INDEX reprocess_generations_day ON reprocess_generations (day, generation);
