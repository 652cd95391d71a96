-- The worker and gap alerts. Same tables and version as migrations/postgres.

-- A run cut short (shutdown past its deadline, or a worker that died and whose slot another
-- worker took over) is `cancelled`. It gives its slot up, so the slot can still be filled: the
-- slot moves to `cancelled_slot`, and UNIQUE (collector, slot) keeps meaning "one run per slot".
ALTER TABLE runs ADD COLUMN cancelled_slot TEXT;

-- Leases: who may do a piece of work now. `token` grows by one with every new holder (a fencing
-- token): a holder that lost its lease cannot renew or release it, and the run it was doing is
-- fenced by its `running` row, which the new holder marks `cancelled`.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Scheduled worker tasks done (the daily checkpoint, the daily verify, reports), one row per
-- task and slot, so no slot is done twice whichever worker takes it.
CREATE TABLE task_slots (
    task TEXT NOT NULL,
    slot TEXT NOT NULL,
    done_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (task, slot)
);

-- Gaps by dedup key (control, code, subject): the state alerts are derived from.
CREATE TABLE gaps (
    dedup_key TEXT PRIMARY KEY,
    control TEXT NOT NULL,
    code TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'clearing', 'resolved')),
    -- when this episode began: "since when"
    opened_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    -- when it was first seen gone, while it is `clearing`
    cleared_at TEXT,
    -- the last OPEN or REMINDER
    notified_at TEXT NOT NULL,
    -- the latest description (JSON), no secrets
    detail TEXT NOT NULL
);
CREATE INDEX gaps_by_state ON gaps (state);

-- The outbox: one row per alert and sink, written in the transaction that changes the gaps.
-- Delivered at least once; never deleted.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('open', 'reminder', 'resolved')),
    sink TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT,
    -- when its being undeliverable for too long was reported
    overdue_reported_at TEXT
);
CREATE INDEX alerts_pending ON alerts (state, next_attempt_at);
