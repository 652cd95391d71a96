//! Attested evidence: what no collector can gather (training records, exercise minutes, a
//! pentest report), attached by a person to controls (`annexa attach`) and reviewed by another
//! (`annexa review`).
//!
//! The files are stored write-once by SHA-256 like any evidence, as a run of the built-in
//! `attested` source whose facts ([`Attestation`]) say what they are, for which controls, who
//! attests them and for how long; its manifest is a ledger leaf. A review is an audit event.
//! Until approved, attested evidence does not count; rejected evidence never does; approved
//! evidence counts from its approval (or its effective date, if later) until it expires, and
//! a newer approval supersedes an older one.

use std::path::PathBuf;
use std::time::Duration;

use annexa_collectors::{Body, EvidenceItem, Source};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{facts, runner};
use crate::app::Annexa;
use crate::base::closed_set;
use crate::config::Config;
use crate::controls::{ATTESTED, ATTESTED_MAX_AGE};
use crate::db::{AuditEventRow, DbError, Role, RunRow, RunStatus, parse_ts};
use crate::ledger::audit::{self, Actor, AuditAction};

/// The format of an attestation's facts.
pub const FORMAT: &str = "annexa-attestation/1";

/// The facts of one attachment: what it is and who stands behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub format: String,
    pub title: String,
    pub controls: Vec<String>,
    /// Who attests it.
    pub owner: String,
    /// From when it holds.
    pub effective: DateTime<Utc>,
    /// When it stops counting.
    pub expires: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub files: Vec<AttachedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// `annexa attach` as asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub files: Vec<PathBuf>,
    pub controls: Vec<String>,
    pub title: Option<String>,
    pub owner: Option<String>,
    pub effective: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub max_age: Option<Duration>,
    pub note: Option<String>,
}

/// An attachment checked and ready to store.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The facts, less the files' hashes (known once stored).
    attestation: Attestation,
    /// Each file's name in the evidence, its path, and its size when checked.
    files: Vec<(String, PathBuf, u64)>,
}

impl Request {
    /// The attachment it asks for, or every problem with it (nothing is stored then).
    pub fn check(&self, config: &Config, now: DateTime<Utc>) -> Result<Checked, Vec<String>> {
        let mut problems = Vec::new();
        let mut controls: Vec<String> = Vec::new();
        for id in &self.controls {
            match config.catalog.get(id) {
                _ if controls.contains(id) => {}
                Some(c) if c.collectors.iter().any(|k| k == ATTESTED) => controls.push(id.clone()),
                Some(c) => problems.push(format!(
                    "--control {id}: annexa judges it on what its collectors gather ({}); to judge attested evidence too, add \"attested\" to `collectors` (and `requires`) under [controls.\"{id}\"]",
                    c.collectors.join(", ")
                )),
                None => problems.push(match config.soa.as_ref().and_then(|s| s.row(id)) {
                    Some(row) if row.applicable == Some(false) => format!(
                        "--control {id}: the Statement of Applicability excludes it ({}); evidence is attached to controls that apply",
                        row.justification.as_deref().unwrap_or("no justification")
                    ),
                    _ if crate::controls::annex_title(id).is_some() => format!(
                        "--control {id}: not judged by annexa; name a Statement of Applicability (`[soa] file`) that applies it, or add [controls.\"{id}\"] to the config"
                    ),
                    _ => format!(
                        "--control {id}: not an ISO/IEC 27001:2022 Annex A control (A.5.1 to A.8.34) nor one of the config's"
                    ),
                }),
            }
        }
        if self.controls.is_empty() {
            problems.push("name the control(s) it evidences: --control A.x.y[,A.x.y…]".into());
        }

        let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
        for path in &self.files {
            let shown = path.display();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| shown.to_string());
            match std::fs::metadata(path) {
                Err(e) => problems.push(format!("{shown}: {e}")),
                Ok(meta) if !meta.is_file() => {
                    problems.push(format!("{shown}: not a regular file; attach files"))
                }
                Ok(meta) if meta.len() == 0 => {
                    problems.push(format!("{shown}: the file is empty; attach the evidence itself"))
                }
                Ok(meta) if meta.len() > config.attest.max_file_size => problems.push(format!(
                    "{shown}: {} bytes, more than the {} MiB `[attest] max_file_size_mib` allows; raise it if the file is right",
                    meta.len(),
                    config.attest.max_file_size >> 20
                )),
                Ok(_) if files.iter().any(|(n, ..)| *n == name) => problems.push(format!(
                    "{shown}: a second file named `{name}`; rename one, each file's name identifies it in the evidence"
                )),
                Ok(meta) => files.push((name, path.clone(), meta.len())),
            }
        }
        if self.files.is_empty() {
            problems.push("name the file(s) to attach".into());
        }

