//! The worker's HTTP endpoint: `/health`, `/ready`, `/metrics` (OpenMetrics, `metrics.rs`) and
//! `POST /ping/{job}` for external jobs' heartbeats. Loopback by default (`[worker] listen`).

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
    match super::metrics::render(&app).await {
        Ok(text) => ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metrics unavailable: {e:#}\n"),
        )
            .into_response(),
    }
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
