//! Delivering the outbox: at least once, in order per sink, with backoff, honouring a 429's
//! `retry_after`. A failed attempt is recorded and retried; an alert is never dropped. One
//! undelivered for longer than `undeliverable_after` is reported on stdout (and in /metrics).
//!
//! Error texts name the sink and the host, never the URL: webhook URLs and bot tokens are
//! secrets (reqwest's errors carry the URL, so it is stripped).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::app::Annexa;
use crate::config::{EmailConfig, SinkConfig, SinkKind, SmtpTls};
use crate::ops::Output;

/// Why an attempt failed, and when the receiver asked to be tried again.
#[derive(Debug)]
struct Failure {
    error: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry_after: None,
        }
    }
}

/// What one delivery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    pub failed: usize,
    /// Alerts newly reported as undeliverable for too long.
    pub overdue: usize,
    /// When the next alert waiting for a retry is due.
    pub next_attempt: Option<chrono::DateTime<Utc>>,
}

impl DeliveryReport {
    fn wait_until(&mut self, t: chrono::DateTime<Utc>) {
        self.next_attempt = Some(self.next_attempt.map_or(t, |n| n.min(t)));
    }
}

/// The client alerts are sent with: the outbound policy's (`base::outbound::client`), each
/// request bounded by `[alerts] attempt_timeout`.
pub fn http_client(config: &crate::config::Config) -> reqwest::Client {
    crate::base::outbound::client(config.allow_insecure_urls, config.alerts.attempt_timeout)
}

/// The delay before attempt `attempts + 1`: 30 s doubling to at most an hour, or what the
/// receiver asked for.
fn backoff(attempts: i64, asked: Option<Duration>) -> Duration {
    let doubling = Duration::from_secs(30) * 2u32.saturating_pow(attempts.clamp(0, 16) as u32);
    asked.unwrap_or(doubling.min(Duration::from_secs(3600)))
}

/// Sends every due alert once, each attempt within `[alerts] attempt_timeout` and the whole pass
/// within `pass_timeout` (real time: a hung receiver does not speed up with a simulated clock);
/// records each outcome.
pub async fn deliver_due(
    app: &Annexa,
    client: &reqwest::Client,
    out: &dyn Output,
) -> anyhow::Result<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let now = app.clock.now();
    let attempt_timeout = app.config.alerts.attempt_timeout;
    let deadline = tokio::time::Instant::now() + app.config.alerts.pass_timeout;
    // Each sink gets its alerts in order: one waiting for its retry holds back those after it.
    let mut blocked: BTreeSet<String> = BTreeSet::new();
    for alert in app.db.pending_alerts().await? {
        if blocked.contains(&alert.sink) {
            continue;
        }
        if alert.next_attempt_at > now {
            blocked.insert(alert.sink.clone());
            report.wait_until(alert.next_attempt_at);
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            // The rest waits for the next pass, which is due at once.
            report.wait_until(now);
            break;
        }
        let outcome = match app
            .config
            .alerts
            .sinks
            .iter()
            .find(|s| s.name == alert.sink)
        {
            None => Err(Failure::new(format!(
                "sink `{}` is no longer configured; add it back to deliver this alert",
                alert.sink
            ))),
            Some(sink) => match Outgoing::parse(&alert.body) {
                Ok(message) => {
                    let attempt = send(client, sink, &message, alert.id, out, attempt_timeout);
                    match tokio::time::timeout(attempt_timeout, attempt).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(Failure::new(format!(
                            "no answer within {} (attempt_timeout): the attempt was abandoned",
                            humantime::format_duration(attempt_timeout)
                        ))),
                    }
                }
                Err(e) => Err(Failure::new(format!(
                    "the queued message is not readable: {e}"
                ))),
            },
        };
        match outcome {
            Ok(()) => {
                app.db.alert_delivered(alert.id, app.clock.now()).await?;
                report.delivered += 1;
            }
            Err(f) => {
                let wait = backoff(alert.attempts, f.retry_after);
                let next = app.clock.now() + chrono::Duration::from_std(wait)?;
                tracing::warn!(
                    alert = alert.id,
                    sink = %alert.sink,
                    "alert not delivered: {}; next attempt at {next}",
                    f.error
                );
                app.db.alert_failed(alert.id, &f.error, next).await?;
                blocked.insert(alert.sink.clone());
                report.wait_until(next);
                report.failed += 1;
            }
        }
    }
    report.overdue = report_overdue(app, out).await?;
    Ok(report)
}

