//! Database URLs in messages. Redaction never depends on the URL being well formed: a password
//! with `#`, `/` or `?` in it, two ports or a broken IPv6 host must not make it fail open.

const HIDDEN: &str = "****";

/// What a message may show of a database URL: the scheme, the host part after the last `@`
/// (a port only when it is a number), and the database name; never the user information, never
/// a query value.
pub fn location(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => match url.split_once(':') {
            // `sqlite:data/annexa.db`
            Some((s, r)) if ["sqlite", "postgres", "postgresql"].contains(&s) => (s, r),
            _ => ("database", url),
        },
    };
    let after_user = match rest.rfind('@') {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    let end = after_user.find(['?', '#']).unwrap_or(after_user.len());
    let (authority, path) = match after_user[..end].find('/') {
        Some(i) => (&after_user[..i], &after_user[i..end]),
        None => (&after_user[..end], ""),
    };
    let authority = if rest.contains('@') {
        authority.to_string()
    } else {
        // No `@`: what looks like `host:port` may be `user:password` with the host forgotten.
        hide_non_numeric_ports(authority)
    };
    let query = match after_user[end..].strip_prefix('?') {
        Some(q) => {
            let keys: Vec<&str> = q
                .split('#')
                .next()
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split('=').next().unwrap_or_default())
                .collect();
            if keys.is_empty() {
                String::new()
            } else {
                format!(
                    "?{}",
                    keys.iter()
                        .map(|k| format!("{k}={HIDDEN}"))
                        .collect::<Vec<_>>()
                        .join("&")
                )
            }
        }
        None => String::new(),
    };
    // The user name is what comes before the first `:` of the user information; whatever
    // follows it (a password, with any delimiter in it) is hidden.
    let user = match rest.rfind('@') {
        Some(i) => match rest[..i].split_once(':') {
            Some((user, _)) => format!("{user}:{HIDDEN}@"),
            None => format!("{}@", &rest[..i]),
        },
        None => String::new(),
    };
    format!("{scheme}://{user}{authority}{path}{query}")
}

fn hide_non_numeric_ports(authority: &str) -> String {
    if authority.starts_with('[') {
        // An IPv6 host: keep the bracketed part, judge what follows.
        return match authority.find(']') {
            Some(i) => format!(
                "{}{}",
                &authority[..=i],
                hide_non_numeric_ports(&authority[i + 1..])
            ),
            None => HIDDEN.to_string(),
        };
    }
    let mut parts = authority.split(':');
    let host = parts.next().unwrap_or_default().to_string();
    parts.fold(host, |acc, p| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            format!("{acc}:{p}")
        } else {
            format!("{acc}:{HIDDEN}")
        }
    })
}

/// The parts of a URL that may be secret: its user information (whole, and after the first
/// `:`), and every query value.
fn secrets(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let mut out = Vec::new();
    if let Some(i) = rest.rfind('@') {
        let userinfo = &rest[..i];
        out.push(userinfo.to_string());
        if let Some((_, password)) = userinfo.split_once(':') {
            out.push(password.to_string());
            // A parser that stumbles on a delimiter may echo only a piece of it.
            out.extend(
                password
                    .split(['#', '/', '?', ':', '@', '&'])
                    .map(String::from),
            );
        }
    } else if let Some((_, after)) = rest.split('/').next().unwrap_or_default().split_once(':') {
        out.push(after.to_string());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((_, value)) = pair.split_once('=') {
                out.push(value.to_string());
            }
        }
    }
    for s in out.clone() {
        if let Ok(decoded) = url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .ok_or(())
        {
            out.push(decoded);
        }
    }
    // Short values (a one-letter user) would blot out ordinary words.
    out.retain(|s| s.len() >= 3);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// A message about `url` (e.g. a driver's error) with every secret part of the URL replaced,
/// and the URL itself shown as its [`location`].
pub fn scrub(url: &str, text: &str) -> String {
    let mut text = text.replace(url, &location(url));
    for secret in secrets(url) {
        text = text.replace(&secret, HIDDEN);
    }
    text
}

/// Whether a URL carries a password by any spelling: `user:password@`, or a query key with
/// `pass` in it (`password=`, `sslpassword=`).
pub fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let userinfo_password = match rest.rfind('@') {
        Some(i) => rest[..i].contains(':'),
        // `user:secret` with the host forgotten: a "port" that is not a number.
        None => hide_non_numeric_ports(rest.split(['/', '?', '#']).next().unwrap_or_default())
            .contains(HIDDEN),
    };
    let query_password = rest.split_once('?').is_some_and(|(_, q)| {
        q.split(['&', '#']).any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.to_ascii_lowercase().contains("pass"))
        })
    });
    userinfo_password || query_password
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "Canary7pw";

    /// The 12 mistyped URLs of the hostile test, and more: none shows the password.
    #[test]
    fn no_spelling_of_a_url_shows_its_password() {
        let urls = [
            format!("postgres://annexa:{CANARY}@127.0.0.1:5432/annexa"),
            format!("postgres://annexa:{CANARY}#x@127.0.0.1/annexa"),
            format!("postgres://annexa:{CANARY}/x@127.0.0.1/annexa"),
            format!("postgres://annexa:{CANARY}?x@127.0.0.1/annexa"),
            format!("postgres://annexa:{CANARY}@127.0.0.1:5432:5433/annexa"),
            format!("postgres://annexa:{CANARY}@127.0.0.1:port/annexa"),
            format!("postgres://annexa:{CANARY}@[::1/annexa"),
            format!("postgres://annexa@127.0.0.1/annexa?password={CANARY}"),
            format!("postgres://127.0.0.1/annexa?sslmode=disable&password={CANARY}"),
            format!("postgres://annexa:{CANARY}"),
            format!("postgres://annexa:{CANARY}@@127.0.0.1/annexa"),
            format!("postgresql://annexa:{CANARY}@/annexa?host=/run/postgresql"),
            format!("postgres:annexa:{CANARY}@host/db"),
            format!("annexa:{CANARY}@127.0.0.1/annexa"),
        ];
        for url in &urls {
            let shown = location(url);
            assert!(!shown.contains(CANARY), "{url} → {shown}");
            let message = scrub(
                url,
                &format!("error connecting to {url}: bad port in `{CANARY}`"),
            );
            assert!(!message.contains(CANARY), "{url} → {message}");
            assert!(has_password(url), "{url}");
        }
        assert_eq!(
            location("postgres://annexa:pw@db.internal:5432/annexa?sslmode=require"),
            "postgres://annexa:****@db.internal:5432/annexa?sslmode=****"
        );
        assert_eq!(
            location("sqlite:///var/lib/annexa/annexa.db?mode=rwc"),
            "sqlite:///var/lib/annexa/annexa.db?mode=****"
        );
        assert!(!has_password(
            "postgres://annexa@127.0.0.1/annexa?sslmode=require"
        ));
        assert!(!has_password("sqlite://data/annexa.db"));
    }
}
