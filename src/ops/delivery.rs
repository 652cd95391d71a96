//! Alert delivery in the worker: one pass at a time in a task of its own, beside the ticks, so
//! a receiver that hangs never holds up a run, a checkpoint or a verify.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::app::Annexa;
use crate::ops::Output;

/// Where a tick delivers alerts.
#[derive(Clone, Copy)]
pub enum Delivery<'a> {
    /// In the tick, after everything else (`annexa run`), bounded by `[alerts] pass_timeout`.
    Inline,
    /// In a task of its own beside the ticks (the worker): a stuck sink never holds up a run,
    /// a checkpoint or a verify.
    Beside(&'a Arc<Background>),
}

/// The worker's delivery task: at most one pass at a time, started by a tick when something is
/// due, its report handed to the next tick.
pub struct Background {
    app: Arc<Annexa>,
    client: reqwest::Client,
    out: Arc<dyn Output>,
    holder: String,
    state: Mutex<BackgroundState>,
    /// Told when a pass ends, so the worker ticks again to report it and plan the next.
    pub done: tokio::sync::Notify,
}

#[derive(Default)]
struct BackgroundState {
    running: bool,
    started_once: bool,
    finished: Option<Result<crate::ops::alerts::DeliveryReport, String>>,
    next_attempt: Option<DateTime<Utc>>,
}

impl Background {
    pub fn new(
        app: Arc<Annexa>,
        client: reqwest::Client,
        out: Arc<dyn Output>,
        holder: String,
    ) -> Arc<Background> {
        Arc::new(Background {
            app,
            client,
            out,
            holder,
            state: Mutex::new(BackgroundState::default()),
            done: tokio::sync::Notify::new(),
        })
    }

    /// The report of the pass that ended since the last call, and a new pass started when one
    /// is due: new alerts were queued, a retry is due, or none has run yet.
    pub(super) fn step(
        self: &Arc<Self>,
        queued: bool,
        now: DateTime<Utc>,
    ) -> Option<Result<crate::ops::alerts::DeliveryReport, String>> {
        let mut state = self.state.lock().expect("not poisoned");
        let finished = state.finished.take();
        match &finished {
            Some(Ok(r)) => state.next_attempt = r.next_attempt,
            // A pass that failed (the database away) is retried with the next evaluation.
            Some(Err(_)) => state.next_attempt = None,
            None => {}
        }
        let due = !state.started_once || queued || state.next_attempt.is_some_and(|t| t <= now);
        if due && !state.running {
            state.running = true;
            state.started_once = true;
            let this = self.clone();
            tokio::spawn(async move {
                let result = this.pass().await.map_err(|e| format!("{e:#}"));
                let mut state = this.state.lock().expect("not poisoned");
                state.running = false;
                state.finished = Some(result);
                drop(state);
                this.done.notify_one();
            });
        }
        finished
    }

    /// When the next retry is due, as far as the last pass knows.
    pub(super) fn next_attempt(&self) -> Option<DateTime<Utc>> {
        self.state.lock().expect("not poisoned").next_attempt
    }

    async fn pass(&self) -> anyhow::Result<crate::ops::alerts::DeliveryReport> {
        let app = &self.app;
        // The lease outlives the longest pass, so two workers never deliver side by side.
        let ttl =
            chrono::Duration::from_std(app.config.worker.lease + app.config.alerts.pass_timeout)?;
        let t = app.clock.now();
        let Ok(lease) = app
            .db
            .acquire_lease("alerts:delivery", &self.holder, t, t + ttl)
            .await?
        else {
            return Ok(Default::default());
        };
        let result = crate::ops::alerts::deliver_due(app, &self.client, self.out.as_ref()).await;
        app.db.release_lease(&lease, app.clock.now()).await?;
        result
    }
}
