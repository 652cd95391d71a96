//! Control evaluation: a pure function from the catalog and the state of each source to the
//! status document.
//!
//! Per source, worst first: `missing` (never collected) > `not_evaluated` (latest run failed and
//! no fresh evidence left) > `stale` > `not_satisfied` (a `fail` finding) > `satisfied`. A
//! control takes the worst status of its sources; a control no configured source evidences is
//! `missing`.

use std::time::Duration;

use annexa_collectors::{Due, Finding, FindingCode, Level};
use annexa_reports::{
    Accepted, ControlReport, ControlStatus, EvidenceRef, FindingRef, StatusDocument, Upcoming,
};
use chrono::{DateTime, Utc};

use super::{Acceptance, Catalog, Control};

/// A finished run as evaluation needs it.
#[derive(Debug, Clone)]
pub struct RunState {
    pub run_id: String,
    pub succeeded: bool,
    pub finished_at: DateTime<Utc>,
    /// Why a failed run failed, and the code that says so.
    pub error: Option<(FindingCode, String)>,
}

/// What is known of one source (a configured collector, or annexa's custody log) at `as_of`.
#[derive(Debug, Clone)]
pub struct SourceState {
    pub collector: String,
    /// The controls this source evidences.
    pub controls: Vec<String>,
    /// The evidence kinds it provides (`Collector::provides`; `annexa` for the custody log).
    pub provides: Vec<String>,
    /// Overrides the control's maximum evidence age.
    pub max_age: Option<Duration>,
    /// The newest finished run, whatever its outcome.
    pub latest: Option<RunState>,
    /// The newest successful run, and its evidence objects (sha256, object key).
    pub latest_success: Option<(RunState, Vec<(String, String)>)>,
    /// Objects of that run not in its list (a run of very many items lists the first ones).
    pub unlisted: u64,
    /// The collector's check over the stored facts of `latest_success`, at `as_of`.
    pub findings: Vec<Finding>,
    /// What those facts say falls due after `as_of` (`Collector::upcoming`), the soonest.
    pub upcoming: Vec<Due>,
    /// Dues of those facts later than all of `upcoming`, not listed ([`annexa_collectors::Soonest`]).
    pub upcoming_later: u64,
    /// When the collector is next scheduled to run after `as_of` (None: not scheduled).
    pub next_run: Option<DateTime<Utc>>,
    /// Who attests `latest_success` and who approved it (attested evidence only).
    pub attested: Option<annexa_reports::AttestedBy>,
}

/// Codes that speak of the source as a whole, so they bear on every control it evidences. An
/// `integrity-violation` among a collector's findings says its stored facts cannot be trusted:
/// no control it evidences may pass on them.
fn is_source_wide(code: FindingCode) -> bool {
    matches!(
        code,
        FindingCode::EvidenceMissing
            | FindingCode::EvidenceStale
            | FindingCode::CollectorFailed
            | FindingCode::CollectorUnauthorized
            | FindingCode::IntegrityViolation
    )
}

fn bears_on(finding: &Finding, control: &Control) -> bool {
    bears(finding.code, &finding.controls, control)
}

/// Whether a finding of `code` naming `controls` (none: by its code) bears on `control`.
pub(super) fn bears(code: FindingCode, controls: &[String], control: &Control) -> bool {
    if !controls.is_empty() {
        return controls.contains(&control.id);
    }
    is_source_wide(code) || control.codes.contains(&code)
}

/// What evaluation judges by besides the sources: the configured level of each code, and the
/// accepted exceptions.
pub struct Judging<'a> {
    pub level: &'a dyn Fn(FindingCode) -> Level,
    pub accepted: &'a [Acceptance],
}

/// Evaluates every control of the catalog.
pub fn evaluate(
    catalog: &Catalog,
    sources: &[SourceState],
    as_of: DateTime<Utc>,
    judging: &Judging,
) -> StatusDocument {
    let controls: Vec<ControlReport> = catalog
        .controls()
        .iter()
        .map(|control| {
            let mut report = evaluate_control(control, sources, as_of, judging.level);
            apply_acceptances(&mut report, judging.accepted, as_of);
            report
        })
        .collect();
    let upcoming = upcoming(catalog, sources, &controls, judging.accepted);
    StatusDocument {
        as_of,
        controls,
        upcoming,
        upcoming_unlisted: sources.iter().map(|s| s.upcoming_later).sum(),
        integrity: None,
        excluded: Vec::new(),
    }
}

