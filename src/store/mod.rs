//! The evidence store: content-addressed, write-once objects and named write-once documents
//! (run manifests, checkpoints), over a local folder or an S3-compatible bucket.
//!
//! Keys are the same on every backend:
//! - `objects/sha256/<first 2 hex>/<64 hex>`: evidence bytes;
//! - `runs/<collector>/<YYYY>/<MM>/<DD>/<run-id>.json`: run manifests;
//! - `ledger/checkpoints/<YYYY-MM-DD>`: signed checkpoints.
//!
//! Nothing is ever overwritten or deleted: writing an existing key with the same bytes is a
//! success, with other bytes a [`StoreError::Conflict`].

mod config;
mod fs;
pub use fs::copy_hashing;
#[cfg(feature = "s3")]
mod s3;

use std::io::Read;
use std::path::Path;

use annexa_collectors::Body;
use sha2::{Digest, Sha256};

pub use config::{ObjectLock, S3Config, StoreConfig};

/// One object's re-hash: its SHA-256 (hex) and size.
pub type HashResult = Result<(String, u64), StoreError>;

/// The chunk size for streaming reads and hashing (SHA-NI wants big chunks).
pub const CHUNK: usize = 1024 * 1024;

/// Where an object went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
}

/// One failure of the store, one variant per decision the caller makes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "evidence store {location} is unreachable: {reason}; check that the server is running and `store.endpoint` is right"
    )]
    Unreachable { location: String, reason: String },
    #[error(
        "evidence store {location} refused the credentials: {reason}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile) and the bucket policy"
    )]
    Unauthorized { location: String, reason: String },
    #[error("bucket `{bucket}` does not exist at {location}; create it or fix `store.bucket`")]
    NoSuchBucket { location: String, bucket: String },
    #[error(
        "{key} already exists in the evidence store with other content; annexa never overwrites evidence"
    )]
    Conflict { key: String },
    #[error(
        "{key} was written but the store holds a different checksum ({actual}, expected {expected}); the store may ignore conditional writes: stop and run `annexa verify`"
    )]
    ChecksumMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    /// A source file a collector handed in could not be read whole and unchanged.
    #[error("{path}: {reason}")]
    Source { path: String, reason: String },
    #[error("{key} is not in the evidence store")]
    NotFound { key: String },
    /// The message shows the cause, so it is not also the error's source (printed once).
    #[error("evidence store I/O on {location}: {cause}")]
    Io {
        location: String,
        cause: std::io::Error,
    },
    #[error("evidence store {location}: {reason}")]
    Other { location: String, reason: String },
}

/// The key of a content-addressed object.
pub fn object_key(sha256_hex: &str) -> String {
    format!("objects/sha256/{}/{}", &sha256_hex[..2], sha256_hex)
}

/// The digest a content-addressed key names ([`object_key`]'s form, lower-case hex), or None
/// for any other key.
pub fn digest_of(key: &str) -> Option<[u8; 32]> {
    let (shard, name) = key.strip_prefix("objects/sha256/")?.split_once('/')?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(name, &mut digest).ok()?;
    (shard.len() == 2 && name.starts_with(shard) && hex::encode(digest) == name).then_some(digest)
}

/// What the store holds under `objects/`: content-addressed keys as their digests (sorted), 32
/// bytes each rather than a string of 80, and any other key as itself.
#[derive(Debug, Default)]
pub struct Listing {
    pub digests: Vec<[u8; 32]>,
    pub other: Vec<String>,
}

impl Listing {
    pub(super) fn add(&mut self, key: String) {
        match digest_of(&key) {
            Some(d) => self.digests.push(d),
            None => self.other.push(key),
        }
    }
}

/// A source file that was not the same at the end of its read as at its start: `what` says
/// what changed (its sizes).
fn changed_while_read(path: &Path, what: String) -> StoreError {
    StoreError::Source {
        path: path.display().to_string(),
        reason: format!(
            "changed while it was read ({what}); nothing of it was stored: collect again once it is no longer being written"
        ),
    }
}

/// One handle over every backend.
pub enum EvidenceStore {
    Fs(fs::FsStore),
    #[cfg(feature = "s3")]
    S3(Box<s3::S3Store>),
}

impl EvidenceStore {
    /// Opens the configured store and checks that it can be used.
    pub async fn open(config: &StoreConfig) -> Result<EvidenceStore, StoreError> {
        match config {
            StoreConfig::Fs { path } => Ok(EvidenceStore::Fs(fs::FsStore::open(path)?)),
            #[cfg(feature = "s3")]
            StoreConfig::S3(c) => Ok(EvidenceStore::S3(Box::new(s3::S3Store::open(c).await?))),
            #[cfg(not(feature = "s3"))]
            StoreConfig::S3(_) => Err(StoreError::Other {
                location: "s3".into(),
                reason: "not available in this build: rebuild with `--features s3`".into(),
            }),
        }
    }

