//! The evidence engine end to end, through the binary, on the backends the harness selects.

mod common;

use common::{POLICY_CONFIG, World, procedure};
use serde_json::Value;

fn policy_world() -> World {
    let w = World::new();
    w.config(POLICY_CONFIG);
    w.write(
        "policies/incident-management-procedure.md",
        &procedure(
            "incident-management-procedure",
            &common::reviewed_days_ago(60),
        ),
    );
    w.write(
        "policies/runbook.md",
        &format!(
            "# Incident response runbook\nOwner: On-call Last Reviewed: {}\nVersion: 2\n",
            common::reviewed_days_ago(200)
        ),
    );
    w
}

#[test]
fn run_evidences_a524_with_documents_and_a528_with_its_own_manifest() {
    let w = policy_world();
    let run = w.annexa(&["run"]).expect(3); // gaps: controls without collectors are missing
    assert!(
        run.stdout
            .contains("policies (policy-document): succeeded — 2 items stored in"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("manifest runs/policies/"),
        "{}",
        run.stdout
    );
    let a524 = run
        .stdout
        .lines()
        .find(|l| l.starts_with("A.5.24"))
        .unwrap();
    assert!(a524.contains("satisfied"), "{a524}");
    let a528 = run
        .stdout
        .lines()
        .find(|l| l.starts_with("A.5.28"))
        .unwrap();
    assert!(a528.contains("satisfied"), "{a528}");

    // A second run in the same slot collects nothing new.
    let again = w.annexa(&["run"]).expect(3);
    assert!(
        again.stdout.contains("policies: not due"),
        "{}",
        again.stdout
    );
}

#[test]
fn status_json_matches_the_contract() {
    let w = policy_world();
    w.annexa(&["collect", "policies"]).expect(0);
    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&doc), ["as_of", "controls", "upcoming"]);
    assert_eq!(doc["controls"].as_array().unwrap().len(), 10);
    // An addition: what falls due and is not late yet, e.g. each document's next review.
    let upcoming = doc["upcoming"].as_array().unwrap();
    assert!(!upcoming.is_empty(), "{doc}");
    for u in upcoming {
        assert_eq!(
            keys(u),
            ["code", "collector", "controls", "due", "subject", "what"]
        );
        assert_eq!(u["code"], "policy-review-overdue", "{u}");
        assert_eq!(u["collector"], "policies");
        assert_eq!(u["controls"], serde_json::json!(["A.5.24"]));
        assert!(u["due"].as_str().unwrap() > doc["as_of"].as_str().unwrap());
    }
    let a524 = common::control(&doc, "A.5.24");
    assert_eq!(
        keys(a524),
        ["evidence", "findings", "id", "status", "title"]
    );
    assert_eq!(
        a524["title"],
        "Information security incident management planning and preparation"
    );
    assert_eq!(a524["status"], "satisfied");
    let evidence = a524["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 3, "two documents and the facts: {a524}");
    for e in evidence {
        assert_eq!(
            keys(e),
            [
                "collected_at",
                "collector",
                "expires_at",
                "fresh",
                "object_key",
                "run_id",
                "sha256"
            ]
        );
        assert_eq!(e["collector"], "policies");
        assert_eq!(e["fresh"], true);
        let sha = e["sha256"].as_str().unwrap();
        assert_eq!(
            e["object_key"],
            format!("objects/sha256/{}/{sha}", &sha[..2])
        );
        // The evidence really is there, under its hash.
        let bytes = std::fs::read(w.object_file(e["object_key"].as_str().unwrap())).unwrap();
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            sha
        );
    }
    assert!(doc["as_of"].as_str().unwrap().ends_with('Z'));

    let a526 = common::control(&doc, "A.5.26");
    assert_eq!(a526["status"], "missing");
    let f = &a526["findings"][0];
    assert_eq!(
        keys(f),
        ["code", "collector", "level", "message", "subject"]
    );
    assert_eq!(f["code"], "evidence-missing");
    assert_eq!(f["level"], "fail");

    let a528 = common::control(&doc, "A.5.28");
    assert_eq!(a528["status"], "satisfied");
    assert_eq!(a528["evidence"][0]["collector"], "annexa");
    assert!(
        a528["evidence"][0]["object_key"]
            .as_str()
            .unwrap()
            .starts_with("runs/policies/")
    );
}

