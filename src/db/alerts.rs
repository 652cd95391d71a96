//! Gaps and the alert outbox.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, DbError, parse_ts, ts};

/// One gap as stored, by its dedup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub dedup_key: String,
    /// The controls it bears on, comma-separated.
    pub control: String,
    pub code: String,
    pub subject: String,
    /// `open`, `clearing` (gone, not yet for long enough) or `resolved`.
    pub state: String,
    pub opened_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub notified_at: DateTime<Utc>,
    /// How many occurrences the last OPEN, UPDATE or REMINDER told of.
    pub notified_count: i64,
    /// The latest description of the gap (JSON).
    pub detail: String,
}

/// One alert for one sink, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub id: i64,
    pub dedup_key: String,
    /// `open`, `update`, `reminder`, `resolved`, `warning` or `digest`.
    pub event: String,
    pub sink: String,
    /// The message (JSON), with no secret in it.
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// Deliveries per sink, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCounts {
    pub sink: String,
    pub delivered: i64,
    pub failed_attempts: i64,
    pub pending: i64,
    /// Pending for longer than the configured limit (and reported as such).
    pub overdue: i64,
}

/// What one evaluation writes ([`Db::record_gaps`]).
#[derive(Debug, Clone, Copy)]
pub struct EvaluationWrite<'a> {
    pub gaps: &'a [GapRow],
    pub warnings: &'a [(String, DateTime<Utc>)],
    pub alerts: &'a [NewAlert],
    /// Messages for sinks in their quiet hours (`event` unused).
    pub hold: &'a [NewAlert],
    /// Held messages sent now, by id.
    pub released: &'a [i64],
    pub now: DateTime<Utc>,
}

/// A new alert to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub dedup_key: String,
    pub event: String,
    pub sink: String,
    pub body: String,
}

const GAP_COLUMNS: &str = "dedup_key, control, code, subject, state, opened_at, last_seen_at, \
                           cleared_at, notified_at, notified_count, detail";
const ALERT_COLUMNS: &str =
    "id, dedup_key, event, sink, body, created_at, attempts, next_attempt_at, last_error";

fn gap_row(row: &AnyRow) -> Result<GapRow, DbError> {
    let time =
        |c: &str| -> Result<DateTime<Utc>, DbError> { parse_ts(c, &row.try_get::<String, _>(c)?) };
    Ok(GapRow {
        dedup_key: row.try_get("dedup_key")?,
        control: row.try_get("control")?,
        code: row.try_get("code")?,
        subject: row.try_get("subject")?,
        state: row.try_get("state")?,
        opened_at: time("opened_at")?,
        last_seen_at: time("last_seen_at")?,
        cleared_at: row
            .try_get::<Option<String>, _>("cleared_at")?
            .map(|s| parse_ts("gaps.cleared_at", &s))
            .transpose()?,
        notified_at: time("notified_at")?,
        notified_count: row.try_get("notified_count")?,
        detail: row.try_get("detail")?,
    })
}

fn alert_row(row: &AnyRow) -> Result<AlertRow, DbError> {
    Ok(AlertRow {
        id: row.try_get("id")?,
        dedup_key: row.try_get("dedup_key")?,
        event: row.try_get("event")?,
        sink: row.try_get("sink")?,
        body: row.try_get("body")?,
        created_at: parse_ts(
            "alerts.created_at",
            &row.try_get::<String, _>("created_at")?,
        )?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: parse_ts(
            "alerts.next_attempt_at",
            &row.try_get::<String, _>("next_attempt_at")?,
        )?,
        last_error: row.try_get("last_error")?,
    })
}

impl Db {
    /// The gaps not resolved (open or clearing).
    pub async fn unresolved_gaps(&self) -> Result<Vec<GapRow>, DbError> {
        let sql =
            format!("SELECT {GAP_COLUMNS} FROM gaps WHERE state <> 'resolved' ORDER BY dedup_key");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(gap_row).collect()
    }

