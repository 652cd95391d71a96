-- When a collector first recorded a finding (a report's `first_seen`): one index lookup per
-- finding, not a scan of every finding ever recorded.
CREATE INDEX findings_first_seen ON findings (collector, code, subject, created_at);
