//! The one-way rule of `src/`, checked: a room (a top-level module with everything under it)
//! imports only rooms below it in [`ORDER`]. Counted from `crate::…` and `super::…` paths
//! outside `#[cfg(test)]`, as `../shared/tools/import_cycles.py --rooms` counts them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top to bottom; rooms on one line may not import each other.
const ORDER: &[&[&str]] = &[
    &["main"],
    &["commands"],
    &["cli"],
    &["ops"],
    &["views"],
    &["evidence"],
    &["ledger"],
    &["app"],
    &["config"],
    &["controls", "db", "store"],
    &["base"],
];

fn level(room: &str) -> Option<usize> {
    ORDER.iter().position(|rooms| rooms.contains(&room))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The rooms a file's code (not its tests, not its comments) names.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rooms = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|item| item.trim().split("::").next().unwrap_or_default())
                .collect()
        } else {
            vec![rest.split("::").next().unwrap_or_default()]
        };
        for name in names {
            let name: String = name
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                rooms.insert(name);
            }
        }
    }
    rooms
}

#[test]
fn no_room_imports_a_room_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in all {
        let rel = path.strip_prefix(&src).unwrap();
        let room = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if room == "lib" || room == "layout_tests" {
            continue;
        }
        let from = level(&room).unwrap_or_else(|| {
            panic!("src/{room} is in no room of the layout: add it to ORDER and DESIGN.md")
        });
        for target in imports(&std::fs::read_to_string(&path).unwrap()) {
            if target == room {
                continue;
            }
            match level(&target) {
                Some(to) if to > from => {}
                _ => wrong.push(format!("{} imports {target}", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the one-way rule:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_grouped_and_plain_paths() {
    let rooms = imports(
        "use crate::{ledger, db::Db};\nfn f() { crate::app::Annexa::open }\n// crate::ops\n#[cfg(test)]\nuse crate::cli;",
    );
    assert_eq!(
        rooms.into_iter().collect::<Vec<_>>(),
        ["app", "db", "ledger"]
    );
}
