//! Test harness: every test gets its own folder, its own database and its own bucket.
//!
//! The backend pair comes from `ANNEXA_TEST_BACKEND`:
//! - `local` (default): a local folder store and SQLite;
//! - `s3-postgres`: an s3s-fs server started for the test, and a fresh database on the
//!   PostgreSQL server named by `ANNEXA_TEST_POSTGRES_URL` (`scripts/test` starts one).
//!
//! A test that needs a server starts it or fails saying how to get it; none skips quietly.

#![allow(dead_code)]

pub mod proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "annexa-test-ak";
pub const SECRET_KEY: &str = "annexa-test-secret-key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("ANNEXA_TEST_BACKEND").as_deref() {
        Ok("s3-postgres") => Backend::S3Postgres,
        Ok("local") | Err(_) => Backend::Local,
        Ok(other) => panic!("ANNEXA_TEST_BACKEND={other}: use `local` or `s3-postgres`"),
    }
}

/// A running s3s-fs server with one bucket, stopped on drop.
pub struct S3Server {
    child: Child,
    port: u16,
    pub endpoint: String,
    pub bucket: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("s3");
        let bucket = "evidence".to_string();
        std::fs::create_dir_all(data_dir.join(&bucket)).unwrap();
        let port = free_port();
        let child = Self::spawn(port, &data_dir);
        S3Server {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            data_dir,
            _dir: dir,
        }
    }

    fn spawn(port: u16, data_dir: &Path) -> Child {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start s3s-fs ({e}): install it with `cargo install s3s-fs@0.17.0 --locked \
                     --features binary --ignore-rust-version`, or run ./scripts/test which does"
                )
            });
        wait_for_port(port);
        child
    }

    /// An outage: the server stops until [`S3Server::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The same server again, on the same port and data.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port, &self.data_dir);
    }

    /// The file s3s-fs keeps an object's bytes in.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.data_dir.join(&self.bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on, for a server a test starts. Taken below the kernel's
/// ephemeral range (32768 and up on Linux), each at most once per process: a port the kernel
/// hands out (`bind(0)`) can be given again to a parallel test's outgoing connection between
/// this pick and the server's own bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    // Processes start apart, so two test binaries rarely probe the same ports.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 60) as u16 * 200;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free loopback port left below 32000");
        let port = FIRST + (offset + n) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh, uniquely named PostgreSQL database; returns its URL.
