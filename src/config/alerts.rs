//! `[alerts]` and `[[sink]]`: where gap alerts go. Webhook URLs, bot tokens, HMAC keys and
//! SMTP passwords are secrets: they come from the environment (`*_env`), never from the file,
//! and are never printed.

use std::time::Duration;

use serde::Deserialize;

use super::worker::setting_duration;
use annexa_collectors::outbound::{check_host, check_url};

use crate::base::Secret;

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawAlerts {
    remind_every: Option<String>,
    resolve_after: Option<String>,
    undeliverable_after: Option<String>,
    attempt_timeout: Option<String>,
    pass_timeout: Option<String>,
    warn_before: Option<String>,
    update_factor: Option<f64>,
    update_every: Option<String>,
    mode: Option<String>,
    pub(super) allow_insecure_urls: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RawSink {
    name: Option<String>,
    kind: Option<String>,
    url_env: Option<String>,
    secret_env: Option<String>,
    token_env: Option<String>,
    chat_id: Option<String>,
    api_url: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    username_env: Option<String>,
    password_env: Option<String>,
    mode: Option<String>,
    quiet_hours: Option<String>,
}

/// Gap alerts: cadence and sinks.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    pub remind_every: Duration,
    /// How long a gap must stay gone before RESOLVED is sent; a gap back sooner is the same gap.
    pub resolve_after: Duration,
    /// An alert still undelivered this long after it was queued is reported (stdout, metrics).
    pub undeliverable_after: Duration,
    /// The most one delivery attempt may take, connecting, TLS and an SMTP dialogue included.
    pub attempt_timeout: Duration,
    /// The most one delivery pass may take; what it did not reach waits for the next pass.
    pub pass_timeout: Duration,
    /// `[outbound] allow_insecure_urls`: http:// and loopback or private addresses allowed.
    pub allow_insecure_urls: bool,
    /// One WARNING when something falls due within this long (zero: no warnings).
    pub warn_before: Duration,
    /// An open gap whose occurrences grew by this factor since it was last told of sends one
    /// UPDATE (e.g. 2: the missed slots doubled). Zero: never.
    pub update_factor: f64,
    /// The least time between a gap's last message and an UPDATE.
    pub update_every: Duration,
    pub sinks: Vec<SinkConfig>,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub mode: Mode,
    /// While these last nothing is sent to the sink; what came meanwhile goes as one digest
    /// at the first evaluation after they end.
    pub quiet_hours: Option<QuietHours>,
}

/// `quiet_hours = "22:00-07:00 Europe/Berlin"` (the time zone defaults to UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    pub from: chrono::NaiveTime,
    pub to: chrono::NaiveTime,
    pub timezone: chrono_tz::Tz,
}

impl QuietHours {
    fn parse(text: &str) -> Result<QuietHours, String> {
        let usage = || {
            format!(
                "quiet_hours `{text}`: write \"HH:MM-HH:MM\" with an optional IANA time zone, e.g. \"22:00-07:00 Europe/Berlin\""
            )
        };
        let mut parts = text.split_whitespace();
        let range = parts.next().ok_or_else(usage)?;
        let timezone = match parts.next() {
            None => chrono_tz::UTC,
            Some(tz) => tz.parse().map_err(|_| usage())?,
        };
        let (from, to) = range.split_once('-').ok_or_else(usage)?;
        let time = |t: &str| chrono::NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| usage());
        let (from, to) = (time(from)?, time(to)?);
        if parts.next().is_some() || from == to {
            return Err(usage());
        }
        Ok(QuietHours { from, to, timezone })
    }

    /// Whether `at` falls in the quiet hours (which may span midnight).
    pub fn contains(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        let t = at.with_timezone(&self.timezone).time();
        if self.from < self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

/// How a sink is told: one message per event, or one digest per evaluation with news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Each,
    Digest,
}

