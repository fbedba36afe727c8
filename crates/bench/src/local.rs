//! `BENCH_DRIVER=local`: bench as a child process of the step service, with only the
//! variables of the service's environment that [`EnvPass`] lets through.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::environment::EnvPass;
use crate::output::LineSink;
use crate::{Bench, Channel, CommandLine, Error, Finished, Line};

/// Runs `BENCH_BIN` (for `bench`) or the named tool with working directory
/// `BENCH_PATH`, stdin closed, in its own process group so a timeout kills bench's
/// children too, in an environment cleared but for what [`EnvPass`] allows.
#[derive(Debug, Clone)]
pub struct LocalBench {
    bench_bin: String,
    bench_path: PathBuf,
    env_pass: EnvPass,
}

impl LocalBench {
    /// A driver for the bench at `bench_path`, run as `bench_bin`, passing bench the
    /// default allow-list of variables.
    pub fn new(bench_bin: impl Into<String>, bench_path: impl Into<PathBuf>) -> Self {
        Self {
            bench_bin: bench_bin.into(),
            bench_path: bench_path.into(),
            env_pass: EnvPass::default(),
        }
    }

    /// Passes bench the variables `env_pass` allows (`BENCH_ENV_PASS`).
    pub fn passing(mut self, env_pass: EnvPass) -> Self {
        self.env_pass = env_pass;
        self
    }

    /// [`Bench::run`] with bench's variables drawn from `service` (this process's
    /// environment in production, a made-up one in tests).
    async fn run_in(
        &self,
        command: &CommandLine,
        timeout: Duration,
        lines: mpsc::UnboundedSender<Line>,
        service: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Finished, Error> {
        let shown = command.to_string();
        let program = if command.program() == "bench" {
            self.bench_bin.as_str()
        } else {
            command.program()
        };
        let mut process = Command::new(program);
        // Nothing of the service's environment but what bench needs: the service holds
        // SAGA_SECRETS_KEY and other secrets there.
        process.env_clear().envs(self.env_pass.select(service));
        if let Some(owner) = command.owner() {
            process.env(crate::OWNER_VARIABLE, owner);
        }
        let mut child = process
            .args(command.expose_args())
            .current_dir(&self.bench_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::NotStarted {
                command: shown.clone(),
                code: "bench_unavailable",
                permanent: false,
                reason: format!(
                    "{e} (program {program:?}, folder {})",
                    self.bench_path.display()
                ),
            })?;
        let group = child.id().map(|id| Pid::from_raw(id as i32));
        // If this future is dropped (the step was cancelled or timed out higher up),
        // the whole process group goes with it: no orphan bench keeps running.
        let mut guard = GroupGuard(group);
        let stdout = child
            .stdout
            .take()
            .map(|out| tokio::spawn(pump(out, Channel::Stdout, command.clone(), lines.clone())));
        let stderr = child
            .stderr
            .take()
            .map(|err| tokio::spawn(pump(err, Channel::Stderr, command.clone(), lines.clone())));
        tracing::debug!(command = %shown, "bench command started");

        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.map_err(|e| Error::Lost {
                command: shown.clone(),
                reason: e.to_string(),
            })?,
            Err(_) => {
                // The whole group: bench re-executes python, which may spawn more.
                if let Some(group) = group {
                    let _ = killpg(group, Signal::SIGKILL);
                }
                let _ = child.kill().await;
                return Err(Error::TimedOut {
                    command: shown,
                    timeout,
                });
            }
        };
        guard.0 = None;
        let mut tail = Vec::new();
        for pump in [stdout, stderr].into_iter().flatten() {
            tail.extend(pump.await.unwrap_or_default());
        }
        match status.code() {
            Some(exit_code) => Ok(Finished { exit_code, tail }),
            None => Err(Error::Lost {
                command: shown,
                reason: format!("killed by a signal ({status})"),
            }),
        }
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Reads `reader` to its end through a sink of its own; returns the tail.
async fn pump(
    mut reader: impl AsyncRead + Unpin,
    channel: Channel,
    command: CommandLine,
    lines: mpsc::UnboundedSender<Line>,
) -> Vec<Line> {
    let mut sink = LineSink::new(command, lines);
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => sink.feed(channel, &buffer[..n]),
        }
    }
    sink.finish()
}