pub fn fresh_postgres_database() -> String {
    let admin = std::env::var("ANNEXA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "ANNEXA_TEST_BACKEND=s3-postgres needs ANNEXA_TEST_POSTGRES_URL (an admin URL); \
             ./scripts/test starts a private cluster and sets it"
        )
    });
    let name = format!("annexa_test_{}", uuid::Uuid::now_v7().simple());
    psql(&admin, &format!("CREATE DATABASE {name}"));
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// Runs SQL with psql against `url`, stopping at the first error; the rows, `|`-separated.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Drops a database [`fresh_postgres_database`] made, so that a suite run does not leave a
/// few hundred databases behind on the cluster's disk. Best effort: a failure leaves one behind.
fn drop_postgres_database(url: &str) {
    let (Ok(admin), Ok(url)) = (
        std::env::var("ANNEXA_TEST_POSTGRES_URL"),
        url::Url::parse(url),
    ) else {
        return;
    };
    let name = url.path().trim_start_matches('/');
    let _ = Command::new("psql")
        .args(["-X", "-q", "-d", &admin, "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One test's world: a folder with a config, sources, a database and a store.
pub struct World {
    pub dir: tempfile::TempDir,
    pub s3: Option<S3Server>,
    pub database_url: Option<String>,
    /// Extra environment for every annexa invocation.
    pub env: Vec<(String, String)>,
}

impl World {
    /// A world on the backends `ANNEXA_TEST_BACKEND` selects.
    pub fn new() -> World {
        World::with_backend(backend())
    }

    pub fn with_backend(backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut world = World {
            dir,
            s3: None,
            database_url: None,
            env: Vec::new(),
        };
        if backend == Backend::S3Postgres {
            let s3 = S3Server::start();
            world.env.extend([
                ("ANNEXA_STORE__KIND".into(), "s3".into()),
                ("ANNEXA_STORE__ENDPOINT".into(), s3.endpoint.clone()),
                ("ANNEXA_STORE__BUCKET".into(), s3.bucket.clone()),
            ]);
            let url = fresh_postgres_database();
            world.env.push(("ANNEXA_DATABASE__URL".into(), url.clone()));
            world.database_url = Some(url);
            world.s3 = Some(s3);
        }
        world
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("annexa.toml")
    }

    /// Writes `annexa.toml`. The store and database default to `data/` inside the world; the
    /// S3/PostgreSQL backend overrides them through the environment.
    pub fn config(&self, text: &str) {
        self.write("annexa.toml", text);
    }

    /// The world's `annexa.toml` as the binary would see it (with the backend's environment
    /// and `extra_env`), for tests that drive the library in process.
    pub fn loaded_config(&self, extra_env: &[(&str, &str)]) -> annexa::config::Config {
        let mut env: Vec<(String, String)> = self.env.clone();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push(("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()));
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        let mut c = annexa::config::Config::parse(&text, &self.config_path(), &env).unwrap();
        if let annexa::store::StoreConfig::S3(s3) = &mut c.store {
            s3.static_credentials = Some((
                ACCESS_KEY.into(),
                annexa::base::Secret::new(SECRET_KEY.into()),
            ));
        }
        c
    }

    /// Runs the annexa binary with this world's config and environment.
    pub fn annexa(&self, args: &[&str]) -> Run {
        self.annexa_env(args, &[])
    }

    /// `annexa ARGS` with the simulated clock pinned at `at` (RFC 3339).
    pub fn annexa_at(&self, at: &str, args: &[&str]) -> Run {
        let clock = format!("{at},0.000000001,{}", chrono::Utc::now().timestamp_millis());
        self.annexa_env(args, &[("ANNEXA_SIMULATED_CLOCK", clock.as_str())])
    }

    pub fn annexa_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let output = self.command(args, extra_env).output().expect("annexa runs");
        Run::from(output)
    }

    pub fn command(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Command {
        // Empty AWS config files, so no developer's own profile leaks into a test.
        for f in ["no-aws-config", "no-aws-credentials"] {
            if !self.path(f).exists() {
                std::fs::write(self.path(f), "").unwrap();
            }
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_annexa"));
        cmd.arg("--config").arg(self.config_path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("ANNEXA_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            );
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The local store folder (local backend) or the s3s-fs bucket folder.
    pub fn object_file(&self, key: &str) -> PathBuf {
        match &self.s3 {
            Some(s3) => s3.object_path(key),
            None => self.path("data/store").join(key),
        }
    }
}

/// What one invocation of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A review date `days` ago, so documents in tests never fall overdue as the calendar moves on.
pub fn reviewed_days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// A procedure document in the shape of seed 002, reviewed on `reviewed`.
pub fn procedure(id: &str, reviewed: &str) -> String {
    format!(
        "# Incident Management Procedure (A.5.24)\n\nDocument ID: {id}\nVersion: 1.0\n\
         Effective from: 2025-01-01\nOwner: Founder / CEO\nReview cycle: Annual (or after any Sev1 incident)\n\
         Last reviewed: {reviewed}\n\n## Incident classification\n\nSev1 … Sev4.\n"
    )
}

/// A config with one policy-document collector over `policies/`.
pub const POLICY_CONFIG: &str = r#"
[organization]
name = "Test Org"

[[collector]]
name = "policies"
kind = "policy-document"
schedule = "0 3 * * *"
paths = ["policies"]
review_grace_days = 30
"#;

/// The control `id` in a `status --json` (or report) document.
pub fn control<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no control {id} in {doc}"))
}

/// Copies the tree `from` into `to`, leaving out the entries named in `skip`.
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target, skip);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn rm_rf(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(url) = &self.database_url {
            drop_postgres_database(url);
        }
    }
}
