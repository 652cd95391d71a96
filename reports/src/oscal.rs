//! OSCAL (1.1.2) for a report: the assessment results, one result for the period, with an
//! observation per snapshot (a successful collection, with its `collected` and `expires` times,
//! the component it is about, its collector or its attester and reviewer as origin, and the
//! method by its kind), a back-matter resource per stored object (its key and SHA-256), a
//! finding per control and an open risk per failing finding of a control not satisfied; beside
//! them the assessment plan they import (the controls reviewed, the Statement of
//! Applicability) and a catalog of the controls, which every control id resolves against.
//! UUIDs are version 5, derived from what they name, so the same report gives the same bytes.
//! The results are serialized as they are walked, never held whole in memory.

use std::collections::BTreeSet;
use std::io::Write;

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use uuid::Uuid;

use crate::{ControlStatus, Level};

/// The files written beside the results, which they refer to.
pub const PLAN: &str = "oscal-assessment-plan.json";
pub const CATALOG: &str = "oscal-catalog.json";
use crate::model::{Report, Snapshot};

pub const OSCAL_VERSION: &str = "1.1.2";

/// The namespace of annexa's version 5 UUIDs.
const NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_2f4e_8a1b_4c3d_9e5f_7a8b_9c0d_1e2f);

fn uuid(name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

fn t(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "assessment-results")]
    assessment_results: AssessmentResults<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AssessmentResults<'a> {
    uuid: String,
    metadata: Metadata,
    import_ap: ImportAp,
    results: [OscalResult<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    back_matter: Option<BackMatter<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Metadata {
    title: String,
    last_modified: String,
    version: String,
    oscal_version: &'static str,
    parties: Vec<Party>,
}

#[derive(Serialize)]
struct Party {
    uuid: String,
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
}

#[derive(Serialize)]
struct ImportAp {
    href: String,
    remarks: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct OscalResult<'a> {
    uuid: String,
    title: String,
    description: String,
    start: String,
    end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_definitions: Option<LocalDefinitions>,
    reviewed_controls: ReviewedControls,
    #[serde(skip_serializing_if = "Observations::is_empty")]
    observations: Observations<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    findings: Vec<Finding<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    risks: Vec<Risk>,
}

#[derive(Serialize)]
struct LocalDefinitions {
    components: Vec<Component>,
}

#[derive(Serialize)]
struct Component {
    uuid: String,
    #[serde(rename = "type")]
    kind: &'static str,
    title: String,
    description: String,
    status: State,
}

#[derive(Serialize)]
struct State {
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ReviewedControls {
    control_selections: [ControlSelection; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ControlSelection {
    include_controls: Vec<ControlId>,
    /// The controls the Statement of Applicability excludes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exclude_controls: Vec<ControlId>,
    /// Why each is excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    remarks: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ControlId {
    control_id: String,
}

/// The observations, serialized one by one from the report.
struct Observations<'a>(&'a Report);

impl Observations<'_> {
    fn is_empty(&self) -> bool {
        self.0.snapshots.is_empty()
    }
}

impl Serialize for Observations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.snapshots.len()))?;
        for snapshot in &self.0.snapshots {
            seq.serialize_element(&observation(self.0, snapshot))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Observation {
    uuid: String,
    title: String,
    description: String,
    methods: Vec<&'static str>,
    origins: [Origin; 1],
    subjects: [Subject; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    relevant_evidence: Vec<RelevantEvidence>,
    collected: String,
    expires: String,
}

/// What an observation is about: the collector's component, or for attested evidence the
/// organization that attests it.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Subject {
    subject_uuid: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct Origin {
    actors: Vec<Actor>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Actor {
    #[serde(rename = "type")]
    kind: &'static str,
    actor_uuid: String,
}

#[derive(Serialize)]
struct RelevantEvidence {
    href: String,
    description: String,
}

/// One observation per snapshot of a source: a run's custody manifest and its collector's
/// snapshot are two observations, so each has its own UUID.
/// A document's metadata: what it is (`assessment results`, …), for whom and when.
fn metadata(r: &Report, what: &str) -> Metadata {
    Metadata {
        title: format!(
            "ISO/IEC 27001:2022 Annex A {what}: {}, {}",
            r.organization,
            r.period.label()
        ),
        last_modified: t(r.generated_at),
        version: r.annexa_version.clone(),
        oscal_version: OSCAL_VERSION,
        parties: parties(r),
    }
}

/// The organization, then each person who attested or reviewed evidence in the report.
fn parties(r: &Report) -> Vec<Party> {
    let mut people: Vec<&str> = r
        .snapshots
        .iter()
        .filter_map(|s| s.attested.as_ref())
        .flat_map(|a| [a.owner.as_str(), a.reviewed_by.as_str()])
        .collect();
    people.sort();
    people.dedup();
    std::iter::once(Party {
        uuid: organization_uuid(r),
        kind: "organization",
        name: r.organization.clone(),
    })
    .chain(people.into_iter().map(|name| Party {
        uuid: person(name),
        kind: "person",
        name: name.to_string(),
    }))
    .collect()
}

fn observation_uuid(s: &Snapshot) -> String {
    uuid(&format!("observation|{}|{}", s.collector, s.run_id))
}

/// How a collector's evidence is assessed: records and documents are examined; restore
/// drills and heartbeats are tests of the control in operation.
fn methods(kind: &str) -> Vec<&'static str> {
    match kind {
        "backup-restore" | "cron-health" => vec!["TEST"],
        _ => vec!["EXAMINE"],
    }
}

fn organization_uuid(r: &Report) -> String {
    uuid(&format!("party|{}", r.organization))
}

fn person(name: &str) -> String {
    uuid(&format!("party|person|{name}"))
}

fn observation(r: &Report, s: &Snapshot) -> Observation {
    // Attested evidence: a document examined and a person's statement, by its attester and
    // its reviewer; anything else: a tool's test.
    let (methods, actors, description) = match &s.attested {
        Some(a) => (
            vec!["EXAMINE", "INTERVIEW"],
            vec![
                Actor {
                    kind: "party",
                    actor_uuid: person(&a.owner),
                },
                Actor {
                    kind: "party",
                    actor_uuid: person(&a.reviewed_by),
                },
            ],
            format!(
                "\"{}\", attested by {} (effective {}), approved by {} on {}{}; evidence {}.",
                a.title,
                a.owner,
                t(a.effective),
                a.reviewed_by,
                t(a.reviewed_at),
                if a.self_review {
                    " (a self-review, allowed by [attest] allow_self_review)"
                } else {
                    ""
                },
                s.run_id
            ),
        ),
        None => (
            methods(&s.kind),
            vec![Actor {
                kind: "tool",
                actor_uuid: uuid(&format!("component|{}", s.collector)),
            }],
            format!(
                "Evidence collected by `{}` in run {}.",
                s.collector, s.run_id
            ),
        ),
    };
    Observation {
        uuid: observation_uuid(s),
        title: format!("{} snapshot of {}", s.collector, t(s.collected_at)),
        description,
        methods,
        origins: [Origin { actors }],
        subjects: [match &s.attested {
            Some(_) => Subject {
                subject_uuid: organization_uuid(r),
                kind: "party",
            },
            None => Subject {
                subject_uuid: uuid(&format!("component|{}", s.collector)),
                kind: "component",
            },
        }],
        relevant_evidence: r.evidence[s.evidence.clone()]
            .iter()
            .map(|e| RelevantEvidence {
                href: format!("#{}", uuid(&format!("object|{}", e.sha256))),
                description: match e.size {
                    Some(size) => format!("{} ({}, {size} bytes)", e.name, e.media_type),
                    None => format!("{} ({})", e.name, e.media_type),
                },
            })
            .collect(),
        collected: t(s.collected_at),
        expires: t(s.expires_at),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Finding<'a> {
    uuid: String,
    title: String,
    description: String,
    target: Target,
    #[serde(skip_serializing_if = "RelatedObservations::is_empty")]
    related_observations: RelatedObservations<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_risks: Vec<RiskRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RiskRef {
    risk_uuid: String,
}

/// A failing finding of a control that is not satisfied: an open risk until it is resolved.
#[derive(Serialize)]
struct Risk {
    uuid: String,
    title: String,
    description: String,
    statement: String,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Target {
    #[serde(rename = "type")]
    kind: &'static str,
    target_id: String,
    status: State,
}

/// The observations of a control's collectors, serialized one by one.
struct RelatedObservations<'a> {
    report: &'a Report,
    collectors: &'a [String],
}

impl RelatedObservations<'_> {
    fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.report
            .snapshots
            .iter()
            .filter(|s| self.collectors.contains(&s.collector))
    }

    fn is_empty(&self) -> bool {
        self.snapshots().next().is_none()
    }
}

impl Serialize for RelatedObservations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Related {
            #[serde(rename = "observation-uuid")]
            observation_uuid: String,
        }
        let mut seq = s.serialize_seq(None)?;
        for snapshot in self.snapshots() {
            seq.serialize_element(&Related {
                observation_uuid: observation_uuid(snapshot),
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct BackMatter<'a> {
    resources: Resources<'a>,
}

/// One resource per distinct object, serialized one by one.
struct Resources<'a>(&'a Report);

impl Serialize for Resources<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Resource<'a> {
            uuid: String,
            title: &'a str,
            rlinks: [Rlink<'a>; 1],
        }
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct Rlink<'a> {
            href: &'a str,
            media_type: &'a str,
            hashes: [Hash<'a>; 1],
        }
        #[derive(Serialize)]
        struct Hash<'a> {
            algorithm: &'static str,
            value: &'a str,
        }
        let mut seen = BTreeSet::new();
        let mut seq = s.serialize_seq(None)?;
        for e in &self.0.evidence {
            if !seen.insert(e.sha256.as_str()) {
                continue;
            }
            seq.serialize_element(&Resource {
                uuid: uuid(&format!("object|{}", e.sha256)),
                title: &e.name,
                rlinks: [Rlink {
                    href: &e.object_key,
                    media_type: &e.media_type,
                    hashes: [Hash {
                        algorithm: "SHA-256",
                        value: &e.sha256,
                    }],
                }],
            })?;
        }
        seq.end()
    }
}

