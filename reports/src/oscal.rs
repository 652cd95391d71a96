//! OSCAL assessment results (OSCAL 1.1.2): one result for the period, an observation per
//! snapshot (a successful collection, with its `collected` and `expires` times and its collector
//! as origin), a back-matter resource per stored object (its key and SHA-256), and a finding
//! per control. UUIDs are version 5, derived from what they name, so the same report gives the
//! same bytes.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::ControlStatus;
use crate::model::Report;

pub const OSCAL_VERSION: &str = "1.1.2";

/// The namespace of annexa's version 5 UUIDs.
const NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_2f4e_8a1b_4c3d_9e5f_7a8b_9c0d_1e2f);

fn uuid(name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

fn t(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The document, as JSON.
pub fn oscal_assessment_results(r: &Report) -> Value {
    let scope = format!(
        "{}|{}|{}|{}",
        r.organization,
        t(r.period.from),
        t(r.period.to),
        t(r.generated_at)
    );
    let collectors: BTreeSet<&str> = r.snapshots.iter().map(|s| s.collector.as_str()).collect();
    let components: Vec<Value> = collectors
        .iter()
        .map(|c| {
            json!({
                "uuid": uuid(&format!("component|{c}")),
                "type": "software",
                "title": format!("annexa collector {c}"),
                "description": format!("The annexa collector `{c}`, which gathers evidence on a schedule."),
                "status": {"state": "operational"},
            })
        })
        .collect();

    let observations: Vec<Value> = r
        .snapshots
        .iter()
        .map(|s| {
            let evidence: Vec<Value> = r.evidence[s.evidence.clone()]
                .iter()
                .map(|e| {
                    json!({
                        "href": format!("#{}", uuid(&format!("object|{}", e.sha256))),
                        "description": match e.size {
                            Some(size) => format!("{} ({}, {size} bytes)", e.name, e.media_type),
                            None => format!("{} ({})", e.name, e.media_type),
                        },
                    })
                })
                .collect();
            let mut o = json!({
                "uuid": uuid(&format!("observation|{}", s.run_id)),
                "title": format!("{} snapshot of {}", s.collector, t(s.collected_at)),
                "description": format!("Evidence collected by `{}` in run {}.", s.collector, s.run_id),
                "methods": ["TEST"],
                "origins": [{"actors": [{
                    "type": "tool",
                    "actor-uuid": uuid(&format!("component|{}", s.collector)),
                }]}],
                "collected": t(s.collected_at),
                "expires": t(s.expires_at),
            });
            if !evidence.is_empty() {
                o["relevant-evidence"] = Value::Array(evidence);
            }
            o
        })
        .collect();

    let findings: Vec<Value> = r
        .controls
        .iter()
        .map(|c| {
            let mut description = format!("{}: {}.", c.status.as_str(), c.why);
            for f in &c.findings {
                description.push_str(&format!(
                    "\n- {} {} {}: {}",
                    f.level.as_str(),
                    f.code.as_str(),
                    f.subject,
                    f.message
                ));
            }
            for g in r.gaps.iter().filter(|g| g.controls.contains(&c.id)) {
                description.push_str(&format!("\n- {} evidence ({}): {}", g.kind.as_str(), g.collector, g.detail));
            }
            let related: Vec<Value> = r
                .snapshots
                .iter()
                .filter(|s| c.collectors.contains(&s.collector))
                .map(|s| json!({"observation-uuid": uuid(&format!("observation|{}", s.run_id))}))
                .collect();
            let mut f = json!({
                "uuid": uuid(&format!("finding|{scope}|{}", c.id)),
                "title": format!("{} {}", c.id, c.title),
                "description": description,
                "target": {
                    "type": "objective-id",
                    "target-id": c.id,
                    "status": {"state": if c.status == ControlStatus::Satisfied { "satisfied" } else { "not-satisfied" }},
                },
            });
            if !related.is_empty() {
                f["related-observations"] = Value::Array(related);
            }
            f
        })
        .collect();

    let mut seen = BTreeSet::new();
    let resources: Vec<Value> = r
        .evidence
        .iter()
        .filter(|e| seen.insert(e.sha256.as_str()))
        .map(|e| {
            json!({
                "uuid": uuid(&format!("object|{}", e.sha256)),
                "title": e.name,
                "rlinks": [{
                    "href": e.object_key,
                    "media-type": e.media_type,
                    "hashes": [{"algorithm": "SHA-256", "value": e.sha256}],
                }],
            })
        })
        .collect();

    let mut result = json!({
        "uuid": uuid(&format!("result|{scope}")),
        "title": format!("Annex A evidence, {}", r.period.label()),
        "description": format!(
            "Evidence annexa collected for {} from {} to {} (UTC), and each control's status at the end of the period. \
             The ledger checkpoint the report is anchored to: tree size {}, root hash {}, key {}.",
            r.organization, t(r.period.from), t(r.period.to), r.ledger.tree_size, r.ledger.root_hash, r.ledger.key_id
        ),
        "start": t(r.period.from),
        "end": t(r.period.to),
        "reviewed-controls": {"control-selections": [{
            "include-controls": r.controls.iter().map(|c| json!({"control-id": c.id})).collect::<Vec<_>>(),
        }]},
    });
    if !components.is_empty() {
        result["local-definitions"] = json!({"components": components});
    }
    if !observations.is_empty() {
        result["observations"] = Value::Array(observations);
    }
    if !findings.is_empty() {
        result["findings"] = Value::Array(findings);
    }
    let mut doc = json!({
        "uuid": uuid(&format!("assessment-results|{scope}")),
        "metadata": {
            "title": format!("ISO/IEC 27001:2022 Annex A assessment results: {}, {}", r.organization, r.period.label()),
            "last-modified": t(r.generated_at),
            "version": r.annexa_version,
            "oscal-version": OSCAL_VERSION,
            "parties": [{"uuid": uuid(&format!("party|{}", r.organization)), "type": "organization", "name": r.organization}],
        },
        "import-ap": {
            "href": "#",
            "remarks": "annexa assesses continuously against its control catalog; there is no separate assessment plan.",
        },
        "results": [result],
    });
    if !resources.is_empty() {
        doc["back-matter"] = json!({"resources": resources});
    }
    json!({"assessment-results": doc})
}

/// Writes the OSCAL assessment results as JSON.
pub fn render_oscal(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &oscal_assessment_results(r))?;
    writeln!(out)
}
