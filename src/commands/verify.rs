//! `annexa verify`: exit 4 and every violation named when anything does not match.

use crate::app::Annexa;
use crate::cli::exit::{Exit, Failure};
use crate::cli::output::print;

pub async fn verify(
    app: &Annexa,
    trusted: Option<&std::path::Path>,
    rolling: bool,
    json: bool,
) -> Result<Exit, Failure> {
    let trusted = match trusted {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            anyhow::anyhow!("cannot read the trusted checkpoint {}: {e}", p.display())
        })?),
        None => None,
    };
    let report = crate::ledger::verify::verify(app, trusted.as_deref(), rolling).await?;
    // The outcome is an audit event: a failed verify is an `integrity-violation` finding on
    // A.5.28 until a later one passes. A database that cannot take it is already reported.
    if let Err(e) = crate::ledger::verify::record(app, &report).await {
        eprintln!("warning: the outcome of this verify could not be recorded: {e:#}");
    }
    let header = format!(
        "store {}: {} of {} objects re-hashed ({} bytes{}), {} runs, ledger of {} leaves with root {}, {} checkpoints",
        report.store,
        report.objects_checked,
        report.objects_in_store,
        report.bytes_hashed,
        report
            .coverage
            .as_ref()
            .map(coverage_text)
            .unwrap_or_default(),
        report.runs_checked,
        report.ledger_size,
        report.ledger_root,
        report.checkpoints_checked
    );
    print_report(&report, &header, json)
}

/// Prints a verify report; exit 4 when anything does not match.
fn print_report(
    report: &crate::ledger::verify::VerifyReport,
    header: &str,
    json: bool,
) -> Result<Exit, Failure> {
    let mut out = String::new();
    if json {
        out = serde_json::to_string(&report)? + "\n";
    } else {
        out.push_str(header);
        out.push('\n');
        for note in &report.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        for v in &report.violations {
            out.push_str(&format!(
                "VIOLATION {} at {}: expected {}, found {}\n",
                v.kind, v.location, v.expected, v.actual
            ));
        }
        out.push_str(&if report.violations.is_empty() {
            "verified: no violations\n".to_string()
        } else {
            format!(
                "{} integrity violation(s): do not trust this evidence until they are explained\n",
                report.violations.len()
            )
        });
    }
    print(out.as_bytes())?;
    Ok(if report.violations.is_empty() {
        Exit::Ok
    } else {
        Exit::Integrity
    })
}

/// `annexa verify --bundle DIR --keys FILE`: a report bundle or an evidence package (a folder
/// or its `.tar.zst`) alone, offline.
pub fn verify_bundle(
    dir: &std::path::Path,
    keys: &std::path::Path,
    json: bool,
) -> Result<Exit, Failure> {
    let keys = std::fs::read_to_string(keys)
        .map_err(|e| anyhow::anyhow!("cannot read the verifier file {}: {e}", keys.display()))?;
    let keys = crate::ledger::keyring::read_verifier_file(&keys)
        .map_err(|e| anyhow::anyhow!("the verifier file is not usable: {e}"))?;
    use crate::ledger::package;
    let unpacked = match dir.is_file() {
        true => Some(package::unpack(dir).map_err(Failure::usage)?),
        false => None,
    };
    let folder = unpacked.as_ref().map_or(dir, |d| d.path());
    let (report, header) = if folder.join(package::MANIFEST).exists() {
        let report = package::check(folder, &keys)?;
        let header = format!(
            "package {}: {} files re-hashed ({} bytes), {} runs proved in the checkpoint of {} leaves with root {}",
            dir.display(),
            report.objects_checked,
            report.bytes_hashed,
            report.runs_checked,
            report.ledger_size,
            report.ledger_root
        );
        (report, header)
    } else {
        let report = crate::ledger::bundle::check(folder, &keys)?;
        let header = format!(
            "bundle {}: {} files re-hashed ({} bytes)",
            dir.display(),
            report.objects_checked,
            report.bytes_hashed
        );
        (report, header)
    };
    print_report(&report, &header, json)
}

/// What a verify's re-hash covered, for its header line.
fn coverage_text(c: &crate::ledger::scrub::Coverage) -> String {
    let oldest = match &c.oldest_rehash {
        Some(t) => format!(
            "the object re-hashed longest ago was last re-hashed {}",
            &t[..16].replace('T', " ")
        ),
        None => "some objects have not been re-hashed since annexa began to record it".into(),
    };
    match (&c.from, &c.to, &c.new_since) {
        (Some(from), Some(to), Some(since)) => format!(
            "; rolling: objects recorded since {} and the slice {from}..{to}; {oldest}",
            &since[..16].replace('T', " ")
        ),
        _ => "; full".to_string(),
    }
}
