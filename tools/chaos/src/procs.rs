//! The processes of a run: each service instance and each nats-server node, started
//! with its own log file (appended to across restarts, so a log tells the whole life
//! of an instance), SIGKILLed, and started again with the same command line.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
pub use demo::programs::{kill_running_in, running_in};

/// What a process is, for choosing victims and counting kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The saga orchestrator.
    Orchestrator,
    /// `db-step`.
    DbStep,
    /// `site-step`.
    SiteStep,
    /// `user-step`.
    UserStep,
    /// `registry-step`.
    RegistryStep,
    /// A node of the NATS cluster.
    Nats,
}

impl Kind {
    /// Every kind, in the order figures are printed.
    pub const ALL: [Kind; 6] = [
        Kind::Orchestrator,
        Kind::DbStep,
        Kind::SiteStep,
        Kind::UserStep,
        Kind::RegistryStep,
        Kind::Nats,
    ];

    /// The binary's name (`nats-server` for a node).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Orchestrator => "orchestrator",
            Kind::DbStep => "db-step",
            Kind::SiteStep => "site-step",
            Kind::UserStep => "user-step",
            Kind::RegistryStep => "registry-step",
            Kind::Nats => "nats-server",
        }
    }

    /// The service that runs saga step `step` (as progress events name it).
    pub fn of_step(step: &str) -> Option<Kind> {
        match step {
            "database" => Some(Kind::DbStep),
            "site" => Some(Kind::SiteStep),
            "admin_user" => Some(Kind::UserStep),
            "registration" => Some(Kind::RegistryStep),
            _ => None,
        }
    }
}

/// One supervised process.
pub struct Proc {
    /// What it is.
    pub kind: Kind,
    /// Unique name in the run, such as `site-step-1` or `nats-2`.
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Proc {
    /// A process not started yet.
    pub fn new(
        kind: Kind,
        name: String,
        program: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
        logs: &Path,
    ) -> Self {
        Self {
            kind,
            log: logs.join(format!("{name}.log")),
            name,
            program,
            args,
            env,
            child: None,
        }
    }

    /// Starts it (again).
    pub fn start(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        // Run from the log folder: everything the run started has its working
        // directory inside the run's folder, so it can all be found and stopped.
        let cwd = self.log.parent().unwrap_or(std::path::Path::new("."));
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs it and reaps it; nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's kill is SIGKILL: no shutdown handler runs, as in a crash or an OOM kill.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it runs; a process that exited on its own is reaped and forgotten.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            None => false,
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                _ => {
                    self.child = None;
                    false
                }
            },
        }
    }

    /// Whether it was started and not killed (it may have exited on its own since).
    pub fn started(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The program name of process `pid` (`/proc/<pid>/comm`; never its arguments, which
/// hold bench's passwords).
pub fn program_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}
