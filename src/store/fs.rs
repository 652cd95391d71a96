//! The local-folder backend (the default).
//!
//! A write goes to a temporary file under `<root>/tmp/` (same filesystem) while being hashed,
//! is fsynced, then hard-linked to its final key. A hard link never replaces an existing file,
//! so a key is created once or not at all; a process killed mid-write leaves only a temporary
//! file, which later opens sweep away.
//!
//! The items of a run are stored in groups ([`FsStore::put_object`] with `batched`): each is
//! written to its temporary file unsynced, and once [`GROUP`] are written one `syncfs` makes them
//! all durable before any is linked. Linking waits for the data either way; the group shares its
//! writeback (an inode-table block holds many inodes, written once instead of once per object)
//! where an fsync of each would write it again and again.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use annexa_collectors::Body;
use sha2::{Digest, Sha256};

use super::{
    CHUNK, StoreError, StoredObject, blocking, check_key, hash_file, hash_reader_with, object_key,
};

/// Temporary files older than this are leftovers of a killed process.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);

/// Objects written before one `syncfs` makes them durable and they are linked. At a million
/// objects (about 3,900 in each of the 256 folders), 8,192 links share more of their folders'
/// blocks than 1,024 did, in the cache while linked and in the next `syncfs`: the million's
/// system CPU fell from 75–92 s to 72–73 s (BENCHMARKS.md).
const GROUP: usize = 8192;

#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    /// Folders that gained an object whose link is not yet fsynced ([`FsStore::sync`]): a
    /// run's objects share one fsync per folder instead of one each.
    unsynced: Arc<std::sync::Mutex<std::collections::BTreeSet<PathBuf>>>,
    /// Folders this process made or found, so an object does not cost a `mkdir` each.
    made: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
    /// Objects written but not yet durable nor linked: the open group, each temporary file with
    /// its key.
    unlinked: Arc<std::sync::Mutex<Vec<(tempfile::TempPath, String)>>>,
    /// Held while a group is taken and linked, so that [`FsStore::sync`] returns only once
    /// every group taken before it is linked.
    linking: Arc<std::sync::Mutex<()>>,
}

impl FsStore {
    /// The store at `root` as it is, creating and removing nothing (`annexa check`).
    pub fn at(root: &Path) -> FsStore {
        FsStore {
            root: root.to_path_buf(),
            unsynced: Arc::default(),
            made: Arc::default(),
            unlinked: Arc::default(),
            linking: Arc::default(),
        }
    }

