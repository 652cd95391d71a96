-- Who runs a run (`host/pid/tag`), so a run whose process is gone is swept at once, on-demand
-- runs included. Same version in migrations/sqlite and migrations/postgres.
ALTER TABLE runs ADD COLUMN holder TEXT;
