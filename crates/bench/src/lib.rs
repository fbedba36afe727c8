//! The Bench port: what the Frappe steps need from a bench. Run a command line (argv,
//! never a shell string) in the bench's environment, stream its output line by line,
//! get its exit code; a timeout kills it.
//!
//! Bench takes secrets only as flags, so a [`CommandLine`] marks them: they reach the
//! process, but every rendering for people (logs, progress, errors) shows `***`, and
//! output lines are scrubbed of them too.
//!
//! Drivers: [`local::LocalBench`] (`BENCH_DRIVER=local`, a child process) and
//! [`docker::DockerBench`] (`BENCH_DRIVER=docker`, an exec in the Frappe backend
//! container through the Docker Engine API); [`Driver`] is whichever the settings name.

pub mod docker;
pub mod environment;
pub mod local;
mod output;

use std::future::Future;
use std::time::Duration;

use secrets::{ExposeSecret, SecretString};
use tokio::sync::mpsc;

/// One argument of a command line.
#[derive(Debug, Clone)]
enum Arg {
    Plain(String),
    Secret(SecretString),
}

/// A command line to run in the bench folder. The first word is the program: `bench`
/// (the driver substitutes `BENCH_BIN`) or a plain tool such as `mv`.
#[derive(Debug, Clone)]
pub struct CommandLine {
    args: Vec<Arg>,
    owner: Option<String>,
}

/// The environment variable that tags a command's processes with their owner
/// ([`CommandLine::owned_by`]); bench's children inherit it.
pub const OWNER_VARIABLE: &str = "BENCH_OWNER";

impl CommandLine {
    /// `program` with no arguments yet.
    pub fn new(program: &str) -> Self {
        Self {
            args: vec![Arg::Plain(program.into())],
            owner: None,
        }
    }

    /// Tags the command's processes with `owner` (as `BENCH_OWNER=<owner>` in their
    /// environment), so that [`Bench::stop_owned`] finds them later, even after the
    /// service that started them died.
    pub fn owned_by(mut self, owner: &str) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Whose command this is ([`CommandLine::owned_by`]).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// `bench` followed by `args`.
    pub fn bench<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        Self::new("bench").args(args)
    }

    /// Adds plain arguments.
    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| Arg::Plain(a.into())));
        self
    }

    /// Adds `flag` followed by a secret value.
    pub fn secret(mut self, flag: &str, value: &SecretString) -> Self {
        self.args.push(Arg::Plain(flag.into()));
        self.args.push(Arg::Secret(value.clone()));
        self
    }

    /// The program (first word).
    pub fn program(&self) -> &str {
        match &self.args[0] {
            Arg::Plain(p) => p,
            Arg::Secret(_) => "***",
        }
    }

    /// The arguments after the program, secrets exposed: for the process only.
    pub fn expose_args(&self) -> Vec<String> {
        self.args[1..]
            .iter()
            .map(|a| match a {
                Arg::Plain(p) => p.clone(),
                Arg::Secret(s) => s.expose_secret().to_string(),
            })
            .collect()
    }

    /// Removes every secret of this command from `text`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for arg in &self.args {
            if let Arg::Secret(s) = arg {
                let secret = s.expose_secret();
                if !secret.is_empty() {
                    out = out.replace(secret, "***");
                }
            }
        }
        out
    }
}

impl std::fmt::Display for CommandLine {
    /// The command as people may see it: secrets as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words: Vec<String> = self
            .args
            .iter()
            .map(|a| match a {
                Arg::Plain(p) if p.is_empty() || p.contains([' ', '"', '\'']) => format!("{p:?}"),
                Arg::Plain(p) => p.clone(),
                Arg::Secret(_) => "***".into(),
            })
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line of output, scrubbed of the command's secrets. Bench separates progress
/// segments with `\r`; each segment is a line here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where it came from.
    pub channel: Channel,
    /// The text, without the separator.
    pub text: String,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code (Frappe: 0 success, 1 failure, 2 usage error).
    pub exit_code: i32,
    /// The last lines of stdout and stderr, scrubbed, for error messages.
    pub tail: Vec<Line>,
}

impl Finished {
    /// Whether any line of the tail contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.tail.iter().any(|l| l.text.contains(needle))
    }

    /// The last non-empty lines, joined, for an error message.
    pub fn summary(&self, lines: usize) -> String {
        let texts: Vec<&str> = self
            .tail
            .iter()
            .map(|l| l.text.trim())
            .filter(|t| !t.is_empty())
            .collect();
        texts[texts.len().saturating_sub(lines)..].join(" | ")
    }
}

