-- Views for councils that already run Grafana (dashboards/grafana/): the same facts the
-- screens show, without personal data (no UPRN, address or tenant), so a read-only database
-- role granted only these views can feed Grafana. They read the same tables the API reads;
-- Grafana applies its time range to each view's "time" column.

-- Every stored reading: when it was stored, and how late (device buffering included).
CREATE OR REPLACE VIEW grafana_ingest AS
SELECT r.received_at AS time, r.device_id, d.kind, d.patch,
       extract(epoch FROM r.received_at - r.ts) AS lag_s
FROM readings r JOIN devices d USING (device_id);

-- Rejected messages by reason (the payload stays out: it may hold anything).
CREATE OR REPLACE VIEW grafana_deadletters AS
SELECT received_at AS time, reason, source, topic FROM deadletters;

-- Each working device's latest reading, battery and reported status.
CREATE OR REPLACE VIEW grafana_device_health AS
SELECT d.device_id, d.kind, d.patch, s.state AS status, l.ts AS last_reading_at, l.battery_v,
       coalesce(l.battery_v < 3.3, false) AS low_battery,
       l.ts IS NULL OR l.ts < now() - interval '3 hours' AS silent
FROM devices d
LEFT JOIN device_status s USING (device_id)
LEFT JOIN latest_readings l USING (device_id)
WHERE d.disabled_at IS NULL;

-- Alerts without the home's UPRN: type, severity, patch, state and the next statutory date.
CREATE OR REPLACE VIEW grafana_alerts AS
SELECT a.id, a.opened_at AS time, a.subject_kind, a.alert_type, a.severity, a.state, a.patch,
       a.resolved_at,
       (SELECT min((dl->>'due_at')::timestamptz)
        FROM jsonb_array_elements(a.deadlines) AS dl
        WHERE NOT a.milestones_done ? (dl->>'milestone')
          AND NOT (dl->>'milestone' = 'investigate' AND a.investigation_ended_at IS NOT NULL))
           AS next_due_at
FROM alerts a;

-- Street bins with their latest fill.
CREATE OR REPLACE VIEW grafana_bin_fill AS
SELECT d.device_id, d.patch, d.waste_stream, d.lat, d.lon, d.threshold_pct, l.fill_pct,
       l.ts AS time, coalesce(l.fill_pct >= d.threshold_pct, false) AS at_threshold
FROM devices d LEFT JOIN latest_readings l USING (device_id)
WHERE d.kind = 'bin' AND d.disabled_at IS NULL;

-- Route plans: one row per plan, with the figures a week's report needs.
CREATE OR REPLACE VIEW grafana_route_plans AS
SELECT id, plan_date, stream, created_at AS time, parent_id, distance_m / 1000.0 AS km,
       bins_offered, bins_must, unserved_must, valid
FROM route_plans;

-- Crews' collection records.
CREATE OR REPLACE VIEW grafana_collections AS
SELECT c.ts AS time, c.device_id, c.crew, d.patch, d.waste_stream
FROM collection_records c JOIN devices d USING (device_id);
