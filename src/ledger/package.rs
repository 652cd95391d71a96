//! The evidence package (`annexa export`): the report bundle of a period with the evidence
//! behind it, checked with nothing but the package and the verifier file.
//!
//! - `package.json` names the period, the signed checkpoint the package is anchored to, and
//!   each run of the period: its manifest, the manifest's SHA-256, its ledger leaf and the
//!   leaf's audit path to the checkpoint's root; and the consistency proof from the checkpoint
//!   of the previous export, when there was one.
//! - `runs/…` and `objects/sha256/…` hold the manifests and the objects they list, at their
//!   store keys, so a manifest's `object_key` is a path in the package.
//! - `checkpoint.txt` (the signed tree head), `keys.txt` (the verifier file), `report/` (the
//!   report bundle, sealed on its own), `VERIFY.md` and `verify.py` (a checker that needs
//!   Python's standard library and OpenSSL only).
//! - `SHA256SUMS` lists every file, and `package.json.sig` signs the hashes of `package.json`
//!   and `SHA256SUMS`, as a report bundle's seal does.
//!
//! Sealed here, checked here ([`check`]) and by `verify.py` with the same rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bundle::{self, SealNames, Sealed};
use super::keyring::TrustedKey;
use super::note::{self, NoteKey};
use super::verify::{VerifyReport, ViolationKind, violation};
use crate::base::canonical;

pub const FORMAT: &str = "annexa-evidence-package/1";
pub const MANIFEST: &str = "package.json";
pub const SIGNATURE: &str = "package.json.sig";
pub const SUMS: &str = bundle::SUMS;
pub const CHECKPOINT: &str = "checkpoint.txt";
pub const KEYS: &str = "keys.txt";
/// The report bundle's folder inside the package.
pub const REPORT: &str = "report";
pub const VERIFY_MD: &str = "VERIFY.md";
pub const VERIFY_PY: &str = "verify.py";
/// The package's own checker: Python's standard library, and OpenSSL for Ed25519.
pub const VERIFIER: &str = include_str!("package_verify.py");

const SEAL: SealNames = SealNames {
    format: FORMAT,
    manifest: MANIFEST,
    signature: SIGNATURE,
};

/// What `package.json` holds. Hashes are hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contents {
    pub format: String,
    pub id: String,
    pub organization: String,
    pub period: Period,
    /// The records as they stood then: the report's and the checkpoint's time.
    pub records_as_of: String,
    pub checkpoint: Head,
    pub previous: Option<Previous>,
    pub runs: Vec<PackageRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: String,
    pub to: String,
}

/// The tree head `checkpoint.txt` signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: String,
}

/// The checkpoint of the previous export, and the proof that this package's tree extends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Previous {
    pub tree_size: u64,
    pub root_hash: String,
    pub proof: Vec<String>,
}

/// One run of the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageRun {
    pub run_id: String,
    pub collector: String,
    pub finished_at: String,
    /// The manifest's path in the package (its store key).
    pub manifest: String,
    pub manifest_sha256: String,
    pub leaf_index: u64,
    pub audit_path: Vec<String>,
}

/// Seals a package whose files (every one but the seal's three) are `files`: path → SHA-256.
pub fn seal(key: &NoteKey, contents: &Contents, files: &BTreeMap<String, String>) -> Sealed {
    let manifest = canonical::to_vec(contents);
    let files = files
        .iter()
        .map(|(path, sha)| (sha.as_str(), path.as_str()));
    bundle::seal_folder(key, &SEAL, &contents.id, manifest, files)
}

