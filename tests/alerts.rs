//! Gap alerts end to end, through `annexa run` at pinned (simulated) times: loopback receivers
//! for Discord, Slack, Telegram and a signed webhook, a real SMTP server (aiosmtpd), stdout.
//! One OPEN per gap and sink, nothing more while nothing changes, retries after 500 and 429
//! (honouring retry_after), one RESOLVED when fixed, reminders on cadence, and an undeliverable
//! sink reported, never dropped, with no secret in any output.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::World;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const DISCORD: &str = "/api/webhooks/1/discord-secret-path";
const SLACK: &str = "/services/T0/B0/slack-secret-path";
const TELEGRAM_TOKEN: &str = "123456:telegram-secret-token";
const HOOK: &str = "/hooks/annexa";
const HOOK_SECRET: &str = "hmac-secret-key";
const BROKEN: &str = "/gone/broken-secret-path";
const SECRETS: [&str; 5] = [
    "discord-secret-path",
    "slack-secret-path",
    "telegram-secret-token",
    HOOK_SECRET,
    "broken-secret-path",
];

/// Receivers: the first Discord post fails with 500, the first Slack and Telegram posts are
/// rate limited (Retry-After header; Telegram's `parameters.retry_after`); `BROKEN` is gone.
async fn receivers() -> MockServer {
    let server = MockServer::start().await;
    let once_then = |p: &str, first: ResponseTemplate, then: ResponseTemplate| {
        let p = p.to_string();
        let server = &server;
        async move {
            Mock::given(method("POST"))
                .and(path(p.clone()))
                .respond_with(first)
                .up_to_n_times(1)
                .with_priority(1)
                .mount(server)
                .await;
            Mock::given(method("POST"))
                .and(path(p))
                .respond_with(then)
                .with_priority(2)
                .mount(server)
                .await;
        }
    };
    once_then(
        DISCORD,
        ResponseTemplate::new(500),
        ResponseTemplate::new(204),
    )
    .await;
    once_then(
        SLACK,
        ResponseTemplate::new(429).insert_header("retry-after", "120"),
        ResponseTemplate::new(200).set_body_string("ok"),
    )
    .await;
    once_then(
        &format!("/bot{TELEGRAM_TOKEN}/sendMessage"),
        ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 90",
            "parameters": {"retry_after": 90}
        })),
        ResponseTemplate::new(200).set_body_json(json!({"ok": true})),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(BROKEN))
        .respond_with(ResponseTemplate::new(404).set_body_string("Unknown Webhook"))
        .mount(&server)
        .await;
    server
}

