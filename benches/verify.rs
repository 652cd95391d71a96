//! `annexa verify` throughput (issue 9): re-hashing a store of mixed object sizes from page
//! cache, and a store of 1,000,000 small objects.
//!
//! `cargo bench --bench verify` builds each store on tmpfs (`/dev/shm`, i.e. in the page cache;
//! `ANNEXA_BENCH_DIR` to change), runs `annexa verify` once to warm up, then times rounds of it
//! in a child process exactly as the binary runs it, with the child's peak RSS (VmHWM).
//! `ANNEXA_BENCH_GIB` sets the size of the mixed store (default 10).
//!
//! Targets: ≥ 2.0 GB/s on the mixed store, with bounded memory; ≥ 20,000 objects/s on the small.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use clap::Parser;
use sha2::{Digest, Sha256};

const ROUNDS: usize = 3;

/// Fills `buf` with cheap pseudo-random bytes (xorshift), so no two objects are alike.
fn fill(buf: &mut [u8], mut seed: u64) {
    for chunk in buf.chunks_mut(8) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let bytes = seed.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Writes one object in the fs store's layout, named by its hash.
fn put(store: &Path, bytes: &[u8]) {
    let sha = hex::encode(Sha256::digest(bytes));
    let dir = store.join("objects/sha256").join(&sha[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::File::create(dir.join(&sha))
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn config(dir: &Path) {
    std::fs::write(
        dir.join("annexa.toml"),
        "[organization]\nname = \"Bench Ltd\"\n\n[store]\nkind = \"fs\"\npath = \"store\"\n\n\
         [database]\nurl = \"sqlite://annexa.db\"\n",
    )
    .unwrap();
}

/// Objects of 1 GiB down to 64 KiB: about a quarter of the bytes in each size class.
fn mixed(dir: &Path, gib: u64) -> (u64, u64) {
    let store = dir.join("store");
    let total = gib << 30;
    let mut buf = vec![0u8; 1 << 30];
    let (mut bytes, mut objects, mut seed) = (0u64, 0u64, 1u64);
    for size in [1u64 << 30, 64 << 20, 4 << 20, 64 << 10] {
        let mut class = 0;
        while class < total / 4 && bytes < total {
            seed += 1;
            let b = &mut buf[..size as usize];
            fill(b, seed);
            put(&store, b);
            class += size;
            bytes += size;
            objects += 1;
        }
    }
    (objects, bytes)
}

fn small(dir: &Path, count: u64) -> (u64, u64) {
    let store = dir.join("store");
    let mut buf = [0u8; 1024];
    for i in 0..count {
        fill(&mut buf, i + 1);
        put(&store, &buf);
    }
    (count, count * 1024)
}

/// In the child: `annexa verify` exactly as the binary runs it; prints seconds and peak RSS.
fn child_verify(config: &str) {
    let cli = annexa::cli::Cli::parse_from(["annexa", "--config", config, "verify", "--json"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let exit = runtime.block_on(annexa::commands::dispatch(cli)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        exit,
        annexa::cli::exit::Exit::Ok,
        "the generated store verifies"
    );
    common::report_child(secs);
}

fn measure(label: &str, dir: &Path, objects: u64, bytes: u64) {
    let config = dir.join("annexa.toml");
    let mut results = Vec::new();
    for round in 0..=ROUNDS {
        let (secs, rss) = common::run_child(&["child-verify", config.to_str().unwrap()], &[]);
        if round > 0 {
            results.push((secs, rss));
        }
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (best, median) = (results[0].0, results[results.len() / 2].0);
    let rss = results.iter().map(|r| r.1).fold(0.0, f64::max);
    println!(
        "{label}: {objects} objects, {:.2} GiB: best {best:.2} s ({:.2} GB/s, {:.0} objects/s), median {median:.2} s ({:.2} GB/s, {:.0} objects/s), peak RSS {rss:.1} MiB",
        bytes as f64 / (1u64 << 30) as f64,
        bytes as f64 / best / 1e9,
        objects as f64 / best,
        bytes as f64 / median / 1e9,
        objects as f64 / median,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child-verify") {
        return child_verify(&args[2]);
    }
    let root = std::env::var("ANNEXA_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let gib: u64 = std::env::var("ANNEXA_BENCH_GIB")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(10);
    let small_count: u64 = std::env::var("ANNEXA_BENCH_SMALL")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(1_000_000);

    let dir = tempfile::tempdir_in(&root).unwrap();
    config(dir.path());
    let started = Instant::now();
    let (objects, bytes) = mixed(dir.path(), gib);
    println!(
        "mixed store written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    measure("mixed sizes", dir.path(), objects, bytes);
    drop(dir);

    let dir = tempfile::tempdir_in(&root).unwrap();
    config(dir.path());
    let started = Instant::now();
    let (objects, bytes) = small(dir.path(), small_count);
    println!(
        "small store written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    measure("small objects", dir.path(), objects, bytes);
}
