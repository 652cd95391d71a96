//! github-alerts against a loopback GitHub stand-in serving GitHub's own example payloads
//! (`../shared/fixtures/github/`), split across pages, with rate limits and refusals. Waits are
//! recorded on an injected sleeper and judged against a pinned clock.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annexa_collectors::github_alerts::{AlertFacts, GithubAlerts, GithubAlertsConfig, Sleeper};
use annexa_collectors::{CollectContext, CollectError, Collector, FindingCode, FixedClock};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

#[async_trait::async_trait]
impl Sleeper for Recorder {
    async fn sleep(&self, d: Duration) {
        self.0.lock().unwrap().push(d.as_secs());
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/github")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn ctx() -> CollectContext {
    ctx_into(annexa_collectors::KeptItems::shared())
}

/// A context whose items are kept in `kept`.
fn ctx_into(kept: Arc<annexa_collectors::KeptItems>) -> CollectContext {
    CollectContext {
        clock: Arc::new(FixedClock(now())),
        base_dir: std::env::temp_dir(),
        scratch_dir: std::env::temp_dir(),
        previous_facts: None,
        previous_run: None,
        heartbeats: None,
        objects: None,
        max_source_bytes: annexa_collectors::DEFAULT_MAX_SOURCE_BYTES,
        allow_insecure_urls: true,
        on_demand: true,
        rehearsal: false,
        items: kept,
    }
}

/// GitHub's org list example has only a resolved alert: add its single open-alert example,
/// with the repository the org endpoint reports.
fn org_secret_alerts() -> Value {
    let mut list = fixture("secret-scanning-alerts-org.json");
    let mut open = fixture("secret-scanning-alert-single.json");
    open["repository"] = list[0]["repository"].clone();
    open["number"] = json!(42);
    list.as_array_mut().unwrap().push(open);
    list
}

async fn stand_in() -> MockServer {
    let server = MockServer::start().await;
    let ok = |body: &Value| ResponseTemplate::new(200).set_body_json(body);
    let base = server.uri();

    // Org Dependabot alerts: two pages by cursor; the second page is first refused with 403 +
    // retry-after.
    let org_dependabot = fixture("dependabot-alerts-org.json");
    let list = org_dependabot.as_array().unwrap();
    let (first, second) = list.split_at(list.len() / 2);
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/dependabot/alerts"))
        .and(query_param("after", "Y3Vyc29yOnYyOpKjMjAy"))
        .respond_with(ResponseTemplate::new(403).insert_header("retry-after", "30"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/dependabot/alerts"))
        .and(query_param("after", "Y3Vyc29yOnYyOpKjMjAy"))
        .respond_with(ok(&json!(second)))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/dependabot/alerts"))
        .respond_with(ok(&json!(first)).insert_header(
            "link",
            format!("<{base}/orgs/octo-org/dependabot/alerts?per_page=100&after=Y3Vyc29yOnYyOpKjMjAy>; rel=\"next\"").as_str(),
        ))
        .with_priority(3)
        .mount(&server)
        .await;

    // Org code scanning: first a 429 with the primary quota exhausted (reset in 120 s).
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/code-scanning/alerts"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(
                    "x-ratelimit-reset",
                    (now().timestamp() + 120).to_string().as_str(),
                )
                .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/code-scanning/alerts"))
        .respond_with(ok(&fixture("code-scanning-alerts-org.json")))
        .with_priority(2)
        .mount(&server)
        .await;

    // Org secret scanning: a secondary rate limit without headers first.
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/secret-scanning/alerts"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orgs/octo-org/secret-scanning/alerts"))
        .respond_with(ok(&org_secret_alerts()))
        .with_priority(2)
        .mount(&server)
        .await;

