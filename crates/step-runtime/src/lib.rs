//! The step runtime: what every step service shares.
//!
//! A step service is a small implementation of [`Step`]; [`run`] owns the rest:
//! a durable pull consumer on `saga.cmd.<step>`, a concurrency limit, ack-progress
//! heartbeats while a long step runs, dedup of redelivered commands (running ones in
//! this instance; finished ones in a key-value bucket, answered with their stored
//! report), deadlines, reporting on `saga.evt.<step>`, dead letters for commands that
//! cannot be read or keep failing to be handled, the subdomain probe responder on
//! `saga.probe.<step>`, and graceful shutdown (in-flight work finishes within a grace
//! period, the rest is released to another instance).

pub mod bus;
mod counts;
pub mod exposition;
pub mod health;
mod job;
mod memory;
mod probe;
pub mod redact;
mod reporter;
pub mod telemetry;
mod worker;

use std::future::Future;
use std::time::Duration;

use contracts::{StepCommand, SubdomainProbe};
pub use worker::run;

/// Why a step did not complete. The variant decides the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Another attempt may succeed (a connection dropped, a lock timed out): the
    /// orchestrator retries with backoff while its policy allows.
    #[error("{code}: {message}")]
    Transient {
        /// Machine-readable code.
        code: String,
        /// A sentence for people, free of secrets.
        message: String,
    },
    /// Retrying cannot help (a conflicting database that is not ours, bad input): the
    /// saga compensates at once.
    #[error("{code}: {message}")]
    Permanent {
        /// Machine-readable code.
        code: String,
        /// A sentence for people, free of secrets.
        message: String,
    },
}

impl StepError {
    /// A failure worth another attempt.
    pub fn transient(code: &str, message: impl Into<String>) -> Self {
        Self::Transient {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A failure whose policy is decided elsewhere (an adapter's error that knows
    /// whether retrying can help).
    pub fn new(permanent: bool, code: &str, message: impl Into<String>) -> Self {
        if permanent {
            Self::permanent(code, message)
        } else {
            Self::transient(code, message)
        }
    }

    /// A failure no retry can mend.
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What a step can use while it runs.
#[derive(Clone)]
pub struct StepContext {
    key: secrets::Keyring,
    reporter: Option<reporter::Reporter>,
}

impl StepContext {
    /// A context outside the runtime (tests, tools): output lines are only logged.
    pub fn standalone(key: secrets::Keyring) -> Self {
        Self {
            key,
            reporter: None,
        }
    }

    /// The services' keyring: opens sealed secrets in the command, seals secrets in
    /// outputs (each bound to its saga and field).
    pub fn secrets(&self) -> &secrets::Keyring {
        &self.key
    }

    /// Reports a line of progress (shown on the saga's progress subject). The line
    /// must not contain secrets. `percent` is progress within this step, when known.
    pub async fn output(&self, line: impl Into<String>, percent: Option<u8>) {
        match &self.reporter {
            Some(reporter) => reporter.output(line.into(), percent).await,
            None => tracing::info!(line = %line.into(), ?percent, "step output"),
        }
    }
}

/// One step of the saga, served by its own service.
///
/// Both methods must be idempotent: a command can be delivered more than once (after a
/// crash, a redelivery, a replayed transition) and must then find its own work done.
pub trait Step: Send + Sync + 'static {
    /// The step's name in the saga definition, such as `database`.
    fn name(&self) -> &str;

    /// Makes the step's effect; returns what later steps and the undo need (secrets
    /// sealed with [`StepContext::secrets`]).
    fn execute(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> impl Future<Output = Result<serde_json::Value, StepError>> + Send;

    /// Undoes the effect, and only what this saga made. Must succeed when there is
    /// nothing to undo.
    fn compensate(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Called once on shutdown, after the last command ended or was released: waits
    /// for cleanup the step started in the background (the Docker bench driver's kills
    /// of abandoned commands). Nothing by default.
    fn drain(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Whether what the step works with answers now (MariaDB, the bench, ...), for
    /// `/readyz`; the runtime adds NATS. Nothing by default.
    fn readiness(&self) -> impl Future<Output = Vec<health::Check>> + Send {
        async { Vec::new() }
    }

    /// Whether something this step sees holds `probe`'s subdomain (a registered
    /// tenant, a site folder): `Some(reason)`, a short phrase for people, when held.
    /// Answers `saga.probe.<step>`; an error means the step could not tell. Not held by
    /// default. The orchestrator asks only the steps its saga definition marks
    /// `sees_subdomains` (site and registration): a step that starts to see subdomains
    /// needs that mark too.
    fn holds(
        &self,
        probe: &SubdomainProbe,
    ) -> impl Future<Output = Result<Option<String>, StepError>> + Send {
        let _ = probe;
        async { Ok(None) }
    }
}

/// How the runtime runs a step service.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `NATS_URL`, `NATS_STREAM_REPLICAS`, the credentials.
    pub nats: bus::NatsConfig,
    /// `NATS_NAMESPACE`: prefix of subjects and streams (empty in production).
    pub namespace: String,
    /// Commands run at once (`STEP_CONCURRENCY`).
    pub concurrency: usize,
    /// How long JetStream waits for an ack before redelivering; heartbeats extend it.
    pub ack_wait: Duration,
    /// On shutdown, how long in-flight commands may take before they are released.
    pub shutdown_grace: Duration,
    /// `SAGA_SECRETS_KEYS` (and the legacy `SAGA_SECRETS_KEY`).
    pub secrets_key: secrets::Keyring,
    /// `HEALTH_ADDR`: where `/healthz` and `/readyz` answer; `None` = the step's
    /// default port ([`health::default_addr`]).
    pub health_addr: Option<std::net::SocketAddr>,
    /// `STEP_MAX_DELIVER`: deliveries of one command at most; a command still not
    /// handled and reported at the last one goes to `saga.dead_letter.<step>`.
    pub max_deliver: u32,
}

/// A lookup over fixed `(name, value)` pairs, in place of the environment: for tests
/// of the `from_lookup` configuration functions, and for tools that set a service's
/// settings themselves.
pub fn lookup_in<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    }
}

/// Runs a step service as a process: telemetry, settings from the environment, the
/// step built by `make` inside the Tokio runtime (adapters such as connection pools
/// need it), then [`run`] until SIGTERM or Ctrl-C. A failure to start or to run ends
/// the process with one line on stderr, its causes included, and a failure status.
pub fn serve_from_env<S, F, Fut>(make: F) -> std::process::ExitCode
where
    S: Step,
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<S>>,
{
    telemetry::init();
    exit_code(serve(make))
}

fn serve<S, F, Fut>(make: F) -> anyhow::Result<()>
where
    S: Step,
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<S>>,
{
    let config = config_from(|k| std::env::var(k).ok())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let step = make().await?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            telemetry::shutdown_signal().await;
            trigger.cancel();
        });
        run(step, config, shutdown).await
    })
}

