//! The one shape every pane and overlay has (after gitui and ratatui's component template):
//! it owns its state, takes the core's events, handles the keymap's actions — answering
//! with "consumed", "not mine" or a typed message for `App` — and draws itself from
//! `&self`. `App` only routes: it never reaches into a component's fields, and components
//! never reach into each other; whatever crosses between them is a [`Msg`].
//!
//! Keys reach components as [`Action`]s resolved by the keymap in the component's
//! [`Context`], so every key is listed by `?` and can be rebound. The exception is text
//! entry (the chat input, the feed filter), which gets the raw key when no binding claims it.

use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::Rect;

use super::keymap::{Action, Context, Keymap};
use super::overlays::Overlay;
use super::theme::Theme;
use crate::session::command::Command;
use crate::types::event::Event;

/// A status-bar key hint: the key as shown (rebound keys included) and what it does.
pub type Hint = (String, &'static str);

/// What a component did with an action or a key.
#[derive(Debug)]
pub enum Handled {
    /// Done; nothing else to do.
    Consumed,
    /// Not for this component: `App` tries the next in line (then its global actions).
    NotMine,
    /// Done, and `App` must act on these messages, in order.
    Emit(Vec<Msg>),
}

impl Handled {
    /// One message.
    pub fn emit(msg: Msg) -> Self {
        Handled::Emit(vec![msg])
    }
}

/// What a component asks of `App`.
#[derive(Debug)]
pub enum Msg {
    /// Send this to the core.
    Command(Command),
    /// Show this in the status bar.
    Notice(String),
    /// Open this overlay over the panes.
    Open(Overlay),
    /// Close the open overlay.
    Close,
    /// The chat input sent a request (`App` checks that one can be sent now).
    Submit(String),
    /// Give the chat input the keyboard.
    StartTyping,
    /// The confirmation overlay's answer: allow (`true`) or decline the waiting call.
    Confirm(bool),
    /// Open the optimize overlay on a fresh job (`App` builds it: it knows the state
    /// directory and the grant).
    OpenOptimize,
}

/// What a component may know about the session when it handles an action.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Replaying a recording: nothing is sent to a core.
    pub replay: bool,
    /// A run (the operator's, or an optimization) is in progress.
    pub running: bool,
    /// The last request sent, for re-running it.
    pub last_request: Option<String>,
}

/// What a component may know when it draws.
#[derive(Debug, Clone, Copy)]
pub struct DrawCtx<'a> {
    pub theme: &'a Theme,
    /// For key hints (so they show rebound keys).
    pub keymap: &'a Keymap,
    /// This component has the focus.
    pub focused: bool,
    /// The chat input has the keyboard.
    pub typing: bool,
    /// Epoch seconds, for countdowns.
    pub now: u64,
    /// Replaying a recording (nothing can be typed or sent).
    pub replay: bool,
}

/// A pane or an overlay.
pub trait Component {
    /// The keymap context for keys while this component has the keyboard.
    fn context(&self) -> Context {
        Context::Panes
    }

    /// Handles an action the keymap resolved.
    fn on_action(&mut self, action: Action, ctx: &Ctx) -> Handled;

    /// Text entry: a key no binding claimed (or every key, while [`Self::grabs_keys`]).
    fn on_key(&mut self, _key: KeyEvent, _ctx: &Ctx) -> Handled {
        Handled::NotMine
    }

    /// The component edits text and takes every key raw, bypassing the keymap (the feed
    /// filter while it is being typed).
    fn grabs_keys(&self) -> bool {
        false
    }

    /// An event from the core.
    fn on_event(&mut self, _e: &Event) {}

    /// Where the component will be drawn, sent before drawing (and whenever the terminal
    /// changes size), so that scrolling can be settled in the handlers and `draw` needs
    /// no `&mut`.
    fn on_resize(&mut self, _area: Rect) {}

    /// The keys worth showing in the status bar while this component has the keyboard
    /// (most useful first; the bar shows as many as fit).
    fn hints(&self, _keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        Vec::new()
    }

    /// Draws from the state, without side effects.
    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx);
}
