-- Refuse collection plans: what was planned, from which inputs, how it was solved and checked.
-- A plan row holds everything needed to explain it (per-bin forecast and selection reason,
-- fleet configuration) and to reproduce it (the full solver request, engine and time limit).
CREATE TABLE IF NOT EXISTS route_plans (
    id            text PRIMARY KEY,
    plan_date     date NOT NULL,
    stream        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    as_of         timestamptz NOT NULL,      -- readings before this instant fed the forecast
    parent_id     text REFERENCES route_plans (id),  -- a re-plan points at the plan it revises
    engine        text NOT NULL,             -- as requested; stats.engine says which answered
    time_limit_s  double precision NOT NULL CHECK (time_limit_s > 0),
    status        text NOT NULL,
    distance_m    bigint NOT NULL CHECK (distance_m >= 0),
    bins_offered  integer NOT NULL,
    bins_must     integer NOT NULL,
    unserved_must integer NOT NULL,
    valid         boolean NOT NULL,          -- the independent validator found nothing
    violations    jsonb NOT NULL DEFAULT '[]'::jsonb,
    stats         jsonb NOT NULL,            -- engine, build and search seconds, objective
    fleet         jsonb NOT NULL,            -- the effective fleet configuration
    request       jsonb NOT NULL,            -- the solver's input, exactly
    selection     jsonb NOT NULL,            -- per bin: forecast and why it was offered
    plan          jsonb NOT NULL             -- routes (stops with ETA and load) and unserved
);
CREATE INDEX IF NOT EXISTS route_plans_day_idx ON route_plans (plan_date, stream, created_at);

-- One row per planned stop, so "which route visits this bin today" is a query, not a scan.
CREATE TABLE IF NOT EXISTS route_stops (
    plan_id     text NOT NULL REFERENCES route_plans (id) ON DELETE CASCADE,
    vehicle_id  text NOT NULL,
    seq         integer NOT NULL,
    stop_id     text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('bin', 'tip', 'break', 'depot')),
    arrival_s   integer NOT NULL,            -- seconds since local midnight of plan_date
    departure_s integer NOT NULL,
    load_kg     double precision NOT NULL,
    load_l      double precision NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    PRIMARY KEY (plan_id, vehicle_id, seq)
);
CREATE INDEX IF NOT EXISTS route_stops_stop_idx ON route_stops (stop_id) WHERE kind = 'bin';
