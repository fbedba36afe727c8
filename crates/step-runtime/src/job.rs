//! Handling one delivered command: read it, answer it from memory when it finished
//! before, else run it with the step (heartbeats, deadline, an undo stopping its
//! effect), remember and report the outcome, then ack. A command that cannot be read,
//! or is still not handled at its last allowed delivery, becomes a dead letter.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use contracts::step_dead_letter::StepDeadLetter;
use contracts::{StepAction, StepCommand, StepReport};
use futures::FutureExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::counts;
use crate::memory::{self, FinishedCommands};
use crate::reporter::Reporter;
use crate::{bus, Step, StepContext, StepError};

/// How long a command whose report could not be sent waits before its redelivery.
const REPORT_RETRY_DELAY: Duration = Duration::from_secs(2);

/// A command being run, so that a duplicate delivery is not run twice at once and an
/// undo can stop the effect it undoes first.
pub(crate) struct InFlight {
    command_id: String,
    action: StepAction,
    cancel: CancellationToken,
    done: watch::Receiver<bool>,
}

/// The commands running in this instance, by saga.
pub(crate) type InFlightMap = Arc<Mutex<HashMap<Uuid, InFlight>>>;

/// Why a run ended without a report.
enum Interrupted {
    /// The service is shutting down: release the command to another instance.
    Shutdown,
    /// An undo of the same saga arrived: the effect no longer matters.
    Superseded,
}

/// What becomes of the delivered message.
enum Settle {
    /// Handled: remove it.
    Ack,
    /// Deliver it again, after `delay` when given; at the last allowed delivery it
    /// becomes a dead letter for `reason` instead.
    Again {
        delay: Option<Duration>,
        reason: String,
    },
}

/// Everything one command's handling needs.
pub(crate) struct Job<S> {
    pub(crate) step: Arc<S>,
    pub(crate) js: jetstream::Context,
    /// `saga.evt.<step>`.
    pub(crate) subject: String,
    /// `saga.dead_letter.<step>`.
    pub(crate) dead_letters: String,
    pub(crate) key: secrets::Keyring,
    pub(crate) in_flight: InFlightMap,
    pub(crate) memory: FinishedCommands,
    pub(crate) stop: CancellationToken,
    pub(crate) heartbeat: Duration,
    pub(crate) max_deliver: u32,
}

