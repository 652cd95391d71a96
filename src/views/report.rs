//! Reports: gathers what a report is made of from the database and the store (the I/O half;
//! the `annexa-reports` crate builds the model from it and renders it), then writes the
//! bundle: the files, a `manifest.json` with the SHA-256 of each, `SHA256SUMS`, and
//! `manifest.json.sig`, a signed note over the hashes of those two. The bundle is evidence
//! too: each file is stored content-addressed (streamed, like any object), the manifest, the
//! sums and the signature under `reports/<id>/`, and an audit event records the manifest's
//! hash in the ledger.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use annexa_reports::Format;
use annexa_reports::model::{CollectorInput, ItemInput, LedgerHead, ReportInput};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use super::custody;
use crate::app::Annexa;
use crate::db::{ObjectRow, RunRow};
use crate::evidence::{facts, registry};
use crate::ledger;
use crate::ledger::bundle;
use crate::ledger::note::NoteKey;

/// The last full calendar month (UTC) before `now`: `[first of last month, first of this month)`.
pub fn last_full_month(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = |y: i32, m: u32| {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(y, m, 1)
                .expect("the first of a month exists")
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists"),
        )
    };
    let this = first(now.year(), now.month());
    let last = if now.month() == 1 {
        first(now.year() - 1, 12)
    } else {
        first(now.year(), now.month() - 1)
    };
    (last, this)
}

fn item(e: ObjectRow) -> ItemInput {
    ItemInput {
        name: e.name,
        role: e.role,
        media_type: e.media_type,
        size: Some(e.size as u64),
        sha256: e.sha256,
        object_key: e.object_key,
    }
}

/// `[from, to)` in four slices, in order: a month holds many rows, and the database driver
/// decodes rows on one thread per connection, so slices read on parallel connections.
fn slices(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    const SLICES: i32 = 4;
    let step = (to - from) / SLICES;
    (0..SLICES)
        .map(|i| {
            let end = if i == SLICES - 1 {
                to
            } else {
                from + step * (i + 1)
            };
            (from + step * i, end)
        })
        .collect()
}

