//! incident-log end to end: the quickstart register as CSV, as JSON and as GitHub issues served
//! by a loopback stand-in (built from GitHub's own example payload) give the same findings; bad
//! registers fail all or nothing and keep earlier evidence.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use annexa_collectors::incident_log::policy::Policy;
use annexa_collectors::incident_log::register::csv_records;
use common::World;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Findings that appear only later in real time: INC-112 (Sev3, detected 2026-11-21) passes its
/// 10-business-day target in December, and an INC-101 action item falls due on 2026-12-15.
fn later() -> BTreeSet<(String, String, String)> {
    [
        ("incident-open-overdue", "INC-112", "fail"),
        ("postmortem-late", "INC-101", "warn"),
    ]
    .iter()
    .map(|(c, s, l)| (c.to_string(), s.to_string(), l.to_string()))
    .collect()
}

/// The quickstart's findings, whatever day the test runs.
fn assert_expected(got: &BTreeSet<(String, String, String)>) {
    assert!(
        got.is_superset(&expected()),
        "missing: {:?}",
        expected().difference(got).collect::<Vec<_>>()
    );
    let extra: BTreeSet<_> = got.difference(&expected()).cloned().collect();
    assert!(extra.is_subset(&later()), "unexpected: {extra:?}");
}

fn quickstart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/incidents")
}

fn copy_postmortems(w: &World) {
    std::fs::create_dir_all(w.path("postmortems")).unwrap();
    for e in std::fs::read_dir(quickstart().join("postmortems")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), w.path("postmortems").join(e.file_name())).unwrap();
    }
}

/// The quickstart register's records as JSON objects (column → text).
fn register_as_json() -> Vec<serde_json::Map<String, Value>> {
    let bytes = std::fs::read(quickstart().join("register.csv")).unwrap();
    let records = csv_records(&bytes, "register.csv").unwrap();
    // Validate with the default policy, as the collector will.
    annexa_collectors::incident_log::register::incidents(
        &records,
        &Policy::default(),
        chrono::Utc::now(),
    )
    .unwrap();
    records
        .into_iter()
        .map(|r| {
            r.cells
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        })
        .collect()
}

const CALENDAR: &str = r#"
[collector.calendar]
timezone = "Europe/Berlin"
hours = "09:00-17:00"
holidays = ["2026-10-03", "2026-12-25", "2026-12-26"]
"#;

