//! Incidents kept as GitHub issues with a label (`incident` by default).
//!
//! The severity comes from a label naming a severity of the scheme (`Sev2`, `severity:sev2`,
//! `critical`), the register's fields from a `key: value` block in the body (`triaged_at:
//! 2026-03-01T09:10:00Z`). `created_at` and `closed_at` fill `detected_at` and `resolved_at`
//! when the body does not give them. Pull requests (which the issues API also lists) are skipped.

use serde::Deserialize;

use super::policy::Policy;
use super::register::{COLUMNS, RawRecord};

/// Where the issues are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// `owner/name`.
    pub repo: String,
    #[serde(default = "default_label")]
    pub label: String,
    /// The API root: GitHub Enterprise Server, or a stand-in in tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The environment variable holding the token.
    #[serde(default = "default_token_env")]
    pub token_env: String,
}

fn default_label() -> String {
    "incident".into()
}
fn default_base_url() -> String {
    "https://api.github.com".into()
}
fn default_token_env() -> String {
    "GITHUB_TOKEN".into()
}

/// Every issue with the label, all states, every page, as received (pull requests removed).
pub async fn fetch(
    config: &GithubConfig,
    token: Option<&str>,
    allow_insecure_urls: bool,
) -> Result<Vec<octocrab::models::issues::Issue>, (bool, String)> {
    crate::outbound::check_base_url(&config.base_url, allow_insecure_urls)
        .await
        .map_err(|e| (false, format!("github.base_url: {e}")))?;
    let (owner, name) = config.repo.split_once('/').ok_or_else(|| {
        (
            false,
            format!("github.repo `{}` must be owner/name", config.repo),
        )
    })?;
    let client = client(config, token).map_err(|e| (false, e))?;
    let labels = [config.label.clone()];
    let first = client
        .issues(owner, name)
        .list()
        .labels(&labels)
        .state(octocrab::params::State::All)
        .per_page(100u8)
        .send()
        .await
        .map_err(|e| classify(e, config))?;
    // Page by page, each `next` only on the base URL's host.
    let mut all = Vec::new();
    let mut page = first;
    loop {
        all.append(&mut page.items);
        let Some(next) = page.next.take() else { break };
        if !crate::outbound::same_host(&next.to_string(), &config.base_url) {
            return Err((
                false,
                format!(
                    "the `Link: rel=next` of a page points away from {} (to {}); annexa does not follow it",
                    config.base_url,
                    next.host().unwrap_or("an unreadable URL")
                ),
            ));
        }
        match client
            .get_page::<octocrab::models::issues::Issue>(&Some(next))
            .await
            .map_err(|e| classify(e, config))?
        {
            Some(p) => page = p,
            None => break,
        }
    }
    Ok(all
        .into_iter()
        .filter(|i| i.pull_request.is_none())
        .collect())
}

/// A client for the configured API root, with the token when one is set. (Built outside the
/// async code: octocrab's builder is not `Send`.)
fn client(config: &GithubConfig, token: Option<&str>) -> Result<octocrab::Octocrab, String> {
    let mut builder = octocrab::Octocrab::builder()
        .base_uri(config.base_url.as_str())
        .map_err(|e| format!("github.base_url `{}`: {e}", config.base_url))?;
    if let Some(token) = token {
        builder = builder.personal_token(token.to_string());
    }
    builder.build().map_err(|e| e.to_string())
}

/// (unauthorized, message) for an octocrab error.
fn classify(e: octocrab::Error, config: &GithubConfig) -> (bool, String) {
    match &e {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let unauthorized = matches!(status, 401 | 403 | 404);
            let hint = if unauthorized {
                format!(
                    "; check the token in {} and that it may read issues of {} (\"Issues: read\")",
                    config.token_env, config.repo
                )
            } else {
                String::new()
            };
            (
                unauthorized,
                format!("GitHub answered {status}: {}{hint}", source.message),
            )
        }
        _ => (
            false,
            format!("GitHub at {} is unreachable: {e}", config.base_url),
        ),
    }
}

/// The register record an issue stands for.
pub fn record(
    issue: &octocrab::models::issues::Issue,
    config: &GithubConfig,
    policy: &Policy,
) -> RawRecord {
    let mut cells: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        if !cells.iter().any(|(key, _)| key == k) {
            cells.push((k.to_string(), v));
        }
    };
    for line in issue.body.as_deref().unwrap_or_default().lines() {
        if let Some((k, v)) = line
            .trim()
            .trim_start_matches(['-', '*', ' '])
            .split_once(':')
        {
            let k = k.trim().trim_matches('*').trim().to_ascii_lowercase();
            if COLUMNS.contains(&k.as_str()) {
                set(&k, v.trim().trim_matches('*').trim().to_string());
            }
        }
    }
    set("id", format!("GH-{}", issue.number));
    set("title", issue.title.clone());
    let severity = issue.labels.iter().find_map(|l| {
        let name = l.name.trim();
        let bare = ["severity:", "severity/", "sev:", "sev/"]
            .iter()
            .find_map(|p| {
                name.to_ascii_lowercase()
                    .strip_prefix(p)
                    .map(|rest| rest.trim().to_string())
            })
            .unwrap_or_else(|| name.to_string());
        policy.severity(&bare).map(|s| s.name.clone())
    });
    set("severity", severity.unwrap_or_default());
    set("detected_at", issue.created_at.to_rfc3339());
    let closed = issue.closed_at.map(|c| c.to_rfc3339());
    set("resolved_at", closed.clone().unwrap_or_default());
    set(
        "status",
        match issue.state {
            octocrab::models::IssueState::Open => "open".into(),
            _ => "resolved".into(),
        },
    );
    RawRecord {
        location: format!("github {}#{}", config.repo, issue.number),
        cells,
    }
}