/// A service process's exit: success, or `result`'s error on one line (what failed
/// and why, no backtrace) on stderr, prefixed with the program's name, and a failure
/// status.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    telemetry::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let program = std::env::args()
                .next()
                .and_then(|p| {
                    std::path::Path::new(&p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "service".into());
            eprintln!("{program}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Reads the runtime's settings through `lookup` (the environment in production), so
/// tests need no environment variables.
pub fn config_from(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<RuntimeConfig> {
    use anyhow::Context as _;
    let secrets_key = secrets::Keyring::from_lookup(&lookup)?;
    let number = |name: &str, default: u64| -> anyhow::Result<u64> {
        lookup(name)
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("{name} must be a whole number, got {v:?}"))
            })
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    Ok(RuntimeConfig {
        nats: bus::NatsConfig::from_lookup(&lookup)?,
        namespace: lookup("NATS_NAMESPACE").unwrap_or_default(),
        concurrency: number("STEP_CONCURRENCY", 8)?.max(1) as usize,
        ack_wait: Duration::from_secs(number("STEP_ACK_WAIT_SECS", 30)?.max(3)),
        shutdown_grace: Duration::from_secs(number("STEP_SHUTDOWN_GRACE_SECS", 20)?),
        secrets_key,
        health_addr: lookup("HEALTH_ADDR")
            .map(|v| {
                v.parse()
                    .with_context(|| format!("HEALTH_ADDR must be host:port, got {v:?}"))
            })
            .transpose()?,
        max_deliver: number("STEP_MAX_DELIVER", 10)?.clamp(1, 1000) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_keyring() -> String {
        use secrets::ExposeSecret;
        let id = secrets::KeyId::parse("test").expect("id");
        secrets::Keyring::generate_entry(&id)
            .expose_secret()
            .to_string()
    }

    #[test]
    fn config_defaults_and_errors() {
        let key = test_keyring();
        let config =
            config_from(|k| (k == "SAGA_SECRETS_KEYS").then(|| key.clone())).expect("config");
        assert_eq!(config.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(config.nats.stream_replicas, 1);
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.max_deliver, 10);
        assert!(config_from(|_| None).is_err(), "the key is required");
        let bad = config_from(|k| match k {
            "SAGA_SECRETS_KEYS" => Some(key.clone()),
            "STEP_CONCURRENCY" => Some("many".into()),
            _ => None,
        });
        assert!(bad
            .expect_err("bad number")
            .to_string()
            .contains("STEP_CONCURRENCY"));
    }

    #[test]
    fn the_config_debug_shows_no_secret() {
        // 32 bytes of 0xAB: neither the base64 nor the bytes (`171, 171`) may show.
        let key = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        let config = config_from(|k| match k {
            "SAGA_SECRETS_KEYS" => Some(format!("k1:{key}")),
            "SAGA_SECRETS_KEY" => Some(key.to_string()),
            _ => None,
        })
        .expect("config");
        let shown = format!("{config:?}");
        assert!(!shown.contains(key) && !shown.contains("171"), "{shown}");
        assert!(shown.contains("concurrency: 8"), "{shown}");
    }
}
