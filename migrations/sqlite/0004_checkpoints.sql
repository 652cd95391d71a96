-- Signed tree heads (C2SP tlog-checkpoint in a signed note). One per tree size: annexa never
-- signs two checkpoints that disagree. Each is also published to the store, where a restored
-- database cannot take it back.
CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY,
    -- base64, as in the checkpoint body
    root_hash TEXT NOT NULL,
    origin TEXT NOT NULL,
    key_id TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- where the store keeps it
    object_key TEXT NOT NULL
);
CREATE INDEX checkpoints_by_created ON checkpoints (created_at);
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
