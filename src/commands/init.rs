//! `annexa init [DIR]`: a commented config and a signing key.

use std::path::Path;

use anyhow::Context;

use crate::cli::exit::{Exit, Failure};
use crate::ledger::note::NoteKey;

/// The documented example, written as the starting config.
const EXAMPLE: &str = include_str!("../../annexa.example.toml");

pub fn init(dir: Option<&Path>) -> Result<Exit, Failure> {
    let dir = dir.unwrap_or(Path::new("."));
    let config = dir.join("annexa.toml");
    if config.exists() {
        return Err(anyhow::anyhow!(
            "{} already exists; annexa init never overwrites a config",
            config.display()
        )
        .into());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_path = dir.join("keys/annexa.key");
    let name = format!(
        "annexa/{}",
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "evidence".into())
    );
    if !key_path.exists() {
        NoteKey::generate(&name)
            .and_then(|k| k.write_new(&key_path))
            .with_context(|| format!("writing the signing key {}", key_path.display()))?;
    }
    std::fs::write(&config, starter_config(EXAMPLE))
        .with_context(|| format!("writing {}", config.display()))?;
    let soa = dir.join("soa.csv");
    if !soa.exists() {
        std::fs::write(
            &soa,
            crate::config::soa::starter(crate::controls::annex_a()),
        )
        .with_context(|| format!("writing {}", soa.display()))?;
        println!(
            "wrote {} (the Statement of Applicability: a row per Annex A control, 93, each to assess: yes or no, and why)",
            soa.display()
        );
    }
    let policies = dir.join("policies");
    let starter = policies.join("policy-template.md");
    if !policies.exists() {
        std::fs::create_dir_all(&policies)
            .and_then(|()| std::fs::write(&starter, STARTER_POLICY))
            .with_context(|| format!("writing {}", starter.display()))?;
        println!(
            "wrote {} (a template: replace it with your own policies)",
            starter.display()
        );
    }
    println!("wrote {}", config.display());
    println!(
        "wrote {} (private, mode 0600) and {}.pub (give this one to auditors)",
        key_path.display(),
        key_path.display()
    );
    println!(
        "next: put your policy documents in {}, enable the other collectors in the config (each says what to fill in), then run `annexa --config {} run`",
        policies.display(),
        config.display()
    );
    Ok(Exit::Ok)
}

/// A template procedure for the starter folder. It names no control and states no review
/// date, so it evidences nothing (a `policy-metadata-missing` warning says why) until a real
/// document replaces it: a template never makes a control pass.
const STARTER_POLICY: &str = "# Policy template (replace it)\n\n\
Document ID: TEMPLATE-001\n\
Version: 0.1 (draft)\n\
Owner: (name the owner)\n\
Review cycle: Annual\n\n\
Replace this file with your organization's policies and procedures, one document each, with\n\
the header fields above, a Last reviewed line with its date, and a Controls line with the\n\
control ids it evidences (A.5.24 for an incident management procedure). annexa reads them on\n\
its schedule and checks each is reviewed on time.\n";

/// The example config with only the policy-document collector active: every other
/// `[[collector]]` and `[[job]]` is commented out, with a line saying how to enable it, so the
/// first `annexa run` records no run against a placeholder source.
/// The example's commented `[soa] file` line, which init sets.
const SOA_LINE: &str = "# file = \"soa.csv\"";

fn starter_config(example: &str) -> String {
    let mut out = String::with_capacity(example.len() + 1024);
    let (mut disabled, mut collectors) = (false, 0);
    for line in example.lines() {
        let header = line.trim_start();
        if header.starts_with("[[collector]]") || header.starts_with("[[job]]") {
            let kind = if header.starts_with("[[job]]") {
                "job"
            } else {
                collectors += 1;
                "collector"
            };
            // The first collector of the example is the policy-document one.
            disabled = kind == "job" || collectors > 1;
            if disabled {
                out.push_str(&format!(
                    "# Disabled by `annexa init`: fill in this {kind}'s sources, then remove the `# ` \
                     before each of its lines.\n"
                ));
            }
        } else if header.starts_with('[')
            && !header.starts_with("[collector.")
            && !header.starts_with("[[collector.")
        {
            disabled = false;
        }
        if disabled && !line.starts_with('#') && !line.is_empty() {
            out.push_str("# ");
        }
        // init writes the SoA beside the config.
        let line = if line == SOA_LINE { &line[2..] } else { line };
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_config_has_one_active_collector_and_no_job() {
        let text = starter_config(EXAMPLE);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("soa.csv"),
            crate::config::soa::starter(crate::controls::annex_a()),
        )
        .unwrap();
        let c = crate::config::Config::parse(&text, &dir.path().join("annexa.toml"), &[]).unwrap();
        assert_eq!(c.soa.as_ref().map(|s| s.rows.len()), Some(93));
        assert_eq!(c.collectors.len(), 1);
        assert_eq!(c.collectors[0].name, "policies");
        assert!(c.jobs.is_empty());
        // Each disabled block says how to enable it, and removing the `# ` restores the example.
        assert_eq!(text.matches("# Disabled by `annexa init`").count(), 5);
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("# Disabled by"))
            .collect();
        let example: Vec<&str> = EXAMPLE.lines().collect();
        assert_eq!(kept.len(), example.len());
        for (k, e) in kept.iter().zip(&example) {
            assert!(
                *k == *e || k.strip_prefix("# ") == Some(e) || e.strip_prefix("# ") == Some(k),
                "{k} / {e}"
            );
        }
    }
}
