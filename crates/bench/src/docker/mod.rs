//! `BENCH_DRIVER=docker`: bench exec'd in the Frappe backend container through the
//! Docker Engine API, the way an operator runs `docker compose exec backend bench ...`.
//! A timeout, or a run dropped by its caller, kills the command inside the container
//! with its children ([`kill`]): nothing of bench keeps running.

mod kill;

use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerState, ContainerStateStatusEnum};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::{mpsc, OnceCell};
use tokio_util::task::TaskTracker;

use crate::output::LineSink;
use crate::{Bench, Channel, CommandLine, Error, Finished, Line};
use kill::KillGuard;

/// Which container runs bench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `BENCH_CONTAINER`: a container name or id.
    Container(String),
    /// `BENCH_COMPOSE_PROJECT`: the container of service `backend` in that compose
    /// project (labels `com.docker.compose.project` and `com.docker.compose.service`),
    /// found anew for every command, so a recreated container is picked up.
    ComposeProject(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Container(name) => write!(f, "container {name:?}"),
            Self::ComposeProject(project) => {
                write!(f, "the backend container of compose project {project:?}")
            }
        }
    }
}

/// Settings of the Docker driver.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// `DOCKER_HOST` (`unix:///path`, `tcp://host:port`); `None` = the default socket,
    /// as the docker CLI does.
    pub host: Option<String>,
    /// The container.
    pub target: Target,
    /// `BENCH_USER`: who runs bench in the container (`frappe` in frappe_docker).
    pub user: String,
    /// `BENCH_BIN`: the program run for `bench`.
    pub bench_bin: String,
    /// `BENCH_PATH`: the working directory, the bench folder in the container.
    pub bench_path: String,
}

/// Runs commands in a container through the Docker Engine API.
#[derive(Debug, Clone)]
pub struct DockerBench {
    /// The client speaking the engine's API version, once the engine answered.
    client: Arc<OnceCell<Docker>>,
    settings: DockerSettings,
    /// Kills of dropped runs still going on.
    kills: TaskTracker,
}

/// The variables the exec adds to the container's own environment: its kill marker
/// and the owner tag, nothing of the step service's environment (which holds
/// `SAGA_SECRETS_KEY`): bench in the container sees what the container was given.
fn exec_environment(marker: &str, command: &CommandLine) -> Vec<String> {
    let mut env = vec![marker.to_string()];
    env.extend(command.owner().map(crate::owner_variable));
    env
}

/// A container found running.
struct Running {
    id: String,
    started_at: Option<String>,
}

impl DockerBench {
    /// A driver for `settings`. Connects lazily: an engine that is down now (its
    /// socket not even there yet) only fails the commands run while it is down.
    pub fn new(settings: DockerSettings) -> Result<Self, String> {
        if let Some(host) = &settings.host {
            if !["unix://", "tcp://", "http://"]
                .iter()
                .any(|scheme| host.starts_with(scheme))
            {
                return Err(format!(
                    "DOCKER_HOST={host:?} is not usable: expected unix:///path or tcp://host:port"
                ));
            }
        }
        Ok(Self {
            client: Arc::new(OnceCell::new()),
            settings,
            kills: TaskTracker::new(),
        })
    }

    fn host(&self) -> &str {
        self.settings
            .host
            .as_deref()
            .unwrap_or("unix:///var/run/docker.sock")
    }

    /// The client, after agreeing on an API version with the engine (an older engine
    /// such as Debian's 20.10 refuses requests in a newer version).
    async fn docker(&self, command: &str) -> Result<&Docker, Error> {
        self.client
            .get_or_try_init(|| async {
                let docker = match &self.settings.host {
                    Some(host) => Docker::connect_with_host(host),
                    None => Docker::connect_with_local_defaults(),
                }?;
                docker.negotiate_version().await
            })
            .await
            .map_err(|e| self.engine_error(command, &e))
    }

    /// The engine could not be asked (it is down, restarting, or its socket is not
    /// where the settings say), or it failed on its side. Retrying may help.
    fn engine_error(&self, command: &str, error: &DockerError) -> Error {
        let (code, reason) = match error {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => (
                "docker_error",
                format!("the Docker engine answered {status_code}: {message}"),
            ),
            other => {
                let cause = causes(other);
                let hint = if cause.to_ascii_lowercase().contains("permission denied") {
                    "the service's user may not use the socket: give it the socket's group (compose: group_add with DOCKER_GID)"
                } else {
                    "is dockerd running and its socket mounted?"
                };
                (
                    "docker_unreachable",
                    format!(
                        "the Docker engine at {} cannot be reached ({cause}); {hint}",
                        self.host()
                    ),
                )
            }
        };
        Error::NotStarted {
            command: command.into(),
            code,
            reason,
            permanent: false,
        }
    }

    fn not_started(command: &str, code: &'static str, reason: String, permanent: bool) -> Error {
        Error::NotStarted {
            command: command.into(),
            code,
            reason,
            permanent,
        }
    }

