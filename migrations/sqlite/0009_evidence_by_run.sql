-- A run's rows in the order they were stored: status lists the first items of a run and finds
-- its facts row (the last stored), and verify reads every run's rows in this order, each an
-- index range rather than a scan or a sort of every row (a run may hold a million items).
CREATE INDEX evidence_by_run ON evidence (run_id, id);
