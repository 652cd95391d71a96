//! Controls: the catalog (data, embedded, overridable) and the evaluation of each control's
//! status from the state of the sources that evidence it.

mod evaluate;
pub mod period;

use std::collections::BTreeMap;
use std::time::Duration;

use annexa_collectors::FindingCode;
use serde::Deserialize;

pub use evaluate::{Judging, RunState, SourceState, evaluate};

use crate::base::closed_set;

/// The collector name of annexa's own custody log: its run manifests evidence A.5.28.
pub const CUSTODY: &str = "annexa";

/// The source name attested evidence is recorded under (`annexa attach`).
pub const ATTESTED: &str = "attested";

/// How long attested evidence stays fresh when neither its attachment nor the control says.
pub const ATTESTED_MAX_AGE: Duration = Duration::from_secs(365 * 86_400);

closed_set! {
    /// The evidence kinds a control can require (`requires` in the catalog): the collector
    /// kinds, a restore drill, and annexa's own custody log.
    pub enum Evidence {
        PolicyDocument = "policy-document",
        IncidentLog = "incident-log",
        CronHealth = "cron-health",
        GithubAlerts = "github-alerts",
        BackupRestore = "backup-restore",
        RestoreDrill = "restore-drill",
        Custody = "annexa",
        /// Files a person attached (`annexa attach`), approved by a reviewer.
        Attested = "attested",
    }
}

impl Evidence {
    /// What provides it, as a control's `evidence-missing` finding tells the reader to add.
    pub fn how_to_provide(self, control: &str) -> String {
        match self {
            Evidence::PolicyDocument => format!(
                "a policy or procedure mapped to {control}: a `Controls: {control}` line in the header of a document a policy-document collector reads, or `controls = [\"{control}\"]` under its [collector.documents.\"<id>\"]"
            ),
            Evidence::RestoreDrill => {
                "a restore drill: a [collector.drill] table in a backup-restore collector"
                    .to_string()
            }
            Evidence::Custody => "annexa's own custody log (run `annexa run` once)".to_string(),
            Evidence::Attested => format!(
                "a file with `annexa attach FILE --control {control}`, approved by a reviewer (`annexa review`)"
            ),
            kind => format!("a [[collector]] of kind {kind}"),
        }
    }
}

const DEFAULT_CATALOG: &str = include_str!("catalog.toml");

/// ISO/IEC 27001:2022 Annex A: every control's id, theme and title, in the standard's order.
const ANNEX_A: &str = include_str!("annex_a.csv");

closed_set! {
    /// The four themes Annex A groups its controls in (clauses 5 to 8).
    pub enum Theme {
        Organizational = "organizational",
        People = "people",
        Physical = "physical",
        Technological = "technological",
    }
}

/// One control of ISO/IEC 27001:2022 Annex A.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnexControl {
    pub id: String,
    pub theme: Theme,
    pub title: String,
}

/// The 93 controls of Annex A, in the standard's order (parsed once).
pub fn annex_a() -> &'static [AnnexControl] {
    #[derive(Deserialize)]
    struct Row {
        id: String,
        theme: String,
        title: String,
    }
    static ANNEX: std::sync::LazyLock<Vec<AnnexControl>> = std::sync::LazyLock::new(|| {
        csv::Reader::from_reader(ANNEX_A.as_bytes())
            .deserialize::<Row>()
            .map(|row| {
                let row = row.expect("the embedded Annex A list parses");
                AnnexControl {
                    theme: row.theme.parse().expect("an embedded theme"),
                    id: row.id,
                    title: row.title,
                }
            })
            .collect()
    });
    &ANNEX
}

/// The standard's title of an Annex A control.
pub fn annex_title(id: &str) -> Option<&'static str> {
    annex_a()
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.title.as_str())
}

