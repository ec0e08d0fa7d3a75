-- Homes' readings past their retention period, pseudonymised (store/retention.py): hourly
-- means under a keyed pseudonym instead of the device id, so area statistics (by patch) stay
-- while nothing links them to a home without the platform's key. Still personal data under
-- UK GDPR (pseudonymised, not anonymous): covered by the overall retention.
CREATE TABLE IF NOT EXISTS readings_pseudonymised (
    pseudonym text NOT NULL,
    patch     text,
    hour      timestamptz NOT NULL,
    n         integer NOT NULL CHECK (n > 0),
    temp_c    double precision,
    rh_pct    double precision,
    co2_ppm   double precision,
    PRIMARY KEY (pseudonym, hour)
);
CREATE INDEX IF NOT EXISTS readings_pseudonymised_hour_idx ON readings_pseudonymised (hour);
