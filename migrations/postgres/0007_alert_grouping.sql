-- Gaps are problems (code, subject), each naming every control it bears on; a gap grows
-- (more missed slots) and says so once it has grown enough; warnings come before a gap.
-- Same tables and version as migrations/sqlite.

ALTER TABLE gaps ADD COLUMN notified_count BIGINT NOT NULL DEFAULT 1;

ALTER TABLE alerts DROP CONSTRAINT alerts_event_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_event_check
    CHECK (event IN ('open', 'update', 'reminder', 'resolved', 'warning', 'digest'));

CREATE TABLE warnings (
    warning_key TEXT PRIMARY KEY,
    due_at TEXT NOT NULL,
    sent_at TEXT NOT NULL
);

-- Messages held for a sink during its quiet hours, sent as one digest when they end.
CREATE TABLE held_alerts (
    id BIGINT PRIMARY KEY,
    sink TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX held_alerts_by_sink ON held_alerts (sink);
