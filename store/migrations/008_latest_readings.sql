-- Each device's newest reading, kept by the writer with every batch, so "the latest of every
-- device" is one indexed read instead of a probe into every weekly partition per device.
CREATE TABLE IF NOT EXISTS latest_readings (
    device_id   text PRIMARY KEY,
    ts          timestamptz NOT NULL,
    seq         bigint,
    fill_pct    double precision,
    temp_c      double precision,
    battery_v   double precision,
    rh_pct      double precision,
    co2_ppm     double precision,
    tilt_deg    double precision,
    rssi_dbm    double precision,
    received_at timestamptz NOT NULL
);

INSERT INTO latest_readings
SELECT DISTINCT ON (device_id) device_id, ts, seq, fill_pct, temp_c, battery_v, rh_pct, co2_ppm,
       tilt_deg, rssi_dbm, received_at
FROM readings ORDER BY device_id, ts DESC
ON CONFLICT (device_id) DO NOTHING;
