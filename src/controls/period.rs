//! Period verdicts: how a control fared over `[from, to)`, judged from each source's history
//! (its successful runs and the failing findings each recorded). Pure.
//!
//! A source's snapshot is fresh from its collection until it expires; it is also satisfied
//! until the next snapshot when it recorded no failing finding bearing on the control. A
//! control is fresh (satisfied) when every one of its sources is. Its verdict:
//! `not_effective` when not satisfied at the end or fresh for less than `min_fresh_share` of
//! the period; `effective` when satisfied throughout with no lapse, missed slot or failing
//! finding; `effective_with_exceptions` otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use annexa_collectors::FindingCode;
use annexa_reports::{
    ControlPeriod, ControlStatus, Lapse, MissedSlots, PeriodFinding, Share, Verdict,
};
use chrono::{DateTime, Utc};

use super::Control;
use super::evaluate::bears;

/// A failing finding as a run recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub code: FindingCode,
    pub subject: std::sync::Arc<str>,
    pub message: std::sync::Arc<str>,
    pub controls: std::sync::Arc<[String]>,
}

/// One successful run.
#[derive(Debug, Clone)]
pub struct Success {
    pub run_id: String,
    pub finished_at: DateTime<Utc>,
    /// When it stops being fresh, where the run says so itself (attested evidence); else
    /// one maximum age after it finished.
    pub expires: Option<DateTime<Utc>>,
    pub fails: Vec<Recorded>,
}

/// What one source did around the period.
#[derive(Debug, Clone)]
pub struct History {
    pub collector: String,
    pub controls: Vec<String>,
    /// Overrides the control's maximum evidence age.
    pub max_age: Option<Duration>,
    /// Its first run ever (any outcome); `None` when it never ran by the end of the period.
    pub first_run: Option<DateTime<Utc>>,
    /// Its newest success before the period, then every success in it, oldest first.
    pub successes: Vec<Success>,
    /// The slots due in the period since its first run (none for an unscheduled source).
    pub slots: Vec<DateTime<Utc>>,
}

type Spans = Vec<(DateTime<Utc>, DateTime<Utc>)>;

fn measure(spans: &Spans) -> chrono::Duration {
    spans
        .iter()
        .fold(chrono::Duration::zero(), |sum, (a, b)| sum + (*b - *a))
}