impl Finished {
    /// What the command printed on stdout (its last lines), joined by newlines.
    pub fn stdout(&self) -> String {
        self.tail
            .iter()
            .filter(|l| l.channel == Channel::Stdout)
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads a finished bench call the way Frappe reports: exit 0 is success, exit 2 a
    /// usage error, exit 1 anything else, told apart by its message.
    pub fn verdict(&self, command: &str) -> Result<(), Failure> {
        if self.exit_code == 0 {
            return Ok(());
        }
        // The last line is the exception (or bench's message); the traceback above it is noise here.
        let detail = self.summary(1);
        let permanent = |code, message: String| {
            Err(Failure {
                code,
                message,
                permanent: true,
            })
        };
        if self.exit_code == 2 {
            return permanent(
                "bench_usage",
                format!("`{command}` was refused by bench: {detail}"),
            );
        }
        if self.mentions("Could not find app") {
            return permanent("app_not_found", format!("{detail} (check FRAPPE_APPS)"));
        }
        if self.mentions("Access denied for user") {
            return permanent(
                "database_access_denied",
                format!("bench could not log in to the tenant database: {detail}"),
            );
        }
        if self.mentions("You should not run this command as root") {
            return permanent(
                "bench_as_root",
                "bench refuses to run as root: run it as the bench user (frappe_user)".into(),
            );
        }
        if self.mentions("Aborted!") {
            return permanent(
                "bench_prompted",
                format!("`{command}` asked a question without a terminal and aborted"),
            );
        }
        if self.mentions("does not exist!") {
            return permanent("site_missing", detail);
        }
        Err(Failure {
            code: "bench_error",
            message: format!("`{command}` failed (exit {}): {detail}", self.exit_code),
            permanent: false,
        })
    }
}

/// A failed bench call, classified: `permanent` when retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Machine-readable code.
    pub code: &'static str,
    /// For people; scrubbed of secrets.
    pub message: String,
    /// Whether retrying cannot help.
    pub permanent: bool,
}

/// Why a command could not run to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It ran past its timeout and was killed.
    #[error("`{command}` did not finish within {}s and was killed", timeout.as_secs())]
    TimedOut {
        /// The command, secrets hidden.
        command: String,
        /// The timeout.
        timeout: Duration,
    },
    /// It could not be started: program missing, Docker engine unreachable, container
    /// missing or stopped, exec refused.
    #[error("`{command}` could not be started: {reason}")]
    NotStarted {
        /// The command, secrets hidden.
        command: String,
        /// Machine-readable cause, such as `docker_unreachable`.
        code: &'static str,
        /// Why, with what to do about it.
        reason: String,
        /// Whether retrying cannot help (a missing container) as opposed to a restart
        /// that may be over soon (the engine or the container restarting).
        permanent: bool,
    },
    /// The driver lost the process (killed by a signal, container stopped, ...).
    #[error("`{command}` ended abnormally: {reason}")]
    Lost {
        /// The command, secrets hidden.
        command: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Machine-readable cause, for the step's failure report.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TimedOut { .. } => "bench_timed_out",
            Self::NotStarted { code, .. } => code,
            Self::Lost { .. } => "bench_lost",
        }
    }

    /// Whether retrying the command cannot help. A lost or timed-out command may
    /// succeed next time (the step's own idempotence deals with its residue).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::NotStarted {
                permanent: true,
                ..
            }
        )
    }
}

/// `BENCH_OWNER=<owner>`, the environment entry that marks the owner's processes.
pub fn owner_variable(owner: &str) -> String {
    format!("{OWNER_VARIABLE}={owner}")
}

/// Runs commands in a bench's environment.
pub trait Bench: Send + Sync + 'static {
    /// Runs `command` in the bench folder, sends each output line to `lines` as it
    /// comes, and returns the exit code. Kills it after `timeout`.
    fn run(
        &self,
        command: &CommandLine,
        timeout: Duration,
        lines: mpsc::UnboundedSender<Line>,
    ) -> impl Future<Output = Result<Finished, Error>> + Send;

    /// Waits until the cleanup of runs dropped by their callers is over (the Docker
    /// driver kills their processes in the background); called before the service
    /// exits, so that stopping it leaves no bench running. Nothing to wait for locally:
    /// a dropped local run kills its process group at once.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Whether commands can run now (the bench folder is there; the Docker engine
    /// answers and the container runs), for readiness probes. `Err` says why not.
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// SIGKILLs every process, of the bench's user where bench runs, that carries
    /// `owner`'s tag ([`CommandLine::owned_by`]), with the children they forked, and
    /// returns how many there were. Whatever a service killed mid-command (SIGKILL, OOM,
    /// a lost node) left running is found this way by the next attempt.
    fn stop_owned(&self, owner: &str) -> impl Future<Output = Result<usize, Error>> + Send;
}