    /// The messages held for `sink` during its quiet hours, oldest first: (id, body).
    pub async fn held_alerts(&self, sink: &str) -> Result<Vec<(i64, String)>, DbError> {
        let rows = sqlx::query("SELECT id, body FROM held_alerts WHERE sink = $1 ORDER BY id")
            .bind(sink)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("body")?)))
            .collect()
    }

    /// The keys of the warnings already sent, of due dates at or after `since`.
    pub async fn sent_warnings(&self, since: DateTime<Utc>) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query("SELECT warning_key FROM warnings WHERE due_at >= $1")
            .bind(ts(since))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get("warning_key")?)).collect()
    }

    /// Writes one evaluation in one transaction: the gaps' new states, the warnings sent (key,
    /// due date), the alerts to queue, the messages to hold for quiet sinks and the held ones
    /// now sent.
    pub async fn record_gaps(&self, e: &EvaluationWrite<'_>) -> Result<(), DbError> {
        let EvaluationWrite {
            gaps,
            warnings,
            alerts,
            hold,
            released,
            now,
        } = *e;
        let mut tx = self.pool().begin().await?;
        for id in released {
            sqlx::query("DELETE FROM held_alerts WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for h in hold {
            // Ids in order of holding; one evaluation writes at a time (the alerts lease).
            sqlx::query(
                "INSERT INTO held_alerts (id, sink, body, created_at) \
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM held_alerts",
            )
            .bind(&h.sink)
            .bind(&h.body)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        for (key, due) in warnings {
            sqlx::query(
                "INSERT INTO warnings (warning_key, due_at, sent_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (warning_key) DO NOTHING",
            )
            .bind(key)
            .bind(ts(*due))
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        for g in gaps {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO gaps ({GAP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (dedup_key) DO UPDATE SET control = excluded.control, \
                 state = excluded.state, \
                 opened_at = excluded.opened_at, last_seen_at = excluded.last_seen_at, \
                 cleared_at = excluded.cleared_at, notified_at = excluded.notified_at, \
                 notified_count = excluded.notified_count, detail = excluded.detail"
            )))
            .bind(&g.dedup_key)
            .bind(&g.control)
            .bind(&g.code)
            .bind(&g.subject)
            .bind(&g.state)
            .bind(ts(g.opened_at))
            .bind(ts(g.last_seen_at))
            .bind(g.cleared_at.map(ts))
            .bind(ts(g.notified_at))
            .bind(g.notified_count)
            .bind(&g.detail)
            .execute(&mut *tx)
            .await?;
        }
        for a in alerts {
            sqlx::query(
                "INSERT INTO alerts (dedup_key, event, sink, body, created_at, state, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $5)",
            )
            .bind(&a.dedup_key)
            .bind(&a.event)
            .bind(&a.sink)
            .bind(&a.body)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every pending alert, oldest first.
    pub async fn pending_alerts(&self) -> Result<Vec<AlertRow>, DbError> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'pending' ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(alert_row).collect()
    }

    pub async fn alert_delivered(&self, id: i64, at: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE alerts SET state = 'delivered', attempts = attempts + 1, delivered_at = $1 \
             WHERE id = $2",
        )
        .bind(ts(at))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn alert_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE alerts SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE id = $3",
        )
        .bind(error)
        .bind(ts(next_attempt_at))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Pending alerts queued at or before `cutoff` whose lateness was not reported yet.
    pub async fn overdue_alerts(&self, cutoff: DateTime<Utc>) -> Result<Vec<AlertRow>, DbError> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'pending' AND created_at <= $1 \
             AND overdue_reported_at IS NULL ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(cutoff))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(alert_row).collect()
    }

    pub async fn mark_overdue_reported(&self, id: i64, at: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("UPDATE alerts SET overdue_reported_at = $1 WHERE id = $2")
            .bind(ts(at))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deliveries, failed attempts and pending alerts per sink.
    pub async fn sink_counts(&self) -> Result<Vec<SinkCounts>, DbError> {
        let rows = sqlx::query(
            "SELECT sink, \
             CAST(SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS BIGINT) AS delivered, \
             CAST(SUM(attempts) - SUM(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) AS BIGINT) AS failed, \
             CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT) AS pending, \
             CAST(SUM(CASE WHEN state = 'pending' AND overdue_reported_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS overdue \
             FROM alerts GROUP BY sink ORDER BY sink",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SinkCounts {
                    sink: r.try_get("sink")?,
                    delivered: r.try_get("delivered")?,
                    failed_attempts: r.try_get("failed")?,
                    pending: r.try_get("pending")?,
                    overdue: r.try_get("overdue")?,
                })
            })
            .collect()
    }

    /// Open (or clearing) gaps per control: a gap bearing on two controls counts under each.
    pub async fn open_gaps_by_control(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query("SELECT control FROM gaps WHERE state <> 'resolved'")
            .fetch_all(self.pool())
            .await?;
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for r in &rows {
            let controls: String = r.try_get("control")?;
            for c in controls.split(',').filter(|c| !c.is_empty()) {
                *counts.entry(c.to_string()).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }
}