/// `VERIFY.md`: what the package holds and how to check it, with annexa and without.
pub fn verify_md(c: &Contents, objects: usize) -> String {
    let previous = match &c.previous {
        Some(p) => format!(
            "It extends the checkpoint of the previous export ({} leaves, root `{}`): compare that root with the one in your copy of the previous package.",
            p.tree_size, p.root_hash
        ),
        None => "No export was anchored before it: it has no consistency proof.".into(),
    };
    format!(
        "# Evidence package {id}\n\n\
         {org}: the evidence collected from {from} to {to}, as the records stood at {as_of}.\n\n\
         - `report/`: the report of the period, a signed bundle of its own.\n\
         - `runs/`: the manifest of each of the {runs} runs of the period.\n\
         - `objects/`: the {objects} evidence objects those manifests list, named by SHA-256.\n\
         - `package.json`: each run's manifest hash, its ledger leaf and its audit path to the\n  \
           checkpoint of {size} leaves with root `{root}` (`checkpoint.txt`, a signed note).\n  \
           {previous}\n\
         - `SHA256SUMS`: every file's SHA-256; `package.json.sig` signs it and `package.json`.\n\
         - `keys.txt`: the verifier file the package was made with. Check with the one the\n  \
           organization gave you, not this copy.\n\n\
         ## Check it\n\n\
         With annexa (no configuration, database or store needed):\n\n\
         ```sh\nannexa verify --bundle . --keys YOUR-VERIFIER-FILE\n```\n\n\
         Without annexa, with Python 3 and OpenSSL 3 (the script is about 300 lines of the standard library: read it first):\n\n\
         ```sh\npython3 verify.py YOUR-VERIFIER-FILE .\n```\n\n\
         Both check the signatures, every file's SHA-256, each manifest against the objects it\n\
         lists (hash and size), each audit path and the consistency proof against the signed\n\
         checkpoint, that every run finished in the period, and that no file is there that the\n\
         package does not list. Either prints each failure and exits non-zero.\n",
        id = c.id,
        org = c.organization,
        from = c.period.from,
        to = c.period.to,
        as_of = c.records_as_of,
        runs = c.runs.len(),
        size = c.checkpoint.tree_size,
        root = c.checkpoint.root_hash,
    )
}

