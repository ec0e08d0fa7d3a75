-- Crews' records of which bins they emptied and when (round sheets, in-cab apps). Routing
-- feedback: the alerts service checks them against the fill sensors (an emptying with no
-- record, a recorded collection of a nearly empty bin).
CREATE TABLE IF NOT EXISTS collection_records (
    device_id   text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    crew        text,
    source      text NOT NULL DEFAULT 'import',
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (device_id, ts)
);
CREATE INDEX IF NOT EXISTS collection_records_recorded_idx ON collection_records (recorded_at);
