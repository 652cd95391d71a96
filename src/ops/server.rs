//! The worker's HTTP endpoint: `/health`, `/ready`, `/metrics` (Prometheus text) and
//! `POST /ping/{job}` for external jobs' heartbeats. Loopback by default (`[worker] listen`).

use std::fmt::Write as _;
use std::sync::Arc;

use annexa_collectors::cron_health::PingKind;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::app::Annexa;
use crate::evidence::heartbeats::{PingError, Via, record_ping};

pub fn router(app: Arc<Annexa>) -> axum::Router {
    axum::Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/ping/{job}", post(ping))
        .with_state(app)
}

/// Ready when the database answers and the store can be listed.
async fn ready(State(app): State<Arc<Annexa>>) -> Response {
    let (db, store) = tokio::join!(app.db.ping(), app.store.list("ready-probe/"));
    let mut problems = Vec::new();
    if let Err(e) = db {
        problems.push(format!("database: {e}"));
    }
    if let Err(e) = store {
        problems.push(format!("store {}: {e}", app.store.location()));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<Annexa>>) -> Response {
    match render_metrics(&app).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metrics unavailable: {e:#}\n"),
        )
            .into_response(),
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The figures, from the database: the same whichever worker is asked.
pub async fn render_metrics(app: &Annexa) -> anyhow::Result<String> {
    let (runs, successes, gaps, sinks) = tokio::try_join!(
        app.db.run_counts(),
        app.db.last_successes(),
        app.db.open_gaps_by_control(),
        app.db.sink_counts(),
    )?;
    let mut text = String::new();
    let mut section = |name: &str, kind: &str, help: &str, rows: Vec<String>| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in rows {
            let _ = writeln!(text, "{name}{r}");
        }
    };
    section(
        "annexa_runs",
        "gauge",
        "Collector runs recorded, by collector and status (a run moves from running to its end status).",
        runs.iter()
            .map(|r| {
                format!(
                    "{{collector=\"{}\",status=\"{}\"}} {}",
                    label(&r.collector),
                    r.status,
                    r.count
                )
            })
            .collect(),
    );
    section(
        "annexa_last_success_timestamp_seconds",
        "gauge",
        "When each collector last succeeded (Unix time).",
        successes
            .iter()
            .map(|(c, t)| format!("{{collector=\"{}\"}} {}", label(c), t.timestamp()))
            .collect(),
    );
    section(
        "annexa_open_gaps",
        "gauge",
        "Open gaps (not satisfied controls and failing findings), by control.",
        app.config
            .catalog
            .controls()
            .iter()
            .map(|c| {
                let count = gaps
                    .iter()
                    .find(|(id, _)| *id == c.id)
                    .map_or(0, |(_, n)| *n);
                format!("{{control=\"{}\"}} {count}", label(&c.id))
            })
            .collect(),
    );
    let per_sink = |f: fn(&crate::db::SinkCounts) -> i64| -> Vec<String> {
        sinks
            .iter()
            .map(|s| format!("{{sink=\"{}\"}} {}", label(&s.sink), f(s)))
            .collect()
    };
    section(
        "annexa_alert_deliveries_total",
        "counter",
        "Alerts delivered, by sink.",
        per_sink(|s| s.delivered),
    );
    section(
        "annexa_alert_delivery_failures_total",
        "counter",
        "Failed delivery attempts (each is retried), by sink.",
        per_sink(|s| s.failed_attempts),
    );
    section(
        "annexa_alerts_pending",
        "gauge",
        "Alerts queued and not delivered yet, by sink.",
        per_sink(|s| s.pending),
    );
    section(
        "annexa_alerts_undeliverable",
        "gauge",
        "Alerts undelivered for longer than alerts.undeliverable_after, by sink.",
        per_sink(|s| s.overdue),
    );
    if let Some(i) = crate::views::custody::integrity(app, app.clock.now()).await? {
        let one = |v: i64| vec![format!(" {v}")];
        section(
            "annexa_verify_last_timestamp_seconds",
            "gauge",
            "When the newest `annexa verify` (full or the rolling scrub) ran (Unix time).",
            vec![format!(
                "{{scope=\"{}\"}} {}",
                i.scope,
                i.last_verify.timestamp()
            )],
        );
        section(
            "annexa_verify_violations",
            "gauge",
            "Integrity violations the newest verify found.",
            one(i.violations as i64),
        );
        section(
            "annexa_verify_rehashed_objects",
            "gauge",
            "Objects the newest verify re-hashed.",
            one(i.objects as i64),
        );
        section(
            "annexa_verify_rehashed_bytes",
            "gauge",
            "Bytes the newest verify re-hashed.",
            one(i.bytes as i64),
        );
        if let Some(t) = i.oldest_rehash {
            section(
                "annexa_verify_oldest_rehash_timestamp_seconds",
                "gauge",
                "Every stored object has been re-hashed since this time (Unix time); alert when it is older than [verify] full_every.",
                one(t.timestamp()),
            );
        }
    }
    Ok(text)
}

#[derive(Debug, Deserialize)]
struct PingQuery {
    /// `start`, `success` (the default) or `fail`.
    status: Option<String>,
}

/// `POST /ping/{job}[?status=start|success|fail]` with `Authorization: Bearer TOKEN`; the
/// body, if any, is the message (e.g. why it failed).
async fn ping(
    State(app): State<Arc<Annexa>>,
    Path(job): Path<String>,
    Query(q): Query<PingQuery>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let kind = match q.status.as_deref().unwrap_or("success") {
        "start" => PingKind::Start,
        "success" => PingKind::Success,
        "fail" => PingKind::Fail,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("status `{other}`: use start, success or fail\n"),
            )
                .into_response();
        }
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let message: String = body.trim().chars().take(2000).collect();
    let message = (!message.is_empty()).then_some(message.as_str());
    match record_ping(
        &app.db,
        &app.config,
        &job,
        kind,
        message,
        token,
        Via::Http,
        app.clock.now(),
    )
    .await
    {
        Ok(()) => (
            StatusCode::OK,
            format!("recorded {} for {job}\n", kind.as_str()),
        )
            .into_response(),
        Err(e @ PingError::UnknownJob { .. }) => {
            (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Err(e @ PingError::Unauthorized { .. }) => {
            (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