/// What falls due and is not late yet, soonest first, each naming the controls it bears on:
/// what the sources' facts say, evidence that expires before its collector is next scheduled
/// to refresh it, and accepted exceptions that end while their finding still stands.
fn upcoming(
    catalog: &Catalog,
    sources: &[SourceState],
    controls: &[ControlReport],
    accepted: &[Acceptance],
) -> Vec<Upcoming> {
    let mut out: Vec<Upcoming> = Vec::new();
    // Each due once, however many controls or evidence objects name it.
    let mut index: std::collections::HashMap<(&'static str, String, DateTime<Utc>), usize> =
        std::collections::HashMap::new();
    let mut add = |u: Upcoming| match index.entry((u.code.as_str(), u.subject.clone(), u.due)) {
        std::collections::hash_map::Entry::Occupied(o) => out[*o.get()].controls.extend(u.controls),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(out.len());
            out.push(u);
        }
    };
    for source in sources {
        for due in &source.upcoming {
            let ids: Vec<String> = catalog
                .controls()
                .iter()
                .filter(|c| source.controls.contains(&c.id) && bears(due.code, &due.controls, c))
                .map(|c| c.id.clone())
                .collect();
            if !ids.is_empty() {
                add(Upcoming {
                    code: due.code,
                    subject: due.subject.clone(),
                    due: due.due,
                    what: due.what.clone(),
                    collector: source.collector.clone(),
                    controls: ids,
                });
            }
        }
    }
    for control in controls {
        for e in control.evidence.iter().filter(|e| e.fresh) {
            // Only evidence its collector will not refresh in time.
            let Some(next) = sources
                .iter()
                .find(|s| s.collector == e.collector)
                .and_then(|s| s.next_run)
                .filter(|n| *n > e.expires_at)
            else {
                continue;
            };
            add(Upcoming {
                code: FindingCode::EvidenceStale,
                subject: e.collector.clone(),
                due: e.expires_at,
                what: format!(
                    "fresh evidence of `{}` (collected {}): it expires before the collector's next scheduled run at {}",
                    e.collector,
                    e.collected_at.format("%Y-%m-%d %H:%M UTC"),
                    next.format("%Y-%m-%d %H:%M UTC")
                ),
                collector: e.collector.clone(),
                controls: vec![control.id.clone()],
            });
        }
        for f in &control.findings {
            let Some(a) = &f.accepted else { continue };
            let Some(acceptance) = accepted.iter().find(|x| x.event == a.event) else {
                continue;
            };
            add(Upcoming {
                code: acceptance.code,
                subject: f.subject.clone(),
                due: a.until,
                what: format!(
                    "the end of the exception for {} on {} accepted by {} ({})",
                    acceptance.code, f.subject, a.by, a.reason
                ),
                collector: f.collector.clone(),
                controls: vec![control.id.clone()],
            });
        }
    }
    for u in &mut out {
        u.controls.sort();
        u.controls.dedup();
    }
    out.sort_by(|a, b| (a.due, &a.subject).cmp(&(b.due, &b.subject)));
    out
}

/// A `fail` finding under an acceptance that lasts at `as_of` counts as a warning, and says
/// whose acceptance it is under; a control left with no failing finding is satisfied.
fn apply_acceptances(report: &mut ControlReport, accepted: &[Acceptance], as_of: DateTime<Utc>) {
    let mut changed = false;
    for f in report
        .findings
        .iter_mut()
        .filter(|f| f.level == Level::Fail)
    {
        if let Some(a) = accepted
            .iter()
            .find(|a| a.covers(&report.id, f.code, &f.subject, as_of))
        {
            f.level = Level::Warn;
            f.accepted = Some(Accepted {
                by: a.by.clone(),
                reason: a.reason.clone(),
                until: a.until,
                event: a.event.clone(),
            });
            changed = true;
        }
    }
    if changed
        && report.status == ControlStatus::NotSatisfied
        && !report.findings.iter().any(|f| f.level == Level::Fail)
    {
        report.status = ControlStatus::Satisfied;
    }
}