/// (code, subject, level) of every finding on A.5.24–A.5.28.
fn incident_findings(w: &World, as_of: &str) -> BTreeSet<(String, String, String)> {
    let doc = w.annexa(&["status", "--json", "--as-of", as_of]).json();
    doc["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| ["A.5.25", "A.5.26", "A.5.27"].contains(&c["id"].as_str().unwrap()))
        .flat_map(|c| c["findings"].as_array().unwrap().clone())
        .map(|f| {
            (
                f["code"].as_str().unwrap().into(),
                f["subject"].as_str().unwrap().into(),
                f["level"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn expected() -> BTreeSet<(String, String, String)> {
    [
        ("incident-triage-late", "INC-102", "fail"),
        ("incident-unclassified", "INC-109", "fail"),
        ("breach-notification-late", "INC-105", "fail"),
        ("incident-resolution-late", "INC-108", "fail"),
        ("incident-open-overdue", "INC-111", "fail"),
        ("postmortem-missing", "INC-105", "fail"),
        ("postmortem-late", "INC-106", "fail"),
        ("postmortem-late", "INC-102", "warn"),
        ("postmortem-late", "INC-108", "warn"),
    ]
    .iter()
    .map(|(c, s, l)| (c.to_string(), s.to_string(), l.to_string()))
    .collect()
}

#[test]
fn the_quickstart_register_as_csv_gives_the_expected_findings_by_incident_id() {
    let w = World::new();
    std::fs::copy(quickstart().join("register.csv"), w.path("register.csv")).unwrap();
    copy_postmortems(&w);
    w.config(&format!(
        "[[collector]]\nname = \"incidents\"\nkind = \"incident-log\"\nregister = \"register.csv\"\npostmortems = \"postmortems\"\n{CALENDAR}"
    ));
    let run = w
        .annexa(&["collect", "incidents", "--json"])
        .expect(0)
        .json();
    assert_eq!(
        run["runs"][0]["items"], 5,
        "the register and four post-mortems"
    );
    assert_expected(&incident_findings(&w, &chrono::Utc::now().to_rfc3339()));
}

#[test]
fn a_json_register_and_github_issues_give_the_same_findings() {
    let json_world = World::new();
    std::fs::write(
        json_world.path("register.json"),
        serde_json::to_vec_pretty(&register_as_json()).unwrap(),
    )
    .unwrap();
    copy_postmortems(&json_world);
    json_world.config(&format!(
        "[[collector]]\nname = \"incidents\"\nkind = \"incident-log\"\nregister = \"register.json\"\npostmortems = \"postmortems\"\n{CALENDAR}"
    ));
    json_world.annexa(&["collect", "incidents"]).expect(0);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start());
    let template: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/github/issues-repo.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let pull_request = template[0].clone(); // GitHub's example item is a pull request: it must be skipped
    let issues: Vec<Value> = register_as_json()
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let mut issue = template[0].clone();
            let o = issue.as_object_mut().unwrap();
            o.remove("pull_request");
            let number = 100 + n;
            o.insert("number".into(), json!(number));
            o.insert("id".into(), json!(9_000 + n));
            o.insert("title".into(), r["title"].clone());
            let severity = r["severity"].as_str().unwrap();
            let mut labels = vec![json!({"id": 1, "node_id": "L1", "url": "https://api.github.com/repos/acme/ops/labels/incident", "name": "incident", "description": "", "color": "d73a4a", "default": false})];
            if !severity.is_empty() {
                labels.push(json!({"id": 2, "node_id": "L2", "url": "https://api.github.com/repos/acme/ops/labels/x", "name": format!("severity:{}", severity.to_lowercase()), "description": "", "color": "000000", "default": false}));
            }
            o.insert("labels".into(), Value::Array(labels));
            let body: String = r
                .iter()
                .filter(|(k, v)| !["title", "severity", "detected_at"].contains(&k.as_str()) && !v.as_str().unwrap().is_empty())
                .map(|(k, v)| format!("{k}: {}\n", v.as_str().unwrap()))
                .collect();
            o.insert("body".into(), json!(format!("Incident record\n\n{body}")));
            let to_utc = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            o.insert("created_at".into(), json!(to_utc(r["detected_at"].as_str().unwrap())));
            let resolved = r["resolved_at"].as_str().unwrap();
            o.insert("closed_at".into(), if resolved.is_empty() { Value::Null } else { json!(to_utc(resolved)) });
            o.insert("state".into(), json!(if resolved.is_empty() { "open" } else { "closed" }));
            issue
        })
        .collect();
    let (page1, page2) = issues.split_at(7);
    let mut page2 = page2.to_vec();
    page2.push(pull_request);
    let base = server.uri();
    rt.block_on(async {
        Mock::given(method("GET"))
            .and(path("/repos/acme/ops/issues"))
            .and(query_param("page", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&page2))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/repos/acme/ops/issues"))
            .and(query_param("labels", "incident"))
            .and(query_param("state", "all"))
            .respond_with(ResponseTemplate::new(200).set_body_json(page1).insert_header(
                "link",
                format!(
                    "<{base}/repos/acme/ops/issues?labels=incident&state=all&per_page=100&page=2>; rel=\"next\", <{base}/repos/acme/ops/issues?labels=incident&state=all&per_page=100&page=2>; rel=\"last\""
                )
                .as_str(),
            ))
            .mount(&server)
            .await;
    });

    let gh_world = World::new();
    copy_postmortems(&gh_world);
    gh_world.config(&format!(
        "[outbound]\nallow_insecure_urls = true\n\n[[collector]]\nname = \"incidents\"\nkind = \"incident-log\"\npostmortems = \"postmortems\"\n[collector.github]\nrepo = \"acme/ops\"\nbase_url = \"{base}\"\n{CALENDAR}"
    ));
    let run = gh_world
        .annexa(&["collect", "incidents", "--json"])
        .expect(0)
        .json();
    assert_eq!(run["runs"][0]["status"], "succeeded");
    // Both judged at the same moment, after both collections.
    let as_of = chrono::Utc::now().to_rfc3339();
    let from_json = incident_findings(&json_world, &as_of);
    assert_expected(&from_json);
    assert_eq!(
        incident_findings(&gh_world, &as_of),
        from_json,
        "GitHub issues and the JSON register disagree"
    );
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_eq!(requests.len(), 2, "both pages, once each");
}

#[test]
fn github_refusing_the_token_is_collector_unauthorized_not_an_empty_register() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(MockServer::start());
    let body: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/github/error-403-repo-delete.json"),
        )
        .unwrap(),
    )
    .unwrap();
    rt.block_on(
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_json(body))
            .mount(&server),
    );
    let w = World::new();
    w.config(&format!(
        "[outbound]\nallow_insecure_urls = true\n\n[[collector]]\nname = \"incidents\"\nkind = \"incident-log\"\n[collector.github]\nrepo = \"acme/ops\"\nbase_url = \"{}\"\n",
        server.uri()
    ));
    let run = w.annexa(&["collect", "incidents"]).expect(1);
    assert!(
        run.stdout.contains("GitHub answered 403") && run.stdout.contains("Issues: read"),
        "{}",
        run.stdout
    );
    let doc = w.annexa(&["status", "--json"]).json();
    let a526 = common::control(&doc, "A.5.26");
    assert_eq!(a526["status"], "not_evaluated");
    assert_eq!(a526["findings"][0]["code"], "collector-unauthorized");
}