/// Reports alerts undelivered for longer than `undeliverable_after` (once each). They stay
/// queued and are still retried.
async fn report_overdue(app: &Annexa, out: &dyn Output) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let cutoff = now - chrono::Duration::from_std(app.config.alerts.undeliverable_after)?;
    let overdue = app.db.overdue_alerts(cutoff).await?;
    for a in &overdue {
        let waited = annexa_collectors::human_duration((now - a.created_at).num_seconds());
        let error = a
            .last_error
            .as_deref()
            .unwrap_or("not tried yet: an earlier alert to this sink is still failing");
        out.event(
            crate::ops::Level::Error,
            &format!(
                "ALERT UNDELIVERABLE: {} alert for gap {} to sink `{}` is still not delivered after {waited} ({} attempts; last error: {error}). It stays queued and is retried; fix the sink.",
                a.event.to_uppercase(),
                a.dedup_key,
                a.sink,
                a.attempts
            ),
            serde_json::json!({
                "undeliverable_alert": a.id, "sink": a.sink, "event": a.event,
                "gap": a.dedup_key, "queued_at": annexa_reports::time(a.created_at),
                "attempts": a.attempts, "last_error": error,
            }),
        )?;
        app.db.mark_overdue_reported(a.id, now).await?;
    }
    Ok(overdue.len())
}

/// A queued message as delivery needs it: the title and text people read, and the whole JSON
/// body for the webhook (whatever version of annexa queued it).
struct Outgoing {
    title: String,
    text: String,
    body: serde_json::Value,
}

impl Outgoing {
    fn parse(body: &str) -> Result<Outgoing, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Words {
            title: String,
            text: String,
        }
        let value: serde_json::Value = serde_json::from_str(body)?;
        let words: Words = serde_json::from_value(value.clone())?;
        Ok(Outgoing {
            title: words.title,
            text: words.text,
            body: value,
        })
    }
}

/// Slack section blocks (3,000 characters each, at most 10), split at line ends.
fn slack_blocks(text: &str) -> Vec<serde_json::Value> {
    let mut blocks: Vec<String> = vec![String::new()];
    for line in text.lines() {
        let line = truncate(line, 2900);
        let last = blocks.last_mut().expect("one block at least");
        if last.chars().count() + line.chars().count() + 1 > 3000 {
            blocks.push(line);
        } else {
            if !last.is_empty() {
                last.push('\n');
            }
            last.push_str(&line);
        }
    }
    blocks.truncate(10);
    blocks
        .into_iter()
        .map(|b| serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": b}}))
        .collect()
}

/// One attempt to one sink.
async fn send(
    client: &reqwest::Client,
    sink: &SinkConfig,
    m: &Outgoing,
    delivery: i64,
    out: &dyn Output,
    timeout: Duration,
) -> Result<(), Failure> {
    match &sink.kind {
        SinkKind::Stdout => out
            .event(
                crate::ops::Level::Warn,
                &format!("{}\n{}\n", m.title, m.text),
                serde_json::json!({ "alert": m.body }),
            )
            .map_err(|e| Failure::new(format!("writing to stdout: {e}"))),
        SinkKind::Discord { url } => {
            let content = truncate(&format!("**{}**\n{}", m.title, m.text), 2000);
            let body =
                serde_json::json!({ "content": content, "allowed_mentions": { "parse": [] } });
            post_json(client, url.expose(), &body, &[]).await
        }
        SinkKind::Slack { url } => {
            let text = format!("*{}*\n{}", m.title, m.text);
            let body = serde_json::json!({ "text": truncate(&text, 40_000), "blocks": slack_blocks(&text) });
            post_json(client, url.expose(), &body, &[]).await
        }
        SinkKind::Telegram {
            api_url,
            token,
            chat_id,
        } => {
            let url = format!("{api_url}/bot{}/sendMessage", token.expose());
            let body = serde_json::json!({
                "chat_id": chat_id,
                "text": truncate(&format!("{}\n\n{}", m.title, m.text), 4096),
                "disable_web_page_preview": true,
            });
            post_json(client, &url, &body, &[]).await
        }
        SinkKind::Webhook { url, secret } => {
            let body = serde_json::to_vec(&m.body).expect("a message serializes");
            let timestamp = Utc::now().timestamp().to_string();
            let signature = sign(secret.expose().as_bytes(), &timestamp, &body);
            let headers = [
                ("x-annexa-timestamp", timestamp),
                ("x-annexa-signature", format!("sha256={signature}")),
                ("x-annexa-delivery", delivery.to_string()),
            ];
            post(client, url.expose(), body, &headers).await
        }
        SinkKind::Email(email) => send_email(email, m, delivery, timeout).await,
    }
}

/// The webhook signature: hex HMAC-SHA256 over `<timestamp>.<body>`.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut t: String = text.chars().take(max_chars - 1).collect();
    t.push('…');
    t
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    headers: &[(&str, String)],
) -> Result<(), Failure> {
    post(
        client,
        url,
        serde_json::to_vec(body).expect("JSON"),
        headers,
    )
    .await
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), Failure> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.send().await.map_err(|e| {
        let e = e.without_url();
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason.push_str(&format!(": {s}"));
            source = s.source();
        }
        Failure::new(format!("sending to {host} failed: {reason}"))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let header_wait = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    let text = response.text().await.unwrap_or_default();
    let body_wait = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            // Discord: {"retry_after": 1.5}; Telegram: {"parameters": {"retry_after": 3}}.
            v.get("retry_after")
                .or_else(|| v.pointer("/parameters/retry_after"))
                .and_then(|r| r.as_f64())
        });
    let retry_after = (status.as_u16() == 429)
        .then(|| body_wait.or(header_wait))
        .flatten()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
    let hint = match status.as_u16() {
        429 => "rate limited",
        401 | 403 => "refused: check the token or webhook URL in the environment",
        404 => "not found: the webhook may have been deleted; update the URL in the environment",
        500..=599 => "the receiver failed",
        _ => "refused",
    };
    Err(Failure {
        error: format!(
            "{host} answered HTTP {} ({hint}): {}",
            status.as_u16(),
            annexa_collectors::shown_line(&scrub_url(text.trim(), url), 200)
        ),
        retry_after,
    })
}