/// The evidence objects collected in `[from, to)`.
async fn objects_between(
    app: &Annexa,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<crate::db::ObjectRow>> {
    let parts = futures::future::try_join_all(
        slices(from, to)
            .into_iter()
            .map(|(a, b)| app.db.objects_between(a, b)),
    )
    .await?;
    Ok(parts.into_iter().flatten().collect())
}

/// The runs that finished in `[from, to)`, oldest first.
pub(super) async fn runs_between(
    app: &Annexa,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<RunRow>> {
    let parts = futures::future::try_join_all(
        slices(from, to)
            .into_iter()
            .map(|(a, b)| app.db.runs_between(a, b)),
    )
    .await?;
    Ok(parts.into_iter().flatten().collect())
}

/// The checkpoint a report is anchored to: the newest one published by `as_of`; when there is
/// none yet, the tree head at `as_of`, signed for this report.
async fn ledger_head(
    app: &Annexa,
    as_of: DateTime<Utc>,
    key: &NoteKey,
) -> anyhow::Result<LedgerHead> {
    if let Some(c) = app.db.latest_checkpoint(as_of).await? {
        let key_name = crate::ledger::note::SignedNote::parse(&c.note)
            .ok()
            .and_then(|n| {
                n.signatures
                    .into_iter()
                    .find(|(_, id, _)| hex::encode(id) == c.key_id)
                    .map(|(name, _, _)| name)
            })
            .unwrap_or_default();
        return Ok(LedgerHead {
            origin: c.origin,
            tree_size: c.tree_size as u64,
            root_hash: c.root_hash,
            key_name,
            key_id: c.key_id,
            checkpoint: c.note,
            published: Some(c.object_key),
        });
    }
    let leaves = ledger::decode_leaves(&app.db.leaves_until(as_of).await?)
        .map_err(|e| anyhow::anyhow!("{e}; run `annexa verify`"))?;
    let root = ledger::root(&leaves);
    let body = ledger::checkpoint_text(&app.config.ledger.origin, leaves.len() as u64, &root);
    Ok(LedgerHead {
        origin: app.config.ledger.origin.clone(),
        tree_size: leaves.len() as u64,
        root_hash: ledger::b64(&root),
        key_name: key.name.clone(),
        key_id: hex::encode(key.key_id()),
        checkpoint: key.sign_note(&body),
        published: None,
    })
}

/// Everything the report over `[from, to)` needs, as the records stood at `as_of` (the end of
/// the period, or earlier when the period is not over). The ledger head at `as_of` is signed
/// with `key` as the checkpoint the report is anchored to.
pub async fn gather(
    app: &Annexa,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    as_of: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    key: &NoteKey,
) -> anyhow::Result<ReportInput> {
    Ok(
        gather_with_members(app, (from, to), as_of, generated_at, key, false)
            .await?
            .0,
    )
}

/// [`gather`], and, when `with_members`, the populations the folds list, by collector: what
/// `annexa sample` draws from, so that a sample is of exactly what the report of the period
/// shows. A report does not build them.
pub async fn gather_with_members(
    app: &Annexa,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    as_of: DateTime<Utc>,
    generated_at: DateTime<Utc>,
    key: &NoteKey,
    with_members: bool,
) -> anyhow::Result<(ReportInput, HashMap<String, Vec<annexa_collectors::Member>>)> {
    let end = to.min(as_of);
    // The big reads run side by side, each on its own connection. Evidence rows are written
    // before their run finishes; a day's margin catches the rows of runs that finished just
    // after `from`.
    let (mut status, objects, period_runs, ledger) = tokio::try_join!(
        async { Ok::<_, anyhow::Error>(crate::views::status::status(app, end).await?) },
        objects_between(app, from - Duration::days(1), end),
        runs_between(app, from, end),
        ledger_head(app, end, key),
    )?;
    crate::views::period::judge_period(app, &mut status, from, end).await?;
    let mut items: HashMap<String, Vec<ItemInput>> = HashMap::new();
    for e in objects {
        items.entry(e.run_id.clone()).or_default().push(item(e));
    }
    for run_items in items.values_mut() {
        run_items.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let before = from - Duration::microseconds(1);
    let mut runs_of: HashMap<&str, Vec<&RunRow>> = HashMap::new();
    for run in &period_runs {
        runs_of.entry(run.collector.as_str()).or_default().push(run);
    }
    let specs = app.config.job_specs();
    // Per collector, side by side: its last runs before the period and its newest facts.
    let history = futures::future::try_join_all(app.config.collectors.iter().map(|config| async {
        let (prior_success, prior_failure) = app.db.latest_runs(&config.name, before).await?;
        let facts = facts::newest(app, &config.name, end)
            .await?
            .and_then(Result::ok);
        Ok::<_, anyhow::Error>((prior_success, prior_failure.is_some(), facts))
    }))
    .await?;
    let mut collectors = Vec::new();
    let mut folds = Vec::new();
    for (config, (prior_success, prior_failure, facts)) in app.config.collectors.iter().zip(history)
    {
        let collector = registry::build(config, &app.config);
        let controls = registry::controls_of(
            config,
            collector.as_ref(),
            &app.config.catalog,
            facts.as_ref().and_then(|f| collector.controls_in(f)),
        );
        let max_age = config.max_age.map_or_else(
            || super::shortest_max_age(app, &controls),
            super::to_duration,
        );
        let mut runs = Vec::new();
        let ran_before = prior_failure || prior_success.is_some();
        if let Some(prior) = prior_success {
            runs.push(super::run_input(&prior, Vec::new()));
        }
        let in_period = runs_of.remove(config.name.as_str()).unwrap_or_default();
        // Slots count from the collector's first run: none were due before it was set up.
        let since = if ran_before {
            from
        } else {
            in_period
                .iter()
                .map(|r| r.slot_time().unwrap_or(r.started_at))
                .min()
                // Never run by the end: not yet collected, so nothing was due.
                .unwrap_or(end)
                .max(from)
        };
        for run in in_period {
            let run_items = items.remove(&run.id).unwrap_or_default();
            runs.push(super::run_input(run, run_items));
        }
        let slots = specs
            .iter()
            .find(|s| s.name == config.name)
            .map(|s| s.slots(since, end))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| *s < end)
            .collect();
        collectors.push(CollectorInput {
            name: config.name.clone(),
            kind: collector.kind().to_string(),
            controls,
            max_age,
            schedule: config.schedule.text.clone(),
            slots,
            runs,
            figures: Vec::new(),
        });
        folds.push(collector);
    }
    // Per collector, side by side: its figures, folded over its snapshots.
    let mut pending = Vec::new();
    for (input, collector) in collectors.iter().zip(folds) {
        pending.push(period_figures(
            app,
            input,
            collector,
            (from, to),
            with_members,
        ));
    }
    let figures = futures::future::try_join_all(pending).await?;
    let mut members = HashMap::new();
    for (input, (figures, listed)) in collectors.iter_mut().zip(figures) {
        input.figures = figures;
        members.insert(input.name.clone(), listed);
    }

    collectors.extend(custody::report_input(app, before, &period_runs).await?);
    // The samples drawn for the period and their results: with the custody log's figures,
    // else with those of a source of a sampled control.
    if let Some((samples, controls)) = super::sample::report_table(app, (from, to), as_of).await? {
        let by_kind = |kind: &str| collectors.iter().position(|c| c.kind == kind);
        let of_control = collectors
            .iter()
            .position(|c| c.controls.iter().any(|id| controls.contains(id)));
        if let Some(i) = by_kind(crate::controls::CUSTODY).or(of_control) {
            collectors[i].figures.push(samples);
        }
    }
    collectors.extend(super::attested::report_inputs(app, from, end).await?);

    // Each finding with when its collector first recorded it.
    for finding in status
        .controls
        .iter_mut()
        .flat_map(|c| c.findings.iter_mut())
    {
        if finding.run_id.is_some() {
            finding.first_seen = app
                .db
                .first_recorded(
                    &finding.collector,
                    finding.code.as_str(),
                    &finding.subject,
                    end,
                )
                .await?;
        }
    }
    let soa = crate::views::soa::entries(&app.config, &status);
    let soa_file = app.config.soa.as_ref().map(|s| {
        let file = s.file.strip_prefix(&app.config.base_dir).unwrap_or(&s.file);
        file.display().to_string()
    });
    let input = ReportInput {
        organization: app.config.organization.clone(),
        from,
        to,
        generated_at,
        generated_by: account(),
        as_of: end,
        annexa_version: env!("CARGO_PKG_VERSION").to_string(),
        ledger,
        status,
        collectors,
        soa,
        soa_file,
        csv_bom: app.config.csv_bom,
    };
    Ok((input, members))
}

/// A collector's figures over `[from, to)`, and when `with_members` the members it lists: its
/// fold ([`annexa_collectors::FigureFold`]) over the facts of its newest snapshot before the
/// period (the state at its start), then of every one in it, oldest first; or newest first, the
/// one before the period last, until the fold has enough. Facts that cannot be trusted are
/// listed in a table of their own, never passed over.
async fn period_figures(
    app: &Annexa,
    input: &CollectorInput,
    collector: Box<dyn annexa_collectors::Collector>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    with_members: bool,
) -> anyhow::Result<(
    Vec<annexa_collectors::FigureTable>,
    Vec<annexa_collectors::Member>,
)> {
    let mut fold = collector.figures(from, to);
    let mut unread = annexa_collectors::FigureTable::new(
        "Snapshots whose facts could not be read (not in the figures above)",
        &["Run", "Collected", "Why"],
    );
    let runs: Vec<&annexa_reports::model::RunInput> =
        input.runs.iter().filter(|r| r.succeeded).collect();
    // `runs` starts with the snapshot before the period when there is one.
    let (prior, runs) = match runs.split_first() {
        Some((run, rest)) if run.finished_at < from => (Some(*run), rest),
        _ => (None, &runs[..]),
    };
    let mut snapshots: Vec<_> = runs
        .iter()
        .filter_map(|run| Some((*run, run.items.iter().find(|i| i.role == "facts")?)))
        .collect();
    let newest_first = fold.newest_first();
    if newest_first {
        snapshots.reverse();
    }
    // The snapshot before the period: the state at its start, read (by when it was collected)
    // first, or last and only if still needed.
    let prior_facts = || facts::newest(app, &input.name, from - Duration::microseconds(1));
    let mut last: Option<(String, facts::Loaded)> = None;
    if !newest_first
        && let Some(run) = prior
        && let Some(loaded) = prior_facts().await?
    {
        fold_one(&mut *fold, &mut unread, run, &loaded);
    }
    for (run, item) in snapshots {
        if fold.enough() {
            break;
        }
        // Unchanged facts are read once.
        if last.as_ref().is_none_or(|(sha, _)| *sha != item.sha256) {
            let stored = facts::Stored {
                collector: &input.name,
                run_id: &run.run_id,
                sha256: &item.sha256,
                object_key: &item.object_key,
            };
            last = Some((item.sha256.clone(), facts::load(app, stored).await));
        }
        fold_one(
            &mut *fold,
            &mut unread,
            run,
            &last.as_ref().expect("just set").1,
        );
    }
    if newest_first
        && !fold.enough()
        && let Some(run) = prior
        && let Some(loaded) = prior_facts().await?
    {
        fold_one(&mut *fold, &mut unread, run, &loaded);
    }
    let members = if with_members {
        fold.members()
    } else {
        Vec::new()
    };
    let mut tables = fold.tables();
    if !unread.rows.is_empty() {
        tables.push(unread);
    }
    Ok((tables, members))
}

/// One snapshot into a fold, or into the table of those that could not be read.
fn fold_one(
    fold: &mut dyn annexa_collectors::FigureFold,
    unread: &mut annexa_collectors::FigureTable,
    run: &annexa_reports::model::RunInput,
    loaded: &facts::Loaded,
) {
    let at = annexa_collectors::SnapshotRef {
        run_id: run.run_id.clone(),
        collected_at: run.finished_at,
    };
    match loaded {
        Ok(facts) => fold.add(&at, facts),
        Err(finding) => unread.rows.push(vec![
            at.run_id,
            annexa_reports::time(at.collected_at),
            finding.message.clone(),
        ]),
    }
}

/// The account annexa runs as (cron's, the worker service's, a person's), as a report names
/// who generated it: `USER`, else the password database's name of the process's user.
fn account() -> String {
    if let Ok(user) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME"))
        && !user.is_empty()
    {
        return user;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let name = passwd.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            });
            return name.unwrap_or_else(|| format!("uid {uid}"));
        }
    }
    "an unnamed account".into()
}

