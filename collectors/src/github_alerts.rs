//! `github-alerts`: Dependabot, code-scanning and secret-scanning alerts of organizations and
//! repositories, every state, every page, for A.8.8, A.8.16 and A.5.25.
//!
//! Evidence is each page exactly as GitHub sent it, plus normalized facts per alert and the
//! population (query, pages, total), so an auditor can judge completeness. A refused endpoint
//! (403/404) is recorded as such and becomes `collector-unauthorized` naming the permission, never
//! an empty list. Rate limits are honoured as GitHub documents them: `retry-after`; when
//! `x-ratelimit-remaining` is 0, wait until `x-ratelimit-reset`; a secondary limit without headers
//! waits at least 60 s and backs off. Requests are serial. Waiting longer than the run's budget
//! fails the run with that reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Body, CollectContext, CollectError, Collector, EvidenceItem, FigureTable, Finding, FindingCode,
    Level, Snapshot, Source,
};

/// Waits. Tests inject one that only records.
#[async_trait::async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, duration: Duration);
}

/// The real one.
pub struct TokioSleeper;

#[async_trait::async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The three alert kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    Dependabot,
    CodeScanning,
    SecretScanning,
}

impl AlertKind {
    pub const ALL: [AlertKind; 3] = [
        AlertKind::Dependabot,
        AlertKind::CodeScanning,
        AlertKind::SecretScanning,
    ];

    fn path(self) -> &'static str {
        match self {
            AlertKind::Dependabot => "dependabot/alerts",
            AlertKind::CodeScanning => "code-scanning/alerts",
            AlertKind::SecretScanning => "secret-scanning/alerts",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AlertKind::Dependabot => "dependabot",
            AlertKind::CodeScanning => "code-scanning",
            AlertKind::SecretScanning => "secret-scanning",
        }
    }

    /// The permission a token needs, as GitHub names it.
    fn permission(self) -> &'static str {
        match self {
            AlertKind::Dependabot => {
                "\"Dependabot alerts: read\" (classic token: `security_events` or `repo`)"
            }
            AlertKind::CodeScanning => {
                "\"Code scanning alerts: read\" (classic token: `security_events`)"
            }
            AlertKind::SecretScanning => {
                "\"Secret scanning alerts: read\" (classic token: `security_events` or `repo`)"
            }
        }
    }
}

/// Days an open alert of each severity may stay open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[serde(default = "d1")]
    pub critical_days: i64,
    #[serde(default = "d7")]
    pub high_days: i64,
    #[serde(default = "d30")]
    pub medium_days: i64,
    #[serde(default = "d90")]
    pub low_days: i64,
}

fn d1() -> i64 {
    1
}
fn d7() -> i64 {
    7
}
fn d30() -> i64 {
    30
}
fn d90() -> i64 {
    90
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            critical_days: 1,
            high_days: 7,
            medium_days: 30,
            low_days: 90,
        }
    }
}

impl Targets {
    fn days(&self, severity: &str) -> i64 {
        match severity {
            "critical" => self.critical_days,
            "high" => self.high_days,
            "medium" => self.medium_days,
            _ => self.low_days,
        }
    }
}

/// Configuration of one `github-alerts` collector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubAlertsConfig {
    /// Organizations, read through the org-level alert endpoints.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Repositories, `owner/name`.
    #[serde(default)]
    pub repos: Vec<String>,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The environment variable holding the token.
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// The most a run may spend waiting on rate limits, e.g. "10m".
    #[serde(default = "default_budget")]
    pub wait_budget: String,
    #[serde(default)]
    pub targets: Targets,
}

fn default_base_url() -> String {
    "https://api.github.com".into()
}
fn default_token_env() -> String {
    "GITHUB_TOKEN".into()
}
fn default_budget() -> String {
    "10m".into()
}

impl GithubAlertsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.orgs.is_empty() && self.repos.is_empty() {
            p.push("name at least one of `orgs` and `repos`".into());
        }
        for r in &self.repos {
            if r.split('/').count() != 2 || r.split('/').any(str::is_empty) {
                p.push(format!("repos: `{r}` must be owner/name"));
            }
        }
        if let Err(e) = humantime::parse_duration(&self.wait_budget) {
            p.push(format!("wait_budget `{}`: {e}", self.wait_budget));
        }
        p
    }
}

