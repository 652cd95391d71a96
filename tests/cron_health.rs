//! cron-health end to end: pings recorded through the real database, collected by the real
//! collector with a pinned clock, judged into A.8.16 and A.5.36.

mod common;

use std::sync::Arc;

use annexa::Annexa;
use annexa::config::Config;
use annexa::evidence::heartbeats::{PingError, Via, record_ping};
use annexa_collectors::FixedClock;
use annexa_collectors::cron_health::PingKind;
use chrono::{DateTime, TimeZone, Utc};
use common::World;

const CONFIG: &str = r#"
[[collector]]
name = "cron-health"
kind = "cron-health"
schedule = "30 * * * *"

[[job]]
name = "db-backup"
schedule = "0 * * * *"
grace = "15m"
max_runtime = "45m"
token_env = "ANNEXA_TEST_DB_BACKUP_TOKEN"
"#;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
}

/// The world's config as the binary would see it, with the job's token.
fn config(w: &World, text: &str) -> Config {
    w.config(text);
    w.loaded_config(&[("ANNEXA_TEST_DB_BACKUP_TOKEN", "s3cret-token")])
}

/// The facts of cron-health's newest successful run at `as_of`, read back from the store.
async fn stored_facts(
    app: &Annexa,
    as_of: DateTime<Utc>,
) -> annexa_collectors::cron_health::CronHealthFacts {
    let facts = annexa::evidence::facts::newest(app, "cron-health", as_of)
        .await
        .unwrap()
        .expect("a successful run")
        .expect("facts that match their hash");
    serde_json::from_value(facts).unwrap()
}

/// `annexa ping db-backup` as the CLI records it, at a chosen time.
async fn cli_ping(
    app: &Annexa,
    config: &Config,
    kind: PingKind,
    message: Option<&str>,
    at: DateTime<Utc>,
) {
    record_ping(
        &app.db,
        config,
        "db-backup",
        kind,
        message,
        None,
        Via::Cli,
        at,
    )
    .await
    .unwrap();
}

async fn at(config: &Config, now: DateTime<Utc>) -> Annexa {
    Annexa::open_with_clock(config.clone(), Arc::new(FixedClock(now)))
        .await
        .unwrap()
}

/// Collects cron-health at `now` and returns the findings on A.8.16 (subject, code).
async fn missed_and_failed(config: &Config, now: DateTime<Utc>) -> Vec<(String, String)> {
    let app = at(config, now).await;
    let collector = app.config.collector("cron-health").unwrap();
    let outcome = annexa::evidence::runner::run_collector(&app, collector, None)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.succeeded(), "{:?}", outcome.run.error);
    let doc = annexa::views::status::status(&app, now).await.unwrap();
    let a816 = doc.controls.iter().find(|c| c.id == "A.8.16").unwrap();
    let a536 = doc.controls.iter().find(|c| c.id == "A.5.36").unwrap();
    assert_eq!(
        a816.findings, a536.findings,
        "both controls carry the heartbeat findings"
    );
    a816.findings
        .iter()
        .map(|f| (f.subject.clone(), f.code.to_string()))
        .collect()
}

#[tokio::test]
async fn an_hourly_job_that_stops_at_two_is_missed_once_per_hour_after_grace() {
    let w = World::new();
    let config = config(&w, CONFIG);
    let app = at(&config, t(0, 0)).await;
    for h in 0..3 {
        cli_ping(&app, &config, PingKind::Start, None, t(h, 1)).await;
        cli_ping(&app, &config, PingKind::Success, None, t(h, 5)).await;
        // A duplicate ping changes nothing.
        cli_ping(&app, &config, PingKind::Success, None, t(h, 6)).await;
    }
    assert_eq!(missed_and_failed(&config, t(3, 14)).await, vec![]);
    let at_5_20 = missed_and_failed(&config, t(5, 20)).await;
    assert_eq!(
        at_5_20,
        ["03:00", "04:00", "05:00"]
            .iter()
            .map(|h| (
                format!("db-backup@2026-11-22T{h}:00Z"),
                "heartbeat-missed".to_string()
            ))
            .collect::<Vec<_>>()
    );

    // Coverage, from the stored facts: 3 of 6 hourly slots (00:00 … 05:00).
    let app = at(&config, t(5, 20)).await;
    let facts = stored_facts(&app, t(5, 20)).await;
    let summary =
        annexa_collectors::cron_health::evaluate(&facts, annexa_collectors::AsOf::now(t(5, 20)));
    let backup = summary.iter().find(|s| s.job == "db-backup").unwrap();
    assert_eq!(backup.coverage_text(), "3 of 6 runs, 50.0 %");
    assert_eq!(backup.durations_seconds, vec![240, 240, 240]);

    // A clock that jumps back to 04:00 does not reopen the 04:00 and 05:00 slots: the stored
    // horizon stays at 05:20 and still judges them missed.
    missed_and_failed(&config, t(4, 0)).await;
    let app = at(&config, t(4, 0)).await;
    let facts = stored_facts(&app, t(6, 0)).await;
    assert_eq!(facts.horizon, t(5, 20));
    let backup = annexa_collectors::cron_health::evaluate(
        &facts,
        annexa_collectors::AsOf::now(facts.horizon),
    )
    .into_iter()
    .find(|s| s.job == "db-backup")
    .unwrap();
    assert_eq!(backup.missed, 3);
}

