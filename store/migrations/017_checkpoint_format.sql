-- Each detector checkpoint names the layout of the state it holds (alerts.state_format): an
-- evaluator refuses checkpoints written by rules of another layout instead of misreading them.
-- Checkpoints stored before this migration have no known layout.
ALTER TABLE alert_checkpoints ADD COLUMN IF NOT EXISTS state_format text NOT NULL DEFAULT 'unknown';
