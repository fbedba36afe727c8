//! What the harness does about the processes of a test: service processes that die
//! with the test, even when it panics; anything left running in the test's folder
//! stopped when its world drops (and its tenants dropped, see `tenants`); logs kept per test under `target/test-logs`; and the
//! environment of the inner `cargo build` (see `binary`).

use std::path::PathBuf;
use std::time::Duration;

use crate::Harness;

/// Drops of a test's world: the service processes it started are gone, and so is
/// anything still running in its folder (a bench a killed service left behind), so a
/// test that fails leaves nothing running; the tenants of its names not dropped yet
/// (by [`Harness::finish`]) are dropped then, so a failed test leaves none either.
impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
        demo::programs::kill_running_in(self.dir.path());
        // Never a panic here: a second one, during a failing test's unwinding, aborts.
        for failed in self.tenants.drop_all_blocking() {
            eprintln!("a tenant of this test was not dropped: {failed}");
        }
        if std::thread::panicking() {
            let files: Vec<String> = std::fs::read_dir(&self.logs)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            eprintln!(
                "the service logs of this test are kept in {} {files:?}",
                self.logs.display()
            );
        }
    }
}

/// A service process of a test: killed and reaped when dropped, so a test that
/// panics leaves it running no longer. Derefs to its [`std::process::Child`].
pub struct Service {
    /// The binary it runs.
    pub name: String,
    /// The file its stdout and stderr go to.
    pub log: PathBuf,
    child: std::process::Child,
}

impl Service {
    /// Takes `child` over.
    pub(crate) fn new(name: &str, log: PathBuf, child: std::process::Child) -> Self {
        Self {
            name: name.to_string(),
            log,
            child,
        }
    }
}

impl std::ops::Deref for Service {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.child
    }
}

impl std::ops::DerefMut for Service {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.child
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Once reaped, kill does nothing (std keeps the exit status).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder for the service logs of the running test (named by the thread libtest
/// runs it on), emptied.
pub fn test_log_folder() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binaries live in <target>/<profile>/deps")
        .to_path_buf();
    let binary = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // deps/<name>-<hash>: the hash changes with every build.
    let binary = binary
        .rsplit_once('-')
        .map_or(binary.as_str(), |(name, _)| name)
        .to_string();
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.replace("::", "-"),
        _ => format!("unnamed-{}", std::process::id()),
    };
    let folder = target.join("test-logs").join(binary).join(test);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("test log folder");
    folder
}

/// Service processes of a test, killed on drop.
pub struct Processes {
    /// `(name, process)`.
    pub children: Vec<(String, Service)>,
}

impl Processes {
    /// Stops one service as an orchestrator (compose, systemd) does: SIGTERM, then
    /// waits for it to exit; returns how long it took.
    pub fn terminate(&mut self, name: &str) -> Duration {
        let started = std::time::Instant::now();
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name) {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
            child.wait().expect("exited");
        }
        self.children.retain(|(n, _)| n != name);
        started.elapsed()
    }

    /// Kills one service with SIGKILL.
    pub fn kill(&mut self, name: &str) {
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
        self.children.retain(|(n, _)| n != name);
    }
}
