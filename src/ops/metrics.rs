//! `/metrics`: the figures, read from the database at each scrape (so any worker gives the same
//! answer), encoded by `prometheus-client` as OpenMetrics text.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::app::Annexa;

/// OpenMetrics' content type, what `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// Run durations: a second up to a few hours (a restore drill).
const DURATION_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

// prometheus-client ends each help text with a period itself.

/// A family of gauges, one per label set.
fn gauges(registry: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, i64)>) {
    let family = Family::<Labels, Gauge>::default();
    for (labels, value) in rows {
        family.get_or_create(&labels).set(value);
    }
    registry.register(name, help, family);
}

/// One gauge without labels.
fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

/// A family of counters (exposed as `<name>_total`), one per label set.
fn counters(registry: &mut Registry, name: &str, help: &str, rows: Vec<(Labels, u64)>) {
    let family = Family::<Labels, Counter>::default();
    for (labels, value) in rows {
        family.get_or_create(&labels).inc_by(value);
    }
    registry.register(name, help, family);
}

fn one(label: &'static str, value: &str) -> Labels {
    vec![(label, value.to_string())]
}

/// The exposition, OpenMetrics text ending in `# EOF`.
pub async fn render(app: &Annexa) -> anyhow::Result<String> {
    let now = app.clock.now();
    let (runs, successes, failures, durations, gaps, sinks, evidence, ledger_size, checkpoint) = tokio::try_join!(
        app.db.run_counts(),
        app.db.last_finished("succeeded"),
        app.db.last_finished("failed"),
        app.db.run_durations(),
        app.db.open_gaps_by_control(),
        app.db.sink_counts(),
        app.db.evidence_by_collector(),
        app.db.ledger_size(),
        app.db.latest_checkpoint(now),
    )?;
    let integrity = crate::views::custody::integrity(app, now).await?;

    let mut r = Registry::default();
    r.register(
        "annexa_build",
        "The annexa build answering",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
    );
    counters(
        &mut r,
        "annexa_runs",
        "Collector runs recorded, by collector and status (a running run is counted under `running` until it ends)",
        runs.iter()
            .map(|c| {
                (
                    vec![
                        ("collector", c.collector.clone()),
                        ("status", c.status.clone()),
                    ],
                    c.count.max(0) as u64,
                )
            })
            .collect(),
    );
    let timestamps = |rows: &[(String, chrono::DateTime<chrono::Utc>)]| {
        rows.iter()
            .map(|(c, t)| (one("collector", c), t.timestamp()))
            .collect()
    };
    gauges(
        &mut r,
        "annexa_last_success_timestamp_seconds",
        "When each collector last succeeded (Unix time)",
        timestamps(&successes),
    );
    gauges(
        &mut r,
        "annexa_last_failure_timestamp_seconds",
        "When each collector last failed (Unix time)",
        timestamps(&failures),
    );
    let histograms = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
        Histogram::new(DURATION_BUCKETS)
    });
    for (collector, secs) in &durations {
        histograms
            .get_or_create(&one("collector", collector))
            .observe(*secs);
    }
    r.register(
        "annexa_run_duration_seconds",
        "How long finished runs took, by collector",
        histograms,
    );
    gauges(
        &mut r,
        "annexa_next_slot_timestamp_seconds",
        "When each collector's next scheduled slot is (Unix time)",
        app.config
            .collectors
            .iter()
            .filter_map(|c| {
                Some((
                    one("collector", &c.name),
                    c.schedule.next_after(now)?.timestamp(),
                ))
            })
            .collect(),
    );
    gauges(
        &mut r,
        "annexa_evidence_objects",
        "Distinct evidence objects recorded, by collector",
        evidence
            .iter()
            .map(|(c, objects, _)| (one("collector", c), *objects))
            .collect(),
    );
    gauges(
        &mut r,
        "annexa_evidence_bytes",
        "Bytes of the distinct evidence objects recorded, by collector",
        evidence
            .iter()
            .map(|(c, _, bytes)| (one("collector", c), *bytes))
            .collect(),
    );
    gauges(
        &mut r,
        "annexa_open_gaps",
        "Open gaps (not satisfied controls and failing findings), by control",
        app.config
            .catalog
            .controls()
            .iter()
            .map(|c| {
                let count = gaps
                    .iter()
                    .find(|(id, _)| *id == c.id)
                    .map_or(0, |(_, n)| *n);
                (one("control", &c.id), count)
            })
            .collect(),
    );
    let per_sink = |f: fn(&crate::db::SinkCounts) -> i64| -> Vec<(Labels, i64)> {
        sinks.iter().map(|s| (one("sink", &s.sink), f(s))).collect()
    };
    let as_counts = |rows: Vec<(Labels, i64)>| -> Vec<(Labels, u64)> {
        rows.into_iter()
            .map(|(l, v)| (l, v.max(0) as u64))
            .collect()
    };
    counters(
        &mut r,
        "annexa_alert_deliveries",
        "Alerts delivered, by sink",
        as_counts(per_sink(|s| s.delivered)),
    );
    counters(
        &mut r,
        "annexa_alert_delivery_failures",
        "Failed delivery attempts (each is retried), by sink",
        as_counts(per_sink(|s| s.failed_attempts)),
    );
    gauges(
        &mut r,
        "annexa_alerts_pending",
        "Alerts queued and not delivered yet, by sink",
        per_sink(|s| s.pending),
    );
    gauges(
        &mut r,
        "annexa_alerts_undeliverable",
        "Alerts undelivered for longer than alerts.undeliverable_after, by sink",
        per_sink(|s| s.overdue),
    );
    gauge(
        &mut r,
        "annexa_ledger_size",
        "Leaves in the ledger (run manifests and audit events)",
        ledger_size,
    );
    if let Some(c) = checkpoint {
        gauge(
            &mut r,
            "annexa_checkpoint_age_seconds",
            "How long ago the newest signed checkpoint was made",
            (now - c.created_at).num_seconds().max(0),
        );
    }
    if let Some(i) = integrity {
        gauges(
            &mut r,
            "annexa_verify_last_timestamp_seconds",
            "When the newest `annexa verify` (full or the rolling scrub) ran (Unix time)",
            vec![(one("scope", &i.scope), i.last_verify.timestamp())],
        );
        gauge(
            &mut r,
            "annexa_verify_violations",
            "Integrity violations the newest verify found",
            i.violations as i64,
        );
        gauge(
            &mut r,
            "annexa_verify_rehashed_objects",
            "Objects the newest verify re-hashed",
            i.objects as i64,
        );
        gauge(
            &mut r,
            "annexa_verify_rehashed_bytes",
            "Bytes the newest verify re-hashed",
            i.bytes as i64,
        );
        if let Some(t) = i.last_success {
            gauge(
                &mut r,
                "annexa_verify_last_success_timestamp_seconds",
                "When a verify last found no violations (Unix time)",
                t.timestamp(),
            );
        }
        if let Some(t) = i.oldest_rehash {
            gauge(
                &mut r,
                "annexa_verify_oldest_rehash_timestamp_seconds",
                "Every stored object has been re-hashed since this time (Unix time); alert when it is older than [verify] full_every",
                t.timestamp(),
            );
        }
    }
    let mut text = String::new();
    encode(&mut text, &r)?;
    Ok(text)
}
