//! `annexa check`: the config, then everything it names reached for real (the store, the
//! database, the signing key, each collector's sources, each sink), with every problem listed
//! at once and its fix. It writes nothing: the database is opened to read only, the store is
//! not created or cleaned, collectors run as rehearsals (their evidence is not stored, no
//! restore drill runs), sinks get a connection and no message unless `--send-test`.

use serde::Serialize;

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;
use crate::config::{CollectorKind, Config};
use crate::db::Db;
use crate::ledger::keyring::{KeyFound, judge_key};
use crate::store::EvidenceStore;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Ok,
    /// Not a problem, but something to know (a database the first run creates).
    Note,
    Problem,
}

#[derive(Debug, Serialize)]
struct Check {
    what: String,
    outcome: Outcome,
    detail: String,
}

/// The checks so far.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, what: impl Into<String>, outcome: Outcome, detail: impl Into<String>) {
        self.0.push(Check {
            what: what.into(),
            outcome,
            detail: detail.into(),
        });
    }

    fn problems(&self) -> usize {
        self.0
            .iter()
            .filter(|c| c.outcome == Outcome::Problem)
            .count()
    }
}

pub async fn check(config: Config, send_test: bool, json: bool) -> Result<Exit, Failure> {
    let (clock, _) = crate::base::clock::from_env().map_err(anyhow::Error::msg)?;
    let mut checks = Checks::default();
    checks.add(
        "config",
        Outcome::Ok,
        format!(
            "{}: {} collector(s), {} job(s), {} sink(s)",
            config.path.display(),
            config.collectors.len(),
            config.jobs.len(),
            config.alerts.sinks.len()
        ),
    );

    // Where nothing can be read, a scratch database and store stand in, so every source is
    // still checked; they are removed at the end.
    let scratch = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let db = database(&config, &mut checks, scratch.path()).await?;
    let store = match EvidenceStore::open_read_only(&config.store).await {
        Ok((store, found)) => {
            checks.add("store", Outcome::Ok, found);
            store
        }
        Err(e) => {
            checks.add("store", Outcome::Problem, format!("{e}"));
            let path = scratch.path().join("store");
            let stand_in = crate::store::StoreConfig::Fs { path };
            EvidenceStore::open_read_only(&stand_in).await?.0
        }
    };
    let app = Annexa::of(config, db, store, clock);
    signing_key(&app, &mut checks).await;
    collectors(&app, &mut checks).await;
    sinks(&app, &mut checks, send_test, json).await;

    let problems = checks.problems();
    if json {
        let doc = serde_json::json!({
            "config": app.config.path.display().to_string(),
            "checks": checks.0,
            "problems": problems,
        });
        print(format!("{doc}\n").as_bytes())?;
    } else {
        let mut text = String::new();
        for c in &checks.0 {
            let word = match c.outcome {
                Outcome::Ok => "ok",
                Outcome::Note => "note",
                Outcome::Problem => "PROBLEM",
            };
            text.push_str(&format!("{word:<8} {}: {}\n", c.what, c.detail));
        }
        text.push_str(&match problems {
            0 => "\nNo problems. Nothing was written.\n".to_string(),
            n => format!(
                "\n{n} problem{} to fix. Nothing was written: no store object, no database row, no ledger leaf.\n",
                if n == 1 { "" } else { "s" }
            ),
        });
        print(text.as_bytes())?;
    }
    Ok(if problems == 0 { Exit::Ok } else { Exit::Usage })
}

