-- 001_schema: the operational store (requirement FR-1, DM-1, DM-2, NFR-4).
-- Runs as tsi_owner. Extensions (postgis, pg_partman in schema partman) were created
-- by the bootstrap (`tsi db bootstrap`), which needs the superuser.

-- Intersections -------------------------------------------------------------------------
CREATE TABLE intersections (
    id          bigint PRIMARY KEY CHECK (id >= 0),
    name        text NOT NULL,
    latitude    double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude   double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    geometry    geometry(Point, 4326) NOT NULL,
    lane_count  integer CHECK (lane_count >= 0),
    revision    integer CHECK (revision >= 0),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intersections_geometry_gist ON intersections USING gist (geometry);
CREATE INDEX intersections_geography_gist ON intersections USING gist ((geometry::geography));

-- geometry follows latitude/longitude; updated_at follows every change
CREATE FUNCTION intersections_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.geometry := ST_SetSRID(ST_MakePoint(NEW.longitude, NEW.latitude), 4326);
    IF TG_OP = 'UPDATE' THEN
        NEW.created_at := OLD.created_at;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER intersections_sync BEFORE INSERT OR UPDATE ON intersections
    FOR EACH ROW EXECUTE FUNCTION intersections_sync();

-- 1-minute safety indices (48 h), daily partitions -----------------------------------
CREATE TABLE safety_indices_realtime (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    intersection_id     bigint NOT NULL REFERENCES intersections (id),
    "timestamp"         timestamptz NOT NULL,
    combined_index      double precision NOT NULL CHECK (combined_index BETWEEN 0 AND 100),
    combined_index_eb   double precision CHECK (combined_index_eb BETWEEN 0 AND 100),
    vru_index           double precision CHECK (vru_index BETWEEN 0 AND 100),
    vru_index_eb        double precision CHECK (vru_index_eb BETWEEN 0 AND 100),
    vehicle_index       double precision CHECK (vehicle_index BETWEEN 0 AND 100),
    vehicle_index_eb    double precision CHECK (vehicle_index_eb BETWEEN 0 AND 100),
    traffic_volume      integer NOT NULL CHECK (traffic_volume >= 0),
    vru_count           integer NOT NULL CHECK (vru_count >= 0),
    vehicle_event_count integer NOT NULL CHECK (vehicle_event_count >= 0),
    vru_event_count     integer NOT NULL CHECK (vru_event_count >= 0),
    hour_of_day         smallint NOT NULL CHECK (hour_of_day BETWEEN 0 AND 23),
    day_of_week         smallint NOT NULL CHECK (day_of_week BETWEEN 0 AND 6),
    PRIMARY KEY (intersection_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
COMMENT ON COLUMN safety_indices_realtime.day_of_week IS '0 = Monday ... 6 = Sunday';
CREATE INDEX safety_indices_realtime_timestamp ON safety_indices_realtime ("timestamp");
CREATE INDEX safety_indices_realtime_combined_eb ON safety_indices_realtime (combined_index_eb);

SELECT partman.create_parent(
    p_parent_table => 'public.safety_indices_realtime',
    p_control => 'timestamp',
    p_type => 'native',
    p_interval => 'daily',
    p_premake => 7,
    p_start_partition => to_char(date_trunc('day', now() - interval '3 days'), 'YYYY-MM-DD'),
    p_jobmon => false);
UPDATE partman.part_config
   SET infinite_time_partitions = true
 WHERE parent_table = 'public.safety_indices_realtime';

-- Hourly rollups (90 days), monthly partitions ----------------------------------------
CREATE TABLE safety_indices_hourly (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    intersection_id    bigint NOT NULL REFERENCES intersections (id),
    hour_timestamp     timestamptz NOT NULL,
    avg_si             double precision CHECK (avg_si BETWEEN 0 AND 100),
    min_si             double precision CHECK (min_si BETWEEN 0 AND 100),
    max_si             double precision CHECK (max_si BETWEEN 0 AND 100),
    std_si             double precision CHECK (std_si >= 0),
    total_volume       bigint NOT NULL CHECK (total_volume >= 0),
    avg_volume         double precision CHECK (avg_volume >= 0),
    high_risk_minutes  integer NOT NULL CHECK (high_risk_minutes BETWEEN 0 AND 60),
    data_quality_score double precision NOT NULL CHECK (data_quality_score BETWEEN 0 AND 1),
    PRIMARY KEY (intersection_id, hour_timestamp),
    CHECK (hour_timestamp = date_trunc('hour', hour_timestamp))
) PARTITION BY RANGE (hour_timestamp);
CREATE INDEX safety_indices_hourly_hour ON safety_indices_hourly (hour_timestamp);

SELECT partman.create_parent(
    p_parent_table => 'public.safety_indices_hourly',
    p_control => 'hour_timestamp',
    p_type => 'native',
    p_interval => 'monthly',
    p_premake => 3,
    p_start_partition => to_char(date_trunc('month', now() - interval '100 days'), 'YYYY-MM-DD'),
    p_jobmon => false);
UPDATE partman.part_config
   SET infinite_time_partitions = true
 WHERE parent_table = 'public.safety_indices_hourly';

-- Daily rollups (kept forever) ----------------------------------------------------------
CREATE TABLE safety_indices_daily (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intersection_id  bigint NOT NULL REFERENCES intersections (id),
    date             date NOT NULL,
    avg_si           double precision CHECK (avg_si BETWEEN 0 AND 100),
    min_si           double precision CHECK (min_si BETWEEN 0 AND 100),
    max_si           double precision CHECK (max_si BETWEEN 0 AND 100),
    std_si           double precision CHECK (std_si >= 0),
    total_volume     bigint NOT NULL CHECK (total_volume >= 0),
    avg_volume       double precision CHECK (avg_volume >= 0),
    high_risk_hours  integer NOT NULL CHECK (high_risk_hours BETWEEN 0 AND 24),
    peak_hour        smallint CHECK (peak_hour BETWEEN 0 AND 23),
    peak_si          double precision CHECK (peak_si BETWEEN 0 AND 100),
    UNIQUE (intersection_id, date)
);
CREATE INDEX safety_indices_daily_date ON safety_indices_daily (date);

-- Normalisation constants with validity periods ----------------------------------------
CREATE TABLE normalization_constants (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    constants    jsonb NOT NULL CHECK (jsonb_typeof(constants) = 'object'),
    valid_from   timestamptz NOT NULL,
    valid_until  timestamptz,
    CHECK (valid_until IS NULL OR valid_until > valid_from)
);
CREATE INDEX normalization_constants_computed ON normalization_constants (computed_at);
CREATE INDEX normalization_constants_validity ON normalization_constants (valid_from, valid_until);
-- validity periods never overlap
ALTER TABLE normalization_constants ADD CONSTRAINT normalization_constants_no_overlap
    EXCLUDE USING gist (tstzrange(valid_from, valid_until, '[)') WITH &&);

-- Data quality log ------------------------------------------------------------------------
CREATE TABLE data_quality_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "timestamp"      timestamptz NOT NULL DEFAULT now(),
    intersection_id  bigint REFERENCES intersections (id),
    issue_type       text NOT NULL CHECK (issue_type <> ''),
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    message          text NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX data_quality_log_timestamp ON data_quality_log ("timestamp");
CREATE INDEX data_quality_log_intersection ON data_quality_log (intersection_id, "timestamp");

-- Least privilege ---------------------------------------------------------------------------
GRANT USAGE ON SCHEMA public TO tsi_writer, tsi_jobs, tsi_reader;

-- the API reads everything, changes nothing
GRANT SELECT ON intersections, safety_indices_realtime, safety_indices_hourly, safety_indices_daily,
    normalization_constants, data_quality_log TO tsi_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE tsi_owner IN SCHEMA public GRANT SELECT ON TABLES TO tsi_reader;

-- the collector: intersections and realtime rows (upsert), the quality log (append)
GRANT SELECT, INSERT, UPDATE ON intersections, safety_indices_realtime TO tsi_writer;
GRANT SELECT, INSERT ON data_quality_log TO tsi_writer;
GRANT SELECT ON normalization_constants, safety_indices_hourly, safety_indices_daily TO tsi_writer;

-- the jobs: read realtime, retention deletes, own the rollups and constants
GRANT SELECT, DELETE ON safety_indices_realtime TO tsi_jobs;
GRANT SELECT ON intersections TO tsi_jobs;
GRANT SELECT, INSERT, UPDATE, DELETE ON safety_indices_hourly, safety_indices_daily,
    normalization_constants TO tsi_jobs;
GRANT SELECT, INSERT ON data_quality_log TO tsi_jobs;
