//! Integrity (issue 9): the tamper matrix, checkpoints, key rotation and revocation, offline
//! verification of a report bundle, and a property test of random mutations. Each tamper is
//! detected by `annexa verify` with the right violation and passes again once restored.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use annexa::ledger::note::NoteKey;
use common::{Backend, World};
use sqlx::Row;

const CONFIG: &str = r#"
[organization]
name = "Example Ltd"

[[collector]]
name = "procedures"
kind = "policy-document"
schedule = "0 3 * * *"
paths = ["procedures"]
"#;

/// Two collections and a checkpoint after each.
fn world() -> World {
    let w = World::new();
    w.config(CONFIG);
    w.write(
        "procedures/incident.md",
        &common::procedure("PROC-1", &common::reviewed_days_ago(10)),
    );
    for round in 0..2 {
        w.write(
            "procedures/round.md",
            &common::procedure(&format!("R-{round}"), &common::reviewed_days_ago(5)),
        );
        w.annexa(&["collect", "--all"]).expect(0);
        w.annexa(&["checkpoint"]).expect(0);
    }
    w.annexa(&["verify"]).expect(0);
    w
}

fn database_url(w: &World) -> String {
    match &w.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", w.path("data/annexa.db").display()),
    }
}

/// Runs statements as someone with direct access to the database would, triggers off.
async fn sql(w: &World, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database_url(w)).await.unwrap();
    let unlock: &[&str] = if w.database_url.is_some() {
        &[
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
            "ALTER TABLE ledger DISABLE TRIGGER ledger_append_only",
        ]
    } else {
        &[
            "DROP TRIGGER IF EXISTS audit_events_append_only_update",
            "DROP TRIGGER IF EXISTS audit_events_append_only_delete",
            "DROP TRIGGER IF EXISTS ledger_append_only_update",
            "DROP TRIGGER IF EXISTS ledger_append_only_delete",
        ]
    };
    for s in unlock.iter().chain(statements) {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    pool.close().await;
}

async fn one(w: &World, query: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database_url(w)).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(query.to_string()))
        .fetch_one(&pool)
        .await
        .unwrap();
    let value: String = row.try_get(0).unwrap();
    pool.close().await;
    value
}

/// `annexa verify --json`: exit 4 with a violation of `kind`.
fn detected(w: &World, kind: &str) {
    let out = w.annexa(&["verify", "--json"]);
    assert_eq!(
        out.code, 4,
        "verify should fail with {kind}:\n{}",
        out.stdout
    );
    let kinds: BTreeSet<String> = out.json()["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(kind), "expected {kind}, got {kinds:?}");
}

fn clean(w: &World) {
    let out = w.annexa(&["verify", "--json"]);
    assert_eq!(out.code, 0, "verify should pass:\n{}", out.stdout);
}

fn evidence_key(w: &World) -> String {
    let out = w.annexa(&["status", "--json"]).json();
    out["controls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"].as_array().unwrap().iter())
        .find(|e| e["collector"] == "procedures")
        .map(|e| e["object_key"].as_str().unwrap().to_string())
        .unwrap()
}

/// Changes a file, runs `check`, then puts the original bytes back and expects a clean verify.
fn with_file_changed(
    w: &World,
    key: &str,
    change: impl FnOnce(&mut Vec<u8>),
    check: impl FnOnce(),
) {
    let path = w.object_file(key);
    let original = std::fs::read(&path).unwrap();
    let mut changed = original.clone();
    change(&mut changed);
    std::fs::write(&path, &changed).unwrap();
    check();
    std::fs::write(&path, &original).unwrap();
    clean(w);
}

#[test]
fn stored_bytes_bit_flipped_truncated_deleted_or_swapped_are_caught() {
    let w = world();
    let key = evidence_key(&w);
    with_file_changed(
        &w,
        &key,
        |b| b[0] ^= 0x01,
        || detected(&w, "object-altered"),
    );
    with_file_changed(
        &w,
        &key,
        |b| {
            b.pop();
        },
        || detected(&w, "object-altered"),
    );
    // Replaced by another object of the same size.
    with_file_changed(
        &w,
        &key,
        |b| {
            let n = b.len();
            *b = vec![b'x'; n];
        },
        || detected(&w, "object-altered"),
    );
    // Deleted.
    let path = w.object_file(&key);
    let original = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    detected(&w, "object-missing");
    std::fs::write(&path, original).unwrap();
    clean(&w);
}

#[tokio::test]
async fn a_run_manifest_or_an_evidence_row_edited_is_caught() {
    let w = world();
    let manifest = one(
        &w,
        "SELECT manifest_key FROM runs ORDER BY ledger_index LIMIT 1",
    )
    .await;
    with_file_changed(
        &w,
        &manifest,
        |b| {
            let text = String::from_utf8(b.clone()).unwrap();
            *b = text
                .replacen("\"procedures\"", "\"procedurez\"", 1)
                .into_bytes();
        },
        || detected(&w, "manifest-altered"),
    );
    let sha = one(&w, "SELECT sha256 FROM evidence ORDER BY id LIMIT 1").await;
    let forged = format!(
        "{}{}",
        if sha.starts_with('0') { "1" } else { "0" },
        &sha[1..]
    );
    sql(
        &w,
        &[&format!(
            "UPDATE evidence SET sha256 = '{forged}' WHERE sha256 = '{sha}'"
        )],
    )
    .await;
    detected(&w, "evidence-row-altered");
    sql(
        &w,
        &[&format!(
            "UPDATE evidence SET sha256 = '{sha}' WHERE sha256 = '{forged}'"
        )],
    )
    .await;
    clean(&w);
}

