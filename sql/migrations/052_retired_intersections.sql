-- 052_retired_intersections: an intersection removed from MapData leaves "current" and
-- keeps its history (issue 24, "staleness").
--
-- The collector asks the VCC for the full MapData set every --mapdata-full-seconds; an
-- intersection it knew that is absent from that set (no MapData received in the VCC's
-- window, a day by default) is upserted with metadata.retired_at (an ISO 8601 UTC string)
-- and metadata.retired_reason; one that comes back is upserted with retired_at null.
-- Here: a retired intersection has no row in safety_indices_latest (the map, the index
-- endpoints, the spatial queries and /metrics' current counts read it), and rows written
-- for it later (a reprocess of its past) do not put it back. Its minute, hourly and daily
-- rows, and the intersections row itself, stay: history and the intersection list answer
-- as before.

CREATE FUNCTION tsi_intersection_retired() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM safety_indices_latest WHERE intersection_id = NEW.id;
    PERFORM pg_notify('tsi_latest', '');
    RETURN NULL;
END $$;

CREATE TRIGGER intersections_retired AFTER INSERT OR UPDATE OF metadata ON intersections
    FOR EACH ROW WHEN (jsonb_typeof(NEW.metadata -> 'retired_at') = 'string')
    EXECUTE FUNCTION tsi_intersection_retired();

-- 020's function, restated (CREATE OR REPLACE must): rows of retired intersections are
-- left out of latest.
CREATE OR REPLACE FUNCTION safety_indices_latest_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO safety_indices_latest AS l
    SELECT DISTINCT ON (n.intersection_id)
           n.intersection_id, n."timestamp", n.combined_index, n.combined_index_eb,
           n.vru_index, n.vru_index_eb, n.vehicle_index, n.vehicle_index_eb,
           n.traffic_volume, n.vru_count, n.vehicle_event_count, n.vru_event_count,
           n.hour_of_day, n.day_of_week
      FROM new_rows n
     WHERE NOT EXISTS (SELECT 1 FROM intersections i
                        WHERE i.id = n.intersection_id
                          AND jsonb_typeof(i.metadata -> 'retired_at') = 'string')
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

-- intersections retired before this migration (none were; kept for a re-run on a copy)
DELETE FROM safety_indices_latest l USING intersections i
 WHERE i.id = l.intersection_id AND jsonb_typeof(i.metadata -> 'retired_at') = 'string';