    /// Finds the container and checks that it runs.
    async fn running(&self, docker: &Docker, command: &str) -> Result<Running, Error> {
        let target = &self.settings.target;
        let (id, state) = match target {
            Target::Container(name) => {
                match docker
                    .inspect_container(name, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(found) => (found.id.unwrap_or_else(|| name.clone()), found.state),
                    Err(DockerError::DockerResponseServerError {
                        status_code: 404, ..
                    }) => {
                        return Err(Self::not_started(
                            command,
                            "container_missing",
                            format!("there is no {target} (check BENCH_CONTAINER)"),
                            true,
                        ))
                    }
                    Err(e) => return Err(self.engine_error(command, &e)),
                }
            }
            Target::ComposeProject(project) => {
                let id = self.compose_backend(docker, project, command).await?;
                let found = docker
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await
                    .map_err(|e| self.engine_error(command, &e))?;
                (id, found.state)
            }
        };
        let state = state.unwrap_or_default();
        match state.status {
            Some(ContainerStateStatusEnum::RUNNING) if state.paused != Some(true) => Ok(Running {
                id,
                started_at: state.started_at,
            }),
            Some(ContainerStateStatusEnum::RESTARTING) => Err(Self::not_started(
                command,
                "container_restarting",
                format!("{target} is restarting; try again when it runs"),
                false,
            )),
            _ => Err(Self::not_started(
                command,
                "container_stopped",
                format!(
                    "{target} is {}: start it (docker compose start backend)",
                    describe(&state)
                ),
                true,
            )),
        }
    }

    /// The id of the compose project's `backend` container, a running one first.
    async fn compose_backend(
        &self,
        docker: &Docker,
        project: &str,
        command: &str,
    ) -> Result<String, Error> {
        let filters = [(
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={project}"),
                "com.docker.compose.service=backend".to_string(),
            ],
        )]
        .into_iter()
        .collect();
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let mut found = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.engine_error(command, &e))?;
        found.sort_by_key(|c| c.state != Some(bollard::models::ContainerSummaryStateEnum::RUNNING));
        found.into_iter().find_map(|c| c.id).ok_or_else(|| {
            Self::not_started(
                command,
                "container_missing",
                format!(
                    "there is no container of service backend in compose project {project:?} (check BENCH_COMPOSE_PROJECT)"
                ),
                true,
            )
        })
    }
}

/// An error with its causes (hyper hides "Permission denied" two levels down).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Whether the engine, not the command, ended the exec: it prints its reason as the
/// only output and exits 126 (cannot run) or 127 (not found). Frappe exits 0, 1 or 2.
fn exec_refused(finished: &Finished) -> bool {
    const ENGINE_SAYS: [&str; 3] = [
        "OCI runtime exec failed",
        "unable to find user",
        "exec failed",
    ];
    matches!(finished.exit_code, 126 | 127) && ENGINE_SAYS.iter().any(|m| finished.mentions(m))
}

/// A container state for people: `exited (137)`, `paused`, ...
fn describe(state: &ContainerState) -> String {
    match (&state.status, state.exit_code) {
        (Some(ContainerStateStatusEnum::EXITED), Some(code)) => format!("exited ({code})"),
        (_, _) if state.paused == Some(true) => "paused".into(),
        (Some(status), _) => status.to_string(),
        (None, _) => "in an unknown state".into(),
    }
}

/// The output of an attached exec.
type Output = std::pin::Pin<Box<dyn futures::Stream<Item = Result<LogOutput, DockerError>> + Send>>;

/// An exec started and attached.
struct Started {
    exec_id: String,
    container: Running,
    output: Output,
    guard: KillGuard,
}

