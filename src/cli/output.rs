//! Output for people and for programs (`--json`).

use std::io::Write;

use crate::ops::Level;

/// Writes to stdout; a closed pipe (`annexa status | head`) is not an error.
pub fn print(text: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The worker's parts' output on stdout: text lines, or with `--json` one object per line.
/// A log line (the worker's, and the run lines of `run` and `collect`, which cron appends to a
/// file) starts with an RFC 3339 time and a level; in JSON they are the `ts` and `level` keys.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
}

/// Now, as a log line starts: `2026-12-01T17:23:51.123Z`.
fn now_stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One log line: `TIME LEVEL text` for people, or the JSON object with `ts` and `level` first.
pub fn log_line(json_mode: bool, level: Level, text: &str, json: serde_json::Value) -> String {
    let ts = now_stamp();
    if json_mode {
        let mut line = serde_json::Map::new();
        line.insert("ts".into(), ts.into());
        line.insert("level".into(), level.as_str().into());
        match json {
            serde_json::Value::Object(fields) => line.extend(fields),
            other => {
                line.insert("event".into(), other);
            }
        }
        format!("{}\n", serde_json::Value::Object(line))
    } else {
        let text = text.trim_end_matches('\n');
        format!("{ts} {:>5} {text}\n", level.as_str().to_uppercase())
    }
}

/// A warning or error on stderr that does not end the command, as a log line.
pub fn complain(json: bool, level: Level, message: &str) {
    let fields = serde_json::json!({ "message": message });
    eprint!("{}", log_line(json, level, message, fields));
}

/// A line of what `run` or `collect` did, for people (with --json the command prints one
/// document instead).
pub fn say(level: Level, text: &str) -> std::io::Result<()> {
    print(log_line(false, level, text, serde_json::Value::Null).as_bytes())
}

/// A line with no JSON form of its own: with --json, `{"ts", "level", "note": "…"}`.
fn note_line(json_mode: bool, text: &str) -> String {
    log_line(
        json_mode,
        Level::Info,
        text,
        serde_json::json!({ "note": text }),
    )
}

impl crate::ops::Output for Printer {
    fn event(&self, level: Level, text: &str, json: serde_json::Value) -> std::io::Result<()> {
        print(log_line(self.json, level, text, json).as_bytes())
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
    fn event(&self, level: Level, text: &str, json: serde_json::Value) -> std::io::Result<()> {
        let line = log_line(self.json, level, text, json);
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
