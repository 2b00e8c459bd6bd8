//! Which channels may carry a secret (a client secret, an assertion, a token, a password): the
//! one rule every outbound URL that carries one is checked against when it is configured.

/// Whether a URL may carry a secret (a client secret, an assertion, a token): https, or http to
/// a loopback host (a local sandbox or test server), where nothing crosses a network.
pub fn is_private_channel(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}