/// The driver `BENCH_DRIVER` names; the steps do not know which one runs.
#[derive(Debug, Clone)]
pub enum Driver {
    /// `local`.
    Local(local::LocalBench),
    /// `docker`.
    Docker(docker::DockerBench),
}

impl Driver {
    /// The driver the settings ask for, read through `lookup` (the environment in
    /// production): `BENCH_DRIVER` (`local` or `docker`), `BENCH_BIN` (default
    /// `bench`), `BENCH_PATH` (default `/home/frappe/frappe-bench`); for `docker` also
    /// `DOCKER_HOST`, `BENCH_CONTAINER` (default `frappe-backend`) or
    /// `BENCH_COMPOSE_PROJECT` (wins when set), `BENCH_USER` (default `frappe`); for
    /// `local` also `BENCH_ENV_PASS` (variables bench gets beyond the allow-list of
    /// [`environment`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let bench_bin = lookup("BENCH_BIN").unwrap_or_else(|| "bench".into());
        let bench_path = lookup("BENCH_PATH").unwrap_or_else(|| "/home/frappe/frappe-bench".into());
        let driver = lookup("BENCH_DRIVER").unwrap_or_else(|| "local".into());
        match driver.as_str() {
            "local" => {
                let env_pass =
                    environment::EnvPass::parse(&lookup("BENCH_ENV_PASS").unwrap_or_default())
                        .map_err(|e| e.to_string())?;
                Ok(Self::Local(
                    local::LocalBench::new(bench_bin, bench_path).passing(env_pass),
                ))
            }
            "docker" => {
                let target = match lookup("BENCH_COMPOSE_PROJECT").filter(|p| !p.is_empty()) {
                    Some(project) => docker::Target::ComposeProject(project),
                    None => docker::Target::Container(
                        lookup("BENCH_CONTAINER").unwrap_or_else(|| "frappe-backend".into()),
                    ),
                };
                docker::DockerBench::new(docker::DockerSettings {
                    host: lookup("DOCKER_HOST").filter(|h| !h.is_empty()),
                    target,
                    user: lookup("BENCH_USER").unwrap_or_else(|| "frappe".into()),
                    bench_bin,
                    bench_path,
                })
                .map(Self::Docker)
            }
            other => Err(format!(
                "BENCH_DRIVER={other:?} is not a driver: use \"local\" or \"docker\""
            )),
        }
    }
}

impl Bench for Driver {
    async fn run(
        &self,
        command: &CommandLine,
        timeout: Duration,
        lines: mpsc::UnboundedSender<Line>,
    ) -> Result<Finished, Error> {
        match self {
            Self::Local(bench) => bench.run(command, timeout, lines).await,
            Self::Docker(bench) => bench.run(command, timeout, lines).await,
        }
    }

    async fn settle(&self) {
        match self {
            Self::Local(bench) => bench.settle().await,
            Self::Docker(bench) => bench.settle().await,
        }
    }

    async fn check(&self) -> Result<(), String> {
        match self {
            Self::Local(bench) => bench.check().await,
            Self::Docker(bench) => bench.check().await,
        }
    }

    async fn stop_owned(&self, owner: &str) -> Result<usize, Error> {
        match self {
            Self::Local(bench) => bench.stop_owned(owner).await,
            Self::Docker(bench) => bench.stop_owned(owner).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_reach_the_process_but_never_the_display() {
        let password = SecretString::from("Sup3rSecret");
        let command =
            CommandLine::bench(["new-site", "a.localhost"]).secret("--admin-password", &password);
        assert_eq!(command.program(), "bench");
        assert_eq!(
            command.expose_args(),
            ["new-site", "a.localhost", "--admin-password", "Sup3rSecret"]
        );
        assert_eq!(
            command.to_string(),
            "bench new-site a.localhost --admin-password ***"
        );
        assert_eq!(
            command.scrub("echo Sup3rSecret twice Sup3rSecret"),
            "echo *** twice ***"
        );
        assert!(!format!("{command:?}").contains("Sup3rSecret"));
    }
}
