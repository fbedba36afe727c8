//! Killing an exec'd command with all its children. Docker has no call that signals an
//! exec'd process (and the pid it reports is the host's), so each exec carries an
//! environment marker (`BENCH_EXEC_ID=<uuid>`, and `BENCH_OWNER=<owner>` when the
//! command has one) that bench's children inherit; killing execs a small `sh` loop, as
//! the same user, that SIGKILLs every process of the container whose environment holds
//! the marker. It needs only `sh`, `tr`, `grep`, `kill` and `sleep`, which
//! frappe_docker's image has.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use futures::StreamExt;
use tokio_util::task::TaskTracker;

/// Kills every process of the container whose environment holds the marker `$1`,
/// in rounds, so children forked while the first round ran go too; prints how many
/// processes it killed.
const KILL_SCRIPT: &str = r#"killed=
for round in 1 2 3 4 5; do
  found=
  for p in /proc/[0-9]*; do
    if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "$1"; then
      pid=${p#/proc/}
      if kill -KILL "$pid" 2>/dev/null; then
        found=1
        case " $killed " in *" $pid "*) ;; *) killed="$killed $pid" ;; esac
      fi
    fi
  done
  [ -z "$found" ] && break
  sleep 0.2
done
set -- $killed
echo "$#""#;

/// SIGKILLs the exec'd command's processes when dropped while armed: a run that is
/// cancelled (its step undone, the service stopping) leaves no bench behind. The kill
/// runs on `kills`, which [`crate::Bench::settle`] waits for before the service exits.
pub(super) struct KillGuard {
    pub(super) kills: TaskTracker,
    pub(super) docker: Docker,
    pub(super) container: String,
    pub(super) user: String,
    pub(super) marker: String,
    pub(super) armed: bool,
}

impl KillGuard {
    pub(super) async fn kill_now(&mut self) {
        self.armed = false;
        kill_marked(&self.docker, &self.container, &self.user, &self.marker).await;
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (docker, container, user, marker) = (
                self.docker.clone(),
                self.container.clone(),
                self.user.clone(),
                self.marker.clone(),
            );
            self.kills.spawn_on(
                async move { kill_marked(&docker, &container, &user, &marker).await },
                &runtime,
            );
        }
    }
}

/// Execs [`KILL_SCRIPT`] in the container and waits for it; returns how many processes
/// it killed.
pub(super) async fn sweep(
    docker: &Docker,
    container: &str,
    user: &str,
    marker: &str,
) -> Result<usize, DockerError> {
    let options = CreateExecOptions {
        cmd: Some(vec!["sh", "-c", KILL_SCRIPT, "sh", marker]),
        user: Some(user),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = docker.create_exec(container, options).await?;
    let mut printed = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await?
    {
        while let Some(item) = output.next().await {
            if let LogOutput::StdOut { message } = item? {
                printed.push_str(&String::from_utf8_lossy(&message));
            }
        }
    }
    Ok(printed.trim().parse().unwrap_or(0))
}

/// [`sweep`] for a command's own processes, reporting trouble only in the log: the
/// command has already failed or been abandoned.
async fn kill_marked(docker: &Docker, container: &str, user: &str, marker: &str) {
    let outcome = sweep(docker, container, user, marker);
    match tokio::time::timeout(Duration::from_secs(30), outcome).await {
        Ok(Ok(killed)) => tracing::debug!(container, killed, "killed the command's processes"),
        Ok(Err(e)) => tracing::warn!(container, error = %e, "could not kill a command's processes"),
        Err(_) => tracing::warn!(container, "killing a command's processes did not finish"),
    }
}
