//! The worker loop: pull commands, run them with the step, report, ack.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, AckKind};
use chrono::Utc;
use contracts::{StepAction, StepCommand, StepEvent, StepReport, Subjects};
use futures::StreamExt;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{bus, health, RuntimeConfig, Step, StepContext, StepError};

/// Publishes a command's output lines and its final report.
#[derive(Clone)]
pub(crate) struct Reporter {
    js: jetstream::Context,
    subject: String,
    command: Arc<StepCommand>,
    /// This handling of the command, unique: an instance that takes over a command
    /// (after its first one died or released it) numbers its lines from 0 again, and
    /// they must not pass for the first one's. (The delivery count cannot tell them
    /// apart: NATS 2.9 redelivers a NAKed message with the same count.)
    handling: String,
    lines: Arc<AtomicU32>,
}

impl Reporter {
    fn event(&self, report: StepReport) -> StepEvent {
        StepEvent {
            command_id: self.command.command_id.clone(),
            saga_id: self.command.saga_id,
            run: self.command.run,
            step: self.command.step.clone(),
            action: self.command.action,
            attempt: self.command.attempt,
            report,
            at: Utc::now(),
        }
    }

    pub(crate) async fn output(&self, line: String, percent: Option<u8>) {
        let n = self.lines.fetch_add(1, Ordering::Relaxed);
        let event = self.event(StepReport::Output { line, percent });
        let msg_id = format!("{}:out:{}:{n}", self.command.command_id, self.handling);
        // Output is best effort: a lost line must not fail the step.
        if let Err(e) = self.publish(&msg_id, &event).await {
            tracing::warn!(error = %e, "could not publish an output line");
        }
    }

    async fn finish(&self, report: StepReport) -> anyhow::Result<()> {
        let event = self.event(report);
        let msg_id = format!("{}:done", self.command.command_id);
        let payload = serde_json::to_vec(&event).context("encoding the report")?;
        bus::publish_acked(&self.js, self.subject.clone(), &msg_id, payload.into()).await
    }

    async fn publish(&self, msg_id: &str, event: &StepEvent) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(event).context("encoding the report")?;
        bus::publish_once(&self.js, self.subject.clone(), msg_id, payload.into()).await?;
        Ok(())
    }
}

/// A command being run, so that a duplicate delivery is not run twice at once and an
/// undo can stop the effect it undoes first.
struct InFlight {
    command_id: String,
    action: StepAction,
    cancel: CancellationToken,
    done: watch::Receiver<bool>,
}

type InFlightMap = Arc<Mutex<HashMap<Uuid, InFlight>>>;

/// Why a run ended without a report.
enum Interrupted {
    /// The service is shutting down: release the command to another instance.
    Shutdown,
    /// An undo of the same saga arrived: the effect no longer matters.
    Superseded,
}

/// Serves `step` until `shutdown` is cancelled.
pub async fn run<S: Step>(
    step: S,
    config: RuntimeConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subjects = Subjects::new(&config.namespace);
    let name = step.name().to_string();
    let client = bus::connect(&config.nats_url, &format!("step-{name}")).await?;
    let step = Arc::new(step);
    let listener = health::bind(
        config
            .health_addr
            .unwrap_or_else(|| health::default_addr(&name)),
    )
    .await?;
    let probe = {
        let (step, client) = (step.clone(), client.clone());
        health::probe(move || {
            let (step, client) = (step.clone(), client.clone());
            async move {
                let mut checks = vec![health::Check::nats(&client)];
                checks.extend(step.readiness().await);
                checks
            }
        })
    };
    let health_server = health::serve(listener, probe, shutdown.clone());
    let js = jetstream::new(client);
    bus::ensure_streams(&js, &subjects).await?;
    let stream = js
        .get_stream(subjects.commands_stream())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("opening the command stream")?;
    let durable = subjects.consumer(&format!("step-{name}"));
    let consumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: subjects.step_command(&name),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_ack_pending: (config.concurrency * 2) as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("declaring the step consumer")?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("subscribing to step commands")?;
    tracing::info!(step = %name, concurrency = config.concurrency, "step service ready");

    let limit = Arc::new(Semaphore::new(config.concurrency));
    let in_flight: InFlightMap = Arc::default();
    let work_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let events_subject = subjects.step_event(&name);

    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => permit.context("semaphore closed")?,
        };
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            next = messages.next() => match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "error pulling commands");
                    continue;
                }
                None => anyhow::bail!("the command subscription ended"),
            },
        };
        let job = Job {
            step: step.clone(),
            js: js.clone(),
            subject: events_subject.clone(),
            key: config.secrets_key.clone(),
            in_flight: in_flight.clone(),
            stop: work_stop.clone(),
            heartbeat: config.ack_wait / 3,
        };
        tasks.spawn(async move {
            job.handle(message).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }

    tracing::info!(in_flight = tasks.len(), grace = ?config.shutdown_grace, "stopping: letting in-flight commands finish");
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = tasks.len(),
            "grace period over: releasing the remaining commands"
        );
        work_stop.cancel();
        while tasks.join_next().await.is_some() {}
    }
    step.drain().await;
    let _ = health_server.await;
    Ok(())
}

struct Job<S> {
    step: Arc<S>,
    js: jetstream::Context,
    subject: String,
    key: secrets::SecretsKey,
    in_flight: InFlightMap,
    stop: CancellationToken,
    heartbeat: Duration,
}

