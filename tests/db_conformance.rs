//! One conformance suite for the database, on the engine the harness selects: SQLite (local)
//! or PostgreSQL (s3-postgres). `scripts/test` runs it on both.

mod common;

use annexa::base::Secret;
use annexa::db::{Db, Engine, RunRow, RunStatus};
use annexa::ledger::audit::{self, Actor, AuditAction};
use chrono::{DateTime, TimeZone, Utc};

async fn fresh_db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match common::backend() {
        common::Backend::Local => {
            format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display())
        }
        common::Backend::S3Postgres => common::fresh_postgres_database(),
    };
    let db = Db::connect(&Secret::new(url.clone())).await.unwrap();
    // Migrations are idempotent: connecting again is fine.
    Db::connect(&Secret::new(url)).await.unwrap();
    (db, dir)
}

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).unwrap()
}

fn run(id: &str, collector: &str, slot: Option<&str>, started: DateTime<Utc>) -> RunRow {
    RunRow {
        id: id.into(),
        collector: collector.into(),
        kind: "policy-document".into(),
        collector_version: "0".into(),
        slot: slot.map(str::to_string),
        status: RunStatus::Running,
        started_at: started,
        finished_at: None,
        error_code: None,
        error: None,
        manifest_key: None,
        manifest_sha256: None,
        ledger_index: None,
        holder: None,
    }
}

