//! `[store]`: the local folder (default) or an S3-compatible bucket.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::{ObjectLock, S3Config, StoreConfig};

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawStore {
    kind: Option<String>,
    path: Option<PathBuf>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
    multipart_threshold_mib: Option<u64>,
    part_size_mib: Option<u64>,
    object_lock_mode: Option<String>,
    object_lock_days: Option<u32>,
    retry_attempts: Option<u32>,
}

pub(super) fn validate_store(
    raw: RawStore,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<String>,
) -> Option<StoreConfig> {
    match raw.kind.as_deref().unwrap_or("fs") {
        "fs" => {
            for (key, set) in [
                ("endpoint", raw.endpoint.is_some()),
                ("bucket", raw.bucket.is_some()),
                ("region", raw.region.is_some()),
                ("object_lock_mode", raw.object_lock_mode.is_some()),
                ("object_lock_days", raw.object_lock_days.is_some()),
                ("retry_attempts", raw.retry_attempts.is_some()),
            ] {
                if set {
                    problems.push(format!("store.{key} applies only to kind = \"s3\""));
                }
            }
            Some(StoreConfig::Fs {
                path: resolve(&raw.path.unwrap_or_else(|| PathBuf::from("data/store"))),
            })
        }
        "s3" => {
            if !cfg!(feature = "s3") {
                problems.push(
                    "store kind \"s3\" is not available in this build: rebuild with `--features s3`"
                        .to_string(),
                );
            }
            if raw.path.is_some() {
                problems
                    .push("store.path applies only to kind = \"fs\"; use store.prefix".to_string());
            }
            let Some(bucket) = raw.bucket else {
                problems.push("store.bucket is required when store.kind = \"s3\"".to_string());
                return None;
            };
            if let Some(e) = &raw.endpoint
                && url::Url::parse(e).is_err()
            {
                problems.push(format!(
                    "store.endpoint `{e}` is not a URL (e.g. http://127.0.0.1:9000)"
                ));
            }
            let mib = |v: Option<u64>, default: u64| v.unwrap_or(default) * 1024 * 1024;
            let part_size = mib(raw.part_size_mib, 16);
            if part_size < 5 * 1024 * 1024 {
                problems.push(
                    "store.part_size_mib must be at least 5 (S3's smallest part)".to_string(),
                );
            }
            let object_lock = match (raw.object_lock_mode, raw.object_lock_days) {
                (None, None) => None,
                (Some(mode), days) => {
                    let mode = mode.to_ascii_uppercase();
                    if mode != "GOVERNANCE" && mode != "COMPLIANCE" {
                        problems.push(format!(
                            "store.object_lock_mode `{mode}` is unknown: use \"GOVERNANCE\" or \"COMPLIANCE\""
                        ));
                    }
                    let days = days.unwrap_or(0);
                    if days == 0 {
                        problems.push(
                            "store.object_lock_days must be at least 1 when store.object_lock_mode is set"
                                .to_string(),
                        );
                    }
                    Some(ObjectLock { mode, days })
                }
                (None, Some(_)) => {
                    problems.push(
                        "store.object_lock_days needs store.object_lock_mode (\"GOVERNANCE\" or \"COMPLIANCE\")"
                            .to_string(),
                    );
                    None
                }
            };
            let retry_attempts = raw.retry_attempts.unwrap_or(5);
            if retry_attempts == 0 {
                problems.push("store.retry_attempts must be at least 1".to_string());
            }
            Some(StoreConfig::S3(S3Config {
                retry_attempts,
                object_lock,
                endpoint: raw.endpoint,
                region: raw.region.unwrap_or_else(|| "us-east-1".to_string()),
                bucket,
                prefix: raw.prefix.unwrap_or_default().trim_matches('/').to_string(),
                path_style: raw.path_style.unwrap_or(true),
                multipart_threshold: mib(raw.multipart_threshold_mib, 64),
                part_size,
                static_credentials: None,
            }))
        }
        other => {
            problems.push(format!(
                "store.kind `{other}` is unknown: use \"fs\" or \"s3\""
            ));
            None
        }
    }
}