/// A risk owner's acceptance of a `fail` finding (ISO/IEC 27001 6.1.3 f, 8.3), recorded as an
/// audit event. While it lasts, matching findings count as warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// The audit event that recorded it.
    pub event: String,
    pub control: String,
    pub code: FindingCode,
    /// Only findings on this subject; `None`: every subject.
    pub subject: Option<String>,
    pub reason: String,
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub until: chrono::DateTime<chrono::Utc>,
}

impl Acceptance {
    /// Codes no acceptance covers: evidence that is missing or stale is not a risk to accept
    /// (a control that does not apply is excluded in a Statement of Applicability).
    pub const NEVER: &[FindingCode] = &[FindingCode::EvidenceMissing, FindingCode::EvidenceStale];

    /// Whether it covers a finding of `code` on `subject` under `control` at `as_of`.
    pub fn covers(
        &self,
        control: &str,
        code: FindingCode,
        subject: &str,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        self.control == control
            && self.code == code
            && !Self::NEVER.contains(&code)
            && self.subject.as_deref().is_none_or(|s| s == subject)
            && self.at <= as_of
            && as_of < self.until
    }
}

/// One control of the catalog.
#[derive(Debug, Clone)]
pub struct Control {
    pub id: String,
    pub title: String,
    /// Collector kinds whose evidence counts for this control.
    pub collectors: Vec<String>,
    /// Evidence kinds the control cannot be judged without.
    pub requires: Vec<Evidence>,
    pub max_age: Duration,
    /// Finding codes that bear on this control.
    pub codes: Vec<FindingCode>,
}

/// Changes to one control, from `[controls."A.x.y"]` in the config. A new id adds a control.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlOverride {
    pub title: Option<String>,
    pub collectors: Option<Vec<String>>,
    pub requires: Option<Vec<String>>,
    pub max_age: Option<String>,
    pub codes: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CatalogFile {
    control: Vec<RawControl>,
}

#[derive(Deserialize)]
struct RawControl {
    id: String,
    title: String,
    collectors: Vec<String>,
    requires: Vec<String>,
    max_age: String,
    codes: Vec<String>,
}

/// The controls annexa evaluates, in catalog order.
#[derive(Debug, Clone)]
pub struct Catalog {
    controls: Vec<Control>,
}

impl Catalog {
    /// The embedded default catalog.
    pub fn default_catalog() -> Catalog {
        let file: CatalogFile = toml::from_str(DEFAULT_CATALOG).expect("embedded catalog parses");
        let controls = file
            .control
            .into_iter()
            .map(|c| Control {
                max_age: crate::base::parse_duration(&c.max_age).expect("embedded max_age"),
                codes: c
                    .codes
                    .iter()
                    .map(|code| code.parse().expect("embedded finding code"))
                    .collect(),
                requires: c
                    .requires
                    .iter()
                    .map(|e| e.parse().expect("embedded evidence kind"))
                    .collect(),
                id: c.id,
                title: c.title,
                collectors: c.collectors,
            })
            .collect();
        Catalog { controls }
    }

