-- Devices and the assets they sit in: street bins and council homes.
CREATE TABLE IF NOT EXISTS devices (
    device_id     text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    kind          text NOT NULL CHECK (kind IN ('bin', 'env')),
    lat           double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon           double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    -- Homes: the property (UPRN, up to 12 digits), its address and patch (housing area).
    uprn          text CHECK (uprn ~ '^[0-9]{1,12}$'),
    address       text,
    patch         text,
    void          boolean,
    -- Bins: FIWARE WasteContainer storedWasteKind, cargoVolume, binFullnessThreshold.
    waste_stream  text,
    capacity_l    double precision CHECK (capacity_l > 0),
    threshold_pct double precision CHECK (threshold_pct > 0 AND threshold_pct <= 100),
    extra         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'bin' OR (waste_stream IS NOT NULL AND capacity_l IS NOT NULL
                             AND threshold_pct IS NOT NULL)),
    CHECK (kind <> 'env' OR (uprn IS NOT NULL AND patch IS NOT NULL AND void IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS devices_kind_idx ON devices (kind);
CREATE INDEX IF NOT EXISTS devices_patch_idx ON devices (patch) WHERE patch IS NOT NULL;
CREATE INDEX IF NOT EXISTS devices_uprn_idx ON devices (uprn) WHERE uprn IS NOT NULL;

-- Latest retained status per device (online/offline, firmware).
CREATE TABLE IF NOT EXISTS device_status (
    device_id  text PRIMARY KEY,
    state      text NOT NULL,
    fw         text,
    payload    jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Everything rejected, with why: nothing a device sends is silently dropped.
CREATE TABLE IF NOT EXISTS deadletters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL DEFAULT 'mqtt',
    topic       text,
    reason      text NOT NULL,
    detail      text,
    payload     bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS deadletters_received_idx ON deadletters (received_at);
CREATE INDEX IF NOT EXISTS deadletters_reason_idx ON deadletters (reason, received_at);