#[test]
fn as_of_shows_the_past_and_the_future() {
    let w = policy_world();
    w.annexa(&["collect", "policies"]).expect(0);
    // Before any evidence was collected: missing.
    let past = w
        .annexa(&["status", "--json", "--as-of", "2020-01-01T00:00:00Z"])
        .expect(3)
        .json();
    assert_eq!(common::control(&past, "A.5.24")["status"], "missing");
    assert_eq!(past["as_of"], "2020-01-01T00:00:00Z");
    // In two months the evidence (max age 35 days) is stale.
    let in_two_months = (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    let future = w
        .annexa(&["status", "--json", "--as-of", &in_two_months])
        .expect(3)
        .json();
    assert_eq!(common::control(&future, "A.5.24")["status"], "stale");
    // In two years the procedure's annual review is overdue too.
    let later = (chrono::Utc::now() + chrono::Duration::days(730)).to_rfc3339();
    let later = w
        .annexa(&["status", "--json", "--as-of", &later])
        .expect(3)
        .json();
    let codes: Vec<&str> = common::control(&later, "A.5.24")["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"policy-review-overdue"), "{codes:?}");
    assert!(codes.contains(&"evidence-stale"), "{codes:?}");
}

#[test]
fn an_overdue_review_makes_a524_not_satisfied_naming_the_document() {
    let w = World::new();
    w.config(POLICY_CONFIG);
    w.write("policies/old.md", &procedure("old-procedure", "2024-01-10"));
    w.annexa(&["collect", "policies"]).expect(0);
    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&doc, "A.5.24");
    assert_eq!(a524["status"], "not_satisfied");
    let f = &a524["findings"][0];
    assert_eq!(f["code"], "policy-review-overdue");
    assert_eq!(f["subject"], "old-procedure");
    assert_eq!(f["collector"], "policies");
}

#[test]
fn verify_passes_then_exits_4_naming_a_tampered_object_then_passes_once_restored() {
    let w = policy_world();
    w.annexa(&["collect", "policies"]).expect(0);
    let ok = w.annexa(&["verify"]).expect(0);
    assert!(
        ok.stdout.contains("verified: no violations"),
        "{}",
        ok.stdout
    );

    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    let key = common::control(&doc, "A.5.24")["evidence"][0]["object_key"]
        .as_str()
        .unwrap()
        .to_string();
    let file = w.object_file(&key);
    let original = std::fs::read(&file).unwrap();
    let mut tampered = original.clone();
    tampered[0] ^= 0x01;
    std::fs::write(&file, &tampered).unwrap();

    let bad = w.annexa(&["verify"]).expect(4);
    assert!(
        bad.stdout
            .contains(&format!("VIOLATION object-altered at {key}")),
        "{}",
        bad.stdout
    );
    let json = w.annexa(&["verify", "--json"]).expect(4).json();
    assert_eq!(json["violations"][0]["kind"], "object-altered");
    assert_eq!(json["violations"][0]["location"], key);

    std::fs::write(&file, &original).unwrap();
    w.annexa(&["verify"]).expect(0);
}

#[test]
fn verify_catches_an_edited_manifest_and_a_deleted_object() {
    let w = policy_world();
    let out = w
        .annexa(&["collect", "policies", "--json"])
        .expect(0)
        .json();
    let manifest_key = out["runs"][0]["manifest_key"].as_str().unwrap().to_string();
    let manifest = w.object_file(&manifest_key);
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"succeeded\"", "\"succeeded \"")).unwrap();
    let bad = w.annexa(&["verify", "--json"]).expect(4).json();
    let kinds: Vec<&str> = bad["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"manifest-altered"), "{kinds:?}");
    assert!(kinds.contains(&"ledger-leaf-mismatch"), "{kinds:?}");
    std::fs::write(&manifest, text).unwrap();
    w.annexa(&["verify"]).expect(0);

    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    let key = common::control(&doc, "A.5.24")["evidence"][1]["object_key"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(w.object_file(&key)).unwrap();
    let bad = w.annexa(&["verify"]).expect(4);
    assert!(
        bad.stdout
            .contains(&format!("VIOLATION object-missing at {key}")),
        "{}",
        bad.stdout
    );
}

#[test]
fn a_missing_source_fails_the_run_and_keeps_earlier_evidence() {
    let w = policy_world();
    w.annexa(&["collect", "policies"]).expect(0);
    let before = w.annexa(&["status", "--json"]).expect(3).json();

    common::rm_rf(&w.path("policies"));
    let failed = w.annexa(&["collect", "policies"]).expect(1);
    assert!(
        failed.stdout.contains("policies (policy-document): failed"),
        "{}",
        failed.stdout
    );
    assert!(failed.stdout.contains("policies"), "{}", failed.stdout);

    // Fresh evidence from the earlier run still stands; the failure is a warning beside it.
    let after = w.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&after, "A.5.24");
    assert_eq!(a524["status"], "satisfied");
    assert_eq!(
        a524["evidence"],
        common::control(&before, "A.5.24")["evidence"]
    );
    let f = &a524["findings"][0];
    assert_eq!(f["code"], "collector-failed");
    assert_eq!(f["level"], "warn");
    assert!(
        f["message"].as_str().unwrap().contains("does not exist")
            || f["message"].as_str().unwrap().contains("No such file"),
        "{f}"
    );
    // The failed run is in the custody log too, and everything still verifies.
    w.annexa(&["verify"]).expect(0);

    // A collector that never succeeded is not evaluated, never a pass.
    let fresh = World::new();
    fresh.config(POLICY_CONFIG);
    fresh.annexa(&["collect", "policies"]).expect(1);
    let doc = fresh.annexa(&["status", "--json"]).expect(3).json();
    assert_eq!(common::control(&doc, "A.5.24")["status"], "not_evaluated");
}

#[test]
fn an_empty_source_is_a_failed_run_not_a_pass() {
    let w = World::new();
    w.config(POLICY_CONFIG);
    std::fs::create_dir_all(w.path("policies")).unwrap();
    let run = w.annexa(&["collect", "policies"]).expect(1);
    assert!(run.stdout.contains("no documents"), "{}", run.stdout);
}

