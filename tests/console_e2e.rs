//! End to end in a real terminal: the `warden` binary under tmux. Run the demo, type the
//! seed's ticket request, see `create_support_ticket` in the trace and the ticket id in the
//! chat; open the grant editor, drop `ticket:create`, re-run, see the denial naming
//! `ticket:create` in the feed; quit and find the terminal restored. Then replay that
//! recording at 80×24: the tool/scope matrix is drawn from the recorded session start and
//! live-only keys say they are not available. A file that is not a recording is refused.

#[path = "common/tmux.rs"]
mod tmux;
use tmux::Tmux;

use std::process::Command;
use std::time::Duration;

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
    let s = tmux.wait_for("✓ ok — 3 steps", Duration::from_secs(30));
    assert!(s.contains("action  create_support_ticket"), "{s}");
    assert!(s.contains("TKT-000001"), "ticket id in the chat: {s}");

    // Grant editor (F2 works while typing): scopes are listed sorted; ticket:create is third.
    tmux.keys(&["F2"]);
    tmux.wait_for("Grant editor", Duration::from_secs(5));
    tmux.keys(&["j", "j", "Space"]);
    tmux.wait_for("[ ] ticket:create", Duration::from_secs(5));
    tmux.keys(&["r"]);
    let s = tmux.wait_for("denied on customer-service: missing ticket:create", Duration::from_secs(30));
    assert!(s.contains("✗ create_support_ticket         ticket:create"), "token matrix shows the tool as denied: {s}");
    assert!(s.contains("granted   account:calculate customer:read"), "{s}");

    tmux.keys(&["C-c"]);
    let s = tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
    assert!(!s.contains("Token & scopes"), "the console is gone after quitting: {s}");
    assert_eq!(
        String::from_utf8_lossy(&tmux.cmd(&["display", "-p", "-t", "w", "#{alternate_on}"]).stdout).trim(),
        "0",
        "terminal restored"
    );
    let sessions: Vec<_> =
        std::fs::read_dir(state.path().join("sessions")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(sessions.len(), 1, "the session was recorded");

    // The recording opens with the session start: the tools and the scopes they need.
    let recording = std::fs::read_to_string(&sessions[0]).unwrap();
    let first: serde_json::Value = serde_json::from_str(recording.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "session_started", "{first}");
    let tools = first["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["tool"] == "create_support_ticket" && t["required"] == serde_json::json!(["ticket:create"])),
        "{first}"
    );

    // Replayed at 80x24: the matrix (compact), the status bar and its hints, no overlap.
    let command = format!(
        "{} --state-dir {} replay {} --speed 200; echo WARDEN_EXIT=$?; sleep 30",
        env!("CARGO_BIN_EXE_warden"),
        state.path().display(),
        sessions[0].display()
    );
    // The new session starts before the old one goes: killing the only session stops the
    // tmux server, and a new-session racing its exit fails ("server exited unexpectedly").
    let out = tmux.cmd(&["new-session", "-d", "-s", "replay", "-x", "80", "-y", "24", &command]);
    assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
    let _ = tmux.cmd(&["kill-session", "-t", "w"]);
    let out = tmux.cmd(&["rename-session", "-t", "replay", "w"]);
    assert!(out.status.success(), "tmux rename-session failed: {}", String::from_utf8_lossy(&out.stderr));
    let s = tmux.wait_for("done    ✗ denied", Duration::from_secs(30));
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 24, "{s}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{s}");
    assert!(s.contains("✗ create_support_") && s.contains("✓ get_customer_in"), "matrix in the replay: {s}");
    assert!(lines[23].contains("REPLAY") && lines[23].contains("q quit"), "status bar: {s}");
    assert!(s.contains("Request — not in a replay"), "{s}");
    tmux.keys(&["s"]);
    let s = tmux.wait_for("scenarios: not available in a replay", Duration::from_secs(5));
    assert!(!s.contains("Scenarios ─"), "no picker in a replay: {s}");
    tmux.keys(&["q"]);
    tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
}

