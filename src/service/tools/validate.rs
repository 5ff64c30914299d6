//! Input validation shared by the tools. Failures become tool errors (`isError: true`)
//! with a message that tells the caller what a valid value looks like.

use serde::Serialize;

/// A tool-level failure: the call was well-formed JSON-RPC but could not be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolFailure {
    pub code: FailureCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    InvalidArgument,
    NotFound,
    Conflict,
    Forbidden,
    /// The store cannot be reached right now (a PostgreSQL server down or overloaded); the
    /// same call may succeed in a few seconds.
    Unavailable,
    Internal,
}

impl ToolFailure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { code: FailureCode::InvalidArgument, message: message.into() }
    }

    pub fn not_found(customer_id: &str) -> Self {
        Self { code: FailureCode::NotFound, message: format!("customer {customer_id} not found") }
    }

    /// A store failure: unreachable is [`FailureCode::Unavailable`] (worth a retry), any
    /// other is internal. Either way the detail goes only to the server log.
    pub fn store(e: crate::service::store::StoreError) -> Self {
        if let crate::service::store::StoreError::Unavailable(why) = &e {
            tracing::warn!(target: "warden::service", error = %why, "store unavailable");
            return Self {
                code: FailureCode::Unavailable,
                message: "the customer database is unavailable right now; retry in a few seconds".into(),
            };
        }
        Self::internal(e)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(target: "warden::service", error = %e, "tool failed");
        // The detail goes to the server log; the caller learns only that it failed.
        Self { code: FailureCode::Internal, message: "internal error; the failure was logged on the server".into() }
    }
}

/// Customer IDs are three letters and three digits (`ABC123`); case and surrounding
/// whitespace are forgiven.
pub fn customer_id(raw: &str) -> Result<String, ToolFailure> {
    let id = raw.trim().to_ascii_uppercase();
    let b = id.as_bytes();
    let ok = b.len() == 6 && b[..3].iter().all(u8::is_ascii_uppercase) && b[3..].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(id)
    } else {
        let shown: String = raw.chars().take(32).collect();
        Err(ToolFailure::invalid(format!(
            "customer_id {shown:?} is not valid: expected three letters and three digits, e.g. ABC123"
        )))
    }
}

/// A required text field: trimmed, non-empty, at most `max` characters, no control
/// characters other than newlines and tabs.
pub fn text(field: &str, raw: &str, max: usize) -> Result<String, ToolFailure> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(ToolFailure::invalid(format!("{field} must not be empty")));
    }
    let n = t.chars().count();
    if n > max {
        return Err(ToolFailure::invalid(format!("{field} is {n} characters; the limit is {max}")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err(ToolFailure::invalid(format!("{field} contains control characters")));
    }
    Ok(t.to_string())
}

pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

pub fn priority(raw: &str) -> Result<&'static str, ToolFailure> {
    let p = raw.trim().to_ascii_lowercase();
    PRIORITIES.iter().find(|x| **x == p).copied().ok_or_else(|| {
        let shown: String = raw.chars().take(32).collect();
        ToolFailure::invalid(format!("priority {shown:?} is not one of {}", PRIORITIES.join(", ")))
    })
}

pub fn idempotency_key(raw: &str) -> Result<String, ToolFailure> {
    let ok =
        !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(ToolFailure::invalid("idempotency_key must be 1-128 characters of A-Z a-z 0-9 - _ . :"))
    }
}

pub const MAX_AMOUNTS: usize = 100;
pub const MAX_AMOUNT: f64 = 1_000_000.0;

pub fn amounts(raw: &[f64]) -> Result<(), ToolFailure> {
    if raw.is_empty() || raw.len() > MAX_AMOUNTS {
        return Err(ToolFailure::invalid(format!("amounts must hold 1 to {MAX_AMOUNTS} values; got {}", raw.len())));
    }
    if let Some((i, a)) = raw.iter().enumerate().find(|(_, a)| !a.is_finite() || **a < 0.0 || **a > MAX_AMOUNT) {
        return Err(ToolFailure::invalid(format!("amounts[{i}] = {a} is outside 0..{MAX_AMOUNT}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids() {
        assert_eq!(customer_id(" abc123 ").unwrap(), "ABC123");
        for bad in ["AB123", "ABC1234", "123ABC", "ABC12X", "", "ÄBC123"] {
            assert_eq!(customer_id(bad).unwrap_err().code, FailureCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn texts_priorities_keys_amounts() {
        assert_eq!(text("subject", "  Grill  ", 10).unwrap(), "Grill");
        assert!(text("subject", "   ", 10).is_err());
        assert!(text("subject", "12345678901", 10).is_err());
        assert!(text("subject", "a\u{7}b", 10).is_err());
        assert_eq!(priority("HIGH").unwrap(), "high");
        assert!(priority("critical").unwrap_err().message.contains("low, medium, high, urgent"));
        assert!(idempotency_key("req-1:a.b_c").is_ok());
        assert!(idempotency_key("has space").is_err());
        assert!(amounts(&[1.0, 2.5]).is_ok());
        assert!(amounts(&[]).is_err());
        assert!(amounts(&[1.0, -1.0]).is_err());
        assert!(amounts(&[f64::NAN]).is_err());
        assert!(amounts(&[1_000_001.0]).is_err());
        assert!(amounts(&vec![1.0; 101]).is_err());
    }
}
