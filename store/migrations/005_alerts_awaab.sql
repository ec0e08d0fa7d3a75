-- Awaab's Law follow-through: which statutory steps were recorded as done, and when.
-- milestones_done maps a milestone (investigate, written_summary, safety_work, ...) to
-- {"at": RFC 3339, "by": who recorded it, "note": text}; overdue detection reads it.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS milestones_done jsonb NOT NULL DEFAULT '{}'::jsonb;
