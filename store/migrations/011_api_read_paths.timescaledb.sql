-- Read paths the API serves at scale: the hourly rollup, the latest-reading documents and the
-- officer queue's due date (the last two are the same in both storage modes).
--
-- Hourly sums and counts of every metric per device as a continuous aggregate, the same
-- relation the native path keeps with triggers: an hourly or daily series of one device reads
-- about 720 rows a month instead of every raw reading. Sums and counts (not averages) so
-- buckets combine exactly: a day is the sum of its hours, and the API averages as sum / count.
-- Real-time aggregation (materialized_only = false) answers for the hours not yet refreshed.
CREATE MATERIALIZED VIEW IF NOT EXISTS readings_rollup_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id,
       time_bucket(interval '1 hour', ts) AS bucket,
       count(*)::integer AS n,
       coalesce(sum(fill_pct), 0) AS fill_pct_sum, count(fill_pct)::integer AS fill_pct_n,
       coalesce(sum(temp_c), 0) AS temp_c_sum, count(temp_c)::integer AS temp_c_n,
       coalesce(sum(battery_v), 0) AS battery_v_sum, count(battery_v)::integer AS battery_v_n,
       coalesce(sum(rh_pct), 0) AS rh_pct_sum, count(rh_pct)::integer AS rh_pct_n,
       coalesce(sum(co2_ppm), 0) AS co2_ppm_sum, count(co2_ppm)::integer AS co2_ppm_n,
       coalesce(sum(tilt_deg), 0) AS tilt_deg_sum, count(tilt_deg)::integer AS tilt_deg_n,
       coalesce(sum(rssi_dbm), 0) AS rssi_dbm_sum, count(rssi_dbm)::integer AS rssi_dbm_n
FROM readings
GROUP BY device_id, time_bucket(interval '1 hour', ts)
WITH NO DATA;

-- No start offset: the first run materialises all history; later runs only the hours that
-- late readings invalidated.
SELECT add_continuous_aggregate_policy('readings_rollup_hourly',
    start_offset => NULL, end_offset => interval '1 hour',
    schedule_interval => interval '15 minutes', if_not_exists => true);

-- TimescaleDB indexes the materialisation on (device_id, bucket) itself (create_group_indexes).

-- Each device's latest reading as the JSON object the API sends, written with the row, so the
-- estate's latest (10,000 devices) is one string join in the database, not 10,000 objects
-- built per request.
ALTER TABLE latest_readings ADD COLUMN IF NOT EXISTS doc text;

CREATE OR REPLACE FUNCTION civic_latest_reading_doc() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.doc := json_build_object(
        'device_id', NEW.device_id,
        'ts', to_char(NEW.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'fill_pct', NEW.fill_pct, 'temp_c', NEW.temp_c, 'battery_v', NEW.battery_v,
        'rh_pct', NEW.rh_pct, 'co2_ppm', NEW.co2_ppm, 'tilt_deg', NEW.tilt_deg,
        'rssi_dbm', NEW.rssi_dbm)::text;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS latest_readings_doc ON latest_readings;
CREATE TRIGGER latest_readings_doc BEFORE INSERT OR UPDATE ON latest_readings
    FOR EACH ROW EXECUTE FUNCTION civic_latest_reading_doc();
UPDATE latest_readings SET doc = NULL;

-- An alert's earliest Awaab's Law due date whose step is not recorded, kept with the row, so
-- an officer's queue sorts on a column (and an index) instead of unpacking every alert's
-- deadlines per request.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS next_due_at timestamptz;

CREATE OR REPLACE FUNCTION civic_alert_next_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.next_due_at := (
        SELECT min((d->>'due_at')::timestamptz)
        FROM jsonb_array_elements(NEW.deadlines) AS d
        WHERE NOT NEW.milestones_done ? (d->>'milestone')
          AND NOT (d->>'milestone' = 'investigate' AND NEW.investigation_ended_at IS NOT NULL));
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS alerts_next_due ON alerts;
CREATE TRIGGER alerts_next_due BEFORE INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION civic_alert_next_due();
UPDATE alerts SET next_due_at = NULL;

CREATE INDEX IF NOT EXISTS alerts_queue_idx
    ON alerts (next_due_at, opened_at, id) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_patch_queue_idx
    ON alerts (patch, next_due_at, opened_at, id) WHERE state <> 'resolved';