/// A receiver's answer without the parts of `url` that may be secret (a webhook's path is its
/// key; a bot token sits in the path): the URL, its path and its longer segments, query values.
fn scrub_url(body: &str, url: &str) -> String {
    let mut secrets = vec![url.to_string()];
    if let Ok(u) = url::Url::parse(url) {
        secrets.push(u.path().to_string());
        secrets.extend(
            u.path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 8)
                .map(String::from),
        );
        secrets.extend(u.query_pairs().map(|(_, v)| v.into_owned()));
    }
    secrets.retain(|s| s.len() >= 4);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .iter()
        .fold(body.to_string(), |b, s| b.replace(s.as_str(), "****"))
}

async fn send_email(
    e: &EmailConfig,
    m: &Outgoing,
    delivery: i64,
    timeout: Duration,
) -> Result<(), Failure> {
    use lettre::message::header::ContentType;
    use lettre::{AsyncTransport, Message};

    let fail = |what: &str, err: &dyn std::fmt::Display| {
        Failure::new(format!("email via {}:{}: {what}: {err}", e.host, e.port))
    };
    if e.tls != SmtpTls::None {
        annexa_collectors::outbound::public_addrs(&e.host, e.port)
            .await
            .map_err(|err| fail("address", &err))?;
    }
    let mut builder = Message::builder()
        .from(e.from.parse().map_err(|err| fail("from", &err))?)
        .subject(m.title.clone())
        .header(ContentType::TEXT_PLAIN)
        .message_id(Some(format!(
            "<annexa-alert-{delivery}@{}>",
            e.from.rsplit('@').next().unwrap_or("annexa")
        )));
    for to in &e.to {
        builder = builder.to(to.parse().map_err(|err| fail("to", &err))?);
    }
    let message = builder
        .body(m.text.clone())
        .map_err(|err| fail("message", &err))?;
    smtp_transport(e, timeout)
        .map_err(|err| fail("TLS setup", &err))?
        .send(message)
        .await
        .map(|_| ())
        .map_err(|err| fail("SMTP", &err))
}

/// The SMTP transport of an email sink (no connection yet).
fn smtp_transport(
    e: &EmailConfig,
    timeout: Duration,
) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, lettre::transport::smtp::Error> {
    use lettre::AsyncSmtpTransport;
    use lettre::Tokio1Executor;
    use lettre::transport::smtp::authentication::Credentials;
    let transport = match e.tls {
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host)?,
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host)?,
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host),
    }
    .port(e.port)
    .timeout(Some(timeout));
    Ok(match &e.credentials {
        Some((user, pass)) => {
            transport.credentials(Credentials::new(user.clone(), pass.expose().clone()))
        }
        None => transport,
    }
    .build())
}

