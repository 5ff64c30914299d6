//! `warden serve --instances N` as a user runs it: the real binary, its stdout read line by
//! line (each instance's URL and pid, restarts), the instances killed by pid.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warden::config::Config;

/// `n` consecutive free loopback ports (checked by binding each, then released), below
/// Linux's ephemeral range like `common::free_addr`.
pub fn free_ports(n: u16) -> SocketAddr {
    let seed = std::process::id().wrapping_mul(7919);
    for attempt in 0..500u32 {
        let base = 20_000 + (seed.wrapping_add(attempt * 131) % 12_000) as u16;
        let held: Vec<_> = (0..n).map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if held.len() == usize::from(n) {
            return SocketAddr::from(([127, 0, 0, 1], base));
        }
    }
    panic!("no {n} consecutive free loopback ports in 20000..32000")
}

/// A running `warden serve --instances N`.
pub struct Instances {
    pub parent: Child,
    pub state: PathBuf,
    pub config_path: PathBuf,
    pub issuer: String,
    /// Instance number → (its URL, its current pid).
    pub instances: BTreeMap<u16, (String, u32)>,
    lines: mpsc::Receiver<String>,
    /// Every line the parent printed so far (for failure messages).
    pub seen: Vec<String>,
}

impl Instances {
    /// Writes `config` to `state/warden.toml` and runs `warden serve --instances n` on it;
    /// returns once the parent printed its summary line (every instance ready).
    pub fn start(state: &Path, config: &Config, n: u16) -> Instances {
        std::fs::create_dir_all(state).unwrap();
        let config_path = state.join("warden.toml");
        std::fs::write(&config_path, toml::to_string(config).unwrap()).unwrap();
        let mut parent = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(state)
            .args(["serve", "--instances", &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = parent.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut me = Instances {
            parent,
            state: state.to_path_buf(),
            config_path,
            issuer: String::new(),
            instances: BTreeMap::new(),
            lines,
            seen: Vec::new(),
        };
        let summary = me.wait_line(|l| l.starts_with("warden serve:"), Duration::from_secs(120));
        me.issuer = summary.split_whitespace().nth(3).unwrap().to_string();
        assert_eq!(me.instances.len(), usize::from(n), "one ready line per instance: {:?}", me.seen);
        me
    }

    /// The next line matching `pred`, tracking instance lines on the way; panics at the
    /// deadline (the parent's output so far in the message).
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => panic!("no matching line from `serve --instances` ({e}); it printed: {:#?}", self.seen),
            };
            self.seen.push(line.clone());
            if let Some((n, url, pid)) = parse_ready(&line) {
                self.instances.insert(n, (url, pid));
            }
            if pred(&line) {
                return line;
            }
        }
    }

    pub fn url(&self, n: u16) -> String {
        self.instances[&n].0.clone()
    }

    pub fn pid(&self, n: u16) -> u32 {
        self.instances[&n].1
    }

    /// SIGKILLs instance `n` and waits for the parent to report it restarted; returns the
    /// new pid.
    pub fn kill_and_await_restart(&mut self, n: u16) -> u32 {
        let old = self.pid(n);
        signal(old, nix::sys::signal::Signal::SIGKILL);
        let exited = format!("instance {n} (pid {old}) exited (killed by signal 9); restarting");
        self.wait_line(|l| l == exited, Duration::from_secs(30));
        self.wait_line(|l| parse_ready(l).is_some_and(|(i, _, _)| i == n), Duration::from_secs(60));
        let new = self.pid(n);
        assert_ne!(new, old, "a new process");
        new
    }

    /// SIGTERM to the parent; waits for it to exit and returns its status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(self.parent.id(), nix::sys::signal::Signal::SIGTERM);
        wait_exit(&mut self.parent, Duration::from_secs(60))
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        // A failed test must not leave servers behind: the instances follow the parent.
        let _ = self.parent.kill();
        let _ = self.parent.wait();
    }
}

/// `instance 2: https://127.0.0.1:8002/mcp (pid 1234)` → (2, URL, 1234).
fn parse_ready(line: &str) -> Option<(u16, String, u32)> {
    let rest = line.strip_prefix("instance ")?;
    let (n, rest) = rest.split_once(": ")?;
    let (url, pid) = rest.split_once(" (pid ")?;
    Some((n.parse().ok()?, url.to_string(), pid.strip_suffix(')')?.parse().ok()?))
}

pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Whether a process with this pid is still running (not a zombie awaiting its parent).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls until every pid in `pids` is gone; panics at the deadline.
pub fn await_gone(pids: &[u32], within: Duration) {
    let deadline = Instant::now() + within;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "processes still running: {:?}",
            pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "`serve --instances` did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
