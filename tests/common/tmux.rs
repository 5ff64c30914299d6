//! The console under a real terminal: a tmux server of its own (one socket per test), with
//! one session `w`, killed when dropped. Included by path
//! (`#[path = "common/tmux.rs"] mod tmux;`) by the end-to-end console tests.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    /// A tmux server on a socket named after `name` and this process.
    pub fn new(name: &str) -> Self {
        Self { socket: format!("{name}-{}", std::process::id()) }
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is required for this test (apt-get install tmux)")
    }

    /// Starts session `w`, `width`×`height`, running `command` in a shell.
    pub fn start(&self, width: u16, height: u16, command: &str) {
        let (w, h) = (width.to_string(), height.to_string());
        let out = self.cmd(&["new-session", "-d", "-s", "w", "-x", &w, "-y", &h, command]);
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "w"]).stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "w"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    /// The screen once it contains `what`; fails with the screen after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration) -> String {
        self.wait_until(what, timeout, |s| s.contains(what))
    }

    /// The screen once `done` holds for it; fails naming `what` after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}