#[tokio::test]
async fn a_fail_ping_and_a_start_that_never_ends_are_failures() {
    let w = World::new();
    let config = config(&w, CONFIG);
    let app = at(&config, t(0, 0)).await;
    cli_ping(&app, &config, PingKind::Success, None, t(0, 5)).await;
    cli_ping(
        &app,
        &config,
        PingKind::Fail,
        Some("pg_dump: disk full"),
        t(1, 3),
    )
    .await;
    cli_ping(&app, &config, PingKind::Start, None, t(2, 0)).await;
    let findings = missed_and_failed(&config, t(2, 50)).await;
    assert!(
        findings.contains(&(
            "db-backup@2026-11-22T01:00:00Z".into(),
            "heartbeat-failed".into()
        )),
        "{findings:?}"
    );
    assert!(
        findings.contains(&(
            "db-backup@2026-11-22T02:00:00Z".into(),
            "heartbeat-failed".into()
        )),
        "{findings:?}"
    );
}

#[tokio::test]
async fn http_pings_need_the_jobs_token_and_unknown_jobs_record_nothing() {
    let w = World::new();
    let config = config(&w, CONFIG);
    let app = at(&config, t(0, 0)).await;
    let ping = |token: Option<&'static str>, job: &'static str| {
        let (db, config) = (app.db.clone(), config.clone());
        async move {
            record_ping(
                &db,
                &config,
                job,
                PingKind::Success,
                None,
                token,
                Via::Http,
                t(0, 1),
            )
            .await
        }
    };
    assert!(matches!(
        ping(None, "db-backup").await,
        Err(PingError::Unauthorized { .. })
    ));
    assert!(matches!(
        ping(Some("wrong"), "db-backup").await,
        Err(PingError::Unauthorized { .. })
    ));
    assert!(matches!(
        ping(Some("s3cret-token"), "removed-job").await,
        Err(PingError::UnknownJob { .. })
    ));
    assert!(
        app.db
            .heartbeats("db-backup", t(0, 0), t(1, 0))
            .await
            .unwrap()
            .is_empty(),
        "refused pings record nothing"
    );
    ping(Some("s3cret-token"), "db-backup").await.unwrap();
    assert_eq!(
        app.db
            .heartbeats("db-backup", t(0, 0), t(1, 0))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn annexa_ping_works_from_a_real_crontab_line() {
    let w = World::new();
    w.config(
        CONFIG
            .replace("token_env = \"ANNEXA_TEST_DB_BACKUP_TOKEN\"\n", "")
            .as_str(),
    );
    let bin = env!("CARGO_BIN_EXE_annexa");
    for job_command in ["true", "false"] {
        // The line a crontab would hold, run by a real shell.
        let line = format!(
            "{job_command} && {bin} ping db-backup || {bin} ping db-backup --fail --message 'exit status 1'"
        );
        let cmd = w.command(&[], &[]);
        let envs: Vec<(String, String)> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
            .collect();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("ANNEXA_CONFIG", w.config_path())
            .envs(envs)
            .status()
            .unwrap();
        assert!(status.success(), "{line}");
    }
    let out = w
        .annexa(&["collect", "cron-health", "--json"])
        .expect(0)
        .json();
    assert_eq!(out["runs"][0]["status"], "succeeded");
    let doc = w.annexa(&["status", "--json"]).json();
    let a816 = common::control(&doc, "A.8.16");
    let key = a816["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["object_key"].as_str().unwrap())
        .find(|k| {
            let bytes = std::fs::read(w.object_file(k)).unwrap();
            String::from_utf8_lossy(&bytes).contains("\"kind\":\"fail\"")
        })
        .expect("the heartbeats item is evidence for A.8.16");
    let beats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.object_file(key)).unwrap()).unwrap();
    let kinds: Vec<&str> = beats
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["job"] == "db-backup")
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["success", "fail"]);
    assert_eq!(
        beats
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == "fail")
            .unwrap()["message"],
        "exit status 1"
    );
}

