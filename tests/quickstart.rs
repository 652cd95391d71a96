//! The README's first command, on a copy of examples/quickstart.

mod common;

use std::path::Path;

#[test]
fn the_quickstart_evidences_a524_and_a528_and_verifies() {
    // The quickstart is the embedded defaults by definition: a local folder and SQLite.
    let w = common::World::with_backend(common::Backend::Local);
    common::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"),
        w.dir.path(),
        &["data"], // a developer's own earlier run
    );
    let run = w.annexa(&["run"]).expect(3);
    // A.5.28 is evidenced by the run itself. A.5.24 is evidenced by the procedures: satisfied
    // until their annual reviews fall due (spring 2027), then not_satisfied by exactly that.
    let a528 = run
        .stdout
        .lines()
        .find(|l| l.starts_with("A.5.28"))
        .unwrap();
    assert!(a528.contains(" satisfied "), "{a528}");
    let a524 = run
        .stdout
        .lines()
        .find(|l| l.starts_with("A.5.24"))
        .unwrap();
    assert!(!a524.contains(" none "), "A.5.24 has evidence: {a524}");
    let a524_findings: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("A.5.24"))
        .skip(1)
        .take_while(|l| l.starts_with("        "))
        .collect();
    assert!(
        a524_findings
            .iter()
            .all(|l| l.contains("policy-review-overdue")),
        "{a524_findings:?}"
    );
    assert_eq!(
        a524.contains(" satisfied "),
        a524_findings.is_empty(),
        "{a524}"
    );
    // A.5.24, A.5.28, A.5.30 and A.8.13 satisfied (A.5.24 until its reviews fall due).
    let satisfied = if a524_findings.is_empty() { 4 } else { 3 };
    let summary = format!(
        "{satisfied} of 10 controls satisfied, {} with gaps",
        10 - satisfied
    );
    assert!(run.stdout.contains(&summary), "{summary}\n{}", run.stdout);

    assert!(
        run.stdout
            .contains("policies (policy-document): succeeded — 2 items stored in"),
        "{}",
        run.stdout
    );
    w.annexa(&["verify"]).expect(0);

    // The report of this month so far, in every format, signed and stored.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let report = w
        .annexa(&["report", "--from", &today, "--to", &today, "--json"])
        .expect(3)
        .json();
    let files: Vec<std::path::PathBuf> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| std::path::PathBuf::from(f.as_str().unwrap()))
        .collect();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "report.html",
            "report.md",
            "controls.csv",
            "gaps.csv",
            "findings.csv",
            "evidence.csv",
            "soa.csv",
            "report.json",
            "oscal-assessment-results.json",
            "oscal-assessment-plan.json",
            "oscal-catalog.json",
            "manifest.json",
            "SHA256SUMS",
            "manifest.json.sig"
        ]
    );
    assert!(files[0].starts_with(w.path("out/reports")), "{files:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[11]).unwrap()).unwrap();
    for (f, entry) in files.iter().zip(manifest["files"].as_array().unwrap()) {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(f).unwrap(),
        ));
        assert_eq!(entry["sha256"].as_str().unwrap(), sha, "{}", f.display());
    }
    let key = annexa::ledger::note::Verifier::parse(
        &std::fs::read_to_string(w.path("data/keys/annexa.key.pub")).unwrap(),
    )
    .unwrap();
    let note =
        annexa::ledger::note::SignedNote::parse(&std::fs::read_to_string(&files[13]).unwrap())
            .unwrap();
    assert_eq!(note.verified_by(&[key]).unwrap().len(), 1);
    // The report is itself evidence: recorded in the ledger, and verify still passes.
    w.annexa(&["verify"]).expect(0);

    // Issue 18: no host path in what people and auditors read: the run's lines, the report
    // bundle, and every stored object (facts, manifests, the drill's report).
    let host = w.dir.path().to_str().unwrap().to_string();
    assert!(!run.stdout.contains(&host), "{}", run.stdout);
    let mut leaked = Vec::new();
    let mut stack = vec![
        files[0].parent().unwrap().to_path_buf(),
        w.path("data/store"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(&host) {
                leaked.push(path);
            }
        }
    }
    assert!(leaked.is_empty(), "host paths in {leaked:?}");
}
