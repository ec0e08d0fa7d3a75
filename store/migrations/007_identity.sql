-- Who may use the platform, how they prove it, and what personal data they were given.

-- People who log in. A role says what they may do; patches narrow it (an officer's homes).
CREATE TABLE IF NOT EXISTS users (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role          text NOT NULL
        CHECK (role IN ('housing_officer', 'waste_ops', 'engineer', 'admin')),
    patches       text[] NOT NULL DEFAULT '{}',  -- '*' means every patch
    password_hash text NOT NULL,                 -- argon2id (pwdlib)
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'housing_officer' OR cardinality(patches) > 0)
);

-- Credentials for scripts and council systems (OAuth 2.0 client credentials). Only a hash of
-- the secret is kept; the secret is shown once when the token is created.
CREATE TABLE IF NOT EXISTS api_tokens (
    id           text PRIMARY KEY,                -- the client id, public
    name         text NOT NULL UNIQUE,
    secret_hash  text NOT NULL,                   -- argon2id (pwdlib)
    role         text NOT NULL
        CHECK (role IN ('housing_officer', 'waste_ops', 'engineer', 'admin')),
    scopes       text[] NOT NULL,
    patches      text[] NOT NULL DEFAULT '{}',
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Refresh tokens: long-lived, single use (each refresh rotates it), revocable. Stored hashed
-- (SHA-256 of 32 random bytes: a guess is as hard as the secret itself).
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash  text PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Every write, every heating command and every read of personal data: who, what, when.
-- Append-only: the triggers below refuse UPDATE and DELETE.
CREATE TABLE IF NOT EXISTS access_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,       -- user:<name> or token:<name>
    role       text NOT NULL,
    action     text NOT NULL,       -- read_personal, write, command, login, ...
    resource   text NOT NULL,       -- e.g. GET /api/v1/homes/100023336956
    subjects   text[] NOT NULL DEFAULT '{}',  -- UPRNs / device ids / alert ids touched
    status     integer,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS access_log_at_idx ON access_log (at);

CREATE OR REPLACE FUNCTION civic_access_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only';
END $$;
DROP TRIGGER IF EXISTS access_log_no_update ON access_log;
CREATE TRIGGER access_log_no_update BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION civic_access_log_append_only();

-- Long work started from the API (a day's route plan): state and progress for the caller.
CREATE TABLE IF NOT EXISTS jobs (
    id          text PRIMARY KEY,
    kind        text NOT NULL,
    state       text NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress    text,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    result      jsonb,
    error       text,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Devices can be disabled (stolen, broken, removed) without losing their history.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS disabled_at timestamptz;