impl DockerBench {
    /// Creates and starts the exec of `command` in the running container: as
    /// `BENCH_USER`, in `BENCH_PATH`, no TTY, no stdin, marked for [`kill`].
    async fn start(
        &self,
        docker: &Docker,
        command: &CommandLine,
        shown: &str,
    ) -> Result<Started, Error> {
        let container = self.running(docker, shown).await?;
        let program = if command.program() == "bench" {
            self.settings.bench_bin.clone()
        } else {
            command.program().to_string()
        };
        let mut argv = vec![program];
        argv.extend(command.expose_args());
        let marker = format!("BENCH_EXEC_ID={}", uuid::Uuid::new_v4().simple());
        let options = CreateExecOptions {
            cmd: Some(argv),
            env: Some(exec_environment(&marker, command)),
            user: Some(self.settings.user.clone()),
            working_dir: Some(self.settings.bench_path.clone()),
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec = match docker.create_exec(&container.id, options).await {
            Ok(exec) => exec,
            // The container went away, stopped or was paused since we looked.
            Err(DockerError::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {
                return Err(self
                    .running(docker, shown)
                    .await
                    .err()
                    .unwrap_or_else(|| self.lost(shown, "the container refused the exec")))
            }
            Err(e) => return Err(self.engine_error(shown, &e)),
        };
        let attach = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: Some(64 * 1024),
        };
        let output = match docker.start_exec(&exec.id, Some(attach)).await {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => {
                return Err(self.lost(shown, "the engine did not attach the output"))
            }
            Err(e) => return Err(self.engine_error(shown, &e)),
        };
        tracing::debug!(command = %shown, container = %container.id, "bench command started in the container");
        let guard = KillGuard {
            kills: self.kills.clone(),
            docker: docker.clone(),
            container: container.id.clone(),
            user: self.settings.user.clone(),
            marker,
            armed: true,
        };
        Ok(Started {
            exec_id: exec.id,
            container,
            output,
            guard,
        })
    }

    /// Reads how an exec whose output ended finished: its exit code, unless the
    /// container went down under it or the engine lost the stream.
    async fn conclude(
        &self,
        docker: &Docker,
        shown: &str,
        started: Started,
        cut: Option<DockerError>,
        tail: Vec<Line>,
    ) -> Result<Finished, Error> {
        let Started {
            exec_id,
            container,
            mut guard,
            ..
        } = started;
        match self.running(docker, shown).await {
            Ok(now) if now.id == container.id && now.started_at == container.started_at => {}
            Ok(_) => {
                guard.armed = false;
                return Err(self.lost(shown, "the container restarted while it ran"));
            }
            Err(Error::NotStarted { reason, .. }) => {
                guard.armed = false;
                return Err(self.lost(shown, &format!("cut off, {reason}")));
            }
            Err(other) => return Err(other),
        }
        let inspected = docker
            .inspect_exec(&exec_id)
            .await
            .map_err(|e| self.engine_error(shown, &e))?;
        if inspected.running == Some(true) {
            // The stream broke but the command runs on: nobody would read its output.
            let reason =
                cut.map_or_else(|| "its output ended early".to_string(), |e| e.to_string());
            guard.kill_now().await;
            return Err(self.lost(shown, &format!("lost its output ({reason}) and was killed")));
        }
        guard.armed = false;
        let exit_code = inspected
            .exit_code
            .ok_or_else(|| self.lost(shown, "the engine reported no exit code"))?
            as i32;
        let finished = Finished { exit_code, tail };
        if exec_refused(&finished) {
            return Err(Self::not_started(
                shown,
                "exec_refused",
                format!(
                    "{target} refused the exec: {} (check BENCH_BIN, BENCH_PATH and BENCH_USER)",
                    finished.summary(1),
                    target = self.settings.target
                ),
                true,
            ));
        }
        Ok(finished)
    }

    fn lost(&self, command: &str, why: &str) -> Error {
        Error::Lost {
            command: command.into(),
            reason: format!("{}: {why}", self.settings.target),
        }
    }
}

/// Feeds an exec's output to `sink` until it ends; returns the error that cut it short.
async fn pump(output: &mut Output, sink: &mut LineSink) -> Option<DockerError> {
    while let Some(item) = output.next().await {
        match item {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                sink.feed(Channel::Stdout, &message)
            }
            Ok(LogOutput::StdErr { message }) => sink.feed(Channel::Stderr, &message),
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => return Some(e),
        }
    }
    None
}

impl Bench for DockerBench {
    async fn run(
        &self,
        command: &CommandLine,
        timeout: Duration,
        lines: mpsc::UnboundedSender<Line>,
    ) -> Result<Finished, Error> {
        let shown = command.to_string();
        let docker = self.docker(&shown).await?;
        let mut started = self.start(docker, command, &shown).await?;
        let mut sink = LineSink::new(command.clone(), lines);
        let Ok(cut) = tokio::time::timeout(timeout, pump(&mut started.output, &mut sink)).await
        else {
            started.guard.kill_now().await;
            return Err(Error::TimedOut {
                command: shown,
                timeout,
            });
        };
        self.conclude(docker, &shown, started, cut, sink.finish())
            .await
    }

    async fn settle(&self) {
        self.kills.close();
        if !self.kills.is_empty() {
            tracing::info!(
                kills = self.kills.len(),
                "waiting for abandoned commands to be killed"
            );
        }
        self.kills.wait().await;
        self.kills.reopen();
    }

    async fn stop_owned(&self, owner: &str) -> Result<usize, Error> {
        let shown = format!("stop the processes of {owner}");
        let docker = self.docker(&shown).await?;
        let container = self.running(docker, &shown).await?;
        let marker = crate::owner_variable(owner);
        let swept = kill::sweep(docker, &container.id, &self.settings.user, &marker);
        match tokio::time::timeout(Duration::from_secs(30), swept).await {
            Ok(Ok(killed)) => Ok(killed),
            Ok(Err(e)) => Err(self.engine_error(&shown, &e)),
            Err(_) => Err(self.lost(&shown, "the sweep did not finish within 30s")),
        }
    }

    async fn check(&self) -> Result<(), String> {
        // Finding the container running proves the engine answers as well.
        let found = match self.docker("check").await {
            Ok(docker) => self.running(docker, "check").await.map(|_| ()),
            Err(e) => Err(e),
        };
        found.map_err(|e| match e {
            Error::NotStarted { reason, .. } => reason,
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