#[test]
fn invalid_config_exits_2_listing_every_problem() {
    // Local: the S3 backend's environment would override the bad store kind.
    let w = World::with_backend(common::Backend::Local);
    w.config(
        r#"
        surprise = 1
        [store]
        kind = "tape"
        [[collector]]
        name = "p"
        kind = "policy-document"
        schedule = "every full moon"
        paths = ["policies"]
        [[collector]]
        name = "q"
        kind = "crystal-ball"
        "#,
    );
    let run = w.annexa(&["status"]).expect(2);
    for expected in [
        "unknown key `surprise`",
        "store.kind `tape`",
        "every full moon",
        "unknown collector kind `crystal-ball`",
        "4 problems",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
    let usage = w.annexa(&["frobnicate"]).expect(2);
    assert!(
        usage.stderr.contains("unrecognized subcommand"),
        "{}",
        usage.stderr
    );
}

#[test]
fn a_missing_config_says_to_run_init_and_init_writes_a_working_one() {
    let w = World::new();
    let run = w.annexa(&["status"]).expect(2);
    assert!(run.stderr.contains("annexa init"), "{}", run.stderr);

    let dir = w.path("fresh");
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(dir.join("keys/annexa.key.pub").exists());
    // The first run after init records no failed run: only the policy-document collector is
    // active, over the starter folder init wrote (issue 22). The template is a gap, not a pass.
    let annexa_in = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
            .arg("--config")
            .arg(dir.join("annexa.toml"))
            .args(args)
            .env_remove("ANNEXA_STORE__KIND")
            .env_remove("ANNEXA_DATABASE__URL")
            .output()
            .unwrap()
    };
    // `check` right after init finds nothing to fix, and creates nothing (no database, no
    // store folder).
    let check = annexa_in(&["check"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{said}");
    assert!(
        said.contains("does not exist yet: the first run creates it"),
        "{said}"
    );
    assert!(
        !dir.join("data").exists(),
        "check created {}",
        dir.join("data").display()
    );
    // init wrote the Statement of Applicability: a row per Annex A control, none assessed yet.
    let soa: serde_json::Value =
        serde_json::from_slice(&annexa_in(&["soa", "--json"]).stdout).unwrap();
    let rows = soa["controls"].as_array().unwrap();
    assert_eq!(rows.len(), 93, "{soa}");
    assert!(
        rows.iter().all(|r| r["applicable"] == "not yet assessed"),
        "{soa}"
    );
    assert!(soa["file"].as_str().unwrap().ends_with("soa.csv"), "{soa}");
    let first = annexa_in(&["run"]);
    assert_eq!(
        first.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&annexa_in(&["status", "--json"]).stdout).unwrap();
    let codes: Vec<&str> = doc["controls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(!codes.contains(&"collector-failed"), "{codes:?}");
    // The template names no control: it counts for none, so A.5.24 is missing, not satisfied.
    assert_eq!(common::control(&doc, "A.5.24")["status"], "missing");
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(
        dir.join("policies/p.md"),
        procedure("p", &common::reviewed_days_ago(30)),
    )
    .unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .arg("--config")
        .arg(dir.join("annexa.toml"))
        .arg("collect")
        .arg("policies")
        .env_remove("ANNEXA_STORE__KIND")
        .env_remove("ANNEXA_DATABASE__URL")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // The verifier file right after init names the key init wrote (issue 22).
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .arg("--config")
        .arg(dir.join("annexa.toml"))
        .args(["keys", "export"])
        .env_remove("ANNEXA_STORE__KIND")
        .env_remove("ANNEXA_DATABASE__URL")
        .output()
        .unwrap();
    let verifier = String::from_utf8_lossy(&export.stdout);
    let public = std::fs::read_to_string(dir.join("keys/annexa.key.pub")).unwrap();
    assert!(
        verifier.contains(public.trim()),
        "{verifier}\nshould name {public}"
    );
    // init never overwrites.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn collect_names_unknown_collectors_as_a_usage_error() {
    let w = policy_world();
    let run = w.annexa(&["collect", "nope"]).expect(2);
    assert!(
        run.stderr
            .contains("no collector named `nope`; configured collectors: policies"),
        "{}",
        run.stderr
    );
}

#[test]
fn controls_lists_the_catalog_and_what_covers_it() {
    let w = policy_world();
    let run = w.annexa(&["controls"]).expect(0);
    let line = |id: &str| {
        run.stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(line("A.5.24").ends_with("policies"), "{}", line("A.5.24"));
    assert!(line("A.5.28").ends_with("annexa"), "{}", line("A.5.28"));
    assert!(line("A.8.13").contains("nothing configured (kinds: backup-restore)"));
    let json = w.annexa(&["controls", "--json"]).expect(0).json();
    assert_eq!(json.as_array().unwrap().len(), 10);
}

#[test]
fn an_unreachable_or_refusing_s3_store_exits_1_naming_the_endpoint_and_no_secret() {
    let w = World::with_backend(common::Backend::Local);
    w.config(POLICY_CONFIG);
    let down = format!("http://127.0.0.1:{}", common::free_port());
    let env = |endpoint: &str| {
        vec![
            ("ANNEXA_STORE__KIND".to_string(), "s3".to_string()),
            ("ANNEXA_STORE__BUCKET".to_string(), "evidence".to_string()),
            ("ANNEXA_STORE__ENDPOINT".to_string(), endpoint.to_string()),
        ]
    };
    let down_env = env(&down);
    let down_env: Vec<(&str, &str)> = down_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let run = w.annexa_env(&["status"], &down_env).expect(1);
    assert!(
        run.stderr.contains(&down) && run.stderr.contains("check that the server is running"),
        "{}",
        run.stderr
    );

    let s3 = common::S3Server::start();
    let mut wrong = env(&s3.endpoint);
    wrong.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong-secret-value".into()));
    let wrong: Vec<(&str, &str)> = wrong
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let run = w.annexa_env(&["collect", "--all"], &wrong).expect(1);
    assert!(
        run.stderr.contains("refused the credentials") && run.stderr.contains(&s3.endpoint),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("wrong-secret-value") && !run.stdout.contains("wrong-secret-value")
    );
}

#[test]
fn an_unreachable_database_exits_1_without_its_password() {
    let w = World::with_backend(common::Backend::Local);
    w.config(POLICY_CONFIG);
    let url = format!(
        "postgres://annexa:pw-not-to-print@127.0.0.1:{}/annexa",
        common::free_port()
    );
    let run = w
        .annexa_env(&["status"], &[("ANNEXA_DATABASE__URL", &url)])
        .expect(1);
    assert!(
        run.stderr
            .contains("database postgres://annexa:****@127.0.0.1"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("pw-not-to-print"), "{}", run.stderr);
}

/// Issue 15: two documents with one file name under two `paths` are both kept and both judged
/// (they were merged into one item, and a document last reviewed in 2020 vanished: a false
/// pass of A.5.24).
#[test]
fn documents_with_one_name_under_two_paths_are_both_kept_and_judged() {
    let w = World::new();
    w.config(
        "[[collector]]\nname = \"policies\"\nkind = \"policy-document\"\npaths = [\"a\", \"b\"]\n",
    );
    w.write(
        "a/policy.md",
        &procedure("ISP-001", &common::reviewed_days_ago(10)),
    );
    w.write("b/policy.md", &procedure("ISP-009", "2020-01-01"));
    let run = w
        .annexa(&["collect", "policies", "--json"])
        .expect(0)
        .json();
    assert_eq!(run["runs"][0]["items"], 2, "{run}");
    let status = w.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&status, "A.5.24");
    assert_eq!(a524["status"], "not_satisfied", "{a524}");
    let overdue: Vec<&Value> = a524["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "policy-review-overdue")
        .collect();
    assert_eq!(overdue.len(), 1, "{a524}");
    assert!(
        overdue[0]["message"].as_str().unwrap().contains("ISP-009"),
        "{a524}"
    );
}

/// A file reached twice (a path listed twice) is one document; a file whose name has a `\\`
/// is named with `/` and still read; two files that would be stored under one name fail the
/// run naming both.
#[test]
fn one_file_reached_twice_is_one_document_and_two_files_under_one_name_fail_naming_both() {
    let w = World::new();
    w.config(
        "[[collector]]\nname = \"policies\"\nkind = \"policy-document\"\npaths = [\"a\", \"a\"]\n",
    );
    w.write(
        "a/policy.md",
        &procedure("ISP-001", &common::reviewed_days_ago(10)),
    );
    w.write(
        "a/x\\y.md",
        &procedure("ISP-002", &common::reviewed_days_ago(10)),
    );
    let run = w
        .annexa(&["collect", "policies", "--json"])
        .expect(0)
        .json();
    assert_eq!(run["runs"][0]["items"], 2, "{run}");
    let status = w.annexa(&["status", "--json"]).expect(3).json();
    let names: Vec<String> = common::control(&status, "A.5.24")["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["object_key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3, "two documents and the facts: {names:?}");

    w.write(
        "a/x/y.md",
        &procedure("ISP-003", &common::reviewed_days_ago(10)),
    );
    let failed = w.annexa(&["collect", "policies"]).expect(1);
    assert!(
        failed.stdout.contains("both would be stored as `a/x/y.md`")
            && failed.stdout.contains("x\\y.md")
            && failed.stdout.contains("x/y.md"),
        "{}",
        failed.stdout
    );
}

/// Issue 17: a document written to while it is collected fails the run naming it, and the run
/// records nothing: no half-read copy is evidence.
#[test]
fn a_document_written_while_it_is_collected_fails_the_run_naming_it() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let w = policy_world();
    let path = w.path("policies/growing.md");
    let mut text = procedure("growing", &common::reviewed_days_ago(10));
    text.push_str(&"A line of the procedure, long enough to make the file large.\n".repeat(80_000));
    std::fs::write(&path, &text).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"appended while annexa reads\n").unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let failed = w.annexa(&["collect", "policies"]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    assert!(
        failed.stdout.contains("growing.md") && failed.stdout.contains("changed while it was read"),
        "{}\n{}",
        failed.stdout,
        failed.stderr
    );
    // The run failed whole: no evidence of it stands.
    let status = w.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&status, "A.5.24");
    assert_eq!(a524["evidence"].as_array().unwrap().len(), 0, "{a524}");
    w.annexa(&["verify"]).expect(0);
}

/// Issue 15: a FIFO named `*.md` hung a collect forever; a link to /dev/zero and a sparse file
/// of 300 MB exhausted memory; `-c /dev/zero` grew to 24 GB. Each is refused at once, named.
#[test]
fn special_and_oversized_files_are_refused_at_once_and_named() {
    let w = policy_world();
    let started = std::time::Instant::now();
    let fifo = w.path("policies/pipe.md");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let failed = w.annexa(&["collect", "policies"]).expect(1);
    assert!(
        failed.stdout.contains("pipe.md") && failed.stdout.contains("not a regular file"),
        "{}",
        failed.stdout
    );
    std::fs::remove_file(&fifo).unwrap();

    std::os::unix::fs::symlink("/dev/zero", w.path("policies/zero.md")).unwrap();
    let failed = w.annexa(&["collect", "policies"]).expect(1);
    assert!(
        failed.stdout.contains("zero.md") && failed.stdout.contains("not a regular file"),
        "{}",
        failed.stdout
    );
    std::fs::remove_file(w.path("policies/zero.md")).unwrap();

    let sparse = std::fs::File::create(w.path("policies/sparse.md")).unwrap();
    sparse.set_len(300 * 1024 * 1024).unwrap();
    let failed = w.annexa(&["collect", "policies"]).expect(1);
    assert!(
        failed.stdout.contains("sparse.md")
            && failed.stdout.contains("larger than 64 MiB")
            && failed.stdout.contains("max_file_size_mib"),
        "{}",
        failed.stdout
    );
    let refused: common::Run = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .args(["-c", "/dev/zero", "status"])
        .output()
        .unwrap()
        .into();
    let refused = refused.expect(2);
    assert!(
        refused.stderr.contains("not a regular file"),
        "{}",
        refused.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Issue 15: mistyped database URLs printed the password (7 of 12 forms). Whatever the form,
/// no output of annexa shows it, and a password in the file is refused by any spelling.
#[test]
fn no_mistyped_database_url_prints_its_password() {
    const CANARY: &str = "Canary7pw";
    let w = policy_world();
    let port = common::free_port();
    let urls = [
        format!("postgres://annexa:{CANARY}@127.0.0.1:{port}/annexa"),
        format!("postgres://annexa:{CANARY}#x@127.0.0.1:{port}/annexa"),
        format!("postgres://annexa:{CANARY}/x@127.0.0.1:{port}/annexa"),
        format!("postgres://annexa:{CANARY}?x@127.0.0.1:{port}/annexa"),
        format!("postgres://annexa:{CANARY}@127.0.0.1:{port}:5433/annexa"),
        format!("postgres://annexa:{CANARY}@127.0.0.1:port/annexa"),
        format!("postgres://annexa:{CANARY}@[::1/annexa"),
        format!("postgres://annexa@127.0.0.1:{port}/annexa?password={CANARY}"),
        format!("postgres://127.0.0.1:{port}/annexa?sslmode=disable&password={CANARY}"),
        format!("postgres://annexa:{CANARY}"),
        format!("postgres://annexa:{CANARY}@@127.0.0.1:{port}/annexa"),
        format!("postgresql://annexa:{CANARY}@/annexa?host=/nonexistent"),
    ];
    for url in &urls {
        let run = w.annexa_env(&["status"], &[("ANNEXA_DATABASE__URL", url)]);
        assert_ne!(run.code, 0, "{url}");
        assert!(
            !run.stdout.contains(CANARY) && !run.stderr.contains(CANARY),
            "{url}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        // In the file, each is refused, and not echoed either.
        let text = std::fs::read_to_string(w.config_path()).unwrap();
        w.write(
            "in-file.toml",
            &format!("{text}\n[database]\nurl = {url:?}\n"),
        );
        let refused: common::Run = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
            .current_dir(w.dir.path())
            .args(["-c", "in-file.toml", "status"])
            .output()
            .unwrap()
            .into();
        assert_eq!(refused.code, 2, "{url}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("ANNEXA_DATABASE__URL") && !refused.stderr.contains(CANARY),
            "{url}: {}",
            refused.stderr
        );
    }
}

/// Issue 15: processes opening a fresh SQLite file at once raced each other's migrations
/// (3 of 26 failed). They are serialized by a lock file now.
#[test]
fn processes_opening_a_fresh_sqlite_file_at_once_do_not_race_its_migrations() {
    let w = World::with_backend(common::Backend::Local);
    w.config(POLICY_CONFIG);
    let children: Vec<std::process::Child> = (0..12)
        .map(|_| {
            w.command(&["status"], &[])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A daily policy collector whose snapshots stay fresh two days, collected at 03:05 on each
/// day of `days` (of November 2026; 0 is 31 October).
fn daily_history(days: impl Iterator<Item = u32>) -> World {
    let w = World::new();
    w.config(
        "[[collector]]\nname = \"policies\"\nkind = \"policy-document\"\nschedule = \"0 3 * * *\"\nmax_age = \"2d\"\npaths = [\"policies\"]\n",
    );
    w.write("policies/imp.md", &procedure("IMP-1", "2026-09-15"));
    for d in days {
        let when = if d == 0 {
            "2026-10-31T03:05:00Z".to_string()
        } else {
            format!("2026-11-{d:02}T03:05:00Z")
        };
        w.annexa_at(&when, &["collect", "policies"]).expect(0);
    }
    w
}

fn period_of(w: &World, now: &str, from: &str, to: &str) -> Value {
    let doc = w
        .annexa_at(now, &["status", "--from", from, "--to", to, "--json"])
        .json();
    common::control(&doc, "A.5.24").clone()
}

#[test]
fn period_verdicts_over_a_simulated_month() {
    // Every day from 31 October: satisfied throughout November.
    let steady = daily_history(0..=30);
    let p = period_of(&steady, "2026-12-01T00:10:00Z", "2026-11-01", "2026-11-30");
    assert_eq!(p["status"], "satisfied", "{p}");
    assert_eq!(p["verdict"], "effective", "{p}");
    assert_eq!(p["fresh_share"], 1.0);
    assert_eq!(p["lapses"], serde_json::json!([]));

    // Three days without a run: a lapse of two days, three missed slots, satisfied at the end.
    let gappy = daily_history((0..=30).filter(|d| !(10..=12).contains(d)));
    let p = period_of(&gappy, "2026-12-01T00:10:00Z", "2026-11-01", "2026-11-30");
    assert_eq!(p["verdict"], "effective_with_exceptions", "{p}");
    assert_eq!(p["lapses"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["lapses"][0]["since"], "2026-11-11T03:05:00Z");
    assert_eq!(p["lapses"][0]["until"], "2026-11-13T03:05:00Z");
    assert_eq!(
        p["missed_slots"][0]["slots"],
        serde_json::json!([
            "2026-11-10T03:00:00Z",
            "2026-11-11T03:00:00Z",
            "2026-11-12T03:00:00Z"
        ])
    );
    let share = p["fresh_share"].as_f64().unwrap();
    assert!(
        (0.933..0.934).contains(&share),
        "two of thirty days: {share}"
    );

    // Collection stops on the 20th: stale at the end, not effective.
    let stopped = daily_history(0..=20);
    let p = period_of(&stopped, "2026-12-01T00:10:00Z", "2026-11-01", "2026-11-30");
    assert_eq!(p["verdict"], "not_effective", "{p}");
    assert!(p["why_verdict"].as_str().unwrap().contains("stale"), "{p}");

    // A period before annexa existed: nothing was due, nothing is counted as missed.
    let p = period_of(&steady, "2026-12-01T00:10:00Z", "2026-10-01", "2026-10-15");
    assert_eq!(p["verdict"], "not_effective", "{p}");
    assert_eq!(p["missed_slots"], serde_json::json!([]), "{p}");
    assert!(
        p["not_yet_collected"][0]
            .as_str()
            .unwrap()
            .contains("not yet collected"),
        "{p}"
    );
    // Plain status keeps its keys and adds none.
    let plain = steady
        .annexa_at("2026-12-01T00:10:00Z", &["status", "--json"])
        .json();
    assert!(common::control(&plain, "A.5.24").get("verdict").is_none());
}

/// Issue 22's papercuts of the command line, each as a user met it.
#[test]
fn command_line_papercuts() {
    let w = policy_world();
    // A max age reads as the config writes it, in the table and in JSON.
    let table = w.annexa(&["controls"]).expect(0);
    let a528 = table
        .stdout
        .lines()
        .find(|l| l.starts_with("A.5.28"))
        .unwrap();
    assert!(a528.contains(" 35d "), "{a528}");
    let json = w.annexa(&["controls", "--json"]).expect(0).json();
    let a528 = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "A.5.28")
        .unwrap();
    assert_eq!(a528["max_age"], "35d");
    assert_eq!(a528["max_age_seconds"], 35 * 86_400);
    // --as-of means something to status and report only.
    for args in [
        &["--as-of", "2026-01-01T00:00:00Z", "collect", "--all"][..],
        &["run", "--as-of", "2026-01-01"][..],
        &["verify", "--as-of", "2026-01-01"][..],
    ] {
        let run = w.annexa(args).expect(2);
        assert!(
            run.stderr
                .contains("--as-of applies to `status` and `report` only"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // ... and takes a day, as --from and --to do: the end of that day.
    let doc = w
        .annexa(&["status", "--json", "--as-of", "2026-01-01"])
        .json();
    assert_eq!(doc["as_of"], "2026-01-02T00:00:00Z");
    // A period backwards is a usage error on both commands.
    for command in ["status", "report"] {
        let run = w
            .annexa(&[command, "--from", "2026-11-10", "--to", "2026-11-01"])
            .expect(2);
        assert!(run.stderr.contains("must be before --to"), "{}", run.stderr);
    }
    // Positional arguments say what they are.
    for (command, help) in [
        ("init", "The folder to write into"),
        ("collect", "The collectors to run"),
        ("ping", "The job, by its `name`"),
    ] {
        let run = w.annexa(&[command, "--help"]).expect(0);
        assert!(run.stdout.contains(help), "{command}: {}", run.stdout);
    }
}

/// Issue 22: the systemd units in `deploy/` are valid (`systemd-analyze verify`), score at most
/// 2.0 in `systemd-analyze security`, and the config beside them names only absolute paths,
/// which the service's state directory and read-only /etc need.
#[test]
fn the_deploy_units_verify_and_are_hardened() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let analyze = |args: &[&str]| {
        std::process::Command::new("systemd-analyze")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("systemd-analyze ({e}): apt-get install systemd, or run ./scripts/test")
            })
    };
    let dir = tempfile::tempdir().unwrap();
    for unit in ["annexa.service", "annexa-run.service", "annexa-run.timer"] {
        let text = std::fs::read_to_string(deploy.join(unit)).unwrap();
        // verify checks that ExecStart exists: point it at the binary under test.
        let text = text.replace("/usr/local/bin/annexa", env!("CARGO_BIN_EXE_annexa"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let units: Vec<String> = ["annexa.service", "annexa-run.service", "annexa-run.timer"]
        .iter()
        .map(|u| dir.path().join(u).display().to_string())
        .collect();
    let mut args = vec!["verify"];
    args.extend(units.iter().map(String::as_str));
    let out = analyze(&args);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in ["annexa.service", "annexa-run.service"] {
        let path = deploy.join(service).display().to_string();
        let out = analyze(&["security", "--offline=true", "--threshold=20", &path]);
        let text = String::from_utf8_lossy(&out.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no score in\n{text}"));
        assert!(score <= 2.0, "{service} scores {score}");
        assert!(out.status.success(), "{service}: {text}");
    }
    let config = annexa::config::Config::parse(
        &std::fs::read_to_string(deploy.join("annexa.toml")).unwrap(),
        std::path::Path::new("/etc/annexa/annexa.toml"),
        &[],
    )
    .unwrap();
    let annexa::store::StoreConfig::Fs { path } = &config.store else {
        panic!("the deploy config uses the local store")
    };
    for p in [path, &config.ledger.key_file, &config.report_dir] {
        assert!(p.starts_with("/var/lib/annexa"), "{}", p.display());
    }
    assert!(
        config
            .database_url
            .expose()
            .starts_with("sqlite:///var/lib/annexa/")
    );
}

/// Issue 22: with --json every line a command writes is JSON, its error and its logs included;
/// without it, log lines carry an RFC 3339 time and a level.
#[test]
fn with_json_every_line_is_json_errors_and_logs_included() {
    let w = policy_world();
    let run = w.annexa(&["--json", "collect", "nope"]).expect(2);
    let error: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(error["exit"], 2);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no collector named `nope`"),
        "{error}"
    );
    let logged = w.annexa_env(&["--json", "collect", "--all"], &[("ANNEXA_LOG", "debug")]);
    assert_eq!(logged.code, 0, "{}", logged.stderr);
    let lines: Vec<&str> = logged.stderr.lines().chain(logged.stdout.lines()).collect();
    assert!(
        logged.stderr.lines().count() > 0,
        "debug logs were asked for"
    );
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.is_object(), "{line}");
    }
    let text = w.annexa_env(&["collect", "--all"], &[("ANNEXA_LOG", "debug")]);
    let first = text.stderr.lines().next().expect("a debug line");
    let (time, rest) = first.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{first}"
    );
    assert!(rest.trim_start().starts_with("DEBUG"), "{first}");
    // What `collect` did is a log line too: its time and level first (cron appends it to a file).
    let said = text.stdout.lines().next().expect("a line per run");
    let (time, rest) = said.split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{said}");
    assert!(rest.trim_start().starts_with("INFO policies ("), "{said}");

    // `[log]` in the config chooses the form and the level when no flag or variable does.
    w.config(&format!(
        "{POLICY_CONFIG}\n[log]\nformat = \"json\"\nlevel = \"debug\"\n"
    ));
    let configured = w.annexa(&["collect", "--all"]).expect(0);
    assert!(
        configured.stderr.lines().count() > 0,
        "[log] level asks for debug"
    );
    let levels: Vec<String> = configured
        .stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            value["level"]
                .as_str()
                .unwrap_or_else(|| panic!("no level: {line}"))
                .to_string()
        })
        .collect();
    assert!(levels.iter().any(|l| l == "DEBUG"), "{levels:?}");
    let flag = w
        .annexa(&["--log-format", "text", "collect", "--all"])
        .expect(0);
    // Text lines: a time, then the level (DEBUG among them: `[log] level` still holds).
    assert!(
        flag.stderr.lines().all(|l| {
            let time = l.split(' ').next().unwrap_or_default();
            chrono::DateTime::parse_from_rfc3339(time).is_ok()
        }),
        "{}",
        flag.stderr
    );
    assert!(flag.stderr.contains(" DEBUG "), "{}", flag.stderr);
    w.config(&format!(
        "{POLICY_CONFIG}\n[log]\nformat = \"xml\"\nlevel = \"=!\"\n"
    ));
    let bad = w.annexa(&["status"]).expect(2);
    assert!(
        bad.stderr.contains("log.format: `xml` is neither"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("log.level: `=!` is not a filter"),
        "{}",
        bad.stderr
    );
}

/// Every file under `dir`, by path, with its SHA-256.
fn file_hashes(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(
                    path.display().to_string(),
                    hex::encode(sha2::Sha256::digest(&bytes)),
                );
            }
        }
    }
    out
}

/// All a world holds: its files (folder store, SQLite, key, sources), the S3 bucket's files,
/// and on PostgreSQL every table's rows.
fn world_state(w: &World) -> String {
    let mut state = format!("{:#?}", file_hashes(w.dir.path()));
    if let Some(s3) = &w.s3 {
        state.push_str(&format!("{:#?}", file_hashes(&s3.data_dir)));
    }
    if let Some(url) = &w.database_url {
        for table in [
            "runs",
            "evidence",
            "findings",
            "ledger",
            "audit_events",
            "keys",
            "checkpoints",
            "leases",
            "gaps",
        ] {
            state.push_str(&common::psql(
                url,
                &format!("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"),
            ));
        }
    }
    state
}

/// Issue 22: `annexa check` reaches everything and lists every problem at once, each with its
/// fix, writing nothing: store, database, ledger and key are byte-identical before and after.
/// `run` refuses a collector whose source is still a template's placeholder, also writing
/// nothing.
#[test]
fn check_lists_every_problem_at_once_and_writes_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let github = rt.block_on(async {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
                "status": "401"
            })))
            .mount(&server)
            .await;
        server
    });
    let w = policy_world();
    w.annexa(&["run"]).expect(3);
    // A sink is reached, and sent nothing unless --send-test.
    w.config(&format!(
        "{POLICY_CONFIG}\n[outbound]\nallow_insecure_urls = true\n\n[[sink]]\nname = \"hook\"\nkind = \"webhook\"\nurl_env = \"ANNEXA_TEST_HOOK_URL\"\nsecret_env = \"ANNEXA_TEST_HOOK_SECRET\"\n"
    ));
    let hook = format!("{}/hook", github.uri());
    let hook_env = [
        ("ANNEXA_TEST_HOOK_URL", hook.as_str()),
        ("ANNEXA_TEST_HOOK_SECRET", "s3cret"),
    ];
    let posts = || {
        rt.block_on(github.received_requests())
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .collect::<Vec<_>>()
    };
    let good = w.annexa_env(&["check"], &hook_env).expect(0);
    assert!(
        good.stdout.contains("No problems. Nothing was written."),
        "{}",
        good.stdout
    );
    assert!(
        good.stdout.contains("the active signing key"),
        "{}",
        good.stdout
    );
    assert!(
        good.stdout.contains("ok       sink `hook`: 127.0.0.1:"),
        "{}",
        good.stdout
    );
    assert!(
        posts().is_empty(),
        "check sent a message without --send-test"
    );
    let sent = w.annexa_env(&["check", "--send-test"], &hook_env).expect(0);
    assert!(
        sent.stdout
            .contains("ok       sink `hook`: test message sent"),
        "{}",
        sent.stdout
    );
    let body: serde_json::Value = serde_json::from_slice(&posts()[0].body).unwrap();
    assert_eq!(body["event"], "test", "{body}\n{}", sent.stdout);
    assert_eq!(posts().len(), 1);

    w.write(
        "incidents/register.csv",
        "id,title,severity,category,detected_at,triaged_at,resolved_at,status\n\
         INC-1,Outage,Sev1,security,yesterday,,,open\n\
         INC-2,Fine,Sev2,security,2026-03-01T09:00:00Z,,,open\n\
         INC-2,Again,Sev2,security,2026-03-02T09:00:00Z,,,open\n",
    );
    w.write("backups/app.sqlite", "not looked at: no drill runs");
    let closed = common::free_port();
    w.config(&format!(
        r#"{POLICY_CONFIG}
[outbound]
allow_insecure_urls = true

[[collector]]
name = "incidents"
kind = "incident-log"
schedule = "0 * * * *"
register = "incidents/register.csv"

[[collector]]
name = "handbook"
kind = "policy-document"
schedule = "0 * * * *"
paths = ["no-such-folder"]

[[collector]]
name = "template"
kind = "github-alerts"
schedule = "0 * * * *"
repos = ["your-org/your-repo"]
token_env = "ANNEXA_TEST_GH_TOKEN"

[[collector]]
name = "github"
kind = "github-alerts"
schedule = "0 * * * *"
repos = ["octo/app"]
base_url = "{}"
token_env = "ANNEXA_TEST_GH_TOKEN"

[[collector]]
name = "backups"
kind = "backup-restore"
schedule = "0 * * * *"
path = "backups"
pattern = "*.sqlite"
max_backup_age = "1d"
[collector.drill]
postgres_url_env = "ANNEXA_TEST_NO_SUCH_URL"

[[sink]]
name = "hook"
kind = "webhook"
url_env = "ANNEXA_TEST_HOOK_URL"
secret_env = "ANNEXA_TEST_HOOK_SECRET"
"#,
        github.uri()
    ));
    let _ = closed;
    let hook = format!("http://127.0.0.1:{closed}/hook");
    let env = [
        ("ANNEXA_TEST_GH_TOKEN", "expired"),
        ("ANNEXA_TEST_HOOK_URL", hook.as_str()),
        ("ANNEXA_TEST_HOOK_SECRET", "s3cret"),
    ];
    let key = w.config_path().with_file_name("keys/annexa.key");
    let key_bytes = std::fs::read(&key).unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    let before = world_state(&w);

    let check = w.annexa_env(&["check"], &env).expect(2);
    let out = &check.stdout;
    for expected in [
        "PROBLEM  collector `incidents` (incident-log): a run now would fail:",
        "2 records have problems: register.csv line 2, column `detected_at`",
        "line 4, column `id`: `INC-2` appears twice",
        // Named relative to the config's folder, as everything meant for people is.
        "PROBLEM  collector `handbook` (policy-document): a run now would fail: source unavailable: no-such-folder:",
        "PROBLEM  collector `template` (github-alerts): still the template's placeholder repos = \"your-org/your-repo\"",
        "PROBLEM  collector `github` (github-alerts): a run now would fail: unauthorized",
        "PROBLEM  collector `backups` (backup-restore): a run now would fail: source unavailable: restore drill: the environment variable ANNEXA_TEST_NO_SUCH_URL",
        "PROBLEM  sink `hook`: cannot connect to 127.0.0.1:",
        "PROBLEM  signing key: the signing key file",
        "ok       collector `policies` (policy-document)",
        "7 problems to fix. Nothing was written",
    ] {
        assert!(
            out.contains(expected),
            "{expected:?} not in\n{out}\n{}",
            check.stderr
        );
    }
    let json = w.annexa_env(&["--json", "check"], &env).expect(2).json();
    assert_eq!(json["problems"], 7, "{json}");
    assert_eq!(world_state(&w), before, "check wrote something");

    // `run` refuses the placeholder collector before anything is done.
    std::fs::write(&key, &key_bytes).unwrap();
    let before = world_state(&w);
    let refused = w.annexa_env(&["run"], &env).expect(2);
    assert!(
        refused.stderr.contains(
            "collector `template` (github-alerts) still has the template's placeholder repos = \"your-org/your-repo\""
        ),
        "{}",
        refused.stderr
    );
    let collect = w.annexa_env(&["collect", "template"], &env).expect(2);
    assert!(collect.stderr.contains("placeholder"), "{}", collect.stderr);
    assert_eq!(world_state(&w), before, "a refused run wrote something");
    // The other collectors still run by name.
    w.annexa_env(&["collect", "policies"], &env).expect(0);
}