/// Checks a package with nothing but its files and the verifier file.
pub fn check(dir: &Path, keys: &[TrustedKey]) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::empty(format!("package {}", dir.display()));
    let v = &mut report.violations;
    let (manifest, signature) = match (
        std::fs::read(dir.join(MANIFEST)),
        std::fs::read_to_string(dir.join(SIGNATURE)),
    ) {
        (Ok(m), Ok(s)) => (m, s),
        (m, s) => {
            for (name, e) in [(MANIFEST, m.err()), (SIGNATURE, s.err())] {
                if let Some(e) = e {
                    v.push(violation(
                        ViolationKind::BundleFileMissing,
                        name,
                        "present",
                        e.to_string(),
                    ));
                }
            }
            return Ok(report);
        }
    };
    let contents: Contents = match serde_json::from_slice(&manifest) {
        Ok(c) => c,
        Err(e) => {
            v.push(violation(
                ViolationKind::BundleManifestUnreadable,
                MANIFEST,
                "the package's JSON",
                e.to_string(),
            ));
            return Ok(report);
        }
    };
    let as_of = DateTime::parse_from_rfc3339(&contents.records_as_of)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    bundle::check_seal(dir, &SEAL, &manifest, &signature, as_of, keys, v);

    // Every file listed, re-hashed once; and no file that is not listed.
    let sums = std::fs::read_to_string(dir.join(SUMS)).unwrap_or_default();
    let mut hashed: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for line in sums.lines() {
        let Some((sha, path)) = line.split_once("  ") else {
            v.push(violation(
                ViolationKind::BundleManifestUnreadable,
                SUMS,
                "`<sha256>  <path>` lines",
                line,
            ));
            continue;
        };
        if path.starts_with('/') || path.split('/').any(|p| p.is_empty() || p == "..") {
            v.push(violation(
                ViolationKind::BundleManifestUnreadable,
                SUMS,
                "a path inside the package",
                path,
            ));
            continue;
        }
        match crate::store::hash_file(&dir.join(path)) {
            Ok((hash, size)) => {
                report.objects_checked += 1;
                report.bytes_hashed += size;
                let hash = hex::encode(hash);
                if hash != sha {
                    v.push(violation(
                        ViolationKind::BundleFileAltered,
                        path,
                        format!("sha256 {sha}"),
                        format!("sha256 {hash}"),
                    ));
                }
                hashed.insert(path.to_string(), (hash, size));
            }
            Err(e) => v.push(violation(
                ViolationKind::BundleFileMissing,
                path,
                format!("sha256 {sha}"),
                e.to_string(),
            )),
        }
    }
    let listed: BTreeSet<&str> = sums
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(_, p)| p))
        .chain([SUMS, SIGNATURE])
        .collect();
    let mut present = Vec::new();
    walk(dir, "", &mut present)?;
    for path in present.iter().filter(|p| !listed.contains(p.as_str())) {
        v.push(violation(
            ViolationKind::PackageStrayFile,
            path,
            "only the files SHA256SUMS lists",
            "a file the package does not list",
        ));
    }

    // The checkpoint: signed by a trusted key, naming the head the proofs lead to.
    let root = check_checkpoint(dir, &contents, keys, v);
    report.checkpoints_checked = 1;
    report.ledger_size = contents.checkpoint.tree_size as usize;
    report.ledger_root = contents.checkpoint.root_hash.clone();

    // Each run: its manifest is the leaf the audit path proves, it finished in the period,
    // and it lists objects the package holds unaltered.
    let period = (&contents.period.from, &contents.period.to);
    let mut referenced = BTreeSet::new();
    for run in &contents.runs {
        report.runs_checked += 1;
        let bytes = match std::fs::read(dir.join(&run.manifest)) {
            Ok(b) => b,
            Err(e) => {
                v.push(violation(
                    ViolationKind::ManifestMissing,
                    &run.manifest,
                    format!("the manifest of run {}", run.run_id),
                    e.to_string(),
                ));
                continue;
            }
        };
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if sha != run.manifest_sha256 {
            v.push(violation(
                ViolationKind::ManifestAltered,
                &run.manifest,
                format!("sha256 {}", run.manifest_sha256),
                format!("sha256 {sha}"),
            ));
        }
        if let Some(root) = &root {
            let path: Option<Vec<super::Hash>> =
                run.audit_path.iter().map(|h| super::from_hex(h)).collect();
            let leaf = super::leaf_hash(&bytes);
            let proved = path
                .ok_or_else(|| "a hash is not hex SHA-256".to_string())
                .and_then(|p| {
                    super::verify_inclusion(
                        run.leaf_index,
                        contents.checkpoint.tree_size,
                        &leaf,
                        &p,
                        root,
                    )
                });
            if let Err(e) = proved {
                v.push(violation(
                    ViolationKind::ProofInvalid,
                    &run.manifest,
                    format!(
                        "leaf {} of the checkpoint's {} by its audit path",
                        run.leaf_index, contents.checkpoint.tree_size
                    ),
                    e,
                ));
            }
        }
        let parsed = match super::manifest::read(&bytes) {
            Ok(m) => m,
            Err(e) => {
                v.push(violation(
                    ViolationKind::ManifestUnreadable,
                    &run.manifest,
                    "a run manifest",
                    e.to_string(),
                ));
                continue;
            }
        };
        let time = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc());
        let finished = parsed.finished_at.as_deref().unwrap_or("unknown");
        let in_period = match (time(finished), time(period.0), time(period.1)) {
            (Some(t), Some(from), Some(to)) => from <= t && t < to,
            _ => false,
        };
        if parsed.run_id != run.run_id || finished != run.finished_at || !in_period {
            v.push(violation(
                ViolationKind::PackageOutsidePeriod,
                &run.manifest,
                format!(
                    "run {} finished in [{}, {})",
                    run.run_id, period.0, period.1
                ),
                format!("run {} finished {finished}", parsed.run_id),
            ));
        }
        for item in &parsed.items {
            referenced.insert(item.object_key.clone());
            match hashed.get(&item.object_key) {
                Some((sha, size)) if *sha == item.sha256 && *size as i64 == item.size => {}
                Some((sha, size)) => v.push(violation(
                    ViolationKind::ObjectAltered,
                    &item.object_key,
                    format!("sha256 {}, {} bytes", item.sha256, item.size),
                    format!("sha256 {sha}, {size} bytes"),
                )),
                None => v.push(violation(
                    ViolationKind::ObjectMissing,
                    &item.object_key,
                    format!("{} of run {}", item.name, run.run_id),
                    "not in the package",
                )),
            }
        }
    }
    let runs: BTreeSet<&str> = contents.runs.iter().map(|r| r.manifest.as_str()).collect();
    for path in &present {
        let stray = (path.starts_with("objects/") && !referenced.contains(path))
            || (path.starts_with("runs/") && !runs.contains(path.as_str()));
        if stray {
            v.push(violation(
                ViolationKind::PackageStrayFile,
                path,
                "only what the period's manifests list",
                "a file no run of the period lists",
            ));
        }
    }
    report.objects_in_store = referenced.len();

    // The report bundle, sealed on its own.
    let inner = bundle::check(&dir.join(REPORT), keys)?;
    for mut violation in inner.violations {
        violation.location = format!("{REPORT}/{}", violation.location);
        v.push(violation);
    }
    Ok(report)
}

