//! The one rule for URLs Warden talks to: https everywhere; plain http only to a loopback
//! host, and only where the operator allowed it. URLs are parsed, never pattern-matched,
//! so `http://localhost:80@evil.example/` is evil.example, not localhost.

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_is_read_from_the_parsed_host() {
        let lo = |s: &str| is_loopback(&url::Url::parse(s).unwrap());
        assert!(lo("http://127.0.0.1:8001/mcp") && lo("http://[::1]/") && lo("http://LOCALHOST/"));
        assert!(!lo("http://localhost:80@evil.example/") && !lo("http://127.0.0.1.evil.com/"));
    }
}