fn document(r: &Report) -> Document<'_> {
    let scope = format!(
        "{}|{}|{}|{}",
        r.organization,
        t(r.period.from),
        t(r.period.to),
        t(r.generated_at)
    );
    let collectors: BTreeSet<&str> = r
        .snapshots
        .iter()
        .filter(|s| s.attested.is_none())
        .map(|s| s.collector.as_str())
        .collect();
    let components: Vec<Component> = collectors
        .iter()
        .map(|c| Component {
            uuid: uuid(&format!("component|{c}")),
            kind: "software",
            title: format!("annexa collector {c}"),
            description: format!(
                "The annexa collector `{c}`, which gathers evidence on a schedule."
            ),
            status: State {
                state: "operational",
            },
        })
        .collect();
    let mut risks: Vec<Risk> = Vec::new();
    let findings = r
        .controls
        .iter()
        .map(|c| {
            let mut related_risks = Vec::new();
            if c.status != ControlStatus::Satisfied {
                for f in c.findings.iter().filter(|f| f.level == Level::Fail) {
                    let id = uuid(&format!(
                        "risk|{scope}|{}|{}|{}|{}",
                        c.id, f.collector, f.code, f.subject
                    ));
                    if related_risks.iter().any(|r: &RiskRef| r.risk_uuid == id) {
                        continue;
                    }
                    related_risks.push(RiskRef {
                        risk_uuid: id.clone(),
                    });
                    risks.push(Risk {
                        uuid: id,
                        title: format!("{} {} on {}", c.id, f.code, f.subject),
                        description: f.message.clone(),
                        statement: format!(
                            "Until resolved, the evidence does not show {} {} operating: {}.",
                            c.id,
                            c.title,
                            f.code.description()
                        ),
                        status: "open",
                    });
                }
            }
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
                description.push_str(&format!(
                    "\n- {} evidence ({}): {}",
                    g.kind.as_str(),
                    g.collector,
                    g.text()
                ));
            }
            Finding {
                uuid: uuid(&format!("finding|{scope}|{}", c.id)),
                title: format!("{} {}", c.id, c.title),
                description,
                target: Target {
                    kind: "objective-id",
                    target_id: c.id.clone(),
                    status: State {
                        state: if c.status == ControlStatus::Satisfied {
                            "satisfied"
                        } else {
                            "not-satisfied"
                        },
                    },
                },
                related_observations: RelatedObservations {
                    report: r,
                    collectors: &c.collectors,
                },
                related_risks,
            }
        })
        .collect();
    Document {
        assessment_results: AssessmentResults {
            uuid: uuid(&format!("assessment-results|{scope}")),
            metadata: metadata(r, "assessment results"),
            import_ap: ImportAp {
                href: PLAN.to_string(),
                remarks: "The assessment plan annexa wrote beside these results: the controls reviewed, the Statement of Applicability and the catalog their ids resolve against.",
            },
            results: [OscalResult {
                uuid: uuid(&format!("result|{scope}")),
                title: format!("Annex A evidence, {}", r.period.label()),
                description: format!(
                    "Evidence annexa collected for {} from {} to {} (UTC), and each control's status at the end of the period. \
                     The ledger checkpoint the report is anchored to: tree size {}, root hash {}, key {}.",
                    r.organization,
                    t(r.period.from),
                    t(r.period.to),
                    r.ledger.tree_size,
                    r.ledger.root_hash,
                    r.ledger.key_id
                ),
                start: t(r.period.from),
                end: t(r.period.to),
                local_definitions: (!components.is_empty())
                    .then_some(LocalDefinitions { components }),
                reviewed_controls: reviewed_controls(r),
                observations: Observations(r),
                findings,
                risks,
            }],
            back_matter: (!r.evidence.is_empty()).then_some(BackMatter {
                resources: Resources(r),
            }),
        },
    }
}

