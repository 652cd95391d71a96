//! Report and status on a year of history (issue 7): 20 collectors, 202,000 runs (2,000 of
//! them failed), 1,000,000 evidence rows and 202,000 ledger leaves, on SQLite and on PostgreSQL.
//!
//! `cargo bench --bench report` generates the history (SQLite always; PostgreSQL when
//! `ANNEXA_TEST_POSTGRES_URL` names an admin URL, as `scripts/test` sets it), then measures:
//! - a monthly report in all five formats, `annexa report` run in a child process exactly as
//!   the binary runs it, with the child's wall time and peak RSS (VmHWM);
//! - `annexa status --json`, the binary itself, wall time per invocation;
//! - `annexa export` of June (its manifests and objects are in the store), in a child process,
//!   then the package's offline checks: `annexa verify --bundle` and its `verify.py`.
//!
//! Targets: report ≤ 2 s with peak RSS ≤ 256 MiB; status ≤ 100 ms.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use clap::Parser;
use sha2::{Digest, Sha256};
use sqlx::Executor;

const COLLECTORS: usize = 20;
const RUNS_PER_COLLECTOR: usize = 10_100;
const ITEMS_PER_RUN: usize = 4;
const ROUNDS: usize = 5;
const CONTROLS: [&str; 10] = [
    "A.5.24", "A.5.25", "A.5.26", "A.5.27", "A.5.28", "A.5.30", "A.5.36", "A.8.8", "A.8.13",
    "A.8.16",
];

/// The database comes from `ANNEXA_DATABASE__URL` (a password never goes in the file).
fn config_text() -> String {
    let mut text = String::from(
        "[organization]\nname = \"Bench Ltd\"\n\n[store]\nkind = \"fs\"\npath = \"store\"\n\n\
         [ledger]\nkey_file = \"keys/annexa.key\"\n",
    );
    for i in 0..COLLECTORS {
        text.push_str(&format!(
            "\n[[collector]]\nname = \"c{i:02}\"\nkind = \"policy-document\"\nschedule = \"0 * * * *\"\n\
             max_age = \"2h\"\npaths = [\"docs\"]\ncontrols = [\"{}\"]\n",
            CONTROLS[i % CONTROLS.len()]
        ));
    }
    text
}

fn ts(t: DateTime<Utc>) -> String {
    annexa::db::ts(t)
}