impl<S: Step> Job<S> {
    async fn handle(self, message: jetstream::Message) {
        let command: StepCommand = match serde_json::from_slice(&message.payload) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, subject = %message.subject, "malformed step command: terminated");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let span = tracing::info_span!(
            "command",
            saga_id = %command.saga_id,
            step = %command.step,
            action = command.action.as_str(),
            attempt = command.attempt
        );
        self.handle_command(message, command).instrument(span).await;
    }

    async fn handle_command(self, message: jetstream::Message, command: StepCommand) {
        if command.action == StepAction::Execute && command.deadline <= Utc::now() {
            tracing::info!("command past its deadline: skipped (the orchestrator has moved on)");
            let _ = message.ack().await;
            return;
        }
        let Some((cancel, done_tx)) = self.claim(&command).await else {
            tracing::info!("duplicate delivery of a command already running: acknowledged");
            let _ = message.ack().await;
            return;
        };

        let message = Arc::new(message);
        let heartbeat = {
            let message = message.clone();
            let every = self.heartbeat;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = message.ack_with(AckKind::Progress).await {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
            })
        };

        let command = Arc::new(command);
        let reporter = Reporter {
            js: self.js.clone(),
            subject: self.subject.clone(),
            command: command.clone(),
            handling: Uuid::new_v4().simple().to_string(),
            lines: Arc::default(),
        };
        let context = StepContext {
            key: self.key.clone(),
            reporter: reporter.clone(),
        };
        let started = std::time::Instant::now();
        let until_deadline = (command.deadline - Utc::now()).to_std().unwrap_or_default();
        let outcome = tokio::select! {
            () = self.stop.cancelled() => Err(Interrupted::Shutdown),
            () = cancel.cancelled() => Err(Interrupted::Superseded),
            result = tokio::time::timeout(until_deadline, self.perform(&command, &context)) => Ok(match result {
                Ok(report) => report,
                Err(_) => StepReport::Failed {
                    code: "step_timeout".into(),
                    message: format!("{} {} did not finish before its deadline", command.step, command.action.as_str()),
                    retryable: true,
                },
            }),
        };
        heartbeat.abort();
        match outcome {
            Ok(report) => {
                let elapsed_ms = started.elapsed().as_millis() as u64;
                match &report {
                    StepReport::Failed {
                        code,
                        message,
                        retryable,
                    } => {
                        tracing::warn!(%code, %message, retryable, elapsed_ms, "step failed")
                    }
                    _ => tracing::info!(elapsed_ms, "step done"),
                }
                match reporter.finish(report).await {
                    Ok(()) => {
                        let _ = message.ack().await;
                    }
                    Err(e) => {
                        // Unreported work is redone on redelivery; the step is idempotent.
                        tracing::warn!(error = %e, "could not report: command released for redelivery");
                        let _ = message
                            .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                            .await;
                    }
                }
            }
            Err(Interrupted::Shutdown) => {
                tracing::info!("released for another instance");
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
            Err(Interrupted::Superseded) => {
                tracing::info!("stopped: an undo for this saga arrived");
                let _ = message.ack().await;
            }
        }
        self.release(&command);
        let _ = done_tx.send(true);
    }

    async fn perform(&self, command: &StepCommand, context: &StepContext) -> StepReport {
        let result = match command.action {
            StepAction::Execute => self.step.execute(command, context).await,
            StepAction::Compensate => self
                .step
                .compensate(command, context)
                .await
                .map(|()| serde_json::Value::Null),
        };
        match result {
            Ok(output) => StepReport::Completed { output },
            Err(StepError::Transient { code, message }) => StepReport::Failed {
                code,
                message,
                retryable: true,
            },
            Err(StepError::Permanent { code, message }) => StepReport::Failed {
                code,
                message,
                retryable: false,
            },
        }
    }

    /// Registers the command as running. Returns `None` when the same command is
    /// already running. An undo first stops a running effect of the same saga.
    async fn claim(
        &self,
        command: &StepCommand,
    ) -> Option<(CancellationToken, watch::Sender<bool>)> {
        loop {
            let wait = {
                let mut map = self.in_flight.lock().expect("in-flight map poisoned");
                match map.get(&command.saga_id) {
                    Some(running) if running.command_id == command.command_id => return None,
                    Some(running) => {
                        if command.action == StepAction::Compensate
                            && running.action == StepAction::Execute
                        {
                            running.cancel.cancel();
                        }
                        running.done.clone()
                    }
                    None => {
                        let cancel = CancellationToken::new();
                        let (done_tx, done) = watch::channel(false);
                        map.insert(
                            command.saga_id,
                            InFlight {
                                command_id: command.command_id.clone(),
                                action: command.action,
                                cancel: cancel.clone(),
                                done,
                            },
                        );
                        return Some((cancel, done_tx));
                    }
                }
            };
            let mut wait = wait;
            let _ = wait.wait_for(|done| *done).await;
        }
    }

    fn release(&self, command: &StepCommand) {
        let mut map = self.in_flight.lock().expect("in-flight map poisoned");
        if map
            .get(&command.saga_id)
            .is_some_and(|r| r.command_id == command.command_id)
        {
            map.remove(&command.saga_id);
        }
    }
}
