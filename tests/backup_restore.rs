//! backup-restore with real components: PostgreSQL dumps made by pg_dump and restored by
//! pg_restore/psql into scratch databases on a real server, SQLite files, archives, and backups
//! kept in an S3-compatible server.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use annexa_collectors::backup_restore::{BackupFacts, BackupRestore, BackupRestoreConfig};
use annexa_collectors::{CollectContext, Collector, FindingCode, SystemClock};

/// The admin URL `scripts/test` provides; drills read it from this variable.
const PG_ENV: &str = "ANNEXA_TEST_POSTGRES_URL";

fn admin() -> String {
    std::env::var(PG_ENV).unwrap_or_else(|_| {
        panic!(
            "{PG_ENV} must name a PostgreSQL admin URL; ./scripts/test starts a server and sets it"
        )
    })
}

fn db_url(name: &str) -> String {
    let mut u = url::Url::parse(&admin()).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// One PostgreSQL drill at a time: every drill sweeps every leftover scratch database of a
/// process that is gone, so a drill beside the leftover test would sweep its leftover first.
static PG_DRILLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A source database with 3 accounts; returns its name.
fn source_db() -> String {
    let name = format!("src_{}", uuid::Uuid::now_v7().simple());
    common::psql(&admin(), &format!("CREATE DATABASE {name}"));
    common::psql(
        &db_url(&name),
        "CREATE TABLE accounts (id int PRIMARY KEY, email text, created_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO accounts (id, email) VALUES (1, 'a@example.com'), (2, 'b@example.com'), (3, 'c@example.com');",
    );
    name
}

fn pg_dump(db: &str, format: &str, to: &Path) {
    let out = Command::new("pg_dump")
        .args([format, "-f"])
        .arg(to)
        .arg(db_url(db))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn collector(dir: &Path, extra: &str) -> BackupRestore {
    let text = format!(
        "path = \"{}\"\nmax_backup_age = \"1h\"\n[drill]\npostgres_url_env = \"{PG_ENV}\"\n{extra}",
        dir.display()
    );
    let config: BackupRestoreConfig = toml::from_str(&text).unwrap();
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    BackupRestore::new(config)
}

async fn collect(c: &BackupRestore) -> (BackupFacts, Vec<annexa_collectors::Finding>) {
    let scratch = tempfile::tempdir().unwrap();
    let ctx = CollectContext {
        clock: Arc::new(SystemClock),
        base_dir: scratch.path().to_path_buf(),
        scratch_dir: scratch.path().to_path_buf(),
        previous_facts: None,
        previous_run: None,
        heartbeats: None,
        objects: None,
        max_source_bytes: annexa_collectors::DEFAULT_MAX_SOURCE_BYTES,
        allow_insecure_urls: true,
        on_demand: true,
        rehearsal: false,
        items: annexa_collectors::KeptItems::shared(),
    };
    let facts = c.collect(&ctx).await.unwrap().facts.into_value().unwrap();
    let findings = c.check(&facts, annexa_collectors::AsOf::now(chrono::Utc::now()));
    (serde_json::from_value(facts).unwrap(), findings)
}

fn scratch_databases() -> Vec<String> {
    common::psql(
        &admin(),
        "SELECT datname FROM pg_database WHERE datname LIKE 'annexa_drill_%' ORDER BY 1",
    )
    .lines()
    .map(String::from)
    .collect()
}

const QUERIES: &str = "[[drill.queries]]\nsql = \"SELECT count(*) FROM accounts\"\nexpect = \"= 3\"\n[[drill.queries]]\nsql = \"SELECT max(created_at) FROM accounts\"\nwithin = \"26h\"\n";

#[tokio::test]
async fn custom_and_plain_postgres_dumps_restore_with_exact_row_counts() {
    let _one = PG_DRILLS.lock().await;
    let db = source_db();
    for (flag, file) in [("-Fc", "app.dump"), ("-Fp", "app.sql")] {
        let dir = tempfile::tempdir().unwrap();
        pg_dump(&db, flag, &dir.path().join(file));
        let (facts, findings) = collect(&collector(dir.path(), QUERIES)).await;
        let drill = facts.drill.as_ref().unwrap();
        assert!(drill.restored, "{file}: {:?} {:?}", drill.error, drill.log);
        assert_eq!(
            drill.format,
            if flag == "-Fc" {
                "postgres-custom"
            } else {
                "postgres-plain"
            }
        );
        assert_eq!(drill.queries[0].value.as_deref(), Some("3"));
        assert!(
            drill.queries.iter().all(|q| q.passed),
            "{:?}",
            drill.queries
        );
        assert!(
            drill.tools.iter().any(|t| t.contains("pg_restore")),
            "{:?}",
            drill.tools
        );
        assert!(drill.scratch.starts_with("annexa_drill_"));
        assert!(findings.is_empty(), "{file}: {findings:?}");
        assert_eq!(facts.backups[0].sha256, drill.backup_sha256);
        assert!(
            !serde_json::to_string(drill).unwrap().contains(":postgres@"),
            "no password in the report"
        );
        assert!(
            !scratch_databases().contains(&drill.scratch),
            "the scratch database is dropped"
        );
    }
}

#[tokio::test]
async fn a_truncated_dump_fails_the_restore_and_a_wrong_count_fails_verification() {
    let _one = PG_DRILLS.lock().await;
    let db = source_db();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("app.dump");
    pg_dump(&db, "-Fc", &dump);
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &bytes[..bytes.len() / 2]).unwrap();
    let (facts, findings) = collect(&collector(dir.path(), QUERIES)).await;
    assert!(
        findings
            .iter()
            .any(|f| f.code == FindingCode::RestoreFailed && f.subject == "app.dump"),
        "{findings:?}"
    );
    assert!(
        !scratch_databases().contains(&facts.drill.unwrap().scratch),
        "dropped after a failed restore too"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.code == FindingCode::RestoreDrillOverdue),
        "no drill has succeeded: {findings:?}"
    );

    std::fs::write(&dump, &bytes).unwrap();
    let (facts, findings) = collect(&collector(
        dir.path(),
        "[[drill.queries]]\nsql = \"SELECT count(*) FROM accounts\"\nexpect = \">= 10\"\n",
    ))
    .await;
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert!(
        findings
            .iter()
            .any(|f| f.code == FindingCode::RestoreVerificationFailed
                && f.message.contains("gave 3 where value >= 10"))
    );
    assert!(!scratch_databases().contains(&facts.drill.unwrap().scratch));
}

