//! `annexa verify`: exit 4 and every violation named when anything does not match.

use crate::Annexa;
use crate::exit::Exit;

pub async fn verify(app: &Annexa, json: bool) -> anyhow::Result<Exit> {
    let report = crate::verify::verify(app).await?;
    let mut out = String::new();
    if json {
        out = serde_json::to_string(&report)? + "\n";
    } else {
        out.push_str(&format!(
            "store {}: {} objects re-hashed ({} bytes), {} runs, ledger of {} leaves with root {}\n",
            report.store,
            report.objects_checked,
            report.bytes_hashed,
            report.runs_checked,
            report.ledger_size,
            report.ledger_root
        ));
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
    super::print(out.as_bytes())?;
    Ok(if report.violations.is_empty() {
        Exit::Ok
    } else {
        Exit::Integrity
    })
}