    /// Opens the configured store changing nothing in it (`annexa check`), and says what it
    /// found: a bucket that answers, or a folder that exists (or that the first run creates).
    /// An error: the store cannot be used as configured.
    pub async fn open_read_only(
        config: &StoreConfig,
    ) -> Result<(EvidenceStore, String), StoreError> {
        match config {
            StoreConfig::Fs { path } => {
                let store = fs::FsStore::at(path);
                let problem = |reason: String| StoreError::Other {
                    location: store.location(),
                    reason,
                };
                let found = match std::fs::metadata(path) {
                    Ok(m) if !m.is_dir() => {
                        return Err(problem(
                            "is not a folder: set [store] path to a folder".into(),
                        ));
                    }
                    Ok(m) if m.permissions().readonly() => {
                        return Err(problem(
                            "is read-only: annexa writes evidence into it; give it write permission"
                                .into(),
                        ));
                    }
                    Ok(_) => format!("folder {}", store.location()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let parent = path.ancestors().skip(1).find(|p| p.exists());
                        match parent {
                            Some(p) if p.is_dir() => format!(
                                "folder {} (not there yet: the first run creates it)",
                                store.location()
                            ),
                            _ => return Err(problem("cannot be created here".into())),
                        }
                    }
                    Err(e) => return Err(problem(e.to_string())),
                };
                Ok((EvidenceStore::Fs(store), found))
            }
            _ => {
                let store = EvidenceStore::open(config).await?;
                let found = format!("{} answers", store.location());
                Ok((store, found))
            }
        }
    }

    /// Where the store is, for messages (never with credentials).
    pub fn location(&self) -> String {
        match self {
            EvidenceStore::Fs(s) => s.location(),
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.location(),
        }
    }

    /// Stores evidence bytes under their SHA-256, hashing while streaming; durable on return.
    pub async fn put_object(&self, body: Body) -> Result<StoredObject, StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.put_object(body, false).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.put_object(&body).await,
        }
    }

    /// How many of a run's objects [`EvidenceStore::start_batched`] should be handed at once:
    /// a local batch is written on one blocking thread, since waking a thread for each small
    /// object costs more than writing it; S3 uploads each on its own task.
    pub fn batch_len(&self) -> usize {
        match self {
            EvidenceStore::Fs(_) => 64,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(_) => 1,
        }
    }

    /// Starts [`EvidenceStore::put_object`] of a batch of a run's objects, one result each in
    /// order: durable once [`EvidenceStore::sync`] returns (the local store makes them durable
    /// in groups). A local batch runs on a blocking thread from the start, with no async task
    /// to hand it over.
    pub fn start_batched(
        self: &std::sync::Arc<Self>,
        bodies: Vec<Body>,
    ) -> tokio::task::JoinHandle<Vec<Result<StoredObject, StoreError>>> {
        if let EvidenceStore::Fs(s) = &**self {
            let s = s.clone();
            return tokio::task::spawn_blocking(move || {
                bodies.into_iter().map(|b| s.put_now(b, true)).collect()
            });
        }
        let store = self.clone();
        tokio::spawn(async move {
            let puts = bodies.into_iter().map(|b| store.put_object(b));
            futures::future::join_all(puts).await
        })
    }

    /// Makes every object stored with [`EvidenceStore::start_batched`] durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.sync().await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(_) => Ok(()),
        }
    }

    /// Writes a named document once. The same bytes again is a success.
    pub async fn put_named(&self, key: &str, bytes: &[u8]) -> Result<StoredObject, StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.put_named(key, bytes).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.put_named(key, bytes).await,
        }
    }

    /// Writes a named document once from a file, with the SHA-256 and size its writer
    /// computed (a manifest too large to hold in memory).
    pub async fn put_named_file(
        &self,
        key: &str,
        path: &Path,
        digest: [u8; 32],
        size: u64,
    ) -> Result<StoredObject, StoreError> {
        let stored = match self {
            EvidenceStore::Fs(s) => s.put_named_file(key, path).await?,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => {
                s.put_named_body(key, &Body::File(path.to_path_buf()), digest, size)
                    .await?
            }
        };
        if stored.sha256 != hex::encode(digest) || stored.size != size {
            return Err(StoreError::Other {
                location: path.display().to_string(),
                reason: "changed between being written and being stored".into(),
            });
        }
        Ok(stored)
    }

    /// Reads a small object whole (manifests, facts).
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.read(key).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.read(key).await,
        }
    }

    /// Copies a stored object into the new file `dst`, streaming and hashing it: its SHA-256
    /// (hex) and size, for the caller to compare with what it expects.
    pub async fn copy_to(&self, key: &str, dst: &Path) -> Result<(String, u64), StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.copy_to(key, dst).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.copy_to(key, dst).await,
        }
    }

    /// A stored object opened to be read as a stream: a local store's own file, or a scratch
    /// copy of an S3 object (removed when the [`Opened`] drops). The caller checks its hash.
    pub async fn open_object(&self, key: &str) -> Result<Opened, StoreError> {
        let io = |location: &Path, cause| StoreError::Io {
            location: location.display().to_string(),
            cause,
        };
        if let EvidenceStore::Fs(s) = self {
            return Ok(Opened {
                file: s.open_file(key)?,
                _scratch: None,
            });
        }
        let dir = tempfile::tempdir().map_err(|e| io(&std::env::temp_dir(), e))?;
        let path = dir.path().join("object");
        self.copy_to(key, &path).await?;
        Ok(Opened {
            file: std::fs::File::open(&path).map_err(|e| io(&path, e))?,
            _scratch: Some(dir),
        })
    }

    /// Where a stored object is on this machine's disk, for a local store (read in place).
    pub fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        match self {
            EvidenceStore::Fs(s) => s.local_path(key),
            #[cfg(feature = "s3")]
            EvidenceStore::S3(_) => None,
        }
    }

    /// Re-hashes a stored object by streaming it: its SHA-256 and size.
    pub async fn hash(&self, key: &str) -> Result<(String, u64), StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.hash(key).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.hash(key).await,
        }
    }

    /// Re-hashes many objects: the results line up with `keys`; `progress` counts them. The
    /// local store hashes on one thread per core, each taking keys in batches (a verify of a
    /// million small objects must not pay a task per object); S3 keeps `concurrency` reads in
    /// flight. An object that cannot be read is its own error; a store that goes away (or
    /// refuses the credentials) part-way is the whole call's.
    pub async fn hash_all(
        &self,
        keys: std::sync::Arc<Vec<String>>,
        concurrency: usize,
        progress: indicatif::ProgressBar,
    ) -> Result<Vec<HashResult>, StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.hash_all(keys, progress).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.hash_all(&keys, concurrency, progress).await,
        }
    }

    /// Reads many small objects whole, `concurrency` at a time on S3; in the order of `keys`.
    pub async fn read_all(
        &self,
        keys: &[&str],
        concurrency: usize,
    ) -> Vec<Result<Vec<u8>, StoreError>> {
        use futures::StreamExt;
        let width = match self {
            EvidenceStore::Fs(_) => 1,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(_) => concurrency.max(1),
        };
        // By index: a closure over `&&str` makes the future not `Send` for every lifetime.
        futures::stream::iter(0..keys.len())
            .map(|i| self.read(keys[i]))
            .buffered(width)
            .collect()
            .await
    }

    /// Every key under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            EvidenceStore::Fs(s) => s.list(prefix).await,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => s.list(prefix).await,
        }
    }

    /// Every key under `objects/`, compactly ([`Listing`]): a local store of a million objects
    /// is never a million strings at once.
    pub async fn list_objects(&self) -> Result<Listing, StoreError> {
        let mut listing = match self {
            EvidenceStore::Fs(s) => s.list_objects().await?,
            #[cfg(feature = "s3")]
            EvidenceStore::S3(s) => {
                let mut listing = Listing::default();
                s.list("objects")
                    .await?
                    .into_iter()
                    .for_each(|k| listing.add(k));
                listing
            }
        };
        listing.digests.sort_unstable();
        Ok(listing)
    }
}