    // The repository: Dependabot readable, code scanning refused (403), secret scanning off (404).
    Mock::given(method("GET"))
        .and(path("/repos/octocat/hello-world/dependabot/alerts"))
        .respond_with(ok(&fixture("dependabot-alerts-repo.json")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octocat/hello-world/code-scanning/alerts"))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(fixture("error-403-repo-delete.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octocat/hello-world/secret-scanning/alerts"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    server
}

fn config(base: &str, budget: &str) -> GithubAlertsConfig {
    toml::from_str(&format!(
        "orgs = [\"octo-org\"]\nrepos = [\"octocat/hello-world\"]\nbase_url = \"{base}\"\nwait_budget = \"{budget}\"\n"
    ))
    .unwrap()
}

#[tokio::test]
async fn an_org_collection_yields_the_exact_population_the_waits_and_the_findings() {
    let server = stand_in().await;
    let recorder = Arc::new(Recorder::default());
    let collector = GithubAlerts::new(config(&server.uri(), "10m"), Some("test-token".into()))
        .with_sleeper(recorder.clone());
    let kept = annexa_collectors::KeptItems::shared();
    let snapshot = collector.collect(&ctx_into(kept.clone())).await.unwrap();
    let snapshot_facts = snapshot.facts.into_value().unwrap();

    // The waits, in order: retry-after 30, the quota reset 120 s away, a secondary limit 60.
    assert_eq!(*recorder.0.lock().unwrap(), vec![30, 120, 60]);

    let facts: AlertFacts = serde_json::from_value(snapshot_facts.clone()).unwrap();
    let expected: Vec<(&str, &str, usize)> = vec![
        ("org octo-org", "dependabot-alerts-org.json", 2),
        ("org octo-org", "code-scanning-alerts-org.json", 1),
        ("org octo-org", "secret-scanning", 1),
        ("repo octocat/hello-world", "dependabot-alerts-repo.json", 1),
    ];
    let mut expected_ids = BTreeSet::new();
    for (target, file, pages) in &expected {
        let list = if *file == "secret-scanning" {
            org_secret_alerts()
        } else {
            fixture(file)
        };
        let kind = file.split("-alerts").next().unwrap();
        let p = facts
            .population
            .iter()
            .find(|p| p.target == *target && serde_json::to_value(p.kind).unwrap() == kind)
            .unwrap();
        assert_eq!(
            (p.total, p.pages),
            (list.as_array().unwrap().len(), *pages),
            "{target} {kind}"
        );
        for a in list.as_array().unwrap() {
            let repo = a["repository"]["full_name"]
                .as_str()
                .unwrap_or("octocat/hello-world");
            expected_ids.insert((
                repo.to_string(),
                kind.to_string(),
                a["number"].as_i64().unwrap(),
            ));
        }
    }
    let got_ids: Vec<(String, String, i64)> = facts
        .alerts
        .iter()
        .map(|a| {
            (
                a.repository.clone(),
                serde_json::to_value(a.kind)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
                a.number,
            )
        })
        .collect();
    assert_eq!(
        got_ids.len(),
        expected_ids.len(),
        "no alert lost or doubled"
    );
    assert_eq!(got_ids.into_iter().collect::<BTreeSet<_>>(), expected_ids);
    // Raw pages exactly as received: one item per page.
    assert_eq!(kept.take().len(), 5);
    let refused: Vec<&str> = facts
        .population
        .iter()
        .filter(|p| p.refused.is_some())
        .map(|p| p.query.as_str())
        .collect();
    assert_eq!(refused.len(), 2);

    let findings = collector.check(&snapshot_facts, annexa_collectors::AsOf::now(now()));
    let count = |code: FindingCode| findings.iter().filter(|f| f.code == code).count();
    assert_eq!(count(FindingCode::CollectorUnauthorized), 2);
    let unauthorized: Vec<&str> = findings
        .iter()
        .filter(|f| f.code == FindingCode::CollectorUnauthorized)
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        unauthorized
            .iter()
            .any(|m| m.contains("Code scanning alerts: read")),
        "{unauthorized:?}"
    );
    assert!(
        unauthorized
            .iter()
            .any(|m| m.contains("Secret scanning alerts: read")),
        "{unauthorized:?}"
    );
    // Every open Dependabot/code-scanning alert of the fixtures is years old: overdue; every
    // open secret-scanning alert is a finding of its own.
    let open_in = |list: Value| {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "open")
            .count()
    };
    let open = |file: &str| open_in(fixture(file));
    assert_eq!(
        count(FindingCode::VulnerabilityAlertOverdue),
        open("dependabot-alerts-org.json")
            + open("code-scanning-alerts-org.json")
            + open("dependabot-alerts-repo.json")
    );
    assert_eq!(
        count(FindingCode::SecretAlertOpen),
        open_in(org_secret_alerts())
    );
    assert!(
        count(FindingCode::SecretAlertOpen) > 0
            && count(FindingCode::VulnerabilityAlertOverdue) > 0
    );
}

