//! `annexa export`: the evidence package of a period (its format is `ledger::package`). The
//! report bundle, every run manifest of the period with the objects it lists, copied from the
//! store as streams, and an audit path of each manifest's leaf to one signed checkpoint.
//!
//! The same records give the same bytes: the package is anchored to the newest checkpoint at
//! the end of the period (or, when the last run of the period came later into a checkpoint,
//! at that one's time), the report shows the records as they stood then, and the previous
//! export is the newest one already inside the anchoring tree. Exporting again adds leaves
//! (the report's and the export's audit events) after that tree, so it changes none of them.
//! The package is written into a temporary folder beside `out` and moved there whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::app::Annexa;
use crate::db::{CheckpointRow, ts};
use crate::ledger::audit::{self, Actor, AuditAction};
use crate::ledger::package::{self, Contents, Head, PackageRun, Previous};
use crate::ledger::proof::ProveError;
use crate::ledger::{self, Levels};

/// Objects copied at once (S3 reads in flight; the local store copies on blocking threads).
const COPIES_IN_FLIGHT: usize = 8;

/// A written package.
#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub contents: Contents,
    pub objects: usize,
    pub bytes: u64,
}

/// Writes the package of `[from, to)` to `out`: a new folder, or one `.tar.zst` file when the
/// name ends so.
pub async fn export(
    app: &Annexa,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    out: &Path,
) -> Result<Exported, ProveError> {
    let usage = |m: String| ProveError::Usage(m);
    if from >= to {
        return Err(usage(format!(
            "the period is empty: --from {} is not before --to {}",
            annexa_reports::time(from),
            annexa_reports::time(to)
        )));
    }
    if out.exists() {
        return Err(usage(format!(
            "{} exists: pass a new folder (or a new .tar.zst file); a package is never written over another",
            out.display()
        )));
    }
    let archive = out.to_string_lossy().ends_with(".tar.zst");
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".annexa-export-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write into {}", parent.display()))?;
    let dir = staging.path();

    let runs: Vec<_> = super::report::runs_between(app, from, to)
        .await?
        .into_iter()
        .filter(|r| r.ledger_index.is_some() && r.manifest_key.is_some())
        .collect();
    let Some(last) = runs.iter().filter_map(|r| r.ledger_index).max() else {
        return Err(usage(format!(
            "no run finished between {} and {}: there is no evidence to export; check --from and --to",
            annexa_reports::time(from),
            annexa_reports::time(to)
        )));
    };
    let (anchor, as_of) = anchor(app, to, last as u64).await?;

    // The report, as the records stood when the package's checkpoint was signed.
    let bundle = super::report::write_bundle(
        app,
        Some((from, to)),
        &annexa_reports::Format::ALL,
        Some(dir),
        Some(as_of),
    )
    .await?;
    // The report's model is the biggest thing a month holds: gone before the evidence is read.
    let super::report::Bundle {
        dir: report_dir,
        paths: report_files,
        ..
    } = bundle;
    std::fs::rename(&report_dir, dir.join(package::REPORT))
        .context("cannot move the report into the package")?;
    let mut files = BTreeMap::new();
    for path in &report_files {
        let name = path.file_name().expect("a file").to_string_lossy();
        let (sha, _) = crate::store::hash_file(&dir.join(package::REPORT).join(&*name))
            .context("cannot read back the report")?;
        files.insert(format!("{}/{name}", package::REPORT), hex::encode(sha));
    }

    // The tree the checkpoint signed, with every level kept for the audit paths.
    let leaves = ledger::decode_leaves(&app.db.leaves().await.map_err(anyhow::Error::from)?)
        .map_err(|e| ProveError::Integrity(format!("{e}; run `annexa verify`")))?;
    let size = anchor.tree_size as usize;
    let levels = Levels::new(leaves.get(..size).ok_or_else(|| {
        ProveError::Integrity(format!(
            "the checkpoint names {size} leaves, the ledger holds {}; run `annexa verify`",
            leaves.len()
        ))
    })?);
    let root = levels.root();
    if ledger::b64(&root) != anchor.root_hash {
        return Err(ProveError::Integrity(format!(
            "the ledger's first {size} leaves do not give the root checkpoint {} signed; run `annexa verify`",
            anchor.object_key
        )));
    }

    // Each run's manifest, checked against its leaf, and the objects it lists.
    let mut package_runs = Vec::new();
    let mut objects: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for run in &runs {
        let (Some(index), Some(key), Some(sha)) =
            (run.ledger_index, &run.manifest_key, &run.manifest_sha256)
        else {
            continue;
        };
        let bytes = app.store.read(key).await.map_err(anyhow::Error::from)?;
        let leaf = ledger::leaf_hash(&bytes);
        if hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)) != *sha
            || levels.leaf(index as usize) != Some(&leaf)
        {
            return Err(ProveError::Integrity(format!(
                "the stored manifest of run {} ({key}) is not the one the ledger holds; run `annexa verify`",
                run.id
            )));
        }
        let manifest = ledger::manifest::read(&bytes).map_err(|e| {
            ProveError::Integrity(format!("the manifest {key} cannot be read: {e}"))
        })?;
        for item in manifest.items {
            objects.insert(item.object_key, (item.sha256, item.size));
        }
        write_new(&dir.join(key), &bytes)?;
        files.insert(key.clone(), sha.clone());
        let path = levels
            .inclusion_proof(index as usize)
            .expect("the anchor holds every run of the period");
        package_runs.push(PackageRun {
            run_id: run.id.clone(),
            collector: run.collector.clone(),
            finished_at: ts(run.finished_at.expect("a run in the ledger has finished")),
            manifest: key.clone(),
            manifest_sha256: sha.clone(),
            leaf_index: index as u64,
            audit_path: path.iter().map(hex::encode).collect(),
        });
    }
    package_runs.sort_by_key(|r| r.leaf_index);
    let bytes = copy_objects(app, &objects, dir).await?;
    for (key, (sha, _)) in &objects {
        files.insert(key.clone(), sha.clone());
    }

    let previous = previous(app, &leaves[..size], &root).await?;
    let contents = Contents {
        format: package::FORMAT.into(),
        id: format!(
            "{}--{}@{size}",
            from.format("%Y-%m-%d"),
            (to - chrono::Duration::seconds(1)).format("%Y-%m-%d")
        ),
        organization: app.config.organization.clone(),
        period: package::Period {
            from: annexa_reports::time(from),
            to: annexa_reports::time(to),
        },
        records_as_of: annexa_reports::time(as_of),
        checkpoint: Head {
            origin: anchor.origin.clone(),
            tree_size: size as u64,
            root_hash: hex::encode(root),
        },
        previous,
        runs: package_runs,
    };
    let keys = crate::ledger::keyring::verifier_file(app).await?;
    let verify_md = package::verify_md(&contents, objects.len());
    for (name, text) in [
        (package::CHECKPOINT, anchor.note.as_str()),
        (package::KEYS, keys.as_str()),
        (package::VERIFY_PY, package::VERIFIER),
        (package::VERIFY_MD, verify_md.as_str()),
    ] {
        write_new(&dir.join(name), text.as_bytes())?;
        files.insert(
            name.to_string(),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text)),
        );
    }
    let key = crate::ledger::keyring::signing_key(app).await?;
    let sealed = package::seal(&key, &contents, &files);
    for (name, bytes) in [
        (package::MANIFEST, &sealed.manifest[..]),
        (package::SUMS, &sealed.sums[..]),
        (package::SIGNATURE, sealed.signature.as_bytes()),
    ] {
        write_new(&dir.join(name), bytes)?;
    }

    if archive {
        package::write_archive(dir, out)?;
    } else {
        std::fs::rename(dir, out)
            .with_context(|| format!("cannot move the package to {}", out.display()))?;
    }
    audit::record(
        &app.db,
        Actor::Operator,
        AuditAction::EvidenceExported,
        &contents.id,
        serde_json::json!({
            "package_sha256": sealed.manifest_sha256,
            "tree_size": contents.checkpoint.tree_size,
            "root_hash": contents.checkpoint.root_hash,
            "period": contents.period,
            "runs": contents.runs.len(),
            "objects": objects.len(),
        }),
        app.clock.now(),
    )
    .await
    .map_err(anyhow::Error::from)?;
    Ok(Exported {
        path: out.to_path_buf(),
        contents,
        objects: objects.len(),
        bytes,
    })
}

