//! Starting a stage so that it dies with the supervisor, and can wake it when it is ready.
//!
//! Each child gets `PR_SET_PDEATHSIG(SIGKILL)`. Linux sends that signal when the *thread* that
//! forked the child exits, not the process, so children are only ever spawned from the
//! supervisor's main thread, which lives as long as the process (never from a thread pool).
//! SIGKILL rather than SIGTERM: the rings make any stop safe, and a stage that ignored SIGTERM
//! must not outlive its supervisor and block its successor's roles.
//!
//! The readiness pipe's write end is close-on-exec in the supervisor; only the child, between
//! fork and exec, clears that flag, and `TELEMETRY_READY_FD` tells it the number.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

use stage_runtime::READY_FD_ENV;

/// Spawns `program --config <config>`, inheriting stdout and stderr (journald under systemd),
/// and `ready_fd` (the readiness pipe's write end) if given.
pub fn spawn_stage(program: &Path, config: &Path, ready_fd: Option<RawFd>) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(program);
    cmd.arg("--config").arg(config).env_remove(READY_FD_ENV);
    if let Some(fd) = ready_fd {
        cmd.env(READY_FD_ENV, fd.to_string());
    }
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl, getppid,
    // fcntl and _exit, which are async-signal-safe; it allocates nothing and touches no lock.
    // fcntl changes the flags of the child's own copy of the descriptor, not the supervisor's.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The supervisor may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            if let Some(fd) = ready_fd {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}