/// SIGKILLs every process this service may signal whose environment holds `entry`
/// (`NAME=value`), in rounds so that children forked meanwhile go too; returns how many
/// processes it killed.
fn kill_tagged(entry: &str) -> std::io::Result<usize> {
    let me = std::process::id();
    let mut killed = std::collections::HashSet::new();
    for _round in 0..5 {
        let mut found = false;
        for process in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = process
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Others' processes are unreadable, zombies have an empty environment.
            let Ok(environ) = std::fs::read(process.path().join("environ")) else {
                continue;
            };
            if pid != me
                && environ.split(|b| *b == 0).any(|e| e == entry.as_bytes())
                && nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
            {
                found = true;
                killed.insert(pid);
            }
        }
        if !found {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(killed.len())
}

impl Bench for LocalBench {
    async fn stop_owned(&self, owner: &str) -> Result<usize, Error> {
        let entry = crate::owner_variable(owner);
        let swept = tokio::task::spawn_blocking(move || kill_tagged(&entry)).await;
        match swept {
            Ok(Ok(killed)) => Ok(killed),
            Ok(Err(e)) => Err(Error::NotStarted {
                command: format!("stop the processes of {owner}"),
                code: "bench_unavailable",
                reason: format!("cannot list the processes in /proc: {e}"),
                permanent: false,
            }),
            Err(e) => Err(Error::Lost {
                command: format!("stop the processes of {owner}"),
                reason: e.to_string(),
            }),
        }
    }

    async fn check(&self) -> Result<(), String> {
        match tokio::fs::metadata(&self.bench_path).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            _ => Err(format!(
                "the bench folder {} is missing (BENCH_PATH)",
                self.bench_path.display()
            )),
        }
    }

    async fn run(
        &self,
        command: &CommandLine,
        timeout: Duration,
        lines: mpsc::UnboundedSender<Line>,
    ) -> Result<Finished, Error> {
        let service = std::env::vars_os().collect();
        self.run_in(command, timeout, lines, service).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets::SecretString;

    fn collect(mut rx: mpsc::UnboundedReceiver<Line>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = rx.try_recv() {
            out.push(line.text);
        }
        out
    }

    #[tokio::test]
    async fn streams_lines_split_on_carriage_returns_and_scrubs_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bench = LocalBench::new("bench", dir.path());
        let secret = SecretString::from("hunter22");
        let command = CommandLine::new("sh")
            .args(["-c", r#"printf 'Updating [==  ] 10%%\rUpdating [====] 100%%\n'; echo "pw=$2" >&2; pwd; exit 3"#, "sh"])
            .secret("--password", &secret);
        let (tx, rx) = mpsc::unbounded_channel();
        let finished = bench
            .run(&command, Duration::from_secs(10), tx)
            .await
            .expect("runs");
        assert_eq!(finished.exit_code, 3);
        let lines = collect(rx);
        assert!(
            lines.contains(&"Updating [==  ] 10%".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"Updating [====] 100%".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"pw=***".to_string()), "{lines:?}");
        assert!(
            lines.iter().any(|l| l.ends_with(
                &dir.path()
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .to_string()
            )),
            "runs in the bench folder: {lines:?}"
        );
        assert!(finished.mentions("pw=***"));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("survived");
        let bench = LocalBench::new("bench", dir.path());
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let command = CommandLine::new("sh").args(["-c", &script]);
        let (tx, _rx) = mpsc::unbounded_channel();
        let started = std::time::Instant::now();
        let error = bench
            .run(&command, Duration::from_millis(300), tx)
            .await
            .expect_err("times out");
        assert!(matches!(error, Error::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !marker.exists(),
            "a child of the killed command kept running"
        );
    }

    /// A process (and its child) tagged as `owner`'s, started outside the driver the
    /// way a dead service's bench lives on.
    fn orphan(owner: &str) -> std::process::Child {
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & wait"])
            .env(crate::OWNER_VARIABLE, owner)
            .spawn()
            .expect("sh");
        // Both processes exist before the test goes on: the shell has forked its sleep.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&children)
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            assert!(std::time::Instant::now() < deadline, "sh never forked");
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    fn alive(child: &mut std::process::Child) -> bool {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().expect("wait").is_none()
    }

    #[tokio::test]
    async fn stop_owned_kills_the_owners_processes_and_no_one_elses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bench = LocalBench::new("bench", dir.path());
        let owner = format!("{}/site", uuid::Uuid::new_v4());
        let other = format!("{}/site", uuid::Uuid::new_v4());
        let (mut left_behind, mut someone_elses) = (orphan(&owner), orphan(&other));

        let killed = bench.stop_owned(&owner).await.expect("swept");
        assert_eq!(killed, 2, "the shell and its background sleep");
        assert!(!alive(&mut left_behind), "the owner's process survived");
        assert!(
            alive(&mut someone_elses),
            "another owner's process was killed"
        );
        assert_eq!(bench.stop_owned(&owner).await.expect("swept"), 0);

        assert_eq!(bench.stop_owned(&other).await.expect("swept"), 2);
        assert!(!alive(&mut someone_elses));
    }

    #[tokio::test]
    async fn an_owned_command_carries_its_tag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bench = LocalBench::new("bench", dir.path());
        let (tx, _rx) = mpsc::unbounded_channel();
        let printed = |command: CommandLine| {
            let (bench, tx) = (bench.clone(), tx.clone());
            async move {
                bench
                    .run(&command, Duration::from_secs(5), tx)
                    .await
                    .expect("runs")
                    .stdout()
            }
        };
        let echo = CommandLine::new("sh").args(["-c", "echo \"[$BENCH_OWNER]\""]);
        assert_eq!(printed(echo.clone().owned_by("s1/site")).await, "[s1/site]");
        assert_eq!(printed(echo).await, "[]", "untagged");
    }

    /// The variables a command saw, read from its `env -0`.
    fn environment_of(finished: &Finished) -> std::collections::BTreeMap<String, String> {
        finished
            .stdout()
            .split('\0')
            .filter_map(|entry| entry.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn bench_gets_only_the_allowed_part_of_the_service_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = std::env::var("PATH").expect("PATH");
        let service: Vec<_> = [
            ("PATH", path.as_str()),
            ("HOME", "/home/frappe"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("TZ", "UTC"),
            ("PYTHONUNBUFFERED", "1"),
            ("SAGA_SECRETS_KEY", "Sealing-Key-0001"),
            ("MASTER_API_SECRET", "Master-Secret-0002"),
            (
                "TENANT_DB_ADMIN_URL",
                "mysql://root:Db-Admin-Pw-0003@db:3306",
            ),
            ("SAGA_STORE_URL", "mysql://saga:Store-Pw-0004@db/saga"),
            ("NATS_URL", "nats://svc:Nats-Pw-0005@nats:4222"),
            ("FRAPPE_DB_PASSWORD", "Frappe-Db-Pw-0006"),
            ("FRAPPE_REDIS_CACHE", "redis://cache:6379"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let extra = EnvPass::parse("FRAPPE_REDIS_CACHE").expect("names");
        let bench = LocalBench::new("bench", dir.path()).passing(extra);
        let (tx, _rx) = mpsc::unbounded_channel();
        let command = CommandLine::new("env").args(["-0"]).owned_by("s1/site");
        let finished = bench
            .run_in(&command, Duration::from_secs(5), tx, service)
            .await
            .expect("runs");
        let seen = environment_of(&finished);
        assert_eq!(
            seen.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "BENCH_OWNER",
                "FRAPPE_REDIS_CACHE",
                "HOME",
                "LANG",
                "LC_ALL",
                "PATH",
                "PYTHONUNBUFFERED",
                "TZ"
            ],
            "bench's whole environment"
        );
        assert_eq!(seen["HOME"], "/home/frappe");
        assert_eq!(seen["BENCH_OWNER"], "s1/site");
        for secret in [
            "Sealing-Key",
            "Master-Secret",
            "Db-Admin-Pw",
            "Store-Pw",
            "Nats-Pw",
        ] {
            assert!(!finished.mentions(secret), "{secret} reached bench");
        }
        assert!(
            !finished.mentions("Frappe-Db-Pw"),
            "FRAPPE_DB_* passed unasked"
        );
    }

    #[tokio::test]
    async fn bench_gets_nothing_else_of_this_process_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bench = LocalBench::new("bench", dir.path());
        let (tx, _rx) = mpsc::unbounded_channel();
        let finished = bench
            .run(
                &CommandLine::new("env").args(["-0"]),
                Duration::from_secs(5),
                tx,
            )
            .await
            .expect("runs");
        let seen = environment_of(&finished);
        let pass = EnvPass::default();
        assert!(seen.contains_key("PATH"), "{seen:?}");
        let leaked: Vec<_> = seen.keys().filter(|name| !pass.passes(name)).collect();
        assert!(leaked.is_empty(), "passed although not allowed: {leaked:?}");
    }

    #[test]
    fn bench_env_pass_is_read_and_checked() {
        let driver = |pass: &str| {
            crate::Driver::from_lookup(|k| (k == "BENCH_ENV_PASS").then(|| pass.to_string()))
        };
        match driver("FRAPPE_REDIS_CACHE, SSL_CERT_FILE").expect("driver") {
            crate::Driver::Local(bench) => {
                assert!(bench.env_pass.passes("SSL_CERT_FILE"));
                assert!(!bench.env_pass.passes("SAGA_SECRETS_KEY"));
            }
            crate::Driver::Docker(_) => panic!("local is the default"),
        }
        let error = driver("SAGA_SECRETS_KEY").expect_err("refused");
        assert_eq!(
            error,
            "BENCH_ENV_PASS may not pass SAGA_SECRETS_KEY to bench"
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_reported_not_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bench = LocalBench::new("/nonexistent/bench", dir.path());
        let (tx, _rx) = mpsc::unbounded_channel();
        let error = bench
            .run(&CommandLine::bench(["version"]), Duration::from_secs(5), tx)
            .await
            .expect_err("no program");
        assert!(matches!(error, Error::NotStarted { .. }), "{error}");
        assert!(error.to_string().contains("bench version"));
    }
}
