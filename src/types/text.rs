//! Counting in words for what users read: "1 segment", "2 segments", never "segment(s)".

/// `n` and the noun in the right number.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_everything_else_plural() {
        assert_eq!(super::counted(1, "segment", "segments"), "1 segment");
        assert_eq!(super::counted(0, "segment", "segments"), "0 segments");
        assert_eq!(super::counted(2, "attempt", "attempts"), "2 attempts");
    }
}