#[test]
fn a_large_document_is_streamed_into_the_store_under_the_hash_of_its_bytes() {
    use sha2::Digest;
    let w = policy_world();
    // Over the 1 MiB a document is read whole below, and not a whole number of chunks.
    let mut text = procedure("big-procedure", &common::reviewed_days_ago(10));
    while text.len() < 3 * 1024 * 1024 + 17 {
        text.push_str("Incident response steps, repeated to make a large procedure. é\n");
    }
    w.write("policies/big-procedure.md", &text);
    let sha = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    w.annexa(&["collect", "policies"]).expect(0);

    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&doc, "A.5.24");
    let listed: Vec<&str> = a524["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sha256"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&sha.as_str()), "{listed:?}");
    // Its facts were read from its text: its header named it, it is not unreadable.
    let findings = a524["findings"].to_string();
    assert!(!findings.contains("big-procedure"), "{findings}");
    let key = format!("objects/sha256/{}/{sha}", &sha[..2]);
    assert_eq!(std::fs::read(w.object_file(&key)).unwrap(), text.as_bytes());
    w.annexa(&["verify"]).expect(0);
}

/// Issue 17: a run of more items than status lists (1,000) lists its first ones, its facts and
/// its manifest, and counts the rest; the reviews that fall due are the soonest 1,000, the rest
/// counted; the manifest the list points to names every item.
#[test]
fn status_of_a_run_of_many_items_lists_the_first_points_to_its_manifest_and_counts_the_rest() {
    let w = World::new();
    w.config(common::POLICY_CONFIG);
    let n = 1_005;
    for i in 0..n {
        // Reviewed 10 days ago, or 11 for the last five: theirs fall due first.
        let days = if i >= n - 5 { 11 } else { 10 };
        let id = format!("PROC-{i:04}");
        w.write(
            &format!("policies/{id}.md"),
            &procedure(&id, &common::reviewed_days_ago(days)),
        );
    }
    w.annexa(&["collect", "policies"]).expect(0);
    let doc = w.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&doc, "A.5.24");
    let evidence = a524["evidence"].as_array().unwrap();
    // 1,000 documents, the facts and the manifest; the other 5 documents counted.
    assert_eq!(evidence.len(), 1_002, "{}", evidence.len());
    assert_eq!(a524["evidence_unlisted"], 5);
    let manifest_key = evidence[1_001]["object_key"].as_str().unwrap();
    assert!(manifest_key.starts_with("runs/policies/"), "{manifest_key}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.object_file(manifest_key)).unwrap()).unwrap();
    assert_eq!(manifest["items"].as_array().unwrap().len(), n + 1);

    let reviews: Vec<&serde_json::Value> = doc["upcoming"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["code"] == "policy-review-overdue")
        .collect();
    assert_eq!(reviews.len(), 1_000);
    assert_eq!(doc["upcoming_unlisted"], 5);
    // The soonest are kept: the five reviewed a day earlier are among them, first.
    for u in &reviews[..5] {
        let subject = u["subject"].as_str().unwrap();
        assert!(subject >= "PROC-1000", "{subject}");
    }
    // A small run lists every object and says nothing of the unlisted.
    let small = policy_world();
    small.annexa(&["collect", "policies"]).expect(0);
    let doc = small.annexa(&["status", "--json"]).expect(3).json();
    let a524 = common::control(&doc, "A.5.24");
    assert!(a524.get("evidence_unlisted").is_none(), "{a524}");
    assert!(doc.get("upcoming_unlisted").is_none());
}
