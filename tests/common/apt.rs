//! A Debian package a test needs, installed once on first use: as root, with apt-get,
//! under a lock in `CARGO_TARGET_TMPDIR` so parallel test binaries install it once (the
//! others wait, then find it). `Err` says why it cannot be had here; the caller skips
//! loudly with that reason.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Makes `present()` true by installing `package`, unless it already is. `before` runs
/// just before apt-get does (package-specific preparation).
pub fn install(package: &str, present: impl Fn() -> bool, before: impl FnOnce()) -> Result<(), String> {
    if present() {
        return Ok(());
    }
    if !rustix::process::geteuid().is_root() {
        return Err(format!("{package} is not installed, and not root to install it"));
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(format!("{package} is not installed, and no apt-get to install it"));
    }
    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).map_err(|e| e.to_string())?;
    let lock = std::fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{package}-install.lock")))
        .map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if present() {
        return Ok(());
    }
    before();
    eprintln!("installing Debian's {package} package for the tests (once)…");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(format!("apt-get {} failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr)))
                }
            })
    };
    apt(&["update", "-qq"])?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confold",
        "-o",
        "Dpkg::Options::=--force-confdef",
        package,
    ])?;
    if present() { Ok(()) } else { Err(format!("apt-get installed {package}, but it is still not found")) }
}
