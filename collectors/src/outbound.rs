//! The one outbound policy for every URL annexa calls (alert sinks, the checkpoint `publish`
//! URL, GitHub): https to a public address, from the IANA special-purpose address registries
//! (IPv4 and IPv6), unless `allow_insecure_urls` says otherwise. Clients that follow this
//! policy also follow no redirects and resolve names only to public addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks that are not globally reachable (IANA IPv4 Special-Purpose Address Registry,
/// plus multicast and the reserved 240.0.0.0/4).
const V4_SPECIAL: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space (CGN)
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local (cloud metadata services)
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation
    (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, and the broadcast address
];

/// IPv6 blocks that are not globally reachable (IANA IPv6 Special-Purpose Address Registry,
/// plus multicast and the deprecated site-local block).
const V6_SPECIAL: &[(u128, u8)] = &[
    (0, 128),                                        // ::/128 unspecified
    (1, 128),                                        // ::1/128 loopback
    (0x0000_0000_0000_0000_0000_ffff_0000_0000, 96), // ::ffff:0:0/96 IPv4-mapped (judged as v4)
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96), // 64:ff9b::/96 NAT64
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // 64:ff9b:1::/48 local NAT64
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // 100::/64 discard
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // 2001::/23 IETF protocol assignments (Teredo, ORCHID…)
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // 2001:db8::/32 documentation
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 2002::/16 6to4
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // 3fff::/20 documentation
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16), // 5f00::/16 segment routing SIDs
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // fc00::/7 unique local
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // fe80::/10 link-local
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // fec0::/10 site-local (deprecated)
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // ff00::/8 multicast
];

fn in_v4(ip: Ipv4Addr, (net, len): (u32, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == net & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (u128, u8)) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    u128::from(ip) & mask == net & mask
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !V4_SPECIAL.iter().any(|b| in_v4(v4, *b)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !V6_SPECIAL.iter().any(|b| in_v6(v6, *b))
        }
    }
}

/// An outbound URL must be https to a public host unless `insecure` allows http and loopback or
/// private addresses. The message names the host, never the whole URL (its path may be a
/// secret).
pub fn check_url(url: &str, insecure: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("the URL is not valid ({e})"))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    match parsed.scheme() {
        "https" => {}
        "http" if insecure => {}
        "http" => {
            return Err(format!(
                "the URL to {host} is plain http; use https, or set [outbound] allow_insecure_urls = true"
            ));
        }
        other => return Err(format!("the URL to {host} has scheme `{other}`; use https")),
    }
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    check_host(&host, insecure)
}

/// A host must not name a non-public address (or `localhost`) unless `insecure`.
pub fn check_host(host: &str, insecure: bool) -> Result<(), String> {
    if insecure {
        return Ok(());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let local = bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost");
    if local || bare.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip)) {
        return Err(format!(
            "{host} is not a public address; set [outbound] allow_insecure_urls = true to allow it"
        ));
    }
    Ok(())
}

/// Whether two URLs name one host (and port): a `Link: rel=next` is followed only there.
pub fn same_host(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
                && a.scheme() == b.scheme()
        }
        _ => false,
    }
}

/// The public addresses `host` resolves to, for a resolver that hands a client only those; an
/// error when there is none.
pub async fn public_addrs(
    host: &str,
    port: u16,
) -> Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await?
        .filter(|a| is_public(a.ip()))
        .collect();
    if public.is_empty() {
        return Err(format!(
            "{host} resolves to no public address; set [outbound] allow_insecure_urls = true to allow it"
        )
        .into());
    }
    Ok(public)
}

/// Resolves `host` and refuses it unless every address is public (or `insecure`): checked
/// before a client that cannot take a resolver of its own (GitHub's) connects.
pub async fn check_resolved(host: &str, port: u16, insecure: bool) -> Result<(), String> {
    if insecure {
        return Ok(());
    }
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(a) => Err(format!(
            "{host} resolves to {}, which is not a public address; set [outbound] allow_insecure_urls = true to allow it",
            a.ip()
        )),
        None if addrs.is_empty() => Err(format!("{host} resolves to no address")),
        None => Ok(()),
    }
}

/// A base URL is held to the policy before a client that cannot take a resolver of its own
/// (GitHub's) connects: https, and a host that resolves to public addresses only.
pub async fn check_base_url(url: &str, insecure: bool) -> Result<(), String> {
    check_url(url, insecure)?;
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(443);
    check_resolved(
        host.trim_start_matches('[').trim_end_matches(']'),
        port,
        insecure,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every address form the hostile test found missing, and the usual ones.
    #[test]
    fn special_purpose_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:a9fe:a9fe::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(!is_public(addr), "{ip} counted as public");
        }
        for ip in [
            "1.1.1.1",
            "140.82.112.3",
            "2606:4700:4700::1111",
            "2a00:1450::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as special");
        }
    }

    #[test]
    fn outbound_urls_must_be_https_to_a_public_host() {
        assert!(check_url("https://api.github.com", false).is_ok());
        for url in [
            "http://api.github.com",
            "https://169.254.169.254/latest/meta-data",
            "https://[fec0::1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://localhost:8443/x",
            "ftp://example.com/x",
        ] {
            assert!(check_url(url, false).is_err(), "{url}");
        }
        assert!(check_url("http://127.0.0.1:9000/x", true).is_ok());
        assert!(same_host(
            "https://api.github.com/a",
            "https://api.github.com/b?page=2"
        ));
        assert!(!same_host(
            "https://api.github.com/a",
            "https://evil.example/b"
        ));
        assert!(!same_host(
            "https://api.github.com/a",
            "http://api.github.com/b"
        ));
    }
}
