//! The issuer's short-lived, in-memory authorization state: requests waiting on the
//! consent page and authorization codes waiting to be exchanged.
//!
//! Memory only, on purpose: both live minutes at most, and a restart simply asks the user
//! to sign in again. Both maps are bounded (a cap, and expired entries swept before a new
//! one is refused), so a flood of `/authorize` calls cannot grow them.
//!
//! Codes are kept by their SHA-256, never in the clear. A code is single-use: its entry
//! stays (marked redeemed) until it expires, so a replay is recognised and the refresh
//! token family issued from it can be revoked (OAuth 2.1 §4.1.3).

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::types::scope::ScopeSet;
use crate::types::secret::sha256;

/// An authorization code lives at most this long (OAuth 2.1 recommends under 10 minutes;
/// a loopback redirect takes well under a second).
pub const CODE_TTL_MS: u64 = 60_000;
/// A consent page may stay open this long before its form stops working.
pub const PENDING_TTL_MS: u64 = 10 * 60_000;
/// Wrong passwords on one consent page before the request is dropped.
pub const MAX_LOGIN_ATTEMPTS: u8 = 5;

/// A validated `/authorize` request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The S256 PKCE challenge (base64url, 43 characters).
    pub code_challenge: String,
    pub resource: String,
    pub scope: ScopeSet,
}

/// What an authorization code stands for.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub request: AuthRequest,
    /// The user who approved.
    pub user: String,
}

struct Pending {
    request: AuthRequest,
    expires_ms: u64,
    failed_logins: u8,
}

struct CodeEntry {
    grant: CodeGrant,
    expires_ms: u64,
    /// `Some` once exchanged: the refresh token family issued from it, if any.
    redeemed: Option<Option<String>>,
}

/// The outcome of presenting a code at `/token`.
pub enum Redeem {
    Fresh(CodeGrant),
    /// Already exchanged: the refresh token family issued from it (to revoke).
    Replayed(Option<String>),
    /// Unknown or expired.
    Invalid,
}

pub struct Grants {
    pending: Mutex<HashMap<String, Pending>>,
    codes: Mutex<HashMap<[u8; 32], CodeEntry>>,
    cap: usize,
}

impl Grants {
    /// At most `cap` pending requests and `cap` codes at once.
    pub fn new(cap: usize) -> Self {
        Self { pending: Mutex::new(HashMap::new()), codes: Mutex::new(HashMap::new()), cap: cap.max(1) }
    }

    /// Parks `request` for the consent page; the returned nonce is the form's only key to
    /// it (the CSRF token). `None`: too many requests are waiting (or the RNG failed).
    pub fn park(&self, request: AuthRequest, now_ms: u64) -> Option<String> {
        let mut pending = self.pending.lock();
        if pending.len() >= self.cap {
            pending.retain(|_, p| p.expires_ms > now_ms);
            if pending.len() >= self.cap {
                return None;
            }
        }
        let nonce = random_token()?;
        pending.insert(nonce.clone(), Pending { request, expires_ms: now_ms + PENDING_TTL_MS, failed_logins: 0 });
        Some(nonce)
    }

    /// Takes the request parked under `nonce` (single use: a second POST finds nothing).
    pub fn take(&self, nonce: &str, now_ms: u64) -> Option<(AuthRequest, u8)> {
        let p = self.pending.lock().remove(nonce)?;
        (p.expires_ms > now_ms).then_some((p.request, p.failed_logins))
    }

    /// Puts a request back after a wrong password, under a fresh nonce; `None` once the
    /// attempts are used up.
    pub fn retry(&self, request: AuthRequest, failed_logins: u8, now_ms: u64) -> Option<String> {
        let failed_logins = failed_logins.saturating_add(1);
        if failed_logins >= MAX_LOGIN_ATTEMPTS {
            return None;
        }
        let nonce = self.park(request, now_ms)?;
        if let Some(p) = self.pending.lock().get_mut(&nonce) {
            p.failed_logins = failed_logins;
        }
        Some(nonce)
    }

    /// Issues a code for `grant`; `None`: too many codes are outstanding.
    pub fn issue_code(&self, grant: CodeGrant, now_ms: u64) -> Option<String> {
        let mut codes = self.codes.lock();
        if codes.len() >= self.cap {
            codes.retain(|_, c| c.expires_ms > now_ms);
            if codes.len() >= self.cap {
                return None;
            }
        }
        let code = random_token()?;
        codes.insert(sha256(code.as_bytes()), CodeEntry { grant, expires_ms: now_ms + CODE_TTL_MS, redeemed: None });
        Some(code)
    }