    pub fn open(root: &Path) -> Result<FsStore, StoreError> {
        let store = FsStore::at(root);
        let tmp = store.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|e| store.io(e))?;
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age > STALE_TMP);
                if old {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(store)
    }

    pub fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn io(&self, source: io::Error) -> StoreError {
        StoreError::Io {
            location: self.location(),
            cause: source,
        }
    }

    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path_of(key).ok()
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Stores an object; with `batched`, it joins the open group: it is made durable and linked
    /// with the group, at the latest at [`FsStore::sync`], and its folder fsynced then.
    pub async fn put_object(&self, body: Body, batched: bool) -> Result<StoredObject, StoreError> {
        let store = self.clone();
        blocking(move || store.put_now(body, batched)).await
    }

    /// [`FsStore::put_object`] on the calling thread.
    pub fn put_now(&self, body: Body, batched: bool) -> Result<StoredObject, StoreError> {
        match body {
            Body::Bytes(bytes) => self.put_from(&mut &bytes[..], batched),
            Body::File(path) => self.put_file(&path, batched, |f| f),
        }
    }

    /// Stores a source file, read through `wrap` (a test's reader that truncates it mid-read),
    /// and fails with [`StoreError::Source`] if the file is not the same at the end of the read
    /// as at its start: its size and modification time, and the bytes read. Nothing is linked
    /// then.
    pub(super) fn put_file<R: Read>(
        &self,
        path: &Path,
        batched: bool,
        wrap: impl FnOnce(File) -> R,
    ) -> Result<StoredObject, StoreError> {
        let source = |reason: String| StoreError::Source {
            path: path.display().to_string(),
            reason,
        };
        let file = File::open(path).map_err(|e| source(e.to_string()))?;
        let stamp = |m: &std::fs::Metadata| (m.len(), m.modified().ok());
        let before = file.metadata().map_err(|e| source(e.to_string()))?;
        let check = file.try_clone().map_err(|e| source(e.to_string()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.tmp_dir()).map_err(|e| self.io(e))?;
        let (digest, size) = copy_hashing_from(&mut wrap(file), tmp.as_file_mut(), before.len())
            .map_err(|e| source(e.to_string()))?;
        let after = check.metadata().map_err(|e| source(e.to_string()))?;
        let vanished = std::fs::metadata(path).is_err();
        if stamp(&before) != stamp(&after) || size != before.len() || vanished {
            return Err(super::changed_while_read(
                path,
                format!(
                    "{} bytes when opened, {size} read, {} now{}",
                    before.len(),
                    after.len(),
                    if vanished { ", and it is gone" } else { "" }
                ),
            ));
        }
        let sha256 = hex::encode(digest);
        let key = object_key(&sha256);
        self.commit(tmp, &key, batched)?;
        Ok(StoredObject { key, sha256, size })
    }

    fn put_from(&self, bytes: &mut &[u8], batched: bool) -> Result<StoredObject, StoreError> {
        let sha256 = hex::encode(Sha256::digest(&bytes[..]));
        let stored = StoredObject {
            key: object_key(&sha256),
            sha256,
            size: bytes.len() as u64,
        };
        // The same bytes are stored already (a document unchanged since the last run): as
        // when the link below finds its key taken, nothing is written.
        if self.path_of(&stored.key)?.symlink_metadata().is_ok() {
            return Ok(stored);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(self.tmp_dir()).map_err(|e| self.io(e))?;
        tmp.write_all(bytes).map_err(|e| self.io(e))?;
        self.commit(tmp, &stored.key, batched)?;
        Ok(stored)
    }

    /// Makes the open group durable and links it, and fsyncs every folder that gained an object
    /// since the last call: after it, every object stored with `batched` is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let store = self.clone();
        blocking(move || {
            let _linking = store.link_group(0)?;
            let dirs = std::mem::take(&mut *store.unsynced.lock().expect("not poisoned"));
            for dir in dirs {
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| store.io(e))?;
            }
            Ok(())
        })
        .await
    }

    pub async fn put_named(&self, key: &str, bytes: &[u8]) -> Result<StoredObject, StoreError> {
        let store = self.clone();
        let key = key.to_string();
        let bytes = bytes.to_vec();
        blocking(move || {
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let mut tmp =
                tempfile::NamedTempFile::new_in(store.tmp_dir()).map_err(|e| store.io(e))?;
            tmp.write_all(&bytes).map_err(|e| store.io(e))?;
            if !store.commit(tmp, &key, false)? {
                let (existing, _) = hash_file(&store.path_of(&key)?).map_err(|e| store.io(e))?;
                if hex::encode(existing) != sha256 {
                    return Err(StoreError::Conflict { key });
                }
            }
            Ok(StoredObject {
                size: bytes.len() as u64,
                key,
                sha256,
            })
        })
        .await
    }

    /// A named document copied from a file (a run manifest of many items, written as its
    /// items were stored).
    pub async fn put_named_file(&self, key: &str, path: &Path) -> Result<StoredObject, StoreError> {
        let store = self.clone();
        let (key, path) = (key.to_string(), path.to_path_buf());
        blocking(move || {
            let mut tmp =
                tempfile::NamedTempFile::new_in(store.tmp_dir()).map_err(|e| store.io(e))?;
            let (digest, size) = copy_hashing(&path, tmp.as_file_mut()).map_err(|e| store.io(e))?;
            let sha256 = hex::encode(digest);
            if !store.commit(tmp, &key, false)? {
                let (existing, _) = hash_file(&store.path_of(&key)?).map_err(|e| store.io(e))?;
                if hex::encode(existing) != sha256 {
                    return Err(StoreError::Conflict { key });
                }
            }
            Ok(StoredObject { key, sha256, size })
        })
        .await
    }

    /// Makes the temporary file durable and links it to `key`, fsyncing its folder now; or,
    /// `batched`, adds it to the open group, linking the group once it is full. False when the
    /// key already existed (the temporary file is discarded); true when it is created or, in a
    /// group, will be.
    fn commit(
        &self,
        tmp: tempfile::NamedTempFile,
        key: &str,
        batched: bool,
    ) -> Result<bool, StoreError> {
        if batched {
            let full = {
                let mut open = self.unlinked.lock().expect("not poisoned");
                open.push((tmp.into_temp_path(), key.to_string()));
                open.len() >= GROUP
            };
            if full {
                drop(self.link_group(GROUP)?);
            }
            return Ok(true);
        }
        tmp.as_file().sync_all().map_err(|e| self.io(e))?;
        let created = self.link(tmp.path(), key)?;
        if created {
            let dir = self.path_of(key)?;
            let dir = dir.parent().expect("keys have a folder");
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.io(e))?;
        }
        Ok(created)
    }

    /// Takes the open group if it holds at least `least` objects, makes it durable with one
    /// `syncfs`, then links each, leaving its folder for [`FsStore::sync`] to fsync. Gives back
    /// the lock on linking, held from before the group was taken.
    fn link_group(&self, least: usize) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        let linking = self.linking.lock().expect("not poisoned");
        let mut group = {
            let mut open = self.unlinked.lock().expect("not poisoned");
            if open.is_empty() || open.len() < least {
                return Ok(linking);
            }
            std::mem::take(&mut *open)
        };
        // What is not linked goes back to the open group, so the next sync tries again (or
        // fails too) and never reports an object durable that is not linked.
        let put_back = |rest: Vec<(tempfile::TempPath, String)>| {
            self.unlinked.lock().expect("not poisoned").extend(rest);
        };
        let synced = File::open(&self.root).and_then(|root| Ok(rustix::fs::syncfs(&root)?));
        if let Err(e) = synced {
            put_back(group);
            return Err(self.io(e));
        }
        // In key order, the links into one folder follow each other while its index is cached.
        group.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        let mut rest = group.into_iter();
        while let Some((tmp, key)) = rest.next() {
            match self.link(&tmp, &key) {
                Ok(true) => {
                    let dir = self.path_of(&key)?;
                    self.unsynced
                        .lock()
                        .expect("not poisoned")
                        .insert(dir.parent().expect("keys have a folder").to_path_buf());
                }
                Ok(false) => {}
                Err(e) => {
                    put_back(std::iter::once((tmp, key)).chain(rest).collect());
                    return Err(e);
                }
            }
        }
        Ok(linking)
    }

    /// Hard-links a durable temporary file to `key`, making its folder if need be. False when
    /// the key already existed.
    fn link(&self, tmp: &Path, key: &str) -> Result<bool, StoreError> {
        let target = self.path_of(key)?;
        let dir = target.parent().expect("keys have a folder");
        if !self.made.lock().expect("not poisoned").contains(dir) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
            self.made
                .lock()
                .expect("not poisoned")
                .insert(dir.to_path_buf());
        }
        let link = || match std::fs::hard_link(tmp, &target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        };
        match link() {
            // The folder went away since this process made it: make it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
                link()
            }
            linked => linked,
        }
        .map_err(|e| self.io(e))
    }

    /// A stored object's own file, opened to read.
    pub fn open_file(&self, key: &str) -> Result<File, StoreError> {
        File::open(self.path_of(key)?).map_err(|e| self.not_found_or_io(key, e))
    }

    pub async fn read(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| self.not_found_or_io(key, e))
    }

    pub async fn copy_to(&self, key: &str, dst: &Path) -> Result<(String, u64), StoreError> {
        let path = self.path_of(key)?;
        let (store, key, dst) = (self.clone(), key.to_string(), dst.to_path_buf());
        blocking(move || {
            let mut out = File::create_new(&dst).map_err(|e| StoreError::Io {
                location: dst.display().to_string(),
                cause: e,
            })?;
            copy_hashing(&path, &mut out)
                .map(|(d, size): ([u8; 32], u64)| (hex::encode(d), size))
                .map_err(|e| store.not_found_or_io(&key, e))
        })
        .await
    }

    pub async fn hash(&self, key: &str) -> Result<(String, u64), StoreError> {
        let path = self.path_of(key)?;
        let store = self.clone();
        let key = key.to_string();
        blocking(move || {
            hash_file(&path)
                .map(|(d, size)| (hex::encode(d), size))
                .map_err(|e| store.not_found_or_io(&key, e))
        })
        .await
    }

    pub async fn hash_all(
        &self,
        keys: std::sync::Arc<Vec<String>>,
        progress: indicatif::ProgressBar,
    ) -> Result<Vec<super::HashResult>, StoreError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const BATCH: usize = 64;
        let store = self.clone();
        blocking(move || {
            let next = AtomicUsize::new(0);
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let mut results: Vec<(usize, super::HashResult)> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            let mut buf = vec![0u8; CHUNK];
                            loop {
                                let start = next.fetch_add(BATCH, Ordering::Relaxed);
                                if start >= keys.len() {
                                    return done;
                                }
                                let end = (start + BATCH).min(keys.len());
                                for (i, key) in keys[start..end].iter().enumerate() {
                                    let result = store.path_of(key).and_then(|path| {
                                        std::fs::File::open(&path)
                                            .and_then(|f| hash_reader_with(f, &mut buf))
                                            .map(|(d, size)| (hex::encode(d), size))
                                            .map_err(|e| store.not_found_or_io(key, e))
                                    });
                                    done.push((start + i, result));
                                }
                                progress.inc((end - start) as u64);
                            }
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().expect("a hashing thread panicked"))
                    .collect()
            });
            results.sort_by_key(|(i, _)| *i);
            Ok(results.into_iter().map(|(_, r)| r).collect())
        })
        .await
    }

    fn not_found_or_io(&self, key: &str, e: io::Error) -> StoreError {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::NotFound {
                key: key.to_string(),
            }
        } else {
            self.io(e)
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let store = self.clone();
        let prefix = prefix.trim_end_matches('/').to_string();
        blocking(move || {
            let mut keys = Vec::new();
            let start = store.root.join(&prefix);
            if start.exists() {
                walk(&start, &prefix, &mut |k| keys.push(k)).map_err(|e| store.io(e))?;
            }
            // Each folder is walked in order, so this only confirms the order (a name with a
            // character below `/` can sort before a folder it extends).
            keys.sort();
            Ok(keys)
        })
        .await
    }

    /// [`FsStore::list`] of `objects/`, each key kept as [`super::Listing`] keeps it.
    pub async fn list_objects(&self) -> Result<super::Listing, StoreError> {
        let store = self.clone();
        blocking(move || {
            let mut listing = super::Listing::default();
            let start = store.root.join("objects");
            if start.exists() {
                walk(&start, "objects", &mut |k| listing.add(k)).map_err(|e| store.io(e))?;
            }
            Ok(listing)
        })
        .await
    }
}

