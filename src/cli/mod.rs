//! The command line. The commands and their options are part of annexa's interface, and so
//! are the exit codes (`exit.rs`); `output.rs` prints for people and for `--json`.

pub mod exit;
pub mod output;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "annexa",
    version,
    about = "Collects and verifies ISO/IEC 27001:2022 Annex A evidence"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "ANNEXA_CONFIG",
        default_value = "annexa.toml"
    )]
    pub config: PathBuf,
    /// Machine-readable JSON output: every line on stdout and stderr is a JSON object, errors
    /// included (`{"error": {…}, "exit": N}`).
    #[arg(long, global = true)]
    pub json: bool,
    /// How log lines on stderr are written (default: `[log] format`, else json with --json,
    /// else text). Which are written is `ANNEXA_LOG` (an env-filter: `[log] level`, else
    /// `warn`; `info`, `annexa=debug`, …).
    #[arg(long, global = true, env = "ANNEXA_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// For `status` and `report`: evaluate at another point in time, an instant (RFC 3339) or
    /// the end of a day (YYYY-MM-DD): a past one from the evidence collected by then, or a
    /// future one to see what will have gone stale or overdue.
    #[arg(long, global = true, value_parser = parse_to)]
    pub as_of: Option<DateTime<Utc>>,
    #[command(subcommand)]
    pub command: Command,
}

