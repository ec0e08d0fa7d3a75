-- Read paths the API serves at scale: the hourly rollup, the latest-reading documents and the
-- officer queue's due date (the last two are the same in both storage modes).
--
-- Hourly sums and counts of every metric per device, kept in step with readings by statement
-- triggers, so an hourly or daily series of one device reads about 720 rollup entries a month
-- instead of every raw reading, scattered over a month of pages. The TimescaleDB path has the
-- same relation as a continuous aggregate. Sums and counts (not averages) so buckets combine
-- exactly: a day is the sum of its hours, and the API averages as sum / count.
--
-- The primary key carries every column (INCLUDE), so a device's series is an index-only scan
-- over a few adjacent leaf pages, whatever order the rows were written in.
CREATE TABLE IF NOT EXISTS readings_rollup_hourly (
    device_id     text NOT NULL,
    bucket        timestamptz NOT NULL,
    n             integer NOT NULL,
    fill_pct_sum  double precision NOT NULL DEFAULT 0,
    fill_pct_n    integer NOT NULL DEFAULT 0,
    temp_c_sum    double precision NOT NULL DEFAULT 0,
    temp_c_n      integer NOT NULL DEFAULT 0,
    battery_v_sum double precision NOT NULL DEFAULT 0,
    battery_v_n   integer NOT NULL DEFAULT 0,
    rh_pct_sum    double precision NOT NULL DEFAULT 0,
    rh_pct_n      integer NOT NULL DEFAULT 0,
    co2_ppm_sum   double precision NOT NULL DEFAULT 0,
    co2_ppm_n     integer NOT NULL DEFAULT 0,
    tilt_deg_sum  double precision NOT NULL DEFAULT 0,
    tilt_deg_n    integer NOT NULL DEFAULT 0,
    rssi_dbm_sum  double precision NOT NULL DEFAULT 0,
    rssi_dbm_n    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (device_id, bucket) INCLUDE (
        n, fill_pct_sum, fill_pct_n, temp_c_sum, temp_c_n, battery_v_sum, battery_v_n,
        rh_pct_sum, rh_pct_n, co2_ppm_sum, co2_ppm_n, tilt_deg_sum, tilt_deg_n,
        rssi_dbm_sum, rssi_dbm_n)
);

-- The hours a bin's mean level was at or over full (the waste screen's overflow-hours): few,
-- so a small index finds a week of them without reading every bin's hours.
CREATE INDEX IF NOT EXISTS readings_rollup_hourly_overflow_idx ON readings_rollup_hourly (bucket)
    WHERE fill_pct_n > 0 AND fill_pct_sum >= 100 * fill_pct_n;

