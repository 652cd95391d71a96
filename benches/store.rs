//! Hash + store throughput and peak memory, for the figures in BENCHMARKS.md.
//!
//!   cargo bench --bench store                 # 1 GiB into the fs store and into s3s-fs
//!   ANNEXA_BENCH_MIB=4096 cargo bench --bench store
//!
//! Each backend runs in a child process of this binary so that its peak RSS (VmHWM) is its
//! own. Targets (issue 2): fs ≥ 1.0 GB/s with peak RSS ≤ 64 MiB; S3 peak RSS ≤ 128 MiB.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use annexa::base::Secret;
use annexa::store::EvidenceStore;
use annexa::store::{S3Config, StoreConfig};
use annexa_collectors::Body;

const MIB: u64 = 1024 * 1024;
const ROUNDS: usize = 5;

fn make_file(path: &Path, mib: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut block = vec![0u8; MIB as usize];
    for i in 0..mib {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize ^ j).wrapping_mul(31) as u8;
        }
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
}

/// Child mode: store `file` into the backend and print one line of figures.
fn child(backend: &str, file: &Path, store_dir: &Path, endpoint: Option<String>) {
    let base = match backend {
        "fs" => StoreConfig::Fs {
            path: store_dir.to_path_buf(),
        },
        _ => StoreConfig::S3(S3Config {
            endpoint,
            region: "us-east-1".into(),
            bucket: "bench".into(),
            prefix: String::new(),
            path_style: true,
            multipart_threshold: 64 * MIB,
            part_size: 16 * MIB,
            static_credentials: Some(("bench".into(), Secret::new("bench-secret".into()))),
            retry_attempts: 5,
            object_lock: None,
        }),
    };
    let config = base;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let size = std::fs::metadata(file).unwrap().len();
        let mut rates = Vec::new();
        for round in 0..ROUNDS {
            // A fresh, empty store each round (an object already present would be skipped).
            let config = match &config {
                StoreConfig::Fs { path } => StoreConfig::Fs { path: path.join(round.to_string()) },
                StoreConfig::S3(c) => StoreConfig::S3(S3Config { prefix: format!("round-{round}"), ..c.clone() }),
            };
            let store = EvidenceStore::open(&config).await.unwrap();
            let start = Instant::now();
            let object = store.put_object(Body::File(file.to_path_buf())).await.unwrap();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(object.size, size);
            rates.push(size as f64 / secs / 1e9);
            if let StoreConfig::Fs { path } = &config {
                std::fs::remove_dir_all(path).unwrap();
            }
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{backend:<3} store {:>6} MiB: best {:>5.2} GB/s, median {:>5.2} GB/s over {ROUNDS} rounds, peak RSS {:>6.1} MiB",
            size / MIB,
            rates[ROUNDS - 1],
            rates[ROUNDS / 2],
            common::peak_rss_mib(),
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let backend = &args[pos + 1];
        let file = PathBuf::from(&args[pos + 2]);
        let store_dir = PathBuf::from(&args[pos + 3]);
        child(backend, &file, &store_dir, args.get(pos + 4).cloned());
        return;
    }
    let mib: u64 = std::env::var("ANNEXA_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir =
        tempfile::tempdir_in(std::env::var("ANNEXA_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))
            .unwrap();
    let file = dir.path().join("evidence.bin");
    make_file(&file, mib);
    // Warm the page cache (the target is "from page cache") and show the hash-only ceiling.
    annexa::store::hash_file(&file).unwrap();
    let start = Instant::now();
    annexa::store::hash_file(&file).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "hash only {mib:>6} MiB in {secs:>6.3} s = {:>5.2} GB/s (the ceiling: SHA-256 on one core)",
        (mib * MIB) as f64 / secs / 1e9
    );
    let start = Instant::now();
    std::fs::copy(&file, dir.path().join("copy.bin")).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "cp only   {mib:>6} MiB in {secs:>6.3} s = {:>5.2} GB/s (kernel copy, no hash, no fsync)",
        (mib * MIB) as f64 / secs / 1e9
    );
    std::fs::remove_file(dir.path().join("copy.bin")).unwrap();
    let start = Instant::now();
    let mut out = std::fs::File::create(dir.path().join("copy.bin")).unwrap();
    annexa::store::copy_hashing(&file, &mut out).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "pipeline  {mib:>6} MiB in {secs:>6.3} s = {:>5.2} GB/s (hash while copying, no fsync)",
        (mib * MIB) as f64 / secs / 1e9
    );
    let start = Instant::now();
    out.sync_all().unwrap();
    println!("fsync     {:>6.3} s", start.elapsed().as_secs_f64());
    std::fs::remove_file(dir.path().join("copy.bin")).unwrap();
    let me = std::env::current_exe().unwrap();

    let status = Command::new(&me)
        .args(["--child", "fs"])
        .arg(&file)
        .arg(dir.path().join("fs-store"))
        .status()
        .unwrap();
    assert!(status.success());

    let data = dir.path().join("s3");
    std::fs::create_dir_all(data.join("bench")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = match Command::new("s3s-fs")
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            "bench",
            "--secret-key",
            "bench-secret",
        ])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3s-fs not found ({e}): run scripts/test once to install it");
            std::process::exit(1);
        }
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = Command::new(&me)
        .args(["--child", "s3"])
        .arg(&file)
        .arg(dir.path())
        .arg(format!("http://127.0.0.1:{port}"))
        .status()
        .unwrap();
    let _ = server.kill();
    assert!(status.success());
}
