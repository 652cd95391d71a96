//! `annexa verify` throughput.
//!
//! `cargo bench --bench verify [-- local|s3|scrub]` (all three by default):
//!
//! - `local` (issue 9): re-hashing a store of mixed object sizes from page cache, and a store of
//!   1,000,000 small objects. Targets: ≥ 2.0 GB/s on the mixed store, with bounded memory;
//!   ≥ 20,000 objects/s on the small. `ANNEXA_BENCH_GIB` sets the mixed store's size (10).
//! - `s3` (issue 23): 10,000 documents of 10 KiB collected by the binary into s3s-fs, then
//!   `annexa verify` beside a 16-thread boto3 GET + SHA-256 loop over the same objects, and
//!   again through a loopback proxy that adds 20 ms before each request. Targets: ≥ 1.5 × the
//!   boto3 objects/s, peak RSS ≤ 128 MiB; with the latency, within 2 × of the figure without.
//! - `scrub` (issue 23): a store of 1,000,000 objects verified in full on day 0, 10,000 new
//!   documents collected on day 1, then the rolling scrub of day 1 (simulated clock), beside a
//!   full verify of the same store. Target: it re-hashes about 10,000 + 1,000,000 / 27 objects
//!   (the sweep takes 0.9 × `full_every`) and its time follows that, not the store's size.
//!
//! Stores are built on tmpfs (`/dev/shm`, i.e. in the page cache; `ANNEXA_BENCH_DIR` to
//! change). Each measured verify runs in a child process exactly as the binary runs it
//! (`annexa::commands::dispatch`), with the child's peak RSS (VmHWM); one warm-up round first.

mod common;
#[path = "../tests/common/proxy.rs"]
#[allow(dead_code)]
mod proxy;

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

/// In the child: `annexa ARGS` exactly as the binary runs it; prints seconds and peak RSS.
fn child_annexa(config: &str, args: &[String]) {
    let mut argv = vec!["annexa".to_string(), "--config".into(), config.into()];
    argv.extend(args.iter().cloned());
    let cli = annexa::cli::Cli::parse_from(argv);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let exit = runtime.block_on(annexa::commands::dispatch(cli)).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(exit, annexa::cli::exit::Exit::Ok, "annexa {args:?} passes");
    common::report_child(secs);
}

