//! Named actions and the keys bound to them. The same table drives dispatch and the `?`
//! help overlay, so the help can never drift from the behaviour. Defaults live here;
//! `[console.keys]` in the config rebinds any action (`grant = "ctrl-g"`).

use std::collections::BTreeMap;
use std::fmt;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Cancel,
    Help,
    NextPane,
    PrevPane,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Select,
    Back,
    Grant,
    Scenarios,
    Export,
    Filter,
    Input,
    Rerun,
}

/// A key with modifiers, written like `q`, `ctrl-c`, `shift-tab`, `f1`, `pgdn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub const fn new(code: KeyCode, mods: KeyModifiers) -> Self {
        Self { code, mods }
    }

    const fn plain(c: char) -> Self {
        Self::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-") {
                mods |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-") {
                mods |= KeyModifiers::ALT;
                rest = &rest[rest.len() - r.len()..];
            } else if lower.starts_with("shift-") && lower != "shift-tab" {
                mods |= KeyModifiers::SHIFT;
                rest = &rest[6..];
            } else {
                break;
            }
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "tab" => KeyCode::Tab,
            "shift-tab" | "backtab" => KeyCode::BackTab,
            "enter" | "return" => KeyCode::Enter,
            "esc" | "escape" => KeyCode::Esc,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "space" => KeyCode::Char(' '),
            f if f.len() >= 2 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => KeyCode::F(f[1..].parse().ok()?),
            _ if rest.chars().count() == 1 => KeyCode::Char(rest.chars().next()?),
            _ => return None,
        };
        Some(Self { code, mods })
    }

    pub fn matches(&self, ev: &KeyEvent) -> bool {
        // Terminals report shifted letters as the uppercase char, sometimes with SHIFT set.
        let mods = ev.modifiers - KeyModifiers::SHIFT;
        let want = self.mods - KeyModifiers::SHIFT;
        match (self.code, ev.code) {
            (KeyCode::Char(a), KeyCode::Char(b)) => a == b && mods == want,
            (a, b) => a == b && ev.modifiers == self.mods,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// One binding: the action, its keys, whether it also works while typing, and its help.
#[derive(Debug, Clone)]
pub struct Binding {
    pub action: Action,
    pub keys: Vec<Key>,
    /// Active while the chat input has focus (otherwise the key types text).
    pub while_typing: bool,
    pub help: &'static str,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

fn b(action: Action, keys: &[Key], while_typing: bool, help: &'static str) -> Binding {
    Binding { action, keys: keys.to_vec(), while_typing, help }
}

use KeyCode as K;
const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

impl Default for Keymap {
    fn default() -> Self {
        Self {
            bindings: vec![
                b(Action::Cancel, &[Key::new(K::Char('c'), CTRL)], true, "cancel the running request; quit when idle"),
                b(Action::Quit, &[Key::plain('q')], false, "quit"),
                b(Action::Help, &[Key::plain('?'), Key::new(K::F(1), NONE)], true, "this help"),
                b(Action::NextPane, &[Key::new(K::Tab, NONE)], true, "next pane"),
                b(
                    Action::PrevPane,
                    &[Key::new(K::BackTab, KeyModifiers::SHIFT), Key::new(K::BackTab, NONE)],
                    true,
                    "previous pane",
                ),
                b(Action::Up, &[Key::plain('k'), Key::new(K::Up, NONE)], false, "move up"),
                b(Action::Down, &[Key::plain('j'), Key::new(K::Down, NONE)], false, "move down"),
                b(Action::PageUp, &[Key::new(K::PageUp, NONE)], true, "page up"),
                b(Action::PageDown, &[Key::new(K::PageDown, NONE)], true, "page down"),
                b(Action::Top, &[Key::plain('g'), Key::new(K::Home, NONE)], false, "first entry"),
                b(
                    Action::Bottom,
                    &[Key::plain('G'), Key::new(K::End, NONE)],
                    false,
                    "last entry (trace: follow new steps)",
                ),
                b(Action::Select, &[Key::new(K::Enter, NONE)], false, "open step detail / apply"),
                b(Action::Back, &[Key::new(K::Esc, NONE)], true, "close overlay, clear filter, leave the input"),
                b(
                    Action::Grant,
                    &[Key::plain('a'), Key::new(K::F(2), NONE)],
                    true,
                    "grant editor: change scopes, re-token",
                ),
                b(Action::Scenarios, &[Key::plain('s'), Key::new(K::F(3), NONE)], true, "scenario picker"),
                b(Action::Rerun, &[Key::plain('r'), Key::new(K::F(5), NONE)], true, "re-run the last request"),
                b(Action::Filter, &[Key::plain('/')], false, "filter the feed"),
                b(Action::Export, &[Key::plain('e')], false, "export this session (JSONL, secrets already absent)"),
                b(Action::Input, &[Key::plain('i')], false, "type a request (chat input)"),
            ],
        }
    }
}

/// A `[console.keys]` entry the keymap cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeymapError {
    #[error("[console.keys] {0:?} is not an action; press ? in the console for the list (e.g. grant, help, quit)")]
    UnknownAction(String),
    #[error(
        "[console.keys] {action}: cannot read key {key:?}; write keys like \"q\", \"ctrl-g\", \"f2\", \"shift-tab\""
    )]
    BadKey { action: String, key: String },
}