/// Checks `checkpoint.txt` and the consistency proof from the previous export; the root the
/// audit paths lead to when the checkpoint is the one `package.json` names.
fn check_checkpoint(
    dir: &Path,
    contents: &Contents,
    keys: &[TrustedKey],
    v: &mut Vec<super::verify::Violation>,
) -> Option<super::Hash> {
    let text = match std::fs::read_to_string(dir.join(CHECKPOINT)) {
        Ok(t) => t,
        Err(e) => {
            v.push(violation(
                ViolationKind::CheckpointMissing,
                CHECKPOINT,
                "the signed checkpoint",
                e.to_string(),
            ));
            return None;
        }
    };
    let note = match note::SignedNote::parse(&text) {
        Ok(n) => n,
        Err(e) => {
            v.push(violation(
                ViolationKind::CheckpointUnreadable,
                CHECKPOINT,
                "a signed note",
                e,
            ));
            return None;
        }
    };
    let verifiers: Vec<note::Verifier> = keys.iter().map(|k| k.verifier.clone()).collect();
    match note.verified_by(&verifiers) {
        Err(e) => v.push(violation(
            ViolationKind::CheckpointSignatureInvalid,
            CHECKPOINT,
            "a valid signature",
            e,
        )),
        Ok(signers) if signers.is_empty() => v.push(violation(
            ViolationKind::CheckpointUnknownKey,
            CHECKPOINT,
            "a signature by a key in the verifier file",
            "none",
        )),
        Ok(_) => {}
    }
    let head = &contents.checkpoint;
    let root = super::from_hex(&head.root_hash);
    let named = root.map(|r| super::checkpoint_text(&head.origin, head.tree_size, &r));
    let Some(root) = root.filter(|_| named.as_deref() == Some(note.text.as_str())) else {
        v.push(violation(
            ViolationKind::CheckpointAltered,
            CHECKPOINT,
            format!(
                "the tree head of package.json ({} leaves, root {})",
                head.tree_size, head.root_hash
            ),
            note.text.lines().take(3).collect::<Vec<_>>().join(" "),
        ));
        return None;
    };
    if let Some(p) = &contents.previous {
        let old = super::from_hex(&p.root_hash);
        let proof: Option<Vec<super::Hash>> = p.proof.iter().map(|h| super::from_hex(h)).collect();
        let checked = match (old, proof) {
            (Some(old), Some(proof)) => {
                super::verify_consistency(p.tree_size, head.tree_size, &old, &root, &proof)
            }
            _ => Err("a hash is not hex SHA-256".into()),
        };
        if let Err(e) = checked {
            v.push(violation(
                ViolationKind::CheckpointInconsistent,
                MANIFEST,
                format!(
                    "the tree of {} leaves extends the previous export's of {}",
                    head.tree_size, p.tree_size
                ),
                e,
            ));
        }
    }
    Some(root)
}

/// Every file under `dir`, as `/`-separated paths relative to the package.
pub fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The package as one `.tar.zst`: entries sorted by path, with no times, owners or modes of
/// this machine, so the same package gives the same bytes.
pub fn write_archive(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = tempfile::NamedTempFile::new_in(parent.unwrap_or(Path::new(".")))?;
    let encoder = zstd::Encoder::new(tmp.as_file(), 3)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut paths = Vec::new();
    walk(dir, "", &mut paths)?;
    for path in paths {
        tar.append_path_with_name(dir.join(&path), &path)
            .with_context(|| format!("cannot add {path} to the archive"))?;
    }
    tar.into_inner()?.finish()?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(out)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

/// Unpacks an archive `write_archive` wrote into a temporary folder, for checking. Entries
/// that would land outside it are refused by the tar reader.
pub fn unpack(archive: &Path) -> anyhow::Result<tempfile::TempDir> {
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot read {}", archive.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("annexa-package-")
        .tempdir()?;
    tar::Archive::new(zstd::Decoder::new(file)?)
        .unpack(dir.path())
        .with_context(|| format!("{} is not a .tar.zst package", archive.display()))?;
    Ok(dir)
}