-- Adds the rows of ``source`` (a FROM item with the readings' columns and a weight ``w``: 1 to
-- add a reading, -1 to take one away) to the hours they fall in. Hours are binned from a fixed
-- UTC origin (date_bin), so the session's time zone never moves a bucket. Hours whose figures
-- do not change are not written (an update of received_at only writes nothing). Keys are
-- upserted in order, so two writers meeting the same hours lock them in the same order.
CREATE OR REPLACE FUNCTION civic_rollup_sql(source text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT format($q$
    INSERT INTO readings_rollup_hourly AS r (device_id, bucket, n,
        fill_pct_sum, fill_pct_n, temp_c_sum, temp_c_n, battery_v_sum, battery_v_n,
        rh_pct_sum, rh_pct_n, co2_ppm_sum, co2_ppm_n, tilt_deg_sum, tilt_deg_n,
        rssi_dbm_sum, rssi_dbm_n)
    SELECT device_id, date_bin(interval '1 hour', ts, TIMESTAMPTZ '2000-01-03 00:00+00'),
           sum(w)::integer,
           coalesce(sum(w * fill_pct), 0), sum(w * (fill_pct IS NOT NULL)::int)::integer,
           coalesce(sum(w * temp_c), 0), sum(w * (temp_c IS NOT NULL)::int)::integer,
           coalesce(sum(w * battery_v), 0), sum(w * (battery_v IS NOT NULL)::int)::integer,
           coalesce(sum(w * rh_pct), 0), sum(w * (rh_pct IS NOT NULL)::int)::integer,
           coalesce(sum(w * co2_ppm), 0), sum(w * (co2_ppm IS NOT NULL)::int)::integer,
           coalesce(sum(w * tilt_deg), 0), sum(w * (tilt_deg IS NOT NULL)::int)::integer,
           coalesce(sum(w * rssi_dbm), 0), sum(w * (rssi_dbm IS NOT NULL)::int)::integer
    FROM %1$s AS src GROUP BY 1, 2
    HAVING sum(w) <> 0 OR sum(w * (fill_pct IS NOT NULL)::int) <> 0 OR sum(w * (temp_c IS NOT NULL)::int) <> 0 OR sum(w * (battery_v IS NOT NULL)::int) <> 0 OR sum(w * (rh_pct IS NOT NULL)::int) <> 0 OR sum(w * (co2_ppm IS NOT NULL)::int) <> 0 OR sum(w * (tilt_deg IS NOT NULL)::int) <> 0 OR sum(w * (rssi_dbm IS NOT NULL)::int) <> 0 OR abs(coalesce(sum(w * fill_pct), 0)) > 1e-9 OR abs(coalesce(sum(w * temp_c), 0)) > 1e-9 OR abs(coalesce(sum(w * battery_v), 0)) > 1e-9 OR abs(coalesce(sum(w * rh_pct), 0)) > 1e-9 OR abs(coalesce(sum(w * co2_ppm), 0)) > 1e-9 OR abs(coalesce(sum(w * tilt_deg), 0)) > 1e-9 OR abs(coalesce(sum(w * rssi_dbm), 0)) > 1e-9
    ORDER BY 1, 2
    ON CONFLICT (device_id, bucket) DO UPDATE SET
        n = r.n + EXCLUDED.n,
        fill_pct_sum = r.fill_pct_sum + EXCLUDED.fill_pct_sum,
        fill_pct_n = r.fill_pct_n + EXCLUDED.fill_pct_n,
        temp_c_sum = r.temp_c_sum + EXCLUDED.temp_c_sum,
        temp_c_n = r.temp_c_n + EXCLUDED.temp_c_n,
        battery_v_sum = r.battery_v_sum + EXCLUDED.battery_v_sum,
        battery_v_n = r.battery_v_n + EXCLUDED.battery_v_n,
        rh_pct_sum = r.rh_pct_sum + EXCLUDED.rh_pct_sum,
        rh_pct_n = r.rh_pct_n + EXCLUDED.rh_pct_n,
        co2_ppm_sum = r.co2_ppm_sum + EXCLUDED.co2_ppm_sum,
        co2_ppm_n = r.co2_ppm_n + EXCLUDED.co2_ppm_n,
        tilt_deg_sum = r.tilt_deg_sum + EXCLUDED.tilt_deg_sum,
        tilt_deg_n = r.tilt_deg_n + EXCLUDED.tilt_deg_n,
        rssi_dbm_sum = r.rssi_dbm_sum + EXCLUDED.rssi_dbm_sum,
        rssi_dbm_n = r.rssi_dbm_n + EXCLUDED.rssi_dbm_n$q$, source)
$$;

-- Transition tables are visible to EXECUTE in the trigger function itself only, hence the
-- generated statement run here rather than a helper function doing the work.
CREATE OR REPLACE FUNCTION civic_rollup_readings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE readings_rollup_hourly;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE civic_rollup_sql('(SELECT *, 1 AS w FROM new_rows)');
        RETURN NULL;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE civic_rollup_sql(
            '(SELECT *, 1 AS w FROM new_rows UNION ALL SELECT *, -1 AS w FROM old_rows)');
    ELSE
        EXECUTE civic_rollup_sql('(SELECT *, -1 AS w FROM old_rows)');
    END IF;
    DELETE FROM readings_rollup_hourly r USING old_rows o
    WHERE r.device_id = o.device_id
      AND r.bucket = date_bin(interval '1 hour', o.ts, TIMESTAMPTZ '2000-01-03 00:00+00')
      AND r.n <= 0;
    RETURN NULL;
END $$;

-- Created before the backfill, in the migration's transaction: the trigger's lock holds
-- writers back until commit, so no reading is counted twice or missed.
DROP TRIGGER IF EXISTS readings_rollup_insert ON readings;
CREATE TRIGGER readings_rollup_insert AFTER INSERT ON readings
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION civic_rollup_readings();
DROP TRIGGER IF EXISTS readings_rollup_update ON readings;
CREATE TRIGGER readings_rollup_update AFTER UPDATE ON readings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION civic_rollup_readings();
DROP TRIGGER IF EXISTS readings_rollup_delete ON readings;
CREATE TRIGGER readings_rollup_delete AFTER DELETE ON readings
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION civic_rollup_readings();
DROP TRIGGER IF EXISTS readings_rollup_truncate ON readings;
CREATE TRIGGER readings_rollup_truncate AFTER TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION civic_rollup_readings();

TRUNCATE readings_rollup_hourly;
DO $$ BEGIN EXECUTE civic_rollup_sql('(SELECT *, 1 AS w FROM readings)'); END $$;

-- Retention drops whole weeks of readings (no row triggers fire): drop their hours too.
CREATE OR REPLACE FUNCTION civic_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
    week_end timestamptz;
    dropped_until timestamptz := '-infinity';
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass
    LOOP
        week_end := (to_date(substring(part.relname FROM 11), 'YYYYMMDD')::timestamp
                     AT TIME ZONE 'UTC') + interval '7 days';
        IF week_end <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
            dropped_until := greatest(dropped_until, week_end);
        END IF;
    END LOOP;
    DELETE FROM readings_rollup_hourly WHERE bucket < dropped_until;
    RETURN dropped;
END $$;

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