pub use crate::config::LogFormat;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented annexa.toml and a signing key into DIR (default: the current folder).
    Init {
        /// The folder to write into; created if missing (default: the current folder).
        dir: Option<PathBuf>,
    },
    /// One full cycle: collect what is due, check, evaluate, alert, checkpoint and report if
    /// due. For cron; `annexa worker` does the same on its own schedule.
    Run,
    /// Check the config and reach everything it names (store, database, signing key, every
    /// collector's sources, every sink), writing nothing; every problem at once (exit 0 or 2).
    Check {
        /// Send each sink a test message (otherwise only a connection is made).
        #[arg(long)]
        send_test: bool,
    },
    /// Run continuously: every collector on its schedule, the daily checkpoint and verify, the
    /// configured report, gap alerts; serve /health, /ready, /metrics and POST /ping/{job}.
    Worker,
    /// Run the named collectors now, whether due or not.
    Collect {
        /// The collectors to run, by their `name` in the config.
        names: Vec<String>,
        /// Every configured collector.
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
    /// The table of controls (with --json, the status document); with --from/--to, each
    /// control's verdict over that period too.
    Status {
        /// The first day (YYYY-MM-DD) or instant (RFC 3339) of a period to judge.
        #[arg(long, value_parser = parse_from, requires = "to")]
        from: Option<DateTime<Utc>>,
        /// The last day (YYYY-MM-DD, included) or the instant the period ends (RFC 3339).
        #[arg(long, value_parser = parse_to, requires = "from")]
        to: Option<DateTime<Utc>>,
    },
    /// The catalog and which configured collectors cover each control.
    Controls,
    /// The Statement of Applicability (`[soa] file`): every Annex A control, applicable or
    /// excluded and why, its owner and implementation, joined with the live status (--json,
    /// --csv).
    Soa {
        /// As CSV (the SoA's columns, then theme, title and status).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// Attach evidence a person vouches for (a training record, exercise minutes, a pentest
    /// report) to controls: stored write-once like any evidence, and pending until a reviewer
    /// approves it (`annexa review`). `--list` shows every attachment with its review.
    Attach {
        /// The files to attach.
        #[arg(required_unless_present = "list")]
        files: Vec<PathBuf>,
        /// The control(s) it evidences, e.g. A.6.3 or A.6.3,A.5.1.
        #[arg(long, value_delimiter = ',', required_unless_present = "list")]
        control: Vec<String>,
        /// What it is (default: the first file's name).
        #[arg(long)]
        title: Option<String>,
        /// Who attests it (default: the control's owner in the Statement of Applicability).
        #[arg(long)]
        owner: Option<String>,
        /// From when it holds (YYYY-MM-DD or RFC 3339; default: now).
        #[arg(long, value_parser = parse_from)]
        effective: Option<DateTime<Utc>>,
        /// The last day (YYYY-MM-DD, included) or the instant (RFC 3339) it holds.
        #[arg(long, value_parser = parse_to, conflicts_with = "max_age")]
        expires: Option<DateTime<Utc>>,
        /// How long after its effective date it holds, e.g. 365d (default: the control's
        /// max_age).
        #[arg(long, value_name = "DURATION")]
        max_age: Option<String>,
        /// A note kept with it.
        #[arg(long)]
        note: Option<String>,
        /// Every attachment, with its review state.
        #[arg(long, conflicts_with_all = ["files", "control", "title", "owner", "effective", "expires", "max_age", "note"])]
        list: bool,
    },
    /// Approve or reject attested evidence (an audit event). The reviewer must not be its
    /// attester unless `[attest] allow_self_review = true`.
    Review {
        /// The evidence id `annexa attach` printed.
        id: String,
        /// It is what it says and counts for its controls until it expires.
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        approve: bool,
        /// It does not count, ever.
        #[arg(long)]
        reject: bool,
        /// The reviewer.
        #[arg(long)]
        by: String,
        /// Why (kept with the review).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Write a signed report bundle for a period (default: the last full month, UTC) and store
    /// it as evidence; print its paths.
    Report {
        /// The first day (YYYY-MM-DD) or instant (RFC 3339) of the period.
        #[arg(long, value_parser = parse_from, requires = "to")]
        from: Option<DateTime<Utc>>,
        /// The last day (YYYY-MM-DD, included) or the instant the period ends (RFC 3339).
        #[arg(long, value_parser = parse_to, requires = "from")]
        to: Option<DateTime<Utc>>,
        /// The formats to write, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "html,md,csv,json,oscal",
              value_parser = format_parser())]
        format: Vec<annexa_reports::Format>,
        /// The folder the bundle goes into (default: `[report] out` of the config).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Integrity check of the store, the database, the ledger and the checkpoints; or, with
    /// --bundle, of a report bundle alone (no database, no store).
    Verify {
        /// A checkpoint (signed note) you trust: the ledger must extend it.
        #[arg(long, conflicts_with = "bundle")]
        trusted: Option<PathBuf>,
        /// A report bundle or evidence package (a folder, or an `annexa export` .tar.zst) to
        /// verify offline.
        #[arg(long, requires = "keys")]
        bundle: Option<PathBuf>,
        /// The verifier file (`annexa keys export`) to check the bundle's signature with.
        #[arg(long, requires = "bundle")]
        keys: Option<PathBuf>,
        /// Re-hash only what the rolling scrub plans: objects written since the last verify and
        /// a slice of the older ones, so that each is re-hashed within `[verify] full_every`.
        /// Every other check is made in full.
        #[arg(long, conflicts_with = "bundle")]
        rolling: bool,
    },
    /// Signing keys: generate, rotate, revoke, list, export the verifier file for auditors.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Sign a checkpoint of the ledger and publish it (to the store and `[ledger] publish`).
    Checkpoint {
        /// Accept that the database was restored from an older copy and the history after it
        /// is lost (recorded as an audit event with REASON); annexa then appends again.
        #[arg(long, value_name = "REASON")]
        acknowledge_rollback: Option<String>,
    },
    /// Proofs for an auditor, as JSON: each run's manifest is in a signed checkpoint of the
    /// whole ledger (an RFC 6962 audit path; the checkpoint is signed now if the ledger grew
    /// since the newest), and `--since` a checkpoint they trust is a prefix of it.
    Prove {
        /// Run ids (`annexa status --json`, `evidence.csv`).
        #[arg(value_name = "RUN", required_unless_present = "since")]
        runs: Vec<String>,
        /// A checkpoint (signed note) the auditor trusts: prove the ledger extends it.
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
        /// Write the proof here instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The auditor's evidence package of a period: the report bundle, every run manifest of
    /// the period with the objects it lists, an audit path of each manifest to a signed
    /// checkpoint, the consistency proof from the previous export, the verifier file, and a
    /// Python checker that needs no annexa. Checked offline by `verify --bundle`.
    Export {
        /// The first day (YYYY-MM-DD) or instant (RFC 3339) of the period.
        #[arg(long, value_parser = parse_from, requires = "to")]
        from: Option<DateTime<Utc>>,
        /// The last day (YYYY-MM-DD, included) or the instant the period ends (RFC 3339).
        #[arg(long, value_parser = parse_to, requires = "from")]
        to: Option<DateTime<Utc>>,
        /// A new folder for the package, or a file ending in `.tar.zst` for one archive.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Draw a sample of a control's population over a period that nobody can steer: the
    /// population is frozen in the ledger, and the root of the first checkpoint after it seeds
    /// the selection. Writes the sample (JSON) and a CSV for the tester; `--verify FILE`
    /// re-checks a sample, `--record FILE` stores the filled-in CSV as attested evidence.
    Sample {
        /// The control, e.g. A.5.26.
        #[arg(long, required_unless_present_any = ["verify", "record"])]
        control: Option<String>,
        /// What to sample: incidents, drills, job-slots, runs or attested.
        #[arg(long, required_unless_present_any = ["verify", "record"])]
        population: Option<String>,
        /// The first day (YYYY-MM-DD) or instant (RFC 3339) of the period.
        #[arg(long, value_parser = parse_from, requires = "to")]
        from: Option<DateTime<Utc>>,
        /// The last day (YYYY-MM-DD, included) or the instant the period ends (RFC 3339).
        #[arg(long, value_parser = parse_to, requires = "from")]
        to: Option<DateTime<Utc>>,
        /// How many items (default: by how often they happen, `[sample]` in the config).
        #[arg(long)]
        size: Option<usize>,
        /// The sample file to write (default: `sample-<id>.json`); its CSV goes beside it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Check a sample file against the records and redo its selection.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["control", "population", "record"])]
        verify: Option<PathBuf>,
        /// Store a sample's filled-in CSV (its JSON beside it) as attested evidence.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["control", "population"])]
        record: Option<PathBuf>,
    },
    /// Record a risk owner's acceptance of a failing finding until a date (an audit event):
    /// until then it counts as a warning and does not alert. `--list` shows every acceptance,
    /// `--revoke EVENT --by NAME` ends one early.
    Accept {
        /// The control, e.g. A.5.24.
        #[arg(long, required_unless_present_any = ["list", "revoke"])]
        control: Option<String>,
        /// The finding code, e.g. policy-review-overdue.
        #[arg(long, required_unless_present_any = ["list", "revoke"])]
        code: Option<String>,
        /// Only findings on this subject (e.g. a document id); default: every subject.
        #[arg(long)]
        subject: Option<String>,
        /// Why the risk is accepted.
        #[arg(long, required_unless_present_any = ["list", "revoke"])]
        reason: Option<String>,
        /// The last day (YYYY-MM-DD, included) or the instant (RFC 3339) it lasts.
        #[arg(long, value_parser = parse_to, required_unless_present_any = ["list", "revoke"])]
        until: Option<DateTime<Utc>>,
        /// The risk owner accepting it (or revoking it).
        #[arg(long, required_unless_present = "list")]
        by: Option<String>,
        /// Every acceptance recorded, with its state.
        #[arg(long, conflicts_with_all = ["control", "code", "subject", "reason", "until", "revoke", "by"])]
        list: bool,
        /// End the acceptance recorded by this audit event now.
        #[arg(long, value_name = "EVENT", conflicts_with_all = ["control", "code", "subject", "reason", "until"])]
        revoke: Option<String>,
    },
    /// Record a heartbeat of an external job, e.g. in a crontab line:
    /// `pg_dump … && annexa ping db-backup || annexa ping db-backup --fail`.
    Ping {
        /// The job, by its `name` in a `[[job]]` of the config.
        job: String,
        /// The job has started (a run that never ends is reported after `max_runtime`).
        #[arg(long, conflicts_with = "fail")]
        start: bool,
        /// The job failed.
        #[arg(long)]
        fail: bool,
        /// A short note kept with the heartbeat (e.g. the error).
        #[arg(long, short)]
        message: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// A first signing key, or a new one after the active key was revoked.
    Generate,
    /// Replace the active key; the old one is retired and co-signs one checkpoint.
    Rotate,
    /// Revoke a key (e.g. compromised): it never signs again.
    Revoke {
        /// The key's id, as `annexa keys list` shows it.
        id: String,
    },
    /// The keys annexa knows, with their states.
    List,
    /// The verifier file auditors check signatures with (to FILE, or stdout).
    Export {
        /// The file to write (default: standard output).
        file: Option<PathBuf>,
    },
}

/// `--format`: the report formats' names, listed in `--help` and in errors.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = annexa_reports::Format> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(annexa_reports::Format::ALL.map(|f| f.as_str()))
        .map(|s| s.parse().expect("one of the possible values"))
}

fn parse_day(s: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
}

fn parse_from(s: &str) -> Result<DateTime<Utc>, String> {
    parse_day(s).map_or_else(|| parse_rfc3339(s), Ok)
}

/// A day is included whole: the period ends at the next midnight.
fn parse_to(s: &str) -> Result<DateTime<Utc>, String> {
    parse_day(s).map_or_else(|| parse_rfc3339(s), |d| Ok(d + chrono::Duration::days(1)))
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-11-22T10:00:00Z")
        })
}