/// One alert, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub repository: String,
    pub kind: AlertKind,
    pub number: i64,
    /// critical, high, medium, low (secret-scanning alerts: "secret").
    pub severity: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub fixed_at: Option<DateTime<Utc>>,
    pub dismissed_at: Option<DateTime<Utc>>,
    pub dismissed_reason: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub html_url: Option<String>,
}

impl Alert {
    fn subject(&self) -> String {
        format!(
            "{} {} #{}",
            self.repository,
            self.kind.as_str(),
            self.number
        )
    }

    fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.fixed_at.or(self.resolved_at)
    }
}

/// One queried endpoint and what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Population {
    /// `org acme` or `repo acme/api`.
    pub target: String,
    pub kind: AlertKind,
    pub query: String,
    pub pages: usize,
    pub total: usize,
    /// Set when GitHub refused the endpoint: the status and the permission needed.
    pub refused: Option<String>,
}

/// Figures for the report: per month of fixing, the median days to fix; at collection time,
/// the open alerts by severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFigures {
    pub open_by_severity: BTreeMap<String, usize>,
    pub median_days_to_fix_by_month: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertFacts {
    pub targets: Targets,
    pub population: Vec<Population>,
    pub alerts: Vec<Alert>,
    pub figures: AlertFigures,
    pub collected_at: DateTime<Utc>,
}

pub struct GithubAlerts {
    config: GithubAlertsConfig,
    token: Option<String>,
    sleeper: Arc<dyn Sleeper>,
}

impl GithubAlerts {
    /// `token`: read by the engine from `token_env`.
    pub fn new(config: GithubAlertsConfig, token: Option<String>) -> Self {
        GithubAlerts {
            config,
            token,
            sleeper: Arc::new(TokioSleeper),
        }
    }

    /// For tests: waits are recorded, not slept.
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    fn client(&self) -> Result<octocrab::Octocrab, String> {
        let mut builder = octocrab::Octocrab::builder()
            .base_uri(self.config.base_url.as_str())
            .map_err(|e| format!("base_url `{}`: {e}", self.config.base_url))?
            // annexa handles rate limits itself, as GitHub documents them.
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None);
        if let Some(token) = &self.token {
            builder = builder.personal_token(token.clone());
        }
        builder.build().map_err(|e| e.to_string())
    }
}

/// What one response said about rate limits.
fn rate_limit_wait(
    status: u16,
    headers: &http::HeaderMap,
    body: &str,
    now: DateTime<Utc>,
    secondary_attempt: u32,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if !matches!(status, 403 | 429) {
        return None;
    }
    if let Some(secs) = header("retry-after") {
        return Some(Duration::from_secs(secs.max(0) as u64));
    }
    if header("x-ratelimit-remaining") == Some(0)
        && let Some(reset) = header("x-ratelimit-reset")
    {
        return Some(Duration::from_secs((reset - now.timestamp()).max(1) as u64));
    }
    let lower = body.to_ascii_lowercase();
    if status == 429
        || lower.contains("secondary rate limit")
        || lower.contains("rate limit exceeded")
    {
        // No headers: at least a minute, doubling on each further refusal.
        return Some(Duration::from_secs(60u64 << secondary_attempt.min(5)));
    }
    None
}

/// The `next` URL of a `Link` header.
fn next_link(headers: &http::HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

enum Fetched {
    /// Every page read and stored: how many pages and alerts.
    Pages {
        pages: usize,
        total: usize,
    },
    Refused(String),
}

/// What one endpoint is fetched for: where its pages are named, and whose alerts they list.
struct Endpoint<'a> {
    first_url: &'a str,
    kind: AlertKind,
    target: &'a str,
    repo: Option<&'a str>,
}