#[tokio::test]
async fn a_wait_beyond_the_budget_fails_the_run_never_passes_it() {
    let server = stand_in().await;
    let recorder = Arc::new(Recorder::default());
    let collector =
        GithubAlerts::new(config(&server.uri(), "1m"), None).with_sleeper(recorder.clone());
    match collector.collect(&ctx()).await {
        Err(CollectError::SourceUnavailable { reason, .. }) => {
            assert!(
                reason.contains("wait 120 s") && reason.contains("wait_budget of 60 s"),
                "{reason}"
            )
        }
        other => panic!("expected a failed run, got {:?}", other.map(|s| s.facts)),
    }
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![30],
        "only the wait within the budget was taken"
    );
}

#[tokio::test]
async fn a_young_alert_is_not_overdue_and_a_dismissal_without_reason_warns() {
    let facts: AlertFacts = serde_json::from_value(json!({
        "targets": {"critical_days": 1, "high_days": 7, "medium_days": 30, "low_days": 90},
        "population": [],
        "alerts": [
            {"repository": "a/b", "kind": "dependabot", "number": 1, "severity": "critical", "state": "open",
             "created_at": "2026-11-21T13:00:00Z", "updated_at": null, "fixed_at": null, "dismissed_at": null,
             "dismissed_reason": null, "resolved_at": null, "html_url": null},
            {"repository": "a/b", "kind": "code-scanning", "number": 2, "severity": "high", "state": "dismissed",
             "created_at": "2026-11-01T00:00:00Z", "updated_at": null, "fixed_at": null, "dismissed_at": "2026-11-02T00:00:00Z",
             "dismissed_reason": null, "resolved_at": null, "html_url": null}
        ],
        "figures": {"open_by_severity": {}, "median_days_to_fix_by_month": {}},
        "collected_at": "2026-11-22T12:00:00Z"
    }))
    .unwrap();
    let f = annexa_collectors::github_alerts::check(&facts, now());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, FindingCode::AlertDismissalUnexplained);
    let later = annexa_collectors::github_alerts::check(&facts, now() + chrono::Duration::hours(2));
    assert!(
        later
            .iter()
            .any(|x| x.code == FindingCode::VulnerabilityAlertOverdue
                && x.subject == "a/b dependabot #1")
    );
}

#[test]
fn through_the_binary_the_alerts_evidence_a88_a816_and_a525() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        for (p, file) in [
            (
                "/repos/octocat/hello-world/dependabot/alerts",
                "dependabot-alerts-repo.json",
            ),
            (
                "/repos/octocat/hello-world/code-scanning/alerts",
                "code-scanning-alerts-repo.json",
            ),
        ] {
            Mock::given(method("GET"))
                .and(path(p))
                .respond_with(ResponseTemplate::new(200).set_body_json(fixture(file)))
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path("/repos/octocat/hello-world/secret-scanning/alerts"))
            .respond_with(ResponseTemplate::new(404).set_body_json(
                json!({"message": "Secret scanning is disabled on this repository."}),
            ))
            .mount(&server)
            .await;
        server
    });
    let w = common::World::new();
    w.config(&format!(
        "[outbound]\nallow_insecure_urls = true\n\n[[collector]]\nname = \"github\"\nkind = \"github-alerts\"\nrepos = [\"octocat/hello-world\"]\nbase_url = \"{}\"\ntoken_env = \"ANNEXA_TEST_GH_TOKEN\"\n",
        server.uri()
    ));
    let run = w
        .annexa_env(
            &["collect", "github", "--json"],
            &[("ANNEXA_TEST_GH_TOKEN", "ghp_not_printed")],
        )
        .expect(0)
        .json();
    assert_eq!(
        run["runs"][0]["items"], 2,
        "one raw page per readable endpoint"
    );
    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    // A.8.16 also requires cron-health and A.5.25 an incident register: without them they
    // are missing, with the alerts' findings beside.
    for (id, status) in [
        ("A.8.8", "not_satisfied"),
        ("A.8.16", "missing"),
        ("A.5.25", "missing"),
    ] {
        let c = common::control(&doc, id);
        assert_eq!(c["status"], status, "{id}");
        let codes: BTreeSet<&str> = c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.contains("collector-unauthorized")
                && codes.contains("vulnerability-alert-overdue"),
            "{id}: {codes:?}"
        );
    }
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert!(requests.iter().all(|r| {
        r.headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap().contains("ghp_not_printed"))
    }));
    assert!(
        !serde_json::to_string(&doc)
            .unwrap()
            .contains("ghp_not_printed")
    );
}