/// Hands `out` the key of every file under `dir` (whose key is `key`), one folder at a time in
/// name order; the store's own `tmp` folder is not evidence.
fn walk(dir: &Path, key: &str, out: &mut dyn FnMut(String)) -> io::Result<()> {
    let mut entries: Vec<(String, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((name, entry.file_type()?.is_dir()));
    }
    entries.sort_unstable();
    for (name, is_dir) in entries {
        let child = if key.is_empty() {
            name.clone()
        } else {
            format!("{key}/{name}")
        };
        if !is_dir {
            out(child);
        } else if child != "tmp" {
            walk(&dir.join(&name), &child, out)?;
        }
    }
    Ok(())
}

/// Chunks in flight between the reading/writing thread and the hashing thread.
const BUFFERS: usize = 4;

/// Below this size a copy is hashed on the calling thread: for a small object a hashing thread
/// and its chunk pool cost more than they save (they were a fifth of the CPU of collecting
/// 10 KiB documents).
const PIPELINED_FROM: u64 = 4 * CHUNK as u64;

/// The buffer of a copy hashed on the calling thread.
const SERIAL_CHUNK: usize = 256 * 1024;

/// Copies `src` into `dst` while hashing it ([`copy_hashing_from`]).
pub fn copy_hashing(src: &Path, dst: &mut File) -> io::Result<([u8; 32], u64)> {
    let mut file = File::open(src)?;
    let expected = file.metadata()?.len();
    copy_hashing_from(&mut file, dst, expected)
}

