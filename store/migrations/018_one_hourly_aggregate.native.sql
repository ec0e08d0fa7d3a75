-- One hourly aggregate of the readings: readings_rollup_hourly (011), which the API's series
-- and the screens read, and which retention already keeps in step (011's
-- civic_drop_partitions_before). The older readings_hourly view (002) was read by nothing the
-- platform serves.
DROP VIEW IF EXISTS readings_hourly;