fn mode(key: &str, value: Option<&str>, default: Mode, problems: &mut Vec<String>) -> Mode {
    match value {
        None => default,
        Some("each") => Mode::Each,
        Some("digest") => Mode::Digest,
        Some(other) => {
            problems.push(format!(
                "{key} `{other}`: use \"each\" (a message per event) or \"digest\" (one per evaluation)"
            ));
            default
        }
    }
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    Stdout,
    Discord {
        url: Secret<String>,
    },
    Slack {
        url: Secret<String>,
    },
    Telegram {
        api_url: String,
        token: Secret<String>,
        chat_id: String,
    },
    Email(EmailConfig),
    /// A generic JSON webhook; the body is signed with HMAC-SHA256 under `secret`.
    Webhook {
        url: Secret<String>,
        secret: Secret<String>,
    },
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub credentials: Option<(String, Secret<String>)>,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Tls,
    /// STARTTLS, required (port 587).
    Starttls,
    /// None: only with `allow_insecure_urls`.
    None,
}

pub(super) fn validate_alerts(
    raw: RawAlerts,
    sinks: Vec<RawSink>,
    env: &[(String, String)],
    insecure: bool,
    problems: &mut Vec<String>,
) -> AlertsConfig {
    let duration = |key: &str, value: Option<String>, default: &str, problems: &mut Vec<String>| {
        setting_duration(&format!("alerts.{key}"), value, default, problems)
    };
    let allow_insecure_urls = insecure;
    let default_mode = mode("alerts.mode", raw.mode.as_deref(), Mode::Each, problems);
    let update_factor = raw.update_factor.unwrap_or(2.0);
    if !(update_factor == 0.0 || update_factor > 1.0) || !update_factor.is_finite() {
        problems.push(format!(
            "alerts.update_factor {update_factor}: use a number above 1 (2: tell again when a gap has doubled) or 0 (never)"
        ));
    }
    let mut valid = Vec::new();
    for (i, sink) in sinks.into_iter().enumerate() {
        if let Some(s) = validate_sink(i, sink, env, allow_insecure_urls, default_mode, problems) {
            if valid.iter().any(|v: &SinkConfig| v.name == s.name) {
                problems.push(format!(
                    "sink `{}` is configured twice; give each [[sink]] its own name",
                    s.name
                ));
            }
            valid.push(s);
        }
    }
    AlertsConfig {
        remind_every: duration("remind_every", raw.remind_every, "24h", problems),
        resolve_after: duration("resolve_after", raw.resolve_after, "1h", problems),
        attempt_timeout: duration("attempt_timeout", raw.attempt_timeout, "20s", problems),
        pass_timeout: duration("pass_timeout", raw.pass_timeout, "2m", problems),
        undeliverable_after: duration(
            "undeliverable_after",
            raw.undeliverable_after,
            "6h",
            problems,
        ),
        allow_insecure_urls,
        warn_before: duration("warn_before", raw.warn_before, "14d", problems),
        update_factor,
        update_every: duration("update_every", raw.update_every, "6h", problems),
        sinks: valid,
    }
}

