//! Backups in an S3 prefix need the `s3` feature; without it, saying so is all this does.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{S3Location, unavailable};
use crate::CollectError;

/// Backups found: (name, size, modified).
pub(super) type Found = Vec<(String, u64, DateTime<Utc>)>;

pub(super) const NOT_IN_THIS_BUILD: &str =
    "backups in S3 are not available in this build: rebuild annexa with `--features s3`";

pub(super) async fn list(
    _loc: &S3Location,
    _pattern: &str,
    location: &str,
) -> Result<(Found, BTreeMap<String, String>), CollectError> {
    Err(unavailable(location, NOT_IN_THIS_BUILD))
}

pub(super) async fn download(
    _loc: &S3Location,
    _name: &str,
    _target: &Path,
) -> Result<String, String> {
    Err(NOT_IN_THIS_BUILD.to_string())
}