/// The checkpoint the package is anchored to, and the time the records are shown as of: the
/// newest checkpoint at the end of the period, unless the last run of the period (at ledger
/// index `last`) first came into a checkpoint later. When none holds it yet, one is signed.
async fn anchor(
    app: &Annexa,
    to: DateTime<Utc>,
    last: u64,
) -> Result<(CheckpointRow, DateTime<Utc>), ProveError> {
    let checkpoints = app.db.checkpoints().await.map_err(anyhow::Error::from)?;
    let first = match checkpoints.into_iter().find(|c| c.tree_size as u64 > last) {
        Some(c) => c,
        None => crate::ledger::checkpoint::create(app).await?.checkpoint,
    };
    let as_of = app.clock.now().min(to.max(first.created_at));
    let anchor = app
        .db
        .latest_checkpoint(as_of)
        .await
        .map_err(anyhow::Error::from)?
        .filter(|c| c.tree_size as u64 > last)
        .unwrap_or(first);
    Ok((anchor, as_of))
}

/// The consistency proof from the newest export already in `tree` (with root `root`).
async fn previous(
    app: &Annexa,
    tree: &[ledger::Hash],
    root: &ledger::Hash,
) -> Result<Option<Previous>, ProveError> {
    let size = tree.len() as u64;
    let exports = audit::with_action(&app.db, AuditAction::EvidenceExported)
        .await
        .map_err(anyhow::Error::from)?;
    let newest = exports
        .iter()
        .filter(|e| (0..size as i64).contains(&e.ledger_index))
        .filter_map(|e| {
            let d: serde_json::Value = serde_json::from_str(&e.details).ok()?;
            Some((
                d["tree_size"].as_u64()?,
                d["root_hash"].as_str()?.to_string(),
            ))
        })
        .filter(|(s, _)| (1..size).contains(s))
        .max();
    let Some((old_size, old_root)) = newest else {
        return Ok(None);
    };
    let old = ledger::from_hex(&old_root).ok_or_else(|| {
        ProveError::Integrity(format!(
            "an export's audit event names the root `{old_root}`"
        ))
    })?;
    let proof = ledger::consistency_proof(tree, old_size as usize).unwrap_or_default();
    ledger::verify_consistency(old_size, size, &old, root, &proof).map_err(|e| {
        ProveError::Integrity(format!(
            "the ledger does not extend the checkpoint of the previous export ({old_size} leaves): {e}; history was rewritten: run `annexa verify`"
        ))
    })?;
    Ok(Some(Previous {
        tree_size: old_size,
        root_hash: old_root,
        proof: proof.iter().map(hex::encode).collect(),
    }))
}

