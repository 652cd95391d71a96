//! `incident-log`: the incident register, post-mortems and incident issues, checked against
//! the incident policy: classified, triaged and resolved in time, post-mortems written, breaches
//! notified. Evidence for A.5.24–A.5.28.
//!
//! Sources, in any combination: a register file (CSV or JSON, a local path or an object in the
//! evidence store), a folder of post-mortems (Markdown), GitHub issues with a label. The import
//! is all or nothing: one bad cell fails the run with its line and column, while the raw files
//! are still stored as evidence.

pub mod github;
pub mod policy;
pub mod postmortem;
pub mod register;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, Finding, FindingCode, Level,
    Snapshot, Source,
};
use github::GithubConfig;
use policy::{BusinessCalendar, Policy, Severity, Target};
use postmortem::PostMortem;
use register::{ImportError, Incident};

/// Configuration of one `incident-log` collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentLogConfig {
    /// A register file, CSV or JSON (by extension, or `format`).
    pub register: Option<PathBuf>,
    /// A register kept as an object in annexa's evidence store, by key.
    pub register_object: Option<String>,
    /// `csv` or `json`; default from the file name.
    pub format: Option<String>,
    /// A folder of post-mortems (Markdown).
    pub postmortems: Option<PathBuf>,
    pub github: Option<GithubConfig>,
    /// A larger register is refused (and still stored).
    #[serde(default = "default_max_register_mib")]
    pub max_register_mib: u64,
    /// The severity scheme, most severe first (default: Sev1–Sev4 of the procedure).
    pub severities: Option<Vec<SeverityConfig>>,
    /// Post-mortems are due this long after resolution (default `5 business days`).
    pub postmortem_within: Option<String>,
    /// Personal-data breaches are notified within this of detection (default `72h`).
    pub breach_notification_within: Option<String>,
    pub calendar: Option<CalendarConfig>,
}

fn default_max_register_mib() -> u64 {
    50
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub triage: String,
    pub resolution: String,
    #[serde(default)]
    pub postmortem: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    pub timezone: Option<String>,
    pub days: Option<Vec<String>>,
    /// `09:00-17:00`.
    pub hours: Option<String>,
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
}

impl IncidentLogConfig {
    /// The policy this config describes, or every problem with it.
    pub fn policy(&self) -> Result<Policy, Vec<String>> {
        let mut policy = Policy::default();
        let mut problems = Vec::new();
        let mut target = |what: String, text: &str| match Target::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                None
            }
        };
        if let Some(severities) = &self.severities {
            policy.severities = severities
                .iter()
                .filter_map(|s| {
                    Some(Severity {
                        name: s.name.clone(),
                        aliases: s.aliases.clone(),
                        triage: target(format!("severities.{}.triage", s.name), &s.triage)?,
                        resolution: target(
                            format!("severities.{}.resolution", s.name),
                            &s.resolution,
                        )?,
                        postmortem: s.postmortem,
                    })
                })
                .collect();
        }
        if let Some(t) = &self.postmortem_within
            && let Some(t) = target("postmortem_within".into(), t)
        {
            policy.postmortem_within = t;
        }
        if let Some(t) = &self.breach_notification_within
            && let Some(t) = target("breach_notification_within".into(), t)
        {
            policy.breach_notification_within = t;
        }
        if let Some(c) = &self.calendar {
            let default = BusinessCalendar::default();
            let (start, end) = match c.hours.as_deref().map(|h| h.split_once('-')) {
                None => (default.start.clone(), default.end.clone()),
                Some(Some((s, e))) => (s.trim().to_string(), e.trim().to_string()),
                Some(None) => {
                    problems.push("calendar.hours must look like 09:00-17:00".into());
                    (default.start.clone(), default.end.clone())
                }
            };
            policy.calendar = BusinessCalendar {
                timezone: c.timezone.clone().unwrap_or(default.timezone),
                days: c.days.clone().unwrap_or(default.days),
                start,
                end,
                holidays: c.holidays.clone(),
            };
            problems.extend(policy.calendar.problems());
        }
        if self.register.is_none()
            && self.register_object.is_none()
            && self.postmortems.is_none()
            && self.github.is_none()
        {
            problems.push(
                "name at least one source: register, register_object, postmortems or github".into(),
            );
        }
        if let Some(f) = &self.format
            && f != "csv"
            && f != "json"
        {
            problems.push(format!("format `{f}` must be csv or json"));
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }
}

