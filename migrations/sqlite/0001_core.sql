-- The evidence engine: runs, evidence, findings, the Merkle ledger and the audit log.
-- Times are RFC 3339 UTC text with microseconds (`2026-11-22T10:00:00.000000Z`): they sort as
-- text and read the same on SQLite and PostgreSQL.

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    collector TEXT NOT NULL,
    kind TEXT NOT NULL,
    collector_version TEXT NOT NULL,
    -- The scheduled slot this run fills; NULL for an on-demand `annexa collect`.
    slot TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error_code TEXT,
    error TEXT,
    manifest_key TEXT,
    manifest_sha256 TEXT,
    ledger_index BIGINT UNIQUE,
    UNIQUE (collector, slot)
);
CREATE INDEX runs_by_collector ON runs (collector, status, finished_at);
CREATE INDEX runs_by_finished ON runs (finished_at);

CREATE TABLE evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id),
    collector TEXT NOT NULL,
    name TEXT NOT NULL,
    -- `item`: raw bytes from the source; `facts`: the normalized facts checks read.
    role TEXT NOT NULL CHECK (role IN ('item', 'facts')),
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    object_key TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    effective_at TEXT,
    collected_at TEXT NOT NULL,
    UNIQUE (run_id, name)
);
CREATE INDEX evidence_by_collector ON evidence (collector, collected_at);

CREATE TABLE findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id),
    collector TEXT NOT NULL,
    code TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('fail', 'warn')),
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    controls TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX findings_by_run ON findings (run_id);

-- RFC 6962 leaves, in order. A leaf is a run manifest (its bytes are in the store) or an
-- audit event (its bytes are the canonical JSON of the row).
CREATE TABLE ledger (
    idx BIGINT PRIMARY KEY,
    leaf_hash TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('run', 'audit_event')),
    ref_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    ledger_index BIGINT NOT NULL UNIQUE
);

-- Append-only: history is never rewritten through annexa's own database connection.
CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
