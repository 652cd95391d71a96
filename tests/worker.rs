//! `annexa worker` as real processes: two workers racing over a day of hourly slots on one
//! PostgreSQL database (simulated clock), `kill -9` of the worker holding a slot, SIGTERM
//! draining or cutting the run in flight, one worker at a time on SQLite, and the HTTP
//! endpoint (/health, /ready, /metrics, POST /ping/{job}).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, World};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A world whose database is PostgreSQL on either backend pass (the store follows the pass).
fn postgres_world() -> World {
    let mut w = World::new();
    if w.database_url.is_none() {
        let url = common::fresh_postgres_database();
        w.env.push(("ANNEXA_DATABASE__URL".into(), url.clone()));
        w.database_url = Some(url);
    }
    w
}

/// Runs SQL on the world's PostgreSQL database; rows as `|`-separated lines.
fn psql(w: &World, sql: &str) -> String {
    common::psql(w.database_url.as_ref().expect("a PostgreSQL world"), sql)
}

/// A worker process whose output goes to files in the world.
struct Worker {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    port: u16,
}

impl Worker {
    fn start(w: &World, name: &str, env: &[(&str, &str)]) -> Worker {
        let port = common::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut env: Vec<(&str, &str)> = env.to_vec();
        env.push(("ANNEXA_WORKER__LISTEN", &listen));
        let out = w.path(&format!("{name}.out"));
        let err = w.path(&format!("{name}.err"));
        let child = w
            .command(&["worker"], &env)
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
            .spawn()
            .expect("annexa worker starts");
        Worker {
            child,
            out,
            err,
            port,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Waits until stdout contains `text`.
    fn wait_for(&self, text: &str, limit: Duration) {
        let start = Instant::now();
        while !self.stdout().contains(text) {
            assert!(
                start.elapsed() < limit,
                "worker did not print {text:?} within {limit:?}\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit code within `limit`.
    fn stop(mut self, limit: Duration) -> (i32, String) {
        self.signal("-TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), self.output());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("worker did not stop within {limit:?}\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One HTTP/1.1 request to the worker; status code and body.
    fn http(&self, request_line: &str, headers: &[&str], body: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req =
            format!("{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for h in headers {
            req.push_str(&format!("{h}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let code = resp[9..12].parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn epoch_ms_in(delay: Duration) -> i64 {
    chrono::Utc::now().timestamp_millis() + delay.as_millis() as i64
}

/// Sleeps until `ms` real milliseconds after the simulated clock's `epoch`.
fn sleep_until_ms_after(epoch: i64, ms: i64) {
    let left = epoch + ms - chrono::Utc::now().timestamp_millis();
    std::thread::sleep(Duration::from_millis(left.max(0) as u64));
}

const TWO_HOURLY_COLLECTORS: &str = r#"
[organization]
name = "Test Org"

[worker]
lease = "1h"
drain = "1h"
evaluate_every = "3h"

[report]
schedule = "0 6 * * *"
formats = ["json", "md"]

[[job]]
name = "nightly-backup"
schedule = "0 2 * * *"
token_env = "ANNEXA_TEST_PING_TOKEN"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "0 * * * *"
grace = "3h"
paths = ["policies"]
review_grace_days = 30

[[collector]]
name = "policies-b"
kind = "policy-document"
schedule = "0 * * * *"
grace = "3h"
paths = ["policies"]
review_grace_days = 30
"#;

#[test]
fn two_workers_on_postgres_run_a_day_of_hourly_slots_exactly_once() {
    let w = postgres_world();
    w.config(TWO_HOURLY_COLLECTORS);
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    // One simulated hour per real second, from 2026-11-21 23:59 (two seconds from now).
    let epoch = epoch_ms_in(Duration::from_secs(2));
    let clock = format!("2026-11-21T23:59:00Z,3600,{epoch}");
    let env = [
        ("ANNEXA_SIMULATED_CLOCK", clock.as_str()),
        ("ANNEXA_TEST_PING_TOKEN", "ping-s3cret"),
    ];
    let a = Worker::start(&w, "worker-a", &env);
    let b = Worker::start(&w, "worker-b", &env);
    a.wait_for("serving http://", Duration::from_secs(20));
    b.wait_for("serving http://", Duration::from_secs(20));

    // The HTTP endpoint, while the day goes by.
    assert_eq!(a.http("GET /health", &[], ""), (200, "ok\n".into()));
    assert_eq!(b.http("GET /ready", &[], ""), (200, "ready\n".into()));
    let (code, body) = a.http(
        "POST /ping/nightly-backup?status=fail",
        &["Authorization: Bearer ping-s3cret"],
        "disk full",
    );
    assert_eq!(
        (code, body.as_str()),
        (200, "recorded fail for nightly-backup\n")
    );
    let (code, body) = a.http(
        "POST /ping/nightly-backup",
        &["Authorization: Bearer wrong"],
        "",
    );
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("ping-s3cret"));
    let (code, _) = b.http("POST /ping/no-such-job", &[], "");
    assert_eq!(code, 404);
    let (code, body) = b.http(
        "POST /ping/nightly-backup?status=maybe",
        &["Authorization: Bearer ping-s3cret"],
        "",
    );
    assert_eq!(
        (code, body.as_str()),
        (400, "status `maybe`: use start, success or fail\n")
    );
    assert_eq!(
        psql(
            &w,
            "SELECT kind || ' ' || source || ' ' || message FROM heartbeats"
        ),
        "fail http disk full"
    );

    // Until 2026-11-23 00:50, simulated.
    let until = epoch + 24_833 - chrono::Utc::now().timestamp_millis();
    std::thread::sleep(Duration::from_millis(until.max(0) as u64));
    let (code, metrics) = b.http("GET /metrics", &[], "");
    assert_eq!(code, 200);
    for line in [
        "# TYPE annexa_runs counter",
        "annexa_runs_total{collector=\"policies\",status=\"succeeded\"} 26",
        "annexa_runs_total{collector=\"policies-b\",status=\"succeeded\"} 26",
        "annexa_last_success_timestamp_seconds{collector=\"policies\"} ",
        "annexa_open_gaps{control=\"A.8.16\"} ",
    ] {
        assert!(
            metrics.contains(line),
            "{line} not in\n{metrics}\nslots:\n{}",
            psql(
                &w,
                "SELECT collector || ' ' || slot || ' ' || started_at FROM runs ORDER BY slot"
            )
        );
    }
    // A real OpenMetrics parser reads all of it, each family with its type (issue 22).
    let families = openmetrics_families(&metrics);
    for (name, kind) in [
        ("annexa_build", "info"),
        ("annexa_runs", "counter"),
        ("annexa_run_duration_seconds", "histogram"),
        ("annexa_last_success_timestamp_seconds", "gauge"),
        ("annexa_next_slot_timestamp_seconds", "gauge"),
        ("annexa_evidence_objects", "gauge"),
        ("annexa_evidence_bytes", "gauge"),
        ("annexa_ledger_size", "gauge"),
        ("annexa_checkpoint_age_seconds", "gauge"),
        ("annexa_open_gaps", "gauge"),
    ] {
        assert_eq!(
            families.get(name).map(|(k, _)| k.as_str()),
            Some(kind),
            "{name} in {families:?}"
        );
    }
    // 26 runs per collector, each observed once by the duration histogram.
    let (_, samples) = &families["annexa_run_duration_seconds"];
    assert!(
        samples.contains(&"annexa_run_duration_seconds_count{collector=policies} 26".to_string()),
        "{samples:?}"
    );
    let printed = [a.stdout(), b.stdout()];
    let (code_a, out_a) = a.stop(Duration::from_secs(30));
    let (code_b, out_b) = b.stop(Duration::from_secs(30));
    assert_eq!((code_a, code_b), (0, 0), "{out_a}\n{out_b}");

    for collector in ["policies", "policies-b"] {
        // Every hour of 2026-11-22 has exactly one run, whichever worker took it.
        let per_slot = psql(
            &w,
            &format!(
                "SELECT slot || ' ' || COUNT(*) || ' ' || string_agg(status, ',') FROM runs \
                 WHERE collector = '{collector}' AND slot LIKE '2026-11-22T%' GROUP BY slot ORDER BY slot"
            ),
        );
        let expected: Vec<String> = (0..24)
            .map(|h| format!("2026-11-22T{h:02}:00:00.000000Z 1 succeeded"))
            .collect();
        assert_eq!(
            per_slot,
            expected.join("\n"),
            "{collector}\n{out_a}\n{out_b}"
        );
    }
    assert_eq!(
        psql(
            &w,
            "SELECT COUNT(*) FROM runs WHERE slot IS NOT NULL GROUP BY collector, slot HAVING COUNT(*) > 1"
        ),
        ""
    );
    // Both took part in the race.
    for (name, out) in [("a", &out_a), ("b", &out_b)] {
        assert!(
            out.contains(": run ") && out.contains(" succeeded"),
            "worker {name} ran nothing\n{out}"
        );
    }
    // Each line of a worker is a log line: an RFC 3339 time, then its level.
    for stdout in &printed {
        for line in stdout.lines() {
            let (time, rest) = line.split_once(' ').unwrap_or((line, ""));
            assert!(
                chrono::DateTime::parse_from_rfc3339(time).is_ok(),
                "no time: {line}"
            );
            let level = rest.trim_start().split(' ').next().unwrap_or("");
            assert!(
                ["INFO", "WARN", "ERROR"].contains(&level),
                "no level: {line}"
            );
        }
    }
    // The daily tasks: once per day, whichever worker did them.
    assert_eq!(
        psql(
            &w,
            "SELECT task || ' ' || slot FROM task_slots WHERE slot LIKE '2026-11-22%' ORDER BY task"
        ),
        "checkpoint 2026-11-22T00:00:00.000000Z\nreport 2026-11-22T06:00:00.000000Z\nverify 2026-11-22T00:30:00.000000Z"
    );
    let report = psql(
        &w,
        "SELECT outcome FROM task_slots WHERE task = 'report' AND slot LIKE '2026-11-22%'",
    );
    assert!(
        report.contains("for 2026-10"),
        "the last full month: {report}"
    );
    let dir = report.rsplit(" written to ").next().unwrap();
    for file in [
        "report.json",
        "report.md",
        "manifest.json",
        "manifest.json.sig",
    ] {
        assert!(
            std::path::Path::new(dir).join(file).exists(),
            "{dir}/{file}"
        );
    }
    let verified = psql(
        &w,
        "SELECT outcome FROM task_slots WHERE task = 'verify' AND slot LIKE '2026-11-22%'",
    );
    assert!(verified.contains("no violations"), "{verified}");
}

/// A GitHub stand-in whose Dependabot endpoint answers after `delay` (real time).
async fn slow_github(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octocat/hello-world/dependabot/alerts"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!([]))
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    for p in ["code-scanning", "secret-scanning"] {
        Mock::given(method("GET"))
            .and(path(format!("/repos/octocat/hello-world/{p}/alerts")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
            .mount(&server)
            .await;
    }
    server
}

fn slow_config(server: &MockServer, worker: &str) -> String {
    format!(
        "[outbound]\nallow_insecure_urls = true\n\n[worker]\n{worker}\n\n[[collector]]\nname = \"github\"\nkind = \"github-alerts\"\n\
         schedule = \"* * * * *\"\nrepos = [\"octocat/hello-world\"]\nbase_url = \"{}\"\n\
         token_env = \"ANNEXA_TEST_GH_TOKEN\"\n",
        server.uri()
    )
}

/// Waits until the stand-in has been asked for Dependabot alerts `n` times: a run is in flight.
fn wait_for_requests(rt: &tokio::runtime::Runtime, server: &MockServer, n: usize) {
    let start = Instant::now();
    while rt
        .block_on(server.received_requests())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().contains("dependabot"))
        .count()
        < n
    {
        assert!(start.elapsed() < Duration::from_secs(30), "no run started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const GH: (&str, &str) = ("ANNEXA_TEST_GH_TOKEN", "ghp_worker_test");

#[test]
fn kill_9_of_the_worker_running_a_slot_lets_another_worker_take_it_over() {
    // The slot is a minute long: started in its last seconds, the takeover would find the next
    // slot due and run that one (the cancelled slot is retried a minute later, as a failed one
    // is), which is another test's case.
    use chrono::Timelike;
    let second = chrono::Utc::now().second();
    if second > 30 {
        std::thread::sleep(Duration::from_secs(u64::from(61 - second)));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(slow_github(Duration::from_secs(4)));
    let w = postgres_world();
    w.config(&slow_config(&server, "lease = \"3s\"\ndrain = \"30s\""));
    let a = Worker::start(&w, "worker-a", &[GH]);
    wait_for_requests(&rt, &server, 1);
    // A holds the slot; B starts, finds the lease taken, and waits for it.
    let b = Worker::start(&w, "worker-b", &[GH]);
    b.wait_for("serving http://", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    a.signal("-KILL");

    let start = Instant::now();
    let cancelled = loop {
        let row = psql(
            &w,
            "SELECT c.cancelled_slot || ' ' || c.error FROM runs c JOIN runs s \
             ON s.slot = c.cancelled_slot AND s.collector = c.collector \
             WHERE c.status = 'cancelled' AND s.status = 'succeeded'",
        );
        if !row.is_empty() {
            break row;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no worker took the slot over\n{}",
            b.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Both workers run on this host, so B sees at once that A's process is gone (issue 15);
    // a worker on another host would take over when A's lease expires.
    assert!(
        cancelled.contains("is gone; its slot is free again")
            || cancelled.contains("stopped renewing it); its slot is free again")
            || cancelled.contains("stopped renewing its lease; the slot was taken over by"),
        "{cancelled}"
    );
    let slot = cancelled.split(' ').next().unwrap();
    assert_eq!(
        psql(
            &w,
            &format!("SELECT status FROM runs WHERE slot = '{slot}'")
        ),
        "succeeded",
        "exactly one run holds the slot"
    );
    let (code, out) = b.stop(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn sigterm_drains_the_run_in_flight_or_cancels_it_at_the_deadline() {
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Drained: the run finishes within the deadline.
    let server = rt.block_on(slow_github(Duration::from_secs(2)));
    let w = World::new();
    w.config(&slow_config(&server, "drain = \"30s\""));
    let worker = Worker::start(&w, "worker", &[GH]);
    wait_for_requests(&rt, &server, 1);
    let (code, out) = worker.stop(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stopping: no new work; waiting up to 30s"),
        "{out}"
    );
    assert!(
        out.contains("github slot ") && out.contains(" succeeded"),
        "{out}"
    );
    let status = w.annexa(&["status", "--json"]).json();
    let a88 = common::control(&status, "A.8.8").clone();
    assert_eq!(a88["evidence"][0]["collector"], "github", "{a88}");

    // Cut: the run outlives the deadline and is recorded as cancelled, its slot left free.
    let server = rt.block_on(slow_github(Duration::from_secs(8)));
    let w = World::new();
    w.config(&slow_config(&server, "drain = \"1s\""));
    let worker = Worker::start(&w, "worker", &[GH]);
    wait_for_requests(&rt, &server, 1);
    let (code, out) = worker.stop(Duration::from_secs(10));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cancelled at shutdown"), "{out}");
    let rt2 = tokio::runtime::Runtime::new().unwrap();
    let config = w.loaded_config(&[GH]);
    rt2.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let run = app.db.run(&latest_run_id(&out)).await.unwrap().unwrap();
        assert_eq!(run.status, annexa::db::RunStatus::Cancelled);
        assert_eq!(run.slot, None, "a cancelled run gives its slot up");
        assert!(
            run.error
                .unwrap()
                .contains("did not finish within the 1s drain deadline")
        );
    });
}

/// The run id in "github: run <id> for slot … cancelled at shutdown".
fn latest_run_id(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.contains("cancelled at shutdown"))
        .unwrap();
    line.split(" run ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn on_sqlite_a_second_worker_says_the_lease_is_held_and_waits() {
    let w = World::with_backend(Backend::Local);
    w.config(&format!(
        "[worker]\nlease = \"3s\"\n{}",
        common::POLICY_CONFIG
    ));
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    let a = Worker::start(&w, "worker-a", &[]);
    a.wait_for("policies slot ", Duration::from_secs(30));
    let b = Worker::start(&w, "worker-b", &[]);
    b.wait_for(
        "holds the lease on this SQLite database",
        Duration::from_secs(20),
    );
    assert!(!b.stdout().contains("policies slot "), "{}", b.output());
    let (code, out) = a.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    b.wait_for("now holds the worker lease", Duration::from_secs(20));
    let (code, out) = b.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_restarted_worker_catches_up_missed_slots_within_grace_and_leaves_older_ones_missed() {
    let w = World::new();
    w.config(
        r#"
[worker]
lease = "1h"
evaluate_every = "6h"

[[collector]]
name = "wide"
kind = "policy-document"
schedule = "0 * * * *"
grace = "3h"
paths = ["policies"]

[[collector]]
name = "narrow"
kind = "policy-document"
schedule = "0 * * * *"
grace = "30m"
paths = ["policies"]
"#,
    );
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    // One simulated hour per two real seconds from 00:59; the worker runs until about 02:30, is
    // down until about 05:30, then starts again. Narrow's 30 minutes of grace are one real
    // second: on a loaded machine a first run can take half a second of that.
    let epoch = epoch_ms_in(Duration::from_secs(2));
    let clock = format!("2026-11-22T00:59:00Z,1800,{epoch}");
    let env = [("ANNEXA_SIMULATED_CLOCK", clock.as_str())];
    let sleep_until = |virtual_minutes_after_0059: i64| {
        sleep_until_ms_after(epoch, virtual_minutes_after_0059 * 2000 / 60)
    };
    let first = Worker::start(&w, "first", &env);
    sleep_until(91);
    let (code, out) = first.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wide slot 2026-11-22T02:00"), "{out}");
    sleep_until(271);
    let second = Worker::start(&w, "second", &env);
    // Each collector is a job of its own: wide catches up three slots while narrow runs one.
    second.wait_for("narrow slot 2026-11-22T05:00", Duration::from_secs(20));
    second.wait_for("wide slot 2026-11-22T05:00", Duration::from_secs(20));
    let (code, out) = second.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");

    let slots = |collector: &str| -> Vec<String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = w.loaded_config(&[]);
        rt.block_on(async {
            let app = annexa::Annexa::open(config).await.unwrap();
            let from = "2026-11-22T00:00:00Z".parse().unwrap();
            // Before 06:00: the 06:00 slot is due a real second after the restart, so a
            // worker slow to stop on a loaded machine rightly runs it too.
            let to = "2026-11-22T05:59:59Z".parse().unwrap();
            let mut s = app.db.filled_slots(collector, from, to).await.unwrap();
            s.sort();
            s.iter().map(|t| t[11..16].to_string()).collect()
        })
    };
    // 03:00 and 04:00 were missed; a run at 05:30 is within 3 h of them, not within 30 min.
    assert_eq!(
        slots("wide"),
        ["00:00", "01:00", "02:00", "03:00", "04:00", "05:00"]
    );
    assert_eq!(slots("narrow"), ["00:00", "01:00", "02:00", "05:00"]);
}

#[test]
fn a_listen_address_in_use_is_refused_saying_what_to_change() {
    let w = World::new();
    w.config(common::POLICY_CONFIG);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let run = w
        .annexa_env(&["worker"], &[("ANNEXA_WORKER__LISTEN", &listen)])
        .expect(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot listen on {listen}: set another address in [worker] listen"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn ready_says_what_is_unreachable_and_the_worker_recovers_when_the_database_returns() {
    let w = postgres_world();
    w.config(&format!(
        "[worker]\nevaluate_every = \"1s\"\n{}",
        common::POLICY_CONFIG
    ));
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    let worker = Worker::start(&w, "worker", &[]);
    worker.wait_for("policies slot ", Duration::from_secs(30));
    assert_eq!(worker.http("GET /ready", &[], ""), (200, "ready\n".into()));

    // The database goes away: no new connections, the open ones cut.
    let db = url::Url::parse(w.database_url.as_ref().unwrap()).unwrap();
    let name = db.path().trim_start_matches('/').to_string();
    let admin = std::env::var("ANNEXA_TEST_POSTGRES_URL").unwrap();
    let sql = |q: &str| common::psql(&admin, q);
    sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
    sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));
    let poll = |want: u16| {
        let start = Instant::now();
        loop {
            let (code, body) = worker.http("GET /ready", &[], "");
            if code == want {
                return body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "/ready stayed {code}: {body}\n{}",
                worker.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let body = poll(503);
    assert!(body.starts_with("not ready: database: "), "{body}");
    assert!(
        !body.contains("postgres:postgres@"),
        "no credentials: {body}"
    );
    assert_eq!(
        worker.http("GET /health", &[], "").0,
        200,
        "alive meanwhile"
    );

    sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    assert_eq!(poll(200), "ready\n");
    let (code, out) = worker.stop(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");
}

/// Issue 15: the worker stopped collecting behind a hung SMTP relay (delivery was awaited in
/// the tick). Delivery now runs beside the ticks: with a relay that never answers and an
/// attempt deadline of an hour, minutely slots are still collected on time.
#[test]
fn a_hung_sink_never_holds_up_collection() {
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = relay.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in relay.incoming().flatten() {
            held.push(stream);
        }
    });
    let w = World::new();
    w.config(&format!(
        r#"
[alerts]
allow_insecure_urls = true
attempt_timeout = "1h"
pass_timeout = "1h"

[[sink]]
name = "mail"
kind = "email"
host = "127.0.0.1"
port = {port}
tls = "none"
from = "annexa@example.com"
to = ["security@example.com"]

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "* * * * *"
paths = ["policies"]
"#
    ));
    // Overdue since 2021: a gap, so an alert is queued to the hung relay at once.
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", "2020-01-01"),
    );
    // One simulated minute per real second.
    let epoch = epoch_ms_in(Duration::from_secs(1));
    let clock = format!("2026-11-22T00:00:30Z,60,{epoch}");
    let worker = Worker::start(&w, "w", &[("ANNEXA_SIMULATED_CLOCK", clock.as_str())]);
    worker.wait_for("policies slot 2026-11-22T00:04", Duration::from_secs(30));
    let (code, out) = worker.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("alert(s) queued"), "{out}");
}

/// Issue 15: a 5-second store outage cost the run. A store away for five (simulated) minutes
/// at the slot, longer than its retries, still gets the slot collected within its grace.
#[test]
fn a_store_outage_at_the_slot_is_ridden_out_and_the_slot_still_collected() {
    let mut w = World::with_backend(common::Backend::Local);
    let mut s3 = common::S3Server::start();
    w.env.extend([
        ("ANNEXA_STORE__KIND".to_string(), "s3".to_string()),
        ("ANNEXA_STORE__ENDPOINT".to_string(), s3.endpoint.clone()),
        ("ANNEXA_STORE__BUCKET".to_string(), s3.bucket.clone()),
    ]);
    // One attempt per request: the outage outlasts the store's own retries, as a real
    // five-minute one would.
    w.config(
        r#"
[store]
retry_attempts = 1

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "0 * * * *"
grace = "1h"
paths = ["policies"]
"#,
    );
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    // One simulated minute per real second, from 00:58; the store is away from about 00:59 to
    // 01:04, so the 01:00 slot's first run fails.
    let epoch = epoch_ms_in(Duration::from_secs(2));
    let clock = format!("2026-11-22T00:58:00Z,60,{epoch}");
    let worker = Worker::start(&w, "w", &[("ANNEXA_SIMULATED_CLOCK", clock.as_str())]);
    worker.wait_for("policies slot 2026-11-22T00:00", Duration::from_secs(20));
    let until = |minutes_after_0058: i64| sleep_until_ms_after(epoch, minutes_after_0058 * 1000);
    until(1);
    s3.stop();
    until(6);
    s3.restart();
    worker.wait_for(
        "policies slot 2026-11-22T01:00:00.000000Z: run",
        Duration::from_secs(60),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !worker
        .stdout()
        .lines()
        .any(|l| l.contains(" INFO policies slot 2026-11-22T01:00") && l.ends_with("succeeded"))
    {
        assert!(
            Instant::now() < deadline,
            "the slot was not collected\n{}",
            worker.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out) = worker.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is unreachable"), "the outage was seen: {out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = w.loaded_config(&[]);
    rt.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let from = "2026-11-22T01:00:00Z".parse().unwrap();
        let slots = app.db.filled_slots("policies", from, from).await.unwrap();
        assert_eq!(slots.len(), 1, "one run holds the slot");
        let run = app
            .db
            .latest_run("policies", chrono::DateTime::<chrono::Utc>::MAX_UTC, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            run.slot.as_deref().map(|s| &s[..16]),
            Some("2026-11-22T01:00")
        );
    });
}

/// Issue 15: a failed run filled its slot for good, so `annexa run` counted the slot as
/// collected. A failed slot is now tried again after 1, 4 and 16 minutes while within grace.
#[test]
fn a_failed_slot_is_retried_within_its_grace_and_not_counted_as_collected() {
    let w = World::new();
    w.config(
        "[[collector]]\nname = \"policies\"\nkind = \"policy-document\"\nschedule = \"0 * * * *\"\ngrace = \"1h\"\npaths = [\"policies\"]\n",
    );
    // A clock that stands still at `at`.
    let run_at = |at: &str| {
        let clock = format!("{at},0.000001,0");
        w.annexa_env(
            &["run", "--json"],
            &[("ANNEXA_SIMULATED_CLOCK", clock.as_str())],
        )
    };
    let runs = |r: &common::Run| -> Vec<String> {
        r.stdout
            .lines()
            .last()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                v["runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["status"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The source is missing at the slot: the run fails.
    let first = run_at("2026-11-22T01:00:10Z");
    assert_eq!(runs(&first), ["failed"], "{}", first.stdout);
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    // Not again before its first retry is due…
    assert!(runs(&run_at("2026-11-22T01:00:40Z")).is_empty());
    // …then retried, and the slot is collected.
    let retried = run_at("2026-11-22T01:01:30Z");
    assert_eq!(runs(&retried), ["succeeded"], "{}", retried.stdout);
    assert!(runs(&run_at("2026-11-22T01:30:00Z")).is_empty());
    // Both runs stay in the custody log; only the successful one holds the slot.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = w.loaded_config(&[]);
    rt.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let at = "2026-11-22T01:00:00Z".parse().unwrap();
        let filled = app.db.filled_slots("policies", at, at).await.unwrap();
        assert_eq!(filled.len(), 1);
        let counts = app.db.run_counts().await.unwrap();
        let total: i64 = counts.iter().map(|c| c.count).sum();
        assert_eq!(total, 2, "{counts:?}");
    });
}

/// Issue 15: runs left `running` forever (56 after kills of on-demand collects, database
/// outages, full disks); nothing swept them. A run whose process on this host is gone is
/// marked cancelled, with the reason, on the next pass, on-demand runs included.
#[test]
fn a_run_whose_process_is_gone_is_swept_on_the_next_pass() {
    let w = World::new();
    w.config(common::POLICY_CONFIG);
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    w.annexa(&["collect", "--all"]).expect(0);
    // An on-demand collect killed mid-run leaves its row `running`, held by a dead process.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let holder = format!("{}/{pid}/deadbeef", host.trim());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = w.loaded_config(&[]);
    rt.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let run = annexa::db::RunRow {
            id: "01a00000-0000-7000-8000-000000000001".into(),
            collector: "policies".into(),
            kind: "policy-document".into(),
            collector_version: "1".into(),
            slot: None,
            status: annexa::db::RunStatus::Running,
            started_at: chrono::Utc::now(),
            finished_at: None,
            error_code: None,
            error: None,
            manifest_key: None,
            manifest_sha256: None,
            ledger_index: None,
            holder: Some(holder.clone()),
        };
        assert!(app.db.start_run(&run).await.unwrap());
    });
    let out = w.annexa(&["collect", "--all"]).expect(0);
    assert!(
        out.stdout
            .contains("swept: run 01a00000-0000-7000-8000-000000000001")
            && out.stdout.contains("is gone"),
        "{}",
        out.stdout
    );
    let config = w.loaded_config(&[]);
    rt.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let run = app
            .db
            .run("01a00000-0000-7000-8000-000000000001")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.status, annexa::db::RunStatus::Cancelled);
        assert!(run.error.unwrap().contains(&holder));
    });
}

/// The families of an OpenMetrics exposition as `prometheus_client`'s parser reads them: name
/// → (type, samples as `name{label=value,…} value`). Panics, with the parser's error, on text it
/// rejects.
fn openmetrics_families(text: &str) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    samples = []
    for s in f.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "le")
        if s.name.endswith("_bucket"):
            continue
        samples.append(f"{s.name}{{{labels}}} {s.value:g}")
    out[f.name] = [f.type, samples]
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser (pip install prometheus-client; ./scripts/test installs it) refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Issue 22: a restore drill that takes longer than another collector's period delays none of
/// that collector's slots. The drill's verification query counts to 30 million on the
/// restored SQLite file (seconds of real work); at one simulated minute per real second it
/// outlasts several minutely slots of the policy collector, each of which is still collected
/// within its minute.
#[test]
fn a_drill_longer_than_another_collectors_period_delays_none_of_its_slots() {
    let w = World::new();
    std::fs::create_dir_all(w.path("backups")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(w.path("backups/app.sqlite"))
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY); INSERT INTO accounts VALUES (1);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    });
    w.write(
        "policies/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    w.config(
        r#"
[organization]
name = "Test Org"

[worker]
lease = "10m"
drain = "1h"
evaluate_every = "1h"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "* * * * *"
grace = "1m"
paths = ["policies"]
review_grace_days = 30

[[collector]]
name = "backups"
kind = "backup-restore"
schedule = "1 0 * * *"
path = "backups"
pattern = "*.sqlite"
max_backup_age = "30d"
[collector.drill]
[[collector.drill.queries]]
sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) SELECT count(*) FROM c"
expect = "= 30000000"
"#,
    );
    // One simulated minute per real second, from 2026-11-22 00:00:30 (two seconds from now).
    let epoch = epoch_ms_in(Duration::from_secs(2));
    let clock = format!("2026-11-22T00:00:30Z,60,{epoch}");
    let worker = Worker::start(&w, "worker", &[("ANNEXA_SIMULATED_CLOCK", clock.as_str())]);
    worker.wait_for(" INFO backups slot ", Duration::from_secs(120));
    let (code, out) = worker.stop(Duration::from_secs(30));
    assert_eq!(code, 0, "{out}");

    let config = w.loaded_config(&[]);
    rt.block_on(async {
        let app = annexa::Annexa::open(config).await.unwrap();
        let runs = app.db.finished_runs().await.unwrap();
        let drill = runs
            .iter()
            .find(|r| r.collector == "backups")
            .expect("the drill ran");
        assert_eq!(drill.status, annexa::db::RunStatus::Succeeded, "{out}");
        let took = drill.finished_at.unwrap() - drill.started_at;
        assert!(
            took > chrono::Duration::minutes(3),
            "the drill took {took}: too short to show anything\n{out}"
        );
        // Every minute the drill was busy, the policy collector ran on time all the same.
        use chrono::DurationRound;
        let mut slot = drill
            .started_at
            .duration_trunc(chrono::TimeDelta::minutes(1))
            .unwrap()
            + chrono::Duration::minutes(1);
        while slot < drill.finished_at.unwrap() {
            let run = runs
                .iter()
                .find(|r| {
                    r.collector == "policies"
                        && r.slot.as_deref() == Some(annexa::db::ts(slot).as_str())
                })
                .unwrap_or_else(|| panic!("no run for the {slot} slot\n{out}"));
            let late = run.started_at - slot;
            assert!(
                late < chrono::Duration::seconds(30),
                "the {slot} slot started {late} late, behind the drill\n{out}"
            );
            slot += chrono::Duration::minutes(1);
        }
    });
}