impl GithubAlerts {
    /// Every page of one endpoint, serially, honouring rate limits within the budget; each
    /// page is stored as it arrives and its alerts normalized into `alerts`.
    async fn fetch(
        &self,
        client: &octocrab::Octocrab,
        endpoint: Endpoint<'_>,
        ctx: &CollectContext,
        alerts: &mut Vec<Alert>,
        (waited, budget): (&mut Duration, Duration),
    ) -> Result<Fetched, CollectError> {
        let kind = endpoint.kind;
        let (mut pages, mut total) = (0, 0);
        let mut url = endpoint.first_url.to_string();
        let mut secondary = 0;
        loop {
            let response =
                client
                    ._get(url.as_str())
                    .await
                    .map_err(|e| CollectError::SourceUnavailable {
                        what: url.clone(),
                        reason: format!("GitHub at {} is unreachable: {e}", self.config.base_url),
                    })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = client.body_to_string(response).await.map_err(|e| {
                CollectError::SourceUnavailable {
                    what: url.clone(),
                    reason: format!("reading the response: {e}"),
                }
            })?;
            if let Some(wait) = rate_limit_wait(status, &headers, &body, ctx.now(), secondary) {
                if *waited + wait > budget {
                    return Err(CollectError::SourceUnavailable {
                        what: url.clone(),
                        reason: format!(
                            "GitHub's rate limit asks to wait {} s; with {} s already waited that exceeds this run's wait_budget of {} s, so the run stops here (not a pass)",
                            wait.as_secs(),
                            waited.as_secs(),
                            budget.as_secs()
                        ),
                    });
                }
                if retry_after_or_reset(&headers) {
                    secondary = 0;
                } else {
                    secondary += 1;
                }
                *waited += wait;
                self.sleeper.sleep(wait).await;
                continue;
            }
            match status {
                200 => {}
                401 => {
                    return Err(CollectError::Unauthorized {
                        what: url.clone(),
                        reason: format!(
                            "GitHub refused the token (401); check {}",
                            self.config.token_env
                        ),
                    });
                }
                403 | 404 => {
                    return Ok(Fetched::Refused(format!(
                        "HTTP {status}: the token lacks {}, or the feature is off for this target",
                        kind.permission()
                    )));
                }
                other => {
                    return Err(CollectError::SourceUnavailable {
                        what: url.clone(),
                        reason: format!(
                            "GitHub answered {other}: {}",
                            body.chars().take(200).collect::<String>()
                        ),
                    });
                }
            }
            secondary = 0;
            let next = next_link(&headers);
            if let Some(n) = &next
                && !crate::outbound::same_host(n, &self.config.base_url)
            {
                // A page may only lead to more of GitHub: never to another host.
                return Err(CollectError::SourceUnavailable {
                    what: url.clone(),
                    reason: format!(
                        "the `Link: rel=next` of this page points away from {} (to {}); annexa does not follow it",
                        self.config.base_url,
                        url::Url::parse(n)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_string))
                            .unwrap_or_else(|| "an unreadable URL".into())
                    ),
                });
            }
            let list: Vec<Value> =
                serde_json::from_str(&body).map_err(|e| CollectError::Invalid {
                    what: url.clone(),
                    reason: format!("not a JSON list of alerts: {e}"),
                })?;
            pages += 1;
            total += list.len();
            alerts.extend(
                list.iter()
                    .filter_map(|v| normalize(kind, v, endpoint.repo)),
            );
            ctx.emit(EvidenceItem {
                name: format!(
                    "{}/{}/page-{pages:03}.json",
                    endpoint.target.replace(['/', ' '], "_"),
                    kind.as_str(),
                ),
                media_type: "application/json".into(),
                body: Body::Bytes(body.into_bytes()),
                observed_at: ctx.now(),
                effective_at: None,
                source: Source {
                    query: url.clone(),
                    filters: vec!["state=all".into()],
                    total: Some(list.len() as u64),
                },
            })
            .await?;
            // Proactively respect an exhausted quota before the next request.
            if next.is_some()
                && headers
                    .get("x-ratelimit-remaining")
                    .and_then(|v| v.to_str().ok())
                    == Some("0")
                && let Some(wait) = rate_limit_wait(403, &headers, "", ctx.now(), 0)
            {
                if *waited + wait > budget {
                    return Err(CollectError::SourceUnavailable {
                        what: url.clone(),
                        reason: format!(
                            "the rate limit is exhausted until reset in {} s, beyond this run's wait_budget",
                            wait.as_secs()
                        ),
                    });
                }
                *waited += wait;
                self.sleeper.sleep(wait).await;
            }
            match next {
                Some(n) => url = n,
                None => return Ok(Fetched::Pages { pages, total }),
            }
        }
    }
}