fn evaluate_control(
    control: &Control,
    sources: &[SourceState],
    as_of: DateTime<Utc>,
    level: &dyn Fn(FindingCode) -> Level,
) -> ControlReport {
    let mut report = ControlReport {
        id: control.id.clone(),
        title: control.title.clone(),
        status: ControlStatus::Satisfied,
        evidence: Vec::new(),
        evidence_unlisted: 0,
        findings: Vec::new(),
        period: None,
    };
    let relevant: Vec<&SourceState> = sources
        .iter()
        .filter(|s| s.controls.contains(&control.id))
        .collect();
    let missing = |subject: &str, message: String| FindingRef {
        code: FindingCode::EvidenceMissing,
        level: level(FindingCode::EvidenceMissing),
        subject: subject.to_string(),
        message,
        collector: String::new(),
        run_id: None,
        first_seen: None,
        accepted: None,
    };
    // Empty is never green: each required kind that no source of this control provides.
    for need in &control.requires {
        if !relevant
            .iter()
            .any(|s| s.provides.iter().any(|p| p == need.as_str()))
        {
            report.status = ControlStatus::Missing;
            // Attested evidence missing is one gap, however many controls lack it: one alert
            // names them all, rather than one alert per control of the SoA.
            let subject = match need {
                super::Evidence::Attested => super::ATTESTED,
                _ => control.id.as_str(),
            };
            report.findings.push(missing(
                subject,
                format!(
                    "{} requires {} evidence, and no configured source provides it; add {}",
                    control.id,
                    need,
                    need.how_to_provide(&control.id)
                ),
            ));
        }
    }
    if relevant.is_empty() {
        report.status = ControlStatus::Missing;
        if control.requires.is_empty() {
            report.findings.push(missing(
                &control.id,
                format!(
                    "no configured collector evidences {}; add a [[collector]] of kind {}",
                    control.id,
                    if control.collectors.is_empty() {
                        "any".to_string()
                    } else {
                        control.collectors.join(" or ")
                    }
                ),
            ));
        }
        return report;
    }
    for source in relevant {
        let (status, evidence, findings) = evaluate_source(control, source, as_of, level);
        report.status = report.status.max(status);
        if !evidence.is_empty() {
            report.evidence_unlisted += source.unlisted;
        }
        report.evidence.extend(evidence);
        report.findings.extend(
            findings
                .into_iter()
                .filter(|f| bears_on(f, control))
                .map(|f| FindingRef {
                    run_id: run_of(&f, source),
                    level: f.level,
                    code: f.code,
                    subject: f.subject,
                    message: f.message,
                    collector: source.collector.clone(),
                    first_seen: None,
                    accepted: None,
                }),
        );
    }
    // A failing finding makes fresh evidence not satisfied; warnings do not.
    if report.status == ControlStatus::Satisfied
        && report.findings.iter().any(|f| f.level == Level::Fail)
    {
        report.status = ControlStatus::NotSatisfied;
    }
    report
}

/// The findings annexa itself raises about a source get the configured level, except a failed
/// run beside fresh evidence, which is only a warning.
/// The run a finding of `source` comes from: the failed run for a failure, none for evidence
/// missing or stale (the evaluation's own), else the run whose facts were judged.
fn run_of(finding: &Finding, source: &SourceState) -> Option<String> {
    match finding.code {
        FindingCode::CollectorFailed | FindingCode::CollectorUnauthorized => source
            .latest
            .as_ref()
            .filter(|r| !r.succeeded)
            .map(|r| r.run_id.clone()),
        FindingCode::EvidenceMissing | FindingCode::EvidenceStale => None,
        _ => source
            .latest_success
            .as_ref()
            .map(|(r, _)| r.run_id.clone()),
    }
}