#[tokio::test]
async fn audit_events_edited_deleted_or_swapped_are_caught() {
    let w = world();
    let first = "(SELECT id FROM audit_events ORDER BY ledger_index LIMIT 1)";
    let id = one(
        &w,
        &format!("SELECT id FROM audit_events WHERE id = {first}"),
    )
    .await;
    let details = one(
        &w,
        &format!("SELECT details FROM audit_events WHERE id = '{id}'"),
    )
    .await;
    // Edited.
    sql(
        &w,
        &[&format!(
            "UPDATE audit_events SET actor = 'mallory' WHERE id = '{id}'"
        )],
    )
    .await;
    detected(&w, "ledger-leaf-mismatch");
    sql(
        &w,
        &[&format!(
            "UPDATE audit_events SET actor = 'annexa' WHERE id = '{id}'"
        )],
    )
    .await;
    clean(&w);
    // Deleted, then put back as it was.
    let row = format!(
        "SELECT id, at, actor, action, subject, details, ledger_index FROM audit_events WHERE id = '{id}'"
    );
    let (at, action, subject, index) = {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&database_url(&w)).await.unwrap();
        let r = sqlx::query(sqlx::AssertSqlSafe(row))
            .fetch_one(&pool)
            .await
            .unwrap();
        let v = (
            r.try_get::<String, _>("at").unwrap(),
            r.try_get::<String, _>("action").unwrap(),
            r.try_get::<String, _>("subject").unwrap(),
            r.try_get::<i64, _>("ledger_index").unwrap(),
        );
        pool.close().await;
        v
    };
    sql(
        &w,
        &[&format!("DELETE FROM audit_events WHERE id = '{id}'")],
    )
    .await;
    detected(&w, "audit-event-missing");
    sql(
        &w,
        &[&format!(
            "INSERT INTO audit_events (id, at, actor, action, subject, details, ledger_index) \
         VALUES ('{id}', '{at}', 'annexa', '{action}', '{subject}', '{}', {index})",
            details.replace('\'', "''")
        )],
    )
    .await;
    clean(&w);
    // Two rows swapped: each row's content under the other's id and ledger index.
    let second = one(
        &w,
        "SELECT id FROM audit_events ORDER BY ledger_index DESC LIMIT 1",
    )
    .await;
    let action2 = one(
        &w,
        &format!("SELECT action FROM audit_events WHERE id = '{second}'"),
    )
    .await;
    assert_ne!(action, action2, "two different events to swap");
    sql(
        &w,
        &[
            &format!("UPDATE audit_events SET action = '{action2}' WHERE id = '{id}'"),
            &format!("UPDATE audit_events SET action = '{action}' WHERE id = '{second}'"),
        ],
    )
    .await;
    detected(&w, "ledger-leaf-mismatch");
    sql(
        &w,
        &[
            &format!("UPDATE audit_events SET action = '{action}' WHERE id = '{id}'"),
            &format!("UPDATE audit_events SET action = '{action2}' WHERE id = '{second}'"),
        ],
    )
    .await;
    clean(&w);
}

/// Issue 15: deleting the newest ledger row went unnoticed in every verify mode (its run, rows
/// and manifest stayed), and every later collect failed on a unique constraint. Now verify
/// names the run without a leaf, and appends are refused saying why.
#[tokio::test]
async fn a_deleted_last_leaf_is_caught_and_appends_are_refused() {
    let w = world();
    w.annexa(&["collect", "--all"]).expect(0);
    let last = one(&w, "SELECT kind FROM ledger ORDER BY idx DESC LIMIT 1").await;
    assert_eq!(last, "run");
    sql(
        &w,
        &["DELETE FROM ledger WHERE idx = (SELECT MAX(idx) FROM ledger)"],
    )
    .await;
    detected(&w, "run-unledgered");
    let refused = w.annexa(&["collect", "--all"]).expect(4);
    assert!(
        refused.stderr.contains("ledger rows were deleted"),
        "{}",
        refused.stderr
    );
    w.annexa(&["checkpoint"]).expect(4);
}

/// Issue 15: a run removed from the database altogether (rows and leaf) leaves its manifest in
/// the store; verify says so instead of taking it for a run killed before its commit.
#[tokio::test]
async fn a_run_deleted_with_its_rows_is_caught_by_its_manifest() {
    let w = world();
    w.annexa(&["collect", "--all"]).expect(0);
    let run = one(&w, "SELECT id FROM runs ORDER BY ledger_index DESC LIMIT 1").await;
    sql(
        &w,
        &[
            &format!("DELETE FROM evidence WHERE run_id = '{run}'"),
            &format!("DELETE FROM findings WHERE run_id = '{run}'"),
            &format!("DELETE FROM ledger WHERE ref_id = '{run}'"),
            &format!("DELETE FROM runs WHERE id = '{run}'"),
        ],
    )
    .await;
    detected(&w, "manifest-unledgered");
}

/// A copy of the database as it stood, to "restore" later: a file for SQLite, a template
/// database for PostgreSQL. Returns the URL of the copy.
async fn snapshot(w: &World) -> String {
    match &w.database_url {
        None => {
            // A consistent copy, what is still in the WAL included.
            let copy = w.path("data/older.db");
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&database_url(w)).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "VACUUM INTO '{}'",
                copy.display()
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
            format!("sqlite://{}", copy.display())
        }
        Some(url) => {
            let mut u = url::Url::parse(url).unwrap();
            let name = u.path().trim_start_matches('/').to_string();
            let copy = format!("{name}_older");
            let mut admin = u.clone();
            admin.set_path("/postgres");
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(admin.as_str()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {copy} TEMPLATE {name}"
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
            u.set_path(&format!("/{copy}"));
            u.to_string()
        }
    }
}

#[tokio::test]
async fn a_database_restored_from_an_older_copy_is_caught_and_refused_until_acknowledged() {
    let w = World::new();
    w.config(CONFIG);
    w.write(
        "procedures/incident.md",
        &common::procedure("PROC-1", &common::reviewed_days_ago(10)),
    );
    w.annexa(&["collect", "--all"]).expect(0);
    w.annexa(&["checkpoint"]).expect(0);
    let older = snapshot(&w).await;
    w.annexa(&["collect", "--all"]).expect(0);
    w.annexa(&["checkpoint"]).expect(0);
    clean(&w);

    // The older copy: its ledger is shorter than the checkpoint the store published.
    let restored = [("ANNEXA_DATABASE__URL", older.as_str())];
    let out = w.annexa_env(&["verify", "--json"], &restored);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ledger-rollback"), "{}", out.stdout);
    // It refuses to append, and says why.
    let refused = w.annexa_env(&["collect", "--all"], &restored).expect(4);
    assert!(
        refused.stderr.contains("restored from an older copy"),
        "{}",
        refused.stderr
    );
    // Restoring the newest database puts everything right.
    clean(&w);

    // An operator who accepts the loss says so; it is recorded, and annexa goes on.
    let ack = w.annexa_env(
        &[
            "checkpoint",
            "--acknowledge-rollback",
            "restored after disk failure; INC-9",
        ],
        &restored,
    );
    assert_eq!(ack.code, 0, "{}", ack.stderr);
    w.annexa_env(&["collect", "--all"], &restored).expect(0);
    let out = w.annexa_env(&["verify", "--json"], &restored);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("rollback an operator acknowledged"),
        "{}",
        out.stdout
    );
}