/// The controls reviewed: those the report judges, and those the SoA excludes, with why.
fn reviewed_controls(r: &Report) -> ReviewedControls {
    ReviewedControls {
        control_selections: [ControlSelection {
            include_controls: r
                .controls
                .iter()
                .map(|c| ControlId {
                    control_id: c.id.clone(),
                })
                .collect(),
            exclude_controls: r
                .excluded
                .iter()
                .map(|e| ControlId {
                    control_id: e.id.clone(),
                })
                .collect(),
            remarks: (!r.excluded.is_empty()).then(|| {
                let why: Vec<String> = r
                    .excluded
                    .iter()
                    .map(|e| format!("{} excluded: {}", e.id, e.justification))
                    .collect();
                format!("Statement of Applicability: {}", why.join("; "))
            }),
        }],
    }
}

/// The document as a JSON value (for tests and small reports).
pub fn oscal_assessment_results(r: &Report) -> serde_json::Value {
    serde_json::to_value(document(r)).expect("the OSCAL document serializes")
}

/// Writes the OSCAL assessment results as compact JSON, streaming.
pub fn render_oscal(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &document(r))?;
    writeln!(out)
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct PlanDocument {
    assessment_plan: AssessmentPlan,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AssessmentPlan {
    uuid: String,
    metadata: Metadata,
    import_ssp: ImportAp,
    reviewed_controls: ReviewedControls,
    back_matter: PlainBackMatter,
}

#[derive(Serialize)]
struct PlainBackMatter {
    resources: Vec<FileResource>,
}

/// A file of the bundle, named relative to the document.
#[derive(Serialize)]
struct FileResource {
    uuid: String,
    title: String,
    description: String,
    rlinks: [FileLink; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct FileLink {
    href: String,
    media_type: &'static str,
}

/// Writes the assessment plan the results import: annexa's plan is continuous collection of
/// the controls the Statement of Applicability applies; it has no system security plan, so
/// `import-ssp` names the SoA, a back-matter resource.
pub fn render_oscal_plan(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let scope = format!("{}|{}|{}", r.organization, t(r.period.from), t(r.period.to));
    let soa = uuid(&format!("resource|soa|{scope}"));
    let doc = PlanDocument {
        assessment_plan: AssessmentPlan {
            uuid: uuid(&format!("assessment-plan|{scope}")),
            metadata: metadata(r, "assessment plan"),
            import_ssp: ImportAp {
                href: format!("#{soa}"),
                remarks: "No system security plan: the scope is the Statement of Applicability (ISO/IEC 27001:2022 clause 6.1.3 d).",
            },
            reviewed_controls: reviewed_controls(r),
            back_matter: PlainBackMatter {
                resources: vec![
                    FileResource {
                        uuid: soa,
                        title: "Statement of Applicability".into(),
                        description: match &r.soa_file {
                            Some(f) => format!("Every Annex A control, applicable or excluded and why, from {f}; soa.csv in the report's CSV set."),
                            None => "No Statement of Applicability is configured: every control of annexa's catalog is reviewed; soa.csv in the report's CSV set lists all 93.".into(),
                        },
                        rlinks: [FileLink {
                            href: "soa.csv".into(),
                            media_type: "text/csv",
                        }],
                    },
                    catalog_resource(&scope),
                ],
            },
        },
    };
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}

fn catalog_resource(scope: &str) -> FileResource {
    FileResource {
        uuid: uuid(&format!("resource|catalog|{scope}")),
        title: "ISO/IEC 27001:2022 Annex A control catalog".into(),
        description: "The controls' ids and titles, which every control-id here resolves against."
            .into(),
        rlinks: [FileLink {
            href: CATALOG.into(),
            media_type: "application/json",
        }],
    }
}

#[derive(Serialize)]
struct CatalogDocument {
    catalog: Catalog,
}

#[derive(Serialize)]
struct Catalog {
    uuid: String,
    metadata: CatalogMetadata,
    groups: Vec<Group>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct CatalogMetadata {
    title: String,
    last_modified: String,
    version: String,
    oscal_version: &'static str,
}

#[derive(Serialize)]
struct Group {
    id: String,
    title: String,
    controls: Vec<CatalogControl>,
}

#[derive(Serialize)]
struct CatalogControl {
    id: String,
    title: String,
}

/// Writes the catalog of the controls the report names: ISO/IEC 27001:2022 Annex A by theme
/// (ids and titles only: the standard's text is not annexa's to ship), and any the config adds.
pub fn render_oscal_catalog(r: &Report, out: &mut impl Write) -> std::io::Result<()> {
    let themes = [
        ("organizational", "Organizational controls (clause 5)"),
        ("people", "People controls (clause 6)"),
        ("physical", "Physical controls (clause 7)"),
        ("technological", "Technological controls (clause 8)"),
        ("", "Controls the configuration adds"),
    ];
    let groups = themes
        .iter()
        .map(|(theme, title)| Group {
            id: if theme.is_empty() { "added" } else { theme }.to_string(),
            title: title.to_string(),
            controls: r
                .soa
                .iter()
                .filter(|e| e.theme == *theme)
                .map(|e| CatalogControl {
                    id: e.id.clone(),
                    title: e.title.clone(),
                })
                .collect(),
        })
        .filter(|g| !g.controls.is_empty())
        .collect();
    let doc = CatalogDocument {
        catalog: Catalog {
            uuid: uuid(&format!("catalog|{}", r.annexa_version)),
            metadata: CatalogMetadata {
                title: "ISO/IEC 27001:2022 Annex A controls (ids and titles)".into(),
                last_modified: t(r.generated_at),
                version: r.annexa_version.clone(),
                oscal_version: OSCAL_VERSION,
            },
            groups,
        },
    };
    serde_json::to_writer(&mut *out, &doc)?;
    writeln!(out)
}