impl Action {
    /// The action named as in `[console.keys]` (`grant`, `next_pane`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }
}

impl Keymap {
    /// Defaults with `[console.keys]` overrides applied.
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<Self, KeymapError> {
        let mut map = Self::default();
        for (name, key) in overrides {
            let action = Action::from_name(name).ok_or_else(|| KeymapError::UnknownAction(name.clone()))?;
            let parsed =
                Key::parse(key).ok_or_else(|| KeymapError::BadKey { action: name.clone(), key: key.clone() })?;
            if let Some(binding) = map.bindings.iter_mut().find(|b| b.action == action) {
                binding.keys = vec![parsed];
            }
        }
        Ok(map)
    }

    pub fn action(&self, ev: &KeyEvent, typing: bool) -> Option<Action> {
        self.bindings
            .iter()
            .filter(|b| !typing || b.while_typing)
            .find(|b| b.keys.iter().any(|k| k.matches(ev)))
            .map(|b| b.action)
    }

    /// The first key of an action, for hints.
    pub fn key_for(&self, action: Action) -> String {
        self.bindings
            .iter()
            .find(|b| b.action == action)
            .and_then(|b| b.keys.first())
            .map(|k| k.to_string())
            .unwrap_or_default()
    }

    /// `(keys, help)` rows for the help overlay.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        self.bindings
            .iter()
            .map(|b| (b.keys.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(" / "), b.help))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn dispatch_respects_typing_mode() {
        let km = Keymap::default();
        assert_eq!(km.action(&ev(K::Char('q'), NONE), false), Some(Action::Quit));
        assert_eq!(km.action(&ev(K::Char('q'), NONE), true), None, "q types a q in the input");
        assert_eq!(km.action(&ev(K::Char('c'), CTRL), true), Some(Action::Cancel));
        assert_eq!(km.action(&ev(K::Char('G'), KeyModifiers::SHIFT), false), Some(Action::Bottom));
        assert_eq!(km.action(&ev(K::F(2), NONE), true), Some(Action::Grant));
    }

    #[test]
    fn overrides_rebind_and_show_in_help() {
        let mut o = BTreeMap::new();
        o.insert("grant".to_string(), "ctrl-g".to_string());
        let km = Keymap::with_overrides(&o).unwrap();
        assert_eq!(km.action(&ev(K::Char('g'), CTRL), false), Some(Action::Grant));
        assert_eq!(km.action(&ev(K::Char('a'), NONE), false), None);
        assert!(km.help_rows().iter().any(|(k, h)| k == "Ctrl-g" && h.starts_with("grant editor")));
        o.insert("quit".to_string(), "ctrl-shift-??".to_string());
        assert_eq!(
            Keymap::with_overrides(&o).unwrap_err(),
            KeymapError::BadKey { action: "quit".into(), key: "ctrl-shift-??".into() }
        );
        let unknown: BTreeMap<String, String> = [("grnat".to_string(), "g".to_string())].into();
        assert_eq!(Keymap::with_overrides(&unknown).unwrap_err(), KeymapError::UnknownAction("grnat".into()));
    }
}
