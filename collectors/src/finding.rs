//! Findings are data, not errors: a stable code, a level, a subject and a one-line message.

use serde::{Deserialize, Serialize};

/// How much a finding weighs. Configurable per code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth a look; does not make a control fail.
    Warn,
    /// The control is not satisfied while this finding stands.
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

macro_rules! finding_codes {
    ($($variant:ident => $code:literal, $level:ident, $what:literal;)*) => {
        /// The stable finding codes. Part of annexa's interface: a code is never renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        #[non_exhaustive]
        pub enum FindingCode {
            $($variant,)*
        }

        impl FindingCode {
            /// Every code, in the documented order.
            pub const ALL: &'static [FindingCode] = &[$(FindingCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $code,)*
                }
            }

            /// The level a finding with this code has unless the config says otherwise.
            pub fn default_level(self) -> Level {
                match self {
                    $(FindingCode::$variant => Level::$level,)*
                }
            }

            /// One line saying what the code means.
            pub fn description(self) -> &'static str {
                match self {
                    $(FindingCode::$variant => $what,)*
                }
            }
        }
    };
}

finding_codes! {
    EvidenceMissing => "evidence-missing", Fail, "required evidence was never collected";
    EvidenceStale => "evidence-stale", Fail, "the newest evidence is older than its maximum age";
    CollectorFailed => "collector-failed", Fail, "the latest collection failed";
    CollectorUnauthorized => "collector-unauthorized", Fail, "the source refused the collector's credentials or a permission is missing";
    PolicyReviewOverdue => "policy-review-overdue", Fail, "a policy document's last review is older than its review cycle";
    PolicyMetadataMissing => "policy-metadata-missing", Warn, "a policy document lacks a header field needed to judge it (owner, version, review cycle, review date)";
    IncidentUnclassified => "incident-unclassified", Fail, "an incident has no valid severity";
    IncidentTriageLate => "incident-triage-late", Fail, "an incident was triaged after its severity's target";
    IncidentResolutionLate => "incident-resolution-late", Fail, "an incident was resolved after its severity's target";
    IncidentOpenOverdue => "incident-open-overdue", Fail, "an open incident is past its resolution target";
    PostmortemMissing => "postmortem-missing", Fail, "an incident that requires a post-mortem has none past its due date";
    PostmortemLate => "postmortem-late", Fail, "a post-mortem was written after its due date, or is incomplete";
    BreachNotificationLate => "breach-notification-late", Fail, "a personal-data breach was notified to the authority after 72 hours";
    HeartbeatMissed => "heartbeat-missed", Fail, "a scheduled job did not report success within its grace period";
    HeartbeatFailed => "heartbeat-failed", Fail, "a scheduled job reported failure or overran its maximum runtime";
    BackupMissing => "backup-missing", Fail, "no backup was found";
    BackupStale => "backup-stale", Fail, "the newest backup is older than its maximum age";
    BackupSizeAnomaly => "backup-size-anomaly", Warn, "the newest backup is much smaller than usual";
    RestoreFailed => "restore-failed", Fail, "a restore drill failed";
    RestoreVerificationFailed => "restore-verification-failed", Fail, "a restored backup failed a verification query";
    RestoreDrillOverdue => "restore-drill-overdue", Fail, "no successful restore drill within the required period";
    VulnerabilityAlertOverdue => "vulnerability-alert-overdue", Fail, "an open vulnerability alert is older than its severity's target";
    SecretAlertOpen => "secret-alert-open", Fail, "a secret-scanning alert is open";
    AlertDismissalUnexplained => "alert-dismissal-unexplained", Warn, "a security alert was dismissed without a reason";
    IntegrityViolation => "integrity-violation", Fail, "stored evidence, the database or the ledger do not match";
    ScrubOverdue => "scrub-overdue", Fail, "some stored evidence has not been re-hashed within [verify] full_every";
    AttestationPending => "attestation-pending", Warn, "attested evidence awaits its review (`annexa review`)";
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FindingCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FindingCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown finding code `{s}`"))
    }
}

/// One judgement about stored evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: FindingCode,
    pub level: Level,
    /// What the finding is about: a document id, an incident id, a job and slot.
    pub subject: String,
    pub message: String,
    /// The controls this finding bears on, when the collector's config decides it (e.g. a
    /// document mapped to other controls). Empty: the catalog decides by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
}

impl Finding {
    /// A finding at its code's default level.
    ///
    /// Subject and message often echo source content (a register cell, an issue title): both
    /// are capped and their control characters escaped ([`crate::shown`], [`crate::shown_line`]), so a 10 MB cell or a
    /// terminal escape sequence never reaches a message, an alert or a terminal whole.
    pub fn new(code: FindingCode, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            code,
            level: code.default_level(),
            subject: crate::shown_line(&subject.into(), crate::MAX_SUBJECT),
            message: crate::shown(&message.into(), crate::MAX_MESSAGE),
            controls: Vec::new(),
        }
    }

    pub fn with_level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    pub fn with_controls(mut self, controls: Vec<String>) -> Self {
        self.controls = controls;
        self
    }
}

