//! Samples nobody can steer (`annexa sample`): the format of a sample and the rules that draw
//! it, written and checked here (and by the evidence package's `verify.py --sample`).
//!
//! 1. The population of the period is frozen: its items sorted by id, hashed as the lines
//!    `<id>\t<sha256>\t<at>\n` (SHA-256), and that hash recorded as a `sample-drawn` audit
//!    event, a ledger leaf.
//! 2. The seed is the root hash of the first checkpoint whose tree holds that leaf: signed
//!    after the population was frozen, so neither side could know it when the population was
//!    fixed, and no one can choose it.
//! 3. Each item's selector is SHA-256(seed ‖ id); the sample is the N items with the lowest.
//!
//! Drawing again over the same records finds the same frozen population and its checkpoint,
//! so gives the same sample: no one can draw until they like the result. A sample file holds
//! the whole population, the audit event's leaf with its audit path to the seed's checkpoint,
//! and that signed checkpoint, so it can be checked with nothing else.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::SampleSizes;
use crate::ledger::{self, Hash};

pub const FORMAT: &str = "annexa-sample/1";

/// The populations `annexa sample --population` knows.
pub const POPULATIONS: [&str; 5] = ["incidents", "drills", "job-slots", "runs", "attested"];

/// One member of a population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    /// The SHA-256 of the evidence object that shows it.
    pub sha256: String,
    pub object_key: String,
    pub at: String,
    pub summary: String,
}

/// A drawn sample, as written to the sample file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub format: String,
    pub id: String,
    pub control: String,
    pub population: String,
    pub period: ledger::package::Period,
    /// How often the population's items happen, and the size that calls for.
    pub frequency: String,
    pub size: usize,
    pub population_sha256: String,
    pub items: Vec<Item>,
    pub frozen: Frozen,
    pub seed: Seed,
    pub selected: Vec<Selected>,
}

/// The audit event that froze the population: its leaf bytes, and its audit path to the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    pub event: String,
    pub leaf_index: u64,
    pub audit_path: Vec<String>,
}

/// The checkpoint whose root is the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub checkpoint: String,
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selected {
    pub rank: usize,
    pub id: String,
    pub selector: String,
}

/// The population's hash: its items sorted by id, one `<id>\t<sha256>\t<at>\n` line each.
pub fn population_sha256(items: &[Item]) -> String {
    let mut h = Sha256::new();
    for i in items {
        h.update(format!("{}\t{}\t{}\n", i.id, i.sha256, i.at).as_bytes());
    }
    hex::encode(h.finalize())
}

/// The sample of `size` items: those with the lowest SHA-256(seed ‖ id).
pub fn select(items: &[Item], seed: &Hash, size: usize) -> Vec<Selected> {
    let mut ranked: Vec<(String, &str)> = items
        .iter()
        .map(|i| {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(i.id.as_bytes());
            (hex::encode(h.finalize()), i.id.as_str())
        })
        .collect();
    ranked.sort();
    ranked
        .into_iter()
        .take(size)
        .enumerate()
        .map(|(n, (selector, id))| Selected {
            rank: n + 1,
            id: id.to_string(),
            selector,
        })
        .collect()
}

