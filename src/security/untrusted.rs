//! Strings from outside (request parameters, tool names, headers) on their way into a log
//! line or an error message: escaped, so a newline or control character cannot forge a log
//! line, and cut short, so a megabyte of input cannot become a megabyte of log.

/// Longest outside string kept, in characters.
pub const MAX_CHARS: usize = 64;

/// `s` escaped (`\n`, `\u{1b}`, quotes) and cut to `MAX_CHARS` characters, with `…` when cut.
pub fn for_log(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_CHARS).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_length_is_bounded() {
        assert_eq!(for_log("scope\nINFO forged line"), "scope\\nINFO forged line");
        assert_eq!(for_log("a\u{1b}[31mred\r"), "a\\u{1b}[31mred\\r");
        let long = "x".repeat(10_000);
        assert_eq!(for_log(&long), format!("{}…", "x".repeat(MAX_CHARS)));
        assert_eq!(for_log("ticket:create"), "ticket:create");
    }
}
