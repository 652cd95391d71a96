//! The report bundle's seal: `manifest.json` (every file with its SHA-256, size and store key,
//! the period and the checkpoint the report is anchored to), `SHA256SUMS` (the same hashes and
//! the manifest's, for `sha256sum -c`) and `manifest.json.sig`, a signed note over the
//! manifest's SHA-256 and the `SHA256SUMS` file's. Sealed by `annexa report` and checked
//! offline by `annexa verify --bundle`, both here.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::keyring::TrustedKey;
use super::note::{self, NoteKey};
use super::verify::{VerifyReport, ViolationKind, violation};
use crate::base::canonical;

/// The format version of `manifest.json`.
pub const BUNDLE_FORMAT: &str = "annexa-report-bundle/1";
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.json.sig";
/// Every file's SHA-256 and the manifest's, as `sha256sum -c` reads them (signed too).
pub const SUMS: &str = "SHA256SUMS";

/// One file of a bundle, as the manifest lists it.
#[derive(Debug, Serialize)]
pub struct BundleFile {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    /// Where the store keeps this file.
    pub object_key: String,
}

/// A sealed bundle: the manifest's bytes and their SHA-256 (hex), the `SHA256SUMS` file, and
/// the signed note over both hashes.
pub struct Sealed {
    pub manifest: Vec<u8>,
    pub manifest_sha256: String,
    pub sums: Vec<u8>,
    pub signature: String,
}

/// Seals the report `id` over `period` whose files are `files`, signed with `key`.
pub fn seal(
    key: &NoteKey,
    id: &str,
    model: &annexa_reports::Report,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    files: &[BundleFile],
) -> Sealed {
    let manifest = canonical::to_vec(&serde_json::json!({
        "format": BUNDLE_FORMAT,
        "report_id": id,
        "organization": model.organization,
        "period": {"from": annexa_reports::time(from), "to": annexa_reports::time(to)},
        "generated_at": annexa_reports::time(model.generated_at),
        "checkpoint": {
            "origin": model.ledger.origin,
            "tree_size": model.ledger.tree_size,
            "root_hash": model.ledger.root_hash,
            "key_id": model.ledger.key_id,
        },
        "files": files,
    }));
    let files = files.iter().map(|f| (f.sha256.as_str(), f.name.as_str()));
    seal_folder(key, &REPORT_SEAL, id, manifest, files)
}

/// The names of a sealed folder's manifest and signature, and the format its signed note
/// starts with. The sums file is always `SHA256SUMS`.
pub(super) struct SealNames {
    pub format: &'static str,
    pub manifest: &'static str,
    pub signature: &'static str,
}

const REPORT_SEAL: SealNames = SealNames {
    format: BUNDLE_FORMAT,
    manifest: MANIFEST,
    signature: SIGNATURE,
};

/// Seals a folder: `SHA256SUMS` lists `files` (SHA-256 hex, name) and the manifest, and the
/// signed note names `id`, the manifest's SHA-256 and the sums file's.
pub(super) fn seal_folder<'a>(
    key: &NoteKey,
    names: &SealNames,
    id: &str,
    manifest: Vec<u8>,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Sealed {
    let manifest_sha256 = hex::encode(Sha256::digest(&manifest));
    let mut sums = String::new();
    for (sha256, name) in files {
        sums.push_str(&format!("{sha256}  {name}\n"));
    }
    sums.push_str(&format!("{manifest_sha256}  {}\n", names.manifest));
    let sums_sha256 = hex::encode(Sha256::digest(sums.as_bytes()));
    let signature = key.sign_note(&format!(
        "{}\n{id}\nsha256 {manifest_sha256}\nsha256sums {sums_sha256}\n",
        names.format
    ));
    Sealed {
        manifest,
        manifest_sha256,
        sums: sums.into_bytes(),
        signature,
    }
}

