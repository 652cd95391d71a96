//! The S3-compatible backend (aws-sdk-s3).
//!
//! annexa computes each object's SHA-256 itself, then uploads under that key with
//! `If-None-Match: *` and `x-amz-checksum-sha256`, so the store rejects bytes that do not match
//! and never replaces an existing object. Files above the multipart threshold go in parts, each
//! with its own SHA-256. Some stores ignore `If-None-Match`, so after every write annexa reads
//! the stored checksum back (HEAD with checksum mode) and fails loudly on a mismatch.
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`, …) or the AWS profile files,
//! never from the config file and never from instance metadata.

use std::path::Path;
use std::time::Duration;

/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

use annexa_collectors::Body;
use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::S3Config;
use super::{StoreError, StoredObject, blocking, check_key, hash_file, object_key};

/// An error and its sources, "a: b: c", without repeats (SDK errors repeat their source).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

pub struct S3Store {
    client: Client,
    config: S3Config,
    location: String,
}

/// How long a re-hash keeps trying an object the store fails to return, beyond the client's
/// own retries of each request.
const RIDE_OUT: Duration = Duration::from_secs(10);

/// An object re-hashed so far: what a resumed read continues from.
struct Partial {
    hasher: Sha256,
    size: u64,
    /// Its length, from the first response.
    total: Option<u64>,
}

/// What a HEAD says of an existing object.
struct Head {
    checksum_sha256: Option<String>,
}

impl S3Store {
    pub async fn open(config: &S3Config) -> Result<S3Store, StoreError> {
        let credentials = CredentialsProviderChain::first_try(
            "environment",
            EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("profile", ProfileFileCredentialsProvider::builder().build());
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()));
        loader = match &config.static_credentials {
            Some((id, secret)) => loader.credentials_provider(
                aws_sdk_s3::config::Credentials::new(id, secret.expose(), None, None, "annexa"),
            ),
            None => loader.credentials_provider(credentials),
        };
        // A short outage (a restart, a failover) is ridden out here: five attempts with
        // exponential backoff and jitter, up to about half a minute. A longer one fails the run,
        // and the scheduler retries the slot within its grace.
        loader = loader
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(config.retry_attempts.max(1))
                    .with_initial_backoff(Duration::from_secs(1))
                    .with_max_backoff(Duration::from_secs(16)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(config.path_style)
            // annexa re-hashes what it reads itself and reports a mismatch as an integrity
            // violation; the SDK's own check would turn it into an opaque streaming error.
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build();
        let location = format!(
            "s3://{}/{}{} at {}",
            config.bucket,
            config.prefix,
            if config.prefix.is_empty() { "" } else { "/" },
            config
                .endpoint
                .as_deref()
                .unwrap_or("the AWS default endpoint")
        );
        let store = S3Store {
            client: Client::from_conf(s3_config),
            config: config.clone(),
            location,
        };
        store
            .client
            .head_bucket()
            .bucket(&store.config.bucket)
            .send()
            .await
            .map_err(|e| match store.classify(e, "") {
                StoreError::NotFound { .. } => StoreError::NoSuchBucket {
                    location: store.location.clone(),
                    bucket: store.config.bucket.clone(),
                },
                other => other,
            })?;
        if store.config.object_lock.is_some() {
            let enabled = store
                .client
                .get_object_lock_configuration()
                .bucket(&store.config.bucket)
                .send()
                .await
                .ok()
                .and_then(|o| o.object_lock_configuration)
                .and_then(|c| c.object_lock_enabled)
                .is_some_and(|e| e == aws_sdk_s3::types::ObjectLockEnabled::Enabled);
            if !enabled {
                return Err(StoreError::Other {
                    location: store.location.clone(),
                    reason: format!(
                        "store.object_lock_mode is set, but bucket `{}` does not have Object Lock enabled; \
                         create the bucket with Object Lock, or remove store.object_lock_mode",
                        store.config.bucket
                    ),
                });
            }
        }
        Ok(store)
    }

    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// The Object Lock mode objects are written with, when configured.
    fn lock_mode(&self) -> Option<aws_sdk_s3::types::ObjectLockMode> {
        self.config
            .object_lock
            .as_ref()
            .map(|l| aws_sdk_s3::types::ObjectLockMode::from(l.mode.as_str()))
    }

    /// The Content-MD5 that some stores (moto) demand on a write with Object Lock headers;
    /// none when Object Lock is off.
    async fn lock_md5(&self, body: &Body) -> Result<Option<String>, StoreError> {
        use md5::Digest as _;
        if self.config.object_lock.is_none() {
            return Ok(None);
        }
        let digest = match body {
            Body::Bytes(b) => md5::Md5::digest(b).to_vec(),
            Body::File(path) => {
                let path = path.clone();
                blocking(move || {
                    let mut file = std::fs::File::open(&path).map_err(|e| StoreError::Io {
                        location: path.display().to_string(),
                        cause: e,
                    })?;
                    let mut hasher = md5::Md5::new();
                    let mut buf = vec![0u8; super::CHUNK];
                    loop {
                        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| {
                            StoreError::Io {
                                location: path.display().to_string(),
                                cause: e,
                            }
                        })?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                    }
                    Ok(hasher.finalize().to_vec())
                })
                .await?
            }
        };
        Ok(Some(BASE64.encode(digest)))
    }

    /// Until when a new object is retained: now plus the configured days.
    fn retain_until(&self) -> Option<aws_sdk_s3::primitives::DateTime> {
        self.config.object_lock.as_ref().map(|l| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs() as i64;
            aws_sdk_s3::primitives::DateTime::from_secs(now + i64::from(l.days) * 86_400)
        })
    }

    fn full_key(&self, key: &str) -> String {
        if self.config.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.config.prefix)
        }
    }

    fn classify<E>(
        &self,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
        key: &str,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let location = self.location.clone();
        if matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) {
            return StoreError::Unreachable {
                location,
                reason: error_chain(&err),
            };
        }
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err
            .as_service_error()
            .and_then(|e| e.code())
            .map(str::to_string);
        let reason = match (status, &code) {
            (Some(s), Some(c)) => format!("HTTP {s} {c}"),
            (Some(s), None) => format!("HTTP {s}"),
            _ => DisplayErrorContext(&err).to_string(),
        };
        match (status, code.as_deref()) {
            (_, Some("NoSuchBucket")) => StoreError::NoSuchBucket {
                location,
                bucket: self.config.bucket.clone(),
            },
            (Some(401 | 403), _)
            | (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied")) => {
                StoreError::Unauthorized { location, reason }
            }
            (Some(404), _) | (_, Some("NoSuchKey" | "NotFound")) => StoreError::NotFound {
                key: key.to_string(),
            },
            _ => StoreError::Other { location, reason },
        }
    }

    async fn head(&self, key: &str) -> Result<Option<Head>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.config.bucket)
            .key(self.full_key(key))
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Head {
                checksum_sha256: out.checksum_sha256().map(str::to_string),
            })),
            Err(e) => match self.classify(e, key) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Confirms that `key` holds one of the accepted checksums. A store that returns no
    /// checksum is taken at its word; one that returns another fails loudly.
    async fn confirm(&self, key: &str, accepted: &[&str]) -> Result<(), StoreError> {
        match self.head(key).await? {
            None => Err(StoreError::NotFound {
                key: key.to_string(),
            }),
            Some(Head {
                checksum_sha256: Some(actual),
            }) if !accepted.contains(&actual.as_str()) => Err(StoreError::ChecksumMismatch {
                key: key.to_string(),
                expected: accepted.join(" or "),
                actual,
            }),
            Some(_) => Ok(()),
        }
    }

    pub async fn put_object(&self, body: &Body) -> Result<StoredObject, StoreError> {
        let Body::File(path) = body else {
            return self.put_unchecked(body).await;
        };
        // A file that changes while it is hashed and sent fails naming it, whether the server
        // refused the bytes (they no longer matched the hash sent with them) or took them.
        let stamp = || std::fs::metadata(path).map(|m| (m.len(), m.modified().ok()));
        let before = stamp();
        let put = self.put_unchecked(body).await;
        let after = stamp();
        let read = match &put {
            Ok(object) => Some(object.size),
            Err(_) => None,
        };
        let unchanged = before.is_ok()
            && before.as_ref().ok() == after.as_ref().ok()
            && read.is_none_or(|n| after.as_ref().is_ok_and(|(len, _)| *len == n));
        if !unchanged {
            return Err(super::changed_while_read(
                path,
                format!(
                    "{} bytes when opened, {} now",
                    before.map_or_else(|e| e.to_string(), |(n, _)| n.to_string()),
                    after.map_or_else(|e| e.to_string(), |(n, _)| n.to_string())
                ),
            ));
        }
        put
    }

    async fn put_unchecked(&self, body: &Body) -> Result<StoredObject, StoreError> {
        let (digest, size) = match body {
            Body::Bytes(b) => (Sha256::digest(b).into(), b.len() as u64),
            Body::File(path) => {
                let path = path.clone();
                blocking(move || {
                    hash_file(&path).map_err(|e| StoreError::Source {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })
                })
                .await?
            }
        };
        let sha256 = hex::encode(digest);
        let key = object_key(&sha256);
        let object = StoredObject { key, sha256, size };
        if self.head(&object.key).await?.is_some() {
            // Content-addressed: the same key is the same bytes (verify re-hashes it).
            return Ok(object);
        }
        match body {
            Body::File(path) if size > self.config.multipart_threshold => {
                self.put_multipart(&object.key, path, size, &BASE64.encode(digest))
                    .await?;
            }
            _ => {
                let stream = match body {
                    Body::Bytes(b) => ByteStream::from(b.clone()),
                    Body::File(path) => {
                        ByteStream::from_path(path)
                            .await
                            .map_err(|e| StoreError::Source {
                                path: path.display().to_string(),
                                reason: e.to_string(),
                            })?
                    }
                };
                let b64 = BASE64.encode(digest);
                let md5 = self.lock_md5(body).await?;
                self.put_once(&object.key, stream, &b64, md5).await?;
                self.confirm(&object.key, &[&b64]).await?;
            }
        }
        Ok(object)
    }

    pub async fn put_named(&self, key: &str, bytes: &[u8]) -> Result<StoredObject, StoreError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        self.put_named_body(
            key,
            &Body::Bytes(bytes.to_vec()),
            digest,
            bytes.len() as u64,
        )
        .await
    }

    /// A named document from a file whose SHA-256 and size the caller computed as it wrote it.
    pub async fn put_named_body(
        &self,
        key: &str,
        body: &Body,
        digest: [u8; 32],
        size: u64,
    ) -> Result<StoredObject, StoreError> {
        check_key(key)?;
        let b64 = BASE64.encode(digest);
        let object = StoredObject {
            key: key.to_string(),
            sha256: hex::encode(digest),
            size,
        };
        if self.head(key).await?.is_some() {
            return match self.confirm(key, &[&b64]).await {
                Err(StoreError::ChecksumMismatch { .. }) => Err(StoreError::Conflict {
                    key: key.to_string(),
                }),
                other => other.map(|()| object),
            };
        }
        let md5 = self.lock_md5(body).await?;
        let stream = match body {
            Body::Bytes(b) => ByteStream::from(b.clone()),
            Body::File(path) => {
                ByteStream::from_path(path)
                    .await
                    .map_err(|e| StoreError::Other {
                        location: path.display().to_string(),
                        reason: e.to_string(),
                    })?
            }
        };
        self.put_once(key, stream, &b64, md5).await?;
        self.confirm(key, &[&b64]).await?;
        Ok(object)
    }

    /// One PutObject with `If-None-Match: *`. A 412 means the key exists: confirmed by the
    /// caller's checksum read-back.
    async fn put_once(
        &self,
        key: &str,
        body: ByteStream,
        checksum_b64: &str,
        content_md5: Option<String>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.config.bucket)
            .key(self.full_key(key))
            .body(body)
            .checksum_sha256(checksum_b64)
            .if_none_match("*")
            .set_object_lock_mode(self.lock_mode())
            .set_object_lock_retain_until_date(self.retain_until())
            .set_content_md5(content_md5)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => Ok(()),
            Err(e) => Err(self.classify(e, key)),
        }
    }

    async fn put_multipart(
        &self,
        key: &str,
        path: &std::path::Path,
        size: u64,
        whole_b64: &str,
    ) -> Result<(), StoreError> {
        let full_key = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.config.bucket)
            .key(&full_key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_object_lock_mode(self.lock_mode())
            .set_object_lock_retain_until_date(self.retain_until())
            .send()
            .await
            .map_err(|e| self.classify(e, key))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = self
            .upload_parts(key, &full_key, &upload_id, path, size, whole_b64)
            .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.config.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    /// Uploads the parts of one large object, several at once (each a `part_size` buffer).
    async fn upload_parts(
        &self,
        key: &str,
        full_key: &str,
        upload_id: &str,
        path: &std::path::Path,
        size: u64,
        whole_b64: &str,
    ) -> Result<(), StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let source = |e: std::io::Error| StoreError::Source {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let part_size = self.config.part_size;
        let count = size.div_ceil(part_size);
        // Parts are read at their offsets and uploaded PARTS_IN_FLIGHT at a time, in order.
        let upload = |number: u64| async move {
            use tokio::io::AsyncSeekExt;
            let offset = (number - 1) * part_size;
            let len = part_size.min(size - offset) as usize;
            let mut file = tokio::fs::File::open(path).await.map_err(source)?;
            file.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(source)?;
            let mut buf = vec![0u8; len];
            file.read_exact(&mut buf).await.map_err(source)?;
            let digest = Sha256::digest(&buf);
            let b64 = BASE64.encode(digest);
            let out = self
                .client
                .upload_part()
                .bucket(&self.config.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .checksum_sha256(&b64)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| self.classify(e, key))?;
            let part = CompletedPart::builder()
                .part_number(number as i32)
                .set_e_tag(out.e_tag().map(str::to_string))
                .checksum_sha256(b64)
                .build();
            Ok::<_, StoreError>((digest, part))
        };
        let uploaded: Vec<_> = futures::stream::iter(1..=count)
            .map(upload)
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await?;
        let mut part_digests = Sha256::new();
        let mut parts = Vec::new();
        for (digest, part) in uploaded {
            part_digests.update(digest);
            parts.push(part);
        }
        let number = count + 1;
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.config.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .if_none_match("*")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => return Ok(()),
            Err(e) => return Err(self.classify(e, key)),
        }
        // S3 stores a multipart object's checksum as the checksum of its part checksums with
        // the part count; some servers store the whole object's checksum instead.
        let composite = format!("{}-{}", BASE64.encode(part_digests.finalize()), number - 1);
        self.confirm(key, &[&composite, whole_b64]).await
    }

    /// One GET of the whole object.
    async fn get(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(&self.config.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.classify(e, key))
    }

    pub async fn read(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self.get(key).await?;
        let bytes = out.body.collect().await.map_err(|e| StoreError::Other {
            location: self.location.clone(),
            reason: format!("reading {key}: {e}"),
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// Streams an object into the new file `dst`, hashing it on the way.
    pub async fn copy_to(&self, key: &str, dst: &Path) -> Result<(String, u64), StoreError> {
        use tokio::io::AsyncWriteExt;
        let out = self.get(key).await?;
        let local = |cause| StoreError::Io {
            location: dst.display().to_string(),
            cause,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dst)
            .await
            .map_err(local)?;
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        let mut body = out.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Unreachable {
                location: self.location.clone(),
                reason: format!("reading {key} was cut off at byte {size}: {e}"),
            })?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)?;
        Ok((hex::encode(hasher.finalize()), size))
    }

    /// Re-hashes an object by streaming its body into SHA-256. Each request is retried by the
    /// client (5xx, timeouts, refused connections); beyond that, a read that fails or is cut
    /// off is tried again for [`RIDE_OUT`] (a restart, a failover), resuming with a ranged GET
    /// from the byte it reached, so a large object is never read twice.
    pub async fn hash(&self, key: &str) -> Result<(String, u64), StoreError> {
        let mut read = Partial {
            hasher: Sha256::new(),
            size: 0,
            total: None,
        };
        let deadline = tokio::time::Instant::now() + RIDE_OUT;
        let mut wait = Duration::from_millis(250);
        loop {
            match self.hash_from(key, &mut read).await {
                Ok(()) => return Ok((hex::encode(read.hasher.finalize()), read.size)),
                Err(StoreError::Unreachable { .. } | StoreError::Other { .. })
                    if tokio::time::Instant::now() + wait < deadline =>
                {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One GET of what `read` has not hashed yet, streamed into it.
    async fn hash_from(&self, key: &str, read: &mut Partial) -> Result<(), StoreError> {
        if read.total == Some(read.size) {
            return Ok(());
        }
        let mut request = self
            .client
            .get_object()
            .bucket(&self.config.bucket)
            .key(self.full_key(key));
        if read.size > 0 {
            request = request.range(format!("bytes={}-", read.size));
        }
        let out = request.send().await.map_err(|e| self.classify(e, key))?;
        if read.total.is_none() {
            read.total = out.content_length().and_then(|n| u64::try_from(n).ok());
        }
        let mut body = out.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Unreachable {
                location: self.location.clone(),
                reason: format!("reading {key} was cut off at byte {}: {e}", read.size),
            })?;
            read.hasher.update(&chunk);
            read.size += chunk.len() as u64;
        }
        Ok(())
    }

    /// Re-hashes `keys` with `concurrency` reads in flight. After the client's retries, an
    /// object that stays unreadable is its own error; but once as many objects in a row as
    /// twice the reads in flight (or every one of several) could not be reached, the store has
    /// gone away and the call fails, rather than trying each remaining object.
    pub async fn hash_all(
        &self,
        keys: &[String],
        concurrency: usize,
        progress: indicatif::ProgressBar,
    ) -> Result<Vec<super::HashResult>, StoreError> {
        use futures::StreamExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let unreachable_in_a_row = AtomicUsize::new(0);
        let give_up = (2 * concurrency).max(16);
        let mut results: Vec<(usize, super::HashResult)> =
            // By index: a closure over `&String` makes the future not `Send` for every lifetime.
            futures::stream::iter(0..keys.len())
                .map(|i| {
                    let key = &keys[i];
                    let (progress, unreachable_in_a_row) = (&progress, &unreachable_in_a_row);
                    async move {
                        if unreachable_in_a_row.load(Ordering::Relaxed) >= give_up {
                            // Not tried: the call fails below.
                            return (i, Err(StoreError::NotFound { key: String::new() }));
                        }
                        let r = self.hash(key).await;
                        match &r {
                            Err(StoreError::Unreachable { .. }) => {
                                unreachable_in_a_row.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => unreachable_in_a_row.store(0, Ordering::Relaxed),
                        }
                        progress.inc(1);
                        (i, r)
                    }
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        // Gone: many in a row, or every one of several (a small store).
        let in_a_row = unreachable_in_a_row.into_inner();
        if in_a_row >= give_up || (in_a_row == keys.len() && in_a_row > 1) {
            let last = results
                .iter()
                .rev()
                .find_map(|(_, r)| match r {
                    Err(e @ StoreError::Unreachable { .. }) => Some(e.to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(StoreError::Unreachable {
                location: self.location.clone(),
                reason: format!("{in_a_row} objects in a row could not be read ({last})"),
            });
        }
        // Credentials that expire part-way are the run's problem, not each object's.
        if let Some(pos) = results
            .iter()
            .position(|(_, r)| matches!(r, Err(StoreError::Unauthorized { .. })))
        {
            return Err(results.swap_remove(pos).1.expect_err("an error"));
        }
        results.sort_unstable_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full_prefix = self.full_key(prefix.trim_end_matches('/'));
        let strip = if self.config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.config.prefix)
        };
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.config.bucket)
            .prefix(format!("{full_prefix}/"))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify(e, prefix))?;
            for object in page.contents() {
                if let Some(k) = object.key().and_then(|k| k.strip_prefix(strip.as_str())) {
                    keys.push(k.to_string());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}