/// Per-incident durations, in seconds from detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations {
    pub to_triage: Option<i64>,
    pub to_contain: Option<i64>,
    pub to_resolve: Option<i64>,
}

/// Figures for one month of detections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodFigures {
    /// `YYYY-MM`.
    pub period: String,
    pub count_by_severity: BTreeMap<String, usize>,
    pub median_triage_seconds: Option<i64>,
    pub p90_triage_seconds: Option<i64>,
    pub median_resolve_seconds: Option<i64>,
    pub p90_resolve_seconds: Option<i64>,
    /// Of the classified incidents triaged (or due) by collection time.
    pub triaged_within_target_percent: Option<f64>,
    pub resolved_within_target_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentFacts {
    pub policy: Policy,
    pub incidents: Vec<Incident>,
    pub durations: BTreeMap<String, Durations>,
    pub postmortems: Vec<PostMortem>,
    pub figures: Vec<PeriodFigures>,
    pub collected_at: DateTime<Utc>,
}

pub struct IncidentLog {
    config: IncidentLogConfig,
    policy: Policy,
    github_token: Option<String>,
}

impl IncidentLog {
    /// Fails with the config's problems (the engine validates them first). `github_token`:
    /// read by the engine from `github.token_env`.
    pub fn new(
        config: IncidentLogConfig,
        github_token: Option<String>,
    ) -> Result<Self, Vec<String>> {
        let policy = config.policy()?;
        Ok(IncidentLog {
            config,
            policy,
            github_token,
        })
    }
}

fn invalid(e: ImportError) -> CollectError {
    CollectError::Invalid {
        what: "incident register".into(),
        reason: format!("{e}; nothing was imported"),
    }
}

/// Every record's problem in one error: the register is fixed in one pass.
fn invalid_records(all: &[ImportError]) -> CollectError {
    const SHOWN: usize = 50;
    let mut reason = match all.len() {
        1 => String::new(),
        n => format!("{n} records have problems: "),
    };
    let listed: Vec<String> = all.iter().take(SHOWN).map(ToString::to_string).collect();
    reason.push_str(&listed.join("; "));
    if all.len() > SHOWN {
        reason.push_str(&format!("; and {} more", all.len() - SHOWN));
    }
    reason.push_str("; nothing was imported");
    CollectError::Invalid {
        what: "incident register".into(),
        reason,
    }
}

