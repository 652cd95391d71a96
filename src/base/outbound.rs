//! annexa's own HTTP client, held to the outbound policy (`annexa_collectors::outbound`).

use std::sync::Arc;
use std::time::Duration;

/// Resolves names only to public addresses, unless insecure addresses are allowed.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = annexa_collectors::outbound::public_addrs(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one HTTP client of annexa's own outbound calls (alert sinks, the checkpoint `publish`
/// URL): a timeout per request, no redirects (a redirect could lead anywhere), and, unless
/// insecure URLs are allowed, names resolved only to public addresses.
pub fn client(allow_insecure: bool, timeout: Duration) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("annexa/", env!("CARGO_PKG_VERSION")));
    let builder = if allow_insecure {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder
        .build()
        .expect("a client with these settings builds")
}