/// The store as a read-only source for collectors (a register uploaded as an object).
pub struct StoreObjects(pub std::sync::Arc<EvidenceStore>);

#[async_trait::async_trait]
impl annexa_collectors::ObjectSource for StoreObjects {
    async fn read(&self, key: &str) -> Result<Vec<u8>, String> {
        self.0.read(key).await.map_err(|e| e.to_string())
    }
}

/// A stored object opened to be read ([`EvidenceStore::open_object`]).
pub struct Opened {
    pub file: std::fs::File,
    _scratch: Option<tempfile::TempDir>,
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// SHA-256 of a reader, in [`CHUNK`]-sized reads. Returns the hex digest and the size.
pub fn hash_reader(reader: impl Read) -> std::io::Result<([u8; 32], u64)> {
    hash_reader_with(reader, &mut vec![0u8; CHUNK])
}

/// SHA-256 of a reader, read into `buf` (one buffer for many objects: zeroing a fresh 1 MiB
/// buffer for each small object took a third of a verify's time).
pub fn hash_reader_with(mut reader: impl Read, buf: &mut [u8]) -> std::io::Result<([u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = reader.read(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().into(), size))
}

/// SHA-256 of a file, read in [`CHUNK`]s.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    hash_reader(std::fs::File::open(path)?)
}

/// Runs blocking I/O off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other {
            location: "store".into(),
            reason: format!("blocking task failed: {e}"),
        })?
}

/// Checks a key is one annexa writes: relative, no `..`, no empty segment.
fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && !key.ends_with('/')
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if ok {
        Ok(())
    } else {
        Err(StoreError::Other {
            location: "store".into(),
            reason: format!("`{key}` is not a valid key"),
        })
    }
}