/// `annexa check`: reaches a sink without sending anything (a TCP connection to a webhook's
/// host; an SMTP greeting and EHLO), or with `send_test` sends it a test message. What was
/// reached, or why it could not be.
pub async fn probe(
    app: &Annexa,
    client: &reqwest::Client,
    sink: &SinkConfig,
    out: &dyn Output,
    send_test: bool,
) -> Result<String, String> {
    let timeout = app.config.alerts.attempt_timeout;
    if send_test {
        let title = format!(
            "[annexa] Test message from `annexa check` to sink `{}`",
            sink.name
        );
        let text = format!(
            "{}: this sink receives annexa's gap alerts. Nothing is wrong; no reply is needed.",
            app.config.organization
        );
        let m = Outgoing {
            body: serde_json::json!({ "event": "test", "title": title, "text": text }),
            title,
            text,
        };
        return send(client, sink, &m, 0, out, timeout)
            .await
            .map(|()| "test message sent".to_string())
            .map_err(|f| f.error);
    }
    let url = match &sink.kind {
        SinkKind::Stdout => return Ok("prints to stdout".into()),
        SinkKind::Email(e) => {
            let where_ = format!("{}:{}", e.host, e.port);
            if e.tls != SmtpTls::None {
                annexa_collectors::outbound::public_addrs(&e.host, e.port)
                    .await
                    .map_err(|err| format!("SMTP server {where_}: {err}"))?;
            }
            let transport = smtp_transport(e, timeout).map_err(|err| err.to_string())?;
            return match transport.test_connection().await {
                Ok(true) => Ok(format!("SMTP server {where_} answers (no message sent)")),
                Ok(false) => Err(format!("SMTP server {where_} did not accept the session")),
                Err(err) => Err(format!("SMTP server {where_}: {err}")),
            };
        }
        SinkKind::Discord { url } | SinkKind::Slack { url } | SinkKind::Webhook { url, .. } => {
            url.expose().clone()
        }
        SinkKind::Telegram { api_url, .. } => api_url.clone(),
    };
    let parsed = url::Url::parse(&url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    annexa_collectors::outbound::check_resolved(&host, port, app.config.allow_insecure_urls)
        .await?;
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(format!("{host}:{port} answers (no message sent)")),
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!(
            "{host}:{port} did not answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alert queued by an older version (its gap in the old shape) is still sent: delivery
    /// needs only its title and text, and the webhook posts the body as it was queued.
    #[test]
    fn a_body_queued_by_an_older_version_is_still_deliverable() {
        let old = r#"{"event":"open","dedup_key":"A.5.24|policy-review-overdue|ISP-002","organization":"Org","since":"2026-11-22T10:05:00Z","resolved_at":null,"gap":{"control":"A.5.24","control_title":"t","status":"not_satisfied","code":"policy-review-overdue","level":"fail","subject":"ISP-002","message":"m","collector":"policies","evidence":"run r1","next_step":"n"},"title":"[annexa] OPEN: A.5.24 t is not satisfied","text":"What is wrong: m"}"#;
        let m = Outgoing::parse(old).unwrap();
        assert_eq!(m.title, "[annexa] OPEN: A.5.24 t is not satisfied");
        assert_eq!(m.text, "What is wrong: m");
        assert_eq!(
            m.body,
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
        assert!(
            Outgoing::parse(r#"{"event":"open"}"#).is_err(),
            "no title: not readable"
        );
    }

    #[test]
    fn a_receivers_answer_never_echoes_the_secret_url() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX?token=abcd1234";
        let body = format!(
            "invalid_token for {url}; path /services/T000/B000/XXXXsecretXXXX; XXXXsecretXXXX; abcd1234"
        );
        let scrubbed = scrub_url(&body, url);
        assert!(
            !scrubbed.contains("XXXXsecretXXXX") && !scrubbed.contains("abcd1234"),
            "{scrubbed}"
        );
        assert!(scrubbed.starts_with("invalid_token for ****"), "{scrubbed}");
    }

    #[test]
    fn backoff_doubles_to_an_hour_unless_the_receiver_says() {
        assert_eq!(backoff(0, None), Duration::from_secs(30));
        assert_eq!(backoff(3, None), Duration::from_secs(240));
        assert_eq!(backoff(40, None), Duration::from_secs(3600));
        assert_eq!(
            backoff(5, Some(Duration::from_millis(1500))),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn webhook_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac Jefe
        assert_eq!(
            sign(b"Jefe", "1700000000", b"{}"),
            "d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207"
        );
    }
}