    /// Exchanges `code` (once).
    pub fn redeem(&self, code: &str, now_ms: u64) -> Redeem {
        let mut codes = self.codes.lock();
        let key = sha256(code.as_bytes());
        let Some(entry) = codes.get_mut(&key) else { return Redeem::Invalid };
        if entry.expires_ms <= now_ms {
            let redeemed = entry.redeemed.take();
            codes.remove(&key);
            return match redeemed {
                Some(family) => Redeem::Replayed(family),
                None => Redeem::Invalid,
            };
        }
        match &entry.redeemed {
            Some(family) => Redeem::Replayed(family.clone()),
            None => {
                entry.redeemed = Some(None);
                Redeem::Fresh(entry.grant.clone())
            }
        }
    }

    /// Records the refresh token family issued from `code`, so a replay can revoke it.
    pub fn link_family(&self, code: &str, family: String) {
        if let Some(entry) = self.codes.lock().get_mut(&sha256(code.as_bytes())) {
            entry.redeemed = Some(Some(family));
        }
    }

    /// (pending requests, codes) held now.
    pub fn sizes(&self) -> (usize, usize) {
        (self.pending.lock().len(), self.codes.lock().len())
    }
}

/// 256 random bits, base64url: codes, nonces, refresh tokens, client secrets. `None` if
/// the system RNG fails (callers answer `server_error`: a guessable value is worse).
pub fn random_token() -> Option<String> {
    use aws_lc_rs::rand::SecureRandom;
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "c".into(),
            client_name: None,
            redirect_uri: "http://127.0.0.1/cb".into(),
            state: None,
            code_challenge: "x".repeat(43),
            resource: "https://rs/mcp".into(),
            scope: ScopeSet::new(),
        }
    }

    #[test]
    fn codes_are_single_use_and_expire() {
        let g = Grants::new(10);
        let code = g.issue_code(CodeGrant { request: request(), user: "u".into() }, 1_000).unwrap();
        assert!(matches!(g.redeem(&code, 2_000), Redeem::Fresh(_)));
        g.link_family(&code, "fam".into());
        assert!(matches!(g.redeem(&code, 3_000), Redeem::Replayed(Some(f)) if f == "fam"));
        let late = g.issue_code(CodeGrant { request: request(), user: "u".into() }, 1_000).unwrap();
        assert!(matches!(g.redeem(&late, 1_000 + CODE_TTL_MS), Redeem::Invalid));
        assert!(matches!(g.redeem("never-issued", 1_000), Redeem::Invalid));
    }

    #[test]
    fn stores_are_bounded_and_expired_entries_make_room() {
        let g = Grants::new(2);
        assert!(g.park(request(), 0).is_some());
        assert!(g.park(request(), 0).is_some());
        assert!(g.park(request(), 1).is_none(), "full of live requests");
        assert!(g.park(request(), PENDING_TTL_MS + 1).is_some(), "expired ones are swept");
        assert_eq!(g.sizes().0, 1);
        let grant = CodeGrant { request: request(), user: "u".into() };
        assert!(g.issue_code(grant.clone(), 0).is_some());
        assert!(g.issue_code(grant.clone(), 0).is_some());
        assert!(g.issue_code(grant.clone(), 1).is_none());
        assert!(g.issue_code(grant, CODE_TTL_MS + 1).is_some());
    }

    #[test]
    fn a_consent_form_works_once_and_wrong_passwords_run_out() {
        let g = Grants::new(10);
        let nonce = g.park(request(), 0).unwrap();
        let (req, failed) = g.take(&nonce, 1).unwrap();
        assert!(g.take(&nonce, 1).is_none(), "single use");
        let mut n = g.retry(req.clone(), failed, 1).unwrap();
        for _ in 2..MAX_LOGIN_ATTEMPTS {
            let (r, f) = g.take(&n, 1).unwrap();
            n = g.retry(r, f, 1).unwrap();
        }
        let (r, f) = g.take(&n, 1).unwrap();
        assert!(g.retry(r, f, 1).is_none(), "attempts used up");
    }
}
