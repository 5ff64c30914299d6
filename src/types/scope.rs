//! OAuth scopes as types. A `Scope` is a validated RFC 6749 scope token; a `ScopeSet` is an
//! ordered set of them with the operations the rest of Warden needs: parse the
//! space-separated wire form, check a subset, and name the missing scopes for a denial.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One scope token (RFC 6749 §3.3: printable ASCII except space, `"` and `\`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid scope {0:?}: scopes are printable ASCII without spaces, quotes or backslashes")]
pub struct InvalidScope(pub String);

impl Scope {
    pub fn new(s: &str) -> Result<Self, InvalidScope> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if ok { Ok(Scope(s.to_string())) } else { Err(InvalidScope(s.chars().take(64).collect())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of scopes. Serialized as a list; `Display` gives the space-separated wire form.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the space-separated form used in `scope` parameters and claims. Repeated
    /// spaces are tolerated; an invalid token fails the whole parse.
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        s.split(' ').filter(|t| !t.is_empty()).map(Scope::new).collect()
    }

    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0.insert(scope);
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes of `required` that `self` lacks — what a denial names.
    pub fn missing(&self, required: &ScopeSet) -> ScopeSet {
        ScopeSet(required.0.difference(&self.0).cloned().collect())
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        ScopeSet(iter.into_iter().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(&s.0)?;
            first = false;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_wire_form() {
        let s = ScopeSet::parse("ticket:create  customer:read").unwrap();
        assert_eq!(s.to_string(), "customer:read ticket:create");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn rejects_invalid_scope_tokens() {
        assert!(ScopeSet::parse("ok bad\"quote").is_err());
        assert!(Scope::new("back\\slash").is_err());
        assert!(Scope::new("").is_err());
        assert!(Scope::new("naïve").is_err());
    }

    #[test]
    fn missing_names_exactly_the_absent_scopes() {
        let granted = ScopeSet::parse("customer:read").unwrap();
        let needed = ScopeSet::parse("customer:read ticket:create").unwrap();
        assert_eq!(granted.missing(&needed).to_string(), "ticket:create");
        assert!(needed.missing(&granted).is_empty());
        assert!(granted.is_subset(&needed));
    }
}