/// Hashes what is written to it, and keeps nothing.
struct HashingSink(Sha256);

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `dir/name` through a temporary file, so a reader never sees half a file. Not fsynced:
/// the durable copy is the one the store keeps (and fsyncs); this one is for reading now.
fn write_file(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    write(&mut out)?;
    out.flush()?;
    drop(out);
    // Reports are for reading: not the temporary file's 0600.
    #[cfg(unix)]
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )?;
    tmp.persist(&path)?;
    Ok(path)
}

/// A written and stored bundle.
#[derive(Debug)]
pub struct Bundle {
    pub id: String,
    pub dir: PathBuf,
    /// Every file written, the manifest, SHA256SUMS and the signature last.
    pub paths: Vec<PathBuf>,
    pub model: annexa_reports::Report,
}

/// Renders the report over `period` (default: the last full month before `as_of`) as the
/// records stood at `as_of` (default: now), writes the bundle into `out/<id>/`, stores it
/// and records a `report-generated` audit event.
pub async fn write_bundle(
    app: &Annexa,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    formats: &[Format],
    out: Option<&Path>,
    as_of: Option<DateTime<Utc>>,
) -> anyhow::Result<Bundle> {
    let now = as_of.unwrap_or_else(|| app.clock.now());
    let (from, to) = period.unwrap_or_else(|| last_full_month(now));
    if from >= to {
        anyhow::bail!(
            "the period is empty: --from {} is not before --to {}",
            annexa_reports::time(from),
            annexa_reports::time(to)
        );
    }
    let key = crate::ledger::keyring::signing_key(app).await?;
    let input = gather(app, from, to, now, now, &key).await?;
    let mut model = annexa_reports::build(&input);
    drop(input);

    // The id names the period and the content, so the same inputs give the same bundle.
    let mut json_hash = HashingSink(Sha256::new());
    annexa_reports::render_json(&model, &mut json_hash)?;
    let id = format!(
        "{}--{}-{}",
        from.format("%Y-%m-%d"),
        (to - chrono::Duration::seconds(1)).format("%Y-%m-%d"),
        &hex::encode(json_hash.0.finalize())[..12]
    );

    model.id = id.clone();

    let root = out.map_or_else(|| app.config.report_dir.clone(), Path::to_path_buf);
    let dir = root.join(&id);
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create the report folder {}; pass --out DIR to write elsewhere",
            dir.display()
        )
    })?;

    let mut formats = formats.to_vec();
    formats.sort();
    formats.dedup();
    // Each file is rendered on its own thread; they are stored in order as they finish.
    let model = std::sync::Arc::new(model);
    let mut renders = Vec::new();
    for format in formats {
        for &(name, render) in format.files() {
            let (model, dir) = (model.clone(), dir.clone());
            renders.push((
                name,
                tokio::task::spawn_blocking(move || {
                    write_file(&dir, name, |out| render(&model, out))
                }),
            ));
        }
    }
    let mut files = Vec::new();
    let mut paths = Vec::new();
    for (name, render) in renders {
        let path = render
            .await
            .context("a report renderer stopped")?
            .with_context(|| format!("cannot write {} into {}", name, dir.display()))?;
        // Streamed into the store, content-addressed like any evidence.
        let stored = app
            .store
            .put_object(annexa_collectors::Body::File(path.clone()))
            .await?;
        files.push(bundle::BundleFile {
            name: name.to_string(),
            sha256: stored.sha256,
            size: stored.size,
            object_key: stored.key,
        });
        paths.push(path);
    }

    let sealed = bundle::seal(&key, &id, &model, (from, to), &files);
    for (name, bytes) in [
        (bundle::MANIFEST, &sealed.manifest[..]),
        (bundle::SUMS, &sealed.sums[..]),
        (bundle::SIGNATURE, sealed.signature.as_bytes()),
    ] {
        paths.push(write_file(&dir, name, |out| out.write_all(bytes))?);
        app.store
            .put_named(&format!("reports/{id}/{name}"), bytes)
            .await?;
    }
    crate::ledger::audit::record(
        &app.db,
        crate::ledger::audit::Actor::Annexa,
        crate::ledger::audit::AuditAction::ReportGenerated,
        &id,
        serde_json::json!({
            "manifest_sha256": sealed.manifest_sha256,
            "key_id": model.ledger.key_id,
            "period": {"from": annexa_reports::time(from), "to": annexa_reports::time(to)},
        }),
        app.clock.now(),
    )
    .await?;

    Ok(Bundle {
        id,
        dir,
        paths,
        model: std::sync::Arc::into_inner(model).expect("every renderer has finished"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_full_month_ends_where_this_one_starts() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            last_full_month(at("2026-11-22T10:00:00Z")),
            (at("2026-10-01T00:00:00Z"), at("2026-11-01T00:00:00Z"))
        );
        assert_eq!(
            last_full_month(at("2027-01-01T00:00:00Z")),
            (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
    }
}
