-- Gaps are problems (code, subject), each naming every control it bears on; a gap grows
-- (more missed slots) and says so once it has grown enough; warnings come before a gap.

-- How many occurrences the last OPEN, UPDATE or REMINDER told of.
ALTER TABLE gaps ADD COLUMN notified_count BIGINT NOT NULL DEFAULT 1;

-- New outbox events: 'update', 'warning' and 'digest'. SQLite cannot change a CHECK: rebuild.
CREATE TABLE alerts_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('open', 'update', 'reminder', 'resolved', 'warning', 'digest')),
    sink TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT,
    overdue_reported_at TEXT
);
INSERT INTO alerts_new SELECT id, dedup_key, event, sink, body, created_at, state, attempts,
    next_attempt_at, last_error, delivered_at, overdue_reported_at FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE INDEX alerts_pending ON alerts (state, next_attempt_at);

-- Early warnings: one per (code, subject, due date), sent once.
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
