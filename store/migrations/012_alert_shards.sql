-- Sharded alert evaluation: the estate's subjects (a home's UPRN, a bin's device id) fall
-- into a fixed number of shards; each shard is evaluated by exactly one `civic alerts run`
-- process at a time (it holds the shard's session advisory lock), from the shard's own
-- clock below and its devices' checkpoints.

-- The shard of a subject: the first 32 bits of its MD5, modulo 64. alerts.shards.shard_of
-- computes the same in Python; both are stable across versions and platforms (hashtext is
-- PostgreSQL-internal and not promised to be).
CREATE OR REPLACE FUNCTION alert_shard(subject text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT (('x' || substr(md5(subject), 1, 8))::bit(32)::bigint % 64)::integer $$;

-- Each shard's clock and received_at watermark (what alert_evaluator held for the one
-- evaluator), written in the same transaction as the shard's events and alerts.
CREATE TABLE IF NOT EXISTS alert_shards (
    shard         smallint PRIMARY KEY CHECK (shard >= 0 AND shard < 64),
    cutoff        timestamptz,
    watermark     timestamptz,
    evaluate_from timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- An estate that ran one evaluator carries on from where it stopped, in every shard.
INSERT INTO alert_shards (shard, cutoff, watermark, evaluate_from)
SELECT s, e.cutoff, e.watermark, e.evaluate_from
FROM generate_series(0, 63) AS s
LEFT JOIN alert_evaluator e ON e.id = 1
ON CONFLICT (shard) DO NOTHING;

-- The evaluator loads the open alerts of its shards every cycle.
CREATE INDEX IF NOT EXISTS alerts_open_shard_idx
    ON alerts (alert_shard(subject_id)) WHERE state <> 'resolved';