        let owner = match self.owner.as_deref().map(str::trim) {
            Some("") => {
                problems.push("--owner: empty; name the person who attests it".into());
                String::new()
            }
            Some(owner) => owner.to_string(),
            None => {
                // The SoA's owner, when it names one owner for all of them.
                let mut owners: Vec<&str> = controls
                    .iter()
                    .filter_map(|id| config.soa.as_ref()?.row(id)?.owner.as_deref())
                    .collect();
                owners.sort();
                owners.dedup();
                match owners.as_slice() {
                    [one] => one.to_string(),
                    _ => {
                        problems.push(
                            "name who attests it: --owner NAME (the Statement of Applicability names no single owner of these controls)".into(),
                        );
                        String::new()
                    }
                }
            }
        };

        let effective = self.effective.unwrap_or(now);
        let max_age = self.max_age.unwrap_or_else(|| {
            controls
                .iter()
                .filter_map(|id| config.catalog.get(id))
                .map(|c| c.max_age)
                .min()
                .unwrap_or(ATTESTED_MAX_AGE)
        });
        let expires = self.expires.unwrap_or_else(|| {
            effective + chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX)
        });
        if expires <= effective {
            problems.push(format!(
                "--expires {}: not after the effective date {}",
                annexa_reports::time(expires),
                annexa_reports::time(effective)
            ));
        } else if expires <= now {
            problems.push(format!(
                "--expires {}: already past; attach current evidence",
                annexa_reports::time(expires)
            ));
        }
        let title = match self.title.as_deref().map(str::trim) {
            Some("") | None => files.first().map(|(n, ..)| n.clone()).unwrap_or_default(),
            Some(t) => t.to_string(),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Checked {
            attestation: Attestation {
                format: FORMAT.to_string(),
                title,
                controls,
                owner,
                effective,
                expires,
                note: self.note.clone().filter(|n| !n.trim().is_empty()),
                files: Vec::new(),
            },
            files,
        })
    }
}

/// Why an attachment was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{0}; nothing was recorded, attach it again")]
    Changed(String),
    #[error(transparent)]
    Run(#[from] runner::RunError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Stores the files and their attestation as one run of the `attested` source; returns it
/// (its id is the evidence id a review names).
pub async fn attach(app: &Annexa, checked: Checked) -> Result<(RunRow, Attestation), AttachError> {
    let now = app.clock.now();
    let mut run = RunRow::running(ATTESTED, ATTESTED, env!("CARGO_PKG_VERSION"), None, now);
    app.db.start_run(&run).await?;
    let items: Vec<EvidenceItem> = checked
        .files
        .iter()
        .map(|(name, path, _)| EvidenceItem {
            name: name.clone(),
            media_type: media_type(name).to_string(),
            body: Body::File(path.clone()),
            observed_at: now,
            effective_at: Some(checked.attestation.effective),
            source: Source {
                query: name.clone(),
                ..Source::default()
            },
        })
        .collect();
    let mut attestation = checked.attestation;
    let stored = match store(app, &run, items, &checked.files, &mut attestation).await {
        Ok(stored) => stored,
        Err(e) => {
            let message = e.to_string();
            app.db
                .abandon_run(
                    &run.id,
                    annexa_collectors::FindingCode::CollectorFailed.as_str(),
                    &message,
                    app.clock.now(),
                )
                .await?;
            return Err(e);
        }
    };
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(app.clock.now());
    let mut spool =
        crate::evidence::collection::Spool::of(&run, now, &stored).map_err(|cause| {
            runner::RunError::Store {
                run_id: run.id.clone(),
                collector: ATTESTED.to_string(),
                cause: crate::store::StoreError::Io {
                    location: "the run's temporary rows".into(),
                    cause,
                },
            }
        })?;
    runner::record(app, &mut run, &mut spool, &[]).await?;
    Ok((run, attestation))
}

/// Stores the files, then the attestation naming their hashes.
async fn store(
    app: &Annexa,
    run: &RunRow,
    items: Vec<EvidenceItem>,
    files: &[(String, PathBuf, u64)],
    attestation: &mut Attestation,
) -> Result<Vec<(crate::db::EvidenceRow, Source)>, AttachError> {
    let store_failed = |cause| runner::RunError::Store {
        run_id: run.id.clone(),
        collector: ATTESTED.to_string(),
        cause,
    };
    let mut stored = runner::store_items(app, run, items, None)
        .await
        .map_err(store_failed)?;
    for ((row, _), (name, path, size)) in stored.iter().zip(files) {
        if row.size as u64 != *size {
            return Err(AttachError::Changed(format!(
                "{} changed while it was read ({size} bytes, then {})",
                path.display(),
                row.size
            )));
        }
        attestation.files.push(AttachedFile {
            name: name.clone(),
            size: *size,
            sha256: row.sha256.clone(),
        });
    }
    let facts = serde_json::to_value(&*attestation).expect("an attestation serializes");
    stored.extend(
        runner::store_items(app, run, Vec::new(), Some(&facts))
            .await
            .map_err(store_failed)?,
    );
    Ok(stored)
}

/// What an attached file is, by its extension.
fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("md" | "markdown") => "text/markdown",
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

closed_set! {
    /// A reviewer's decision on attested evidence.
    pub enum Decision {
        Approved = "approved",
        Rejected = "rejected",
    }
}

/// A recorded review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The audit event that records it.
    pub event: String,
    pub decision: Decision,
    pub by: String,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
    /// The attester reviewed it (`[attest] allow_self_review`).
    pub self_review: bool,
}

