//! `sagactl`, the operators' CLI, run as a process the way an operator runs it: over
//! NATS as a user of the deployment, or over the HTTP API with its token and secret,
//! from the environment only. Every run is written to `sagactl.txt` in the test's
//! log folder (command line and output, never the environment), which is where the
//! README's examples come from.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

use crate::http_api::{API_SECRET, READ_TOKEN};
use crate::Harness;

/// What a run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Standard output parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("sagactl's output is not the JSON expected ({e}): {self:#?}")
        })
    }
}

/// How `sagactl` reaches the orchestrator.
#[derive(Debug, Clone)]
pub enum Way {
    /// NATS, as this user of the deployment.
    Nats(&'static str),
    /// The HTTP API at this URL, with the read token and the write secret.
    Http(String),
}

/// Runs `sagactl` against a harness.
pub struct Sagactl {
    env: Vec<(String, String)>,
    transcript: PathBuf,
}

impl Sagactl {
    /// For `h`'s world: `NATS_URL`, the services' public key and `USER` are always
    /// set, the rest per [`Way`].
    pub fn new(h: &Harness) -> Self {
        let mut env = vec![
            ("NATS_URL".to_string(), h.nats.url()),
            ("SAGA_PUBLIC_KEY".to_string(), h.key.recipient().to_text()),
            ("USER".to_string(), "ops-ann".to_string()),
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
        ];
        // Kept aside (`password:<user>`), given only to the runs as that user.
        for user in ["operator", "web-app"] {
            let password = h
                .nats
                .env_for(user)
                .into_iter()
                .find(|(k, _)| k == "NATS_PASSWORD")
                .map(|(_, v)| v)
                .unwrap_or_default();
            env.push((format!("password:{user}"), password));
        }
        Self {
            env,
            transcript: h.logs.join("sagactl.txt"),
        }
    }

    fn command(&self, way: &Way, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(crate::binary("sagactl"));
        command.env_clear();
        for (key, value) in &self.env {
            if !key.starts_with("password:") {
                command.env(key, value);
            }
        }
        match way {
            Way::Nats(user) => {
                let password = self
                    .env
                    .iter()
                    .find(|(k, _)| *k == format!("password:{user}"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                command
                    .env("NATS_USER", user)
                    .env("NATS_PASSWORD", password);
            }
            Way::Http(url) => {
                command
                    .env("SAGACTL_API", url)
                    .env("PROVISIONING_READ_TOKEN", READ_TOKEN)
                    .env("PROVISIONING_API_SECRET", API_SECRET);
            }
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    fn note(&self, way: &Way, args: &[&str], ran: &Ran) {
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') || a.is_empty() {
                    format!("{a:?}")
                } else {
                    a.to_string()
                }
            })
            .collect();
        let via = match way {
            Way::Nats(user) => format!("NATS as {user}"),
            Way::Http(_) => "HTTP".into(),
        };
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.transcript)
        {
            let _ = writeln!(
                file,
                "# over {via}\n$ sagactl {}\n{}{}# exit {}\n",
                shown.join(" "),
                ran.stdout,
                ran.stderr,
                ran.code
            );
        }
    }

    /// Runs `sagactl args` the `way` given, to its end.
    pub async fn run(&self, way: &Way, args: &[&str]) -> Ran {
        self.run_with(way, &[], args).await
    }

    /// [`Sagactl::run`] with some variables set otherwise.
    pub async fn run_with(&self, way: &Way, env: &[(&str, &str)], args: &[&str]) -> Ran {
        let mut command = self.command(way, args);
        command.envs(env.iter().copied());
        let output = command.output().await.expect("sagactl runs");
        let ran = Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        self.note(way, args, &ran);
        ran
    }

    /// Starts `sagactl args` and returns once its output has a line starting with
    /// `first`: that line, and the run, to be awaited with [`Running::end`].
    pub async fn start(&self, way: &Way, args: &[&str], first: &str) -> (String, Running) {
        let mut child = self.command(way, args).spawn().expect("sagactl starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        let line = loop {
            let mut line = String::new();
            let read = stdout.read_line(&mut line).await.expect("read");
            seen.push_str(&line);
            if read == 0 {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr).await;
                }
                panic!("sagactl ended before printing {first:?}: {seen}{stderr}");
            }
            if line.starts_with(first) {
                break line.trim_end().to_string();
            }
        };
        let running = Running {
            child,
            stdout,
            seen,
            way: way.clone(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        (line, running)
    }

    /// Waits for a run [`Sagactl::start`] started.
    pub async fn end(&self, mut running: Running) -> Ran {
        let mut rest = String::new();
        running
            .stdout
            .read_to_string(&mut rest)
            .await
            .expect("read");
        let mut stderr = String::new();
        if let Some(mut err) = running.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr).await;
        }
        let status = running.child.wait().await.expect("sagactl ends");
        let ran = Ran {
            code: status.code().unwrap_or(-1),
            stdout: running.seen + &rest,
            stderr,
        };
        let args: Vec<&str> = running.args.iter().map(String::as_str).collect();
        self.note(&running.way, &args, &ran);
        ran
    }
}

/// A `sagactl` still running.
pub struct Running {
    child: tokio::process::Child,
    stdout: BufReader<tokio::process::ChildStdout>,
    seen: String,
    way: Way,
    args: Vec<String>,
}