/// Sorted, disjoint spans clipped to `[from, to)`.
fn normalize(mut spans: Spans, from: DateTime<Utc>, to: DateTime<Utc>) -> Spans {
    spans.retain_mut(|(a, b)| {
        *a = (*a).max(from);
        *b = (*b).min(to);
        a < b
    });
    spans.sort();
    let mut out: Spans = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some((_, end)) if a <= *end => *end = (*end).max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn intersect(x: &Spans, y: &Spans) -> Spans {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        let (a, b) = (x[i].0.max(y[j].0), x[i].1.min(y[j].1));
        if a < b {
            out.push((a, b));
        }
        if x[i].1 < y[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// The parts of `[from, to)` not in `spans`.
fn complement(spans: &Spans, from: DateTime<Utc>, to: DateTime<Utc>) -> Spans {
    let mut out = Vec::new();
    let mut cursor = from;
    for (a, b) in spans {
        if *a > cursor {
            out.push((cursor, *a));
        }
        cursor = cursor.max(*b);
    }
    if cursor < to {
        out.push((cursor, to));
    }
    out
}

/// Judges `control` over `[from, to)`; `at_end` is its status at the end.
pub fn judge(
    control: &Control,
    at_end: ControlStatus,
    histories: &[History],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    min_fresh_share: f64,
) -> ControlPeriod {
    let relevant: Vec<&History> = histories
        .iter()
        .filter(|h| h.controls.contains(&control.id))
        .collect();
    let mut fresh_all: Spans = if relevant.is_empty() {
        Vec::new()
    } else {
        vec![(from, to)]
    };
    let mut satisfied_all = fresh_all.clone();
    let mut lapses = Vec::new();
    let mut missed_slots = Vec::new();
    let mut findings: BTreeMap<(String, FindingCode, String), PeriodFinding> = BTreeMap::new();
    let mut not_yet_collected = Vec::new();
    for h in &relevant {
        match h.first_run {
            None => not_yet_collected.push(format!(
                "`{}`: not yet collected by the end of the period",
                h.collector
            )),
            Some(first) if first >= from => not_yet_collected.push(format!(
                "`{}`: first collected {}; nothing was due before",
                h.collector,
                first.format("%Y-%m-%d %H:%M UTC")
            )),
            Some(_) => {}
        }
        let max_age = as_chrono(h.max_age.unwrap_or(control.max_age));
        let mut fresh = Vec::new();
        let mut satisfied = Vec::new();
        for (i, s) in h.successes.iter().enumerate() {
            let expires = s.expires.unwrap_or(s.finished_at + max_age);
            let next = h.successes.get(i + 1).map_or(expires, |n| n.finished_at);
            fresh.push((s.finished_at, expires));
            let failing: Vec<&Recorded> = s
                .fails
                .iter()
                .filter(|f| bears(f.code, &f.controls, control))
                .collect();
            if failing.is_empty() {
                satisfied.push((s.finished_at, next.min(expires)));
            }
            if expires <= from {
                continue; // its findings were no longer standing in the period
            }
            for f in failing {
                let seen = s.finished_at.max(from);
                findings
                    .entry((h.collector.clone(), f.code, f.subject.to_string()))
                    .and_modify(|p| {
                        p.last_seen = seen;
                        p.message = f.message.to_string();
                    })
                    .or_insert_with(|| PeriodFinding {
                        code: f.code,
                        subject: f.subject.to_string(),
                        collector: h.collector.clone(),
                        message: f.message.to_string(),
                        first_seen: seen,
                        last_seen: seen,
                        run_id: s.run_id.clone(),
                    });
            }
        }
        let fresh = normalize(fresh, from, to);
        let satisfied = normalize(satisfied, from, to);
        lapses.extend(
            complement(&fresh, from, to)
                .into_iter()
                .map(|(since, until)| Lapse {
                    collector: h.collector.clone(),
                    since,
                    until,
                }),
        );
        fresh_all = intersect(&fresh_all, &fresh);
        satisfied_all = intersect(&satisfied_all, &satisfied);
        let finished: Vec<DateTime<Utc>> = h.successes.iter().map(|s| s.finished_at).collect();
        let missed: Vec<DateTime<Utc>> = h
            .slots
            .iter()
            .enumerate()
            .filter(|(i, slot)| {
                let end = h.slots.get(i + 1).copied().unwrap_or(to);
                let first_after = finished.partition_point(|t| t < slot);
                finished.get(first_after).is_none_or(|t| *t >= end)
            })
            .map(|(_, slot)| *slot)
            .collect();
        if !missed.is_empty() {
            missed_slots.push(MissedSlots {
                collector: h.collector.clone(),
                expected: h.slots.len(),
                slots: missed,
            });
        }
    }
    let whole = to - from;
    let fresh_share = Share::of(measure(&fresh_all), whole);
    let satisfied_share = Share::of(measure(&satisfied_all), whole);
    let period_findings: Vec<PeriodFinding> = findings.into_values().collect();
    let (verdict, why_verdict) = if at_end != ControlStatus::Satisfied {
        (
            Verdict::NotEffective,
            format!("{} at the end of the period", at_end.as_str()),
        )
    } else if fresh_share.fraction() < min_fresh_share {
        (
            Verdict::NotEffective,
            format!(
                "fresh evidence for {} of the period, under the {:.0} % required ([verdicts] min_fresh_share)",
                fresh_share.percent(),
                min_fresh_share * 100.0
            ),
        )
    } else if satisfied_share == Share(10_000)
        && lapses.is_empty()
        && missed_slots.is_empty()
        && period_findings.is_empty()
    {
        (
            Verdict::Effective,
            "satisfied throughout the period".to_string(),
        )
    } else {
        let missed: usize = missed_slots.iter().map(|m| m.slots.len()).sum();
        (
            Verdict::EffectiveWithExceptions,
            format!(
                "satisfied at the end; during the period {} lapse{}, {} missed collection{}, {} failing finding{}; satisfied {} of the time",
                lapses.len(),
                plural(lapses.len()),
                missed,
                plural(missed),
                period_findings.len(),
                plural(period_findings.len()),
                satisfied_share.percent()
            ),
        )
    };
    ControlPeriod {
        from,
        to,
        verdict,
        fresh_share,
        satisfied_share,
        lapses,
        missed_slots,
        period_findings,
        not_yet_collected,
        why_verdict,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn as_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controls::Catalog;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 6, 0, 0).unwrap()
    }

    /// A daily backup collector over November: a success every day at 06:00 except `skip`,
    /// failing findings on `failing` days.
    fn backups(skip: &[u32], failing: &[u32], first: u32) -> History {
        let successes = (first..=30)
            .filter(|d| !skip.contains(d))
            .map(|d| Success {
                run_id: format!("r{d}"),
                finished_at: day(d),
                expires: None,
                fails: if failing.contains(&d) {
                    vec![Recorded {
                        code: FindingCode::RestoreFailed,
                        subject: "app.dump".into(),
                        message: format!("drill failed on the {d}th").into(),
                        controls: Vec::new().into(),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect();
        History {
            collector: "backups".into(),
            controls: vec!["A.8.13".into()],
            max_age: None,
            first_run: Some(day(first) - chrono::Duration::minutes(1)),
            successes,
            slots: (first..=30).map(day).collect(),
        }
    }

    fn verdict(h: History, at_end: ControlStatus) -> ControlPeriod {
        let catalog = Catalog::default_catalog();
        let control = catalog.get("A.8.13").unwrap();
        // The period starts right after the first snapshot: [1st 06:00, 1st of December).
        judge(
            control,
            at_end,
            &[h],
            day(1),
            day(30) + chrono::Duration::hours(18),
            0.9,
        )
    }

    #[test]
    fn the_three_verdicts_over_a_month() {
        let clean = verdict(backups(&[], &[], 1), ControlStatus::Satisfied);
        assert_eq!(clean.verdict, Verdict::Effective, "{}", clean.why_verdict);
        assert_eq!(clean.fresh_share, Share(10_000));

        // Two days without a snapshot (max age 2 days: one lapse of a day), and a failed drill.
        let rough = verdict(backups(&[10, 11, 12], &[20], 1), ControlStatus::Satisfied);
        assert_eq!(rough.verdict, Verdict::EffectiveWithExceptions);
        assert_eq!(rough.lapses.len(), 1);
        assert_eq!(rough.lapses[0].since, day(11));
        assert_eq!(rough.lapses[0].until, day(13));
        assert_eq!(rough.missed_slots[0].slots, [day(10), day(11), day(12)]);
        assert_eq!(rough.period_findings.len(), 1);
        assert_eq!(rough.period_findings[0].first_seen, day(20));
        assert!(rough.satisfied_share < rough.fresh_share);

        let failing_at_end = verdict(backups(&[], &[30], 1), ControlStatus::NotSatisfied);
        assert_eq!(failing_at_end.verdict, Verdict::NotEffective);

        // Collected only from the 20th: fresh for about a third of the month.
        let late = verdict(backups(&[], &[], 20), ControlStatus::Satisfied);
        assert_eq!(late.verdict, Verdict::NotEffective, "{}", late.why_verdict);
        assert!(late.not_yet_collected[0].contains("first collected"));
        assert_eq!(late.missed_slots, [], "no slot before the first run is due");
    }

    #[test]
    fn a_period_before_the_first_run_is_not_yet_collected() {
        let never = History {
            first_run: None,
            successes: Vec::new(),
            slots: Vec::new(),
            ..backups(&[], &[], 1)
        };
        let p = verdict(never, ControlStatus::Missing);
        assert_eq!(p.verdict, Verdict::NotEffective);
        assert_eq!(p.fresh_share, Share(0));
        assert!(p.missed_slots.is_empty());
        assert!(p.not_yet_collected[0].contains("not yet collected"));
    }
}