impl<S: Step> Job<S> {
    pub(crate) async fn handle(self, message: jetstream::Message) {
        let deliveries = message
            .info()
            .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1));
        if deliveries > 1 {
            metrics::counter!("step_redeliveries_total", "step" => self.step.name().to_string())
                .increment(1);
        }
        let command: StepCommand = match serde_json::from_slice(&message.payload) {
            Ok(c) => c,
            Err(e) => {
                // serde's message may quote the payload's values: only say where it broke.
                let reason = format!(
                    "unreadable step command: {}",
                    contracts::dead_letter::where_it_broke(&e)
                );
                tracing::error!(subject = %message.subject, %reason, "malformed step command: set aside");
                self.give_up(&message, None, reason, deliveries).await;
                return;
            }
        };
        if command.step != self.step.name() {
            // The consumer is filtered on this step's subject; a broker that lost the
            // filter (seen on a NATS 2.9 cluster under restarts) can deliver another
            // step's command here. Running it would be this step's effect reported as
            // that step's: set it aside instead; its attempt times out and is retried.
            let reason = format!(
                "a command for step {:?} reached the {:?} step's consumer (subject {})",
                command.step,
                self.step.name(),
                message.subject
            );
            tracing::error!(%reason, "command for another step: set aside");
            self.give_up(&message, Some(&command), reason, deliveries)
                .await;
            return;
        }
        // The saga's trace, from the orchestrator: the id goes on every log line of
        // the command, and its next hop on the report.
        let trace = crate::telemetry::traceparent_of(message.headers.as_ref());
        let span = tracing::info_span!(
            "command",
            trace_id = tracing::field::Empty,
            saga_id = %command.saga_id,
            step = %command.step,
            action = command.action.as_str(),
            attempt = command.attempt
        );
        if let Some(trace) = &trace {
            crate::telemetry::adopt(&span, trace);
        }
        async {
            let command = Arc::new(command);
            match self.handle_command(&message, command.clone(), trace).await {
                Settle::Ack => {
                    let _ = message.ack().await;
                }
                Settle::Again { delay, reason } => {
                    if deliveries < u64::from(self.max_deliver) {
                        let _ = message.ack_with(AckKind::Nak(delay)).await;
                    } else {
                        let reason = format!(
                            "{reason} at delivery {deliveries} of at most {}",
                            self.max_deliver
                        );
                        self.give_up(&message, Some(&command), reason, deliveries)
                            .await;
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    async fn handle_command(
        &self,
        message: &jetstream::Message,
        command: Arc<StepCommand>,
        trace: Option<contracts::TraceParent>,
    ) -> Settle {
        if command.action == StepAction::Execute && command.deadline <= Utc::now() {
            tracing::info!("command past its deadline: skipped (the orchestrator has moved on)");
            counts::command(&command, "skipped_late");
            return Settle::Ack;
        }
        let Some((cancel, _claimed)) = self.claim(&command).await else {
            tracing::info!("duplicate delivery of a command already running: acknowledged");
            counts::command(&command, "duplicate");
            return Settle::Ack;
        };
        let reporter = Reporter {
            js: self.js.clone(),
            subject: self.subject.clone(),
            command: command.clone(),
            handling: Uuid::new_v4().simple().to_string(),
            lines: Arc::default(),
            trace,
        };
        // Looked up once claimed: a duplicate arriving while the first delivery runs is
        // caught by the claim above, one arriving after it finds the stored report.
        // Only a command that may have reached a step before can have finished: one
        // JetStream delivers again, or one the orchestrator marks as sent again. A
        // first send skips the lookup (a round trip to the bucket per command).
        let maybe_finished = message.info().map_or(true, |info| info.delivered > 1)
            || message
                .headers
                .as_ref()
                .is_some_and(|h| h.get(contracts::SENT_AGAIN_HEADER).is_some());
        let recalled = if maybe_finished {
            match self.memory.recall(&command.command_id).await {
                Ok(report) => report,
                // An undo run again is harmless (it removes only what is still its saga's).
                Err(e) if command.action == StepAction::Compensate => {
                    tracing::warn!(error = %format!("{e:#}"), "finished commands not readable: the undo runs");
                    None
                }
                Err(e) => {
                    // An execute is not run blind: this copy may come after its report went out and
                    // the saga undid the step since; run again, it would redo the
                    // effect. Later, the memory answers (or the deadline has passed).
                    tracing::warn!(error = %format!("{e:#}"), "finished commands not readable: the command waits");
                    counts::command(&command, "memory_unreadable");
                    return Settle::Again {
                        delay: Some(REPORT_RETRY_DELAY),
                        reason: format!("the finished-commands memory could not be read ({e:#})"),
                    };
                }
            }
        } else {
            None
        };
        match recalled {
            Some(report) => {
                tracing::info!(
                    "command finished before: answered with its stored report, not run again"
                );
                metrics::counter!("step_commands_recalled_total", "step" => command.step.clone(), "action" => command.action.as_str())
                    .increment(1);
                counts::command(&command, "recalled");
                Self::report(&reporter, report).await
            }
            None => self.run(message, &command, cancel, reporter).await,
        }
    }

    async fn run(
        &self,
        message: &jetstream::Message,
        command: &Arc<StepCommand>,
        cancel: CancellationToken,
        reporter: Reporter,
    ) -> Settle {
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
        let context = StepContext {
            key: self.key.clone(),
            reporter: Some(reporter.clone()),
        };
        let started = std::time::Instant::now();
        let until_deadline = (command.deadline - Utc::now()).to_std().unwrap_or_default();
        let outcome = tokio::select! {
            () = self.stop.cancelled() => Err(Interrupted::Shutdown),
            () = cancel.cancelled() => Err(Interrupted::Superseded),
            result = tokio::time::timeout(until_deadline, self.perform(command, &context)) => Ok(match result {
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
                let outcome = counts::outcome_of(&report);
                counts::command(command, outcome);
                metrics::histogram!("step_command_duration_seconds", "step" => command.step.clone(), "action" => command.action.as_str(), "outcome" => outcome)
                    .record(started.elapsed().as_secs_f64());
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
                // Sent before the report: once the orchestrator may act on it, a
                // redelivery must find it. Both are confirmed before the command is
                // acked (the report goes out whatever becomes of the memory: it only
                // spares work).
                let remembered = if memory::is_final(&report) {
                    Some(self.memory.remember(&command.command_id, &report).await)
                } else {
                    None
                };
                let settle = Self::report(&reporter, report).await;
                let remembered = match remembered {
                    Some(Ok(confirmation)) => confirmation.await,
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                };
                if let Err(e) = remembered {
                    tracing::warn!(error = %format!("{e:#}"), "could not remember the finished command");
                }
                settle
            }
            Err(Interrupted::Shutdown) => {
                tracing::info!("released for another instance");
                counts::command(command, "released");
                Settle::Again {
                    delay: None,
                    reason: "released on shutdown".into(),
                }
            }
            Err(Interrupted::Superseded) => {
                tracing::info!("stopped: an undo for this saga arrived");
                counts::command(command, "superseded");
                Settle::Ack
            }
        }
    }

    async fn report(reporter: &Reporter, report: StepReport) -> Settle {
        match reporter.finish(report).await {
            Ok(()) => Settle::Ack,
            Err(e) => {
                // Redelivered, it is answered from memory (or redone: steps are idempotent).
                tracing::warn!(error = %format!("{e:#}"), "could not report: command released for redelivery");
                Settle::Again {
                    delay: Some(REPORT_RETRY_DELAY),
                    reason: format!("its report could not be published ({e:#})"),
                }
            }
        }
    }

    async fn perform(&self, command: &StepCommand, context: &StepContext) -> StepReport {
        let work = async {
            match command.action {
                StepAction::Execute => self.step.execute(command, context).await,
                StepAction::Compensate => self
                    .step
                    .compensate(command, context)
                    .await
                    .map(|()| serde_json::Value::Null),
            }
        };
        // A panic must not leave the command claimed forever (later commands of the
        // saga would wait for it) nor unanswered: it is reported as a failure.
        let result = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "the step panicked");
                Err(StepError::transient(
                    "step_panicked",
                    format!(
                        "{} {} stopped on an internal error of the step service (see its log)",
                        command.step,
                        command.action.as_str()
                    ),
                ))
            }
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

    /// Sets the message aside on `saga.dead_letter.<step>` and terminates it, so it is
    /// never delivered again. When even the dead letter cannot be published, the
    /// message is delivered again later, unless this was its last delivery (then it is
    /// terminated all the same: a stuck message helps nobody).
    async fn give_up(
        &self,
        message: &jetstream::Message,
        command: Option<&StepCommand>,
        reason: String,
        deliveries: u64,
    ) {
        let letter = StepDeadLetter::new(
            self.step.name(),
            &message.subject,
            reason,
            deliveries,
            command.map(|c| (c.command_id.clone(), c.saga_id)),
            &message.payload,
            Utc::now(),
        );
        let msg_id = match message.info() {
            Ok(info) => format!("dead:{}:{}", info.stream, info.stream_sequence),
            Err(_) => format!("dead:{}", letter.payload.sha256),
        };
        let published = match serde_json::to_vec(&letter) {
            Ok(payload) => {
                bus::publish_acked(&self.js, self.dead_letters.clone(), &msg_id, payload.into())
                    .await
            }
            Err(e) => Err(e.into()),
        };
        match published {
            Ok(()) => {
                tracing::error!(reason = %letter.reason, deliveries, "command set aside as a dead letter");
                metrics::counter!("saga_dead_letters_total", "source" => self.step.name().to_string())
                    .increment(1);
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(e) if deliveries < u64::from(self.max_deliver) => {
                tracing::warn!(error = %format!("{e:#}"), reason = %letter.reason, "could not publish a dead letter: command released for redelivery");
                let _ = message
                    .ack_with(AckKind::Nak(Some(REPORT_RETRY_DELAY)))
                    .await;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), reason = %letter.reason, deliveries, "could not publish a dead letter at the last delivery: command terminated without one");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }

    /// Registers the command as running until the returned [`Claimed`] drops. Returns
    /// `None` when the same command is already running. An undo first stops a running
    /// effect of the same saga.
    async fn claim(&self, command: &StepCommand) -> Option<(CancellationToken, Claimed)> {
        loop {
            let wait = {
                let mut map = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
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
                        let claimed = Claimed {
                            in_flight: self.in_flight.clone(),
                            saga_id: command.saga_id,
                            command_id: command.command_id.clone(),
                            done: done_tx,
                        };
                        return Some((cancel, claimed));
                    }
                }
            };
            let mut wait = wait;
            let _ = wait.wait_for(|done| *done).await;
        }
    }
}

/// A command's place in the in-flight map: released when dropped, however its handling
/// ends (a panic included), and whoever waits for it is woken.
struct Claimed {
    in_flight: InFlightMap,
    saga_id: Uuid,
    command_id: String,
    done: watch::Sender<bool>,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let mut map = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map
            .get(&self.saga_id)
            .is_some_and(|r| r.command_id == self.command_id)
        {
            map.remove(&self.saga_id);
        }
        drop(map);
        let _ = self.done.send(true);
    }
}