fn retry_after_or_reset(headers: &http::HeaderMap) -> bool {
    headers.contains_key("retry-after")
        || headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            == Some("0")
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)?
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::to_string)
}

/// Normalizes one alert object as the API returns it.
pub fn normalize(kind: AlertKind, v: &Value, target_repo: Option<&str>) -> Option<Alert> {
    let repository = text(v, &["repository", "full_name"]).or(target_repo.map(str::to_string))?;
    let severity = match kind {
        AlertKind::Dependabot => text(v, &["security_advisory", "severity"])
            .or_else(|| text(v, &["security_vulnerability", "severity"])),
        AlertKind::CodeScanning => text(v, &["rule", "security_severity_level"]).or_else(|| {
            text(v, &["rule", "severity"]).map(|s| match s.as_str() {
                "error" => "high".into(),
                "warning" => "medium".into(),
                _ => "low".into(),
            })
        }),
        AlertKind::SecretScanning => Some("secret".into()),
    }
    .unwrap_or_else(|| "low".into())
    .to_ascii_lowercase();
    Some(Alert {
        repository,
        kind,
        number: v.get("number")?.as_i64()?,
        severity,
        state: text(v, &["state"])?,
        created_at: time(v, "created_at")?,
        updated_at: time(v, "updated_at"),
        fixed_at: time(v, "fixed_at"),
        dismissed_at: time(v, "dismissed_at").or_else(|| time(v, "auto_dismissed_at")),
        dismissed_reason: text(v, &["dismissed_reason"])
            .or_else(|| text(v, &["resolution"]).filter(|_| kind == AlertKind::SecretScanning)),
        resolved_at: time(v, "resolved_at"),
        html_url: text(v, &["html_url"]),
    })
}

#[async_trait::async_trait]
impl Collector for GithubAlerts {
    fn kind(&self) -> &'static str {
        "github-alerts"
    }

    async fn collect(&self, ctx: &CollectContext) -> Result<Snapshot, CollectError> {
        let client = self
            .client()
            .map_err(|reason| CollectError::SourceUnavailable {
                what: "GitHub".into(),
                reason,
            })?;
        crate::outbound::check_base_url(&self.config.base_url, ctx.allow_insecure_urls)
            .await
            .map_err(|reason| CollectError::SourceUnavailable {
                what: self.config.base_url.clone(),
                reason,
            })?;
        let budget =
            humantime::parse_duration(&self.config.wait_budget).unwrap_or(Duration::from_secs(600));
        let base = self.config.base_url.trim_end_matches('/');
        let mut targets: Vec<(String, String, Option<String>)> = self
            .config
            .orgs
            .iter()
            .map(|o| (format!("org {o}"), format!("{base}/orgs/{o}"), None))
            .collect();
        targets.extend(self.config.repos.iter().map(|r| {
            (
                format!("repo {r}"),
                format!("{base}/repos/{r}"),
                Some(r.clone()),
            )
        }));
        let mut waited = Duration::ZERO;
        let mut population = Vec::new();
        let mut alerts = Vec::new();
        for (target, prefix, repo) in &targets {
            for kind in AlertKind::ALL {
                let query = format!("{prefix}/{}?per_page=100", kind.path());
                let endpoint = Endpoint {
                    first_url: &query,
                    kind,
                    target,
                    repo: repo.as_deref(),
                };
                let fetched = self
                    .fetch(&client, endpoint, ctx, &mut alerts, (&mut waited, budget))
                    .await?;
                let (pages, total, refused) = match fetched {
                    Fetched::Refused(why) => (0, 0, Some(why)),
                    Fetched::Pages { pages, total } => (pages, total, None),
                };
                population.push(Population {
                    target: target.clone(),
                    kind,
                    query,
                    pages,
                    total,
                    refused,
                });
            }
        }
        let facts = AlertFacts {
            figures: figures(&alerts),
            targets: self.config.targets.clone(),
            population,
            alerts,
            collected_at: ctx.now(),
        };
        Ok(Snapshot::of(
            serde_json::to_value(facts).expect("facts serialize"),
        ))
    }

    fn check(&self, facts: &Value, as_of: crate::AsOf) -> Vec<Finding> {
        crate::check_stored::<AlertFacts>("alert", facts, |f| check(f, as_of.at))
    }

    fn figures(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Box<dyn crate::FigureFold> {
        Box::new(AlertFold {
            from,
            to,
            severities: BTreeMap::new(),
            populations: BTreeMap::new(),
            newest: None,
        })
    }
}