#[test]
fn ping_names_unknown_jobs_and_an_unreachable_database() {
    let w = World::with_backend(common::Backend::Local);
    w.config(
        CONFIG
            .replace("token_env = \"ANNEXA_TEST_DB_BACKUP_TOKEN\"\n", "")
            .as_str(),
    );
    let run = w.annexa(&["ping", "db-bakcup"]).expect(2);
    assert!(
        run.stderr
            .contains("no job named `db-bakcup`; configured jobs: db-backup"),
        "{}",
        run.stderr
    );
    let url = format!(
        "postgres://annexa:pw@127.0.0.1:{}/annexa",
        common::free_port()
    );
    let run = w
        .annexa_env(&["ping", "db-backup"], &[("ANNEXA_DATABASE__URL", &url)])
        .expect(1);
    assert!(run.stderr.contains("is unreachable"), "{}", run.stderr);
    let bad = w
        .annexa(&["ping", "db-backup", "--start", "--fail"])
        .expect(2);
    assert!(bad.stderr.contains("cannot be used with"), "{}", bad.stderr);
}

/// Issue 22: a ping says what it recorded and when `status` will show it (at the next
/// cron-health collection), in text and in JSON.
#[test]
fn a_ping_says_when_status_will_show_it() {
    let w = World::new();
    w.config(
        CONFIG
            .replace("token_env = \"ANNEXA_TEST_DB_BACKUP_TOKEN\"\n", "")
            .as_str(),
    );
    let text = w
        .annexa_at("2026-11-22T10:05:00Z", &["ping", "db-backup"])
        .expect(0);
    assert!(
        text.stdout.starts_with(
            "success heartbeat of `db-backup` recorded at 2026-11-22T10:05:00Z; `annexa status` shows it once `cron-health` next collects heartbeats (2026-11-22T10:30:00Z)"
        ),
        "{}",
        text.stdout
    );
    let json = w
        .annexa_at(
            "2026-11-22T10:40:00Z",
            &["--json", "ping", "db-backup", "--fail"],
        )
        .expect(0)
        .json();
    assert_eq!(json["job"], "db-backup");
    assert_eq!(json["kind"], "fail");
    assert_eq!(json["at"], "2026-11-22T10:40:00Z");
    assert_eq!(json["collected_by"][0]["collector"], "cron-health");
    assert_eq!(json["collected_by"][0]["next_run"], "2026-11-22T11:30:00Z");
}

#[tokio::test]
async fn a_future_as_of_shows_every_slot_that_will_have_been_missed() {
    let w = World::new();
    let config = config(&w, CONFIG);
    let app = at(&config, t(0, 0)).await;
    cli_ping(&app, &config, PingKind::Success, None, t(2, 5)).await;
    // Collected at 02:30, and asked at 02:30 about 07:30: 03:00 … 07:00 will have been missed.
    let app = at(&config, t(2, 30)).await;
    let collector = app.config.collector("cron-health").unwrap();
    annexa::evidence::runner::run_collector(&app, collector, None)
        .await
        .unwrap()
        .unwrap();
    let missed_at = |doc: &annexa_reports::StatusDocument| -> Vec<String> {
        let a816 = doc.controls.iter().find(|c| c.id == "A.8.16").unwrap();
        a816.findings
            .iter()
            .filter(|f| f.code.as_str() == "heartbeat-missed")
            .map(|f| f.subject.clone())
            .collect()
    };
    let now = annexa::views::status::status(&app, t(2, 30)).await.unwrap();
    assert!(missed_at(&now).is_empty());
    let ahead = annexa::views::status::status(&app, t(7, 30)).await.unwrap();
    let expected: Vec<String> = (3..=7)
        .map(|h| format!("db-backup@2026-11-22T{h:02}:00:00Z"))
        .collect();
    assert_eq!(missed_at(&ahead), expected);
    let a816 = ahead.controls.iter().find(|c| c.id == "A.8.16").unwrap();
    assert_eq!(a816.status, annexa_reports::ControlStatus::NotSatisfied);
}

