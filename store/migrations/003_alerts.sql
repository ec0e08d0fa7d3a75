-- Alerts: what the detectors found, who was told, what was done, and the commands sent.

-- One row per alert; at most one open (or acknowledged) alert per subject and type.
CREATE TABLE IF NOT EXISTS alerts (
    id                          text PRIMARY KEY,
    subject_kind                text NOT NULL CHECK (subject_kind IN ('home', 'bin')),
    subject_id                  text NOT NULL,  -- a home's UPRN or a bin's device id
    uprn                        text CHECK (uprn ~ '^[0-9]{1,12}$'),
    patch                       text,
    alert_type                  text NOT NULL,
    hazard                      text NOT NULL,
    state                       text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    severity                    text NOT NULL
        CHECK (severity IN ('info', 'watch', 'act', 'urgent', 'emergency')),
    opened_at                   timestamptz NOT NULL,
    since                       timestamptz NOT NULL,
    reason                      text NOT NULL,   -- the condition summary, in words
    evidence                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    point_event                 boolean NOT NULL DEFAULT false,
    active_sources              jsonb NOT NULL DEFAULT '[]'::jsonb,  -- [[device_id, condition]]
    sources                     jsonb NOT NULL DEFAULT '[]'::jsonb,
    cleared_at                  timestamptz,
    acknowledged_at             timestamptz,
    acknowledged_by             text,
    resolved_at                 timestamptz,
    resolved_by                 text,
    resolution_note             text,
    last_notified_at            timestamptz,
    reminders_sent              integer NOT NULL DEFAULT 0,
    escalated_at                timestamptz,
    -- Awaab's Law: when the clock started and the statutory due dates it gives.
    statutory_clock_started_at  timestamptz,
    investigation_ended_at      timestamptz,
    investigate_due_at          timestamptz,
    summary_due_at              timestamptz,
    safety_work_due_at          timestamptz,
    make_safe_due_at            timestamptz,
    deadlines                   jsonb NOT NULL DEFAULT '[]'::jsonb,
    overdue_notified            jsonb NOT NULL DEFAULT '[]'::jsonb,  -- milestones escalated
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'acknowledged' OR acknowledged_by IS NOT NULL),
    CHECK (state <> 'resolved' OR resolved_at IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_idx
    ON alerts (subject_id, alert_type) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_opened_idx ON alerts (opened_at);
CREATE INDEX IF NOT EXISTS alerts_patch_idx ON alerts (patch, state);
CREATE INDEX IF NOT EXISTS alerts_uprn_idx ON alerts (uprn) WHERE uprn IS NOT NULL;

-- The audit trail: who did what to which alert, when. Never updated, only appended.
CREATE TABLE IF NOT EXISTS alert_events (
    id          bigserial PRIMARY KEY,
    alert_id    text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    severity    text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_events_alert_idx ON alert_events (alert_id, at, id);

-- Every condition change the detectors reported: the rule that fired and why.
CREATE TABLE IF NOT EXISTS condition_events (
    id            bigserial PRIMARY KEY,
    device_id     text NOT NULL,
    subject_id    text NOT NULL,
    condition     text NOT NULL,
    alert_type    text NOT NULL,
    transition    text NOT NULL CHECK (transition IN ('on', 'update', 'off', 'occurred')),
    at            timestamptz NOT NULL,
    since         timestamptz NOT NULL,
    severity      text NOT NULL,
    hazard        text NOT NULL,
    starts_clock  boolean NOT NULL,
    reason        text NOT NULL,
    evidence      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Set when a re-evaluation after late data no longer produced this event.
    superseded_at timestamptz,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS condition_events_device_idx ON condition_events (device_id, at);
CREATE INDEX IF NOT EXISTS condition_events_subject_idx ON condition_events (subject_id, at);

-- Detector state per device (a pickle of alerts.Detector, written only by the evaluator):
-- the latest, plus a few older ones to re-evaluate from when a reading arrives late.
CREATE TABLE IF NOT EXISTS alert_checkpoints (
    device_id    text NOT NULL,
    fed_through  timestamptz NOT NULL,  -- the newest reading fed into this state
    horizon      timestamptz NOT NULL,  -- the time the state has reached (>= fed_through)
    state        bytea NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, fed_through)
);

-- The evaluator's clock and its received_at watermark for spotting late readings.
CREATE TABLE IF NOT EXISTS alert_evaluator (
    id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    cutoff        timestamptz,  -- evaluated up to here: newest reading less the allowance
    watermark     timestamptz,  -- newest received_at seen
    evaluate_from timestamptz,  -- a device seen for the first time starts here (backfill)
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Who hears of alerts: patches (housing areas) map to officers and teams.
CREATE TABLE IF NOT EXISTS officers (
    officer_id       text PRIMARY KEY,
    name             text NOT NULL,
    team             text,
    email            text,
    webhook_url      text,
    webhook_secret   text,
    notify_email     boolean NOT NULL DEFAULT true,
    notify_webhook   boolean NOT NULL DEFAULT false,
    daily_digest     boolean NOT NULL DEFAULT true,
    min_severity     text NOT NULL DEFAULT 'act'
        CHECK (min_severity IN ('info', 'watch', 'act', 'urgent', 'emergency')),
    active           boolean NOT NULL DEFAULT true,
    CHECK (NOT notify_webhook OR (webhook_url IS NOT NULL AND webhook_secret IS NOT NULL)),
    CHECK (NOT (notify_email OR daily_digest) OR email IS NOT NULL)
);
CREATE TABLE IF NOT EXISTS patch_officers (
    patch       text NOT NULL,  -- '*' covers every patch (e.g. the out-of-hours team)
    officer_id  text NOT NULL REFERENCES officers (officer_id) ON DELETE CASCADE,
    -- Alert types this officer takes in this patch; empty means all of them.
    alert_types text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (patch, officer_id)
);

-- The notification outbox: written in the same transaction as the alert change.
CREATE TABLE IF NOT EXISTS notifications (
    id              bigserial PRIMARY KEY,
    dedup_key       text NOT NULL UNIQUE,
    alert_id        text REFERENCES alerts (id) ON DELETE CASCADE,
    officer_id      text,
    kind            text NOT NULL,  -- opened, escalated, reminder, overdue, visit, digest
    channel         text NOT NULL CHECK (channel IN ('email', 'webhook')),
    target          text NOT NULL,
    subject         text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS notifications_due_idx
    ON notifications (next_attempt_at) WHERE state IN ('pending', 'failed');

-- Commands sent to devices (remote frost-protection heating), tracked until acknowledged.
CREATE TABLE IF NOT EXISTS commands (
    id           text PRIMARY KEY,
    device_id    text NOT NULL,
    name         text NOT NULL,
    args         jsonb NOT NULL DEFAULT '{}'::jsonb,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'accepted', 'done', 'rejected', 'expired')),
    alert_id     text REFERENCES alerts (id) ON DELETE SET NULL,
    published_at timestamptz,
    acked_at     timestamptz,
    ack_detail   text,
    escalated_at timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at > issued_at)
);
CREATE INDEX IF NOT EXISTS commands_open_idx ON commands (state, expires_at)
    WHERE state IN ('pending', 'accepted');
CREATE INDEX IF NOT EXISTS commands_alert_idx ON commands (alert_id);