/// Issue 15: an attacker with only the database erased checkpointed history by inserting a
/// `rollback-acknowledged` audit event with a correctly hashed leaf; verify passed and annexa
/// signed over the shortened history. An acknowledgement now counts only as a signed note in
/// the store.
#[tokio::test]
async fn a_forged_acknowledgement_in_the_database_counts_for_nothing() {
    let w = world();
    let older = snapshot(&w).await;
    w.annexa(&["collect", "--all"]).expect(0);
    w.annexa(&["checkpoint"]).expect(0);
    let restored = [("ANNEXA_DATABASE__URL", older.as_str())];
    {
        let db = annexa::db::Db::connect(&annexa::base::Secret::new(older.clone()))
            .await
            .unwrap();
        let size = db.leaves().await.unwrap().len();
        annexa::ledger::audit::record(
            &db,
            annexa::ledger::audit::Actor::Operator,
            annexa::ledger::audit::AuditAction::RollbackAcknowledged,
            "forged",
            serde_json::json!({"db_size": size, "published_size": 1_000_000, "reason": "forged"}),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    }
    let out = w.annexa_env(&["verify", "--json"], &restored);
    assert_eq!(out.code, 4, "{}", out.stdout);
    assert!(
        !out.stdout.contains("acknowledged"),
        "the forged row acknowledged something: {}",
        out.stdout
    );
    w.annexa_env(&["collect", "--all"], &restored).expect(4);
    w.annexa_env(&["checkpoint"], &restored).expect(4);
}

/// Writes a note into the store as if published on `date`.
fn publish(w: &World, date: &str, size: u64, note: &str) -> PathBuf {
    let path = w.object_file(&format!("ledger/checkpoints/{date}/{size}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, note).unwrap();
    path
}

/// Every published checkpoint: (its store key, tree size, note), smallest first.
fn checkpoints(w: &World) -> Vec<(String, u64, String)> {
    let mut found = Vec::new();
    let root = w.object_file("ledger/checkpoints");
    for day in std::fs::read_dir(&root).unwrap() {
        let day = day.unwrap();
        for f in std::fs::read_dir(day.path()).unwrap() {
            let f = f.unwrap();
            let note = std::fs::read_to_string(f.path()).unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            let size = name.split('-').next().unwrap().parse().unwrap();
            let key = format!(
                "ledger/checkpoints/{}/{name}",
                day.file_name().to_string_lossy()
            );
            found.push((key, size, note));
        }
    }
    found.sort_by_key(|(_, size, _)| *size);
    found
}

fn tomorrow() -> String {
    (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn forged_replayed_and_conflicting_checkpoints_are_caught() {
    let w = world();
    let found = checkpoints(&w);
    assert_eq!(found.len(), 2, "one checkpoint per collection");
    let (_, old_size, old_note) = found[0].clone();
    let (_, size, note) = found[1].clone();
    let body = note[..note.find("\n\n").unwrap() + 1].to_string();

    // Signed by a key annexa never recorded.
    let stranger = NoteKey::generate("annexa/example-ltd").unwrap();
    let path = publish(&w, &tomorrow(), size, &stranger.sign_note(&body));
    detected(&w, "checkpoint-unknown-key");
    std::fs::remove_file(path).unwrap();
    clean(&w);

    // An old checkpoint replayed as the newest.
    let path = publish(&w, &tomorrow(), old_size, &old_note);
    detected(&w, "checkpoint-replayed");
    std::fs::remove_file(path).unwrap();
    clean(&w);

    // Two conflicting checkpoints for one size, both by the real key.
    let key = NoteKey::read(&w.path("keys/annexa.key")).unwrap();
    let mut lines: Vec<&str> = body.lines().collect();
    let forged_root = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string();
    lines[2] = &forged_root;
    let path = publish(
        &w,
        &tomorrow(),
        size,
        &key.sign_note(&(lines.join("\n") + "\n")),
    );
    detected(&w, "checkpoint-conflict");
    detected(&w, "checkpoint-inconsistent");
    std::fs::remove_file(path).unwrap();
    clean(&w);

    // A published checkpoint edited in place.
    let (key, _, _) = found[1].clone();
    let path = w.object_file(&key);
    std::fs::write(
        &path,
        note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1),
    )
    .unwrap();
    detected(&w, "checkpoint-altered");
    std::fs::write(&path, &note).unwrap();
    clean(&w);
}

#[test]
fn a_revoked_key_never_signs_and_what_it_signs_after_revocation_is_caught() {
    let w = world();
    let key = NoteKey::read(&w.path("keys/annexa.key")).unwrap();
    let id = hex::encode(key.key_id());
    w.annexa(&["keys", "revoke", &id]).expect(0);
    // Its earlier checkpoints stay valid.
    clean(&w);
    // annexa refuses to sign with it.
    w.annexa(&["collect", "--all"]).expect(0);
    let refused = w.annexa(&["checkpoint"]).expect(1);
    assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
    // A checkpoint someone signs with it anyway, after the revocation, is caught.
    let (_, size, note) = checkpoints(&w).pop().unwrap();
    let body = &note[..note.find("\n\n").unwrap() + 1];
    let path = publish(&w, &tomorrow(), size, &key.sign_note(body));
    detected(&w, "checkpoint-signed-by-revoked-key");
    std::fs::remove_file(path).unwrap();
    clean(&w);
    // A new key takes over.
    w.annexa(&["keys", "generate"]).expect(0);
    w.annexa(&["checkpoint"]).expect(0);
    clean(&w);
    let list = w.annexa(&["keys", "list", "--json"]).json();
    let states: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["revoked", "active"]);
}

#[test]
fn rotation_publishes_one_checkpoint_signed_by_both_keys() {
    let w = world();
    let old = NoteKey::read(&w.path("keys/annexa.key")).unwrap();
    w.annexa(&["keys", "rotate"]).expect(0);
    let new = NoteKey::read(&w.path("keys/annexa.key")).unwrap();
    assert_ne!(old.key_id(), new.key_id());
    let (_, _, note) = checkpoints(&w).pop().unwrap();
    let parsed = annexa::ledger::note::SignedNote::parse(&note).unwrap();
    let verifiers = [old.verifier(), new.verifier()];
    let both = parsed.verified_by(&verifiers).unwrap();
    assert_eq!(both.len(), 2, "{note}");
    clean(&w);
    // After rotation only the new key signs.
    w.annexa(&["collect", "--all"]).expect(0);
    w.annexa(&["checkpoint"]).expect(0);
    let (_, _, note) = checkpoints(&w).pop().unwrap();
    let parsed = annexa::ledger::note::SignedNote::parse(&note).unwrap();
    assert_eq!(parsed.signatures.len(), 1);
    assert_eq!(parsed.verified_by(&[new.verifier()]).unwrap().len(), 1);
    clean(&w);
}

#[test]
fn verify_checks_the_trusted_checkpoint_is_extended() {
    let w = world();
    let (_, _, first) = checkpoints(&w).remove(0);
    w.write("trusted", &first);
    w.annexa(&["verify", "--trusted", w.path("trusted").to_str().unwrap()])
        .expect(0);
    // A trusted checkpoint the ledger does not extend (another history).
    let key = NoteKey::read(&w.path("keys/annexa.key")).unwrap();
    let mut lines: Vec<String> = first.lines().take(3).map(String::from).collect();
    lines[2] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    w.write("other", &key.sign_note(&(lines.join("\n") + "\n")));
    let out = w.annexa(&[
        "verify",
        "--json",
        "--trusted",
        w.path("other").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 4);
    assert!(
        out.stdout.contains("checkpoint-inconsistent")
            && out.stdout.contains("the consistency proof from it fails"),
        "checked by a consistency proof: {}",
        out.stdout
    );
}

#[test]
fn an_auditor_verifies_a_report_bundle_offline_with_only_the_key_file() {
    let w = world();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let report = w
        .annexa(&["report", "--from", &today, "--to", &today, "--json"])
        .json();
    let dir = PathBuf::from(report["dir"].as_str().unwrap());
    w.annexa(&[
        "keys",
        "export",
        w.path("annexa-keys.txt").to_str().unwrap(),
    ])
    .expect(0);
    // No config, no database, no store: only the folder and the key file.
    let auditor = World::with_backend(Backend::Local);
    let keys = w.path("annexa-keys.txt");
    let verify = |dir: &PathBuf, keys: &PathBuf| -> common::Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
            .current_dir(auditor.dir.path())
            .env_remove("ANNEXA_CONFIG")
            .args(["verify", "--json", "--bundle"])
            .arg(dir)
            .arg("--keys")
            .arg(keys)
            .output()
            .unwrap()
            .into()
    };
    let ok = verify(&dir, &keys);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert_eq!(ok.json()["objects_checked"], 11);

    // A file changed after signing.
    let html = dir.join("report.html");
    let original = std::fs::read(&html).unwrap();
    std::fs::write(&html, [&original[..], b"<!-- edited -->"].concat()).unwrap();
    let out = verify(&dir, &keys);
    assert_eq!(out.code, 4);
    assert!(out.stdout.contains("bundle-file-altered"), "{}", out.stdout);
    std::fs::write(&html, &original).unwrap();
    // The manifest changed (a file's hash replaced to match an edit).
    let manifest = dir.join("manifest.json");
    let original_manifest = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        original_manifest.replacen("\"size\":", "\"size\": ", 1),
    )
    .unwrap();
    let out = verify(&dir, &keys);
    assert!(
        out.stdout.contains("bundle-manifest-altered"),
        "{}",
        out.stdout
    );
    std::fs::write(&manifest, &original_manifest).unwrap();
    // Another organization's key.
    let stranger = NoteKey::generate("annexa/example-ltd").unwrap();
    auditor.write("stranger.txt", &stranger.verifier_text());
    let out = verify(&dir, &auditor.path("stranger.txt"));
    assert_eq!(out.code, 4);
    assert!(out.stdout.contains("bundle-unknown-key"), "{}", out.stdout);
    assert_eq!(verify(&dir, &keys).code, 0);
}

/// A tiny deterministic generator (xorshift64*), so a failure names the seed that found it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test]
async fn no_random_mutation_of_stored_bytes_or_rows_passes_verify() {
    let seed: u64 = std::env::var("ANNEXA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64 | 1);
    println!("seed {seed} (ANNEXA_TEST_SEED={seed} repeats this run)");
    let mut rng = Rng(seed);
    let w = world();
    // Everything annexa stored: objects, manifests, checkpoints.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&database_url(&w)).await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    for q in [
        "SELECT DISTINCT object_key FROM evidence",
        "SELECT manifest_key FROM runs WHERE manifest_key IS NOT NULL",
        "SELECT object_key FROM checkpoints",
    ] {
        for r in sqlx::query(q).fetch_all(&pool).await.unwrap() {
            keys.push(r.try_get(0).unwrap());
        }
    }
    let ids: Vec<i64> = sqlx::query("SELECT id FROM evidence ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    pool.close().await;

    for round in 0..12 {
        let what = rng.below(5);
        match what {
            0 | 1 => {
                let key = &keys[rng.below(keys.len())];
                let path = w.object_file(key);
                let original = std::fs::read(&path).unwrap();
                let mut changed = original.clone();
                if what == 0 {
                    let bit = rng.below(changed.len() * 8);
                    changed[bit / 8] ^= 1 << (bit % 8);
                } else {
                    changed.truncate(rng.below(changed.len()));
                }
                std::fs::write(&path, &changed).unwrap();
                let out = w.annexa(&["verify", "--json"]);
                assert_eq!(
                    out.code, 4,
                    "seed {seed}, round {round}: {key} mutated, verify passed"
                );
                std::fs::write(&path, &original).unwrap();
            }
            4 => {
                // A ledger row deleted (the last one included), then put back.
                let size: i64 = one(&w, "SELECT CAST(COUNT(*) AS TEXT) FROM ledger")
                    .await
                    .parse()
                    .unwrap();
                let idx = rng.below(size as usize);
                let row = one(
                    &w,
                    &format!(
                        "SELECT leaf_hash || ' ' || kind || ' ' || ref_id || ' ' || created_at FROM ledger WHERE idx = {idx}"
                    ),
                )
                .await;
                let f: Vec<&str> = row.split(' ').collect();
                sql(&w, &[&format!("DELETE FROM ledger WHERE idx = {idx}")]).await;
                let out = w.annexa(&["verify", "--json"]);
                assert_eq!(
                    out.code, 4,
                    "seed {seed}, round {round}: ledger[{idx}] of {size} deleted, verify passed"
                );
                sql(
                    &w,
                    &[&format!(
                        "INSERT INTO ledger (idx, leaf_hash, kind, ref_id, created_at) VALUES ({idx}, '{}', '{}', '{}', '{}')",
                        f[0], f[1], f[2], f[3]
                    )],
                )
                .await;
            }
            _ => {
                let id = ids[rng.below(ids.len())];
                let (column, value) = if what == 2 {
                    ("sha256", format!("'{:064x}'", rng.next()))
                } else {
                    ("size", (rng.next() % 1_000_000 + 1_000_001).to_string())
                };
                let original = one(
                    &w,
                    &format!("SELECT CAST({column} AS TEXT) FROM evidence WHERE id = {id}"),
                )
                .await;
                sql(
                    &w,
                    &[&format!(
                        "UPDATE evidence SET {column} = {value} WHERE id = {id}"
                    )],
                )
                .await;
                let out = w.annexa(&["verify", "--json"]);
                assert_eq!(
                    out.code, 4,
                    "seed {seed}, round {round}: evidence {id}.{column} mutated, verify passed"
                );
                let restore = if column == "size" {
                    original
                } else {
                    format!("'{original}'")
                };
                sql(
                    &w,
                    &[&format!(
                        "UPDATE evidence SET {column} = {restore} WHERE id = {id}"
                    )],
                )
                .await;
            }
        }
    }
    clean(&w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_published_to_a_folder_and_to_a_url() {
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex(
            r"^/checkpoints/\d{4}-\d{2}-\d{2}/\d+-[0-9a-f]{8}$",
        ))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    for publish in [
        format!("{}/checkpoints", server.uri()),
        "published".to_string(),
    ] {
        let w = World::new();
        // Checkpoints only on request here, so `annexa checkpoint` is the one that publishes.
        w.config(&format!(
            "{CONFIG}\n[outbound]\nallow_insecure_urls = true\n\n[ledger]\npublish = \"{publish}\"\ncheckpoint_every_run = false\n"
        ));
        w.write(
            "procedures/incident.md",
            &common::procedure("PROC-1", &common::reviewed_days_ago(10)),
        );
        w.annexa(&["collect", "--all"]).expect(0);
        let out = w.annexa(&["checkpoint", "--json"]).expect(0).json();
        let note = out["note"].as_str().unwrap().to_string();
        let rel = out["object_key"]
            .as_str()
            .unwrap()
            .strip_prefix("ledger/checkpoints/")
            .unwrap()
            .to_string();
        let published = out["published"].as_str().unwrap();
        if publish.starts_with("http") {
            assert_eq!(published, format!("{publish}/{rel}"));
            let requests = server.received_requests().await.unwrap();
            assert_eq!(requests.len(), 1);
            assert_eq!(String::from_utf8_lossy(&requests[0].body), note);
        } else {
            let path = w.path("published").join(&rel);
            assert_eq!(published, path.display().to_string());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), note);
        }
    }
}

#[test]
fn a_failed_verify_is_an_integrity_violation_on_a528_until_one_passes() {
    let w = world();
    let a528 = |w: &World| {
        let doc = w.annexa(&["status", "--json"]).json();
        common::control(&doc, "A.5.28").clone()
    };
    assert_eq!(a528(&w)["status"], "satisfied");
    let key = evidence_key(&w);
    with_file_changed(
        &w,
        &key,
        |b| b[0] ^= 0x80,
        || {
            detected(&w, "object-altered");
            let control = a528(&w);
            assert_eq!(control["status"], "not_satisfied", "{control}");
            let finding = &control["findings"][0];
            assert_eq!(finding["code"], "integrity-violation");
            assert!(
                finding["message"]
                    .as_str()
                    .unwrap()
                    .contains("object-altered")
            );
        },
    );
    // with_file_changed ended with a passing verify.
    assert_eq!(a528(&w)["status"], "satisfied");
}

/// Issue 15: what was recorded after the newest checkpoint (up to a day) could be rewritten
/// without verify noticing, even with --trusted. A checkpoint after every run leaves no tail:
/// the last run's manifest and leaf rewritten to agree with each other are still caught.
#[tokio::test]
async fn a_checkpoint_after_every_run_leaves_no_rewritable_tail() {
    use sha2::Digest;
    let w = world();
    w.write(
        "procedures/round.md",
        &common::procedure("R-9", &common::reviewed_days_ago(1)),
    );
    w.annexa(&["collect", "--all"]).expect(0);
    let size = one(&w, "SELECT CAST(COUNT(*) AS TEXT) FROM ledger").await;
    let signed = one(&w, "SELECT CAST(MAX(tree_size) AS TEXT) FROM checkpoints").await;
    assert_eq!(signed, size, "the run is covered by a checkpoint at once");
    // Rewrite the last run: its manifest, its recorded hash and its leaf, all in agreement.
    let (id, key) = {
        let row = one(
            &w,
            "SELECT id || ' ' || manifest_key FROM runs ORDER BY ledger_index DESC LIMIT 1",
        )
        .await;
        let (id, key) = row.split_once(' ').unwrap();
        (id.to_string(), key.to_string())
    };
    let path = w.object_file(&key);
    let forged =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"succeeded\"", "\"succeeded\" ", 1);
    std::fs::write(&path, &forged).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(forged.as_bytes()));
    let leaf = hex::encode(annexa::ledger::leaf_hash(forged.as_bytes()));
    sql(
        &w,
        &[
            &format!("UPDATE runs SET manifest_sha256 = '{sha}' WHERE id = '{id}'"),
            &format!("UPDATE ledger SET leaf_hash = '{leaf}' WHERE ref_id = '{id}'"),
        ],
    )
    .await;
    detected(&w, "checkpoint-inconsistent");
}