/// Rounds of `annexa verify ARGS` in a child (after a warm-up): (best s, median s, peak MiB).
fn rounds(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (f64, f64, f64) {
    let mut child = vec!["child-annexa", config.to_str().unwrap(), "verify", "--json"];
    child.extend(args);
    let mut results = Vec::new();
    for round in 0..=ROUNDS {
        let (secs, rss) = common::run_child(&child, env);
        if round > 0 {
            results.push((secs, rss));
        }
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rss = results.iter().map(|r| r.1).fold(0.0, f64::max);
    (results[0].0, results[results.len() / 2].0, rss)
}

fn measure(label: &str, dir: &Path, objects: u64, bytes: u64) {
    let (best, median, rss) = rounds(&dir.join("annexa.toml"), &[], &[]);
    println!(
        "{label}: {objects} objects, {:.2} GiB: best {best:.2} s ({:.2} GB/s, {:.0} objects/s), median {median:.2} s ({:.2} GB/s, {:.0} objects/s), peak RSS {rss:.1} MiB",
        bytes as f64 / (1u64 << 30) as f64,
        bytes as f64 / best / 1e9,
        objects as f64 / best,
        bytes as f64 / median / 1e9,
        objects as f64 / median,
    );
}

fn local(root: &str) {
    let gib: u64 = std::env::var("ANNEXA_BENCH_GIB")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(10);
    let small_count: u64 = std::env::var("ANNEXA_BENCH_SMALL")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(1_000_000);

    let dir = tempfile::tempdir_in(root).unwrap();
    config(dir.path());
    let started = Instant::now();
    let (objects, bytes) = mixed(dir.path(), gib);
    println!(
        "mixed store written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    measure("mixed sizes", dir.path(), objects, bytes);
    drop(dir);

    let dir = tempfile::tempdir_in(root).unwrap();
    config(dir.path());
    let started = Instant::now();
    let (objects, bytes) = small(dir.path(), small_count);
    println!(
        "small store written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    measure("small objects", dir.path(), objects, bytes);
}

/// `n` policy documents of about 10 KiB each under `dir/docs`, each unlike the others.
fn documents(dir: &Path, n: usize, tag: &str) {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut filler = vec![0u8; 10 * 1024];
    for i in 0..n {
        fill(&mut filler, (i as u64 + 1) * 7919 + tag.len() as u64);
        let body: String = filler.iter().map(|b| (b'a' + b % 26) as char).collect();
        std::fs::write(
            docs.join(format!("{tag}-{i:06}.md")),
            format!(
                "# Procedure {tag}-{i}\n\nDocument ID: {tag}-{i}\nVersion: 1.0\nOwner: Security\n\
                 Last reviewed: 2026-05-01\nReview cycle: Annual\n\n{body}\n"
            ),
        )
        .unwrap();
    }
}

/// Runs the annexa binary with the config in `dir`; panics unless it exits 0.
fn annexa(dir: &Path, args: &[&str], env: &[(&str, &str)]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .arg("--config")
        .arg(dir.join("annexa.toml"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "annexa {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const DOCS_COLLECTOR: &str = "\n[[collector]]\nname = \"docs\"\nkind = \"policy-document\"\n\
     schedule = \"0 3 * * *\"\npaths = [\"docs\"]\n";

fn s3(root: &str) {
    const DOCS: usize = 10_000;
    let dir = tempfile::tempdir_in(root).unwrap();
    let data = dir.path().join("s3");
    std::fs::create_dir_all(data.join("evidence")).unwrap();
    let port = 19_000 + (std::process::id() % 1000) as u16;
    let mut server = std::process::Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "bench", "--secret-key", "bench-secret"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s3s-fs is installed (./scripts/test installs it)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(
        dir.path().join("annexa.toml"),
        format!(
            "[organization]\nname = \"Bench Ltd\"\n\n[store]\nkind = \"s3\"\n\
             endpoint = \"http://127.0.0.1:{port}\"\nbucket = \"evidence\"\n\n\
             [database]\nurl = \"sqlite://annexa.db\"\n{DOCS_COLLECTOR}"
        ),
    )
    .unwrap();
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
    ];
    documents(dir.path(), DOCS, "doc");
    let started = Instant::now();
    annexa(dir.path(), &["collect", "--all"], &credentials);
    println!(
        "s3: {DOCS} documents collected into s3s-fs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let keys: Vec<String> = walk(&data.join("evidence/objects"))
        .into_iter()
        .map(|p| {
            p.strip_prefix(data.join("evidence"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let objects = keys.len() as f64;

    let (best, median, rss) = rounds(&dir.path().join("annexa.toml"), &[], &credentials);
    println!(
        "s3: annexa verify, {objects} objects: best {best:.2} s ({:.0} objects/s), median {median:.2} s ({:.0} objects/s), peak RSS {rss:.1} MiB",
        objects / best,
        objects / median
    );
    let boto = boto3(port, &keys);
    println!(
        "s3: boto3, 16 threads, GET + SHA-256 of the same objects: best {:.2} s ({:.0} objects/s); annexa best / boto3 best = {:.2}",
        boto,
        objects / boto,
        boto / best
    );

    let proxy = proxy::Proxy::start(
        port + 1000,
        port,
        proxy::Faults {
            delay: std::time::Duration::from_millis(20),
            ..proxy::Faults::default()
        },
    );
    let endpoint = proxy.endpoint();
    let mut env = credentials.to_vec();
    env.push(("ANNEXA_STORE__ENDPOINT", endpoint.as_str()));
    let (slow_best, slow_median, slow_rss) = rounds(&dir.path().join("annexa.toml"), &[], &env);
    println!(
        "s3 + 20 ms per request: annexa verify: best {slow_best:.2} s ({:.0} objects/s), median {slow_median:.2} s, peak RSS {slow_rss:.1} MiB; {:.2} × the time without",
        objects / slow_best,
        slow_best / best
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files
}

/// Seconds for 16 boto3 threads to GET and SHA-256 every key (best of 3, after a warm-up).
fn boto3(port: u16, keys: &[String]) -> f64 {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), keys.join("\n")).unwrap();
    let script = format!(
        r#"
import boto3, hashlib, time, concurrent.futures as cf
from botocore.config import Config
keys = open("{}").read().split("\n")
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:{port}", aws_access_key_id="bench",
    aws_secret_access_key="bench-secret", region_name="us-east-1",
    config=Config(max_pool_connections=16, s3={{"addressing_style": "path"}}))
def one(k):
    return hashlib.sha256(s3.get_object(Bucket="evidence", Key=k)["Body"].read()).hexdigest()
best = None
for r in range(4):
    t = time.time()
    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, keys))
    s = time.time() - t
    if r > 0: best = s if best is None else min(best, s)
print(best)
"#,
        list.path().display()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 (pip install boto3): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn scrub(root: &str) {
    let count: u64 = std::env::var("ANNEXA_BENCH_SMALL")
        .ok()
        .and_then(|g| g.parse().ok())
        .unwrap_or(1_000_000);
    const NEW: usize = 10_000;
    let dir = tempfile::tempdir_in(root).unwrap();
    std::fs::write(
        dir.path().join("annexa.toml"),
        format!(
            "[organization]\nname = \"Bench Ltd\"\n\n[store]\nkind = \"fs\"\npath = \"store\"\n\n\
             [database]\nurl = \"sqlite://annexa.db\"\n{DOCS_COLLECTOR}"
        ),
    )
    .unwrap();
    let started = Instant::now();
    small(dir.path(), count);
    println!(
        "scrub: {count} objects written in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Day 0: a full verify. Day 1: 10,000 new documents, then the day's rolling scrub.
    let clock = |at: &str| format!("{at},0.000000001,{}", chrono::Utc::now().timestamp_millis());
    let day0 = clock("2026-06-01T01:00:00Z");
    annexa(
        dir.path(),
        &["verify"],
        &[("ANNEXA_SIMULATED_CLOCK", &day0)],
    );
    documents(dir.path(), NEW, "new");
    let collect = clock("2026-06-02T00:00:00Z");
    annexa(
        dir.path(),
        &["collect", "--all"],
        &[("ANNEXA_SIMULATED_CLOCK", &collect)],
    );
    // Every round plans the same scrub: none of them is recorded before the next (the clock
    // is the same, and a scrub's audit event only moves the cursor for the day after).
    let day1 = clock("2026-06-02T01:00:00Z");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_annexa"))
        .arg("--config")
        .arg(dir.path().join("annexa.toml"))
        .args(["verify", "--rolling", "--json"])
        .env("ANNEXA_SIMULATED_CLOCK", &day1)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (rehashed, total) = (
        report["objects_checked"].as_u64().unwrap(),
        report["objects_in_store"].as_u64().unwrap(),
    );
    println!(
        "scrub: the rolling scrub of day 1 re-hashes {rehashed} of {total} objects ({NEW} new documents + {} expected in the slice = {})",
        total / 27,
        NEW as u64 + total / 27
    );
    let env = [("ANNEXA_SIMULATED_CLOCK", day1.as_str())];
    let (best, median, rss) = rounds(&dir.path().join("annexa.toml"), &["--rolling"], &env);
    println!(
        "scrub: annexa verify --rolling: best {best:.2} s, median {median:.2} s, peak RSS {rss:.1} MiB"
    );
    let (full_best, full_median, full_rss) = rounds(&dir.path().join("annexa.toml"), &[], &env);
    println!(
        "scrub: annexa verify (full) of the same store: best {full_best:.2} s, median {full_median:.2} s, peak RSS {full_rss:.1} MiB; rolling / full = {:.2}",
        best / full_best
    );
    // `ANNEXA_BENCH_KEEP=1` leaves the store behind, to profile a verify of it.
    if std::env::var_os("ANNEXA_BENCH_KEEP").is_some() {
        println!("scrub: the store is kept in {}", dir.keep().display());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child-annexa") {
        return child_annexa(&args[2], &args[3..]);
    }
    let root = std::env::var("ANNEXA_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let only: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| ["local", "s3", "scrub"].contains(a))
        .collect();
    let wanted = |what: &str| only.is_empty() || only.contains(&what);
    if wanted("local") {
        local(&root);
    }
    if wanted("s3") {
        s3(&root);
    }
    if wanted("scrub") {
        scrub(&root);
    }
}
