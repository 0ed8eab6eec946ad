-- 020_api_latest: the API's per-intersection latest row (issue 13).
-- `GET /api/v1/safety/index/` reads one row per intersection from safety_indices_latest
-- instead of a DISTINCT ON over 48 h of 1-minute rows. Statement-level triggers with
-- transition tables keep it current on every INSERT or UPDATE of the realtime table
-- (one upsert per statement, not per row, so COPY and batched upserts stay fast), and
-- NOTIFY tsi_latest so the API drops its cached response at once.

CREATE TABLE safety_indices_latest (
    intersection_id     bigint PRIMARY KEY REFERENCES intersections (id) ON DELETE CASCADE,
    "timestamp"         timestamptz NOT NULL,
    combined_index      double precision NOT NULL,
    combined_index_eb   double precision,
    vru_index           double precision,
    vru_index_eb        double precision,
    vehicle_index       double precision,
    vehicle_index_eb    double precision,
    traffic_volume      integer NOT NULL,
    vru_count           integer NOT NULL,
    vehicle_event_count integer NOT NULL,
    vru_event_count     integer NOT NULL,
    hour_of_day         smallint NOT NULL,
    day_of_week         smallint NOT NULL
);

CREATE FUNCTION safety_indices_latest_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO safety_indices_latest AS l
    SELECT DISTINCT ON (n.intersection_id)
           n.intersection_id, n."timestamp", n.combined_index, n.combined_index_eb,
           n.vru_index, n.vru_index_eb, n.vehicle_index, n.vehicle_index_eb,
           n.traffic_volume, n.vru_count, n.vehicle_event_count, n.vru_event_count,
           n.hour_of_day, n.day_of_week
      FROM new_rows n
     ORDER BY n.intersection_id, n."timestamp" DESC
    ON CONFLICT (intersection_id) DO UPDATE SET
           "timestamp" = EXCLUDED."timestamp",
           combined_index = EXCLUDED.combined_index,
           combined_index_eb = EXCLUDED.combined_index_eb,
           vru_index = EXCLUDED.vru_index,
           vru_index_eb = EXCLUDED.vru_index_eb,
           vehicle_index = EXCLUDED.vehicle_index,
           vehicle_index_eb = EXCLUDED.vehicle_index_eb,
           traffic_volume = EXCLUDED.traffic_volume,
           vru_count = EXCLUDED.vru_count,
           vehicle_event_count = EXCLUDED.vehicle_event_count,
           vru_event_count = EXCLUDED.vru_event_count,
           hour_of_day = EXCLUDED.hour_of_day,
           day_of_week = EXCLUDED.day_of_week
     WHERE l."timestamp" <= EXCLUDED."timestamp";
    PERFORM pg_notify('tsi_latest', '');
    RETURN NULL;
END $$;

CREATE TRIGGER safety_indices_latest_ins AFTER INSERT ON safety_indices_realtime
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION safety_indices_latest_sync();
CREATE TRIGGER safety_indices_latest_upd AFTER UPDATE ON safety_indices_realtime
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION safety_indices_latest_sync();

-- rows that exist before this migration
INSERT INTO safety_indices_latest
SELECT DISTINCT ON (intersection_id)
       intersection_id, "timestamp", combined_index, combined_index_eb, vru_index, vru_index_eb,
       vehicle_index, vehicle_index_eb, traffic_volume, vru_count, vehicle_event_count,
       vru_event_count, hour_of_day, day_of_week
  FROM safety_indices_realtime
 ORDER BY intersection_id, "timestamp" DESC;

GRANT SELECT ON safety_indices_latest TO tsi_reader, tsi_writer, tsi_jobs;
