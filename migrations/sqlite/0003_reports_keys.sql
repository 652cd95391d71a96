-- Reports read a period of history: evidence and runs by time.
CREATE INDEX evidence_by_collected ON evidence (collected_at);
CREATE INDEX ledger_by_created ON ledger (created_at);

-- Signing keys. The key id is the C2SP signed-note key id (hex); `verifier` is the public key
-- in signed-note verifier text. A revoked key never signs again.
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    verifier TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('active', 'retired', 'revoked')),
    created_at TEXT NOT NULL,
    retired_at TEXT,
    revoked_at TEXT
);