#[tokio::test]
async fn drills_never_drop_a_database_they_did_not_create_and_sweep_their_own_leftovers() {
    let _one = PG_DRILLS.lock().await;
    let db = source_db();
    // A leftover of a killed drill (prefix and mark), and a stranger with the prefix only.
    let leftover = format!("annexa_drill_left{}", uuid::Uuid::now_v7().simple());
    let stranger = format!("annexa_drill_stranger{}", uuid::Uuid::now_v7().simple());
    common::psql(&admin(), &format!("CREATE DATABASE {leftover}"));
    // Made by a process on this host that no longer runs.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    common::psql(
        &admin(),
        &format!(
            "COMMENT ON DATABASE {leftover} IS 'annexa restore drill; host={}; pid=999999999; started=2026-11-22T00:00:00+00:00'",
            host.trim()
        ),
    );
    common::psql(&admin(), &format!("CREATE DATABASE {stranger}"));
    let dir = tempfile::tempdir().unwrap();
    pg_dump(&db, "-Fc", &dir.path().join("app.dump"));
    let (facts, _) = collect(&collector(dir.path(), "")).await;
    let drill = facts.drill.unwrap();
    assert!(
        drill
            .log
            .iter()
            .any(|l| l.contains(&format!("removed leftover scratch database {leftover}"))),
        "{:?}",
        drill.log
    );
    let left = scratch_databases();
    assert!(
        left.contains(&stranger),
        "the unmarked database is untouched: {left:?}"
    );
    assert!(
        !left.contains(&leftover) && !left.contains(&drill.scratch),
        "{left:?}"
    );
    common::psql(&admin(), &format!("DROP DATABASE {stranger}"));
}

