//! The store's own settings; `config` builds them from `[store]`.

use std::path::PathBuf;

use crate::base::Secret;

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Fs { path: PathBuf },
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Prepended to every key, without a trailing slash; empty for none.
    pub prefix: String,
    pub path_style: bool,
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// An access key id and secret given by a program embedding annexa. The config file never
    /// sets this: there, credentials come from the AWS environment variables or profile files.
    pub static_credentials: Option<(String, Secret<String>)>,
    /// Attempts per request before a call fails (with exponential backoff and jitter between).
    pub retry_attempts: u32,
    /// S3 Object Lock retention set on every object written.
    pub object_lock: Option<ObjectLock>,
}

/// An Object Lock retention: `GOVERNANCE` or `COMPLIANCE`, for a number of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLock {
    pub mode: String,
    pub days: u32,
}
