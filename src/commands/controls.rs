//! `annexa controls`: the catalog and which configured collectors cover each control.

use serde::Serialize;

use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::config::Config;
use crate::evidence::registry;

#[derive(Serialize)]
struct ControlLine<'a> {
    id: &'a str,
    title: &'a str,
    /// As a config writes it (`35d`), and in seconds.
    max_age: String,
    max_age_seconds: u64,
    collector_kinds: &'a [String],
    configured: Vec<&'a str>,
    codes: Vec<&'static str>,
}

pub fn controls(config: &Config, json: bool) -> Result<Exit, Failure> {
    let covering: Vec<(&str, Vec<String>)> = config
        .collectors
        .iter()
        .map(|c| {
            let collector = registry::build(c, config);
            (
                c.name.as_str(),
                registry::controls_of(c, collector.as_ref(), &config.catalog, None),
            )
        })
        .collect();
    let lines: Vec<ControlLine> = config
        .catalog
        .controls()
        .iter()
        .map(|control| {
            let mut configured: Vec<&str> = covering
                .iter()
                .filter(|(_, ids)| ids.contains(&control.id))
                .map(|(name, _)| *name)
                .collect();
            if control
                .collectors
                .iter()
                .any(|k| k == crate::controls::CUSTODY)
            {
                configured.push(crate::controls::CUSTODY);
            }
            ControlLine {
                id: &control.id,
                title: &control.title,
                max_age: crate::base::duration_text(control.max_age),
                max_age_seconds: control.max_age.as_secs(),
                collector_kinds: &control.collectors,
                configured,
                codes: control.codes.iter().map(|c| c.as_str()).collect(),
            }
        })
        .collect();
    let mut out = String::new();
    if json {
        out = serde_json::to_string(&lines)? + "\n";
    } else {
        out.push_str(&format!(
            "{:<7} {:<72} {:<8} {}\n",
            "CONTROL", "TITLE", "MAX AGE", "COVERED BY"
        ));
        for l in &lines {
            out.push_str(&format!(
                "{:<7} {:<72} {:<8} {}\n",
                l.id,
                l.title,
                l.max_age,
                if l.configured.is_empty() {
                    format!(
                        "nothing configured (kinds: {})",
                        l.collector_kinds.join(", ")
                    )
                } else {
                    l.configured.join(", ")
                }
            ));
        }
    }
    print(out.as_bytes())?;
    Ok(Exit::Ok)
}
