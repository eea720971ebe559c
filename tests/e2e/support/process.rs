//! Child processes that die with the test: a guard kills its process on drop,
//! also while a failed assertion unwinds, and then prints the process's log.
//!
//! NOTE: a test binary that is itself killed (SIGKILL, or a CI timeout) runs
//! no destructors, so its children keep running until killed by hand.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Interval between two checks of a log file or a process state.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Lines of a log printed when a test fails; enough for a start-up error or
/// the last requests, short enough to keep the failure readable.
const LOG_TAIL_LINES: usize = 150;

/// A started child process with its standard output and standard error
/// appended to one log file.
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with both output streams appended to `log`, so a
    /// restarted process keeps adding to the same file.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Self {
        let stdout = open_log(log);
        let stderr = stdout
            .try_clone()
            .expect("a log file handle can be duplicated");
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        ChildGuard {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the log file's contents, or an empty string when it cannot be
    /// read.
    pub fn log_contents(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Returns the exit status when the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot check whether {} exited: {e}", self.name))
    }

    /// Waits until a line of the log starts with `prefix`; returns false
    /// when the process exits first or `timeout` passes.
    pub async fn log_line_within(&mut self, prefix: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_contents().lines().any(|l| l.starts_with(prefix)) {
                return true;
            }
            if self.exit_status().is_some() {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        false
    }

    /// Waits until a line of the log starts with `prefix`. Panics with the log
    /// when the process exits first or `timeout` passes.
    pub async fn wait_for_log_line(&mut self, prefix: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_contents().lines().any(|l| l.starts_with(prefix)) {
                return;
            }
            if let Some(status) = self.exit_status() {
                panic!(
                    "{} exited with {status} before it printed {prefix:?}; log:\n{}",
                    self.name,
                    self.log_contents()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {prefix:?} within {timeout:?}; log:\n{}",
                self.name,
                self.log_contents()
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Panics with the log when the process has already exited; used while
    /// waiting for a service to become ready.
    pub fn assert_running(&mut self, waiting_for: &str) {
        if let Some(status) = self.exit_status() {
            panic!(
                "{} exited with {status} while waiting for {waiting_for}; log:\n{}",
                self.name,
                self.log_contents()
            );
        }
    }

    /// Waits up to `timeout` for the process to exit and returns its status,
    /// or `None` when it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        // kill fails only when the process is already gone, which is fine.
        let _ = self.child.kill();
        if let Err(e) = self.child.wait() {
            eprintln!("cannot reap {} (pid {}): {e}", self.name, self.child.id());
        }
    }

    /// Sends SIGTERM, the signal an orchestrator sends to stop a container.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named `name` (such as `TERM` or `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("the kill command can be run");
        assert!(
            status.success(),
            "kill -{name} {} failed with {status}",
            self.pid()
        );
    }

    fn print_log_tail(&self) {
        let contents = self.log_contents();
        let lines: Vec<&str> = contents.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        eprintln!(
            "----- last {} lines of {} ({}) -----",
            lines.len() - start,
            self.name,
            self.log.display()
        );
        for line in &lines[start..] {
            eprintln!("{line}");
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            self.print_log_tail();
        }
    }
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open log file {}: {e}", path.display()))
}
