//! Named actions and the keys bound to them, by context. The same table drives dispatch
//! (panes and overlays alike) and the `?` help overlay, so the help can never drift from
//! the behaviour. Defaults live here; `[console.keys]` in the config rebinds any action
//! (`grant = "ctrl-g"`, `toggle = "x"`) in every context where it is bound.
//!
//! A context is where the keyboard is: the panes, the chat input, or one of the overlays.
//! The same key can mean different things in different contexts (`Enter` opens a step in
//! the trace and re-tokens in the grant editor); [`Keymap::action`] resolves a key in a
//! context by trying the context's own bindings first, then the ones it shares.

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
    /// Close the open overlay (the grant editor: without re-tokening).
    Close,
    /// The overlay's main action: re-token, run the scenario, close help or detail.
    Apply,
    /// Grant editor: check or uncheck the selected scope.
    Toggle,
    /// Grant editor: re-token and re-run the last request.
    RegrantAndRun,
    /// Grant editor: re-token with the client's default scopes.
    DefaultGrant,
    /// Token pane: show the previous / next server.
    PrevServer,
    NextServer,
    /// Restart the stdio server shown in the token pane (after it crashed).
    Restart,
    /// Show the stderr of the stdio server shown in the token pane.
    ServerLog,
    /// Confirmation: let the waiting tool call go ahead.
    Allow,
    /// Confirmation: refuse the waiting tool call (nothing is sent).
    Decline,
    /// The auth flow of the server shown in the token pane.
    AuthFlow,
    /// Open the optimize overlay (or show the running or last optimization again).
    Optimize,
}

/// Where the keyboard is, for resolving a key to an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Everywhere: the panes, the chat input and every overlay.
    Global,
    /// The panes (and, for bindings marked `while_typing`, the chat input).
    Panes,
    /// The chat input has the keyboard: only `Global` and `while_typing` pane bindings
    /// act; every other key types. Bindings are never declared in this context.
    Typing,
    /// Every overlay.
    Overlay,
    /// The overlays that change nothing: help, step detail and the scenario picker.
    Viewer,
    /// The scrolling text overlays: help and step detail.
    Reader,
    /// The grant editor.
    Grant,
    /// The confirmation of a tool call.
    Confirm,
    /// The step-up question (re-authorize with more scopes?).
    StepUp,
    /// The optimize overlay.
    Optimize,
}

impl Context {
    /// The binding contexts consulted for a key in this context, most specific first.
    pub fn chain(self) -> &'static [Context] {
        use Context::*;
        match self {
            Global => &[Global],
            Panes | Typing => &[Panes, Global],
            Overlay => &[Overlay, Global],
            Viewer => &[Viewer, Overlay, Global],
            Reader => &[Reader, Viewer, Overlay, Global],
            Grant => &[Grant, Overlay, Global],
            Confirm => &[Confirm, Overlay, Global],
            StepUp => &[StepUp, Overlay, Global],
            Optimize => &[Optimize, Overlay, Global],
        }
    }

    /// The heading of this context's section in the help overlay.
    pub fn heading(self) -> &'static str {
        match self {
            Context::Global => "Everywhere",
            Context::Panes => "Panes (* also while typing a request)",
            Context::Typing => "While typing a request",
            Context::Overlay => "Every overlay",
            Context::Viewer => "Help, step detail and scenarios",
            Context::Reader => "Help, step detail and auth flow",
            Context::Grant => "Grant editor",
            Context::Confirm => "Confirm a tool call",
            Context::StepUp => "Step-up (re-authorize with more scopes?)",
            Context::Optimize => "Optimize (Enter: start, or run again when done)",
        }
    }

    /// The binding contexts in the order the help lists them.
    pub const HELP_ORDER: [Context; 9] = [
        Context::Global,
        Context::Panes,
        Context::Overlay,
        Context::Viewer,
        Context::Reader,
        Context::Grant,
        Context::Confirm,
        Context::StepUp,
        Context::Optimize,
    ];
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
            // One spelling for chords: `Ctrl-C`, `Alt-X` (the letter is the same key
            // whatever its case; a plain `G` is Shift-g and stays as it is).
            KeyCode::Char(c) if self.mods.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) => {
                write!(f, "{}", c.to_ascii_uppercase())
            }
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

