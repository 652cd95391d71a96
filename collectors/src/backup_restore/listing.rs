//! Listing the backups (a folder or an S3 prefix) with their hashes, and fetching the newest
//! one for a drill.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{BackupFile, BackupRestore, glob, s3, unavailable};
use crate::CollectError;

impl BackupRestore {
    /// The backups and their sidecar hashes (name → hex).
    pub(super) async fn list(
        &self,
        previous: &[BackupFile],
    ) -> Result<Vec<BackupFile>, CollectError> {
        let mut found: Vec<(String, u64, DateTime<Utc>)> = Vec::new();
        let mut sidecars = BTreeMap::new();
        if let Some(dir) = &self.config.path {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                unavailable(dir.display().to_string(), format!("{e}; check `path`"))
            })?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(meta) = e.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                if let Some(of) = name.strip_suffix(".sha256") {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        sidecars.insert(of.to_string(), text);
                    }
                } else if glob(&self.config.pattern, &name) {
                    let modified = meta
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_else(|_| Utc::now());
                    found.push((name, meta.len(), modified));
                }
            }
        } else if let Some(loc) = &self.config.s3 {
            (found, sidecars) =
                s3::list(loc, &self.config.pattern, &super::s3_location(loc)).await?;
        }
        found.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
        let mut backups = Vec::new();
        for (name, size, modified) in found {
            let (sha256, source) = if let Some(text) = sidecars.get(&name) {
                (
                    text.split_whitespace()
                        .next()
                        .map(|h| h.to_ascii_lowercase()),
                    Some("sidecar".to_string()),
                )
            } else if let Some(p) = previous
                .iter()
                .find(|p| p.name == name && p.size == size && p.modified == modified)
            {
                (p.sha256.clone(), p.sha256_source.clone())
            } else if let Some(dir) = &self.config.path {
                let path = dir.join(&name);
                let hash = tokio::task::spawn_blocking(move || hash_path(&path))
                    .await
                    .ok()
                    .and_then(|r| r.ok());
                (hash, Some("computed".to_string()))
            } else {
                // S3 objects are hashed when drilled (streamed), not on every listing.
                (None, None)
            };
            backups.push(BackupFile {
                name,
                size,
                modified,
                sha256,
                sha256_source: source,
            });
        }
        Ok(backups)
    }

    /// The newest backup as a local file in `scratch` (downloaded by streaming from S3), and its
    /// SHA-256 computed on the way.
    pub(super) async fn fetch(
        &self,
        backup: &BackupFile,
        scratch: &Path,
    ) -> Result<(PathBuf, String), String> {
        if let Some(dir) = &self.config.path {
            let path = dir.join(&backup.name);
            let p = path.clone();
            let hash = tokio::task::spawn_blocking(move || hash_path(&p))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            return Ok((path, hash));
        }
        let loc = self.config.s3.as_ref().expect("path or s3");
        let target = scratch.join(&backup.name);
        let sha256 = s3::download(loc, &backup.name, &target).await?;
        Ok((target, sha256))
    }
}

pub(super) fn hash_path(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}
