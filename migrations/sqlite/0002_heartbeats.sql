-- Heartbeats of scheduled jobs (annexa ping, POST /ping/{job}). annexa's own collector runs are
-- heartbeats too, read from the runs table.
CREATE TABLE heartbeats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('start', 'success', 'fail')),
    at TEXT NOT NULL,
    message TEXT,
    -- cli or http
    source TEXT NOT NULL
);
CREATE INDEX heartbeats_by_job ON heartbeats (job, at);