/// How often `count` items over `[from, to)` happen, and the sample size that calls for.
pub fn default_size(
    sizes: &SampleSizes,
    count: usize,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> (String, usize) {
    let days = (to - from).num_seconds().max(1) as f64 / 86_400.0;
    let per_day = count as f64 / days;
    let interval = days / count.max(1) as f64;
    let (frequency, size) = if per_day > 1.5 {
        // 2 a day: daily + 5; each more a day, 5 more, up to several_a_day.
        let more = 5 * (per_day.round() as usize).saturating_sub(1);
        (
            "several a day",
            (sizes.daily + more).min(sizes.several_a_day),
        )
    } else if interval <= 1.5 {
        ("daily", sizes.daily)
    } else if interval <= 10.0 {
        ("weekly", sizes.weekly)
    } else if interval <= 45.0 {
        ("monthly", sizes.monthly)
    } else if interval <= 120.0 {
        ("quarterly", sizes.quarterly)
    } else {
        ("annual", sizes.annual)
    };
    (format!("{frequency} ({count} in {days:.0} days)"), size)
}

/// Checks a sample file on its own: the population's hash, the audit event that froze it
/// (naming that hash) and its audit path to the seed's checkpoint, which `verified` (the
/// checkpoint's note) must accept, and the selection. Every problem, none when it holds.
pub fn check(sample: &Sample, verified: impl Fn(&str) -> Result<(), String>) -> Vec<String> {
    let mut problems = Vec::new();
    let sorted = sample.items.windows(2).all(|w| w[0].id < w[1].id);
    if !sorted {
        problems.push("the items are not sorted by id, each once".into());
    }
    let hash = population_sha256(&sample.items);
    if hash != sample.population_sha256 {
        problems.push(format!(
            "the population hashes to {hash}, not {} as frozen",
            sample.population_sha256
        ));
    }
    match serde_json::from_str::<serde_json::Value>(&sample.frozen.event) {
        Ok(event) => {
            let d = &event["details"];
            let names = event["action"] == "sample-drawn"
                && d["population_sha256"] == sample.population_sha256.as_str()
                && d["control"] == sample.control.as_str()
                && d["population"] == sample.population.as_str()
                && d["period"]["from"] == sample.period.from.as_str()
                && d["period"]["to"] == sample.period.to.as_str();
            if !names {
                problems.push(
                    "the audit event does not freeze this population of this control and period"
                        .into(),
                );
            }
        }
        Err(e) => problems.push(format!("the audit event is not JSON: {e}")),
    }
    let seed = ledger::from_hex(&sample.seed.root_hash);
    let path: Option<Vec<Hash>> = sample
        .frozen
        .audit_path
        .iter()
        .map(|h| ledger::from_hex(h))
        .collect();
    let Some(seed) = seed else {
        problems.push("the seed is not a hex SHA-256".into());
        return problems;
    };
    let leaf = ledger::leaf_hash(sample.frozen.event.as_bytes());
    let included = path
        .ok_or("a hash is not hex SHA-256".to_string())
        .and_then(|p| {
            ledger::verify_inclusion(
                sample.frozen.leaf_index,
                sample.seed.tree_size,
                &leaf,
                &p,
                &seed,
            )
        });
    if let Err(e) = included {
        problems.push(format!(
            "the audit event is not leaf {} of the seed's tree: {e}",
            sample.frozen.leaf_index
        ));
    }
    let head = ledger::checkpoint_text(&sample.seed.origin, sample.seed.tree_size, &seed);
    match crate::ledger::note::SignedNote::parse(&sample.seed.checkpoint) {
        Ok(note) if note.text == head => {
            if let Err(e) = verified(&sample.seed.checkpoint) {
                problems.push(format!("the seed's checkpoint: {e}"));
            }
        }
        _ => problems.push("the checkpoint does not sign the seed's tree head".into()),
    }
    let drawn = select(&sample.items, &seed, sample.size);
    if drawn != sample.selected {
        problems.push(format!(
            "the selection is not the {} items with the lowest SHA-256(seed ‖ id)",
            sample.size.min(sample.items.len())
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                id: format!("INC-{i:03}"),
                sha256: hex::encode(Sha256::digest(i.to_be_bytes())),
                object_key: String::new(),
                at: "2026-11-01T00:00:00Z".into(),
                summary: String::new(),
            })
            .collect()
    }

    #[test]
    fn the_selection_is_a_function_of_the_seed_and_the_ids_alone() {
        let seed: Hash = Sha256::digest(b"root").into();
        let a = select(&items(100), &seed, 25);
        assert_eq!(a.len(), 25);
        assert_eq!(a, select(&items(100), &seed, 25));
        let mut reversed = items(100);
        reversed.reverse();
        assert_eq!(a, select(&reversed, &seed, 25), "order does not matter");
        let other: Hash = Sha256::digest(b"another root").into();
        assert_ne!(a, select(&items(100), &other, 25));
        assert!(a.windows(2).all(|w| w[0].selector < w[1].selector));
        assert_eq!(select(&items(3), &seed, 25).len(), 3, "all when too few");
    }

    #[test]
    fn one_changed_item_changes_the_population_hash() {
        let mut changed = items(10);
        changed[4].sha256 = "00".repeat(32);
        assert_ne!(population_sha256(&items(10)), population_sha256(&changed));
    }

    #[test]
    fn sizes_follow_how_often_the_items_happen() {
        let month = (
            DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
                .unwrap()
                .to_utc(),
            DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        );
        let s = SampleSizes::default();
        let size = |n| default_size(&s, n, month).1;
        assert_eq!(size(720), 60, "hourly");
        assert_eq!(size(60), 30, "twice a day");
        assert_eq!(size(30), 25, "daily");
        assert_eq!(size(4), 5, "weekly");
        assert_eq!(size(7), 5, "seven incidents");
        assert_eq!(size(1), 2, "monthly");
        assert!(
            default_size(&s, 30, month)
                .0
                .starts_with("daily (30 in 30 days)")
        );
    }
}
