//! Reports (issue 7): a month of daily collections in which one collector stops on the 20th,
//! rendered in every format, checked by tools outside the project (Python's csv module,
//! compliance-trestle, headless Chromium), and byte-identical for the same inputs.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use annexa::Annexa;
use annexa::ledger::note::{SignedNote, Verifier};
use annexa::views::report::Bundle;
use annexa_collectors::FixedClock;
use annexa_reports::Format as ReportFormat;
use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use common::World;

const CONFIG: &str = r#"
[organization]
name = "Example Ltd"

[[collector]]
name = "procedures"
kind = "policy-document"
schedule = "0 3 * * *"
max_age = "2d"
paths = ["procedures"]

[[collector]]
name = "runbooks"
kind = "policy-document"
schedule = "0 3 * * *"
max_age = "2d"
paths = ["runbooks"]
"#;

const ALL: [ReportFormat; 5] = [
    ReportFormat::Html,
    ReportFormat::Md,
    ReportFormat::Csv,
    ReportFormat::Json,
    ReportFormat::Oscal,
];

fn oct(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
}

async fn at(w: &World, now: DateTime<Utc>) -> Annexa {
    Annexa::open_with_clock(w.loaded_config(&[]), Arc::new(FixedClock(now)))
        .await
        .unwrap()
}

/// October 2026: `procedures` collected every day at 03:00, `runbooks` until the 20th.
async fn october(w: &World) {
    w.config(CONFIG);
    w.write(
        "procedures/incident.md",
        &common::procedure("PROC-1", "2026-09-01"),
    );
    w.write(
        "runbooks/restore.md",
        &common::procedure("RUN-1", "2026-09-01"),
    );
    for day in 1..=31 {
        let app = at(w, oct(day, 3) + Duration::minutes(1)).await;
        for name in ["procedures", "runbooks"] {
            if name == "runbooks" && day > 20 {
                continue;
            }
            let config = app.config.collector(name).unwrap();
            let outcome = annexa::evidence::runner::run_collector(&app, config, Some(oct(day, 3)))
                .await
                .unwrap()
                .unwrap();
            assert!(outcome.succeeded(), "{:?}", outcome.run.error);
        }
        // Closed before the next process opens the database, or a copy of its files is made.
        app.close().await;
    }
}

/// The October report, made on November 2nd as the records stood at the end of October.
async fn october_report(w: &World, out: &Path) -> Bundle {
    let app = at(w, Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()).await;
    let period = (
        oct(1, 0),
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
    );
    annexa::views::report::write_bundle(&app, Some(period), &ALL, Some(out), Some(period.1))
        .await
        .unwrap()
}

/// Python that counts every `uuid` key of a JSON document: `walk(doc)` adds to `uuids`.
const UUID_WALK: &str = "uuids = collections.Counter()
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == 'uuid': uuids[v] += 1
            walk(v)
    elif isinstance(o, list):
        for x in o: walk(x)
";

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (scripts/test installs what the tests need)");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The one report folder `annexa report --out OUT` wrote.
fn bundle_dir(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .map_or(out.to_path_buf(), |e| e.path())
}

