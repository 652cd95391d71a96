-- A run's rows by role, in the order they were stored: status lists the first items of a run
-- and finds its facts row, and verify reads a run's rows, each one index range rather than a
-- scan of every row of every run (a run may hold a million items).
CREATE INDEX evidence_by_run ON evidence (run_id, role, id);
