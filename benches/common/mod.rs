//! What the benches share: peak RSS, and running a measured step in a child process of the
//! bench so its peak RSS is its own.

#![allow(dead_code)]

use std::process::Command;

/// This process's peak resident set size (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Printed by a child as its last word: seconds and peak RSS.
pub fn report_child(secs: f64) {
    eprintln!("RESULT {secs} {}", peak_rss_mib());
}

/// Runs this bench again with `args` (and `env`), and reads the child's seconds and peak RSS.
pub fn run_child(args: &[&str], env: &[(&str, &str)]) -> (f64, f64) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("the child failed:\n{stderr}"));
    let mut parts = line.split_whitespace().map(|p| p.parse::<f64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}