#[tokio::test]
async fn sqlite_backups_are_integrity_checked_and_corruption_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql("CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO accounts (email) VALUES ('a'), ('b'), ('c');")
            .execute(&mut conn)
            .await
            .unwrap();
        for i in 0..2000 {
            sqlx::query("INSERT INTO accounts (email) VALUES ($1)")
                .bind(format!("user{i}@example.com"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
    }
    let good = collector(
        dir.path(),
        "[[drill.queries]]\nsql = \"SELECT count(*) FROM accounts\"\nexpect = \"= 2003\"\n",
    );
    let (facts, findings) = collect(&good).await;
    assert!(findings.is_empty(), "{findings:?} {:?}", facts.drill);
    assert_eq!(facts.drill.unwrap().format, "sqlite");

    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[4096..12288] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (_, findings) = collect(&good).await;
    assert!(
        findings
            .iter()
            .any(|f| f.code == FindingCode::RestoreFailed),
        "{findings:?}"
    );
}

#[tokio::test]
async fn archives_are_extracted_listed_and_hashed_and_a_damaged_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("files.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("examples/quickstart/policies")
        .status()
        .unwrap();
    assert!(status.success());
    let (facts, findings) = collect(&collector(dir.path(), "")).await;
    assert!(findings.is_empty(), "{findings:?}");
    let drill = facts.drill.unwrap();
    assert!(
        drill
            .log
            .iter()
            .any(|l| l.contains("incident-management-procedure.md")),
        "{:?}",
        drill.log
    );
    let bytes = std::fs::read(&tgz).unwrap();
    std::fs::write(&tgz, &bytes[..bytes.len() - 40]).unwrap();
    let (_, findings) = collect(&collector(dir.path(), "")).await;
    assert!(
        findings
            .iter()
            .any(|f| f.code == FindingCode::RestoreFailed),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_zstd_tarball_is_extracted_and_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("files.tar.zst")).unwrap();
    let encoder = zstd::stream::write::Encoder::new(file, 3)
        .unwrap()
        .auto_finish();
    let mut tar = tar::Builder::new(encoder);
    tar.append_dir_all(
        "policies",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/policies"),
    )
    .unwrap();
    tar.into_inner().unwrap();
    let (facts, findings) = collect(&collector(dir.path(), "")).await;
    assert!(findings.is_empty(), "{findings:?}");
    let drill = facts.drill.unwrap();
    assert!(
        drill
            .log
            .iter()
            .any(|l| l.ends_with("policies/incident-response-runbook.md")),
        "{:?}",
        drill.log
    );
}

#[tokio::test]
async fn freshness_missing_stale_size_anomaly_and_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let plain = |extra: &str| {
        let config: BackupRestoreConfig = toml::from_str(&format!("path = \"{}\"\npattern = \"db-*.sql\"\nmax_backup_age = \"1h\"\ngrace = \"15m\"\n{extra}", dir.path().display())).unwrap();
        BackupRestore::new(config)
    };
    let (_, findings) = collect(&plain("")).await;
    assert_eq!(findings[0].code, FindingCode::BackupMissing);

    let now = std::time::SystemTime::now();
    for (i, size) in [1000usize, 1000, 1000, 100].iter().enumerate() {
        let p = dir.path().join(format!("db-{i}.sql"));
        std::fs::write(&p, "x".repeat(*size)).unwrap();
        let age = std::time::Duration::from_secs(3600 * (3 - i as u64) + 2 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(now - age)
            .unwrap();
    }
    std::fs::write(
        dir.path().join("db-3.sql.sha256"),
        format!("{}  db-3.sql\n", "0".repeat(64)),
    )
    .unwrap();
    let (facts, findings) = collect(&plain("")).await;
    assert_eq!(facts.backups.len(), 4, "the sidecar is not a backup");
    assert_eq!(facts.backups[0].name, "db-3.sql");
    assert_eq!(facts.backups[0].sha256_source.as_deref(), Some("sidecar"));
    assert_eq!(facts.backups[1].sha256_source.as_deref(), Some("computed"));
    let codes: Vec<FindingCode> = findings.iter().map(|f| f.code).collect();
    assert!(
        codes.contains(&FindingCode::BackupStale),
        "2 h old with 1 h + 15 min allowed: {codes:?}"
    );
    assert!(codes.contains(&FindingCode::BackupSizeAnomaly), "{codes:?}");

    // A drill checks the sidecar: this one does not match.
    let (_, findings) = collect(&plain("[drill]\n")).await;
    let failed = findings
        .iter()
        .find(|f| f.code == FindingCode::RestoreFailed)
        .unwrap();
    assert!(
        failed
            .message
            .contains("does not match its .sha256 sidecar"),
        "{}",
        failed.message
    );
}

#[test]
fn backups_in_an_s3_bucket_are_listed_and_drilled_through_the_binary() {
    let s3 = common::S3Server::start();
    let w = common::World::with_backend(common::Backend::Local);
    // An SQLite backup in the bucket, under a prefix.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/backups");
    let backup = std::fs::read_dir(&source)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".sqlite"))
        .unwrap();
    std::fs::create_dir_all(s3.data_dir.join(&s3.bucket).join("nightly")).unwrap();
    std::fs::copy(
        backup.path(),
        s3.data_dir
            .join(&s3.bucket)
            .join("nightly")
            .join(backup.file_name()),
    )
    .unwrap();
    w.config(&format!(
        "[[collector]]\nname = \"backups\"\nkind = \"backup-restore\"\nmax_backup_age = \"1h\"\n[collector.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\nprefix = \"nightly/\"\n[collector.drill]\n[[collector.drill.queries]]\nsql = \"SELECT count(*) FROM accounts\"\nexpect = \">= 1\"\n",
        s3.endpoint, s3.bucket
    ));
    let run = w.annexa(&["collect", "backups", "--json"]).expect(0).json();
    assert_eq!(run["runs"][0]["items"], 2, "listing and drill report");
    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    for id in ["A.8.13", "A.5.30"] {
        let c = common::control(&doc, id);
        assert_eq!(c["status"], "satisfied", "{id}: {c}");
    }
}