/// Copies every object from the store into the package, checking each one's hash and size on
/// the way; a progress bar on a terminal. The bytes copied.
async fn copy_objects(
    app: &Annexa,
    objects: &BTreeMap<String, (String, i64)>,
    dir: &Path,
) -> Result<u64, ProveError> {
    let progress = indicatif::ProgressBar::new(objects.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "exporting {pos}/{len} objects [{elapsed_precise}] {wide_bar} {eta} left",
        )
        .expect("a valid template"),
    );
    let copies = futures::stream::iter(objects.iter())
        .map(|(key, (sha, size))| {
            let (dst, progress) = (dir.join(key), progress.clone());
            async move {
                if let Some(parent) = dst.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                let (got, got_size) = app.store.copy_to(key, &dst).await.map_err(anyhow::Error::from)?;
                progress.inc(1);
                if got != *sha || got_size as i64 != *size {
                    return Err(ProveError::Integrity(format!(
                        "{key} in the store is not the object its manifest lists (sha256 {got}, {got_size} bytes; expected sha256 {sha}, {size} bytes); run `annexa verify`"
                    )));
                }
                Ok(got_size)
            }
        })
        .buffer_unordered(COPIES_IN_FLIGHT);
    let sizes: Vec<Result<u64, ProveError>> = copies.collect().await;
    progress.finish_and_clear();
    sizes.into_iter().sum()
}

/// Writes a new file of the package, creating its folder.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::File::create_new(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)?;
    Ok(())
}
