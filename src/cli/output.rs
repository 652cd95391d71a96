//! Output for people and for programs (`--json`).

use std::io::Write;

/// Writes to stdout; a closed pipe (`annexa status | head`) is not an error.
pub fn print(text: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The worker's parts' output on stdout: text lines, or with `--json` one object per line.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
}

impl crate::ops::Output for Printer {
    fn event(&self, text: &str, json: serde_json::Value) -> std::io::Result<()> {
        let line = if self.json {
            json.to_string()
        } else {
            text.to_string()
        };
        print(format!("{line}\n").as_bytes())
    }

    fn note(&self, text: &str) {
        // Best effort: a closed stdout must not stop the worker.
        let _ = print(format!("{text}\n").as_bytes());
    }
}