/// One binding: the context it belongs to, the action, its keys, whether it also works
/// while typing, and its help.
#[derive(Debug, Clone)]
pub struct Binding {
    pub context: Context,
    pub action: Action,
    pub keys: Vec<Key>,
    /// `Panes` bindings only: active while the chat input has focus (otherwise the key
    /// types text).
    pub while_typing: bool,
    pub help: &'static str,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

fn b(action: Action, keys: &[Key], while_typing: bool, help: &'static str) -> Binding {
    Binding { context: Context::Panes, action, keys: keys.to_vec(), while_typing, help }
}

/// A binding in an overlay context (or `Global`, which typing never hides).
fn o(context: Context, action: Action, keys: &[Key], help: &'static str) -> Binding {
    Binding { context, action, keys: keys.to_vec(), while_typing: true, help }
}

use KeyCode as K;
const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

impl Default for Keymap {
    fn default() -> Self {
        Self {
            bindings: vec![
                o(
                    Context::Global,
                    Action::Cancel,
                    &[Key::new(K::Char('c'), CTRL)],
                    "cancel the running request; quit when idle",
                ),
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
                b(Action::Select, &[Key::new(K::Enter, NONE)], false, "open the step or feed entry / type in Chat"),
                b(Action::Back, &[Key::new(K::Esc, NONE)], true, "clear the feed filter, leave the input"),
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
                b(
                    Action::PrevServer,
                    &[Key::plain('h'), Key::new(K::Left, NONE)],
                    false,
                    "token pane: previous server",
                ),
                b(Action::NextServer, &[Key::plain('l'), Key::new(K::Right, NONE)], false, "token pane: next server"),
                b(Action::Restart, &[Key::plain('R')], false, "restart the stdio server shown (token pane)"),
                b(Action::ServerLog, &[Key::plain('L')], false, "stderr of the stdio server shown (token pane)"),
                b(Action::AuthFlow, &[Key::plain('A')], false, "auth flow of the server shown (token pane)"),
                b(
                    Action::Optimize,
                    &[Key::plain('O'), Key::new(K::F(4), NONE)],
                    true,
                    "optimize: progress and before/after table",
                ),
                o(Context::Overlay, Action::Close, &[Key::new(K::Esc, NONE)], "close (grant editor: cancel)"),
                o(Context::Overlay, Action::Up, &[Key::plain('k'), Key::new(K::Up, NONE)], "move / scroll up"),
                o(Context::Overlay, Action::Down, &[Key::plain('j'), Key::new(K::Down, NONE)], "move / scroll down"),
                o(
                    Context::Overlay,
                    Action::Apply,
                    &[Key::new(K::Enter, NONE)],
                    "re-token, run the scenario, close help or detail",
                ),
                o(Context::Viewer, Action::Close, &[Key::plain('q')], "close"),
                o(Context::Reader, Action::Close, &[Key::plain('?')], "close"),
                o(Context::Reader, Action::PageUp, &[Key::new(K::PageUp, NONE)], "scroll a page up"),
                o(Context::Reader, Action::PageDown, &[Key::new(K::PageDown, NONE)], "scroll a page down"),
                o(Context::Grant, Action::Toggle, &[Key::plain(' ')], "check / uncheck the selected scope"),
                o(Context::Grant, Action::RegrantAndRun, &[Key::plain('r')], "re-token and re-run the last request"),
                o(
                    Context::Grant,
                    Action::DefaultGrant,
                    &[Key::plain('d')],
                    "re-token with the client's default scopes",
                ),
                o(Context::Confirm, Action::Allow, &[Key::plain('y'), Key::new(K::Enter, NONE)], "allow the tool call"),
                o(
                    Context::Confirm,
                    Action::Decline,
                    &[Key::plain('n'), Key::new(K::Esc, NONE)],
                    "decline the tool call (nothing is sent)",
                ),
                o(Context::StepUp, Action::Allow, &[Key::plain('y')], "re-authorize with the added scopes"),
                o(
                    Context::StepUp,
                    Action::Decline,
                    &[Key::plain('n'), Key::new(K::Esc, NONE)],
                    "decline (also Enter): the denial stands",
                ),
                o(Context::Optimize, Action::PageUp, &[Key::new(K::PageUp, NONE)], "scroll the table a page up"),
                o(Context::Optimize, Action::PageDown, &[Key::new(K::PageDown, NONE)], "scroll the table a page down"),
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
    /// Defaults with `[console.keys]` overrides applied. An override replaces the keys of
    /// the action in every context it is bound in (`close = "x"`: `x` closes every
    /// overlay, and Esc, `q` and `?` no longer do).
    pub fn with_overrides(overrides: &BTreeMap<String, String>) -> Result<Self, KeymapError> {
        let mut map = Self::default();
        for (name, key) in overrides {
            let action = Action::from_name(name).ok_or_else(|| KeymapError::UnknownAction(name.clone()))?;
            let parsed =
                Key::parse(key).ok_or_else(|| KeymapError::BadKey { action: name.clone(), key: key.clone() })?;
            for binding in map.bindings.iter_mut().filter(|b| b.action == action) {
                binding.keys = vec![parsed];
            }
        }
        Ok(map)
    }

    /// The action `ev` means in `context`: the context's own bindings win over the ones
    /// it shares (a grant-editor key shadows the same key in every overlay). In `Typing`
    /// only `Global` bindings and `Panes` bindings marked `while_typing` act.
    pub fn action(&self, ev: &KeyEvent, context: Context) -> Option<Action> {
        let typing = context == Context::Typing;
        context.chain().iter().find_map(|ctx| {
            self.bindings
                .iter()
                .filter(|b| b.context == *ctx && (!typing || b.while_typing))
                .find(|b| b.keys.iter().any(|k| k.matches(ev)))
                .map(|b| b.action)
        })
    }

    /// The first key of an action (its first binding), for hints.
    pub fn key_for(&self, action: Action) -> String {
        self.bindings
            .iter()
            .find(|b| b.action == action)
            .and_then(|b| b.keys.first())
            .map(|k| k.to_string())
            .unwrap_or_default()
    }

    /// The first key of an action that acts while the chat input has the keyboard (plain
    /// characters type there), for the input's hints; `None` when every key of it types.
    pub fn key_while_typing(&self, action: Action) -> Option<String> {
        self.bindings
            .iter()
            .filter(|b| b.action == action && b.while_typing)
            .flat_map(|b| b.keys.iter())
            .find(|k| {
                !matches!(k.code, KeyCode::Char(_)) || k.mods.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            })
            .map(|k| k.to_string())
    }

    /// `(keys, help)` rows for the help overlay, every binding once, in table order.
    pub fn help_rows(&self) -> Vec<(String, &'static str)> {
        self.bindings.iter().map(|b| (Self::keys_label(b), b.help)).collect()
    }

    /// The help overlay's sections: each binding context's heading and its rows, in
    /// [`Context::HELP_ORDER`]; a `Panes` binding that also works while typing is starred.
    pub fn help_sections(&self) -> Vec<(&'static str, Vec<(String, &'static str)>)> {
        Context::HELP_ORDER
            .iter()
            .map(|ctx| {
                let rows = self
                    .bindings
                    .iter()
                    .filter(|b| b.context == *ctx)
                    .map(|b| {
                        let star = if b.context == Context::Panes && b.while_typing { " *" } else { "" };
                        (format!("{}{star}", Self::keys_label(b)), b.help)
                    })
                    .collect();
                (ctx.heading(), rows)
            })
            .collect()
    }

    /// The keys of a binding as shown in help; two keys that print alike (BackTab with and
    /// without SHIFT, as terminals differ) are listed once.
    fn keys_label(b: &Binding) -> String {
        let mut shown: Vec<String> = Vec::new();
        for k in &b.keys {
            let k = k.to_string();
            if !shown.contains(&k) {
                shown.push(k);
            }
        }
        shown.join(" / ")
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
        assert_eq!(km.action(&ev(K::Char('q'), NONE), Context::Panes), Some(Action::Quit));
        assert_eq!(km.action(&ev(K::Char('q'), NONE), Context::Typing), None, "q types a q in the input");
        assert_eq!(km.action(&ev(K::Char('c'), CTRL), Context::Typing), Some(Action::Cancel));
        assert_eq!(km.action(&ev(K::Char('G'), KeyModifiers::SHIFT), Context::Panes), Some(Action::Bottom));
        assert_eq!(km.action(&ev(K::F(2), NONE), Context::Typing), Some(Action::Grant));
    }

    #[test]
    fn the_same_key_means_different_things_in_different_contexts() {
        let km = Keymap::default();
        let q = ev(K::Char('q'), NONE);
        assert_eq!(km.action(&q, Context::Reader), Some(Action::Close));
        assert_eq!(km.action(&q, Context::Viewer), Some(Action::Close));
        assert_eq!(km.action(&q, Context::Grant), None, "q does not close the grant editor");
        let enter = ev(K::Enter, NONE);
        assert_eq!(km.action(&enter, Context::Panes), Some(Action::Select));
        assert_eq!(km.action(&enter, Context::Grant), Some(Action::Apply));
        assert_eq!(km.action(&ev(K::Char('r'), NONE), Context::Panes), Some(Action::Rerun));
        assert_eq!(km.action(&ev(K::Char('r'), NONE), Context::Grant), Some(Action::RegrantAndRun));
        assert_eq!(km.action(&ev(K::Char('?'), NONE), Context::Reader), Some(Action::Close));
        assert_eq!(km.action(&ev(K::Char('?'), NONE), Context::Viewer), None, "? does nothing in the picker");
        assert_eq!(km.action(&ev(K::PageDown, NONE), Context::Viewer), None);
        assert_eq!(km.action(&ev(K::Char('c'), CTRL), Context::Grant), Some(Action::Cancel), "Ctrl-C everywhere");
        assert_eq!(km.action(&ev(K::Char('a'), NONE), Context::Grant), None, "pane keys do not reach overlays");
    }

    #[test]
    fn overrides_rebind_and_show_in_help() {
        let mut o = BTreeMap::new();
        o.insert("grant".to_string(), "ctrl-g".to_string());
        let km = Keymap::with_overrides(&o).unwrap();
        assert_eq!(km.action(&ev(K::Char('g'), CTRL), Context::Panes), Some(Action::Grant));
        assert_eq!(km.action(&ev(K::Char('a'), NONE), Context::Panes), None);
        assert!(km.help_rows().iter().any(|(k, h)| k == "Ctrl-G" && h.starts_with("grant editor")));
        o.insert("quit".to_string(), "ctrl-shift-??".to_string());
        assert_eq!(
            Keymap::with_overrides(&o).unwrap_err(),
            KeymapError::BadKey { action: "quit".into(), key: "ctrl-shift-??".into() }
        );
        let unknown: BTreeMap<String, String> = [("grnat".to_string(), "g".to_string())].into();
        assert_eq!(Keymap::with_overrides(&unknown).unwrap_err(), KeymapError::UnknownAction("grnat".into()));
    }
}