/// Copies `reader`, of about `expected` bytes, into `dst` while hashing it. A large copy is
/// pipelined: SHA-256 is the bottleneck and cannot be split, so one thread does nothing but
/// hash while the calling thread reads each chunk and writes it; both look at the same chunk
/// (an `Arc`), so the bytes written are exactly the bytes hashed. A fixed pool of [`BUFFERS`]
/// chunks cycles back from the hasher: memory stays bounded and no chunk is allocated twice.
pub fn copy_hashing_from(
    reader: &mut impl Read,
    dst: &mut File,
    expected: u64,
) -> io::Result<([u8; 32], u64)> {
    if expected < PIPELINED_FROM {
        return copy_hashing_serial(reader, dst);
    }
    let (to_hash, hash_rx) = mpsc::sync_channel::<(Arc<Vec<u8>>, usize)>(BUFFERS);
    let (pool_tx, pool) = mpsc::channel::<Arc<Vec<u8>>>();
    for _ in 0..BUFFERS {
        pool_tx
            .send(Arc::new(vec![0u8; CHUNK]))
            .expect("receiver alive");
    }
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            for (chunk, len) in hash_rx {
                hasher.update(&chunk[..len]);
                size += len as u64;
                let _ = pool_tx.send(chunk);
            }
            (<[u8; 32]>::from(hasher.finalize()), size)
        });
        let copied = (|| -> io::Result<()> {
            while let Ok(mut chunk) = pool.recv() {
                // The hasher has returned it and the last write is done: no other owner.
                let buf = Arc::get_mut(&mut chunk).expect("a returned chunk has one owner");
                let n = read_full(reader, buf)?;
                if n == 0 {
                    return Ok(());
                }
                to_hash
                    .send((chunk.clone(), n))
                    .expect("the hasher runs until the sender is dropped");
                dst.write_all(&chunk[..n])?;
            }
            Ok(())
        })();
        drop(to_hash);
        let hashed = hasher.join().expect("hasher thread panicked");
        copied.map(|()| hashed)
    })
}