fn validate_sink(
    i: usize,
    raw: RawSink,
    env: &[(String, String)],
    insecure: bool,
    default_mode: Mode,
    problems: &mut Vec<String>,
) -> Option<SinkConfig> {
    let kind = raw.kind.clone().unwrap_or_default();
    let name = raw.name.clone().unwrap_or_else(|| kind.clone());
    let label = if name.is_empty() {
        format!("sink #{}", i + 1)
    } else {
        format!("sink `{name}`")
    };
    let mut errs: Vec<String> = Vec::new();
    let secret = |key: &str, var: &Option<String>, errs: &mut Vec<String>| {
        env_secret(env, key, var).unwrap_or_else(|e| {
            errs.push(e);
            Secret::new(String::new())
        })
    };
    let kind = match kind.as_str() {
        "stdout" => SinkKind::Stdout,
        "discord" => SinkKind::Discord {
            url: secret("url_env", &raw.url_env, &mut errs),
        },
        "slack" => SinkKind::Slack {
            url: secret("url_env", &raw.url_env, &mut errs),
        },
        "webhook" => SinkKind::Webhook {
            url: secret("url_env", &raw.url_env, &mut errs),
            secret: secret("secret_env", &raw.secret_env, &mut errs),
        },
        "telegram" => {
            let token = secret("token_env", &raw.token_env, &mut errs);
            let chat_id = raw.chat_id.clone().unwrap_or_default();
            if chat_id.is_empty() {
                errs.push("set `chat_id` (the chat or channel the bot posts to)".into());
            }
            SinkKind::Telegram {
                api_url: raw
                    .api_url
                    .clone()
                    .unwrap_or_else(|| "https://api.telegram.org".into())
                    .trim_end_matches('/')
                    .to_string(),
                token,
                chat_id,
            }
        }
        "email" => {
            let tls = match raw.tls.as_deref().unwrap_or("starttls") {
                "tls" => SmtpTls::Tls,
                "starttls" => SmtpTls::Starttls,
                "none" if insecure => SmtpTls::None,
                "none" => {
                    errs.push("tls = \"none\" sends mail in clear text; it needs [outbound] allow_insecure_urls = true".into());
                    SmtpTls::None
                }
                other => {
                    errs.push(format!(
                        "tls `{other}`: use \"starttls\", \"tls\" or \"none\""
                    ));
                    SmtpTls::Starttls
                }
            };
            let credentials = match (&raw.username_env, &raw.password_env) {
                (None, None) => None,
                (user, pass) => Some((
                    secret("username_env", user, &mut errs).expose().clone(),
                    secret("password_env", pass, &mut errs),
                )),
            };
            let to = raw.to.clone().unwrap_or_default();
            if to.is_empty() {
                errs.push("set `to` (a list of addresses)".into());
            }
            for address in raw.from.iter().chain(&to) {
                if address.parse::<lettre::Address>().is_err() {
                    errs.push(format!("`{address}` is not an email address"));
                }
            }
            if raw.from.is_none() {
                errs.push("set `from` (the sender address)".into());
            }
            SinkKind::Email(EmailConfig {
                host: raw.host.clone().unwrap_or_else(|| {
                    errs.push("set `host` (the SMTP server)".into());
                    String::new()
                }),
                port: raw.port.unwrap_or(match tls {
                    SmtpTls::Tls => 465,
                    SmtpTls::Starttls => 587,
                    SmtpTls::None => 25,
                }),
                tls,
                from: raw.from.clone().unwrap_or_default(),
                to,
                credentials,
            })
        }
        other => {
            problems.push(format!(
                "{label}: kind `{other}`: use stdout, discord, slack, telegram, email or webhook"
            ));
            return None;
        }
    };
    let mode = mode("mode", raw.mode.as_deref(), default_mode, &mut errs);
    let quiet_hours = raw
        .quiet_hours
        .as_deref()
        .map(QuietHours::parse)
        .transpose()
        .unwrap_or_else(|e| {
            errs.push(e);
            None
        });
    let sink = SinkConfig {
        name,
        kind,
        mode,
        quiet_hours,
    };
    if errs.is_empty() {
        errs.extend(
            sink.urls()
                .iter()
                .filter_map(|u| check_url(u, insecure).err()),
        );
        if let SinkKind::Email(e) = &sink.kind {
            errs.extend(check_host(&e.host, insecure).err());
        }
    }
    let ok = errs.is_empty();
    problems.extend(errs.into_iter().map(|e| format!("{label}: {e}")));
    ok.then_some(sink)
}

/// A secret from the environment variable the config names.
fn env_secret(
    env: &[(String, String)],
    key: &str,
    var: &Option<String>,
) -> Result<Secret<String>, String> {
    let Some(var) = var else {
        return Err(format!(
            "set `{key}` to the environment variable that holds it (secrets stay out of the file)"
        ));
    };
    match env.iter().find(|(k, _)| k == var) {
        Some((_, v)) if !v.trim().is_empty() => Ok(Secret::new(v.trim().to_string())),
        _ => Err(format!("{key}: the environment variable {var} is not set")),
    }
}