#[test]
fn a_bad_register_fails_all_or_nothing_stores_the_raw_file_and_keeps_earlier_evidence() {
    let w = World::new();
    std::fs::copy(quickstart().join("register.csv"), w.path("register.csv")).unwrap();
    w.config("[[collector]]\nname = \"incidents\"\nkind = \"incident-log\"\nregister = \"register.csv\"\n");
    w.annexa(&["collect", "incidents"]).expect(0);
    let good = std::fs::read_to_string(w.path("register.csv")).unwrap();

    let cases = [
        (
            good.replace("2026-10-12T09:00:00+02:00", "12/10/2026 09:00"),
            "register.csv line 4, column `detected_at`: `12/10/2026 09:00` is not an RFC 3339 time",
        ),
        (
            good.replace(",Sev4,other,2026-10-15", ",Sev5,other,2026-10-15"),
            "line 5, column `severity`: `Sev5` is not a severity",
        ),
        (
            good.replace("INC-107,", "INC-106,"),
            "line 8, column `id`: `INC-106` appears twice",
        ),
        (
            good.replace(
                "Laptop without disk encryption found in audit",
                "=HYPERLINK(\"http://evil\")",
            ),
            "line 5, column `title`",
        ),
        (
            good.replace(
                "2026-10-20T14:00:00+02:00,2026-10-20T14:00:00+02:00,closed,IT",
                "2026-10-14T14:00:00+02:00,2026-10-20T14:00:00+02:00,closed,IT",
            ),
            "line 5, column `resolved_at`",
        ),
        (
            good.replacen("severity,", "", 1),
            "required column(s) missing: severity",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(w.path("register.csv"), &text).unwrap();
        let run = w
            .annexa(&["collect", "incidents", "--json"])
            .expect(1)
            .json();
        let r = &run["runs"][0];
        assert_eq!(r["status"], "failed");
        assert!(
            r["error"].as_str().unwrap().contains(expected),
            "{}\n expected: {expected}",
            r["error"]
        );
        assert_eq!(
            r["items"], 1,
            "the raw register is still stored as evidence"
        );
    }
    // Invalid UTF-8.
    let mut bytes = good.clone().into_bytes();
    let at = good.find("Search latency").unwrap();
    bytes[at] = 0xff;
    std::fs::write(w.path("register.csv"), &bytes).unwrap();
    let run = w
        .annexa(&["collect", "incidents", "--json"])
        .expect(1)
        .json();
    assert!(
        run["runs"][0]["error"].as_str().unwrap().contains("line 4"),
        "{}",
        run["runs"][0]["error"]
    );
    assert!(run["runs"][0]["error"].as_str().unwrap().contains("UTF-8"));

    // A 100 MB register: refused with the limit named, and stored anyway.
    let mut big = std::fs::File::create(w.path("register.csv")).unwrap();
    use std::io::Write;
    big.write_all(good.as_bytes()).unwrap();
    let line = "INC-999,Padding row to make the register large,Sev4,other,2026-10-15T10:00:00+02:00,,,,,open,,,,false,,\n";
    for _ in 0..(100 * 1024 * 1024 / line.len()) {
        big.write_all(line.as_bytes()).unwrap();
    }
    drop(big);
    let run = w
        .annexa(&["collect", "incidents", "--json"])
        .expect(1)
        .json();
    assert!(
        run["runs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("registers above 50 MiB are refused"),
        "{}",
        run["runs"][0]["error"]
    );
    assert_eq!(run["runs"][0]["items"], 1);

    // The good run's evidence still stands, with the failures as warnings beside it.
    let doc = w.annexa(&["status", "--json"]).json();
    let a526 = common::control(&doc, "A.5.26");
    assert_eq!(
        a526["evidence"].as_array().unwrap().len(),
        2,
        "register + facts of the good run"
    );
    assert!(
        a526["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "collector-failed" && f["level"] == "warn")
    );
    assert!(
        a526["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "incident-open-overdue")
    );
    w.annexa(&["verify"]).expect(0);
}

#[tokio::test]
async fn a_register_kept_in_the_evidence_store_is_read_from_there() {
    let w = World::new();
    w.config("[[collector]]\nname = \"incidents\"\nkind = \"incident-log\"\nregister_object = \"imports/register.csv\"\n");
    let text = std::fs::read_to_string(w.config_path()).unwrap();
    let mut config = annexa::config::Config::parse(&text, &w.config_path(), &w.env).unwrap();
    if let annexa::store::StoreConfig::S3(s3) = &mut config.store {
        s3.static_credentials = Some((
            common::ACCESS_KEY.into(),
            annexa::base::Secret::new(common::SECRET_KEY.into()),
        ));
    }
    let app = annexa::Annexa::open(config).await.unwrap();
    app.store
        .put_named(
            "imports/register.csv",
            &std::fs::read(quickstart().join("register.csv")).unwrap(),
        )
        .await
        .unwrap();
    let c = app.config.collector("incidents").unwrap();
    let outcome = annexa::evidence::runner::run_collector(&app, c, None)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.succeeded(), "{:?}", outcome.run.error);
    assert!(outcome.findings.iter().any(|f| f.subject == "INC-111"));
}
