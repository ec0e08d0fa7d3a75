-- Readings on TimescaleDB: a hypertable with compression, retention and an hourly
-- continuous aggregate. Same columns and names as the native path.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS readings (
    device_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    seq         bigint,
    fill_pct    double precision,
    temp_c      double precision,
    battery_v   double precision,
    rh_pct      double precision,
    co2_ppm     double precision,
    tilt_deg    double precision,
    rssi_dbm    double precision,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '7 days',
                         if_not_exists => true);
CREATE INDEX IF NOT EXISTS readings_received_idx ON readings (received_at);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC'
);
-- Late data older than this lands in compressed chunks, which TimescaleDB still accepts.
SELECT add_compression_policy('readings', interval '30 days', if_not_exists => true);
SELECT add_retention_policy('readings', interval '730 days', if_not_exists => true);

-- Kept for callers of the native path's API; chunks are created by TimescaleDB itself.
CREATE OR REPLACE FUNCTION civic_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
CREATE OR REPLACE FUNCTION civic_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE sql AS $$ SELECT count(*)::integer FROM drop_chunks('readings', cutoff) $$;

CREATE MATERIALIZED VIEW IF NOT EXISTS readings_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
       time_bucket(interval '1 hour', ts) AS bucket,
       count(*)       AS n,
       avg(fill_pct)  AS fill_pct_avg,
       max(fill_pct)  AS fill_pct_max,
       avg(temp_c)    AS temp_c_avg,
       min(temp_c)    AS temp_c_min,
       max(temp_c)    AS temp_c_max,
       avg(rh_pct)    AS rh_pct_avg,
       max(rh_pct)    AS rh_pct_max,
       min(battery_v) AS battery_v_min
FROM readings
GROUP BY device_id, time_bucket(interval '1 hour', ts)
WITH NO DATA;
SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => interval '30 days', end_offset => interval '1 hour',
    schedule_interval => interval '15 minutes', if_not_exists => true);