/// Issue 23: the time `days` after the start of a simulated history, RFC 3339.
fn day(days: i64) -> String {
    let start = chrono::DateTime::parse_from_rfc3339("2026-06-01T01:00:00Z").unwrap();
    (start + chrono::Duration::days(days)).to_rfc3339()
}

/// Every object key in the store (walking its folder, as an intruder with disk access would).
fn stored_object_keys(w: &World) -> Vec<String> {
    let root = w.object_file("objects/sha256");
    let mut keys = Vec::new();
    for prefix in std::fs::read_dir(&root).unwrap() {
        let prefix = prefix.unwrap();
        for file in std::fs::read_dir(prefix.path()).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().into_owned();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                keys.push(format!("objects/sha256/{}/{name}", &name[..2]));
            }
        }
    }
    keys.sort();
    keys
}

fn findings_of(doc: &serde_json::Value, control: &str) -> Vec<(String, String)> {
    common::control(doc, control)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Issue 23: daily rolling scrubs re-hash a slice of the store each, recording what they
/// covered; an object tampered with is found on the day the sweep reaches it, within
/// `full_every`, and not before.
#[test]
fn a_rolling_scrub_finds_a_tampered_object_on_the_day_its_slice_comes_round() {
    let w = World::new();
    w.config(CONFIG);
    for i in 0..40 {
        w.write(
            &format!("procedures/p{i}.md"),
            &common::procedure(&format!("P-{i}"), &common::reviewed_days_ago(3)),
        );
    }
    // Collected an hour before the first verify: not new to the scrubs after it.
    w.annexa_at(&day(0).replace("T01:", "T00:"), &["collect", "--all"])
        .expect(0);
    let first = w.annexa_at(&day(0), &["verify", "--rolling", "--json"]);
    assert_eq!(first.code, 0, "{}", first.stdout);
    let first = first.json();
    assert_eq!(
        first["coverage"]["scope"], "full",
        "the first scrub is full"
    );
    let total = first["objects_in_store"].as_u64().unwrap();
    assert_eq!(first["objects_checked"].as_u64(), Some(total));

    // The object furthest round the ring from the cursor (which starts at 0).
    let key = stored_object_keys(&w)
        .into_iter()
        .max_by_key(|k| annexa::ledger::scrub::position(k))
        .unwrap();
    let position = annexa::ledger::scrub::position(&key).unwrap() as f64 / 2f64.powi(64);
    // The cursor sweeps the ring in 0.9 × 30 days = 27 days, a 27th a day.
    let due = (position * 27.0).ceil() as i64;
    assert!((1..=27).contains(&due));
    let path = w.object_file(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    // A document added before the first rolling scrub: its objects are new, wherever they lie.
    let before = stored_object_keys(&w);
    w.write(
        "procedures/added.md",
        &common::procedure("P-ADDED", &common::reviewed_days_ago(1)),
    );
    w.annexa_at(&day(1).replace("T01:", "T00:"), &["collect", "--all"])
        .expect(0);
    let after = stored_object_keys(&w);

    let mut cursor = first["coverage"]["cursor"].as_str().unwrap().to_string();
    let mut rehashed = 0;
    for d in 1..=due {
        let out = w.annexa_at(&day(d), &["verify", "--rolling", "--json"]);
        if d == 1 {
            let c = &out.json()["coverage"];
            let hex = |k: &str| u64::from_str_radix(c[k].as_str().unwrap(), 16).unwrap();
            let (from, to) = (hex("from"), hex("to"));
            let expected = after
                .iter()
                .filter(|k| {
                    let p = annexa::ledger::scrub::position(k).unwrap();
                    !before.contains(k) || (from..to).contains(&p)
                })
                .count();
            assert!(after.len() > before.len());
            assert_eq!(
                out.json()["objects_checked"].as_u64(),
                Some(expected as u64)
            );
        }
        let report = out.json();
        let coverage = &report["coverage"];
        assert_eq!(coverage["scope"], "rolling", "day {d}: {coverage}");
        assert_eq!(coverage["from"].as_str(), Some(cursor.as_str()), "day {d}");
        cursor = coverage["to"].as_str().unwrap().to_string();
        rehashed += report["objects_checked"].as_u64().unwrap();
        let altered: Vec<&str> = report["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] == "object-altered")
            .map(|v| v["location"].as_str().unwrap())
            .collect();
        if d < due {
            assert_eq!(
                out.code, 0,
                "day {d} of {due}: not in the slice yet\n{}",
                out.stdout
            );
        } else {
            assert_eq!(
                out.code, 4,
                "day {d}: the slice holds {key}\n{}",
                out.stdout
            );
            assert_eq!(altered, vec![key.as_str()]);
        }
    }
    // Each object about once over the days swept, not once a day.
    assert!(
        rehashed <= total * due as u64 / 27 + 2 * due as u64 + total / 4,
        "{rehashed} re-hashes of {total} objects in {due} days"
    );
    let status = w.annexa_at(&day(due), &["status", "--json"]).json();
    let integrity = &status["integrity"];
    assert_eq!(integrity["scope"], "rolling", "{integrity}");
    assert_eq!(integrity["violations"], 1);
    assert_eq!(integrity["kinds"], serde_json::json!(["object-altered"]));
    let passed = chrono::DateTime::parse_from_rfc3339(&day(due - 1)).unwrap();
    assert_eq!(
        integrity["last_success"],
        passed
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(
        integrity["oldest_rehash"], "2026-06-01T01:00:00Z",
        "{integrity}"
    );
    std::fs::write(&path, {
        bytes[0] ^= 0x01;
        &bytes
    })
    .unwrap();
    clean(&w);
}

/// Issue 23: stored evidence not re-hashed within `full_every` is a `scrub-overdue` finding
/// on A.5.28, whether no verify ever ran or the last one is too old; a scrub clears it.
#[test]
fn evidence_not_rehashed_within_full_every_is_scrub_overdue_on_a528() {
    let w = World::new();
    w.config(CONFIG);
    w.write(
        "procedures/incident.md",
        &common::procedure("PROC-1", &common::reviewed_days_ago(10)),
    );
    w.annexa_at(&day(0), &["collect", "--all"]).expect(0);
    let overdue = |at: &str| -> Vec<String> {
        findings_of(&w.annexa_at(at, &["status", "--json"]).json(), "A.5.28")
            .into_iter()
            .filter(|(code, _)| code == "scrub-overdue")
            .map(|(_, message)| message)
            .collect()
    };
    assert!(overdue(&day(29)).is_empty(), "younger than full_every");
    let never = overdue(&day(40));
    assert_eq!(never.len(), 1, "{never:?}");
    assert!(never[0].contains("never been re-hashed"), "{}", never[0]);

    w.annexa_at(&day(1), &["verify"]).expect(0);
    assert!(overdue(&day(31)).is_empty(), "re-hashed 30 days before");
    let late = overdue(&day(40));
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(
        late[0].contains("last re-hashed on 2026-06-02 01:00 UTC"),
        "{}",
        late[0]
    );

    // A rolling scrub after a long pause re-hashes everything.
    let scrub = w
        .annexa_at(&day(40), &["verify", "--rolling", "--json"])
        .json();
    assert_eq!(scrub["coverage"]["scope"], "full");
    assert!(overdue(&day(40)).is_empty());
    let status = w.annexa_at(&day(40), &["status"]);
    assert!(
        status
            .stdout
            .contains("Integrity: last verify 2026-07-11 01:00 UTC (full"),
        "{}",
        status.stdout
    );
}

/// A world whose store is an s3s-fs server whatever the backend (SQLite on the local pass).
fn s3_world() -> World {
    let mut w = World::new();
    if w.s3.is_none() {
        let s3 = common::S3Server::start();
        w.env.extend([
            ("ANNEXA_STORE__KIND".into(), "s3".into()),
            ("ANNEXA_STORE__ENDPOINT".into(), s3.endpoint.clone()),
            ("ANNEXA_STORE__BUCKET".into(), s3.bucket.clone()),
        ]);
        w.s3 = Some(s3);
    }
    w
}

/// Issue 23: a verify on S3 rides out a brief outage (every connection dropped, new ones
/// refused for two seconds) with retries, and names an object that stays unreadable as an
/// `object-unreadable` violation instead of failing the whole verify.
#[test]
fn s3_verify_rides_out_an_outage_and_names_an_object_that_stays_unreadable() {
    use common::proxy::{Faults, Proxy};
    let w = s3_world();
    w.config(CONFIG);
    for i in 0..20 {
        w.write(
            &format!("procedures/p{i}.md"),
            &common::procedure(&format!("P-{i}"), &common::reviewed_days_ago(3)),
        );
    }
    w.annexa(&["collect", "--all"]).expect(0);
    let s3 = w.s3.as_ref().unwrap();
    let upstream: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();

    let outage = Proxy::start(
        common::free_port(),
        upstream,
        Faults {
            outage: Some(("/objects/sha256/".into(), std::time::Duration::from_secs(2))),
            ..Faults::default()
        },
    );
    let endpoint = outage.endpoint();
    let env = [("ANNEXA_STORE__ENDPOINT", endpoint.as_str())];
    let out = w.annexa_env(&["verify", "--json"], &env);
    assert!(
        outage
            .outage_began
            .load(std::sync::atomic::Ordering::SeqCst)
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    assert!(
        report["objects_checked"].as_u64().unwrap() > 20,
        "{}",
        out.stdout
    );
    assert_eq!(report["objects_checked"], report["objects_in_store"]);

    let key = stored_object_keys(&w)[0].clone();
    let unanswered = Proxy::start(
        common::free_port(),
        upstream,
        Faults {
            unanswered: Some(key.clone()),
            ..Faults::default()
        },
    );
    let endpoint = unanswered.endpoint();
    let env = [
        ("ANNEXA_STORE__ENDPOINT", endpoint.as_str()),
        ("ANNEXA_STORE__RETRY_ATTEMPTS", "2"),
    ];
    let out = w.annexa_env(&["verify", "--json"], &env);
    assert_eq!(out.code, 4, "{}\n{}", out.stdout, out.stderr);
    let violations = out.json()["violations"].as_array().unwrap().clone();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0]["kind"], "object-unreadable");
    assert_eq!(violations[0]["location"], key.as_str());

    // A store that answers the listing and then no object at all has gone away: exit 1 naming
    // it, not a violation per object.
    let gone = Proxy::start(
        common::free_port(),
        upstream,
        Faults {
            unanswered: Some("/objects/sha256/".into()),
            ..Faults::default()
        },
    );
    let endpoint = gone.endpoint();
    let env = [
        ("ANNEXA_STORE__ENDPOINT", endpoint.as_str()),
        ("ANNEXA_STORE__RETRY_ATTEMPTS", "2"),
    ];
    let out = w.annexa_env(&["verify"], &env).expect(1);
    assert!(
        out.stderr.contains("objects in a row could not be read") && out.stderr.contains(&endpoint),
        "{}",
        out.stderr
    );
}

/// Issue 21 (proofs): `annexa prove` gives each run's RFC 6962 audit path in a signed checkpoint
/// and the consistency proof from an older checkpoint an auditor kept; a dozen lines of Python
/// (the standard library only, the RFC 9162 algorithms) accept them against the manifests in
/// the store, and reject each altered copy. Bad requests are refused, and a trusted checkpoint
/// the ledger does not extend is an integrity violation.
#[tokio::test]
async fn an_auditor_checks_run_and_consistency_proofs_without_annexa() {
    let w = world();
    let old = w.path("old-checkpoint.txt");
    let note = w.annexa(&["--json", "checkpoint"]).expect(0).json()["note"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&old, &note).unwrap();
    w.write(
        "procedures/later.md",
        &common::procedure("R-later", &common::reviewed_days_ago(1)),
    );
    w.annexa(&["collect", "--all"]).expect(0);
    // The first collection (before the trusted checkpoint) and the newest (after it).
    let first = one(&w, "SELECT id FROM runs ORDER BY started_at LIMIT 1").await;
    let newest = one(&w, "SELECT id FROM runs ORDER BY started_at DESC LIMIT 1").await;
    assert_ne!(first, newest);
    let proof = w.path("proof.json");
    w.annexa(&[
        "prove",
        &first,
        &newest,
        "--since",
        old.to_str().unwrap(),
        "--out",
        proof.to_str().unwrap(),
    ])
    .expect(0);

    // The auditor's check, with the proof, the trusted checkpoint and the store's manifests.
    let check = "import base64, hashlib, json, sys\n\
         proof, old, store = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]\n\
         H = lambda b: hashlib.sha256(b).digest()\n\
         node = lambda l, r: H(b'\\x01' + l + r)\n\
         x = bytes.fromhex\n\
         origin, size, root = proof['checkpoint'].split('\\n')[:3]\n\
         assert int(size) == proof['tree_size'] and base64.b64decode(root) == x(proof['root_hash']), 'checkpoint'\n\
         def included(i, n, leaf, path, root):\n\
         \x20   if i >= n: return False\n\
         \x20   f, s, r = i, n - 1, leaf\n\
         \x20   for p in path:\n\
         \x20       if s == 0: return False\n\
         \x20       if f & 1 or f == s:\n\
         \x20           r = node(p, r)\n\
         \x20           while not f & 1 and f: f, s = f >> 1, s >> 1\n\
         \x20       else: r = node(r, p)\n\
         \x20       f, s = f >> 1, s >> 1\n\
         \x20   return s == 0 and r == root\n\
         def consistent(m, n, a, b, proof):\n\
         \x20   if m == n: return not proof and a == b\n\
         \x20   if not proof: return False\n\
         \x20   path = ([a] if m & (m - 1) == 0 else []) + proof\n\
         \x20   f, s = m - 1, n - 1\n\
         \x20   while f & 1: f, s = f >> 1, s >> 1\n\
         \x20   fr = sr = path[0]\n\
         \x20   for c in path[1:]:\n\
         \x20       if s == 0: return False\n\
         \x20       if f & 1 or f == s:\n\
         \x20           fr, sr = node(c, fr), node(c, sr)\n\
         \x20           while not f & 1 and f: f, s = f >> 1, s >> 1\n\
         \x20       else: sr = node(sr, c)\n\
         \x20       f, s = f >> 1, s >> 1\n\
         \x20   return fr == a and sr == b and s == 0\n\
         for run in proof['runs']:\n\
         \x20   leaf = H(b'\\x00' + open(store + '/' + run['manifest_key'], 'rb').read())\n\
         \x20   assert leaf.hex() == run['leaf_hash'], run['run_id'] + ': not its manifest'\n\
         \x20   assert included(run['leaf_index'], proof['tree_size'], leaf, [x(p) for p in run['audit_path']], x(proof['root_hash'])), run['run_id']\n\
         c = proof['consistency']\n\
         o_size, o_root = old.split('\\n')[1:3]\n\
         assert c['tree_size'] == int(o_size) and x(c['root_hash']) == base64.b64decode(o_root), 'not the trusted checkpoint'\n\
         assert consistent(c['tree_size'], proof['tree_size'], x(c['root_hash']), x(proof['root_hash']), [x(p) for p in c['proof']]), 'inconsistent'\n\
         print(len(proof['runs']), len(c['proof']))";
    let store = w.object_file("");
    let python = |proof: &std::path::Path| {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(check)
            .arg(proof)
            .arg(&old)
            .arg(&store)
            .output()
            .expect("python3 runs")
    };
    let out = python(&proof);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(counts.starts_with("2 "), "two runs proved: {counts}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    assert!(
        !doc["runs"][0]["audit_path"].as_array().unwrap().is_empty()
            && !doc["consistency"]["proof"].as_array().unwrap().is_empty(),
        "a proof with something to check: {doc}"
    );

    // Each altered copy fails the same check.
    fn flip(h: &serde_json::Value) -> serde_json::Value {
        let mut b = hex::decode(h.as_str().unwrap()).unwrap();
        b[0] ^= 1;
        serde_json::Value::from(hex::encode(b))
    }
    type Tamper = fn(&mut serde_json::Value);
    let cases: Vec<(&str, Tamper)> = vec![
        ("a path hash", |d| {
            d["runs"][0]["audit_path"][0] = flip(&d["runs"][0]["audit_path"][0])
        }),
        ("another leaf index", |d| {
            d["runs"][1]["leaf_index"] = serde_json::json!(0)
        }),
        ("another run's manifest", |d| {
            d["runs"][0]["manifest_key"] = d["runs"][1]["manifest_key"].clone()
        }),
        ("a consistency hash", |d| {
            d["consistency"]["proof"][0] = flip(&d["consistency"]["proof"][0])
        }),
        ("a root", |d| d["root_hash"] = flip(&d["root_hash"])),
    ];
    for (what, tamper) in cases {
        let mut copy = doc.clone();
        tamper(&mut copy);
        let path = w.path("tampered.json");
        std::fs::write(&path, serde_json::to_vec(&copy).unwrap()).unwrap();
        assert!(
            !python(&path).status.success(),
            "{what} altered, yet accepted: {copy}"
        );
    }

    // Bad requests are usage errors; a checkpoint of a tree the ledger does not extend is an
    // integrity violation.
    let run = w.annexa(&["prove", "no-such-run"]).expect(2);
    assert!(
        run.stderr.contains("no run has the id no-such-run"),
        "{}",
        run.stderr
    );
    let other = w.path("other-origin.txt");
    std::fs::write(&other, note.replacen("annexa/", "elsewhere/", 1)).unwrap();
    let run = w
        .annexa(&["prove", "--since", other.to_str().unwrap()])
        .expect(2);
    assert!(run.stderr.contains("not this one"), "{}", run.stderr);
    let lines: Vec<&str> = note.lines().collect();
    let forged = w.path("forged.txt");
    let root = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    std::fs::write(&forged, note.replacen(lines[2], &root, 1)).unwrap();
    let run = w
        .annexa(&["prove", "--since", forged.to_str().unwrap()])
        .expect(4);
    assert!(
        run.stderr
            .contains("does not extend the trusted checkpoint"),
        "{}",
        run.stderr
    );
}