async fn finish(db: &Db, mut r: RunRow, status: &str, finished: DateTime<Utc>) {
    r.status = status.parse().unwrap();
    r.finished_at = Some(finished);
    r.manifest_key = Some(format!("runs/{}/{}.json", r.collector, r.id));
    r.manifest_sha256 = Some("00".repeat(32));
    let mut tx = db.begin_append().await.unwrap();
    tx.record_run(&r, &[], &[], &"11".repeat(32)).await.unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn the_engine_matches_the_backend() {
    let (db, _dir) = fresh_db().await;
    let expected = match common::backend() {
        common::Backend::Local => Engine::Sqlite,
        common::Backend::S3Postgres => Engine::Postgres,
    };
    assert_eq!(db.engine(), expected);
}

#[tokio::test]
async fn one_run_per_collector_and_slot_but_any_number_on_demand() {
    let (db, _dir) = fresh_db().await;
    let slot = "2026-11-22T03:00:00.000000Z";
    assert!(
        db.start_run(&run("a", "policies", Some(slot), at(3)))
            .await
            .unwrap()
    );
    assert!(
        !db.start_run(&run("b", "policies", Some(slot), at(3)))
            .await
            .unwrap(),
        "the slot is taken"
    );
    assert!(
        db.start_run(&run("c", "other", Some(slot), at(3)))
            .await
            .unwrap(),
        "another collector's slot"
    );
    assert!(
        db.start_run(&run("d", "policies", None, at(4)))
            .await
            .unwrap()
    );
    assert!(
        db.start_run(&run("e", "policies", None, at(4)))
            .await
            .unwrap()
    );
    assert_eq!(db.running_in_slots("policies").await.unwrap(), ["a"]);
    // A cancelled run gives its slot up, and only then can the slot be filled again.
    assert!(db.cancel_run("a", "cut", at(5)).await.unwrap());
    assert!(
        !db.cancel_run("a", "cut", at(5)).await.unwrap(),
        "only a running run"
    );
    assert_eq!(db.run("a").await.unwrap().unwrap().slot, None);
    assert!(db.running_in_slots("policies").await.unwrap().is_empty());
    assert!(
        db.start_run(&run("f", "policies", Some(slot), at(6)))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn leases_go_to_one_holder_at_a_time_with_growing_tokens() {
    let (db, _dir) = fresh_db().await;
    let until = |h| at(h);
    let a = db
        .acquire_lease("collector:x", "a", at(1), until(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.token, 1);
    let held = db
        .acquire_lease("collector:x", "b", at(1), until(2))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!((held.holder.as_str(), held.until), ("a", until(2)));
    assert!(db.renew_lease(&a, until(4)).await.unwrap());
    assert!(
        db.acquire_lease("collector:x", "b", at(3), until(5))
            .await
            .unwrap()
            .is_err(),
        "renewed, so still held"
    );
    // Expired: b takes it with the next token; a can neither renew nor release it any more.
    let b = db
        .acquire_lease("collector:x", "b", at(4), until(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.token, 2);
    assert!(!db.renew_lease(&a, until(9)).await.unwrap());
    db.release_lease(&a, at(4)).await.unwrap();
    assert!(
        db.acquire_lease("collector:x", "c", at(5), until(7))
            .await
            .unwrap()
            .is_err()
    );
    // Released by its holder: free at once, and the token keeps growing.
    db.release_lease(&b, at(5)).await.unwrap();
    let c = db
        .acquire_lease("collector:x", "c", at(5), until(7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.token, 3);
    // Other leases are independent.
    assert_eq!(
        db.acquire_lease("alerts", "a", at(5), until(6))
            .await
            .unwrap()
            .unwrap()
            .token,
        1
    );
}

#[tokio::test]
async fn latest_runs_respect_as_of_and_status() {
    let (db, _dir) = fresh_db().await;
    for (id, h, status) in [
        ("r1", 1, "succeeded"),
        ("r2", 2, "failed"),
        ("r3", 5, "succeeded"),
    ] {
        let r = run(id, "policies", None, at(h));
        assert!(db.start_run(&r).await.unwrap());
        finish(&db, r, status, at(h)).await;
    }
    let latest = |as_of, ok| {
        let db = db.clone();
        async move {
            db.latest_run("policies", as_of, ok)
                .await
                .unwrap()
                .map(|r| r.id)
        }
    };
    assert_eq!(latest(at(0), false).await, None);
    assert_eq!(latest(at(3), false).await.as_deref(), Some("r2"));
    assert_eq!(latest(at(3), true).await.as_deref(), Some("r1"));
    assert_eq!(latest(at(6), true).await.as_deref(), Some("r3"));
    let run = db.run("r2").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.ledger_index, Some(1));
    assert_eq!(run.finished_at, Some(at(2)));
    assert_eq!(db.latest_manifest(at(4)).await.unwrap().unwrap().id, "r2");
}

#[tokio::test]
async fn concurrent_appends_get_contiguous_ledger_indexes() {
    let (db, _dir) = fresh_db().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            audit::record(
                &db,
                Actor::Annexa,
                AuditAction::ConfigLoaded,
                &format!("e{i}"),
                serde_json::json!({"i": i}),
                at(1),
            )
            .await
            .unwrap()
            .ledger_index
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        indexes.push(t.await.unwrap());
    }
    indexes.sort();
    assert_eq!(indexes, (0..24).collect::<Vec<i64>>());
    let leaves = db.ledger().await.unwrap();
    assert_eq!(leaves.len(), 24);
    for (i, leaf) in leaves.iter().enumerate() {
        assert_eq!(leaf.idx, i as i64);
        let event = db
            .audit_events()
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.id == leaf.ref_id)
            .unwrap();
        assert_eq!(leaf.leaf_hash, hex::encode(audit::leaf_hash(&event)));
    }
}

#[tokio::test]
async fn the_ledger_and_audit_events_are_append_only() {
    let (db, _dir) = fresh_db().await;
    audit::record(
        &db,
        Actor::Operator,
        AuditAction::KeyRevoked,
        "s",
        serde_json::json!({}),
        at(1),
    )
    .await
    .unwrap();
    for sql in [
        "UPDATE audit_events SET actor = 'mallory'",
        "DELETE FROM audit_events",
        "UPDATE ledger SET leaf_hash = '00'",
        "DELETE FROM ledger",
    ] {
        let err = sqlx::query(sql).execute(db.pool()).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(db.audit_events().await.unwrap()[0].actor, "operator");
}