/// Verifies a report bundle with nothing but its files and the verifier file: the signature on
/// the manifest (by a key not revoked when the report was made), the manifest's hash, and the
/// hash and size of every file it lists.
pub fn check(dir: &std::path::Path, keys: &[TrustedKey]) -> anyhow::Result<VerifyReport> {
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    let mut report = VerifyReport::empty(format!("bundle {}", dir.display()));
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a folder; pass the folder `annexa report` wrote",
            dir.display()
        );
    }
    let read = |name: &str| std::fs::read(dir.join(name));
    let (manifest, signature) = match (read(MANIFEST), read(SIGNATURE)) {
        (Ok(m), Ok(s)) => (m, String::from_utf8_lossy(&s).into_owned()),
        (m, s) => {
            for (name, r) in [(MANIFEST, m.err()), (SIGNATURE, s.err())] {
                if let Some(e) = r {
                    violations.push(violation(
                        ViolationKind::BundleFileMissing,
                        name,
                        "present",
                        e.to_string(),
                    ));
                }
            }
            report.violations = violations;
            return Ok(report);
        }
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&manifest).ok();
    let generated_at = parsed
        .as_ref()
        .and_then(|m| m["generated_at"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));

    check_seal(
        dir,
        &REPORT_SEAL,
        &manifest,
        &signature,
        generated_at,
        keys,
        &mut violations,
    );

    let files = parsed
        .as_ref()
        .and_then(|m| m["files"].as_array().cloned())
        .unwrap_or_default();
    if parsed.is_none() {
        violations.push(violation(
            ViolationKind::BundleManifestUnreadable,
            MANIFEST,
            "JSON",
            "not JSON",
        ));
    }
    let mut listed = BTreeSet::from([
        MANIFEST.to_string(),
        SIGNATURE.to_string(),
        SUMS.to_string(),
    ]);
    for f in &files {
        let (Some(name), Some(sha), Some(size)) =
            (f["name"].as_str(), f["sha256"].as_str(), f["size"].as_u64())
        else {
            violations.push(violation(
                ViolationKind::BundleManifestUnreadable,
                MANIFEST,
                "name, sha256 and size per file",
                f.to_string(),
            ));
            continue;
        };
        listed.insert(name.to_string());
        if name.contains('/') || name.contains("..") {
            violations.push(violation(
                ViolationKind::BundleManifestUnreadable,
                MANIFEST,
                "a file name",
                name,
            ));
            continue;
        }
        match crate::store::hash_file(&dir.join(name)) {
            Ok((hash, actual_size)) => {
                report.objects_checked += 1;
                report.bytes_hashed += actual_size;
                let hash = hex::encode(hash);
                if hash != sha || actual_size != size {
                    violations.push(violation(
                        ViolationKind::BundleFileAltered,
                        name,
                        format!("sha256 {sha}, {size} bytes"),
                        format!("sha256 {hash}, {actual_size} bytes"),
                    ));
                }
            }
            Err(e) => violations.push(violation(
                ViolationKind::BundleFileMissing,
                name,
                format!("sha256 {sha}"),
                e.to_string(),
            )),
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !listed.contains(&name) {
            notes.push(format!("{name} is in the folder but not in the manifest: it is not part of the signed report"));
        }
    }
    report.violations = violations;
    report.notes = notes;
    Ok(report)
}

/// Checks a folder's seal: the signed note (by a key of `keys`, not revoked at `at`) and the
/// SHA-256 of the manifest and of `SHA256SUMS` that it signs. What does not hold is pushed onto
/// `violations`.
pub(super) fn check_seal(
    dir: &std::path::Path,
    names: &SealNames,
    manifest: &[u8],
    signature: &str,
    at: Option<DateTime<Utc>>,
    keys: &[TrustedKey],
    violations: &mut Vec<super::verify::Violation>,
) {
    let manifest_sha = hex::encode(Sha256::digest(manifest));
    let generated_at = at;
    match note::SignedNote::parse(signature) {
        Err(e) => violations.push(violation(
            ViolationKind::BundleSignatureUnreadable,
            names.signature,
            "a signed note",
            e,
        )),
        Ok(note) => {
            let verifiers: Vec<note::Verifier> = keys.iter().map(|k| k.verifier.clone()).collect();
            match note.verified_by(&verifiers) {
                Err(e) => violations.push(violation(
                    ViolationKind::BundleSignatureInvalid,
                    names.signature,
                    "a valid signature",
                    e,
                )),
                Ok(signers) if signers.is_empty() => violations.push(violation(
                    ViolationKind::BundleUnknownKey,
                    names.signature,
                    "a signature by a key in the verifier file",
                    note.signatures
                        .iter()
                        .map(|(n, id, _)| format!("{n} {}", hex::encode(id)))
                        .collect::<Vec<_>>()
                        .join(", "),
                )),
                Ok(signers) => {
                    for v in signers {
                        let revoked = keys
                            .iter()
                            .find(|k| k.verifier.id == v.id)
                            .and_then(|k| k.revoked_at);
                        if let Some(revoked) = revoked
                            && generated_at.is_none_or(|g| g >= revoked)
                        {
                            violations.push(violation(
                                ViolationKind::BundleSignedByRevokedKey,
                                names.signature,
                                format!(
                                    "a signature before key {} was revoked ({})",
                                    v.id_hex(),
                                    crate::db::ts(revoked)
                                ),
                                format!(
                                    "a folder sealed {}",
                                    generated_at
                                        .map(crate::db::ts)
                                        .unwrap_or_else(|| "at an unknown time".into())
                                ),
                            ));
                        }
                    }
                }
            }
            let lines: Vec<&str> = note.text.lines().collect();
            // Bundles sealed before SHA256SUMS existed sign only the manifest.
            if let Some(signed) = lines.get(3).and_then(|l| l.strip_prefix("sha256sums ")) {
                match crate::store::hash_file(&dir.join(SUMS)) {
                    Ok((hash, _)) if hex::encode(hash) == signed => {}
                    Ok((hash, _)) => violations.push(violation(
                        ViolationKind::BundleFileAltered,
                        SUMS,
                        format!("sha256 {signed}"),
                        format!("sha256 {}", hex::encode(hash)),
                    )),
                    Err(e) => violations.push(violation(
                        ViolationKind::BundleFileMissing,
                        SUMS,
                        format!("sha256 {signed}"),
                        e.to_string(),
                    )),
                }
            }
            if lines.first() != Some(&names.format)
                || lines.get(2) != Some(&format!("sha256 {manifest_sha}").as_str())
            {
                violations.push(violation(
                    ViolationKind::BundleManifestAltered,
                    names.manifest,
                    lines
                        .get(2)
                        .copied()
                        .unwrap_or("the signed hash")
                        .to_string(),
                    format!("sha256 {manifest_sha}"),
                ));
            }
        }
    }
}