    /// The default catalog with the config's overrides applied; every problem is returned.
    pub fn with_overrides(
        overrides: BTreeMap<String, ControlOverride>,
    ) -> Result<Catalog, Vec<String>> {
        let mut catalog = Catalog::default_catalog();
        let mut problems = Vec::new();
        for (id, o) in overrides {
            let max_age = match o
                .max_age
                .as_deref()
                .map(crate::base::parse_duration)
                .transpose()
            {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("controls.\"{id}\".max_age: {e}"));
                    None
                }
            };
            let mut requires = Vec::new();
            for kind in o.requires.iter().flatten() {
                match kind.parse::<Evidence>() {
                    Ok(e) => requires.push(e),
                    Err(e) => problems.push(format!("controls.\"{id}\".requires: {e}")),
                }
            }
            let mut codes = Vec::new();
            for code in o.codes.iter().flatten() {
                match code.parse::<FindingCode>() {
                    Ok(c) => codes.push(c),
                    Err(e) => problems.push(format!("controls.\"{id}\".codes: {e}")),
                }
            }
            let control = match catalog.controls.iter_mut().find(|c| c.id == id) {
                Some(c) => c,
                None => {
                    // An Annex A control is judged on attested evidence unless told otherwise.
                    let annex = annex_title(&id);
                    let Some(title) = o.title.clone().or(annex.map(String::from)) else {
                        problems.push(format!(
                            "controls.\"{id}\" is not in the catalog; to add it, give it a `title`, `collectors` and `max_age`"
                        ));
                        continue;
                    };
                    let (collectors, requires, max_age) = match annex {
                        Some(_) => (
                            vec![ATTESTED.to_string()],
                            vec![Evidence::Attested],
                            ATTESTED_MAX_AGE,
                        ),
                        None => (Vec::new(), Vec::new(), Duration::from_secs(35 * 86_400)),
                    };
                    catalog.controls.push(Control {
                        id: id.clone(),
                        title,
                        collectors,
                        requires,
                        max_age,
                        codes: Vec::new(),
                    });
                    catalog.controls.last_mut().expect("just pushed")
                }
            };
            if let Some(t) = o.title {
                control.title = t;
            }
            if let Some(c) = o.collectors {
                control.collectors = c;
            }
            if o.requires.is_some() {
                control.requires = requires;
            }
            if let Some(d) = max_age {
                control.max_age = d;
            }
            if o.codes.is_some() {
                control.codes = codes;
            }
        }
        if problems.is_empty() {
            Ok(catalog)
        } else {
            Err(problems)
        }
    }

    pub fn controls(&self) -> &[Control] {
        &self.controls
    }

    /// Leaves out controls a Statement of Applicability excludes: they are not judged.
    pub fn exclude<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        let ids: Vec<&str> = ids.collect();
        self.controls.retain(|c| !ids.contains(&c.id.as_str()));
    }

    /// Judges `ids` too (the controls a Statement of Applicability says apply): each one the
    /// catalog does not evidence by a collector requires attested evidence. The catalog is
    /// then in Annex A's order, controls of the config's own after.
    pub fn attest<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        for id in ids {
            let control = match self.controls.iter_mut().find(|c| c.id == id) {
                Some(c) => c,
                None => {
                    self.controls.push(Control {
                        id: id.to_string(),
                        title: annex_title(id).unwrap_or(id).to_string(),
                        collectors: Vec::new(),
                        requires: Vec::new(),
                        max_age: ATTESTED_MAX_AGE,
                        codes: Vec::new(),
                    });
                    self.controls.last_mut().expect("just pushed")
                }
            };
            if control.collectors.is_empty() && control.requires.is_empty() {
                control.collectors = vec![ATTESTED.to_string()];
                control.requires = vec![Evidence::Attested];
            }
        }
        let rank = |id: &str| {
            annex_a()
                .iter()
                .position(|c| c.id == id)
                .unwrap_or(usize::MAX)
        };
        self.controls.sort_by_key(|c| rank(&c.id));
    }

    pub fn get(&self, id: &str) -> Option<&Control> {
        self.controls.iter().find(|c| c.id == id)
    }

    /// The ids of the controls a collector kind evidences by default.
    pub fn controls_for_kind(&self, kind: &str) -> Vec<String> {
        self.controls
            .iter()
            .filter(|c| c.collectors.iter().any(|k| k == kind))
            .map(|c| c.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_a_has_the_93_controls_of_the_2022_numbering_and_the_catalog_agrees_with_it() {
        let annex = annex_a();
        let ids: Vec<&str> = annex.iter().map(|c| c.id.as_str()).collect();
        let mut expected = Vec::new();
        for (clause, last) in [(5, 37), (6, 8), (7, 14), (8, 34)] {
            expected.extend((1..=last).map(|n| format!("A.{clause}.{n}")));
        }
        assert_eq!(ids, expected);
        let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 93);
        for c in annex {
            let theme = match &c.id[2..3] {
                "5" => Theme::Organizational,
                "6" => Theme::People,
                "7" => Theme::Physical,
                _ => Theme::Technological,
            };
            assert_eq!(c.theme, theme, "{}", c.id);
        }
        // The controls annexa evaluates carry the standard's titles.
        for control in Catalog::default_catalog().controls() {
            let listed = annex
                .iter()
                .find(|a| a.id == control.id)
                .expect("in Annex A");
            assert_eq!(control.title, listed.title, "{}", control.id);
        }
    }

    #[test]
    fn the_default_catalog_has_the_designed_controls_with_official_titles() {
        let c = Catalog::default_catalog();
        let ids: Vec<&str> = c.controls().iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "A.5.24", "A.5.25", "A.5.26", "A.5.27", "A.5.28", "A.5.30", "A.5.36", "A.8.8",
                "A.8.13", "A.8.16"
            ]
        );
        assert_eq!(
            c.get("A.5.26").unwrap().title,
            "Response to information security incidents"
        );
        assert_eq!(c.get("A.8.13").unwrap().title, "Information backup");
        assert_eq!(c.controls_for_kind("policy-document"), ["A.5.24"]);
        assert_eq!(c.controls_for_kind(CUSTODY), ["A.5.28"]);
    }

    #[test]
    fn an_applied_control_no_collector_evidences_requires_attested_evidence() {
        let mut o = BTreeMap::new();
        o.insert(
            "A.6.1".to_string(),
            ControlOverride {
                max_age: Some("180d".into()),
                ..Default::default()
            },
        );
        let mut c = Catalog::with_overrides(o).unwrap();
        let screening = c.get("A.6.1").unwrap();
        assert_eq!(screening.title, "Screening", "the standard's title");
        assert_eq!(screening.requires, [Evidence::Attested]);
        c.attest(["A.5.1", "A.6.1", "A.5.24"].into_iter());
        let ids: Vec<&str> = c.controls().iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.first(), Some(&"A.5.1"), "Annex A order: {ids:?}");
        assert_eq!(c.get("A.5.1").unwrap().requires, [Evidence::Attested]);
        assert_eq!(c.get("A.5.1").unwrap().collectors, [ATTESTED]);
        assert_eq!(c.get("A.5.1").unwrap().max_age, ATTESTED_MAX_AGE);
        assert_eq!(
            c.get("A.6.1").unwrap().max_age,
            Duration::from_secs(180 * 86_400),
            "the override stands"
        );
        assert_eq!(
            c.get("A.5.24").unwrap().requires,
            [Evidence::PolicyDocument],
            "a collected control keeps its evidence"
        );
        let pos = |id: &str| ids.iter().position(|x| *x == id).unwrap();
        assert!(pos("A.5.24") < pos("A.5.25") && pos("A.5.25") < pos("A.6.1"));
    }

    #[test]
    fn overrides_change_and_add_controls_and_report_every_problem() {
        let mut o = BTreeMap::new();
        o.insert(
            "A.5.24".to_string(),
            ControlOverride {
                max_age: Some("400d".into()),
                ..Default::default()
            },
        );
        o.insert(
            "A.9.99".to_string(),
            ControlOverride {
                title: Some("Custom".into()),
                collectors: Some(vec!["policy-document".into()]),
                ..Default::default()
            },
        );
        let c = Catalog::with_overrides(o).unwrap();
        assert_eq!(
            c.get("A.5.24").unwrap().max_age,
            Duration::from_secs(400 * 86_400)
        );
        assert_eq!(c.controls_for_kind("policy-document"), ["A.5.24", "A.9.99"]);

        let mut bad = BTreeMap::new();
        bad.insert("A.1.1".to_string(), ControlOverride::default());
        bad.insert(
            "A.5.25".to_string(),
            ControlOverride {
                max_age: Some("x".into()),
                codes: Some(vec!["nope".into()]),
                ..Default::default()
            },
        );
        assert_eq!(Catalog::with_overrides(bad).unwrap_err().len(), 3);
    }
}
