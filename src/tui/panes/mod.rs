//! The four panes. Each is a [`Component`](super::component::Component): it owns its
//! state, ingests the events it cares about, handles its own scrolling and selection, and
//! renders from that state without side effects. Lists render only their visible rows.

pub mod chat;
pub mod feed;
pub mod token;
pub mod trace;

/// Rows a page key moves.
pub const PAGE: i64 = 10;

/// Which pane has focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Chat,
    Trace,
    Token,
    Feed,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Chat, Pane::Trace, Pane::Token, Pane::Feed];

    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }

    pub fn prev(self) -> Self {
        let i = Self::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Self::ALL[(i + Self::ALL.len() - 1) % Self::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Chat => "Chat",
            Pane::Trace => "Trace",
            Pane::Token => "Token & scopes",
            Pane::Feed => "Feed",
        }
    }
}

/// A selection in a list that can follow the newest entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    pub selected: usize,
    /// Stick to the end as entries arrive (until the operator moves up).
    pub follow: bool,
    /// First visible row (kept between moves so the view does not jump). Settled by the
    /// handlers, which know the viewport height; drawing only reads it.
    pub offset: usize,
}

impl Cursor {
    pub fn following() -> Self {
        Self { selected: 0, follow: true, offset: 0 }
    }

    pub fn up(&mut self, n: usize) {
        self.follow = false;
        self.selected = self.selected.saturating_sub(n);
    }

    pub fn down(&mut self, n: usize, len: usize) {
        self.selected = (self.selected + n).min(len.saturating_sub(1));
    }

    pub fn top(&mut self) {
        self.follow = false;
        self.selected = 0;
    }

    pub fn bottom(&mut self, len: usize) {
        self.follow = true;
        self.selected = len.saturating_sub(1);
    }

    /// The visible index range for `height` rows over `len` entries, scrolling the least
    /// needed from the settled offset to keep the selection in view. Pure: drawing calls it.
    pub fn window(&self, len: usize, height: usize) -> std::ops::Range<usize> {
        let mut settled = *self;
        settled.settle(len, height)
    }

    /// Applies `follow`, clamps the selection and scrolls the least needed to keep it in
    /// view; returns the visible range. Handlers call it before and after a move (with the
    /// viewport height they were last given), so the offset persists as it would if it
    /// were settled at every frame.
    pub fn settle(&mut self, len: usize, height: usize) -> std::ops::Range<usize> {
        if len == 0 {
            return 0..0;
        }
        if self.follow {
            self.selected = len - 1;
        }
        self.selected = self.selected.min(len - 1);
        if height == 0 {
            return 0..0;
        }
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(len.saturating_sub(height));
        self.offset..(self.offset + height).min(len)
    }
}

/// Rows a bordered pane drawn in `area` has for its list (what a page is).
pub fn rows_inside(area: ratatui::layout::Rect) -> usize {
    ratatui::widgets::Block::default().borders(ratatui::widgets::Borders::ALL).inner(area).height as usize
}

/// Greedy word wrap by characters (good enough for chat text; no hyphenation).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split(' ') {
            let wlen = word.chars().count();
            let llen = line.chars().count();
            if llen > 0 && llen + 1 + wlen > width {
                out.push(std::mem::take(&mut line));
            }
            if wlen > width {
                let chars: Vec<char> = word.chars().collect();
                for chunk in chars.chunks(width) {
                    if !line.is_empty() {
                        out.push(std::mem::take(&mut line));
                    }
                    line = chunk.iter().collect();
                }
                continue;
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(line);
    }
    out
}

/// Cuts to `max` characters with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    let one = s.replace('\n', " ");
    if one.chars().count() <= max {
        return one;
    }
    let mut out: String = one.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn clock(at_ms: u64) -> String {
    let secs = at_ms / 1000;
    format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_follows_until_moved() {
        let mut c = Cursor::following();
        assert_eq!(c.window(100, 10), 90..100);
        assert_eq!(c.settle(100, 10), 90..100);
        c.up(3);
        assert!(!c.follow);
        assert_eq!(c.window(200, 10), 90..100, "view stays put when new entries arrive");
        c.bottom(200);
        assert_eq!(c.window(200, 10), 190..200);
        c.top();
        assert_eq!(c.window(200, 10), 0..10);
        let before = c;
        let _ = c.window(5, 3);
        assert_eq!((c.selected, c.offset, c.follow), (before.selected, before.offset, before.follow), "pure");
    }

    #[test]
    fn wrapping_and_clipping() {
        assert_eq!(wrap("the quick brown fox", 9), vec!["the quick", "brown fox"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(clip("hello world", 6), "hello…");
    }
}