/// Something that must happen by a date, or it becomes a finding of `code`: a policy review,
/// a restore drill, a backup's maximum age. Alerts warn of it before it is late.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// The finding it becomes once late.
    pub code: FindingCode,
    pub subject: String,
    /// The moment it is late.
    pub due: chrono::DateTime<chrono::Utc>,
    /// What is due, in words: "ISP-001's annual review".
    pub what: String,
    /// As [`Finding::controls`]: empty when the catalog decides by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
}

/// The dues a judge keeps of facts that may hold millions: the [`Soonest::KEPT`] soonest, and a
/// count of the later ones it let go. Status and its warnings look at what falls due first.
#[derive(Debug, Default)]
pub struct Soonest {
    /// A max-heap by due time, so the latest kept is the one a sooner due displaces.
    heap: std::collections::BinaryHeap<ByDue>,
    later: u64,
}

#[derive(Debug)]
struct ByDue(Due);

impl PartialEq for ByDue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for ByDue {}
impl PartialOrd for ByDue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByDue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.due, &self.0.subject).cmp(&(other.0.due, &other.0.subject))
    }
}

impl Soonest {
    pub const KEPT: usize = 1000;

    pub fn push(&mut self, due: Due) {
        if self.heap.len() < Self::KEPT {
            self.heap.push(ByDue(due));
            return;
        }
        self.later += 1;
        let mut latest = self.heap.peek_mut().expect("full");
        if (due.due, &due.subject) < (latest.0.due, &latest.0.subject) {
            *latest = ByDue(due);
        }
    }

    /// [`Soonest::push`] of a due at `at` for `subject`, built by `make` only if it is kept: of
    /// a million documents' reviews, all but the soonest thousand cost one comparison.
    pub fn push_with(
        &mut self,
        at: chrono::DateTime<chrono::Utc>,
        subject: &str,
        make: impl FnOnce() -> Due,
    ) {
        let displaces = |latest: &ByDue| (at, subject) < (latest.0.due, latest.0.subject.as_str());
        match self.heap.peek() {
            Some(latest) if self.heap.len() >= Self::KEPT && !displaces(latest) => self.later += 1,
            _ => self.push(make()),
        }
    }

    /// The kept dues, soonest first, and how many later ones were let go.
    pub fn done(self) -> (Vec<Due>, u64) {
        let kept = self.heap.into_sorted_vec().into_iter().map(|d| d.0);
        (kept.collect(), self.later)
    }
}

/// A finding's subject split into the problem it is about and, for codes whose findings repeat
/// per occurrence (a job's slots: `db-backup@2026-11-22T03:00:00Z`), the occurrence. A job down
/// for a day is one problem with 24 occurrences, not 24 problems.
pub fn problem_of(code: FindingCode, subject: &str) -> (&str, Option<&str>) {
    match code {
        FindingCode::HeartbeatMissed | FindingCode::HeartbeatFailed => subject
            .rsplit_once('@')
            .map_or((subject, None), |(job, slot)| (job, Some(slot))),
        _ => (subject, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soonest_keeps_the_first_dues_in_order_and_counts_the_later_ones() {
        let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let due = |i: i64| Due {
            code: FindingCode::PolicyReviewOverdue,
            subject: format!("DOC-{i}"),
            due: start + chrono::Duration::days(i),
            what: String::new(),
            controls: Vec::new(),
        };
        let mut s = Soonest::default();
        // Latest first, so each sooner one displaces a kept one.
        for i in (0..Soonest::KEPT as i64 + 250).rev() {
            s.push(due(i));
        }
        let (kept, later) = s.done();
        assert_eq!(later, 250);
        assert_eq!(kept.len(), Soonest::KEPT);
        assert_eq!(kept[0], due(0));
        assert_eq!(kept[Soonest::KEPT - 1], due(Soonest::KEPT as i64 - 1));
        // Soonest first, so every later one is let go without being built.
        let (mut lazy, mut built) = (Soonest::default(), 0);
        for i in 0..Soonest::KEPT as i64 + 250 {
            let d = due(i);
            lazy.push_with(d.due, &d.subject, || {
                built += 1;
                d.clone()
            });
        }
        assert_eq!(built, Soonest::KEPT);
        assert_eq!(lazy.done(), (kept, 250));
        let mut few = Soonest::default();
        few.push(due(3));
        few.push(due(1));
        assert_eq!(few.done(), (vec![due(1), due(3)], 0));
    }

    #[test]
    fn a_jobs_slots_are_occurrences_of_one_problem() {
        let missed = FindingCode::HeartbeatMissed;
        assert_eq!(
            problem_of(missed, "db@backup@2026-11-22T03:00:00Z"),
            ("db@backup", Some("2026-11-22T03:00:00Z"))
        );
        assert_eq!(problem_of(missed, "db-backup"), ("db-backup", None));
        let overdue = FindingCode::PolicyReviewOverdue;
        assert_eq!(problem_of(overdue, "ops@example"), ("ops@example", None));
    }

    #[test]
    fn codes_round_trip_through_serde_and_from_str() {
        for code in FindingCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(code.as_str().parse::<FindingCode>().unwrap(), *code);
        }
        assert!("no-such-code".parse::<FindingCode>().is_err());
    }
}