/// Hourly snapshots over a day store what is new, rebuild the window through separate
/// processes (no cache), still judge the day's slots, verify, and a tampered link in the chain
/// is an integrity violation, not a quiet pass.
#[test]
fn snapshots_store_what_is_new_and_a_broken_chain_is_a_violation() {
    let w = World::new();
    w.config(
        r#"
[[collector]]
name = "cron-health"
kind = "cron-health"
schedule = "30 * * * *"
jobs = ["db-backup"]

[[job]]
name = "db-backup"
schedule = "0 * * * *"
grace = "15m"
"#,
    );
    for h in 0..12 {
        // 05:00 is missed.
        if h != 5 {
            w.annexa_at(&format!("2026-11-22T{h:02}:05:00Z"), &["ping", "db-backup"])
                .expect(0);
        }
        w.annexa_at(
            &format!("2026-11-22T{h:02}:30:00Z"),
            &["collect", "cron-health"],
        )
        .expect(0);
    }
    let doc = w
        .annexa_at("2026-11-22T11:40:00Z", &["status", "--json"])
        .json();
    let a816 = common::control(&doc, "A.8.16").clone();
    let missed: Vec<&str> = a816["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(missed, ["db-backup@2026-11-22T05:00:00Z"], "{a816}");
    // The newest facts hold one heartbeat and name the run before.
    let facts_key = a816["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["object_key"].as_str().unwrap().to_string())
        .find(|k| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(w.object_file(k)).unwrap()).unwrap();
            v.get("horizon").is_some()
        })
        .expect("the facts object");
    let facts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.object_file(&facts_key)).unwrap()).unwrap();
    assert_eq!(
        facts["jobs"][0]["heartbeats"].as_array().unwrap().len(),
        1,
        "{facts}"
    );
    assert_eq!(facts["window"]["count"], 11, "{facts}");
    assert!(facts["delta"]["previous"]["run_id"].is_string(), "{facts}");
    w.annexa_at("2026-11-22T11:45:00Z", &["verify"]).expect(0);

    // Rewrite a facts object in the middle of the chain (write-once bypassed, as an attacker
    // with disk access would): the newest facts can no longer be rebuilt.
    // Back along the chain (objects are named by their SHA-256) to one that added a heartbeat.
    let object = |sha: &str| w.object_file(&format!("objects/sha256/{}/{sha}", &sha[..2]));
    let mut rewritten = false;
    let mut link = facts["delta"]["previous"]["sha256"]
        .as_str()
        .map(String::from);
    while let Some(sha) = link {
        let path = object(&sha);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if v["jobs"][0]["heartbeats"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
        {
            v["jobs"][0]["heartbeats"] = serde_json::json!([]);
            make_writable(&path);
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            rewritten = true;
            break;
        }
        link = v["delta"]["previous"]["sha256"].as_str().map(String::from);
    }
    assert!(rewritten, "a delta before the newest");
    let doc = w
        .annexa_at("2026-11-22T11:50:00Z", &["status", "--json"])
        .json();
    // Every control cron-health evidences says so; none passes on the broken chain.
    for id in ["A.5.36", "A.8.16"] {
        let c = common::control(&doc, id);
        assert_eq!(c["status"], "not_satisfied", "{c}");
        let f = &c["findings"][0];
        assert_eq!(f["code"], "integrity-violation", "{c}");
        assert!(
            f["message"]
                .as_str()
                .unwrap()
                .contains("no longer match their recorded SHA-256; run `annexa verify`"),
            "{c}"
        );
    }
}

fn make_writable(p: &std::path::Path) {
    let mut perms = std::fs::metadata(p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(p, perms).unwrap();
}