impl IncidentLog {
    /// The register's records; its raw bytes are emitted first, so a register that cannot be
    /// imported is still evidence of what was there.
    async fn read_register(
        &self,
        ctx: &CollectContext,
    ) -> Result<Vec<register::RawRecord>, CollectError> {
        let now = ctx.now();
        let (name, bytes, query) = if let Some(path) = &self.config.register {
            let full = ctx.resolve(path);
            let meta = std::fs::metadata(&full).map_err(|e| CollectError::SourceUnavailable {
                what: full.display().to_string(),
                reason: format!("{e}; check `register`"),
            })?;
            let name = file_name(&full);
            let limit = self.config.max_register_mib * 1024 * 1024;
            if meta.len() > limit {
                ctx.emit(item(
                    &name,
                    Body::File(full.clone()),
                    now,
                    &ctx.shown(&full),
                ))
                .await?;
                return Err(invalid(ImportError {
                    location: name,
                    column: None,
                    message: format!(
                        "is {} MiB; registers above {} MiB are refused (raise max_register_mib, or split the register)",
                        meta.len() / (1024 * 1024),
                        self.config.max_register_mib
                    ),
                }));
            }
            let bytes = crate::read_source(&full, limit).await?;
            (name, bytes, ctx.shown(&full))
        } else if let Some(key) = &self.config.register_object {
            let objects = ctx
                .objects
                .clone()
                .ok_or_else(|| CollectError::SourceUnavailable {
                    what: key.clone(),
                    reason: "no evidence store in this context".into(),
                })?;
            let bytes =
                objects
                    .read(key)
                    .await
                    .map_err(|reason| CollectError::SourceUnavailable {
                        what: format!("evidence store object {key}"),
                        reason,
                    })?;
            (
                key.rsplit('/').next().unwrap_or(key).to_string(),
                bytes,
                format!("object {key}"),
            )
        } else {
            return Ok(Vec::new());
        };
        ctx.emit(item(&name, Body::Bytes(bytes.clone()), now, &query))
            .await?;
        let json = match self.config.format.as_deref() {
            Some(f) => f == "json",
            None => name.to_ascii_lowercase().ends_with(".json"),
        };
        let parsed = if json {
            register::json_records(&bytes, &name)
        } else {
            register::csv_records(&bytes, &name)
        };
        parsed.map_err(invalid)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn item(name: &str, body: Body, now: DateTime<Utc>, query: &str) -> EvidenceItem {
    let lower = name.to_ascii_lowercase();
    let media_type = if lower.ends_with(".json") {
        "application/json"
    } else if lower.ends_with(".md") {
        "text/markdown"
    } else {
        "text/csv"
    };
    EvidenceItem {
        name: name.to_string(),
        media_type: media_type.into(),
        body,
        observed_at: now,
        effective_at: None,
        source: Source {
            query: query.to_string(),
            ..Source::default()
        },
    }
}

#[async_trait::async_trait]
impl Collector for IncidentLog {
    fn kind(&self) -> &'static str {
        "incident-log"
    }

    async fn collect(&self, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
        let now = ctx.now();
        let mut records = self.read_register(ctx).await?;

        let mut postmortems = Vec::new();
        if let Some(folder) = &self.config.postmortems {
            let dir = ctx.resolve(folder);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| CollectError::SourceUnavailable {
                    what: dir.display().to_string(),
                    reason: format!("{e}; check `postmortems`"),
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("md")))
                .collect();
            files.sort();
            for path in files {
                let bytes = crate::read_source(&path, ctx.max_source_bytes).await?;
                let name = file_name(&path);
                postmortems.push(postmortem::parse(&name, &String::from_utf8_lossy(&bytes)));
                ctx.emit(item(
                    &format!("postmortems/{name}"),
                    Body::Bytes(bytes),
                    now,
                    &ctx.shown(&path),
                ))
                .await?;
            }
        }

        if let Some(gh) = &self.config.github {
            let issues = github::fetch(gh, self.github_token.as_deref(), ctx.allow_insecure_urls)
                .await
                .map_err(|(unauthorized, reason)| {
                    let what = format!("GitHub issues of {} labelled `{}`", gh.repo, gh.label);
                    if unauthorized {
                        CollectError::Unauthorized { what, reason }
                    } else {
                        CollectError::SourceUnavailable { what, reason }
                    }
                })?;
            let raw = serde_json::to_vec_pretty(&issues).expect("issues serialize");
            let mut it = item(
                "github-issues.json",
                Body::Bytes(raw),
                now,
                &format!("{}/repos/{}/issues", gh.base_url, gh.repo),
            );
            it.source.filters = vec![format!("labels={}", gh.label), "state=all".into()];
            it.source.total = Some(issues.len() as u64);
            ctx.emit(it).await?;
            records.extend(issues.iter().map(|i| github::record(i, gh, &self.policy)));
        }

        let incidents = register::incidents(&records, &self.policy, now)
            .map_err(|all| invalid_records(&all))?;
        link(&mut postmortems, &incidents);
        let durations = incidents
            .iter()
            .map(|i| {
                let since = |t: Option<DateTime<Utc>>| t.map(|t| (t - i.detected_at).num_seconds());
                (
                    i.id.clone(),
                    Durations {
                        to_triage: since(i.triaged_at),
                        to_contain: since(i.contained_at),
                        to_resolve: since(i.resolved_at),
                    },
                )
            })
            .collect();
        let facts = IncidentFacts {
            figures: figures(&incidents, &self.policy, now),
            policy: self.policy.clone(),
            incidents,
            durations,
            postmortems,
            collected_at: now,
        };
        Ok(Snapshot::of(
            serde_json::to_value(facts).expect("facts serialize"),
        ))
    }

