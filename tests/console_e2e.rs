//! End to end in a real terminal: the `warden` binary under tmux. Run the demo, type the
//! seed's ticket request, see `create_support_ticket` in the trace and the ticket id in the
//! chat; open the grant editor, drop `ticket:create`, re-run, see the denial naming
//! `ticket:create` in the feed; quit and find the terminal restored.

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is required for this test (apt-get install tmux)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "w"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "w"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
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

#[test]
fn demo_ticket_then_denial_after_dropping_the_scope() {
    let state = tempfile::tempdir().unwrap();
    let tmux = Tmux { socket: format!("warden-e2e-{}", std::process::id()) };
    let command = format!(
        "{} --state-dir {} demo; echo WARDEN_EXIT=$?; sleep 30",
        env!("CARGO_BIN_EXE_warden"),
        state.path().display()
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "w", "-x", "160", "-y", "45", &command]);
    assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
    tmux.wait_for("✓ verified", Duration::from_secs(30));
    assert_eq!(
        String::from_utf8_lossy(&tmux.cmd(&["display", "-p", "-t", "w", "#{alternate_on}"]).stdout).trim(),
        "1",
        "the console uses the alternate screen"
    );

    tmux.keys(&["For customer ABC123 create a support ticket as the bbq grill that she bought is defective.", "Enter"]);
    let s = tmux.wait_for("✓ ok — 3 step(s)", Duration::from_secs(30));
    assert!(s.contains("action  create_support_ticket"), "{s}");
    assert!(s.contains("TKT-000001"), "ticket id in the chat: {s}");

    // Grant editor (F2 works while typing): scopes are listed sorted; ticket:create is third.
    tmux.keys(&["F2"]);
    tmux.wait_for("Grant editor", Duration::from_secs(5));
    tmux.keys(&["j", "j", "Space"]);
    tmux.wait_for("[ ] ticket:create", Duration::from_secs(5));
    tmux.keys(&["r"]);
    let s = tmux.wait_for("denied on customer-service: missing ticket:create", Duration::from_secs(30));
    assert!(s.contains("✗ create_support_ticket      ticket:create"), "token matrix shows the tool as denied: {s}");
    assert!(s.contains("granted   account:calculate customer:read"), "{s}");

    tmux.keys(&["C-c"]);
    let s = tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
    assert!(!s.contains("Token & scopes"), "the console is gone after quitting: {s}");
    assert_eq!(
        String::from_utf8_lossy(&tmux.cmd(&["display", "-p", "-t", "w", "#{alternate_on}"]).stdout).trim(),
        "0",
        "terminal restored"
    );
    let sessions: Vec<_> = std::fs::read_dir(state.path().join("sessions")).unwrap().collect();
    assert_eq!(sessions.len(), 1, "the session was recorded");
}