/// Every alert population queried in the period (read or refused), and per severity the open
/// alerts at the period's start and end, the most open at once, and the alerts opened and
/// closed in it.
struct AlertFold {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    severities: BTreeMap<String, SeverityFigures>,
    /// By target and kind: how many alerts it gave and, if GitHub refused it, why.
    populations: BTreeMap<(String, String), (PopulationFigures, crate::Seen)>,
    newest: Option<AlertFigures>,
}

#[derive(Default)]
struct SeverityFigures {
    /// Open in the first snapshot folded (the state at the period's start) and in the newest.
    at_start: Option<usize>,
    at_end: usize,
    most: usize,
    opened: std::collections::BTreeSet<String>,
    closed: std::collections::BTreeSet<String>,
}

#[derive(Clone, Default)]
struct PopulationFigures {
    read: usize,
    refused: usize,
    alerts: usize,
    last_refusal: Option<String>,
}

impl crate::FigureFold for AlertFold {
    fn add(&mut self, at: &crate::SnapshotRef, facts: &Value) {
        let Some(f) = crate::parse_stored::<AlertFacts>(facts) else {
            return;
        };
        for s in self.severities.values_mut() {
            s.at_end = 0;
        }
        for a in &f.alerts {
            let s = self.severities.entry(a.severity.clone()).or_default();
            if a.created_at >= self.from && a.created_at < self.to {
                s.opened.insert(a.subject());
            }
            if a.closed_at().is_some_and(|c| c >= self.from && c < self.to) {
                s.closed.insert(a.subject());
            }
        }
        for (severity, s) in self.severities.iter_mut() {
            let open = f
                .figures
                .open_by_severity
                .get(severity)
                .copied()
                .unwrap_or(0);
            s.at_start.get_or_insert(open);
            s.at_end = open;
            s.most = s.most.max(open);
        }
        for p in &f.population {
            let key = (p.target.clone(), p.kind.as_str().to_string());
            let mut figures = self
                .populations
                .get(&key)
                .map(|(f, _)| f.clone())
                .unwrap_or_default();
            match &p.refused {
                Some(why) => {
                    figures.refused += 1;
                    figures.last_refusal = Some(why.clone());
                }
                None => figures.read += 1,
            }
            figures.alerts = p.total;
            crate::Seen::record(&mut self.populations, key, figures, at);
        }
        self.newest = Some(f.figures);
    }

    fn tables(self: Box<Self>) -> Vec<FigureTable> {
        let mut open = FigureTable::new(
            "Alerts by severity over the period",
            &[
                "Severity",
                "Open at start",
                "Open at end",
                "Most open",
                "Opened in the period",
                "Closed in the period",
            ],
        );
        for (severity, s) in &self.severities {
            open = open.row([
                severity.clone(),
                s.at_start.unwrap_or(0).to_string(),
                s.at_end.to_string(),
                s.most.to_string(),
                s.opened.len().to_string(),
                s.closed.len().to_string(),
            ]);
        }
        let mut populations = FigureTable::new(
            "Alert populations queried",
            &[
                "Target",
                "Kind",
                "Read",
                "Refused",
                "Alerts (newest)",
                "Evidence",
            ],
        );
        for ((target, kind), (p, seen)) in self.populations {
            populations = populations.row([
                target,
                kind,
                format!("{} of {} snapshots", p.read, p.read + p.refused),
                p.last_refusal.map_or_else(
                    || "never".into(),
                    |why| format!("{} times, last: {why}", p.refused),
                ),
                p.alerts.to_string(),
                seen.text(),
            ]);
        }
        let mut fixed = FigureTable::new("Median days to fix, by month", &["Month", "Days"]);
        for (month, days) in self
            .newest
            .iter()
            .flat_map(|n| &n.median_days_to_fix_by_month)
        {
            if crate::month_in(month, self.from, self.to) {
                fixed = fixed.row([month.clone(), format!("{days:.1}")]);
            }
        }
        vec![open, populations, fixed]
    }
}