impl SinkConfig {
    /// The most characters one message to this sink's service may hold: Discord's 2,000,
    /// Telegram's 4,096, Slack's sections of 3,000 each (a message is sent as up to 10).
    pub fn max_chars(&self) -> usize {
        match self.kind {
            SinkKind::Discord { .. } => 2000,
            SinkKind::Telegram { .. } => 4096,
            SinkKind::Slack { .. } => 10 * 3000,
            SinkKind::Stdout | SinkKind::Email(_) | SinkKind::Webhook { .. } => 100_000,
        }
    }

    /// The URLs this sink sends to (secrets: check them, never print them).
    pub fn urls(&self) -> Vec<&str> {
        match &self.kind {
            SinkKind::Discord { url } | SinkKind::Slack { url } | SinkKind::Webhook { url, .. } => {
                vec![url.expose()]
            }
            SinkKind::Telegram { api_url, .. } => vec![api_url],
            SinkKind::Stdout | SinkKind::Email(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::QuietHours;

    #[test]
    fn quiet_hours_span_midnight_in_their_time_zone() {
        let q = QuietHours::parse("22:00-07:00 Europe/Berlin").unwrap();
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert!(q.contains(at("2026-11-22T21:30:00Z")), "22:30 in Berlin");
        assert!(q.contains(at("2026-11-23T05:59:00Z")), "06:59 in Berlin");
        assert!(!q.contains(at("2026-11-23T06:00:00Z")), "07:00 in Berlin");
        assert!(!q.contains(at("2026-11-22T12:00:00Z")));
        let day = QuietHours::parse("12:00-13:00").unwrap();
        assert!(day.contains(at("2026-11-22T12:30:00Z")));
        assert!(!day.contains(at("2026-11-22T13:00:00Z")));
        for bad in ["22-07", "22:00-22:00", "22:00-07:00 Mars/Olympus", "22:00"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_worker_and_sink_settings_are_each_named() {
        let text = r#"
[worker]
listen = "everywhere"
drain = "soon"
verify = "at night"

[alerts]
remind_every = "fortnightly"
warn_before = "soon"
update_factor = 1.0
mode = "sometimes"

[[sink]]
kind = "pager"

[[sink]]
name = "quiet"
kind = "stdout"
mode = "loud"
quiet_hours = "all night"

[[sink]]
kind = "discord"
url_env = "UNSET_DISCORD_URL"

[[sink]]
name = "mail"
kind = "email"
host = "127.0.0.1"
tls = "none"
from = "not an address"
to = ["security@example.com"]

[[sink]]
kind = "telegram"
token_env = "TG"
"#;
        let env = [("TG".to_string(), "1:x".to_string())];
        let err =
            crate::config::Config::parse(text, std::path::Path::new("a.toml"), &env).unwrap_err();
        let expected = [
            "worker.listen `everywhere` is not an address",
            "worker.drain: `soon` is not a duration",
            "worker.verify: `at night` is not a cron expression",
            "alerts.remind_every: `fortnightly` is not a duration",
            "alerts.warn_before: `soon` is not a duration",
            "alerts.update_factor 1: use a number above 1",
            "alerts.mode `sometimes`: use \"each\" (a message per event) or \"digest\"",
            "sink `quiet`: mode `loud`: use \"each\"",
            "sink `quiet`: quiet_hours `all night`: write \"HH:MM-HH:MM\"",
            "sink `pager`: kind `pager`: use stdout, discord, slack, telegram, email or webhook",
            "sink `discord`: url_env: the environment variable UNSET_DISCORD_URL is not set",
            "sink `mail`: tls = \"none\" sends mail in clear text",
            "sink `mail`: `not an address` is not an email address",
            "sink `telegram`: set `chat_id`",
        ];
        for e in expected {
            assert!(
                err.problems.iter().any(|p| p.starts_with(e)),
                "{e:?} not in {:#?}",
                err.problems
            );
        }
        assert_eq!(err.problems.len(), expected.len(), "{:#?}", err.problems);
    }
}
