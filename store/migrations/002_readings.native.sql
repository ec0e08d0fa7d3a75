-- Readings without TimescaleDB: native declarative range partitioning by week.
-- Partitions are created ahead by civic_ensure_partitions (called by migrate, ingest and
-- imports) and dropped by civic_drop_partitions_before (retention).
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
) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS readings_received_idx ON readings (received_at);

CREATE OR REPLACE FUNCTION civic_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    week_start timestamptz := date_trunc('week', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
    name text;
BEGIN
    -- Serialise creators (several ingest workers may meet the same new week).
    PERFORM pg_advisory_xact_lock(hashtext('civic_ensure_partitions'));
    WHILE week_start <= to_ts LOOP
        name := 'readings_p' || to_char(week_start AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                name, week_start, week_start + interval '7 days');
            created := created + 1;
        END IF;
        week_start := week_start + interval '7 days';
    END LOOP;
    RETURN created;
END $$;

CREATE OR REPLACE FUNCTION civic_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass
    LOOP
        IF (to_date(substring(part.relname FROM 11), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC')
               + interval '7 days' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

SELECT civic_ensure_partitions(now() - interval '8 weeks', now() + interval '4 weeks');

-- Same query surface as the TimescaleDB continuous aggregate.
CREATE OR REPLACE VIEW readings_hourly AS
SELECT device_id,
       date_trunc('hour', ts) AS bucket,
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
GROUP BY device_id, date_trunc('hour', ts);
