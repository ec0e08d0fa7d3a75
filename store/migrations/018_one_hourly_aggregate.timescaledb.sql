-- One hourly aggregate of the readings: readings_rollup_hourly (011), which the API's series
-- and the screens read. The older readings_hourly continuous aggregate (002) was read by
-- nothing the platform serves, and kept homes' hourly means past their retention (its policy
-- refreshed only the last 30 days, so hours whose readings retention removed stayed).
DROP MATERIALIZED VIEW IF EXISTS readings_hourly;

-- Dropping raw chunks leaves a continuous aggregate's hours in place (by design), so the
-- retention that drops readings drops the rollup's hours of the same span, as native
-- partitioning does since 011: on a policy of the same age as the readings' (002), and in
-- `civic db maintain`.
-- Its chunks span a week, as the readings' do (a continuous aggregate's default is ten times
-- the raw interval): retention drops whole chunks, so with ten-week chunks a home's hours would
-- outlive its readings by up to ten weeks. Chunks made before this keep their span.
SELECT set_chunk_time_interval('readings_rollup_hourly', interval '7 days');
SELECT add_retention_policy('readings_rollup_hourly', interval '730 days', if_not_exists => true);

CREATE OR REPLACE FUNCTION civic_drop_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    dropped integer;
BEGIN
    SELECT count(*)::integer INTO dropped FROM drop_chunks('readings', cutoff);
    PERFORM drop_chunks('readings_rollup_hourly', cutoff);
    RETURN dropped;
END $$;
