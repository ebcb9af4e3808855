//! Puts the git commit the binaries are built from into `TELEMETRY_GIT_COMMIT`, for `--version`.
//! A build outside a git checkout (a source tarball) takes the commit from the environment
//! variable of the same name, or says "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=TELEMETRY_GIT_COMMIT");
    let commit = std::env::var("TELEMETRY_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // A commit, a checkout or a branch switch updates the log of HEAD (in a worktree too).
    if let Some(log) = git(&["rev-parse", "--path-format=absolute", "--git-path", "logs/HEAD"]) {
        println!("cargo:rerun-if-changed={log}");
    }
    if let Some(head) = git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    println!("cargo:rustc-env=TELEMETRY_GIT_COMMIT={commit}");
}

/// The trimmed output of a successful git command, or `None` (no git, not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