/// The database opened to read only, or a scratch one where it cannot be read as it is.
async fn database(
    config: &Config,
    checks: &mut Checks,
    scratch: &std::path::Path,
) -> Result<Db, Failure> {
    let url = config.database_url.expose();
    let location = match url.strip_prefix("sqlite://") {
        Some(rest) => format!("SQLite {}", rest.split('?').next().unwrap_or(rest)),
        None => crate::base::redact::location(url),
    };
    match Db::open_read_only(&config.database_url).await {
        Ok(Some((db, 0))) => {
            checks.add(
                "database",
                Outcome::Ok,
                format!("{location}: reachable, schema current"),
            );
            return Ok(db);
        }
        Ok(Some((_, pending))) => {
            checks.add(
                "database",
                Outcome::Note,
                format!(
                    "{location}: reachable; {pending} migration(s) pending, which the next run applies (the sources were checked against an empty database)"
                ),
            );
        }
        Ok(None) => checks.add(
            "database",
            Outcome::Note,
            format!("{location} does not exist yet: the first run creates it"),
        ),
        Err(e) => checks.add("database", Outcome::Problem, e.to_string()),
    }
    let url = format!("sqlite://{}?mode=rwc", scratch.join("check.db").display());
    Ok(Db::connect(&crate::base::Secret::new(url)).await?)
}

/// The key file against the recorded keys.
async fn signing_key(app: &Annexa, checks: &mut Checks) {
    let path = &app.config.ledger.key_file;
    let keys = app.db.keys().await.unwrap_or_default();
    match judge_key(path, &keys) {
        Ok(KeyFound::Active(key)) => checks.add(
            "signing key",
            Outcome::Ok,
            format!(
                "{}: key {}, the active signing key",
                path.display(),
                hex::encode(key.key_id())
            ),
        ),
        Ok(KeyFound::Unrecorded(key)) => checks.add(
            "signing key",
            Outcome::Ok,
            format!(
                "{}: key {}, recorded as the active key at its first signature",
                path.display(),
                hex::encode(key.key_id())
            ),
        ),
        Ok(KeyFound::ToGenerate) => checks.add(
            "signing key",
            Outcome::Note,
            format!(
                "none at {} yet: the first run generates one there (back it up)",
                path.display()
            ),
        ),
        Err(e) => checks.add("signing key", Outcome::Problem, format!("{e:#}")),
    }
}

/// Each collector rehearsed: its sources read as its run would, nothing stored.
async fn collectors(app: &Annexa, checks: &mut Checks) {
    for c in &app.config.collectors {
        let what = format!("collector `{}` ({})", c.name, c.kind.name());
        let placeholders = c.placeholders();
        if !placeholders.is_empty() {
            checks.add(
                what,
                Outcome::Problem,
                format!(
                    "still the template's placeholder {}: set its source, or comment the collector out",
                    placeholders.join(", ")
                ),
            );
            continue;
        }
        match crate::evidence::runner::rehearse(app, c).await {
            Ok(r) => {
                let mut detail = format!("sources read: {} evidence item(s)", r.items);
                if !r.findings.is_empty() {
                    let shown: Vec<String> = r
                        .findings
                        .iter()
                        .take(5)
                        .map(|f| format!("{} on {}", f.code, f.subject))
                        .collect();
                    detail.push_str(&format!(
                        "; a run now would find {}: {}{}",
                        r.findings.len(),
                        shown.join(", "),
                        if r.findings.len() > 5 { ", …" } else { "" }
                    ));
                }
                if matches!(&c.kind, CollectorKind::BackupRestore(b) if b.drill.is_some()) {
                    detail.push_str(
                        " (the restore drill is not run by check: its prerequisites are)",
                    );
                }
                checks.add(what, Outcome::Ok, detail);
            }
            Err(e) => checks.add(what, Outcome::Problem, format!("a run now would fail: {e}")),
        }
    }
}

/// Each sink reached (or sent a test message; the stdout sink prints it).
async fn sinks(app: &Annexa, checks: &mut Checks, send_test: bool, json: bool) {
    let client = crate::ops::alerts::http_client(&app.config);
    let out = crate::cli::output::Printer { json };
    for sink in &app.config.alerts.sinks {
        let what = format!("sink `{}`", sink.name);
        match crate::ops::alerts::probe_sink(app, &client, sink, &out, send_test).await {
            Ok(detail) => checks.add(what, Outcome::Ok, detail),
            Err(e) => checks.add(what, Outcome::Problem, e),
        }
    }
}
