//! Backups in an S3 prefix (the `s3` feature): listing with sidecar hashes, and a streamed
//! download hashed on the way.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{S3Location, glob, unavailable};
use crate::CollectError;

/// Backups found: (name, size, modified).
pub(super) type Found = Vec<(String, u64, DateTime<Utc>)>;

async fn s3_client(loc: &S3Location) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(loc.region.clone()))
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    if let Some(e) = &loc.endpoint {
        loader = loader.endpoint_url(e);
    }
    let shared = loader.load().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(loc.path_style)
            .build(),
    )
}

/// The backups under the prefix that match `pattern`, and the sidecar hashes (name → text).
pub(super) async fn list(
    loc: &S3Location,
    pattern: &str,
    location: &str,
) -> Result<(Found, BTreeMap<String, String>), CollectError> {
    let mut found = Vec::new();
    let mut sidecars = BTreeMap::new();
    let client = s3_client(loc).await;
    let mut pages = client
        .list_objects_v2()
        .bucket(&loc.bucket)
        .prefix(&loc.prefix)
        .into_paginator()
        .send();
    let mut sidecar_keys = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            unavailable(
                location,
                aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            )
        })?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let name = key
                .strip_prefix(&loc.prefix)
                .unwrap_or(key)
                .trim_start_matches('/')
                .to_string();
            if name.ends_with(".sha256") {
                sidecar_keys.push((
                    key.to_string(),
                    name.trim_end_matches(".sha256").to_string(),
                ));
            } else if glob(pattern, &name) {
                let modified = o
                    .last_modified()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
                    .unwrap_or_else(Utc::now);
                found.push((name, o.size().unwrap_or(0).max(0) as u64, modified));
            }
        }
    }
    for (key, of) in sidecar_keys {
        if let Ok(out) = client
            .get_object()
            .bucket(&loc.bucket)
            .key(&key)
            .send()
            .await
            && let Ok(bytes) = out.body.collect().await
        {
            sidecars.insert(
                of,
                String::from_utf8_lossy(&bytes.into_bytes()).into_owned(),
            );
        }
    }
    Ok((found, sidecars))
}

/// Streams the backup `name` into `target`; returns its SHA-256 (hex).
pub(super) async fn download(
    loc: &S3Location,
    name: &str,
    target: &Path,
) -> Result<String, String> {
    let client = s3_client(loc).await;
    let key = if loc.prefix.is_empty() {
        name.to_string()
    } else {
        format!("{}/{}", loc.prefix.trim_end_matches('/'), name)
    };
    let out = client
        .get_object()
        .bucket(&loc.bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())?;
    let mut file = std::fs::File::create(target).map_err(|e| e.to_string())?;
    let mut body = out.body;
    let mut hasher = Sha256::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        hasher.update(&chunk);
        file.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    Ok(hex::encode(hasher.finalize()))
}