/// [`copy_hashing_from`] of a small object: read, hash and write in turn, through one buffer
/// kept by the thread for all its copies.
fn copy_hashing_serial(reader: &mut impl Read, dst: &mut File) -> io::Result<([u8; 32], u64)> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SERIAL_CHUNK]);
    }
    BUF.with_borrow_mut(|buf| {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = read_full(reader, buf)?;
            if n == 0 {
                return Ok((hasher.finalize().into(), size));
            }
            hasher.update(&buf[..n]);
            dst.write_all(&buf[..n])?;
            size += n as u64;
        }
    })
}

/// Reads until `buf` is full or the end of the file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader over a source file that truncates the file to half once its first chunk is
    /// read: a file cut short while annexa reads it, at a point the test decides.
    struct TruncatesAfterFirstRead {
        file: File,
        path: PathBuf,
        reads: usize,
    }

    impl Read for TruncatesAfterFirstRead {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.file.read(buf)?;
            self.reads += 1;
            if self.reads == 1 {
                let len = std::fs::metadata(&self.path)?.len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.path)?
                    .set_len(len / 2)?;
            }
            Ok(n)
        }
    }

    fn source(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.join("big.bin");
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    fn objects_in(root: &Path) -> usize {
        let mut count = 0;
        let objects = root.join("objects");
        if objects.exists() {
            walk(&objects, "objects", &mut |_| count += 1).unwrap();
        }
        count
    }

    #[test]
    fn a_file_streamed_in_chunks_is_stored_under_the_hash_of_all_its_bytes() {
        // Read in several chunks on the calling thread, and pipelined through the hasher
        // thread; the last chunk is short either way.
        for len in [2 * SERIAL_CHUNK + 13, 5 * CHUNK + 13] {
            let dir = tempfile::tempdir().unwrap();
            let store = FsStore::open(&dir.path().join("store")).unwrap();
            let (path, bytes) = source(dir.path(), len);
            let object = store.put_file(&path, true, |f| f).unwrap();
            assert_eq!(object.sha256, hex::encode(Sha256::digest(&bytes)));
            assert_eq!(object.size, bytes.len() as u64);
            let at = dir.path().join("store").join(&object.key);
            assert!(!at.exists(), "linked with its group, at the run's sync");
            assert_eq!(store.unlinked.lock().unwrap().len(), 1);
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(store.sync())
                .unwrap();
            assert_eq!(std::fs::read(&at).unwrap(), bytes);
            assert!(store.unlinked.lock().unwrap().is_empty());
            assert!(store.unsynced.lock().unwrap().is_empty());
        }
    }

    #[test]
    fn a_full_group_is_made_durable_and_linked_without_waiting_for_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(&dir.path().join("store")).unwrap();
        let objects: Vec<StoredObject> = (0..=GROUP)
            .map(|i| {
                let body = format!("object {i}");
                store.put_from(&mut body.as_bytes(), true).unwrap()
            })
            .collect();
        let linked = |o: &StoredObject| dir.path().join("store").join(&o.key).exists();
        assert!(
            objects[..GROUP].iter().all(linked),
            "the first group is linked"
        );
        assert!(!linked(&objects[GROUP]), "the next waits for its group");
        assert_eq!(objects_in(&dir.path().join("store")), GROUP);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(store.sync())
            .unwrap();
        assert!(linked(&objects[GROUP]));
        assert_eq!(
            std::fs::read_dir(dir.path().join("store/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn a_group_that_cannot_be_linked_stays_open_and_the_next_sync_links_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = FsStore::open(&root).unwrap();
        let object = store.put_from(&mut &b"an object"[..], true).unwrap();
        // A file where the objects folder goes: the link cannot be made.
        std::fs::write(root.join("objects"), b"in the way").unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        assert!(
            rt.block_on(store.sync()).is_err(),
            "a failed link fails the sync"
        );
        assert_eq!(store.unlinked.lock().unwrap().len(), 1, "the object waits");
        std::fs::remove_file(root.join("objects")).unwrap();
        rt.block_on(store.sync()).unwrap();
        assert_eq!(std::fs::read(root.join(&object.key)).unwrap(), b"an object");
        assert!(store.unlinked.lock().unwrap().is_empty());
    }

    #[test]
    fn a_file_truncated_mid_read_is_refused_naming_it_and_nothing_is_stored() {
        for len in [2 * SERIAL_CHUNK, 4 * CHUNK] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("store");
            let store = FsStore::open(&root).unwrap();
            let (path, _) = source(dir.path(), len);
            let err = store
                .put_file(&path, false, |file| TruncatesAfterFirstRead {
                    file,
                    path: path.clone(),
                    reads: 0,
                })
                .expect_err("a file cut short while read is not evidence");
            match &err {
                StoreError::Source {
                    path: named,
                    reason,
                } => {
                    assert_eq!(named, &path.display().to_string());
                    assert!(reason.contains("changed while it was read"), "{reason}");
                    assert!(
                        reason.contains(&format!("{len} bytes when opened")),
                        "{reason}"
                    );
                }
                other => panic!("not a source error: {other}"),
            }
            assert_eq!(objects_in(&root), 0, "nothing half-stored");
            assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);

            // A file that vanished before it was read is named too.
            std::fs::remove_file(&path).unwrap();
            let gone = store.put_file(&path, false, |f| f).expect_err("gone");
            assert!(matches!(gone, StoreError::Source { .. }), "{gone}");
        }
    }
}
