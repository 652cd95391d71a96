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

/// One event as a line: for people, or with `--json` its JSON object.
fn event_line(json_mode: bool, text: &str, json: serde_json::Value) -> String {
    if json_mode {
        format!("{json}\n")
    } else {
        format!("{text}\n")
    }
}

/// A warning or error on stderr that does not end the command: `warning: …` for people, with
/// --json `{"level": "warning", "message": …}`.
pub fn complain(json: bool, level: &str, message: &str) {
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "level": level, "message": message })
        );
    } else {
        eprintln!("{level}: {message}");
    }
}

/// A line with no JSON form of its own: with --json, `{"note": "…"}`, so every line parses.
fn note_line(json_mode: bool, text: &str) -> String {
    if json_mode {
        format!("{}\n", serde_json::json!({ "note": text }))
    } else {
        format!("{text}\n")
    }
}

impl crate::ops::Output for Printer {
    fn event(&self, text: &str, json: serde_json::Value) -> std::io::Result<()> {
        print(event_line(self.json, text, json).as_bytes())
    }

    fn note(&self, text: &str) {
        // Best effort: a closed stdout must not stop the worker.
        let _ = print(note_line(self.json, text).as_bytes());
    }
}

/// A [`Printer`] that holds what it is given until [`Held::flush`]: `annexa run` prints the
/// collectors' lines and the status table first, then the alerts the tick sent.
#[derive(Debug, Default)]
pub struct Held {
    pub json: bool,
    lines: std::sync::Mutex<Vec<String>>,
}

impl Held {
    pub fn new(json: bool) -> Held {
        Held {
            json,
            lines: std::sync::Mutex::default(),
        }
    }

    /// Prints what was held, in order.
    pub fn flush(&self) -> std::io::Result<()> {
        let lines = std::mem::take(&mut *self.lines.lock().expect("not poisoned"));
        print(lines.concat().as_bytes())
    }
}

impl crate::ops::Output for Held {
    fn event(&self, text: &str, json: serde_json::Value) -> std::io::Result<()> {
        let line = event_line(self.json, text, json);
        self.lines.lock().expect("not poisoned").push(line);
        Ok(())
    }

    fn note(&self, text: &str) {
        self.lines
            .lock()
            .expect("not poisoned")
            .push(note_line(self.json, text));
    }
}

impl Drop for Held {
    /// A command that fails half-way still prints what its sinks sent.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