/// The text of one section of the Markdown report, up to the next `## `.
fn md_section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &md[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[tokio::test]
async fn a_collector_that_stopped_is_flagged_stale_in_every_format() {
    let w = World::new();
    october(&w).await;
    let bundle = october_report(&w, &w.path("out")).await;
    let dir = &bundle.dir;

    // The model: runbooks went stale on the 22nd at 03:01 (its last snapshot of the 20th plus
    // two days); procedures met 31 of 31 slots, runbooks 20.
    let json: serde_json::Value = serde_json::from_str(&read(dir, "report.json")).unwrap();
    let stale: Vec<&serde_json::Value> = json["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["kind"] == "stale")
        .collect();
    assert_eq!(stale.len(), 1, "{}", json["gaps"]);
    assert_eq!(stale[0]["collector"], "runbooks");
    assert_eq!(stale[0]["since"], "2026-10-22T03:01:00Z");
    let a524 = common::control(&json, "A.5.24");
    assert_eq!(a524["status"], "stale");
    let coverage: BTreeMap<String, (u64, u64)> = a524["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["collector"].as_str().unwrap().to_string(),
                (
                    c["present"].as_u64().unwrap(),
                    c["expected"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(coverage["procedures"], (31, 31));
    assert_eq!(coverage["runbooks"], (20, 31));
    assert_eq!(json["ledger"]["tree_size"], 51);

    // Markdown and HTML: in the stale-and-missing section, before the controls.
    let md = read(dir, "report.md");
    let section = md_section(&md, "## Stale and missing evidence");
    assert!(
        section
            .lines()
            .any(|l| l.starts_with("| runbooks |") && l.contains("| stale |")),
        "{section}"
    );
    // procedures only lacked evidence before its first snapshot, on the 1st at 03:01.
    let procedures: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| procedures |"))
        .collect();
    assert_eq!(procedures.len(), 1, "{section}");
    assert!(procedures[0].contains("| lapsed | 2026-10-01T00:00:00Z | 2026-10-01T03:01:00Z |"));
    let html = read(dir, "report.html");
    let gaps = &html[html.find("id=\"stale-and-missing\"").unwrap()..];
    let gaps = &gaps[..gaps.find("</section>").unwrap()];
    assert!(
        gaps.contains("<td>runbooks</td><td>A.5.24</td><td class=\"status\">stale</td>"),
        "{gaps}"
    );
    assert!(!html.contains("<script"), "no script is needed to read it");
    assert!(!html.contains("src=\"http"), "no external asset");
    assert_eq!(html.matches("<svg").count(), 2, "two inline charts");

    // CSV, read by Python's csv module into the expected rows. Each file starts with a UTF-8
    // byte order mark (Excel), and no cell is cut: every missed slot is listed.
    for file in [
        "gaps.csv",
        "controls.csv",
        "evidence.csv",
        "findings.csv",
        "soa.csv",
    ] {
        assert!(
            std::fs::read(dir.join(file))
                .unwrap()
                .starts_with("\u{feff}".as_bytes()),
            "{file} has no byte order mark"
        );
    }
    let rows = python(
        "import csv, json, sys\n\
         gaps = list(csv.DictReader(open(sys.argv[1], newline='', encoding='utf-8-sig')))\n\
         controls = list(csv.DictReader(open(sys.argv[2], newline='', encoding='utf-8-sig')))\n\
         evidence = list(csv.DictReader(open(sys.argv[3], newline='', encoding='utf-8-sig')))\n\
         print(json.dumps({'stale': [(g['collector'], g['controls'], g['since']) for g in gaps if g['gap'] == 'stale'],\n\
                           'missed': [(g['collector'], len(g['missed_slots'].split()), '…' in g['detail']) for g in gaps if g['gap'] == 'missed_slots'],\n\
                           'controls': {c['control']: c['status'] for c in controls},\n\
                           'evidence': [(e['collector'], e['sha256'], e['fresh']) for e in evidence]}))",
        &[
            &dir.join("gaps.csv"),
            &dir.join("controls.csv"),
            &dir.join("evidence.csv"),
        ],
    );
    let rows: serde_json::Value = serde_json::from_str(&rows).unwrap();
    // Findings name the run whose facts say so, its facts object, and when first recorded.
    let findings = python(
        "import csv, json, sys\n\
         rows = list(csv.DictReader(open(sys.argv[1], newline='', encoding='utf-8-sig')))\n\
         print(json.dumps([(r['code'], r['run_id'], r['object_key'], r['first_seen']) for r in rows]))",
        &[&dir.join("findings.csv")],
    );
    let findings: Vec<(String, String, String, String)> = serde_json::from_str(&findings).unwrap();
    let from_runs: Vec<_> = findings.iter().filter(|f| !f.1.is_empty()).collect();
    assert!(!from_runs.is_empty(), "{findings:?}");
    for (code, run, object, first) in from_runs {
        assert!(
            object.starts_with("objects/sha256/"),
            "{code} {run}: {object:?}"
        );
        assert!(
            first.is_empty() || chrono::DateTime::parse_from_rfc3339(first).is_ok(),
            "{code} {run}: first seen {first:?}"
        );
    }
    // runbooks stopped on the 20th: 11 daily slots missed, every one listed, nothing cut.
    assert_eq!(rows["missed"], serde_json::json!([["runbooks", 11, false]]));
    assert_eq!(
        rows["stale"],
        serde_json::json!([["runbooks", "A.5.24", "2026-10-22T03:01:00Z"]])
    );
    for c in json["controls"].as_array().unwrap() {
        assert_eq!(rows["controls"][c["id"].as_str().unwrap()], c["status"]);
    }
    let expected: Vec<serde_json::Value> = json["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::json!([e["collector"], e["sha256"], e["fresh"].to_string()]))
        .collect();
    assert_eq!(rows["evidence"], serde_json::Value::Array(expected));

    // OSCAL: A.5.24 is not satisfied and says why; each snapshot is an observation whose
    // evidence points at a back-matter resource carrying the object's SHA-256.
    let oscal: serde_json::Value =
        serde_json::from_str(&read(dir, "oscal-assessment-results.json")).unwrap();
    let result = &oscal["assessment-results"]["results"][0];
    let finding = result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["target"]["target-id"] == "A.5.24")
        .unwrap();
    assert_eq!(finding["target"]["status"]["state"], "not-satisfied");
    assert!(
        finding["description"]
            .as_str()
            .unwrap()
            .contains("stale evidence (runbooks)"),
        "{}",
        finding["description"]
    );
    let observations = result["observations"].as_array().unwrap();
    // 31 + 20 snapshots of the collectors, 51 run manifests of the custody log.
    assert_eq!(observations.len(), 102);
    let resources = oscal["assessment-results"]["back-matter"]["resources"]
        .as_array()
        .unwrap();
    let first_evidence = &observations[0]["relevant-evidence"][0]["href"];
    let resource = resources
        .iter()
        .find(|r| format!("#{}", r["uuid"].as_str().unwrap()) == *first_evidence)
        .expect("relevant evidence points at a back-matter resource");
    assert_eq!(resource["rlinks"][0]["hashes"][0]["algorithm"], "SHA-256");
    let sha = resource["rlinks"][0]["hashes"][0]["value"]
        .as_str()
        .unwrap();
    assert_eq!(
        resource["rlinks"][0]["href"].as_str().unwrap(),
        format!("objects/sha256/{}/{sha}", &sha[..2])
    );
}

#[tokio::test]
async fn the_oscal_output_validates_with_compliance_trestle() {
    let w = World::new();
    october(&w).await;
    let bundle = october_report(&w, &w.path("out")).await;
    let out = python(
        "import json, sys\n\
         from trestle.oscal.assessment_results import AssessmentResults\n\
         doc = json.load(open(sys.argv[1]))['assessment-results']\n\
         ar = AssessmentResults.model_validate(doc)\n\
         r = ar.results[0]\n\
         print(len(r.observations), len(r.findings), len(ar.back_matter.resources))",
        &[&bundle.dir.join("oscal-assessment-results.json")],
    );
    let counts: Vec<usize> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts[0], 102);
    assert_eq!(counts[1], 10, "a finding per control of the catalog");
    assert!(counts[2] > 3, "{out}");

    // Issue 18 (OSCAL): the plan and the catalog beside the results validate too; every UUID
    // of the results is unique; every control id resolves against the catalog; each
    // observation names its subject and its method by evidence kind; each failing finding of a
    // control not satisfied is an open risk its finding refers to.
    let out = python(
        &[
        "import json, sys, collections\n\
         from trestle.oscal.assessment_results import AssessmentResults\n\
         from trestle.oscal.assessment_plan import AssessmentPlan\n\
         from trestle.oscal.catalog import Catalog\n\
         d = sys.argv[1]\n\
         raw = json.load(open(d + '/oscal-assessment-results.json'))\n\
         ar = AssessmentResults.model_validate(raw['assessment-results'])\n\
         assert ar.import_ap.href == 'oscal-assessment-plan.json', ar.import_ap.href\n\
         ap = AssessmentPlan.model_validate(json.load(open(d + '/' + ar.import_ap.href))['assessment-plan'])\n\
         links = [l.href for r in ap.back_matter.resources for l in r.rlinks]\n\
         assert ap.import_ssp.href[1:] in {str(r.uuid) for r in ap.back_matter.resources}, ap.import_ssp.href\n\
         cat = Catalog.model_validate(json.load(open(d + '/' + [l for l in links if 'catalog' in l][0]))['catalog'])\n\
         known = {c.id for g in cat.groups for c in g.controls}\n",
        UUID_WALK,
        "walk(raw)\n\
         assert all(n == 1 for n in uuids.values()), [u for u, n in uuids.items() if n > 1]\n\
         r = ar.results[0]\n\
         ids = [c.control_id for s in r.reviewed_controls.control_selections for c in s.include_controls]\n\
         ids += [f.target.target_id for f in r.findings]\n\
         ids += [c.control_id for s in ap.reviewed_controls.control_selections for c in s.include_controls]\n\
         assert set(ids) <= known, set(ids) - known\n\
         comps = {str(c.uuid) for c in r.local_definitions.components}\n\
         assert all(getattr(o.subjects[0].type, 'root', o.subjects[0].type) == 'component' and str(o.subjects[0].subject_uuid) in comps for o in r.observations), [o.subjects for o in r.observations][:2]\n\
         risks = {str(k.uuid): k for k in r.risks or []}\n\
         linked = [str(x.risk_uuid) for f in r.findings for x in (f.related_risks or [])]\n\
         assert sorted(linked) == sorted(risks), 'every risk is a finding s'\n\
         print(len(uuids), len(known), len(risks), ' '.join(sorted({getattr(m, 'root', m) for o in r.observations for m in o.methods})))",
        ]
        .concat(),
        &[&bundle.dir],
    );
    let figures: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(figures[1], "93", "the catalog holds Annex A: {out}");
    assert!(
        figures[2].parse::<usize>().unwrap() > 0,
        "runbooks stopped: open risks {out}"
    );
    assert_eq!(&figures[3..], ["EXAMINE"], "documents are examined: {out}");
}

#[tokio::test]
async fn the_same_inputs_give_byte_identical_bundles() {
    let w = World::new();
    october(&w).await;
    let a = october_report(&w, &w.path("out-a")).await;
    let b = october_report(&w, &w.path("out-b")).await;
    assert_eq!(a.id, b.id);
    let names = |bundle: &Bundle| -> Vec<String> {
        bundle
            .paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&a).len(), 14);
    assert_eq!(names(&a), names(&b));
    for (pa, pb) in a.paths.iter().zip(&b.paths) {
        assert!(
            std::fs::read(pa).unwrap() == std::fs::read(pb).unwrap(),
            "{} differs",
            pa.display()
        );
    }
}

#[tokio::test]
async fn the_bundle_is_signed_stored_and_recorded() {
    let w = World::new();
    october(&w).await;
    let bundle = october_report(&w, &w.path("out")).await;
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&bundle.dir, "manifest.json")).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 11);
    for f in files {
        let bytes = std::fs::read(bundle.dir.join(f["name"].as_str().unwrap())).unwrap();
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
        );
    }
    // The signature: a signed note over the manifest's SHA-256, by the ledger's key.
    let app = at(&w, Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap()).await;
    let verifier = Verifier::parse(&read(w.path("keys").as_path(), "annexa.key.pub")).unwrap();
    let note = SignedNote::parse(&read(&bundle.dir, "manifest.json.sig")).unwrap();
    assert_eq!(
        note.verified_by(std::slice::from_ref(&verifier))
            .unwrap()
            .len(),
        1
    );
    let manifest_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(bundle.dir.join("manifest.json")).unwrap(),
    ));
    assert!(note.text.contains(&format!("\nsha256 {manifest_sha}\n")));
    assert_eq!(manifest["checkpoint"]["key_id"], verifier.id_hex());

    // Stored as evidence, byte for byte: each file content-addressed, the manifest and its
    // signature under reports/<id>/; and recorded in the ledger.
    for f in files {
        let name = f["name"].as_str().unwrap();
        let stored = app
            .store
            .read(f["object_key"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            stored,
            std::fs::read(bundle.dir.join(name)).unwrap(),
            "{name}"
        );
    }
    for name in ["manifest.json", "manifest.json.sig"] {
        let stored = app
            .store
            .read(&format!("reports/{}/{name}", bundle.id))
            .await
            .unwrap();
        assert_eq!(
            stored,
            std::fs::read(bundle.dir.join(name)).unwrap(),
            "{name}"
        );
    }
    let event = app
        .db
        .latest_audit_event("report-generated")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.subject, bundle.id);
    assert!(event.details.contains(&manifest_sha));
    // The key was recorded when it first signed.
    let keys = app.db.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].id.as_str(), keys[0].state.as_str()),
        (verifier.id_hex().as_str(), "active")
    );
}

#[tokio::test]
async fn a_lost_signing_key_is_not_silently_replaced() {
    let w = World::new();
    october(&w).await;
    october_report(&w, &w.path("out")).await;
    std::fs::rename(w.path("keys/annexa.key"), w.path("keys/moved.key")).unwrap();
    let app = at(&w, Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap()).await;
    let err = annexa::views::report::write_bundle(&app, None, &ALL, Some(&w.path("out")), None)
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("is not at") && msg.contains("restore"),
        "{msg}"
    );
    assert!(!w.path("keys/annexa.key").exists(), "no new key was made");
}

/// Chromium: the HTML renders, the stale section is visible on screen and in print, and a
/// screenshot is kept in `target/test-artifacts/`.
#[tokio::test]
async fn the_html_report_renders_in_headless_chromium() {
    let w = World::new();
    october(&w).await;
    let bundle = october_report(&w, &w.path("out")).await;
    let html = bundle.dir.join("report.html");
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join(format!("report-{:?}.png", common::backend()));
    let _ = std::fs::remove_file(&screenshot);
    let pdf = w.path("report.pdf");
    let chromium = |args: &[String]| chromium(&w, args);
    let url = format!("file://{}", html.display());
    chromium(&[
        "--window-size=1280,2000".into(),
        format!("--screenshot={}", screenshot.display()),
        url.clone(),
    ]);
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 50_000, "a rendered page, not a blank one");

    // What the browser built: the stale row is in the parsed document.
    let dom = chromium(&["--dump-dom".into(), url.clone()]);
    let gaps = &dom[dom.find("id=\"stale-and-missing\"").unwrap()..];
    assert!(gaps[..gaps.find("</section>").unwrap()].contains("runbooks"));

    // What a reader sees: printed to PDF, the text carries the section and the stale row.
    let pages = print_to_pdf(&w, &html, &pdf);
    let text = pdf_text(&pdf, 1, pages);
    let section = &text[text
        .find("Stale and missing evidence")
        .expect("section printed")..];
    let section = &section[..section.find("Controls at the end of the period").unwrap()];
    assert!(
        section
            .lines()
            .any(|l| l.contains("runbooks") && l.contains("stale")),
        "{section}"
    );

    // Issue 18 (a printable document): numbered A4 pages, each with the running header;
    // unchanged evidence listed once.
    assert!((2..=40).contains(&pages), "{pages} pages");
    let info = Command::new("pdfinfo").arg(&pdf).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("(A4)"), "A4");
    let last = pdf_text(&pdf, pages, pages);
    for header in [
        "Example Ltd · 2026-10-01 to 2026-10-31 (UTC)".to_string(),
        format!("report {}", bundle.id),
        format!("page {pages} of {pages}"),
    ] {
        assert!(
            last.contains(&header),
            "{header} not on the last page:\n{last}"
        );
    }
    assert!(
        text.contains("unchanged in 31 snapshots"),
        "procedures' one document, collected daily, is one row"
    );
}

