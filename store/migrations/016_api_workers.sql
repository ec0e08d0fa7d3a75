-- Several API processes on one database (`civic api --workers N`).

-- Which process runs a job: the key of the session advisory lock (JOB_RUNNER_LOCK, runner)
-- that process holds while it lives. A job whose runner's lock is free will never finish, and
-- the next API process to start marks it failed; another live worker's jobs are left alone.
-- NULL for jobs from before this column (their runner is gone).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS runner integer;

-- Requests per caller per minute, shared by every API process so a per-caller limit holds
-- across them. Unlogged: counts a minute old are worthless after a crash, and each request
-- writes one, so it should cost no WAL.
CREATE UNLOGGED TABLE IF NOT EXISTS api_rate_counts (
    key    text    NOT NULL,
    minute bigint  NOT NULL,  -- minutes since the epoch, on the database's clock
    n      integer NOT NULL,
    PRIMARY KEY (key, minute)
);

-- Count one request of `caller` if it is within `per_minute` over the sliding minute, and
-- answer 0; answer the seconds until it may be (at least 1) when it is not, counting nothing.
-- The sliding minute is estimated as rate-limiting libraries' sliding-window counters do: this
-- minute's count plus the last minute's weighted by the part of it still in the window. One
-- statement with the row locked by the upsert, so concurrent callers in any process are
-- counted exactly once each; refused requests are not counted.
CREATE OR REPLACE FUNCTION civic_rate_hit(caller text, per_minute integer) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    at_minute double precision := extract(epoch FROM clock_timestamp()) / 60;
    this_minute bigint := floor(at_minute);
    carried double precision;
    counted integer;
BEGIN
    SELECT coalesce(max(c.n), 0) * (1 - (at_minute - this_minute)) INTO carried
    FROM api_rate_counts c WHERE c.key = caller AND c.minute = this_minute - 1;
    INSERT INTO api_rate_counts AS c (key, minute, n)
    SELECT caller, this_minute, 1 WHERE carried + 1 <= per_minute
    ON CONFLICT (key, minute) DO UPDATE SET n = c.n + 1 WHERE carried + c.n + 1 <= per_minute
    RETURNING c.n INTO counted;
    IF counted IS NOT NULL THEN
        RETURN 0;
    END IF;
    RETURN greatest(1, ceil(60 * (this_minute + 1 - at_minute)))::integer;
END $$;