    fn check(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<Finding> {
        crate::check_stored::<IncidentFacts>("incident", facts, |f| check(f, as_of.at))
    }

    fn upcoming(&self, facts: &serde_json::Value, as_of: crate::AsOf) -> Vec<crate::Due> {
        crate::read_stored::<IncidentFacts, _>(facts, |f| upcoming(f, as_of.at))
    }

    fn figures(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Box<dyn crate::FigureFold> {
        Box::new(IncidentFold {
            from,
            to,
            incidents: BTreeMap::new(),
            newest: None,
        })
    }
}

/// Every incident whose lifecycle touches the period (detected before its end, not closed
/// before its start, as the newest snapshot that lists it knows it), with its targets met or
/// missed; then the newest snapshot's figures by month.
struct IncidentFold {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// By detection and id: when its lifecycle ended (closed, else resolved) and the row's
    /// cells, as the newest snapshot that lists it knows it.
    incidents: crate::SeenRows<(DateTime<Utc>, String), IncidentRow>,
    newest: Option<IncidentFacts>,
}

struct IncidentRow {
    ended: Option<DateTime<Utc>>,
    cells: Vec<String>,
}

impl crate::FigureFold for IncidentFold {
    fn add(&mut self, at: &crate::SnapshotRef, facts: &serde_json::Value) {
        let Some(f) = crate::parse_stored::<IncidentFacts>(facts) else {
            return;
        };
        for i in f.incidents.iter().filter(|i| i.detected_at < self.to) {
            let postmortem = f
                .postmortems
                .iter()
                .find(|pm| pm.incident.as_deref() == Some(i.id.as_str()))
                .map(|pm| pm.file.clone())
                .or_else(|| i.postmortem.clone());
            let (triaged, resolved) = match i.severity.as_deref().and_then(|s| f.policy.severity(s))
            {
                Some(sev) => {
                    let deadline = |t| f.policy.calendar.deadline(i.detected_at, t);
                    (
                        target_met(response_time(i), deadline(sev.triage), f.collected_at),
                        target_met(i.resolved_at, deadline(sev.resolution), f.collected_at),
                    )
                }
                None => (
                    i.triaged_at.map_or_else(|| "not yet".into(), when),
                    i.resolved_at.map_or_else(|| "not yet".into(), when),
                ),
            };
            let row = vec![
                format!("{}: {}", i.id, i.title),
                i.severity
                    .clone()
                    .unwrap_or_else(|| "unclassified (no target applies)".into()),
                when(i.detected_at),
                triaged,
                resolved,
                postmortem.unwrap_or_else(|| "–".into()),
            ];
            let ended = i.closed_at.or(i.resolved_at);
            let key = (i.detected_at, i.id.clone());
            crate::Seen::record(
                &mut self.incidents,
                key,
                IncidentRow { ended, cells: row },
                at,
            );
        }
        self.newest = Some(f);
    }

    fn members(&self) -> Vec<crate::Member> {
        self.incidents
            .iter()
            .filter(|(_, (row, _))| row.ended.is_none_or(|e| e >= self.from))
            .map(|((detected, id), (row, seen))| crate::Member {
                population: "incidents",
                id: id.clone(),
                at: *detected,
                summary: format!(
                    "{}; {}; triaged {}; resolved {}",
                    row.cells[0], row.cells[1], row.cells[3], row.cells[4]
                ),
                snapshot: seen.newest.clone(),
            })
            .collect()
    }

    fn tables(self: Box<Self>) -> Vec<crate::FigureTable> {
        let mut table = crate::FigureTable::new(
            "Incidents in the period",
            &[
                "Incident",
                "Severity",
                "Detected",
                "Triaged",
                "Resolved",
                "Post-mortem",
                "Evidence",
            ],
        );
        for (IncidentRow { ended, mut cells }, seen) in self.incidents.into_values() {
            if ended.is_some_and(|e| e < self.from) {
                continue;
            }
            cells.push(seen.text());
            table = table.row(cells);
        }
        let mut tables = vec![table];
        if let Some(newest) = &self.newest {
            tables.extend(monthly_figures(newest, self.from, self.to));
        }
        tables
    }
}

/// When a target was met, or by how much it was missed, or when it falls due, as known at
/// `known_at`.
fn target_met(
    done: Option<DateTime<Utc>>,
    deadline: DateTime<Utc>,
    known_at: DateTime<Utc>,
) -> String {
    match done {
        Some(t) if t <= deadline => format!("{} (within target)", when(t)),
        Some(t) => format!("{} (late by {})", when(t), late_by(t, deadline)),
        None if known_at > deadline => format!("not yet (target missed: {})", when(deadline)),
        None => format!("not yet (due {})", when(deadline)),
    }
}

/// Incidents by month of detection: count by severity, time to triage and resolve, share
/// within target.
fn monthly_figures(
    facts: &IncidentFacts,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<crate::FigureTable> {
    let duration = |s: Option<i64>| s.map(policy::human_duration).unwrap_or_else(|| "–".into());
    let percent = |p: Option<f64>| p.map(|p| format!("{p:.1} %")).unwrap_or_else(|| "–".into());
    let mut table = crate::FigureTable::new(
        "Incidents by month",
        &[
            "Month",
            "By severity",
            "Median triage",
            "P90 triage",
            "Median resolve",
            "P90 resolve",
            "Triaged within target",
            "Resolved within target",
        ],
    );
    for m in facts
        .figures
        .iter()
        .filter(|m| crate::month_in(&m.period, from, to))
    {
        let by_severity = m
            .count_by_severity
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        table = table.row([
            m.period.clone(),
            by_severity,
            duration(m.median_triage_seconds),
            duration(m.p90_triage_seconds),
            duration(m.median_resolve_seconds),
            duration(m.p90_resolve_seconds),
            percent(m.triaged_within_target_percent),
            percent(m.resolved_within_target_percent),
        ]);
    }
    vec![table]
}

/// Links each post-mortem to its incident: the register's `postmortem` field names the file,
/// or the incident id stands in the file name or title.
fn link(postmortems: &mut [PostMortem], incidents: &[Incident]) {
    for pm in postmortems.iter_mut() {
        let by_field = incidents.iter().find(|i| {
            i.postmortem
                .as_deref()
                .is_some_and(|p| p == pm.file || p.ends_with(&format!("/{}", pm.file)))
        });
        let contains_id = |text: &str, id: &str| {
            let text = text.to_ascii_lowercase();
            let id = id.to_ascii_lowercase();
            text.match_indices(&id).any(|(at, _)| {
                let before = text[..at].chars().last();
                let after = text[at + id.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_alphanumeric())
                    && !after.is_some_and(|c| c.is_ascii_alphanumeric())
            })
        };
        let by_id = || {
            incidents.iter().find(|i| {
                contains_id(&pm.file, &i.id)
                    || pm.title.as_deref().is_some_and(|t| contains_id(t, &i.id))
            })
        };
        pm.incident = by_field.or_else(by_id).map(|i| i.id.clone());
    }
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Monthly figures for the report.
fn figures(incidents: &[Incident], policy: &Policy, now: DateTime<Utc>) -> Vec<PeriodFigures> {
    let mut by_month: BTreeMap<String, Vec<&Incident>> = BTreeMap::new();
    for i in incidents {
        by_month
            .entry(i.detected_at.format("%Y-%m").to_string())
            .or_default()
            .push(i);
    }
    by_month
        .into_iter()
        .map(|(period, list)| {
            let mut count_by_severity = BTreeMap::new();
            let mut triage = Vec::new();
            let mut resolve = Vec::new();
            let (mut triage_due, mut triage_ok, mut resolve_due, mut resolve_ok) = (0, 0, 0, 0);
            for i in &list {
                *count_by_severity
                    .entry(i.severity.clone().unwrap_or_else(|| "unclassified".into()))
                    .or_insert(0usize) += 1;
                if let Some(t) = i.triaged_at {
                    triage.push((t - i.detected_at).num_seconds());
                }
                if let Some(r) = i.resolved_at {
                    resolve.push((r - i.detected_at).num_seconds());
                }
                let Some(sev) = i.severity.as_deref().and_then(|s| policy.severity(s)) else {
                    continue;
                };
                let triage_deadline = policy.calendar.deadline(i.detected_at, sev.triage);
                match response_time(i) {
                    Some(t) => {
                        triage_due += 1;
                        triage_ok += usize::from(t <= triage_deadline);
                    }
                    None if now > triage_deadline => triage_due += 1,
                    None => {}
                }
                if let Some(r) = i.resolved_at {
                    resolve_due += 1;
                    resolve_ok +=
                        usize::from(r <= policy.calendar.deadline(i.detected_at, sev.resolution));
                }
            }
            triage.sort_unstable();
            resolve.sort_unstable();
            let percent = |ok: usize, due: usize| (due > 0).then(|| ok as f64 * 100.0 / due as f64);
            PeriodFigures {
                period,
                count_by_severity,
                median_triage_seconds: percentile(&triage, 0.5),
                p90_triage_seconds: percentile(&triage, 0.9),
                median_resolve_seconds: percentile(&resolve, 0.5),
                p90_resolve_seconds: percentile(&resolve, 0.9),
                triaged_within_target_percent: percent(triage_ok, triage_due),
                resolved_within_target_percent: percent(resolve_ok, resolve_due),
            }
        })
        .collect()
}

/// The first sign of a response: triage, else containment, else resolution.
fn response_time(i: &Incident) -> Option<DateTime<Utc>> {
    i.triaged_at.or(i.contained_at).or(i.resolved_at)
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn late_by(actual: DateTime<Utc>, deadline: DateTime<Utc>) -> String {
    policy::human_duration((actual - deadline).num_seconds())
}

/// The judgement: pure over the facts and `as_of`.
/// The triage and resolution targets of incidents still open at `as_of` that have not passed.
pub fn upcoming(facts: &IncidentFacts, as_of: DateTime<Utc>) -> Vec<crate::Due> {
    let policy = &facts.policy;
    let mut due = Vec::new();
    for i in facts
        .incidents
        .iter()
        .filter(|i| i.detected_at <= as_of && i.resolved_at.is_none())
    {
        let Some(sev) = i.severity.as_deref().and_then(|s| policy.severity(s)) else {
            continue;
        };
        let mut add = |code, at: DateTime<Utc>, target: &str| {
            if at > as_of {
                due.push(crate::Due {
                    code,
                    subject: i.id.clone(),
                    due: at,
                    what: format!("the {target} of {} ({}, {})", i.id, sev.name, i.title),
                    controls: Vec::new(),
                });
            }
        };
        if response_time(i).is_none() {
            let target = format!("{} triage target", sev.triage.describe());
            add(
                FindingCode::IncidentTriageLate,
                policy.calendar.deadline(i.detected_at, sev.triage),
                &target,
            );
        }
        let target = format!("{} resolution target", sev.resolution.describe());
        add(
            FindingCode::IncidentOpenOverdue,
            policy.calendar.deadline(i.detected_at, sev.resolution),
            &target,
        );
    }
    due
}

pub fn check(facts: &IncidentFacts, as_of: DateTime<Utc>) -> Vec<Finding> {
    let policy = &facts.policy;
    let cal = &policy.calendar;
    let mut findings = Vec::new();
    for i in facts.incidents.iter().filter(|i| i.detected_at <= as_of) {
        let mut push =
            |code, message: String| findings.push(Finding::new(code, i.id.clone(), message));
        let Some(sev) = i.severity.as_deref().and_then(|s| policy.severity(s)) else {
            push(
                FindingCode::IncidentUnclassified,
                format!(
                    "{} ({}) detected {} has no severity; classify it ({})",
                    i.id,
                    i.title,
                    when(i.detected_at),
                    policy.names()
                ),
            );
            continue;
        };
        let triage_deadline = cal.deadline(i.detected_at, sev.triage);
        match response_time(i) {
            Some(t) if t > triage_deadline => push(
                FindingCode::IncidentTriageLate,
                format!(
                    "{} ({}) was triaged {} after detection, {} past the {} target of {}",
                    i.id,
                    sev.name,
                    policy::human_duration((t - i.detected_at).num_seconds()),
                    late_by(t, triage_deadline),
                    sev.name,
                    sev.triage.describe()
                ),
            ),
            None if as_of > triage_deadline => push(
                FindingCode::IncidentTriageLate,
                format!(
                    "{} ({}) has not been triaged; the {} target was {}",
                    i.id,
                    sev.name,
                    sev.triage.describe(),
                    when(triage_deadline)
                ),
            ),
            _ => {}
        }
        let resolution_deadline = cal.deadline(i.detected_at, sev.resolution);
        match i.resolved_at {
            Some(r) if r > resolution_deadline => push(
                FindingCode::IncidentResolutionLate,
                format!(
                    "{} ({}) was resolved {}, {} past its {} resolution target",
                    i.id,
                    sev.name,
                    when(r),
                    late_by(r, resolution_deadline),
                    sev.resolution.describe()
                ),
            ),
            None if as_of > resolution_deadline => push(
                FindingCode::IncidentOpenOverdue,
                format!(
                    "{} ({}) is still open; its {} resolution target passed {}",
                    i.id,
                    sev.name,
                    sev.resolution.describe(),
                    when(resolution_deadline)
                ),
            ),
            _ => {}
        }
        if i.personal_data_breach {
            let deadline = cal.deadline(i.detected_at, policy.breach_notification_within);
            match i.authority_notified_at {
                Some(n) if n > deadline => push(
                    FindingCode::BreachNotificationLate,
                    format!(
                        "{}: the supervisory authority was notified {}, {} after the {} deadline (GDPR Art. 33)",
                        i.id,
                        when(n),
                        late_by(n, deadline),
                        policy.breach_notification_within.describe()
                    ),
                ),
                None if as_of > deadline => push(
                    FindingCode::BreachNotificationLate,
                    format!(
                        "{}: a personal-data breach detected {} and the supervisory authority not notified; the deadline was {} (GDPR Art. 33)",
                        i.id,
                        when(i.detected_at),
                        when(deadline)
                    ),
                ),
                _ => {}
            }
        }
        if let (true, Some(resolved)) = (sev.postmortem, i.resolved_at) {
            let due = cal.deadline(resolved, policy.postmortem_within);
            let linked = facts
                .postmortems
                .iter()
                .find(|p| p.incident.as_deref() == Some(i.id.as_str()));
            let exists = linked.is_some() || i.postmortem.is_some();
            match (exists, i.postmortem_at) {
                (false, _) if as_of > due => push(
                    FindingCode::PostmortemMissing,
                    format!("{} ({}) was resolved {}; its post-mortem was due {} and none is linked", i.id, sev.name, when(resolved), when(due)),
                ),
                (true, Some(at)) if at > due => push(
                    FindingCode::PostmortemLate,
                    format!("{}: the post-mortem was written {}, {} after its due date {}", i.id, when(at), late_by(at, due), when(due)),
                ),
                (true, None) => findings.push(
                    Finding::new(FindingCode::PostmortemLate, i.id.clone(), format!("{}: a post-mortem exists but the register has no postmortem_at, so its timeliness cannot be shown", i.id))
                        .with_level(Level::Warn),
                ),
                _ => {}
            }
        }
    }
    for pm in &facts.postmortems {
        let subject = pm.incident.clone().unwrap_or_else(|| pm.file.clone());
        let warn = |message: String| {
            Finding::new(FindingCode::PostmortemLate, subject.clone(), message)
                .with_level(Level::Warn)
        };
        if pm.incident.is_none() {
            findings.push(warn(format!("post-mortem {} matches no incident; name the incident id in its file name or title, or in the register's postmortem column", pm.file)));
        }
        if !pm.missing_sections.is_empty() {
            findings.push(warn(format!(
                "post-mortem {} does not follow the template: missing {}",
                pm.file,
                pm.missing_sections.join(", ")
            )));
        }
        let overdue: Vec<&str> = pm
            .action_items
            .iter()
            .filter(|a| !a.done && a.due.is_some_and(|d| d < as_of.date_naive()))
            .map(|a| a.item.as_str())
            .collect();
        if !overdue.is_empty() {
            findings.push(warn(format!(
                "post-mortem {} has overdue open action items: {}",
                pm.file,
                overdue.join("; ")
            )));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn incident(id: &str, sev: Option<&str>, detected: &str) -> Incident {
        Incident {
            id: id.into(),
            title: "t".into(),
            severity: sev.map(String::from),
            category: None,
            detected_at: utc(detected),
            triaged_at: None,
            contained_at: None,
            resolved_at: None,
            closed_at: None,
            status: "open".into(),
            owner: None,
            postmortem: None,
            postmortem_at: None,
            personal_data_breach: false,
            authority_notified_at: None,
            customers_notified_at: None,
            origin: "test".into(),
        }
    }

    fn facts(incidents: Vec<Incident>, postmortems: Vec<PostMortem>) -> IncidentFacts {
        IncidentFacts {
            policy: Policy::default(),
            figures: figures(&incidents, &Policy::default(), utc("2026-12-01T00:00:00Z")),
            incidents,
            durations: BTreeMap::new(),
            postmortems,
            collected_at: utc("2026-12-01T00:00:00Z"),
        }
    }

    fn codes(f: &IncidentFacts, as_of: &str) -> Vec<(String, FindingCode, Level)> {
        check(f, utc(as_of))
            .into_iter()
            .map(|x| (x.subject, x.code, x.level))
            .collect()
    }

    #[test]
    fn triage_is_judged_against_each_severitys_target() {
        let mut on_time = incident("A", Some("Sev1"), "2026-11-02T10:00:00Z");
        on_time.triaged_at = Some(utc("2026-11-02T10:15:00Z"));
        let mut late = incident("B", Some("Sev1"), "2026-11-02T10:00:00Z");
        late.triaged_at = Some(utc("2026-11-02T10:16:00Z"));
        let mut sev2 = incident("C", Some("Sev2"), "2026-11-02T10:00:00Z");
        sev2.triaged_at = Some(utc("2026-11-02T11:59:00Z"));
        let not_yet = incident("D", Some("Sev4"), "2026-11-02T10:00:00Z");
        let f = facts(vec![on_time, late, sev2, not_yet], vec![]);
        let got = codes(&f, "2026-11-03T10:00:00Z");
        let triage: Vec<&str> = got
            .iter()
            .filter(|x| x.1 == FindingCode::IncidentTriageLate)
            .map(|x| x.0.as_str())
            .collect();
        assert_eq!(triage, ["B"], "Sev4 has 72 h: not late yet at 24 h");
        let later = codes(&f, "2026-11-05T10:01:00Z");
        assert!(
            later
                .iter()
                .any(|x| x.0 == "D" && x.1 == FindingCode::IncidentTriageLate)
        );
    }

    #[test]
    fn unclassified_resolution_open_overdue_and_breach() {
        let unclassified = incident("U", None, "2026-11-02T10:00:00Z");
        let mut slow = incident("S", Some("Sev1"), "2026-11-02T10:00:00Z");
        slow.triaged_at = Some(utc("2026-11-02T10:05:00Z"));
        slow.resolved_at = Some(utc("2026-11-03T12:00:00Z"));
        slow.status = "resolved".into();
        slow.postmortem = Some("s.md".into());
        slow.postmortem_at = Some(utc("2026-11-04T12:00:00Z"));
        let mut open = incident("O", Some("Sev2"), "2026-11-02T10:00:00Z");
        open.triaged_at = Some(utc("2026-11-02T10:30:00Z"));
        let mut breach = incident("P", Some("Sev3"), "2026-11-02T10:00:00Z");
        breach.triaged_at = Some(utc("2026-11-02T12:00:00Z"));
        breach.personal_data_breach = true;
        breach.authority_notified_at = Some(utc("2026-11-05T10:01:00Z"));
        let f = facts(vec![unclassified, slow, open, breach], vec![]);
        let got = codes(&f, "2026-11-06T00:00:00Z");
        assert!(got.contains(&("U".into(), FindingCode::IncidentUnclassified, Level::Fail)));
        assert!(got.contains(&("S".into(), FindingCode::IncidentResolutionLate, Level::Fail)));
        assert!(got.contains(&("O".into(), FindingCode::IncidentOpenOverdue, Level::Fail)));
        assert!(got.contains(&("P".into(), FindingCode::BreachNotificationLate, Level::Fail)));
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn postmortems_are_due_five_business_days_after_resolution_for_sev1_and_sev2() {
        // Resolved Friday 2026-11-20 12:00: due Friday 2026-11-27 12:00.
        let mut i = incident("INC-7", Some("Sev2"), "2026-11-20T09:00:00Z");
        i.triaged_at = Some(utc("2026-11-20T09:30:00Z"));
        i.resolved_at = Some(utc("2026-11-20T12:00:00Z"));
        i.status = "resolved".into();
        let f = facts(vec![i.clone()], vec![]);
        assert!(codes(&f, "2026-11-27T12:00:00Z").is_empty());
        assert_eq!(
            codes(&f, "2026-11-27T12:01:00Z"),
            [("INC-7".into(), FindingCode::PostmortemMissing, Level::Fail)]
        );

        let mut pm = postmortem::parse(
            "2026-11-24-inc-7.md",
            "## Incident: broken\n### What happened\n",
        );
        link(std::slice::from_mut(&mut pm), std::slice::from_ref(&i));
        assert_eq!(pm.incident.as_deref(), Some("INC-7"));
        i.postmortem_at = Some(utc("2026-11-30T10:00:00Z"));
        let f = facts(vec![i], vec![pm]);
        let got = codes(&f, "2026-12-01T00:00:00Z");
        assert!(
            got.contains(&("INC-7".into(), FindingCode::PostmortemLate, Level::Fail)),
            "{got:?}"
        );
        assert!(
            got.contains(&("INC-7".into(), FindingCode::PostmortemLate, Level::Warn)),
            "missing sections: {got:?}"
        );
    }

    #[test]
    fn figures_count_and_time_each_month() {
        let mut a = incident("A", Some("Sev1"), "2026-11-02T10:00:00Z");
        a.triaged_at = Some(utc("2026-11-02T10:10:00Z"));
        a.resolved_at = Some(utc("2026-11-02T12:00:00Z"));
        let mut b = incident("B", Some("Sev2"), "2026-11-03T10:00:00Z");
        b.triaged_at = Some(utc("2026-11-03T13:00:00Z"));
        let c = incident("C", None, "2026-10-03T10:00:00Z");
        let f = figures(&[a, b, c], &Policy::default(), utc("2026-12-01T00:00:00Z"));
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].period, "2026-10");
        assert_eq!(f[0].count_by_severity["unclassified"], 1);
        let nov = &f[1];
        assert_eq!(nov.count_by_severity.values().sum::<usize>(), 2);
        assert_eq!(nov.median_triage_seconds, Some(600));
        assert_eq!(nov.p90_triage_seconds, Some(10_800));
        assert_eq!(nov.triaged_within_target_percent, Some(50.0));
        assert_eq!(nov.resolved_within_target_percent, Some(100.0));
    }
}