fn figures(alerts: &[Alert]) -> AlertFigures {
    let mut open_by_severity = BTreeMap::new();
    let mut fix_days: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for a in alerts {
        if a.state == "open" {
            *open_by_severity.entry(a.severity.clone()).or_insert(0) += 1;
        }
        if let Some(closed) = a.closed_at() {
            fix_days
                .entry(closed.format("%Y-%m").to_string())
                .or_default()
                .push((closed - a.created_at).num_seconds() as f64 / 86_400.0);
        }
    }
    let median_days_to_fix_by_month = fix_days
        .into_iter()
        .map(|(m, mut d)| {
            d.sort_by(f64::total_cmp);
            let mid = d.len() / 2;
            let median = if d.len() % 2 == 0 {
                (d[mid - 1] + d[mid]) / 2.0
            } else {
                d[mid]
            };
            (m, (median * 10.0).round() / 10.0)
        })
        .collect();
    AlertFigures {
        open_by_severity,
        median_days_to_fix_by_month,
    }
}

/// The judgement: pure over the facts and `as_of`.
pub fn check(facts: &AlertFacts, as_of: DateTime<Utc>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for p in &facts.population {
        if let Some(why) = &p.refused {
            findings.push(Finding::new(
                FindingCode::CollectorUnauthorized,
                format!("{} {}", p.target, p.kind.as_str()),
                format!(
                    "{} alerts of {} could not be read: {why}",
                    p.kind.as_str(),
                    p.target
                ),
            ));
        }
    }
    for a in facts.alerts.iter().filter(|a| a.created_at <= as_of) {
        let open = a.state == "open";
        match a.kind {
            AlertKind::SecretScanning if open => findings.push(Finding::new(
                FindingCode::SecretAlertOpen,
                a.subject(),
                format!("secret-scanning alert {} is open since {}: revoke the secret and resolve the alert", a.subject(), a.created_at.format("%Y-%m-%d")),
            )),
            AlertKind::Dependabot | AlertKind::CodeScanning if open => {
                let days = facts.targets.days(&a.severity);
                let age = as_of - a.created_at;
                if age > chrono::Duration::days(days) {
                    findings.push(Finding::new(
                        FindingCode::VulnerabilityAlertOverdue,
                        a.subject(),
                        format!("{} ({}) has been open {} days; the target for {} is {days} days", a.subject(), a.severity, age.num_days(), a.severity),
                    ));
                }
            }
            _ => {}
        }
        if a.state == "dismissed" && a.dismissed_reason.as_deref().is_none_or(str::is_empty) {
            findings.push(
                Finding::new(
                    FindingCode::AlertDismissalUnexplained,
                    a.subject(),
                    format!("{} was dismissed without a reason", a.subject()),
                )
                .with_level(Level::Warn),
            );
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn rate_limit_waits_follow_githubs_rules() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            rate_limit_wait(429, &headers(&[("retry-after", "30")]), "", now, 0),
            Some(Duration::from_secs(30))
        );
        let exhausted = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000120"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &exhausted, "", now, 0),
            Some(Duration::from_secs(120))
        );
        let body = r#"{"message": "You have exceeded a secondary rate limit."}"#;
        assert_eq!(
            rate_limit_wait(403, &headers(&[]), body, now, 0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(403, &headers(&[]), body, now, 2),
            Some(Duration::from_secs(240))
        );
        // A plain 403 is a permission problem, not a rate limit.
        assert_eq!(
            rate_limit_wait(
                403,
                &headers(&[]),
                r#"{"message": "Resource not accessible by integration"}"#,
                now,
                0
            ),
            None
        );
        assert_eq!(rate_limit_wait(200, &exhausted, "", now, 0), None);
    }

    #[test]
    fn next_links_are_followed_as_given() {
        let h = headers(&[(
            "link",
            "<https://api.github.com/orgs/a/dependabot/alerts?per_page=100&after=Y3Vyc29y>; rel=\"next\", <https://api.github.com/x?page=1>; rel=\"first\"",
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://api.github.com/orgs/a/dependabot/alerts?per_page=100&after=Y3Vyc29y")
        );
        assert_eq!(
            next_link(&headers(&[("link", "<https://x>; rel=\"prev\"")])),
            None
        );
    }
}