fn evaluate_source(
    control: &Control,
    source: &SourceState,
    as_of: DateTime<Utc>,
    level: &dyn Fn(FindingCode) -> Level,
) -> (ControlStatus, Vec<EvidenceRef>, Vec<Finding>) {
    let max_age = source.max_age.unwrap_or(control.max_age);
    let failed_latest = source.latest.as_ref().filter(|r| !r.succeeded);
    let failure = |fresh: bool| {
        failed_latest.map(|r| {
            let (code, why) = r.error.clone().unwrap_or((
                FindingCode::CollectorFailed,
                "the run failed without a reason".to_string(),
            ));
            Finding::new(
                code,
                source.collector.clone(),
                format!("run {} failed: {why}", r.run_id),
            )
            .with_level(if fresh { Level::Warn } else { level(code) })
        })
    };
    let Some((run, objects)) = &source.latest_success else {
        return match failure(false) {
            Some(f) => (ControlStatus::NotEvaluated, Vec::new(), vec![f]),
            // A source that says itself why it has no evidence (attested evidence awaiting
            // review) is taken at its word.
            None if source
                .findings
                .iter()
                .any(|f| f.code == FindingCode::EvidenceMissing) =>
            {
                (ControlStatus::Missing, Vec::new(), source.findings.clone())
            }
            None => (
                ControlStatus::Missing,
                Vec::new(),
                vec![
                    Finding::new(
                        FindingCode::EvidenceMissing,
                        source.collector.clone(),
                        format!(
                            "collector `{}` has never collected evidence",
                            source.collector
                        ),
                    )
                    .with_level(level(FindingCode::EvidenceMissing)),
                ],
            ),
        };
    };
    let expires_at =
        run.finished_at + chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let fresh = as_of <= expires_at;
    let evidence = objects
        .iter()
        .map(|(sha256, key)| EvidenceRef {
            collector: source.collector.clone(),
            run_id: run.run_id.clone(),
            collected_at: run.finished_at,
            expires_at,
            fresh,
            sha256: sha256.clone(),
            object_key: key.clone(),
            attested: source.attested.clone(),
        })
        .collect();
    let mut findings = source.findings.clone();
    let status = if !fresh {
        findings.push(
            Finding::new(
                FindingCode::EvidenceStale,
                source.collector.clone(),
                format!(
                    "newest evidence from `{}` was collected {} and expired {}",
                    source.collector,
                    run.finished_at.format("%Y-%m-%d %H:%M UTC"),
                    expires_at.format("%Y-%m-%d %H:%M UTC"),
                ),
            )
            .with_level(level(FindingCode::EvidenceStale)),
        );
        findings.extend(failure(false));
        if failed_latest.is_some() {
            ControlStatus::NotEvaluated
        } else {
            ControlStatus::Stale
        }
    } else {
        // Fresh evidence still stands; the failed run is worth a warning, not a gap.
        findings.extend(failure(true));
        ControlStatus::Satisfied
    };
    (status, evidence, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
    }

    fn run(id: &str, ok: bool, day: u32) -> RunState {
        RunState {
            run_id: id.into(),
            succeeded: ok,
            finished_at: at(day),
            error: (!ok).then(|| (FindingCode::CollectorFailed, "source missing".to_string())),
        }
    }

    fn source(
        latest: Option<RunState>,
        success: Option<RunState>,
        findings: Vec<Finding>,
    ) -> SourceState {
        SourceState {
            collector: "policies".into(),
            controls: vec!["A.5.24".into()],
            provides: vec!["policy-document".into()],
            max_age: Some(Duration::from_secs(2 * 86_400)),
            latest,
            latest_success: success
                .map(|r| (r, vec![("ab".repeat(32), "objects/sha256/ab/x".into())])),
            unlisted: 0,
            findings,
            upcoming: Vec::new(),
            upcoming_later: 0,
            next_run: None,
            attested: None,
        }
    }

    fn judging() -> Judging<'static> {
        Judging {
            level: &|c: FindingCode| c.default_level(),
            accepted: &[],
        }
    }

    fn status_of(s: SourceState, as_of: DateTime<Utc>) -> ControlReport {
        let doc = evaluate(&Catalog::default_catalog(), &[s], as_of, &judging());
        doc.controls.into_iter().find(|c| c.id == "A.5.24").unwrap()
    }

    #[test]
    fn fresh_evidence_without_failing_findings_is_satisfied() {
        let r = status_of(
            source(Some(run("r1", true, 10)), Some(run("r1", true, 10)), vec![]),
            at(11),
        );
        assert_eq!(r.status, ControlStatus::Satisfied);
        assert!(r.evidence[0].fresh);
        assert_eq!(r.evidence[0].expires_at, at(12));
    }

    #[test]
    fn a_failing_finding_makes_it_not_satisfied_and_a_warning_does_not() {
        let fail = Finding::new(FindingCode::PolicyReviewOverdue, "doc", "late");
        let warn = Finding::new(FindingCode::PolicyMetadataMissing, "doc", "no owner");
        let ok = Some(run("r1", true, 10));
        assert_eq!(
            status_of(source(ok.clone(), ok.clone(), vec![warn]), at(11)).status,
            ControlStatus::Satisfied
        );
        assert_eq!(
            status_of(source(ok.clone(), ok, vec![fail]), at(11)).status,
            ControlStatus::NotSatisfied
        );
    }

    #[test]
    fn old_evidence_is_stale_and_the_future_can_be_asked() {
        let ok = Some(run("r1", true, 10));
        let r = status_of(source(ok.clone(), ok, vec![]), at(13));
        assert_eq!(r.status, ControlStatus::Stale);
        assert!(
            r.findings
                .iter()
                .any(|f| f.code == FindingCode::EvidenceStale)
        );
    }

    #[test]
    fn a_failed_run_is_not_evaluated_without_fresh_evidence_and_a_warning_with_it() {
        let none = status_of(source(Some(run("r2", false, 11)), None, vec![]), at(11));
        assert_eq!(none.status, ControlStatus::NotEvaluated);
        assert_eq!(none.findings[0].code, FindingCode::CollectorFailed);

        let fresh = status_of(
            source(
                Some(run("r2", false, 11)),
                Some(run("r1", true, 10)),
                vec![],
            ),
            at(11),
        );
        assert_eq!(fresh.status, ControlStatus::Satisfied);
        assert_eq!(fresh.findings[0].level, Level::Warn);

        let stale = status_of(
            source(
                Some(run("r2", false, 13)),
                Some(run("r1", true, 10)),
                vec![],
            ),
            at(13),
        );
        assert_eq!(stale.status, ControlStatus::NotEvaluated);
    }

    #[test]
    fn never_collected_or_not_configured_is_missing() {
        let r = status_of(source(None, None, vec![]), at(11));
        assert_eq!(r.status, ControlStatus::Missing);
        let doc = evaluate(&Catalog::default_catalog(), &[], at(11), &judging());
        assert!(
            doc.controls
                .iter()
                .all(|c| c.status == ControlStatus::Missing)
        );
        let message = &doc.controls[0].findings[0].message;
        assert!(
            message.contains("A.5.24 requires policy-document evidence")
                && message.contains("`Controls: A.5.24`"),
            "{message}"
        );
    }

    /// Due dates: what the facts say (placed on the controls it bears on), and evidence that
    /// expires before its collector's next run; evidence the schedule refreshes in time is not.
    #[test]
    fn upcoming_lists_due_dates_and_evidence_the_schedule_will_not_refresh_in_time() {
        let ok = Some(run("r1", true, 10));
        let review = Due {
            code: FindingCode::PolicyReviewOverdue,
            subject: "ISP-001".into(),
            due: at(20),
            what: "ISP-001's review".into(),
            controls: vec!["A.5.24".into()],
        };
        let upcoming = |next_run: Option<DateTime<Utc>>| {
            let s = SourceState {
                upcoming: vec![review.clone()],
                next_run,
                ..source(ok.clone(), ok.clone(), vec![])
            };
            evaluate(&Catalog::default_catalog(), &[s], at(11), &judging()).upcoming
        };
        // Evidence from day 10 expires on day 12 (max age 2 days); a run tomorrow refreshes it.
        let soon = upcoming(Some(at(11) + chrono::Duration::hours(1)));
        assert_eq!(soon.len(), 1, "{soon:?}");
        assert_eq!(
            (
                soon[0].code,
                soon[0].subject.as_str(),
                soon[0].controls.clone()
            ),
            (
                FindingCode::PolicyReviewOverdue,
                "ISP-001",
                vec!["A.5.24".to_string()]
            )
        );
        // The next run only on day 15: the evidence is due to go stale first.
        let late = upcoming(Some(at(15)));
        assert_eq!(late.len(), 2, "{late:?}");
        assert_eq!(late[0].code, FindingCode::EvidenceStale);
        assert_eq!(late[0].due, at(12));
        assert!(
            late[0]
                .what
                .contains("next scheduled run at 2026-11-15 12:00 UTC")
        );
        assert_eq!(
            late[1].code,
            FindingCode::PolicyReviewOverdue,
            "soonest first"
        );
        // Unscheduled: nothing is known of the next run, so nothing is warned of.
        assert_eq!(upcoming(None).len(), 1);
    }

    /// Facts that fail their hash give an `integrity-violation` among the source's findings:
    /// it weighs on every control the source evidences, not only on A.5.28.
    #[test]
    fn facts_that_cannot_be_trusted_fail_every_control_of_their_source() {
        let tampered = Finding::new(
            FindingCode::IntegrityViolation,
            "objects/sha256/ab/x",
            "facts of run r1 no longer match their recorded SHA-256",
        );
        let ok = Some(run("r1", true, 10));
        let r = status_of(source(ok.clone(), ok, vec![tampered]), at(11));
        assert_eq!(r.status, ControlStatus::NotSatisfied);
        assert_eq!(r.findings[0].code, FindingCode::IntegrityViolation);
    }

    #[test]
    fn a_required_kind_that_no_source_provides_makes_the_control_missing() {
        // An incident register alone is no incident management plan: A.5.24 stays missing.
        let register = SourceState {
            collector: "incidents".into(),
            controls: vec!["A.5.24".into()],
            provides: vec!["incident-log".into()],
            ..source(Some(run("r1", true, 10)), Some(run("r1", true, 10)), vec![])
        };
        let r = status_of(register.clone(), at(11));
        assert_eq!(r.status, ControlStatus::Missing);
        assert_eq!(r.findings[0].code, FindingCode::EvidenceMissing);
        assert!(r.findings[0].message.contains("requires policy-document"));
        let plan = source(Some(run("r2", true, 10)), Some(run("r2", true, 10)), vec![]);
        let doc = evaluate(
            &Catalog::default_catalog(),
            &[register, plan],
            at(11),
            &judging(),
        );
        assert_eq!(doc.controls[0].status, ControlStatus::Satisfied);

        // Backups without a restore drill do not evidence A.8.13 or A.5.30.
        let backups = |provides: &[&str]| SourceState {
            collector: "backups".into(),
            controls: vec!["A.5.30".into(), "A.8.13".into()],
            provides: provides.iter().map(|p| p.to_string()).collect(),
            ..source(Some(run("r3", true, 10)), Some(run("r3", true, 10)), vec![])
        };
        let statuses = |s: SourceState| -> Vec<(String, ControlStatus)> {
            evaluate(&Catalog::default_catalog(), &[s], at(11), &judging())
                .controls
                .into_iter()
                .filter(|c| c.id == "A.5.30" || c.id == "A.8.13")
                .map(|c| (c.id, c.status))
                .collect()
        };
        assert_eq!(
            statuses(backups(&["backup-restore"])),
            [
                ("A.5.30".to_string(), ControlStatus::Missing),
                ("A.8.13".to_string(), ControlStatus::Missing)
            ]
        );
        assert_eq!(
            statuses(backups(&["backup-restore", "restore-drill"])),
            [
                ("A.5.30".to_string(), ControlStatus::Satisfied),
                ("A.8.13".to_string(), ControlStatus::Satisfied)
            ]
        );
    }

    #[test]
    fn an_accepted_fail_counts_as_a_warning_until_the_acceptance_ends() {
        let overdue = Finding::new(FindingCode::PolicyReviewOverdue, "ISP-001", "late")
            .with_controls(vec!["A.5.24".into()]);
        let ok = Some(run("r1", true, 10));
        let s = source(ok.clone(), ok, vec![overdue]);
        let acceptance = Acceptance {
            event: "e1".into(),
            control: "A.5.24".into(),
            code: FindingCode::PolicyReviewOverdue,
            subject: Some("ISP-001".into()),
            reason: "rewrite under way".into(),
            by: "CISO".into(),
            at: at(10),
            until: at(12),
        };
        let judged = |as_of, accepted: &[Acceptance]| {
            let level = |c: FindingCode| c.default_level();
            let judging = Judging {
                level: &level,
                accepted,
            };
            evaluate(
                &Catalog::default_catalog(),
                std::slice::from_ref(&s),
                as_of,
                &judging,
            )
            .controls
            .into_iter()
            .find(|c| c.id == "A.5.24")
            .unwrap()
        };
        let under = judged(at(11), std::slice::from_ref(&acceptance));
        assert_eq!(under.status, ControlStatus::Satisfied);
        assert_eq!(under.findings[0].level, Level::Warn);
        assert_eq!(under.findings[0].accepted.as_ref().unwrap().by, "CISO");
        // Another subject, another code, or after the end: not covered.
        let other = Acceptance {
            subject: Some("ISP-002".into()),
            ..acceptance.clone()
        };
        assert_eq!(judged(at(11), &[other]).status, ControlStatus::NotSatisfied);
        let ended = judged(at(12), std::slice::from_ref(&acceptance));
        assert_eq!(ended.status, ControlStatus::NotSatisfied);
        assert!(ended.findings[0].accepted.is_none());
    }
}
