//! The README's first command, on a copy of examples/quickstart.

mod common;

use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_name() == "data" {
            continue; // a developer's own earlier run
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_quickstart_evidences_a524_and_a528_and_verifies() {
    // The quickstart is the embedded defaults by definition: a local folder and SQLite.
    let w = common::World::with_backend(common::Backend::Local);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart"),
        w.dir.path(),
    );
    let run = w.annexa(&["run"]).expect(3);
    for id in ["A.5.24", "A.5.28"] {
        let line = run.stdout.lines().find(|l| l.starts_with(id)).unwrap();
        assert!(line.contains(" satisfied "), "{line}");
    }
    assert!(
        run.stdout
            .contains("policies (policy-document): succeeded — 2 items stored in"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("4 of 10 controls satisfied, 6 with gaps"),
        "{}",
        run.stdout
    );
    w.annexa(&["verify"]).expect(0);
}