/// Issue 20 (the Statement of Applicability): an excluded control is not judged and never
/// alerts, and every report format shows it with its justification; `annexa soa` lists all 93
/// Annex A controls joined with the live status; a broken SoA is refused with every problem.
#[test]
fn an_excluded_control_is_not_judged_never_alerts_and_every_format_says_why() {
    let w = World::new();
    w.write(
        "procedures/incident-management.md",
        &common::procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    let why = "No software is developed in house; the hosting provider patches the platform";
    w.write(
        "soa.csv",
        &format!(
            "control,applicable,justification,owner,implementation,evidence\n\
             A.5.24,yes,,Head of Security,implemented,procedures\n\
             A.8.8,no,{why},,,\n\
             A.7.4,no,Fully remote company: no offices,,,\n"
        ),
    );
    let config = format!(
        "{CONFIG}\n[soa]\nfile = \"soa.csv\"\n\n[[sink]]\nname = \"console\"\nkind = \"stdout\"\n"
    );
    w.config(&config);
    w.write(
        "runbooks/on-call.md",
        &common::procedure("RB-1", &common::reviewed_days_ago(10)),
    );
    let run = w.annexa(&["run"]);
    let alerts: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("[annexa] OPEN"))
        .collect();
    assert!(
        !alerts.is_empty()
            && alerts
                .iter()
                .all(|l| !l.contains("A.8.8") && !l.contains("A.7.4")),
        "an excluded control alerted, or nothing did:\n{}",
        run.stdout
    );
    let status = w.annexa(&["status", "--json"]).json();
    let judged: Vec<&str> = status["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        !judged.contains(&"A.8.8") && judged.contains(&"A.5.24"),
        "{judged:?}"
    );
    assert_eq!(status["excluded"][0]["id"], "A.8.8", "{status}");
    assert_eq!(status["excluded"][0]["justification"], why);
    let table = w.annexa(&["status"]).stdout;
    assert!(
        table.contains("A.8.8   Management of technical vulnerabilities"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "excluded       (Statement of Applicability: {why})"
        )),
        "{table}"
    );

    let soa = w.annexa(&["soa", "--json"]).expect(0).json();
    let rows = soa["controls"].as_array().unwrap();
    assert_eq!(rows.len(), 93);
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row("A.8.8")["status"], "excluded");
    assert_eq!(row("A.8.8")["applicable"], "no");
    assert_eq!(row("A.5.24")["owner"], "Head of Security");
    assert_eq!(
        row("A.5.24")["status"],
        common::control(&status, "A.5.24")["status"]
    );
    assert_eq!(
        row("A.5.24")["evidence"],
        serde_json::json!(["procedures", "runbooks"])
    );
    assert_eq!(row("A.6.3")["applicable"], "not yet assessed");
    assert_eq!(
        row("A.6.3")["status"],
        "missing",
        "an applicable control without evidence"
    );
    assert_eq!(row("A.6.3")["theme"], "people");
    let csv = w.annexa(&["soa", "--csv"]).expect(0).stdout;
    assert_eq!(csv.lines().count(), 94, "{csv}");
    assert!(csv.starts_with(
        "control,applicable,justification,owner,implementation,evidence,theme,title,status"
    ));

    let out = w.path("bundle");
    let report = w.annexa(&[
        "report",
        "--format",
        "html,md,csv,json,oscal",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(report.code == 0 || report.code == 3, "{}", report.stderr);
    let dir = bundle_dir(&out);
    for file in [
        "report.md",
        "report.html",
        "report.json",
        "soa.csv",
        "oscal-assessment-results.json",
    ] {
        let text = read(&dir, file);
        assert!(
            text.contains(why),
            "{file} does not say why A.8.8 is excluded"
        );
        assert!(text.contains("Fully remote company"), "{file}");
    }
    let md = read(&dir, "report.md");
    assert!(
        md_section(&md, "## Excluded controls").contains("| A.8.8 |"),
        "{md}"
    );
    assert!(!md_section(&md, "## Controls at the end of the period").contains("A.8.8"));
    let oscal = python(
        "import json, sys\n\
         from trestle.oscal.assessment_results import AssessmentResults\n\
         doc = json.load(open(sys.argv[1]))['assessment-results']\n\
         ar = AssessmentResults.model_validate(doc)\n\
         sel = ar.results[0].reviewed_controls.control_selections[0]\n\
         print(' '.join(c.control_id for c in sel.exclude_controls))",
        &[&dir.join("oscal-assessment-results.json")],
    );
    assert_eq!(oscal.trim(), "A.8.8 A.7.4");

    // A broken SoA is refused, every problem named, and nothing runs.
    w.write(
        "soa.csv",
        "control,applicable,justification,owner,implementation,evidence\n\
         A.8.8,no,,,,\nA.9.1,yes,,,,\nA.5.24,yes,,,,nope\n",
    );
    let bad = w.annexa(&["run"]).expect(2);
    for problem in [
        "A.8.8 is excluded without a justification",
        "`A.9.1` is not an ISO/IEC 27001:2022 Annex A control",
        "A.5.24 names `nope` as evidence, and no collector has that name",
    ] {
        assert!(
            bad.stderr.contains(problem),
            "{problem} not in\n{}",
            bad.stderr
        );
    }
}

/// Issue 18 (CSV): a finding in `findings.csv` names the run whose facts say so, that run's
/// facts object, and when its collector first recorded it (which a later run does not move).
#[test]
fn findings_csv_names_the_run_the_object_and_when_a_finding_was_first_seen() {
    let w = World::new();
    w.config(CONFIG);
    w.write(
        "procedures/old.md",
        &common::procedure("ISP-009", &common::reviewed_days_ago(400)),
    );
    w.write(
        "runbooks/on-call.md",
        &common::procedure("RB-1", &common::reviewed_days_ago(10)),
    );
    w.annexa(&["collect", "procedures"]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = w
        .annexa(&["--json", "collect", "procedures"])
        .expect(0)
        .json();
    let newest = second["runs"][0]["run_id"].as_str().unwrap().to_string();
    let today = Utc::now().date_naive();
    let out = w.path("bundle");
    w.annexa(&[
        "report",
        "--from",
        &today.to_string(),
        "--to",
        &today.succ_opt().unwrap().to_string(),
        "--format",
        "csv",
        "--out",
        out.to_str().unwrap(),
    ]);
    let dir = bundle_dir(&out);
    let rows = python(
        "import csv, json, sys\n\
         rows = list(csv.DictReader(open(sys.argv[1], newline='', encoding='utf-8-sig')))\n\
         print(json.dumps([r for r in rows if r['code'] == 'policy-review-overdue']))",
        &[&dir.join("findings.csv")],
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&rows).unwrap();
    assert!(!rows.is_empty(), "no policy-review-overdue finding");
    let row = &rows[0];
    assert_eq!(row["run_id"], newest.as_str(), "{row}");
    assert!(
        row["object_key"]
            .as_str()
            .unwrap()
            .starts_with("objects/sha256/"),
        "{row}"
    );
    // First seen: the first run's finding, a second before the newest run's.
    let evidence = python(
        "import csv, json, sys\n\
         rows = list(csv.DictReader(open(sys.argv[1], newline='', encoding='utf-8-sig')))\n\
         print(json.dumps(sorted({r['collected_at'] for r in rows if r['collector'] == 'procedures'})))",
        &[&dir.join("evidence.csv")],
    );
    let collected: Vec<String> = serde_json::from_str(&evidence).unwrap();
    let first_seen: DateTime<Utc> = row["first_seen"].as_str().unwrap().parse().unwrap();
    let last: DateTime<Utc> = collected.last().unwrap().parse().unwrap();
    assert!(
        first_seen < last - Duration::milliseconds(900),
        "{row} {collected:?}"
    );
}

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    files_under(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// Issue 20 (attested evidence): a training record attached to A.6.3 is pending until someone
/// other than its attester approves it, then satisfies A.6.3 until it expires; a rejected one
/// never counts; a newer approval supersedes; bad input stores nothing; every report format
/// names attester and reviewer, and OSCAL (checked by compliance-trestle) examines it.
#[test]
fn attested_evidence_is_pending_until_approved_then_fresh_until_it_expires() {
    let w = World::new();
    w.write(
        "procedures/incident-management.md",
        &common::procedure("ISP-002", "2026-10-20"),
    );
    w.write(
        "runbooks/on-call.md",
        &common::procedure("RB-1", "2026-10-20"),
    );
    w.write(
        "soa.csv",
        "control,applicable,justification,owner,implementation,evidence\n\
         A.6.3,yes,,Dana HR,implemented,\n\
         A.7.4,no,Fully remote company: no offices,,,\n",
    );
    w.config(&format!(
        "{CONFIG}\n[soa]\nfile = \"soa.csv\"\n\n[attest]\nmax_file_size_mib = 1\n"
    ));
    w.write(
        "training-2026.pdf",
        "%PDF-1.4 awareness training completions 2026\n",
    );
    w.write("empty.pdf", "");
    std::fs::write(w.path("huge.pdf"), vec![b'x'; 2 << 20]).unwrap();
    let p = |f: &str| w.path(f).to_str().unwrap().to_string();
    let at = |day: u32, hour: u32| format!("2026-11-{day:02}T{hour:02}:00:00Z");
    let control = |doc: &serde_json::Value| common::control(doc, "A.6.3").clone();
    w.annexa_at(&at(1, 8), &["collect", "--all"]).expect(0);
    let objects = w.object_file("objects");
    let stored = files_under(&objects);

    // Bad input: every problem at once, exit 2, nothing stored.
    let bad = w
        .annexa_at(
            &at(2, 9),
            &[
                "attach",
                &p("missing.pdf"),
                &p("empty.pdf"),
                &p("huge.pdf"),
                "--control",
                "A.9.9,A.7.4,A.5.24",
                "--effective",
                "2026-11-10",
                "--expires",
                "2026-11-05",
            ],
        )
        .expect(2);
    for problem in [
        "missing.pdf: No such file",
        "empty.pdf: the file is empty",
        "huge.pdf: 2097152 bytes, more than the 1 MiB",
        "--control A.9.9: not an ISO/IEC 27001:2022 Annex A control",
        "--control A.7.4: the Statement of Applicability excludes it (Fully remote company",
        "--control A.5.24: annexa judges it on what its collectors gather",
        "not after the effective date 2026-11-10T00:00:00Z",
    ] {
        assert!(
            bad.stderr.contains(problem),
            "{problem} not in\n{}",
            bad.stderr
        );
    }
    let unknown = w
        .annexa_at(&at(2, 9), &["review", "0000", "--approve", "--by", "Sam"])
        .expect(2);
    assert!(
        unknown
            .stderr
            .contains("no attested evidence has the id `0000`")
    );
    // Two files of one name, and evidence that has already expired.
    w.write("sub/training-2026.pdf", "%PDF-1.4 another copy\n");
    let twice = w
        .annexa_at(
            &at(2, 9),
            &[
                "attach",
                &p("training-2026.pdf"),
                &p("sub/training-2026.pdf"),
                "--control",
                "A.6.3",
                "--effective",
                "2026-09-01",
                "--expires",
                "2026-10-01",
            ],
        )
        .expect(2);
    for problem in [
        "a second file named `training-2026.pdf`",
        "--expires 2026-10-02T00:00:00Z: already past",
    ] {
        assert!(
            twice.stderr.contains(problem),
            "{problem} not in\n{}",
            twice.stderr
        );
    }
    assert_eq!(files_under(&objects), stored, "bad input stored something");
    let list = w
        .annexa_at(&at(2, 9), &["--json", "attach", "--list"])
        .expect(0);
    assert_eq!(list.json(), serde_json::json!([]));

    // Attached: pending, and A.6.3 is missing with the pending review named.
    let first = w
        .annexa_at(
            &at(2, 9),
            &[
                "--json",
                "attach",
                &p("training-2026.pdf"),
                "--control",
                "A.6.3",
                "--title",
                "Awareness training completions 2026",
                "--expires",
                "2026-11-20",
            ],
        )
        .expect(0)
        .json();
    let first_id = first["evidence"].as_str().unwrap().to_string();
    assert_eq!(
        first["owner"], "Dana HR",
        "the SoA's owner attests by default"
    );
    assert_eq!(first["state"], "pending");
    let status = w.annexa_at(&at(2, 10), &["status", "--json"]).json();
    let a63 = control(&status);
    assert_eq!(a63["status"], "missing", "{a63}");
    let codes: Vec<&str> = a63["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"attestation-pending") && codes.contains(&"evidence-missing"));
    assert!(a63["findings"].to_string().contains(&first_id));

    // Its attester cannot approve it; someone else can, once.
    let own = w
        .annexa_at(
            &at(3, 9),
            &["review", &first_id, "--approve", "--by", "dana hr"],
        )
        .expect(2);
    assert!(
        own.stderr.contains("cannot review it too"),
        "{}",
        own.stderr
    );
    w.annexa_at(
        &at(3, 9),
        &[
            "review",
            &first_id,
            "--approve",
            "--by",
            "Sam Auditor",
            "--comment",
            "matches the LMS export",
        ],
    )
    .expect(0);
    let nobody = w
        .annexa_at(&at(3, 9), &["review", &first_id, "--approve", "--by", "  "])
        .expect(2);
    assert!(nobody.stderr.contains("--by: empty"), "{}", nobody.stderr);
    let again = w
        .annexa_at(
            &at(3, 10),
            &["review", &first_id, "--reject", "--by", "Kim"],
        )
        .expect(2);
    assert!(again.stderr.contains("was already approved by Sam Auditor"));
    let status = w.annexa_at(&at(10, 9), &["status", "--json"]).json();
    let a63 = control(&status);
    assert_eq!(a63["status"], "satisfied", "{a63}");
    let evidence = &a63["evidence"][0];
    assert_eq!(evidence["run_id"], first_id.as_str());
    assert_eq!(evidence["attested"]["owner"], "Dana HR");
    assert_eq!(evidence["attested"]["reviewed_by"], "Sam Auditor");
    assert_eq!(evidence["expires_at"], "2026-11-21T00:00:00Z");
    // Before the approval it did not count.
    let before = w
        .annexa_at(&at(10, 9), &["status", "--json", "--as-of", &at(3, 8)])
        .json();
    assert_eq!(control(&before)["status"], "missing");
    // After its expiry it is stale.
    let after = w.annexa_at(&at(22, 9), &["status", "--json"]).json();
    assert_eq!(control(&after)["status"], "stale", "{}", control(&after));

    // A rejected attachment never counts, and does not supersede the approved one.
    w.write("training-draft.pdf", "%PDF-1.4 draft, incomplete\n");
    let draft = w
        .annexa_at(
            &at(11, 9),
            &[
                "--json",
                "attach",
                &p("training-draft.pdf"),
                "--control",
                "A.6.3",
                "--max-age",
                "90d",
            ],
        )
        .expect(0)
        .json();
    let draft_id = draft["evidence"].as_str().unwrap().to_string();
    w.annexa_at(
        &at(11, 10),
        &[
            "review",
            &draft_id,
            "--reject",
            "--by",
            "Sam Auditor",
            "--comment",
            "incomplete",
        ],
    )
    .expect(0);
    let status = w.annexa_at(&at(12, 9), &["status", "--json"]).json();
    assert_eq!(control(&status)["evidence"][0]["run_id"], first_id.as_str());
    // A newer approval supersedes the older.
    w.write("training-q4.pdf", "%PDF-1.4 Q4 completions\n");
    let newer = w
        .annexa_at(
            &at(13, 9),
            &[
                "--json",
                "attach",
                &p("training-q4.pdf"),
                "--control",
                "A.6.3",
                "--owner",
                "Lee Ops",
            ],
        )
        .expect(0)
        .json();
    let newer_id = newer["evidence"].as_str().unwrap().to_string();
    assert_eq!(
        newer["expires"], "2027-11-13T09:00:00Z",
        "A.6.3's max_age: 365 days"
    );
    w.annexa_at(
        &at(13, 10),
        &["review", &newer_id, "--approve", "--by", "Sam Auditor"],
    )
    .expect(0);
    let status = w.annexa_at(&at(25, 9), &["status", "--json"]).json();
    let a63 = control(&status);
    assert_eq!(a63["status"], "satisfied", "{a63}");
    assert_eq!(a63["evidence"][0]["run_id"], newer_id.as_str());
    let states: Vec<(String, String)> = w
        .annexa_at(&at(25, 9), &["--json", "attach", "--list"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["evidence"].as_str().unwrap().into(),
                a["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (first_id.clone(), "expired".to_string()),
            (draft_id.clone(), "rejected".to_string()),
            (newer_id.clone(), "approved".to_string()),
        ]
    );

    // Self-review, where the config allows it, is said so.
    let config = std::fs::read_to_string(w.config_path()).unwrap();
    w.config(&config.replace("[attest]\n", "[attest]\nallow_self_review = true\n"));
    w.write("nda.pdf", "%PDF-1.4 signed NDAs\n");
    let nda = w
        .annexa_at(
            &at(14, 9),
            &[
                "--json",
                "attach",
                &p("nda.pdf"),
                "--control",
                "A.6.6",
                "--owner",
                "Lee Ops",
            ],
        )
        .expect(0)
        .json();
    w.annexa_at(
        &at(14, 10),
        &[
            "review",
            nda["evidence"].as_str().unwrap(),
            "--approve",
            "--by",
            "Lee Ops",
        ],
    )
    .expect(0);

    // The November report: every format names attester and reviewer.
    let out = w.path("bundle");
    let report = w.annexa_at(
        "2026-12-01T01:00:00Z",
        &[
            "report",
            "--format",
            "html,md,csv,json,oscal",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(report.code == 0 || report.code == 3, "{}", report.stderr);
    let dir = bundle_dir(&out);
    for file in [
        "report.md",
        "report.html",
        "report.json",
        "oscal-assessment-results.json",
    ] {
        let text = read(&dir, file);
        for needle in ["Dana HR", "Sam Auditor", "Lee Ops", &newer_id] {
            assert!(text.contains(needle), "{file} does not name {needle}");
        }
    }
    let md = read(&dir, "report.md");
    let table = md_section(&md, "### Attested evidence for A.6.3");
    for row in [&first_id, &draft_id, &newer_id] {
        assert!(table.contains(row.as_str()), "{table}");
    }
    assert!(table.contains("| rejected | Sam Auditor |") && table.contains("incomplete"));
    assert!(md.contains("Lee Ops (self-review, allowed by"), "{md}");
    let evidence_csv = read(&dir, "evidence.csv");
    assert!(evidence_csv.contains("training-q4.pdf"), "{evidence_csv}");
    // The applicable controls with no attested evidence are one gap, not a row each.
    let json: serde_json::Value = serde_json::from_str(&read(&dir, "report.json")).unwrap();
    let unattested: Vec<&serde_json::Value> = json["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["collector"] == "attested" && g["kind"] == "missing")
        .collect();
    assert_eq!(unattested.len(), 1, "{}", json["gaps"]);
    let ids = unattested[0]["controls"].to_string();
    assert!(
        ids.contains("\"A.6.1\"") && ids.contains("\"A.8.34\""),
        "{ids}"
    );
    for id in ["A.6.3", "A.6.6", "A.7.4", "A.5.24"] {
        assert!(!ids.contains(&format!("\"{id}\"")), "{id} in {ids}");
    }
    let oscal = python(
        "import json, sys\n\
         from trestle.oscal.assessment_results import AssessmentResults\n\
         doc = json.load(open(sys.argv[1]))['assessment-results']\n\
         ar = AssessmentResults.model_validate(doc)\n\
         parties = {p.uuid: p.name for p in ar.metadata.parties}\n\
         obs = ar.results[0].observations\n\
         assert len({o.uuid for o in obs}) == len(obs), 'observation UUIDs repeat'\n\
         print('\\n'.join(' '.join(sorted(o.methods)) + ' | ' + ', '.join(parties.get(a.actor_uuid, 'tool') for a in o.origins[0].actors) for o in obs if sys.argv[2] in o.description))",
        &[
            &dir.join("oscal-assessment-results.json"),
            Path::new(&newer_id),
        ],
    );
    // The attested snapshot, and apart from it (its own UUID) the run's custody manifest.
    let mut lines: Vec<&str> = oscal.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["EXAMINE INTERVIEW | Lee Ops, Sam Auditor", "EXAMINE | tool"],
        "{oscal}"
    );
    w.annexa_at("2026-12-01T02:00:00Z", &["verify"]).expect(0);
}

/// Issue 18 (how to verify): the commands the report prints check the bundle with nothing but
/// coreutils and OpenSSL and the verifier file, and each tampering makes them fail.
#[tokio::test]
async fn the_report_s_own_commands_verify_the_bundle_without_annexa() {
    let w = World::new();
    october(&w).await;
    let bundle = october_report(&w, &w.path("out")).await;
    let keys = w.path("verifier.txt");
    w.annexa(&["keys", "export", keys.to_str().unwrap()])
        .expect(0);
    let md = read(&bundle.dir, "report.md");
    let section = md_section(&md, "## How to verify this report");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a sh block");
    assert!(
        read(&bundle.dir, "report.html").contains("openssl pkeyutl -verify"),
        "the HTML report shows the commands too"
    );
    let sums = read(&bundle.dir, "SHA256SUMS");
    assert_eq!(
        sums.lines().count(),
        12,
        "eleven files and the manifest: {sums}"
    );
    // Each case on a copy of the bundle: (what is done to it, the verifier file to use).
    let run = |name: &str, tamper: &dyn Fn(&Path), verifier: &Path| {
        let dir = w.path(&format!("copies/{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&bundle.dir).unwrap().flatten() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        tamper(&dir);
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&dir)
            .env("KEYS", verifier)
            .output()
            .expect("bash runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, output) = run("intact", &|_| {}, &keys);
    assert!(
        ok,
        "the intact bundle fails its own commands:\n{output}\n{}\n{}",
        std::fs::read_to_string(&keys).unwrap(),
        read(&bundle.dir, "manifest.json.sig")
    );
    assert!(
        output.contains("Signature Verified Successfully"),
        "{output}"
    );
    assert!(output.contains("report.html: OK"), "{output}");

    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 1;
        std::fs::write(path, bytes).unwrap();
    };
    let rehash = |dir: &Path, name: &str| {
        // A tamperer who also rewrites that file's line of SHA256SUMS.
        let new = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(dir.join(name)).unwrap(),
        ));
        let sums: String = read(dir, "SHA256SUMS")
            .lines()
            .map(|l| match l.split_once("  ") {
                Some((_, n)) if n == name => format!("{new}  {n}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    };
    let other_key = w.path("other.txt");
    let other = annexa::ledger::note::NoteKey::generate("annexa/other").unwrap();
    std::fs::write(&other_key, other.verifier_text()).unwrap();
    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Tamper, &Path, &str)> = vec![
        (
            "a flipped byte",
            Box::new(|d: &Path| flip(&d.join("report.html"))),
            &keys,
            "report.html: FAILED",
        ),
        (
            "a file and its SHA256SUMS line",
            Box::new(|d: &Path| {
                flip(&d.join("evidence.csv"));
                rehash(d, "evidence.csv");
            }),
            &keys,
            "",
        ),
        (
            "an edited manifest",
            Box::new(|d: &Path| {
                let m = read(d, "manifest.json").replace("Example Ltd", "Example Plc");
                std::fs::write(d.join("manifest.json"), m).unwrap();
                rehash(d, "manifest.json");
            }),
            &keys,
            "",
        ),
        (
            "an edited signed text",
            Box::new(|d: &Path| {
                let note = read(d, "manifest.json.sig").replacen("sha256 ", "sha256 0", 1);
                std::fs::write(d.join("manifest.json.sig"), note).unwrap();
            }),
            &keys,
            "Signature Verification Failure",
        ),
        ("another key", Box::new(|_: &Path| {}), &other_key, ""),
    ];
    for (i, (what, tamper, verifier, says)) in cases.iter().enumerate() {
        let (ok, output) = run(&format!("case{i}"), tamper.as_ref(), verifier);
        assert!(!ok, "{what}: the commands passed:\n{output}");
        assert!(output.contains(says), "{what}: {says} not in\n{output}");
    }
    // annexa's own check agrees: a rewritten SHA256SUMS is named.
    let dir = w.path("copies/case1");
    let trusted =
        annexa::ledger::keyring::read_verifier_file(&std::fs::read_to_string(&keys).unwrap())
            .unwrap();
    let report = annexa::ledger::bundle::check(&dir, &trusted).unwrap();
    let names: Vec<&str> = report
        .violations
        .iter()
        .map(|v| v.location.as_str())
        .collect();
    assert!(names.contains(&"SHA256SUMS"), "{names:?}");
}

/// Writes the quickstart's incident register and post-mortems into the world as they stood at
/// `t` (the simulated month's bench does the same, with the same script).
fn register_at(w: &World, t: DateTime<Utc>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("benches/register-at.py"))
        .arg(root.join("examples/quickstart"))
        .arg(w.path(""))
        .arg(t.to_rfc3339())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A clock a test moves.
#[derive(Default)]
struct MovingClock(std::sync::atomic::AtomicI64);

impl MovingClock {
    fn set(&self, t: DateTime<Utc>) {
        self.0
            .store(t.timestamp_micros(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl annexa_collectors::Clock for MovingClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
    }
}

/// Runs headless Chromium with `args`, as the tests drive it, and gives its output.
fn chromium(w: &World, args: &[String]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", w.path("chromium").display()))
        .args(args)
        .output()
        .expect("chromium runs (scripts/test installs Debian's chromium)");
    assert!(
        out.status.success(),
        "chromium failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Prints `html` to `pdf` as headless Chromium does for a reader, and says how many pages.
fn print_to_pdf(w: &World, html: &Path, pdf: &Path) -> usize {
    chromium(
        w,
        &[
            "--no-pdf-header-footer".into(),
            format!("--print-to-pdf={}", pdf.display()),
            format!("file://{}", html.display()),
        ],
    );
    let info = Command::new("pdfinfo").arg(pdf).output().unwrap();
    String::from_utf8_lossy(&info.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("pdfinfo names the pages")
}

/// The text of pages `first..=last` of a PDF, laid out as printed.
fn pdf_text(pdf: &Path, first: usize, last: usize) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout", "-f", &first.to_string(), "-l", &last.to_string()])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext runs (scripts/test installs poppler-utils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 18, its "done when": a simulated month (collectors every six hours, an hourly job,
/// from 28 October to the end of November) in which incidents are opened, triaged and closed
/// mid-month, a restore drill fails and the next one succeeds, and the job is down for the
/// whole of 12 November. The November report lists every one of those events once, with the
/// snapshots that show it; prints within the page budget on numbered pages; names no host
/// path in any file; writes CSV with a BOM and whole cells; and gives every OSCAL object its
/// own UUID.
#[tokio::test]
async fn a_simulated_month_reports_every_event_of_the_period_on_paper() {
    let w = World::new();
    w.config(
        r#"
[organization]
name = "Example Ltd"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "5 0 * * *"
paths = ["policies"]

[[collector]]
name = "cron-health"
kind = "cron-health"
schedule = "30 */6 * * *"

[[job]]
name = "db-backup"
schedule = "0 * * * *"
grace = "15m"

[[collector]]
name = "incidents"
kind = "incident-log"
schedule = "10 */6 * * *"
register = "incidents/register.csv"
postmortems = "incidents/postmortems"

[[collector]]
name = "backups"
kind = "backup-restore"
schedule = "15 */6 * * *"
path = "backups"
pattern = "*.sqlite"
max_backup_age = "25h"

[collector.drill]
every = "14d"
required_within = "15d"

[[collector.drill.queries]]
sql = "SELECT count(*) FROM accounts"
expect = ">= 1"
"#,
    );
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for entry in std::fs::read_dir(quickstart.join("policies"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        w.write(
            &format!("policies/{}", entry.file_name().to_string_lossy()),
            &text,
        );
    }
    let good_backup = std::fs::read(quickstart.join("backups/app-2026-11-22.sqlite")).unwrap();
    std::fs::create_dir_all(w.path("backups")).unwrap();
    // The nightly backup at 02:00; the one of 10 November is garbage, so the drill due on the
    // 11th fails and the next collection's drill (of the 11th's good backup) succeeds.
    let backup = |day: DateTime<Utc>| {
        let at = day + Duration::hours(2);
        let path = w.path(&format!("backups/app-{}.sqlite", at.format("%Y-%m-%d")));
        let corrupt = at.format("%m-%d").to_string() == "11-10";
        std::fs::write(
            &path,
            if corrupt {
                b"not a database".to_vec()
            } else {
                good_backup.clone()
            },
        )
        .unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(at.into()).unwrap();
    };
    let start = Utc.with_ymd_and_hms(2026, 10, 28, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    backup(start - Duration::days(1));
    // One process for the month, its clock moved to each moment.
    let clock = Arc::new(MovingClock::default());
    let app = Annexa::open_with_clock(w.loaded_config(&[]), clock.clone())
        .await
        .unwrap();
    let mut hour = start;
    while hour < end {
        // The job pings at :01 every hour, except all of 12 November.
        if hour.format("%m-%d").to_string() != "11-12" {
            clock.set(hour + Duration::minutes(1));
            annexa::evidence::heartbeats::record_ping(
                &app.db,
                &app.config,
                "db-backup",
                annexa_collectors::cron_health::PingKind::Success,
                None,
                None,
                annexa::evidence::heartbeats::Via::Cli,
                hour + Duration::minutes(1),
            )
            .await
            .unwrap();
        }
        if hour.format("%H").to_string() == "02" {
            backup(hour - Duration::hours(2));
        }
        if hour.hour().is_multiple_of(6) {
            // The register and post-mortems as they stood, then each collector at its slot.
            register_at(&w, hour + Duration::minutes(10));
            for (name, minute) in [
                ("policies", 5),
                ("incidents", 10),
                ("backups", 15),
                ("cron-health", 30),
            ] {
                if name == "policies" && hour.hour() != 0 {
                    continue;
                }
                let slot = hour + Duration::minutes(minute);
                clock.set(slot + Duration::minutes(1));
                let config = app.config.collector(name).unwrap();
                let outcome = annexa::evidence::runner::run_collector(&app, config, Some(slot))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(
                    outcome.succeeded(),
                    "{name} at {slot}: {:?}",
                    outcome.run.error
                );
            }
        }
        hour += Duration::hours(1);
    }

    let out = w.path("out");
    // Exit 3: the month left gaps.
    w.annexa_at(
        "2026-12-01T09:00:00Z",
        &["report", "--out", out.to_str().unwrap()],
    )
    .expect(3);
    let dir = bundle_dir(&out);
    let md = read(&dir, "report.md");
    let figures = md_section(&md, "## Figures");

    // Every incident whose lifecycle touches November, once, with how its targets went; none
    // that ended before it.
    let incidents = &figures[figures.find("Incidents in the period").unwrap()..];
    let incidents = &incidents[..incidents.find("\n###").unwrap_or(incidents.len())];
    for id in [
        "INC-106", "INC-107", "INC-108", "INC-109", "INC-110", "INC-111", "INC-112",
    ] {
        assert_eq!(
            incidents.matches(&format!("| {id}:")).count(),
            1,
            "{id} once in:\n{incidents}"
        );
    }
    for id in ["INC-101", "INC-102", "INC-103", "INC-104", "INC-105"] {
        assert!(
            !incidents.contains(id),
            "{id} ended in October:\n{incidents}"
        );
    }
    let row = |id: &str| {
        incidents
            .lines()
            .find(|l| l.contains(&format!("| {id}:")))
            .unwrap()
    };
    for (id, expected) in [
        // Detected on the 5th, triaged, resolved on the 9th: shown as it ended, with its
        // post-mortem and the snapshots from its detection to the end of the month.
        ("INC-108", "2026-11-09 12:00 UTC ("),
        ("INC-108", "2026-11-10-INC-108.md"),
        ("INC-108", "snapshots, 2026-11-05 12:1"),
        // Detected and resolved in October, closed on 7 November: shown from the snapshot
        // before the period on.
        ("INC-106", "snapshots, 2026-10-31 18:1"),
        // Still open at the end of the month; never classified.
        ("INC-111", "not yet ("),
        ("INC-109", "unclassified"),
    ] {
        assert!(row(id).contains(expected), "{expected} not in {}", row(id));
    }

    // Every restore drill of November: the failed one and the good one after it, and the next.
    let drills = &figures[figures.find("Restore drills in the period").unwrap()..];
    let drills = &drills[..drills.find("\n###").unwrap_or(drills.len())];
    let drill_rows: Vec<&str> = drills
        .lines()
        .filter(|l| l.starts_with("| 2026-"))
        .collect();
    assert_eq!(drill_rows.len(), 3, "{drills}");
    assert!(
        drill_rows[0].starts_with("| 2026-11-11 00:16") && drill_rows[0].contains("failed"),
        "{drills}"
    );
    assert!(
        drill_rows[1].starts_with("| 2026-11-11 06:16") && drill_rows[1].contains("succeeded"),
        "{drills}"
    );
    assert!(
        drill_rows[2].starts_with("| 2026-11-25 06:16") && drill_rows[2].contains("succeeded"),
        "{drills}"
    );
    assert!(drills.contains("app-2026-11-10.sqlite"), "{drills}");

    // The job down for a day: its 24 missed slots, as one range, in November's coverage.
    let jobs = &figures[figures.find("Scheduled jobs in the period").unwrap()..];
    let job = jobs.lines().find(|l| l.starts_with("| db-backup")).unwrap();
    assert!(
        job.contains("| 715 | 691 | 24 | 0 |")
            && job.contains("missed 2026-11-12 00:00 to 2026-11-12 23:00 (24 slots)"),
        "{job}"
    );
    // The backups of the month: one a night.
    let backups = &figures[figures.find("Backups made in the period").unwrap()..];
    assert!(
        backups.contains("| 30 | app-2026-11-01.sqlite, 2026-11-01 02:00 UTC"),
        "{backups}"
    );

    // On paper: within the budget, every page numbered, the running header on the last. The
    // printed report is kept for a reader in target/test-artifacts.
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let pdf = artifacts.join(format!("simulated-month-{:?}.pdf", common::backend()));
    let pages = print_to_pdf(&w, &dir.join("report.html"), &pdf);
    assert!((2..=40).contains(&pages), "{pages} pages");
    let last = pdf_text(&pdf, pages, pages);
    assert!(last.contains(&format!("page {pages} of {pages}")), "{last}");
    assert!(
        last.contains("Example Ltd · 2026-11-01 to 2026-11-30 (UTC)"),
        "{last}"
    );
    let html = std::fs::metadata(dir.join("report.html")).unwrap().len();
    assert!(html <= 1 << 20, "report.html is {html} bytes");

    // No host path in any file, CSV with a BOM and no cut cell, every OSCAL UUID once.
    let root = w.path("").display().to_string();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(root.trim_end_matches('/')),
            "{name} names {root}"
        );
        assert!(!text.contains("/tmp/"), "{name} names a host path");
        if name.ends_with(".csv") {
            assert!(
                bytes.starts_with("\u{feff}".as_bytes()),
                "{name} has no BOM"
            );
        }
    }
    let out = python(
        &[
            "import csv, json, sys, collections\n\
         d = sys.argv[1]\n\
         for name in ['controls.csv', 'gaps.csv', 'findings.csv', 'evidence.csv']:\n\
         \x20   rows = list(csv.reader(open(d + '/' + name, encoding='utf-8-sig')))\n\
         \x20   assert len({len(r) for r in rows}) == 1, name\n\
         \x20   assert not any(c.endswith('\u{2026}') for r in rows for c in r), name\n",
            UUID_WALK,
            "for name in ['oscal-assessment-results.json', 'oscal-assessment-plan.json']:\n\
         \x20   uuids.clear()\n\
         \x20   walk(json.load(open(d + '/' + name)))\n\
         \x20   assert all(n == 1 for n in uuids.values()), (name, [u for u, n in uuids.items() if n > 1])\n\
         \x20   print(len(uuids))",
        ]
        .concat(),
        &[&dir],
    );
    let counts: Vec<usize> = out.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert!(
        counts[0] > 100 && counts[1] >= 3,
        "UUIDs in the results and the plan: {out}"
    );

    // The populations an auditor samples are the events the report lists (issue 21).
    let november = (
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
    );
    clock.set(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let draw = |control: &'static str, population: &'static str| {
        let app = &app;
        async move {
            annexa::views::sample::draw(app, control, population, november, None)
                .await
                .unwrap_or_else(|e| panic!("{population}: {e}"))
                .sample
        }
    };
    let incidents = draw("A.5.26", "incidents").await;
    let ids: Vec<&str> = incidents.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "INC-106", "INC-107", "INC-108", "INC-109", "INC-110", "INC-111", "INC-112"
        ]
    );
    assert_eq!(
        (incidents.size, incidents.selected.len()),
        (5, 5),
        "weekly: 5"
    );
    let drills = draw("A.5.30", "drills").await;
    let failed = |i: &&annexa::ledger::sample::Item| i.summary.contains(": failed (");
    assert_eq!(drills.items.len(), 3, "{:?}", drills.items);
    assert_eq!(
        drills.items.iter().filter(failed).count(),
        1,
        "{:?}",
        drills.items
    );
    let slots = draw("A.8.16", "job-slots").await;
    // Every watched job's slots: the hourly db-backup's 715, and annexa's own collectors'.
    let backup_slots: Vec<_> = slots
        .items
        .iter()
        .filter(|i| i.id.starts_with("db-backup "))
        .collect();
    assert_eq!(backup_slots.len(), 715);
    assert!(slots.items.iter().any(|i| i.id.starts_with("incidents ")));
    let missed = |i: &&&annexa::ledger::sample::Item| i.summary.ends_with(": missed");
    assert_eq!(backup_slots.iter().filter(missed).count(), 24);
    assert_eq!(
        slots.selected.len(),
        60,
        "several a day: {}",
        slots.frequency
    );
    // Each member names the facts object of the snapshot that shows it, in the store.
    for item in incidents
        .items
        .iter()
        .chain(&drills.items)
        .chain(&slots.items)
    {
        assert!(
            w.object_file(&item.object_key).exists() && item.object_key.ends_with(&item.sha256),
            "{item:?}"
        );
    }
}

/// Every file under `dir` with its bytes, by path.
fn tree_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut paths = Vec::new();
    annexa::ledger::package::walk(dir, "", &mut paths).unwrap();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(dir.join(&p)).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Issue 21: the evidence package of a simulated month. It is the same bytes when exported
/// again (as a folder and as a `.tar.zst`), verifies offline with annexa and with the Python
/// script it ships, and each tampering fails both, each for its own reason. The next month's
/// package proves that its tree extends this one's.
#[tokio::test]
async fn an_exported_month_verifies_offline_and_each_tampering_fails_both_checkers() {
    let w = World::new();
    october(&w).await;
    let period = (
        oct(1, 0),
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
    );
    let app = at(&w, Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()).await;
    let export = |out: PathBuf| {
        let app = &app;
        async move {
            annexa::views::export::export(app, period, &out)
                .await
                .unwrap()
        }
    };
    let pkg = w.path("october");
    let exported = export(pkg.clone()).await;
    assert_eq!(
        exported.contents.runs.len(),
        31 + 20,
        "every run of October"
    );
    assert!(exported.contents.previous.is_none());
    // Two documents and their facts, stored once however many runs list them.
    assert_eq!(exported.objects, tree_bytes(&pkg.join("objects")).len());
    assert!(exported.objects >= 4, "{} objects", exported.objects);

    // The same records give the same bytes.
    export(w.path("again")).await;
    assert!(
        tree_bytes(&pkg) == tree_bytes(&w.path("again")),
        "a second export differs"
    );
    export(w.path("a.tar.zst")).await;
    export(w.path("b.tar.zst")).await;
    assert!(
        std::fs::read(w.path("a.tar.zst")).unwrap() == std::fs::read(w.path("b.tar.zst")).unwrap(),
        "two archives of the same records differ"
    );

    // An object of another period: November's procedure, changed.
    w.write(
        "procedures/incident.md",
        &common::procedure("PROC-1", "2026-11-02"),
    );
    let november = at(&w, Utc.with_ymd_and_hms(2026, 11, 3, 3, 1, 0).unwrap()).await;
    let config = november.config.collector("procedures").unwrap();
    annexa::evidence::runner::run_collector(&november, config, None)
        .await
        .unwrap()
        .unwrap();
    let new_object = tree_bytes(&w.object_file("objects"))
        .into_keys()
        .map(|k| format!("objects/{k}"))
        .find(|k| !pkg.join(k).exists())
        .expect("November stored an object October does not have");

    let keys = w.path("verifier.txt");
    w.annexa(&["keys", "export", keys.to_str().unwrap()])
        .expect(0);
    let annexa_check = |dir: &Path| {
        let run = w.annexa(&[
            "--json",
            "verify",
            "--bundle",
            dir.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ]);
        let kinds: Vec<String> = run.json()["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["kind"].as_str().unwrap().to_string())
            .collect();
        (run.code, kinds)
    };
    let python_check = |dir: &Path| {
        let out = Command::new("python3")
            .arg(dir.join("verify.py"))
            .arg(&keys)
            .arg(dir)
            .output()
            .expect("python3 runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    assert_eq!(annexa_check(&pkg), (0, vec![]));
    assert_eq!(annexa_check(&w.path("a.tar.zst")), (0, vec![]));
    let (code, said) = python_check(&pkg);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("51 runs") && said.ends_with("verified\n"),
        "{said}"
    );

    let edit_package = |dir: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let path = dir.join("package.json");
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut doc);
        std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
    };
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("package.json")).unwrap()).unwrap();
    let first_manifest = doc["runs"][0]["manifest"].as_str().unwrap().to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join(&first_manifest)).unwrap()).unwrap();
    let first_object = manifest["items"][0]["object_key"]
        .as_str()
        .unwrap()
        .to_string();
    let other = annexa::ledger::note::NoteKey::generate(
        &doc["checkpoint"]["origin"]
            .as_str()
            .unwrap()
            .replace("annexa/", "other/"),
    )
    .unwrap();
    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    // (what is done, a violation annexa must name, what the Python script must say)
    let cases: Vec<(&str, Tamper, &str, &str)> = vec![
        (
            "a flipped byte in an object",
            Box::new(|d| {
                let path = d.join(&first_object);
                let mut bytes = std::fs::read(&path).unwrap();
                let i = bytes.len() / 2;
                bytes[i] ^= 1;
                std::fs::write(path, bytes).unwrap();
            }),
            "object-altered",
            "SHA-256 or size differ",
        ),
        (
            "a missing object",
            Box::new(|d| std::fs::remove_file(d.join(&first_object)).unwrap()),
            "object-missing",
            "is not in the package",
        ),
        (
            "an edited manifest",
            Box::new(|d| {
                let path = d.join(&first_manifest);
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(path, text.replacen("\"size\":", "\"size\":1", 1)).unwrap();
            }),
            "manifest-altered",
            "not the manifest package.json names",
        ),
        (
            "a swapped proof",
            Box::new(|d| {
                edit_package(d, &|doc| {
                    let a = doc["runs"][0]["audit_path"].clone();
                    doc["runs"][0]["audit_path"] = doc["runs"][1]["audit_path"].clone();
                    doc["runs"][1]["audit_path"] = a;
                })
            }),
            "proof-invalid",
            "audit path does not lead",
        ),
        (
            "a checkpoint signed by another key",
            Box::new(|d| {
                let note =
                    SignedNote::parse(&std::fs::read_to_string(d.join("checkpoint.txt")).unwrap())
                        .unwrap();
                std::fs::write(d.join("checkpoint.txt"), other.sign_note(&note.text)).unwrap();
            }),
            "checkpoint-unknown-key",
            "checkpoint.txt: no valid signature",
        ),
        (
            "an object from another period",
            Box::new(|d| {
                let target = d.join(&new_object);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(w.object_file(&new_object), target).unwrap();
            }),
            "package-stray-file",
            "no run of the period lists it",
        ),
    ];
    for (what, tamper, kind, message) in cases {
        let copy = w.path(&format!("tampered/{}", what.replace(' ', "-")));
        common::copy_dir(&pkg, &copy, &[]);
        tamper(&copy);
        let (code, kinds) = annexa_check(&copy);
        assert_eq!(code, 4, "{what}: annexa accepted it");
        assert!(
            kinds.iter().any(|k| k == kind),
            "{what}: annexa found {kinds:?}, not {kind}"
        );
        let (code, said) = python_check(&copy);
        assert_eq!(code, 1, "{what}: verify.py accepted it:\n{said}");
        assert!(said.contains(message), "{what}: verify.py said\n{said}");
    }

    // November's package extends October's checkpoint, and says so.
    let app = at(&w, Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap()).await;
    let nov = w.path("november");
    let next = annexa::views::export::export(
        &app,
        (
            period.1,
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        ),
        &nov,
    )
    .await
    .unwrap();
    let previous = next.contents.previous.as_ref().expect("a previous export");
    assert_eq!(previous.tree_size, exported.contents.checkpoint.tree_size);
    assert_eq!(previous.root_hash, exported.contents.checkpoint.root_hash);
    assert!(!previous.proof.is_empty());
    assert_eq!(annexa_check(&nov), (0, vec![]));
    assert_eq!(python_check(&nov).0, 0, "{}", python_check(&nov).1);
    let mut broken = next.contents.clone();
    broken.previous.as_mut().unwrap().proof[0] = "00".repeat(32);
    let copy = w.path("tampered/consistency");
    common::copy_dir(&nov, &copy, &[]);
    edit_package(&copy, &|doc| {
        doc["previous"] = serde_json::to_value(&broken.previous).unwrap()
    });
    assert!(
        annexa_check(&copy)
            .1
            .contains(&"checkpoint-inconsistent".to_string())
    );
    assert!(
        python_check(&copy)
            .1
            .contains("does not extend the previous export")
    );

    // The binary, a month later and after November's run and export, writes the same bytes.
    let cli_export = |from: &str, to: &str, out: &Path| {
        w.annexa(&[
            "export",
            "--from",
            from,
            "--to",
            to,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let cli = w.path("october-again");
    let run = cli_export("2026-10-01", "2026-10-31", &cli).expect(0);
    assert!(run.stdout.contains("51 runs"), "{}", run.stdout);
    assert!(
        tree_bytes(&pkg) == tree_bytes(&cli),
        "the binary's export differs"
    );

    // Bad requests.
    let empty = cli_export("2026-09-01", "2026-09-30", &w.path("sept")).expect(2);
    assert!(empty.stderr.contains("no run finished"), "{}", empty.stderr);
    let exists = cli_export("2026-10-01", "2026-10-31", &pkg).expect(2);
    assert!(exists.stderr.contains("exists"), "{}", exists.stderr);
    let garbage = w.path("garbage.tar.zst");
    std::fs::write(&garbage, "not an archive").unwrap();
    let unreadable = w
        .annexa(&[
            "verify",
            "--bundle",
            garbage.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ])
        .expect(2);
    assert!(
        unreadable.stderr.contains("is not a .tar.zst package"),
        "{}",
        unreadable.stderr
    );
    // An object altered in the store is not exported: exit 4, and no package is left behind.
    let stored = w.object_file(&first_object);
    let mut perms = std::fs::metadata(&stored).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&stored, perms).unwrap();
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let altered = cli_export("2026-10-01", "2026-10-31", &w.path("altered")).expect(4);
    assert!(
        altered
            .stderr
            .contains("is not the object its manifest lists"),
        "{}",
        altered.stderr
    );
    assert!(!w.path("altered").exists());
}

/// Issue 21: a sample of October's runs for A.5.24. Drawing it again, or on a second machine
/// with the same records, gives the same file; annexa and the Python script each reproduce it
/// and reject a tampered copy; a changed population gives another sample; an empty population
/// is no pass; and a tester's results are stored as attested evidence a report names.
#[tokio::test]
async fn a_sample_nobody_can_steer_is_reproduced_by_both_checkers_and_its_results_recorded() {
    let w = World::new();
    october(&w).await;
    let draw = |w: &World, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "sample",
            "--control",
            "A.5.24",
            "--population",
            "runs",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        w.annexa_at("2026-11-02T09:00:00Z", &args)
    };
    let file = w.path("sample.json");
    let first = draw(&w, &file, &[]).expect(0);
    assert!(first.stdout.contains("30 of 51 items"), "{}", first.stdout);
    let sample: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(sample["items"].as_array().unwrap().len(), 51);
    assert!(
        sample["frequency"]
            .as_str()
            .unwrap()
            .starts_with("several a day")
    );

    // The same records give the same sample: again here, and on a second machine (a copy of
    // this one's folder store and database, or a second process on the same servers).
    let again = draw(&w, &w.path("again.json"), &[]).expect(0);
    assert!(
        again.stdout.contains("drawn before over the same records"),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(w.path("again.json")).unwrap()
    );
    let other = World::with_backend(common::backend());
    if common::backend() == common::Backend::Local {
        common::copy_dir(w.dir.path(), other.dir.path(), &[]);
    }
    let second = if common::backend() == common::Backend::Local {
        &other
    } else {
        &w
    };
    draw(second, &second.path("elsewhere.json"), &[]).expect(0);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(second.path("elsewhere.json")).unwrap(),
        "another machine drew another sample from the same records"
    );

    // Both checkers reproduce it, and reject each tampered copy.
    let keys = w.path("verifier.txt");
    w.annexa(&["keys", "export", keys.to_str().unwrap()])
        .expect(0);
    let script = w.path("verify.py");
    std::fs::write(&script, annexa::ledger::package::VERIFIER).unwrap();
    let python = |f: &Path| {
        let out = Command::new("python3")
            .arg(&script)
            .arg(&keys)
            .arg("--sample")
            .arg(f)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(python(&file).0, Some(0), "{}", python(&file).1);
    let verified = w
        .annexa(&["sample", "--verify", file.to_str().unwrap()])
        .expect(0);
    assert!(verified.stdout.contains("verified"), "{}", verified.stdout);
    type Tamper = fn(&mut serde_json::Value);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "a swapped selection",
            // An item the draw did not select (any fixed one is selected in some draws: the
            // seed is a checkpoint root, new with each world's keys).
            |s| {
                let selected: Vec<_> = s["selected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["id"].clone())
                    .collect();
                let outside = s["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["id"].clone())
                    .find(|id| !selected.contains(id))
                    .expect("more items than selected");
                s["selected"][0]["id"] = outside;
            },
            "selection",
        ),
        (
            "an item's object",
            |s| {
                s["items"][3]["sha256"] = serde_json::json!("00".repeat(32));
            },
            "population",
        ),
        (
            "another seed",
            |s| {
                s["seed"]["root_hash"] = serde_json::json!("11".repeat(32));
            },
            "seed",
        ),
        (
            "a smaller population",
            |s| {
                s["items"].as_array_mut().unwrap().remove(7);
            },
            "population",
        ),
    ];
    for (what, tamper, word) in cases {
        let mut copy = sample.clone();
        tamper(&mut copy);
        let path = w.path("tampered.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&copy).unwrap()).unwrap();
        let run = w.annexa(&["sample", "--verify", path.to_str().unwrap()]);
        assert_eq!(run.code, 4, "{what}: {}", run.stdout);
        let (code, said) = python(&path);
        assert_eq!(code, Some(1), "{what}: {said}");
        assert!(
            said.contains(word) && run.stdout.contains(word),
            "{what}: {said}\n{}",
            run.stdout
        );
    }

    // Asked for more than there are: all of them, said so. Nothing to sample: no pass.
    let all = draw(&w, &w.path("all.json"), &["--size", "100"]).expect(0);
    assert!(all.stdout.contains("all 51 items"), "{}", all.stdout);
    for (args, said) in [
        (
            ["--control", "A.9.99", "--population", "runs"],
            "not a control annexa judges",
        ),
        (
            ["--control", "A.5.24", "--population", "alerts"],
            "--population alerts: one of",
        ),
    ] {
        let run = w.annexa(&[&["sample"], &args[..]].concat()).expect(2);
        assert!(run.stderr.contains(said), "{}", run.stderr);
    }
    let zero = draw(&w, &w.path("zero.json"), &["--size", "0"]).expect(2);
    assert!(
        zero.stderr.contains("draw at least one item"),
        "{}",
        zero.stderr
    );
    let empty = w
        .annexa(&[
            "sample",
            "--control",
            "A.5.30",
            "--population",
            "drills",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
        ])
        .expect(3);
    assert!(
        empty.stderr.contains("nothing to sample"),
        "{}",
        empty.stderr
    );

    // The tester's results, stored as attested evidence for the control, named by the report.
    w.config(&format!(
        "{CONFIG}\n[controls.\"A.5.24\"]\ncollectors = [\"policy-document\", \"attested\"]\n"
    ));
    let csv_path = w.path("sample.csv");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    assert_eq!(lines.len(), 31, "a header and 30 rows");
    let early = w
        .annexa(&["sample", "--record", csv_path.to_str().unwrap()])
        .expect(2);
    assert!(
        early.stderr.contains("tested_by is empty"),
        "{}",
        early.stderr
    );
    for (n, line) in lines.iter_mut().enumerate().skip(1) {
        let line_text = line.strip_suffix(",,,").expect("empty tester columns");
        *line = match n {
            1 => format!("{line_text},Ines Auditor,fail,document not signed off"),
            _ => format!("{line_text},Ines Auditor,pass,"),
        };
    }
    // A failure needs its exception described; a row of another item is refused.
    let mut bad = lines.clone();
    bad[1] = bad[1].replace(",fail,document not signed off", ",fail,");
    bad[2] = bad[2].replacen(
        &sample["selected"][1]["id"].as_str().unwrap().to_string(),
        "run-x",
        1,
    );
    std::fs::write(&csv_path, bad.join("\n") + "\n").unwrap();
    let refused = w
        .annexa(&["sample", "--record", csv_path.to_str().unwrap()])
        .expect(2);
    for said in [
        "result fail without an exception",
        "run-x is not in the sample's population",
    ] {
        assert!(refused.stderr.contains(said), "{}", refused.stderr);
    }
    std::fs::write(&csv_path, lines.join("\n") + "\n").unwrap();
    let recorded = w
        .annexa_at(
            "2026-11-03T10:00:00Z",
            &["sample", "--record", csv_path.to_str().unwrap()],
        )
        .expect(0);
    assert!(
        recorded.stdout.contains("attested evidence"),
        "{}",
        recorded.stdout
    );
    let report = w
        .annexa_at(
            "2026-11-03T11:00:00Z",
            &[
                "--json",
                "report",
                "--from",
                "2026-10-01",
                "--to",
                "2026-10-31",
                "--format",
                "md",
                "--out",
                w.path("reports").to_str().unwrap(),
            ],
        )
        .json();
    let md = std::fs::read_to_string(Path::new(report["dir"].as_str().unwrap()).join("report.md"))
        .unwrap();
    let section = md
        .split("Samples drawn for the period")
        .nth(1)
        .expect("a samples table");
    assert!(
        section.contains("29 passed, 1 exception(s), tested by Ines Auditor"),
        "{section}"
    );

    // The attested population: the results themselves, attached in November.
    let attested = w
        .annexa_at(
            "2026-11-04T10:00:00Z",
            &[
                "sample",
                "--control",
                "A.5.24",
                "--population",
                "attested",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-30",
                "--out",
                w.path("attested.json").to_str().unwrap(),
            ],
        )
        .expect(0);
    assert!(
        attested.stdout.contains("all 1 items"),
        "{}",
        attested.stdout
    );

    // One more run in October: another population, so another sample, and the old file no
    // longer matches the records.
    let app = at(&w, oct(15, 4)).await;
    let config = app.config.collector("procedures").unwrap();
    annexa::evidence::runner::run_collector(&app, config, None)
        .await
        .unwrap()
        .unwrap();
    app.close().await;
    let stale = w
        .annexa(&["sample", "--verify", file.to_str().unwrap()])
        .expect(4);
    assert!(
        stale.stdout.contains("the evidence changed since"),
        "{}",
        stale.stdout
    );
    draw(&w, &w.path("changed.json"), &[]).expect(0);
    let changed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("changed.json")).unwrap()).unwrap();
    assert_eq!(changed["items"].as_array().unwrap().len(), 52);
    assert_ne!(changed["population_sha256"], sample["population_sha256"]);
    assert_ne!(changed["seed"], sample["seed"]);
    assert_ne!(changed["selected"], sample["selected"]);
}