/// Issue 15: `[ledger] publish` and GitHub's `base_url` (github-alerts and incident-log) were
/// not held to the outbound rule and reached 169.254.169.254; sink checks missed NAT64,
/// site-local, benchmarking, multicast and reserved blocks. One policy refuses them all at load.
#[test]
fn every_outbound_url_to_a_special_address_is_refused_at_load() {
    let w = common::World::new();
    w.config(
        r#"
[ledger]
publish = "https://198.18.0.1/checkpoints"

[[sink]]
name = "siem"
kind = "webhook"
url_env = "T_HOOK"
secret_env = "T_SECRET"

[[collector]]
name = "github"
kind = "github-alerts"
repos = ["octocat/hello-world"]
base_url = "https://169.254.169.254"

[[collector]]
name = "incidents"
kind = "incident-log"
[collector.github]
repo = "acme/ops"
base_url = "https://[fec0::1]"
"#,
    );
    let run = w
        .annexa_env(
            &["status"],
            &[
                ("T_HOOK", "https://[64:ff9b::a9fe:a9fe]/in"),
                ("T_SECRET", "s"),
            ],
        )
        .expect(2);
    for named in [
        "ledger.publish",
        "198.18.0.1",
        "169.254.169.254",
        "[fec0::1]",
        "[64:ff9b::a9fe:a9fe]",
    ] {
        assert!(run.stderr.contains(named), "{named}: {}", run.stderr);
    }
}

/// Issue 15: a redirect from GitHub was followed (to 169.254.169.254), and `Link: rel=next`
/// was followed to another host. Neither is any more; the run fails, never passes.
#[tokio::test]
async fn a_redirect_or_a_next_page_on_another_host_is_not_followed() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octocat/hello-world/dependabot/alerts"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/stolen", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    let config: GithubAlertsConfig = toml::from_str(&format!(
        "repos = [\"octocat/hello-world\"]\nbase_url = \"{}\"\n",
        server.uri()
    ))
    .unwrap();
    let err = GithubAlerts::new(config.clone(), Some("t".into()))
        .collect(&ctx())
        .await
        .expect_err("a redirect is not an answer");
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the redirect was followed: {err}"
    );

    // A next page on another host (127.0.0.1 vs localhost).
    let server = MockServer::start().await;
    let port = server.address().port();
    Mock::given(method("GET"))
        .and(path("/repos/octocat/hello-world/dependabot/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])).insert_header(
            "link",
            format!("<http://localhost:{port}/repos/octocat/hello-world/dependabot/alerts?page=2>; rel=\"next\""),
        ))
        .mount(&server)
        .await;
    let config: GithubAlertsConfig = toml::from_str(&format!(
        "repos = [\"octocat/hello-world\"]\nbase_url = \"{}\"\n",
        server.uri()
    ))
    .unwrap();
    let err = GithubAlerts::new(config, Some("t".into()))
        .collect(&ctx())
        .await
        .expect_err("a next page elsewhere is refused");
    assert!(err.to_string().contains("points away"), "{err}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}
