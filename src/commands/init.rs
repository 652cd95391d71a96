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
    std::fs::write(&config, EXAMPLE).with_context(|| format!("writing {}", config.display()))?;
    println!("wrote {}", config.display());
    println!(
        "wrote {} (private, mode 0600) and {}.pub (give this one to auditors)",
        key_path.display(),
        key_path.display()
    );
    println!(
        "next: add a [[collector]] to the config, then run `annexa --config {} run`",
        config.display()
    );
    Ok(Exit::Ok)
}
