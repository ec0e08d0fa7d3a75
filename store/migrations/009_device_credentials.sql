-- Each device's broker credential. Only the hash Mosquitto checks is kept ($7$: PBKDF2-SHA512,
-- what mosquitto_passwd writes); the password is shown once, when issued. The device's
-- command-signing key is not stored at all: it is derived from the platform's command secret,
-- the device id and key_version, which a rotation increases.
CREATE TABLE IF NOT EXISTS device_credentials (
    device_id     text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    password_hash text NOT NULL CHECK (password_hash LIKE '$7$%'),
    key_version   integer NOT NULL DEFAULT 1 CHECK (key_version > 0),
    issued_at     timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz
);
