//! A process killed mid-write leaves no partial object under a final key and no run recorded
//! as complete. The invariants hold whenever the kill lands, so the test kills at several
//! moments and checks them all each time.

mod common;

use std::time::Duration;

use common::{POLICY_CONFIG, World, procedure};

#[test]
fn killing_a_collection_at_any_moment_leaves_nothing_half_written() {
    let w = World::new();
    w.config(POLICY_CONFIG);
    w.write(
        "policies/procedure.md",
        &procedure("procedure", &common::reviewed_days_ago(60)),
    );
    w.annexa(&["collect", "policies"]).expect(0);

    // A large document makes the write long enough to be interrupted.
    let big: String = (0..600_000)
        .map(|i| format!("line {i} of a long policy annex\n"))
        .collect();
    w.write("policies/annex.txt", &big);

    for delay_ms in [5, 60, 250] {
        let mut child = w.command(&["collect", "policies"], &[]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();

        // Every stored object still hashes to its key; nothing the killed run wrote is
        // recorded as a finished run (at worst a `running` row and an orphan manifest).
        let verify = w.annexa(&["verify", "--json"]).json();
        assert_eq!(
            verify["violations"],
            serde_json::json!([]),
            "after a kill at {delay_ms} ms: {verify}"
        );
        let runs = w.annexa(&["collect", "--json", "--all"]);
        // The collection itself works again afterwards.
        assert_eq!(runs.code, 0, "{}", runs.stderr);
        let status = w.annexa(&["status", "--json"]).json();
        let a524 = common::control(&status, "A.5.24");
        assert_eq!(a524["status"], "satisfied", "after a kill at {delay_ms} ms");
    }

    // No temporary file ever sits under a final key (local store only: S3 has no partial
    // objects, only unfinished multipart uploads that are not objects).
    if w.s3.is_none() {
        for entry in walk(&w.path("data/store/objects")) {
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(name.len(), 64, "unexpected file {}", entry.display());
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