/// aiosmtpd on loopback, delivering into a Maildir; stopped on drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl Smtp {
    fn start(w: &World) -> Smtp {
        let port = common::free_port();
        let maildir = w.path("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "aiosmtpd did not start: install it with `pip install aiosmtpd` (./scripts/test does)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp {
            child,
            port,
            maildir,
        }
    }

    /// The messages received: (subject, body), decoded by Python's email package.
    fn messages(&self) -> Vec<(String, String)> {
        let script = r#"
import json, mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False)
from email import policy
from email.parser import BytesParser
out = []
for key in sorted(box.keys()):
    with box.get_file(key) as f:
        m = BytesParser(policy=policy.default).parse(f)
    out.append([str(m["subject"]), m.get_content(), str(m["to"])])
print(json.dumps(out))
"#;
        if !self.maildir.join("new").exists() {
            return Vec::new();
        }
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&self.maildir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Vec<(String, String, String)> = serde_json::from_slice(&out.stdout).unwrap();
        v.into_iter()
            .map(|(s, b, to)| {
                assert_eq!(to, "security@example.com");
                (s, b)
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(w: &World, server: &MockServer, smtp: &Smtp) {
    w.config(&format!(
        r#"
[organization]
name = "Test Org"

[alerts]
remind_every = "24h"
resolve_after = "30m"
undeliverable_after = "2h"
allow_insecure_urls = true

[[sink]]
kind = "discord"
url_env = "T_DISCORD"

[[sink]]
kind = "slack"
url_env = "T_SLACK"

[[sink]]
kind = "telegram"
token_env = "T_TELEGRAM"
chat_id = "-1001234"
api_url = "{uri}"

[[sink]]
kind = "webhook"
url_env = "T_HOOK"
secret_env = "T_HOOK_SECRET"

[[sink]]
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "annexa@example.com"
to = ["security@example.com"]

[[sink]]
kind = "stdout"

[[sink]]
name = "broken"
kind = "webhook"
url_env = "T_BROKEN"
secret_env = "T_HOOK_SECRET"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "0 * * * *"
paths = ["policies"]
review_grace_days = 30
"#,
        uri = server.uri(),
        port = smtp.port
    ));
}

/// The sinks' secrets, as the environment holds them.
fn sink_env(server: &MockServer) -> Vec<(&'static str, String)> {
    let uri = server.uri();
    vec![
        ("T_DISCORD", format!("{uri}{DISCORD}")),
        ("T_SLACK", format!("{uri}{SLACK}")),
        ("T_TELEGRAM", TELEGRAM_TOKEN.to_string()),
        ("T_HOOK", format!("{uri}{HOOK}")),
        ("T_HOOK_SECRET", HOOK_SECRET.to_string()),
        ("T_BROKEN", format!("{uri}{BROKEN}")),
    ]
}

/// `annexa run` with the clock pinned at `at`.
fn run_at(w: &World, server: &MockServer, at: &str) -> common::Run {
    let clock = format!("{at},0.000000001,{}", chrono::Utc::now().timestamp_millis());
    let mut env = sink_env(server);
    env.push(("ANNEXA_SIMULATED_CLOCK", clock));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = w.annexa_env(&["run"], &env);
    for secret in SECRETS {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

fn received(rt: &tokio::runtime::Runtime, server: &MockServer, p: &str) -> Vec<Request> {
    rt.block_on(server.received_requests())
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn policy(reviewed: &str) -> String {
    common::procedure("ISP-002", reviewed)
}

#[test]
fn gaps_open_once_per_sink_retry_resolve_remind_and_report_undeliverable() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(receivers());
    let w = World::new();
    let smtp = Smtp::start(&w);
    config(&w, &server, &smtp);
    w.write("policies/incident-management.md", &policy("2025-06-01"));
    let telegram = format!("/bot{TELEGRAM_TOKEN}/sendMessage");

    // 10:05: the policy is overdue and most controls have no evidence: one OPEN per gap.
    let first = run_at(&w, &server, "2026-11-22T10:05:00Z").expect(3);
    let hooks = received(&rt, &server, HOOK);
    let opens: Vec<Value> = hooks.iter().map(body).collect();
    let k = opens.len();
    assert!(k >= 5, "{k} gaps: {opens:?}");
    let keys: BTreeSet<&str> = opens
        .iter()
        .map(|m| m["dedup_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), k, "one OPEN per gap");
    assert!(opens.iter().all(|m| m["event"] == "open"));
    // Signed: HMAC-SHA256 over "<timestamp>.<body>".
    for r in &hooks {
        let ts = r
            .headers
            .get("x-annexa-timestamp")
            .unwrap()
            .to_str()
            .unwrap();
        let sig = r
            .headers
            .get("x-annexa-signature")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(
            sig,
            format!(
                "sha256={}",
                annexa::ops::alerts::sign(HOOK_SECRET.as_bytes(), ts, &r.body)
            )
        );
    }
    let overdue = opens
        .iter()
        .find(|m| m["gap"]["code"] == "policy-review-overdue")
        .expect("the overdue policy is a gap");
    let key = overdue["dedup_key"].as_str().unwrap().to_string();
    assert_eq!(key, "policy-review-overdue|ISP-002");
    let title = "[annexa] OPEN: policy-review-overdue on ISP-002 (A.5.24)";
    assert_eq!(overdue["title"], title, "{overdue}");
    // The webhook JSON carries the same, structured: the evidence is the policies run's own.
    let evidence = &overdue["gap"]["evidence"];
    assert_eq!(evidence["collector"], "policies", "{overdue}");
    assert_eq!(evidence["sha256"].as_str().unwrap().len(), 64, "{overdue}");
    assert_eq!(overdue["gap"]["controls"][0]["id"], "A.5.24");
    assert_eq!(overdue["count"], 1);
    assert_eq!(overdue["last_seen"], "2026-11-22T10:05:00Z");
    let text = overdue["text"].as_str().unwrap();
    for line in [
        "What is wrong: policy-review-overdue (fail): ISP-002 was last reviewed on 2025-06-01",
        "Controls: A.5.24 Information security incident management planning and preparation (not satisfied)",
        "Since: 2026-11-22 10:05 UTC",
        &format!(
            "Evidence: run {} of `policies` collected 2026-11-22 10:05 UTC, object {}",
            evidence["run_id"].as_str().unwrap(),
            evidence["object_key"].as_str().unwrap(),
        ),
        "Next step: review the policy document and update its review date",
        "Organization: Test Org",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    assert_eq!(overdue["since"], "2026-11-22T10:05:00Z");
    // Email delivered all of them, with the same words.
    let mails = smtp.messages();
    assert_eq!(mails.len(), k);
    let mail = mails
        .iter()
        .find(|(s, _)| s == title)
        .expect("the overdue policy's mail");
    assert!(
        mail.1.contains("Next step: review the policy document"),
        "{}",
        mail.1
    );
    // stdout too.
    assert!(first.stdout.contains(title), "{}", first.stdout);
    // The first Discord post failed (500), Slack and Telegram were rate limited: each sink
    // stopped there, to keep its order.
    assert_eq!(received(&rt, &server, DISCORD).len(), 1);
    assert_eq!(received(&rt, &server, SLACK).len(), 1, "{}", first.stderr);
    assert_eq!(received(&rt, &server, &telegram).len(), 1);

    // 10:06: Discord is retried after its 30 s backoff; Slack (retry-after 120 s) and Telegram
    // (retry_after 90 s) wait. Nothing changed: no new alerts.
    let second = run_at(&w, &server, "2026-11-22T10:06:00Z").expect(3);
    assert_eq!(received(&rt, &server, DISCORD).len(), k + 1);
    assert_eq!(
        received(&rt, &server, SLACK).len(),
        1,
        "{}\n{}",
        first.stderr,
        second.stderr
    );
    assert_eq!(received(&rt, &server, &telegram).len(), 1);
    assert_eq!(received(&rt, &server, HOOK).len(), k);

    // 10:08: the rate limits have passed.
    run_at(&w, &server, "2026-11-22T10:08:00Z").expect(3);
    let slack = received(&rt, &server, SLACK);
    assert_eq!(slack.len(), k + 1);
    assert!(
        slack
            .iter()
            .skip(1)
            .any(|r| body(r)["text"] == format!("*{title}*\n{text}"))
    );
    let tg = received(&rt, &server, &telegram);
    assert_eq!(tg.len(), k + 1);
    assert!(tg.iter().skip(1).all(|r| body(r)["chat_id"] == "-1001234"));
    let discord = received(&rt, &server, DISCORD);
    assert!(
        discord
            .iter()
            .any(|r| body(r)["content"] == format!("**{title}**\n{text}"))
    );
    assert_eq!(smtp.messages().len(), k, "dedup: no second mail");

    // The policy is reviewed; 11:05 collects it: the gap is gone, but not for 30 min yet.
    w.write(
        "policies/incident-management.md",
        &policy(&common::reviewed_days_ago(1)),
    );
    run_at(&w, &server, "2026-11-22T11:05:00Z");
    assert_eq!(received(&rt, &server, HOOK).len(), k);
    // 11:40: one RESOLVED in each sink.
    run_at(&w, &server, "2026-11-22T11:40:00Z");
    let hooks = received(&rt, &server, HOOK);
    assert_eq!(hooks.len(), k + 1);
    let resolved = body(&hooks[k]);
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["dedup_key"], key.as_str());
    assert!(
        resolved["text"].as_str().unwrap().contains(
            "Open since 2026-11-22 10:05 UTC, gone since 2026-11-22 11:05 UTC (open for 1 h)"
        ),
        "{resolved}"
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), k + 1);
    assert!(
        mails
            .iter()
            .any(|(s, _)| s == "[annexa] RESOLVED: policy-review-overdue on ISP-002 (A.5.24)"),
        "{mails:?}"
    );
    for p in [DISCORD, SLACK, telegram.as_str()] {
        assert_eq!(received(&rt, &server, p).len(), k + 2, "{p}: one RESOLVED");
    }

    // 12:10: the broken sink has failed every alert for over 2 h: reported, still queued.
    let late = run_at(&w, &server, "2026-11-22T12:10:00Z");
    let reports: Vec<&str> = late
        .stdout
        .lines()
        .filter(|l| l.contains(" ERROR ALERT UNDELIVERABLE"))
        .collect();
    assert_eq!(reports.len(), k, "{}", late.stdout);
    assert!(reports.iter().all(|l| l.contains("to sink `broken`")));
    assert!(reports[0].contains("answered HTTP 404"), "{}", reports[0]);
    assert!(reports[1].contains("an earlier alert to this sink is still failing"));
    let again = run_at(&w, &server, "2026-11-22T12:20:00Z");
    assert!(
        !again.stdout.contains("ALERT UNDELIVERABLE"),
        "reported once"
    );
    // …and counted in /metrics.
    let metrics = rt.block_on(async {
        let env = sink_env(&server);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let app = annexa::Annexa::open(w.loaded_config(&env)).await.unwrap();
        annexa::ops::metrics::render(&app).await.unwrap()
    });
    for line in [
        format!("annexa_alerts_undeliverable{{sink=\"broken\"}} {k}"),
        format!(
            "annexa_alert_deliveries_total{{sink=\"webhook\"}} {}",
            k + 1
        ),
        "annexa_alert_delivery_failures_total{sink=\"discord\"} 1".to_string(),
        "annexa_alerts_pending{sink=\"slack\"} 0".to_string(),
        "annexa_open_gaps{control=\"A.5.24\"} 0".to_string(),
    ] {
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    let tries = received(&rt, &server, BROKEN).len();
    assert!(
        tries > 3,
        "the oldest alert to the broken sink is still retried: {tries}"
    );

    // A day later: one reminder per gap still open, none for the resolved one.
    run_at(&w, &server, "2026-11-23T10:10:00Z");
    let reminders: Vec<Value> = received(&rt, &server, HOOK)
        .iter()
        .skip(k + 1)
        .map(body)
        .collect();
    assert_eq!(reminders.len(), k - 1, "{reminders:?}");
    assert!(
        reminders
            .iter()
            .all(|m| m["event"] == "reminder" && m["dedup_key"] != key.as_str())
    );
    assert!(
        reminders[0]["title"]
            .as_str()
            .unwrap()
            .starts_with("[annexa] STILL OPEN after 1 d"),
        "{}",
        reminders[0]["title"]
    );
}

#[test]
fn a_sink_url_to_a_private_address_or_over_http_is_refused_unless_allowed() {
    let w = World::new();
    w.config(
        "[[sink]]\nkind = \"discord\"\nurl_env = \"T_DISCORD\"\n\n[[sink]]\nkind = \"slack\"\nurl_env = \"T_SLACK\"\n",
    );
    let run = w
        .annexa_env(
            &["status"],
            &[
                ("T_DISCORD", "http://discord.com/api/webhooks/1/secret-a"),
                ("T_SLACK", "https://10.0.0.8/services/secret-b"),
            ],
        )
        .expect(2);
    assert!(
        run.stderr
            .contains("sink `discord`: the URL to discord.com is plain http"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("sink `slack`: 10.0.0.8 is not a public address"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("secret-a") && !run.stderr.contains("secret-b"));
}

#[test]
fn an_unreachable_sink_keeps_its_alerts_queued_and_names_only_the_host() {
    let w = World::new();
    let closed = common::free_port();
    w.config(&format!(
        "[alerts]\nallow_insecure_urls = true\n\n[[sink]]\nname = \"siem\"\nkind = \"webhook\"\nurl_env = \"T_HOOK\"\nsecret_env = \"T_HOOK_SECRET\"\n{}",
        common::POLICY_CONFIG
    ));
    w.write("policies/incident-management.md", &policy("2025-06-01"));
    let url = format!("http://127.0.0.1:{closed}/in/unreachable-secret-path");
    let env = [("T_HOOK", url.as_str()), ("T_HOOK_SECRET", HOOK_SECRET)];
    let run = w.annexa_env(&["run"], &env).expect(3);
    assert!(
        run.stderr.contains("sending to 127.0.0.1 failed"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("unreachable-secret-path")
            && !run.stdout.contains("unreachable-secret-path")
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = w.loaded_config(&env);
    rt.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let alerts = app.db.pending_alerts().await.unwrap();
        assert!(!alerts.is_empty());
        assert_eq!(alerts[0].attempts, 1, "tried once, queued for its retry");
        assert!(
            alerts.iter().skip(1).all(|a| a.attempts == 0),
            "the rest wait in order"
        );
        assert!(
            alerts
                .iter()
                .all(|a| !a.body.contains("unreachable-secret-path"))
        );
    });
}

/// An SMTP relay that hangs: it accepts and then never greets (`Hang::Greeting`), greets and
/// goes silent (`Hang::AfterGreeting`), or reads EHLO and never answers (`Hang::AfterEhlo`).
#[derive(Debug, Clone, Copy)]
enum Hang {
    Greeting,
    AfterGreeting,
    AfterEhlo,
}

fn hung_smtp(hang: Hang) -> u16 {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                if !matches!(hang, Hang::Greeting) {
                    let _ = stream.write_all(b"220 relay.example ESMTP\r\n");
                }
                if matches!(hang, Hang::AfterEhlo) {
                    let mut line = String::new();
                    let _ = std::io::BufReader::new(&stream).read_line(&mut line);
                }
                // Hold the connection open, saying nothing.
                std::thread::sleep(std::time::Duration::from_secs(3600));
            });
        }
    });
    port
}

fn hung_sink_config(port: u16, attempt_timeout: &str) -> String {
    format!(
        "[alerts]\nallow_insecure_urls = true\nattempt_timeout = \"{attempt_timeout}\"\n\n\
         [[sink]]\nname = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         from = \"annexa@example.com\"\nto = [\"security@example.com\"]\n{}",
        common::POLICY_CONFIG
    )
}

/// Issue 15: a hung SMTP relay hung `annexa run` forever (3 of 3 ways, killed at 150 s with a
/// 20 s timeout configured). Each attempt now ends at its deadline; the alert stays queued.
#[test]
fn a_hung_smtp_relay_costs_one_attempt_deadline_and_the_alert_stays_queued() {
    for hang in [Hang::Greeting, Hang::AfterGreeting, Hang::AfterEhlo] {
        let w = World::new();
        w.config(&hung_sink_config(hung_smtp(hang), "2s"));
        w.write("policies/incident-management.md", &policy("2025-06-01"));
        let started = std::time::Instant::now();
        let run = w.annexa(&["run"]).expect(3);
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(20),
            "{hang:?}: annexa run took {took:?}\n{}",
            run.stderr
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = w.loaded_config(&[]);
        rt.block_on(async {
            let app = annexa::Annexa::open(config).await.unwrap();
            let alerts = app.db.pending_alerts().await.unwrap();
            assert!(!alerts.is_empty(), "{hang:?}: the alerts stay queued");
            assert_eq!(alerts[0].attempts, 1, "{hang:?}");
            assert!(
                alerts[0]
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("within 2s") || e.contains("timed out")),
                "{hang:?}: {:?}",
                alerts[0].last_error
            );
        });
    }
}

#[test]
fn an_accepted_exception_hides_its_alert_until_it_ends_then_the_gap_reopens() {
    let w = World::new();
    w.config(
        r#"
[alerts]
resolve_after = "1h"

[[sink]]
kind = "stdout"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "0 * * * *"
paths = ["policies"]
"#,
    );
    w.write("policies/incident-management.md", &policy("2025-06-01"));
    let opened = |run: &common::Run| {
        run.stdout
            .lines()
            .filter(|l| {
                l.contains(" WARN [annexa] OPEN: policy-review-overdue on ISP-002 (A.5.24)")
            })
            .count()
    };
    let first = w.annexa_at("2026-11-22T10:05:00Z", &["run"]).expect(3);
    assert_eq!(opened(&first), 1, "{}", first.stdout);

    // Bad acceptances are refused with every reason at once, and record nothing.
    let bad = w
        .annexa_at(
            "2026-11-22T10:10:00Z",
            &[
                "accept",
                "--control",
                "A.9.99",
                "--code",
                "evidence-stale",
                "--reason",
                " ",
                "--until",
                "2026-11-01",
                "--by",
                "CISO",
            ],
        )
        .expect(2);
    for reason in ["A.9.99", "evidence-stale", "--reason", "already past"] {
        assert!(bad.stderr.contains(reason), "{reason}: {}", bad.stderr);
    }
    let too_long = w
        .annexa_at(
            "2026-11-22T10:10:00Z",
            &[
                "accept",
                "--control",
                "A.5.24",
                "--code",
                "policy-review-overdue",
                "--reason",
                "x",
                "--until",
                "2028-01-01",
                "--by",
                "CISO",
            ],
        )
        .expect(2);
    assert!(
        too_long.stderr.contains("max_exception"),
        "{}",
        too_long.stderr
    );

    let accepted = w
        .annexa_at(
            "2026-11-22T10:10:00Z",
            &[
                "--json",
                "accept",
                "--control",
                "A.5.24",
                "--code",
                "policy-review-overdue",
                "--subject",
                "ISP-002",
                "--reason",
                "Rewrite for the new ISMS scope under way",
                "--until",
                "2026-12-01",
                "--by",
                "Jane Doe (CISO)",
            ],
        )
        .expect(0)
        .json();
    let event = accepted["event"].as_str().unwrap().to_string();

    // While it lasts: shown as accepted, counted as a warning, no alert, the gap resolves.
    let doc = w
        .annexa_at("2026-11-22T10:15:00Z", &["status", "--json"])
        .json();
    let a524 = common::control(&doc, "A.5.24");
    assert_eq!(a524["status"], "satisfied", "{a524}");
    let f = &a524["findings"][0];
    assert_eq!(f["code"], "policy-review-overdue");
    assert_eq!(f["level"], "warn");
    assert_eq!(f["accepted"]["by"], "Jane Doe (CISO)");
    assert_eq!(f["accepted"]["until"], "2026-12-02T00:00:00Z");
    assert_eq!(f["accepted"]["event"], event.as_str());
    // The open gap resolves at once, saying it was accepted, not fixed; its end is warned of
    // once (it falls within warn_before).
    let during = w.annexa_at("2026-11-22T12:05:00Z", &["run"]);
    assert_eq!(opened(&during), 0, "{}", during.stdout);
    assert!(!during.stdout.contains("STILL OPEN"), "{}", during.stdout);
    assert!(
        during.stdout.contains(
            "[annexa] RESOLVED (accepted): policy-review-overdue on ISP-002 (A.5.24)\nResolved: "
        ),
        "{}",
        during.stdout
    );
    assert!(
        during.stdout.contains("Not fixed: accepted as an exception by Jane Doe (CISO) until 2026-12-02 00:00 UTC: Rewrite for the new ISMS scope under way."),
        "{}",
        during.stdout
    );
    let warning = "[annexa] WARNING: the end of the exception for policy-review-overdue on ISP-002 accepted by Jane Doe (CISO) (Rewrite for the new ISMS scope under way) is due by 2026-12-02 00:00 UTC, in 9 d 11 h 55 min (A.5.24)";
    assert!(during.stdout.contains(warning), "{}", during.stdout);
    let later = w.annexa_at("2026-11-25T12:05:00Z", &["run"]);
    assert_eq!(opened(&later), 0, "{}", later.stdout);
    for once in ["[annexa] WARNING", "[annexa] RESOLVED"] {
        assert!(!later.stdout.contains(once), "sent once: {}", later.stdout);
    }

    let list = w
        .annexa_at("2026-11-25T12:10:00Z", &["accept", "--list"])
        .expect(0);
    assert!(
        list.stdout.contains(&event) && list.stdout.contains("active"),
        "{}",
        list.stdout
    );

    // Past its end the gap opens again.
    let after = w.annexa_at("2026-12-02T00:05:00Z", &["run"]).expect(3);
    assert_eq!(opened(&after), 1, "{}", after.stdout);
    let list = w
        .annexa_at("2026-12-02T00:10:00Z", &["accept", "--list"])
        .expect(0);
    assert!(list.stdout.contains("expired"), "{}", list.stdout);

    // A revoked acceptance ends when it is revoked; the audit trail keeps both events.
    w.annexa_at(
        "2026-12-02T00:20:00Z",
        &[
            "accept",
            "--control",
            "A.5.24",
            "--code",
            "policy-review-overdue",
            "--reason",
            "again",
            "--until",
            "2026-12-20",
            "--by",
            "CISO",
        ],
    )
    .expect(0);
    let second = w
        .annexa_at("2026-12-02T00:21:00Z", &["--json", "accept", "--list"])
        .json();
    let second = second[1]["event"].as_str().unwrap().to_string();
    let doc = w
        .annexa_at("2026-12-02T00:25:00Z", &["status", "--json"])
        .json();
    assert!(doc.to_string().contains(&second));
    w.annexa_at(
        "2026-12-02T00:30:00Z",
        &["accept", "--revoke", &second, "--by", "CISO"],
    )
    .expect(0);
    let doc = w
        .annexa_at("2026-12-02T00:35:00Z", &["status", "--json"])
        .json();
    assert!(!doc.to_string().contains("\"accepted\""), "{doc}");
    // As of before the revocation, it still stood.
    let before = w
        .annexa_at(
            "2026-12-02T00:35:00Z",
            &["--as-of", "2026-12-02T00:25:00Z", "status", "--json"],
        )
        .json();
    assert!(before.to_string().contains(&second));
    w.annexa_at("2026-12-02T00:40:00Z", &["verify"]).expect(0);
}

/// The clock of an in-process simulation: set by the test, hour by hour.
struct SetClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl annexa_collectors::Clock for SetClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

/// What the stdout sinks printed, as JSON, per evaluation.
#[derive(Default)]
struct Printed(std::sync::Mutex<Vec<Value>>);

impl annexa::ops::Output for Printed {
    fn event(&self, _level: annexa::ops::Level, _text: &str, json: Value) -> std::io::Result<()> {
        self.0.lock().unwrap().push(json);
        Ok(())
    }

    fn note(&self, _text: &str) {}
}

const REGISTER_HEADER: &str = "id,title,severity,category,detected_at,triaged_at,contained_at,resolved_at,closed_at,status,owner,postmortem,postmortem_at,personal_data_breach,authority_notified_at,customers_notified_at\n";

/// November 2026 with an hourly evaluation and hourly cron-health: the job `db-backup` is down
/// on the 10th, ISP-002's review falls overdue on the 15th (fixed on the 20th), and INC-1 is
/// triaged a day late. One OPEN per problem and per control no source evidences, ≤ 1 reminder
/// per gap and day, one WARNING per due date; a digest sink gets ≤ 1 message per evaluation
/// with news and none without, each within Discord's and Telegram's limits; cron-health's
/// store grows by under 2 MB.
#[test]
fn a_month_of_hourly_evaluations_sends_one_message_per_problem() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        for p in [
            DISCORD.to_string(),
            SLACK.to_string(),
            format!("/bot{TELEGRAM_TOKEN}/sendMessage"),
        ] {
            Mock::given(method("POST"))
                .and(path(p))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
                .mount(&server)
                .await;
        }
        server
    });
    let w = World::new();
    w.config(&format!(
        r#"
[organization]
name = "Test Org"

# A checkpoint per run would make this month's 2,000 runs 2,000 checkpoints to check.
[ledger]
checkpoint_every_run = false

[alerts]
remind_every = "24h"
resolve_after = "1h"
warn_before = "14d"
allow_insecure_urls = true

[[sink]]
name = "each"
kind = "stdout"

[[sink]]
name = "digest"
kind = "stdout"
mode = "digest"
quiet_hours = "22:00-07:00"

[[sink]]
kind = "discord"
url_env = "T_DISCORD"
mode = "digest"

[[sink]]
kind = "slack"
url_env = "T_SLACK"
mode = "digest"

[[sink]]
kind = "telegram"
token_env = "T_TELEGRAM"
chat_id = "-1001234"
api_url = "{uri}"
mode = "digest"

[[job]]
name = "db-backup"
schedule = "0 * * * *"
grace = "15m"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "0 */6 * * *"
paths = ["policies"]
review_grace_days = 0

[[collector]]
name = "incidents"
kind = "incident-log"
schedule = "0 */6 * * *"
register = "register.csv"

[[collector]]
name = "cron"
kind = "cron-health"
schedule = "0 * * * *"
jobs = ["db-backup"]
"#,
        uri = server.uri()
    ));
    w.write("policies/incident-management.md", &policy("2025-11-14"));
    w.write("register.csv", REGISTER_HEADER);
    let env = sink_env(&server);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = w.loaded_config(&env);
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:30:00Z")
        .unwrap()
        .to_utc();
    let clock = std::sync::Arc::new(SetClock(std::sync::Mutex::new(start)));
    let set = |t: chrono::DateTime<chrono::Utc>| *clock.0.lock().unwrap() = t;
    let hours = 30 * 24;
    let (per_tick, cron_bytes) = rt.block_on(async {
        use annexa::evidence::heartbeats::{Via, record_ping};
        use annexa_collectors::cron_health::PingKind;
        let app = annexa::Annexa::open_with_clock(config, clock.clone())
            .await
            .unwrap();
        let ping = |at| record_ping(&app.db, &app.config, "db-backup", PingKind::Success, None, None, Via::Cli, at);
        ping(start - chrono::Duration::minutes(85)).await.unwrap();
        let client = annexa::ops::alerts::http_client(&app.config);
        let holder = annexa::ops::scheduler::holder_id();
        let (_never, stop) = tokio::sync::watch::channel(false);
        let incident = |triaged: &str, resolved: &str, status: &str| {
            format!("{REGISTER_HEADER}INC-1,Payment webhook retries exhausted,Sev3,availability,2026-11-12T10:00:00Z,{triaged},,{resolved},,{status},Platform,,,false,,\n")
        };
        let mut per_tick: Vec<(chrono::DateTime<chrono::Utc>, Vec<Value>)> = Vec::new();
        for h in 0..hours {
            let t = start + chrono::Duration::hours(h);
            let ping_at = t - chrono::Duration::minutes(25);
            if ping_at.format("%d").to_string() != "10" {
                set(ping_at);
                ping(ping_at).await.unwrap();
            }
            match t.format("%d %H").to_string().as_str() {
                "12 10" => w.write("register.csv", &incident("", "", "open")),
                "14 09" => w.write("register.csv", &incident("2026-11-14T09:00:00Z", "", "open")),
                "16 12" => w.write(
                    "register.csv",
                    &incident("2026-11-14T09:00:00Z", "2026-11-16T12:00:00Z", "resolved"),
                ),
                "20 09" => w.write("policies/incident-management.md", &policy("2026-11-20")),
                _ => {}
            }
            set(t);
            let out = Printed::default();
            let report = annexa::ops::scheduler::tick(
                &app,
                &[],
                &holder,
                &client,
                &out,
                annexa::ops::scheduler::Delivery::Inline,
                &stop,
            )
            .await
            .unwrap();
            assert!(report.errors.is_empty(), "{t}: {:?}", report.errors);
            per_tick.push((t, out.0.into_inner().unwrap()));
        }
        // What cron-health's runs added to the store: their objects and their manifests.
        let objects: i64 = app
            .db
            .all_evidence()
            .await
            .unwrap()
            .iter()
            .filter(|e| e.collector == "cron")
            .map(|e| e.size)
            .sum();
        let mut manifests = 0;
        for run in app.db.finished_runs().await.unwrap() {
            if let (true, Some(key)) = (run.collector == "cron", &run.manifest_key) {
                manifests += app.store.read(key).await.unwrap().len() as i64;
            }
        }
        (per_tick, objects + manifests)
    });

    let alerts = |digest: bool| -> Vec<(chrono::DateTime<chrono::Utc>, Value)> {
        per_tick
            .iter()
            .flat_map(|(t, printed)| printed.iter().map(move |p| (*t, p["alert"].clone())))
            .filter(|(_, a)| (a["event"] == "digest") == digest)
            .collect()
    };
    let each = alerts(false);
    let of = |event: &str| -> Vec<&(chrono::DateTime<chrono::Utc>, Value)> {
        each.iter().filter(|(_, a)| a["event"] == event).collect()
    };
    let keys = |list: &[&(chrono::DateTime<chrono::Utc>, Value)]| -> Vec<String> {
        list.iter()
            .map(|(_, a)| a["dedup_key"].as_str().unwrap().to_string())
            .collect()
    };
    // One OPEN per problem, and one per control no configured source evidences (at once).
    let mut opened = keys(&of("open"));
    opened.sort();
    assert_eq!(
        opened,
        [
            "evidence-missing|A.5.30",
            "evidence-missing|A.8.13",
            "evidence-missing|A.8.8",
            "heartbeat-missed|db-backup",
            "incident-triage-late|INC-1",
            "policy-review-overdue|ISP-002",
        ],
        "{each:#?}"
    );
    let job = of("open")
        .into_iter()
        .find(|(_, a)| a["dedup_key"] == "heartbeat-missed|db-backup")
        .unwrap();
    assert_eq!(job.0.to_rfc3339(), "2026-11-10T00:30:00+00:00");
    assert_eq!(
        job.1["gap"]["controls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["A.5.36", "A.8.16"],
        "one gap for both controls"
    );
    // The day down: 24 missed slots, told of by at most two UPDATEs.
    let updates = of("update");
    assert!(updates.len() <= 2, "{updates:#?}");
    let last_reminder = of("reminder")
        .into_iter()
        .rfind(|(_, a)| a["dedup_key"] == "heartbeat-missed|db-backup")
        .expect("the missed slots stay in the 30-day window");
    assert_eq!(last_reminder.1["count"], 24, "{}", last_reminder.1);
    assert!(
        last_reminder.1["text"]
            .as_str()
            .unwrap()
            .contains("24 slots from 2026-11-10T00:00:00Z to 2026-11-10T23:00:00Z"),
        "{}",
        last_reminder.1["text"]
    );
    // Reminders: at most one per gap and day.
    let mut per_day = std::collections::BTreeMap::<(String, String), usize>::new();
    for (t, a) in of("reminder") {
        *per_day
            .entry((a["dedup_key"].to_string(), t.format("%F").to_string()))
            .or_default() += 1;
    }
    assert!(per_day.values().all(|n| *n == 1), "{per_day:?}");
    // The review was fixed: one RESOLVED; the others are still open at the month's end.
    assert_eq!(keys(&of("resolved")), ["policy-review-overdue|ISP-002"]);
    // Warnings: the review (due in 14 days at the start), INC-1's triage and resolution
    // targets; each once.
    let mut warned = keys(&of("warning"));
    warned.sort();
    assert_eq!(
        warned,
        [
            "warning|incident-open-overdue|INC-1|2026-11-26T10:00:00Z",
            "warning|incident-triage-late|INC-1|2026-11-13T10:00:00Z",
            "warning|policy-review-overdue|ISP-002|2026-11-15T00:00:00Z",
        ],
        "{:#?}",
        of("warning")
    );
    let total = each.len();

    // Digests: one message per evaluation with news, none without; Discord and Telegram
    // posts fit their services. The `digest` stdout sink keeps quiet 22:00–07:00 UTC: what
    // comes then goes in the first digest after, nothing lost or repeated.
    let quiet = |t: &chrono::DateTime<chrono::Utc>| {
        let h: u32 = t.format("%H").to_string().parse().unwrap();
        !(7..22).contains(&h)
    };
    let mut with_news = 0;
    let mut held = 0;
    let mut digested: Vec<(String, String)> = Vec::new();
    for (t, printed) in &per_tick {
        let news = printed
            .iter()
            .filter(|p| p["alert"]["event"] != "digest")
            .count();
        with_news += usize::from(news > 0);
        held += news;
        let digests: Vec<&Value> = printed
            .iter()
            .filter(|p| p["alert"]["event"] == "digest")
            .collect();
        if quiet(t) {
            assert!(digests.is_empty(), "{t}: quiet hours: {digests:#?}");
        } else {
            assert_eq!(digests.len(), usize::from(held > 0), "{t}: {printed:#?}");
            held = 0;
        }
        for d in digests {
            digested.extend(
                d["alert"]["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["event"].to_string(), e["dedup_key"].to_string())),
            );
        }
    }
    // What came after the month's last evaluation outside quiet hours is still held.
    let last_sent = per_tick
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| !quiet(t))
        .max()
        .unwrap();
    let mut sent_each: Vec<(String, String)> = each
        .iter()
        .filter(|(t, _)| *t <= last_sent)
        .map(|(_, a)| (a["event"].to_string(), a["dedup_key"].to_string()))
        .collect();
    let mut digested_sorted = digested.clone();
    sent_each.sort();
    digested_sorted.sort();
    assert_eq!(
        digested_sorted, sent_each,
        "every message once, in a digest"
    );
    let digests = alerts(true);
    assert!(
        digests[0].1["title"]
            .as_str()
            .unwrap()
            .starts_with("[annexa] Digest: 3 new, 1 warning, 0 still open"),
        "{}",
        digests[0].1["title"]
    );
    let sent = |p: &str, field: &str, limit: usize| {
        let bodies = received(&rt, &server, p);
        assert_eq!(
            bodies.len(),
            with_news,
            "{p}: one post per evaluation with news"
        );
        for r in bodies {
            let n = body(&r)[field].as_str().unwrap().chars().count();
            assert!(n <= limit, "{p}: {n} characters");
        }
    };
    sent(DISCORD, "content", 2000);
    sent(&format!("/bot{TELEGRAM_TOKEN}/sendMessage"), "text", 4096);
    // Slack: at most 10 section blocks of at most 3,000 characters.
    sent(SLACK, "text", 40_000);
    for r in received(&rt, &server, SLACK) {
        let blocks = body(&r)["blocks"].as_array().unwrap().clone();
        assert!((1..=10).contains(&blocks.len()), "{} blocks", blocks.len());
        for b in blocks {
            assert_eq!(b["type"], "section");
            assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
        }
    }

    // cron-health: a month of hourly snapshots of one hourly job (≈ 200 MB before deltas).
    assert!(
        cron_bytes < 2_000_000,
        "cron-health stored {cron_bytes} bytes"
    );
    println!(
        "a month: {total} messages to an `each` sink, {} digests; cron-health stored {cron_bytes} bytes",
        digests.len()
    );
}
