-- The daily fill forecast the bin rules read ("overflow imminent"): fitted once per instant of
-- data time for the whole estate by whichever alert evaluator reaches the instant first (the
-- others wait on a transaction advisory lock, then read it), instead of by every evaluator.
-- Kept as a record of what was forecast then: a backfill reads the same forecast the live run
-- used, so live and backfill stay equal.
CREATE TABLE IF NOT EXISTS bin_forecast_instants (
    at          timestamptz NOT NULL,
    horizon     interval    NOT NULL,
    bins        integer     NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (at, horizon)
);

CREATE TABLE IF NOT EXISTS bin_fill_forecasts (
    at        timestamptz      NOT NULL,
    horizon   interval         NOT NULL,
    device_id text             NOT NULL,
    target    timestamptz      NOT NULL,
    fill_pct  double precision NOT NULL,
    PRIMARY KEY (at, horizon, device_id),
    FOREIGN KEY (at, horizon) REFERENCES bin_forecast_instants (at, horizon) ON DELETE CASCADE
);
