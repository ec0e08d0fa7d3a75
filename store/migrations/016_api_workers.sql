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

-- Take up to `wanted` requests of `caller`'s allowance (`per_minute` over the sliding
-- minute), after handing back `returned` unused ones taken in `returned_minute`: each API
-- process takes a few at a time and spends them in memory, so most requests cost no round
-- trip. The sliding minute is estimated as rate-limiting libraries' sliding-window counters do:
-- this minute's count plus the last minute's weighted by the part of it still in the window.
-- The row is locked while it is read and written, so concurrent takers in any process never
-- get more than the allowance between them. `granted` 0 means none is left; `seconds_left`
-- is what remains of this minute (when a refused caller may retry; when a take expires).
CREATE OR REPLACE FUNCTION civic_rate_take(
    caller text, per_minute integer, wanted integer,
    returned integer DEFAULT 0, returned_minute bigint DEFAULT NULL,
    OUT granted integer, OUT taken_minute bigint, OUT seconds_left double precision)
    LANGUAGE plpgsql AS $$
DECLARE
    at_minute double precision := extract(epoch FROM clock_timestamp()) / 60;
    this_minute bigint := floor(at_minute);
    carried double precision;
    counted integer;
BEGIN
    IF returned > 0 THEN
        UPDATE api_rate_counts c SET n = greatest(0, c.n - returned)
        WHERE c.key = caller AND c.minute = returned_minute;
    END IF;
    SELECT coalesce(max(c.n), 0) * (1 - (at_minute - this_minute)) INTO carried
    FROM api_rate_counts c WHERE c.key = caller AND c.minute = this_minute - 1;
    INSERT INTO api_rate_counts (key, minute, n) VALUES (caller, this_minute, 0)
    ON CONFLICT (key, minute) DO NOTHING;
    SELECT c.n INTO counted FROM api_rate_counts c
    WHERE c.key = caller AND c.minute = this_minute FOR UPDATE;
    granted := greatest(0, least(wanted, floor(per_minute - carried - counted)::integer));
    IF granted > 0 THEN
        UPDATE api_rate_counts c SET n = c.n + granted
        WHERE c.key = caller AND c.minute = this_minute;
    END IF;
    taken_minute := this_minute;
    seconds_left := 60 * (this_minute + 1 - at_minute);
END $$;
