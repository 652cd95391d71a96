//! What the worker keeps in the database: leases with fencing tokens, the slots of its tasks,
//! runs it cuts or takes over, and the figures `/metrics` reports.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row};

use super::{Db, DbError, parse_ts, ts};

/// A lease this process holds. `token` grows with every new holder: a fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub token: i64,
}

/// Who holds a lease another process asked for, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBy {
    pub holder: String,
    pub until: DateTime<Utc>,
}

/// Runs by collector and status, for `/metrics`.
/// A slot held by a failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedSlot {
    pub run: String,
    pub slot: String,
    pub failed_at: DateTime<Utc>,
    /// Failed runs of this slot so far, this one included.
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCount {
    pub collector: String,
    pub status: String,
    pub count: i64,
}

impl Db {
    /// Takes the lease `name` for `holder` until `until`, if it is free or expired (or already
    /// `holder`'s). Otherwise says who holds it.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Result<Lease, HeldBy>, DbError> {
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             token = leases.token + 1, expires_at = excluded.expires_at \
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder \
             RETURNING token",
        )
        .bind(name)
        .bind(holder)
        .bind(ts(until))
        .bind(ts(now))
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = row {
            return Ok(Ok(Lease {
                name: name.to_string(),
                holder: holder.to_string(),
                token: row.try_get("token")?,
            }));
        }
        let Some(held) = self.lease_holder(name).await? else {
            return Err(DbError::Corrupt {
                what: "leases".into(),
                value: format!("lease {name} was neither taken nor held"),
            });
        };
        // A process on this host that is gone holds nothing: no waiting for its lease to expire.
        if crate::base::holder::is_gone(&held.holder) {
            self.release_held(name, &held.holder, now).await?;
            return Box::pin(self.acquire_lease(name, holder, now, until)).await;
        }
        Ok(Err(held))
    }

    /// Who holds a lease until when, expired or not; None when it was never taken.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<HeldBy>, DbError> {
        let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(HeldBy {
                holder: r.try_get("holder")?,
                until: parse_ts("leases.expires_at", &r.try_get::<String, _>("expires_at")?)?,
            })
        })
        .transpose()
    }

    /// Every run still `running`, scheduled or on demand.
    pub async fn running_runs(&self) -> Result<Vec<super::RunRow>, DbError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM runs WHERE status = 'running' ORDER BY started_at",
            super::RUN_COLUMNS
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(super::RunRow::from_row).collect()
    }

    /// Extends a lease still held with the same token. False when it was lost (it expired and
    /// another process took it).
    pub async fn renew_lease(&self, lease: &Lease, until: DateTime<Utc>) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND token = $4",
        )
        .bind(ts(until))
        .bind(&lease.name)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease up at once (it expires now; its token is kept, so tokens only grow).
    pub async fn release_lease(&self, lease: &Lease, now: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3 AND token = $4",
        )
        .bind(ts(now))
        .bind(&lease.name)
        .bind(&lease.holder)
        .bind(lease.token)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Gives up every lease `holder` holds under `name` (after its work was cut short).
    pub async fn release_held(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3")
            .bind(ts(now))
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a run cancelled and gives its slot up (it moves to `cancelled_slot`). Only a
    /// `running` run is cancelled; returns whether one was.
    pub async fn cancel_run(
        &self,
        id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE runs SET status = 'cancelled', finished_at = $1, error = $2, \
             cancelled_slot = slot, slot = NULL WHERE id = $3 AND status = 'running'",
        )
        .bind(ts(at))
        .bind(reason)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The id of the run still `running` in a collector's slot, if any.
    pub async fn running_in_slot(
        &self,
        collector: &str,
        slot: &str,
    ) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT id FROM runs WHERE collector = $1 AND slot = $2 AND status = 'running'",
        )
        .bind(collector)
        .bind(slot)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get("id")).transpose()?)
    }

    /// The runs of a collector still `running` in a slot (not the on-demand ones of
    /// `annexa collect`).
    pub async fn running_in_slots(&self, collector: &str) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE collector = $1 AND slot IS NOT NULL AND status = 'running'",
        )
        .bind(collector)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// The instant after which a collector's missed slots count: its newest slot with a
    /// finished run; else just before the slot of a run that never finished (a worker died
    /// during the very first one); None for a collector that never ran on schedule.
    pub async fn catch_up_from(&self, collector: &str) -> Result<Option<DateTime<Utc>>, DbError> {
        let row = sqlx::query(
            "SELECT MAX(CASE WHEN status <> 'running' THEN slot END) AS last, MIN(slot) AS first \
             FROM runs WHERE collector = $1",
        )
        .bind(collector)
        .fetch_one(self.pool())
        .await?;
        let time = |c: &str| -> Result<Option<DateTime<Utc>>, DbError> {
            row.try_get::<Option<String>, _>(c)?
                .map(|s| parse_ts("runs.slot", &s))
                .transpose()
        };
        Ok(match time("last")? {
            Some(last) => Some(last),
            None => time("first")?.map(|f| f - chrono::Duration::seconds(1)),
        })
    }

    /// The slots of a collector that have a finished run, in `[from, to]`.
    pub async fn filled_slots(
        &self,
        collector: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query(
            "SELECT slot FROM runs WHERE collector = $1 AND slot >= $2 AND slot <= $3 \
             AND status <> 'running'",
        )
        .bind(collector)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("slot")?))
            .collect()
    }

    /// The failed runs holding a collector's slots in `[from, to]`: (run id, slot, when it
    /// failed, how many runs of that slot have failed so far, this one included).
    pub async fn failed_slots(
        &self,
        collector: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FailedSlot>, DbError> {
        let rows = sqlx::query(
            "SELECT r.id, r.slot, r.finished_at, \
             (SELECT COUNT(*) FROM runs p WHERE p.collector = r.collector AND p.status = 'failed' \
              AND (p.slot = r.slot OR p.cancelled_slot = r.slot)) AS attempts \
             FROM runs r WHERE r.collector = $1 AND r.slot >= $2 AND r.slot <= $3 AND r.status = 'failed'",
        )
        .bind(collector)
        .bind(ts(from))
        .bind(ts(to))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FailedSlot {
                    run: r.try_get("id")?,
                    slot: r.try_get("slot")?,
                    failed_at: parse_ts(
                        "runs.finished_at",
                        &r.try_get::<String, _>("finished_at")?,
                    )?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// A failed run gives its slot up for a retry (the slot moves to `cancelled_slot`; the run
    /// stays, failed, in the custody log). Returns whether it did.
    pub async fn release_failed_slot(&self, run: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE runs SET cancelled_slot = slot, slot = NULL WHERE id = $1 AND status = 'failed' \
             AND slot IS NOT NULL",
        )
        .bind(run)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether a worker task (checkpoint, verify, report) was done for a slot.
    pub async fn task_done(&self, task: &str, slot: DateTime<Utc>) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM task_slots WHERE task = $1 AND slot = $2")
            .bind(task)
            .bind(ts(slot))
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Records a task's slot as done. False when another worker recorded it first.
    pub async fn mark_task_done(
        &self,
        task: &str,
        slot: DateTime<Utc>,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let result = sqlx::query(
            "INSERT INTO task_slots (task, slot, done_at, outcome) VALUES ($1, $2, $3, $4)",
        )
        .bind(task)
        .bind(ts(slot))
        .bind(ts(at))
        .bind(outcome)
        .execute(self.pool())
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs by collector and status.
    pub async fn run_counts(&self) -> Result<Vec<RunCount>, DbError> {
        let rows = sqlx::query(
            "SELECT collector, status, COUNT(*) AS n FROM runs GROUP BY collector, status \
             ORDER BY collector, status",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunCount {
                    collector: r.try_get("collector")?,
                    status: r.try_get("status")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// The newest finish per collector of runs that ended `status` (`succeeded`, `failed`).
    pub async fn last_finished(
        &self,
        status: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
        let rows = sqlx::query(
            "SELECT collector, MAX(finished_at) AS at FROM runs WHERE status = $1 \
             AND finished_at IS NOT NULL GROUP BY collector ORDER BY collector",
        )
        .bind(status)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("collector")?,
                    parse_ts("runs.finished_at", &r.try_get::<String, _>("at")?)?,
                ))
            })
            .collect()
    }

    /// How long each finished run took, in seconds, by collector.
    pub async fn run_durations(&self) -> Result<Vec<(String, f64)>, DbError> {
        let rows = sqlx::query(
            "SELECT collector, started_at, finished_at FROM runs WHERE finished_at IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let started = parse_ts("runs.started_at", &r.try_get::<String, _>("started_at")?)?;
                let finished =
                    parse_ts("runs.finished_at", &r.try_get::<String, _>("finished_at")?)?;
                Ok((
                    r.try_get("collector")?,
                    (finished - started).num_milliseconds().max(0) as f64 / 1000.0,
                ))
            })
            .collect()
    }

    /// Distinct evidence objects and their bytes, by the collector that recorded them.
    pub async fn evidence_by_collector(&self) -> Result<Vec<(String, i64, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT collector, CAST(COUNT(*) AS BIGINT) AS objects, CAST(SUM(size) AS BIGINT) AS bytes \
             FROM (SELECT DISTINCT collector, object_key, size FROM evidence) AS o \
             GROUP BY collector ORDER BY collector",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("collector")?,
                    r.try_get("objects")?,
                    r.try_get("bytes")?,
                ))
            })
            .collect()
    }

    /// Leaves in the ledger.
    pub async fn ledger_size(&self) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ledger")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}
