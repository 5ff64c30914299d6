//! How `warden token` shows the token the client holds, in its three states: verified
//! locally (✓ with the claims), introspected by the authorization server (what it said,
//! never presented as verified), or opaque ("the server decides", with only what the token
//! response told: scopes, expiry, fingerprint). Never includes the token.

use crate::types::event::{OpaqueReason, ScopeOrigin, TokenInfo, TokenState};
use crate::types::time::rfc3339;

/// The first line: which of the three states the token is in.
pub fn headline(t: &TokenInfo) -> String {
    match &t.state {
        TokenState::Verified(v) => format!("token for {} from {}", v.client_id, v.issuer),
        TokenState::Opaque { .. } => "opaque token: the server decides".into(),
        TokenState::Introspected(_) => "opaque token, introspected by the authorization server".into(),
    }
}

/// "in 14m00s (2026-…)", "EXPIRED 3s ago (…)", or why no expiry is known.
pub fn expiry(t: &TokenInfo, now: u64) -> String {
    match (t.expires_at, t.seconds_to_expiry(now)) {
        (Some(at), Some(left)) if left > 0 => format!("in {}m{:02}s ({})", left / 60, left % 60, rfc3339(at)),
        (Some(at), Some(left)) => format!("EXPIRED {}s ago ({})", -left, rfc3339(at)),
        _ => "unknown (the server gave no expires_in)".into(),
    }
}

/// Human rendering of the token's state. Never includes the token.
pub fn render_token(t: &TokenInfo, now: u64) -> String {
    let requested = t.requested.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "(client defaults)".into());
    let mut rows: Vec<(&str, String)> = Vec::new();
    match &t.state {
        TokenState::Verified(v) => {
            rows.push(("verified", format!("✓ {}, kid {}, typ at+jwt", v.alg, v.kid)));
            rows.push(("subject", v.subject.clone()));
            rows.push(("audience", v.audience.join(", ")));
            rows.push(("granted", t.granted.to_string()));
        }
        TokenState::Opaque { why, scopes, introspection } => {
            let why = match why {
                OpaqueReason::NotJwt => "not a JWT, nothing to verify here",
                OpaqueReason::NoJwks => "the authorization server publishes no keys (no jwks_uri)",
            };
            rows.push(("verified", format!("no: {why}")));
            let scopes = match scopes {
                ScopeOrigin::TokenResponse => format!("{} (from the token response)", t.granted),
                ScopeOrigin::RequestedNotConfirmed => format!("{} (requested, not confirmed)", t.granted),
                ScopeOrigin::Unknown => "unknown (none in the token response)".into(),
            };
            rows.push(("scopes", scopes));
            if let Some(note) = introspection {
                rows.push(("introspect", note.clone()));
            }
        }
        TokenState::Introspected(i) => {
            rows.push(("verified", "no: introspected by the authorization server".into()));
            rows.push(("active", if i.active { "yes".into() } else { "no".into() }));
            rows.push(("scope", i.scope.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "(not stated)".into())));
            if let Some(c) = &i.client_id {
                rows.push(("client_id", c.clone()));
            }
            if let Some(s) = &i.sub {
                rows.push(("subject", s.clone()));
            }
        }
    }
    rows.push(("requested", requested));
    rows.push(("expires", expiry(t, now)));
    rows.push(("fingerprint", t.fingerprint.to_string()));
    rows.push(("refreshes", t.refresh_count.to_string()));
    let mut out = headline(t);
    out.push('\n');
    for (label, value) in rows {
        out.push_str(&format!("  {label:<12} {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::event::{Introspection, VerifiedToken};
    use crate::types::scope::ScopeSet;
    use crate::types::secret::Fingerprint;

    fn info(state: TokenState, granted: &str, expires_at: Option<u64>) -> TokenInfo {
        TokenInfo {
            fingerprint: Fingerprint::of(b"t"),
            requested: Some(ScopeSet::parse("customer:read").unwrap()),
            granted: ScopeSet::parse(granted).unwrap(),
            issued_at: 1_000,
            expires_at,
            refresh_count: 0,
            state,
        }
    }

    #[test]
    fn verified_shows_claims_with_a_check_mark() {
        let t = info(
            TokenState::Verified(VerifiedToken {
                issuer: "https://as".into(),
                subject: "agent".into(),
                client_id: "agent".into(),
                audience: vec!["https://rs/mcp".into()],
                kid: "k1".into(),
                alg: "RS256".into(),
                jti: "j".into(),
            }),
            "customer:read",
            Some(1_900),
        );
        let out = render_token(&t, 1_060);
        assert!(
            out.starts_with("token for agent from https://as\n  verified     ✓ RS256, kid k1, typ at+jwt\n"),
            "{out}"
        );
        assert!(out.contains("  expires      in 14m00s ("), "{out}");
    }

    #[test]
    fn opaque_shows_only_what_is_known() {
        let t = info(
            TokenState::Opaque {
                why: OpaqueReason::NotJwt,
                scopes: ScopeOrigin::RequestedNotConfirmed,
                introspection: None,
            },
            "customer:read",
            Some(1_300),
        );
        let out = render_token(&t, 1_000);
        let first = out.lines().next().unwrap_or_default();
        assert_eq!(first, "opaque token: the server decides");
        assert!(out.contains("  scopes       customer:read (requested, not confirmed)\n"), "{out}");
        assert!(out.contains("  expires      in 5m00s ("), "{out}");
        for claimed in ["✓", "subject", "kid", "RS256", "issuer", "from "] {
            assert!(!out.contains(claimed), "an opaque token shows no {claimed}: {out}");
        }
        let unknown = info(
            TokenState::Opaque { why: OpaqueReason::NoJwks, scopes: ScopeOrigin::Unknown, introspection: None },
            "",
            None,
        );
        let out = render_token(&unknown, 1_000);
        assert!(out.contains("  scopes       unknown (none in the token response)\n"), "{out}");
        assert!(out.contains("  expires      unknown (the server gave no expires_in)\n"), "{out}");
        assert!(out.contains("publishes no keys (no jwks_uri)"), "{out}");
    }

    #[test]
    fn introspected_is_labelled_as_the_servers_word() {
        let t = info(
            TokenState::Introspected(Introspection {
                active: true,
                scope: Some(ScopeSet::parse("customer:read").unwrap()),
                exp: Some(1_600),
                client_id: Some("agent".into()),
                sub: None,
            }),
            "customer:read",
            Some(1_600),
        );
        let out = render_token(&t, 1_000);
        assert_eq!(out.lines().next().unwrap_or_default(), "opaque token, introspected by the authorization server");
        assert!(out.contains("  active       yes\n  scope        customer:read\n  client_id    agent\n"), "{out}");
        assert!(!out.contains("✓") && !out.contains("subject"), "{out}");
    }
}