/// Writes the config and a year of history (2025-12-01 to 2026-11-30) straight into the
/// database, in multi-row inserts.
async fn generate(dir: &Path, database_url: &str) {
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    let path = dir.join("annexa.toml");
    std::fs::write(&path, config_text()).unwrap();
    let env = [("ANNEXA_DATABASE__URL".to_string(), database_url.to_string())];
    let config = annexa::config::Config::parse(&config_text(), &path, &env).unwrap();
    let app = annexa::Annexa::open(config).await.unwrap();
    let facts = serde_json::json!({
        "documents": [{
            "id": "PROC-1", "item": "docs/procedure.md", "title": "Incident Management Procedure",
            "version": "1.0", "owner": "CEO", "effective_from": "2025-01-01",
            "review_cycle": "Annual", "review_cycle_days": 365, "last_reviewed": "2026-05-01",
            "last_reviewed_field": "Last reviewed", "readable": true
        }],
        "review_grace_days": 30
    });
    let facts = app
        .store
        .put_object(annexa_collectors::Body::Bytes(
            serde_json::to_vec(&facts).unwrap(),
        ))
        .await
        .unwrap();

    let start = Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap();
    let step = Duration::milliseconds(365 * 86_400_000 / RUNS_PER_COLLECTOR as i64);
    let mut runs = Vec::new();
    for i in 0..RUNS_PER_COLLECTOR {
        for c in 0..COLLECTORS {
            let finished = start + step * i as i32 + Duration::seconds(c as i64 * 60);
            // One run in a hundred fails.
            runs.push((finished, c, (i * COLLECTORS + c) % 101 == 100));
        }
    }
    runs.sort();
    let pool = app.db.pool();
    let mut evidence_rows = 0;
    // Each run's manifest lists its items; June's manifests and objects are in the store, for
    // the export of that month. The ledger's leaves are the manifests'.
    let june = (
        Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap(),
    );
    let store = dir.join("store");
    let write = |key: &str, bytes: &[u8]| {
        let path = store.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    let mut leaves = Vec::with_capacity(runs.len());
    for (chunk_no, chunk) in runs.chunks(1_000).enumerate() {
        let mut run_sql = String::from(
            "INSERT INTO runs (id, collector, kind, collector_version, slot, status, started_at, \
             finished_at, error_code, error, manifest_key, manifest_sha256, ledger_index) VALUES ",
        );
        let mut ev_sql = String::from(
            "INSERT INTO evidence (run_id, collector, name, role, media_type, size, sha256, \
             object_key, observed_at, effective_at, collected_at) VALUES ",
        );
        let mut leaf_sql =
            String::from("INSERT INTO ledger (idx, leaf_hash, kind, ref_id, created_at) VALUES ");
        for (j, (finished, c, failed)) in chunk.iter().enumerate() {
            let idx = chunk_no * 1_000 + j;
            let id = format!("run-{idx:07}");
            let in_june = (june.0..june.1).contains(finished);
            let sep = if j == 0 { "" } else { "," };
            let (status, code, error) = if *failed {
                (
                    "failed",
                    "'collector-failed'",
                    "'the source was unreachable'",
                )
            } else {
                ("succeeded", "NULL", "NULL")
            };
            let collected = ts(*finished - Duration::seconds(1));
            let mut items = Vec::new();
            if !*failed {
                for k in 0..ITEMS_PER_RUN {
                    let content = format!("{id}/{k} ").repeat(1 + (1000 + k * 10) / 12);
                    let content = &content.as_bytes()[..1000 + k * 10];
                    let item_sha = hex::encode(Sha256::digest(content));
                    let key = format!("objects/sha256/{}/{item_sha}", &item_sha[..2]);
                    if in_june {
                        write(&key, content);
                    }
                    if evidence_rows > 0 && !ev_sql.ends_with("VALUES ") {
                        ev_sql.push(',');
                    }
                    ev_sql.push_str(&format!(
                        "('{id}','c{c:02}','docs/doc-{k}.md','item','text/markdown',{},'{item_sha}',\
                         '{key}','{collected}',NULL,'{collected}')",
                        content.len(),
                    ));
                    evidence_rows += 1;
                    items.push(serde_json::json!({
                        "name": format!("docs/doc-{k}.md"), "sha256": item_sha,
                        "object_key": key, "size": content.len(),
                    }));
                }
                ev_sql.push_str(&format!(
                    ",('{id}','c{c:02}','facts.json','facts','application/json',{},'{}','{}','{collected}',NULL,'{collected}')",
                    facts.size, facts.sha256, facts.key
                ));
                evidence_rows += 1;
                items.push(serde_json::json!({
                    "name": "facts.json", "sha256": facts.sha256, "object_key": facts.key,
                    "size": facts.size,
                }));
            }
            let manifest = serde_json::to_vec(&serde_json::json!({
                "run_id": id, "ledger_index": idx, "finished_at": ts(*finished),
                "status": status, "items": items,
            }))
            .unwrap();
            let manifest_key = format!("runs/c{c:02}/{id}.json");
            if in_june {
                write(&manifest_key, &manifest);
            }
            let sha = hex::encode(Sha256::digest(&manifest));
            let leaf = annexa::ledger::leaf_hash(&manifest);
            leaves.push(leaf);
            run_sql.push_str(&format!(
                "{sep}('{id}','c{c:02}','policy-document','0.1.0',NULL,'{status}','{}','{}',{code},{error},\
                 '{manifest_key}','{sha}',{idx})",
                ts(*finished - Duration::seconds(2)),
                ts(*finished),
            ));
            leaf_sql.push_str(&format!(
                "{sep}({idx},'{}','run','{id}','{}')",
                hex::encode(leaf),
                ts(*finished)
            ));
        }
        let mut tx = pool.begin().await.unwrap();
        for sql in [run_sql, ev_sql, leaf_sql] {
            tx.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    daily_checkpoints(&app, &runs, &leaves).await;
    // A database a year old has had its statistics gathered (PostgreSQL's autovacuum would
    // otherwise be doing it during the measurement).
    let analyze = match app.db.engine() {
        annexa::db::Engine::Sqlite => "ANALYZE",
        annexa::db::Engine::Postgres => "VACUUM ANALYZE",
    };
    pool.execute(analyze).await.unwrap();
    println!(
        "  generated {} runs, {evidence_rows} evidence rows, {} ledger leaves",
        runs.len(),
        runs.len()
    );
}

/// A checkpoint at every midnight, as the worker makes them.
async fn daily_checkpoints(
    app: &annexa::Annexa,
    runs: &[(DateTime<Utc>, usize, bool)],
    leaves: &[annexa::ledger::Hash],
) {
    let key = annexa::ledger::keyring::signing_key(app).await.unwrap();
    let mut frontier = annexa::ledger::Frontier::default();
    let mut next_midnight = runs[0]
        .0
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        + Duration::days(1);
    let mut count = 0;
    for (idx, (finished, _, _)) in runs.iter().enumerate() {
        while *finished >= next_midnight {
            let root = frontier.root();
            let note = key.sign_note(&annexa::ledger::checkpoint_text(
                &app.config.ledger.origin,
                frontier.size(),
                &root,
            ));
            app.db
                .insert_checkpoint(&annexa::db::CheckpointRow {
                    tree_size: frontier.size() as i64,
                    root_hash: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        root,
                    ),
                    origin: app.config.ledger.origin.clone(),
                    key_id: hex::encode(key.key_id()),
                    note,
                    created_at: next_midnight,
                    object_key: annexa::ledger::checkpoint::store_key(
                        next_midnight,
                        frontier.size(),
                        &root,
                    ),
                })
                .await
                .unwrap();
            count += 1;
            next_midnight += Duration::days(1);
        }
        frontier.push(leaves[idx]);
    }
    println!("  signed {count} daily checkpoints");
}

const REPORT_ARGS: [&str; 7] = [
    "report",
    "--from",
    "2026-06-01",
    "--to",
    "2026-06-30",
    "--as-of",
    "2026-07-01T00:00:00Z",
];

/// In the child: `annexa report` exactly as the binary runs it; prints seconds and peak RSS.
fn child_report(config: &str, out: &str) {
    let mut args = vec!["annexa", "--config", config];
    args.extend(REPORT_ARGS);
    args.extend(["--out", out]);
    let cli = annexa::cli::Cli::parse_from(args);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let exit = runtime.block_on(annexa::commands::dispatch(cli)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(matches!(
        exit,
        annexa::cli::exit::Exit::Gaps | annexa::cli::exit::Exit::Ok
    ));
    common::report_child(secs);
}

/// In the child: `annexa export` of June exactly as the binary runs it.
fn child_export(config: &str, out: &str) {
    let args = [
        "annexa",
        "--config",
        config,
        "export",
        "--from",
        "2026-06-01",
        "--to",
        "2026-06-30",
        "--out",
        out,
    ];
    let cli = annexa::cli::Cli::parse_from(args);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let exit = runtime.block_on(annexa::commands::dispatch(cli)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(matches!(exit, annexa::cli::exit::Exit::Ok));
    common::report_child(secs);
}

/// The export of June (every manifest and object of the month, a proof per manifest), then
/// its offline check by `annexa verify --bundle` and by the package's own `verify.py`.
fn measure_export(label: &str, dir: &Path, database_url: &str) {
    let config = dir.join("annexa.toml");
    let out = dir.join("june-package");
    let (secs, rss) = common::run_child(
        &[
            "child-export",
            config.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
        &[("ANNEXA_DATABASE__URL", database_url)],
    );
    let mut files = Vec::new();
    annexa::ledger::package::walk(&out, "", &mut files).unwrap();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(out.join(f)).unwrap().len())
        .sum();
    let package: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("package.json")).unwrap()).unwrap();
    println!(
        "{label:<10} annexa export of June: {} runs, {} files, {:.1} MiB, in {secs:.2} s; peak RSS {rss:.1} MiB",
        package["runs"].as_array().unwrap().len(),
        files.len(),
        bytes as f64 / 1048576.0
    );
    let keys = dir.join("verifier.txt");
    let status = Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(["--config", config.to_str().unwrap(), "keys", "export"])
        .arg(&keys)
        .env("ANNEXA_DATABASE__URL", database_url)
        .status()
        .unwrap();
    assert!(status.success());
    for (what, mut command) in [
        ("annexa verify --bundle", {
            let mut c = Command::new("/usr/bin/time");
            c.args([
                "-f",
                "%e %M",
                env!("CARGO_BIN_EXE_annexa"),
                "verify",
                "--bundle",
            ])
            .arg(&out)
            .arg("--keys")
            .arg(&keys);
            c
        }),
        ("python3 verify.py", {
            let mut c = Command::new("/usr/bin/time");
            c.args(["-f", "%e %M", "python3"])
                .arg(out.join("verify.py"))
                .arg(&keys)
                .arg(&out);
            c
        }),
    ] {
        let run = command.output().unwrap();
        assert!(
            run.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&run.stdout)
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let mut f = last.split_whitespace();
        let (secs, kib): (f64, f64) = (
            f.next().unwrap().parse().unwrap(),
            f.next().unwrap().parse().unwrap(),
        );
        println!(
            "{label:<10} {what} of the June package: {secs:.2} s, peak RSS {:.1} MiB",
            kib / 1024.0
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn measure(label: &str, dir: &Path, database_url: &str) {
    let config = dir.join("annexa.toml");
    let mut secs = Vec::new();
    let mut rss = Vec::new();
    for round in 0..ROUNDS {
        let out = dir.join(format!("out-{round}"));
        let (s, r) = common::run_child(
            &[
                "child-report",
                config.to_str().unwrap(),
                out.to_str().unwrap(),
            ],
            &[("ANNEXA_DATABASE__URL", database_url)],
        );
        secs.push(s);
        rss.push(r);
    }
    let sizes: Vec<String> = std::fs::read_dir(
        std::fs::read_dir(dir.join("out-0"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap()
    .map(|e| {
        let e = e.unwrap();
        format!(
            "{} {:.1} MiB",
            e.file_name().to_string_lossy(),
            e.metadata().unwrap().len() as f64 / 1048576.0
        )
    })
    .collect();
    println!(
        "{label:<10} monthly report, all formats: best {:.2} s, median {:.2} s over {ROUNDS} rounds; peak RSS max {:.1} MiB",
        secs.iter().cloned().fold(f64::MAX, f64::min),
        median(secs.clone()),
        rss.iter().cloned().fold(0.0, f64::max)
    );
    println!("           files: {}", sizes.join(", "));

    let mut status = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_annexa"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "--as-of",
                "2026-07-01T00:00:00Z",
                "status",
                "--json",
            ])
            .env("ANNEXA_DATABASE__URL", database_url)
            .output()
            .unwrap();
        status.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "{label:<10} annexa status --json (the binary, whole process): best {:.0} ms, median {:.0} ms over 10 runs",
        status.iter().cloned().fold(f64::MAX, f64::min),
        median(status)
    );
}

fn fresh_postgres(admin: &str) -> String {
    let name = format!("annexa_bench_{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(admin).await.unwrap();
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
    });
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child-report") {
        return child_report(&args[2], &args[3]);
    }
    if args.get(1).map(String::as_str) == Some("child-export") {
        return child_export(&args[2], &args[3]);
    }
    let root = PathBuf::from(std::env::var("ANNEXA_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()));
    let mut backends = vec![("sqlite", None)];
    if let Ok(admin) = std::env::var("ANNEXA_TEST_POSTGRES_URL") {
        backends.push(("postgresql", Some(admin)));
    }
    // `ANNEXA_BENCH_BACKENDS=postgresql` measures one of them only.
    if let Ok(only) = std::env::var("ANNEXA_BENCH_BACKENDS") {
        backends.retain(|(label, _)| only.split(',').any(|o| o == *label));
    }
    for (label, admin) in backends {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let url = match admin {
            None => format!("sqlite://{}/annexa.db", dir.path().display()),
            Some(admin) => fresh_postgres(&admin),
        };
        println!(
            "{label}: generating a year of history in {}",
            dir.path().display()
        );
        let started = Instant::now();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(generate(dir.path(), &url));
        println!("  in {:.0} s", started.elapsed().as_secs_f64());
        measure(label, dir.path(), &url);
        measure_export(label, dir.path(), &url);
        if std::env::var_os("ANNEXA_BENCH_KEEP").is_some() {
            println!("  kept {} (ANNEXA_BENCH_KEEP)", dir.keep().display());
        }
    }
}