#[derive(Serialize, Deserialize)]
struct ReviewDetails {
    decision: String,
    by: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    self_review: bool,
}

/// One attachment as known at a time, with its review by then.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The evidence id: its run's.
    pub id: String,
    pub attached_at: DateTime<Utc>,
    pub attestation: Attestation,
    /// Its files as stored.
    pub files: Vec<crate::db::EvidenceRow>,
    pub review: Option<Review>,
}

impl Attested {
    /// From when it counts (approved; its effective date, if that is later).
    pub fn counts_from(&self) -> Option<DateTime<Utc>> {
        let review = self.review.as_ref()?;
        (review.decision == Decision::Approved).then(|| review.at.max(self.attestation.effective))
    }

    /// Its state at `at`, in a word.
    pub fn state(&self, at: DateTime<Utc>) -> &'static str {
        match (&self.review, self.counts_from()) {
            (None, _) => "pending",
            (Some(_), None) => "rejected",
            (Some(_), Some(_)) if self.attestation.expires <= at => "expired",
            (Some(_), Some(from)) if at < from => "approved, not yet effective",
            _ => "approved",
        }
    }
}

/// Why a review was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no attested evidence has the id `{0}`; `annexa attach --list` shows them")]
    Unknown(String),
    #[error("`{id}` was already {} by {} on {}; attach a new version to replace it", .review.decision, .review.by, annexa_reports::time(.review.at))]
    Reviewed { id: String, review: Box<Review> },
    #[error(
        "{by} attested `{id}` and cannot review it too: evidence is reviewed by someone else (set `[attest] allow_self_review = true` to allow it; reports then say so)"
    )]
    SelfReview { id: String, by: String },
    #[error("--by: empty; name the reviewer")]
    NoReviewer,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Records a review of attested evidence `id` (an audit event).
pub async fn review(
    app: &Annexa,
    id: &str,
    decision: Decision,
    by: &str,
    comment: Option<&str>,
) -> Result<(AuditEventRow, Attested), ReviewError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(ReviewError::NoReviewer);
    }
    let now = app.clock.now();
    let mut item = all(app, now)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ReviewError::Unknown(id.to_string()))?;
    if let Some(review) = item.review {
        return Err(ReviewError::Reviewed {
            id: id.to_string(),
            review: Box::new(review),
        });
    }
    let self_review = item.attestation.owner.eq_ignore_ascii_case(by);
    if self_review && !app.config.attest.allow_self_review {
        return Err(ReviewError::SelfReview {
            id: id.to_string(),
            by: by.to_string(),
        });
    }
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    let details = ReviewDetails {
        decision: decision.as_str().to_string(),
        by: by.to_string(),
        comment: comment.map(String::from),
        self_review,
    };
    let event = audit::record(
        &app.db,
        Actor::Operator,
        AuditAction::EvidenceReviewed,
        id,
        serde_json::to_value(details).expect("details serialize"),
        now,
    )
    .await?;
    item.review = Some(Review {
        event: event.id.clone(),
        decision,
        by: by.to_string(),
        comment: comment.map(String::from),
        at: now,
        self_review,
    });
    Ok((event, item))
}

/// Every attachment recorded by `until`, oldest first, each with its review by then. One whose
/// facts cannot be read back (`annexa verify` says why) is left out: it counts for nothing.
pub async fn all(app: &Annexa, until: DateTime<Utc>) -> Result<Vec<Attested>, DbError> {
    let (runs, events) = futures::try_join!(
        app.db.successes_of(ATTESTED, until),
        audit::with_action(&app.db, AuditAction::EvidenceReviewed),
    )?;
    let cutoff = crate::db::ts(until);
    let mut reviews: std::collections::HashMap<&str, Review> = std::collections::HashMap::new();
    for e in events.iter().filter(|e| e.at <= cutoff) {
        let Ok(d) = serde_json::from_str::<ReviewDetails>(&e.details) else {
            continue;
        };
        let Ok(decision) = d.decision.parse() else {
            continue;
        };
        // The first review decides; a second is never recorded.
        reviews.entry(e.subject.as_str()).or_insert(Review {
            event: e.id.clone(),
            decision,
            by: d.by,
            comment: d.comment,
            at: parse_ts("audit_events.at", &e.at)?,
            self_review: d.self_review,
        });
    }
    let mut out = Vec::new();
    for run in runs {
        let rows = app.db.evidence_of_run(&run.id).await?;
        let loaded = facts::of_rows(app, &rows).await;
        let Some(Ok(value)) = loaded else {
            tracing::warn!(run = %run.id, "attested evidence without readable facts is left out");
            continue;
        };
        let Ok(attestation) = serde_json::from_value::<Attestation>(value) else {
            tracing::warn!(run = %run.id, "attested evidence with unreadable facts is left out");
            continue;
        };
        let files = rows.into_iter().filter(|r| r.role == Role::Item).collect();
        out.push(Attested {
            review: reviews.remove(run.id.as_str()),
            attached_at: run.finished_at.unwrap_or(run.started_at),
            id: run.id,
            attestation,
            files,
        });
    }
    Ok(out)
}