/// `warden replay` of a file that is not a recording: a message naming the file and what
/// was expected, exit code 1, and no console.
#[test]
fn replay_refuses_a_file_that_is_not_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "shopping list\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(dir.path())
        .arg("replay")
        .arg(&notes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "warden: {} is not a Warden session recording: its first line is not a Warden event; `warden replay` plays the files the console writes to STATE/sessions/session-*.jsonl (one JSON event per line)",
            notes.display()
        )
    );
    assert!(out.stdout.is_empty(), "no console drawn");
}

/// The optimize overlay in the real console: `warden demo` (embedded issuer and service,
/// offline planner) narrowed in the grant editor to a grant without `ticket:create`; F4
/// opens the overlay on that grant, Enter starts the optimization, and the table comes
/// back with its total line, the learnt constraint and the program written. The
/// optimization's denials are in the feed (the client's pre-check refusing
/// `create_support_ticket`), with the optimization's one summary line on top.
#[test]
fn demo_optimize_overlay_shows_the_table_and_the_denials_in_the_feed() {
    let state = tempfile::tempdir().unwrap();
    let tmux = Tmux::new("warden-e2e-optimize");
    let command = format!(
        "{} --state-dir {} demo; echo WARDEN_EXIT=$?; sleep 30",
        env!("CARGO_BIN_EXE_warden"),
        state.path().display()
    );
    tmux.start(160, 45, &command);
    tmux.wait_for("✓ verified", Duration::from_secs(30));
    tmux.keys(&["F2"]);
    tmux.wait_for("Grant editor", Duration::from_secs(5));
    tmux.keys(&["j", "j", "Space"]);
    tmux.wait_for("[ ] ticket:create", Duration::from_secs(5));
    tmux.keys(&["Enter"]);
    tmux.wait_for("granted   account:calculate customer:read", Duration::from_secs(30));

    tmux.keys(&["F4"]);
    let s = tmux.wait_for("Optimize — start?", Duration::from_secs(5));
    assert!(s.contains("Optimize the program with BootstrapFewShot on 14 training examples"), "{s}");
    assert!(s.contains("grant    account:calculate customer:read"), "{s}");
    tmux.keys(&["Enter"]);
    // The whole result, not a frame caught while tmux was still drawing it.
    let s = tmux.wait_until("the optimization's result", Duration::from_secs(120), |s| {
        s.contains("Optimize — done") && s.contains("(sealed)") && s.contains("seen while it ran")
    });
    assert!(s.contains("   total (mean, sum of violations)"), "the total line: {s}");
    assert!(
        s.contains("- Do not call `create_support_ticket` under the grant {account:calculate customer:read}"),
        "the learnt constraint: {s}"
    );
    let programs = state.path().join("programs");
    let written: Vec<_> = std::fs::read_dir(&programs).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(written.len(), 1, "one program written to {}", programs.display());
    assert!(s.contains(&format!("✓ valid; wrote {} (sealed)", written[0].display())), "{s}");
    let seen = s.lines().find(|l| l.contains("seen while it ran")).unwrap_or_default().to_string();
    assert!(!seen.contains(" 0 denials"), "the optimization ran into the narrowed grant: {seen}");

    // Closed: the feed has the denials and, on top, the optimization's line.
    tmux.keys(&["Escape"]);
    let s = tmux.wait_until("the feed", Duration::from_secs(5), |s| !s.contains("Optimize — done"));
    assert!(s.contains("● optimize: final "), "{s}");
    assert!(s.contains("✗ create_support_ticket denied on customer-service: missing ticket:create"), "{s}");
    // The trace keeps to the operator's requests: there were none.
    assert!(s.contains("No runs yet"), "{s}");
    tmux.keys(&["C-c"]);
    tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
}
