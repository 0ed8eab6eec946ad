-- 030_realtime_fk_statement: the reference from safety_indices_realtime to intersections,
-- checked once per statement instead of once per row (issue 12, spool replay rate).
--
-- The foreign key of 001 ran its check for every row written: 20,000 index probes and
-- row locks (through SPI) for a 20,000-row batch, 22-30 % of the database's CPU in a spool
-- replay. These triggers keep the same rule with one set-based check per statement:
--   * AFTER INSERT / AFTER UPDATE on safety_indices_realtime (statement level, transition
--     table): the distinct intersection ids of the statement's rows are locked FOR KEY
--     SHARE, as the foreign key did, then one missing id (the smallest) makes the statement
--     fail with SQLSTATE 23503 foreign_key_violation. COPY, INSERT, UPDATE (also of
--     intersection_id, also moving a row to another partition), INSERT ... ON CONFLICT and
--     MERGE on the table all pass through them. They are named to fire before the other
--     statement triggers of the table (trigger order is by name).
--   * AFTER DELETE / AFTER UPDATE OF id on intersections (row level, at the end of the
--     statement, as NO ACTION): removing an id that some realtime row still references
--     fails with 23503, unless the statement leaves a row with that id in place.
--   * AFTER TRUNCATE on intersections: refused while safety_indices_realtime holds a row
--     (a TRUNCATE of both tables together passes, as it would with the foreign key).
-- Concurrency (READ COMMITTED): a writer holds KEY SHARE locks on its intersections until
-- it commits, so a DELETE of one of them waits, and its check (a fresh snapshot) then sees
-- the writer's committed rows; a writer whose intersection is being deleted waits for the
-- deleter and, once the deletion commits, finds the id missing and fails. Under
-- REPEATABLE READ or SERIALIZABLE a deleter's snapshot cannot see rows committed after it
-- began (the foreign key used a cross-check snapshot PL/pgSQL cannot reach), so removing
-- an intersection id is refused there (SQLSTATE 0A000): delete intersections under READ
-- COMMITTED.
-- What the triggers do not cover: statement triggers fire on the partitioned table, not
-- on its partitions, so rows written straight into a partition (or a partition attached
-- with rows in it) are not checked. Only the owner can do either: tsi_writer, tsi_jobs and
-- tsi_reader have no privilege on the partitions (pg_partman's inherit_privileges is off),
-- and the owner can disable any constraint anyway.
-- The foreign keys of safety_indices_hourly, safety_indices_daily, safety_indices_latest
-- and data_quality_log stay as they are.

ALTER TABLE safety_indices_realtime
    DROP CONSTRAINT safety_indices_realtime_intersection_id_fkey;

CREATE FUNCTION tsi_realtime_check_intersections() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_missing bigint;
BEGIN
    -- what the foreign key did row by row: keep every referenced intersection from being
    -- deleted or re-keyed until this transaction ends
    PERFORM 1
       FROM intersections i
      WHERE i.id IN (SELECT DISTINCT n.intersection_id FROM new_rows n)
        FOR KEY SHARE OF i;
    SELECT d.id INTO v_missing
      FROM (SELECT DISTINCT n.intersection_id AS id FROM new_rows n) d
     WHERE NOT EXISTS (SELECT 1 FROM intersections i WHERE i.id = d.id)
     ORDER BY d.id
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "safety_indices_realtime" violates the reference to "intersections"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (intersection_id)=(%s) is not present in table "intersections".', v_missing),
                  TABLE = 'safety_indices_realtime', COLUMN = 'intersection_id';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tsi_intersections_check_realtime() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM safety_indices_realtime) THEN
            RAISE EXCEPTION 'cannot truncate "intersections": "safety_indices_realtime" references it'
                USING ERRCODE = 'foreign_key_violation',
                      HINT = 'Truncate safety_indices_realtime in the same command.';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NULL;
    END IF;
    -- NO ACTION: the statement may have left a row with this id (ids swapped)
    IF EXISTS (SELECT 1 FROM intersections i WHERE i.id = OLD.id) THEN
        RETURN NULL;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'removing an intersection id needs READ COMMITTED isolation'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('id=%s, isolation %s: rows committed after the transaction began would be invisible to the reference check.',
                                  OLD.id, current_setting('transaction_isolation'));
    END IF;
    IF EXISTS (SELECT 1 FROM safety_indices_realtime r WHERE r.intersection_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "intersections" violates the reference from "safety_indices_realtime"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "safety_indices_realtime".', OLD.id),
                  TABLE = 'intersections';
    END IF;
    RETURN NULL;
END $$;

REVOKE ALL ON FUNCTION tsi_realtime_check_intersections() FROM PUBLIC;
REVOKE ALL ON FUNCTION tsi_intersections_check_realtime() FROM PUBLIC;

CREATE TRIGGER safety_indices_check_intersection_ins AFTER INSERT ON safety_indices_realtime
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION tsi_realtime_check_intersections();
CREATE TRIGGER safety_indices_check_intersection_upd AFTER UPDATE ON safety_indices_realtime
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION tsi_realtime_check_intersections();

CREATE TRIGGER intersections_check_realtime AFTER DELETE OR UPDATE OF id ON intersections
    FOR EACH ROW EXECUTE FUNCTION tsi_intersections_check_realtime();
CREATE TRIGGER intersections_check_realtime_truncate AFTER TRUNCATE ON intersections
    FOR EACH STATEMENT EXECUTE FUNCTION tsi_intersections_check_realtime();
