//! The driver: feeds inputs from NATS and timers to the state machine, stores each
//! transition, then carries out its actions.
//!
//! Inputs of one saga are handled one at a time, in arrival order: every input is
//! routed to one of [`SHARDS`] workers by saga id. A message is acknowledged once its
//! transition is stored; what the transition asks for is then carried out without
//! ever failing the input: the timer is armed first, and a command or progress event
//! that could not be sent is sent again by a sweep (`recovery.rs`) or the outbox.
//! So no stored transition is ever left without its timer.
//!
//! `intake.rs` reads signups (and routes reports), `effects.rs` carries out a stored
//! transition's actions, `recovery.rs` holds replay, resume and the sweep; `tests.rs` drives all of it over a fake bus with tokio's clock paused.

mod effects;
use effects::progress_of;
mod intake;
mod pool;
mod recovery;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use contracts::step_dead_letter::StepDeadLetter;
use contracts::{Rejection, SagaStatus, StepEvent};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) use intake::{held_elsewhere, route_event, route_signup};
pub(crate) use pool::{effective_size, pool_loop, PoolLive};
pub(crate) use recovery::{sweep_loop, Requeued};

use crate::bus::{Bus, Inbound, NatsBus, SetAside, Settle};
use crate::clock::Clock;
use crate::saga::{next, Decision, Input, Saga, SagaDefinition, Timer};
use crate::store::{SagaStore, Updated};

/// Number of workers inputs are spread over (by saga id).
pub const SHARDS: usize = 256;

/// How often an input is delivered before it is set aside as a dead letter. With the
/// growing redelivery delay ([`retry_delay`]) this rides out about an hour and a half
/// of store outage before giving up on an input.
pub(crate) const MAX_DELIVER: u64 = 100;

/// The redelivery delay of an input that could not be applied, growing with each
/// delivery (1, 2, 4, ... s, at most 60 s), so an outage is not hammered.
pub(crate) fn retry_delay(delivered: u64) -> Duration {
    Duration::from_secs(1u64 << delivered.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Whether the store refused a write because another instance leads.
fn deposed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<crate::store::Error>(),
            Some(crate::store::Error::Deposed(_))
        )
    })
}

/// One input for a saga's worker.
pub(crate) enum Work {
    /// A message on the signup subject, parsed far enough to know its id.
    Signup(Inbound, Box<ParsedSignupRead>),
    /// A report from a step service.
    Event(Inbound, Box<StepEvent>),
    /// A timer fired.
    Timer(Timer),
    /// An operator asked for a replay (who and why, when said).
    Replay(
        Option<contracts::OperatorAction>,
        oneshot::Sender<Result<SagaStatus, String>>,
    ),
    /// An operator requeued a dead letter of this saga.
    Requeue {
        /// Who, why, when.
        action: contracts::OperatorAction,
        /// The letter's stream sequence.
        letter: u64,
        /// The step whose command the letter holds, when known.
        step: Option<String>,
        /// What was done, or why nothing was.
        reply: oneshot::Sender<Result<Requeued, String>>,
    },
    /// The pool discards the standby this completed build saga made (why).
    Discard(String),
    /// Resume after a restart, or after an error left something unsent: re-send what
    /// is pending and re-arm the timer (an accepted saga is started).
    Resume,
    /// The sweep's check: re-arm the timer (an accepted saga is started).
    Rearm,
}

/// The readable part of a signup.
pub(crate) struct ParsedSignupRead {
    pub outcome: Result<contracts::ValidSignup, Rejection>,
    pub raw_subdomain: String,
}

/// A worker's copy of the sagas it owns, to spare a read per input. Only the owning
/// worker changes a saga, and every write checks the stored sequence, so a stale copy
/// is caught (and dropped) instead of overwriting.
#[derive(Default)]
pub(crate) struct Cache(HashMap<Uuid, Saga>);

impl Cache {
    fn keep(&mut self, saga: &Saga) {
        if saga.status.is_terminal() {
            self.0.remove(&saga.id);
        } else {
            self.0.insert(saga.id, saga.clone());
        }
    }
}

/// Everything the workers share.
pub(crate) struct Core<S, B = NatsBus> {
    pub store: Arc<S>,
    pub bus: B,
    pub definition: SagaDefinition,
    /// The services' keyring: seals the admin password, opens a sealed signup's.
    pub key: secrets::Keyring,
    pub parent_domain: String,
    pub router: Router,
    pub timers: crate::timers::Timers,
    pub clock: Clock,
    pub published: mpsc::UnboundedSender<(Uuid, u64)>,
    /// The names of subjects: signups arrive on one (their dead letters keep the
    /// signup contract's form), each step's reports on its own.
    pub subjects: contracts::Subjects,
    /// Sagas whose last command could not be sent, for the sweep to send again.
    pub unsent: Arc<Mutex<HashSet<Uuid>>>,
    /// How long this instance may still act as the leader.
    pub tenure: crate::leadership::Tenure,
    /// The standby pool's size in force (`STANDBY_POOL_SIZE`, or the operators'
    /// setting in the store; 0: no pool, and signups look for none once none is
    /// left ready).
    pub pool: PoolLive,
}

/// Routes work to the worker that owns a saga.
#[derive(Clone)]
pub(crate) struct Router {
    shards: Arc<Vec<mpsc::Sender<(Uuid, Work)>>>,
}

impl Router {
    pub(crate) async fn send(&self, saga_id: Uuid, work: Work) {
        let shard = (saga_id.as_u128() % self.shards.len() as u128) as usize;
        if self.shards[shard].send((saga_id, work)).await.is_err() {
            tracing::debug!(%saga_id, "worker gone (shutting down): input dropped, it will be redelivered");
        }
    }
}

/// Starts the workers; they stop at `stop`, after the input at hand.
pub(crate) fn spawn_workers<S: SagaStore, B: Bus>(
    make_core: impl FnOnce(Router) -> Arc<Core<S, B>>,
    stop: CancellationToken,
) -> (Arc<Core<S, B>>, tokio::task::JoinSet<()>) {
    let mut senders = Vec::with_capacity(SHARDS);
    let mut receivers = Vec::with_capacity(SHARDS);
    for _ in 0..SHARDS {
        let (tx, rx) = mpsc::channel::<(Uuid, Work)>(256);
        senders.push(tx);
        receivers.push(rx);
    }
    let core = make_core(Router {
        shards: Arc::new(senders),
    });
    let mut set = tokio::task::JoinSet::new();
    for mut rx in receivers {
        let core = core.clone();
        let stop = stop.clone();
        set.spawn(async move {
            // Unhandled inputs are dropped at shutdown: messages are redelivered,
            // timers re-armed by the next start.
            let mut cache = Cache::default();
            loop {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    next = rx.recv() => match next {
                        Some((saga_id, work)) => core.handle(&mut cache, saga_id, work).await,
                        None => return,
                    },
                }
            }
        });
    }
    (core, set)
}

impl<S: SagaStore, B: Bus> Core<S, B> {
    async fn load(&self, cache: &mut Cache, saga_id: Uuid) -> anyhow::Result<Option<Saga>> {
        if let Some(saga) = cache.0.get(&saga_id) {
            return Ok(Some(saga.clone()));
        }
        let saga = self.store.get(saga_id).await.context("loading the saga")?;
        if let Some(saga) = &saga {
            cache.keep(saga);
        }
        Ok(saga)
    }

    /// The stored saga's trace (read into the cache when it is not there; a failed
    /// read is left to the input's own read, which reports it).
    async fn trace_of(&self, cache: &mut Cache, saga_id: Uuid) -> Option<contracts::TraceParent> {
        self.load(cache, saga_id).await.ok().flatten()?.trace
    }

    async fn handle(&self, cache: &mut Cache, saga_id: Uuid, work: Work) {
        use tracing::Instrument;
        // The saga's trace, known before its span is entered (an exported span's
        // parent is fixed then): a signup's own or a new one, else the stored saga's.
        let trace = match &work {
            // A signup seen before (its saga cached) stays in the saga's trace.
            Work::Signup(message, _) => Some(
                cache
                    .0
                    .get(&saga_id)
                    .and_then(|saga| saga.trace.clone())
                    .or_else(|| message.traceparent.clone())
                    .unwrap_or_else(contracts::TraceParent::new_root),
            ),
            _ => self.trace_of(cache, saga_id).await,
        };
        let span = tracing::info_span!("saga", %saga_id, trace_id = tracing::field::Empty);
        if let Some(trace) = &trace {
            step_runtime::telemetry::adopt(&span, trace);
        }
        async {
            match work {
                Work::Signup(message, parsed) => {
                    let result = self.intake(cache, saga_id, *parsed, trace).await;
                    crate::observe::input_handled("signup", message.received);
                    self.settle(message, result).await;
                }
                Work::Event(message, event) => {
                    let input = match event.report {
                        contracts::StepReport::Output { .. } => "output",
                        _ => "report",
                    };
                    let result = self
                        .apply(cache, saga_id, Input::Reported(*event))
                        .await
                        .map(|_| ());
                    crate::observe::input_handled(input, message.received);
                    self.settle(message, result).await;
                }
                Work::Timer(timer) => {
                    if let Err(e) = self
                        .apply(cache, saga_id, Input::TimerFired(timer.clone()))
                        .await
                    {
                        tracing::warn!(error = %format!("{e:#}"), "timer could not be applied; retrying in 1s");
                        self.schedule_at(Timer {
                            at: self.clock.now() + chrono::Duration::seconds(1),
                            ..timer
                        });
                    }
                }
                Work::Discard(reason) => {
                    // The pool's upkeep sends it again while the row says discarding.
                    if let Err(e) = self.apply(cache, saga_id, Input::Discard(reason)).await {
                        tracing::warn!(error = %format!("{e:#}"), "standby not discarded yet; the pool tries again");
                    }
                }
                Work::Replay(action, reply) => {
                    let _ = reply.send(self.replay(cache, saga_id, action).await);
                }
                Work::Requeue {
                    action,
                    letter,
                    step,
                    reply,
                } => {
                    let input = Input::Requeue {
                        action,
                        letter,
                        step,
                    };
                    let _ = reply.send(self.requeue(cache, saga_id, input).await);
                }
                Work::Resume | Work::Rearm => {
                    let resend = matches!(work, Work::Resume);
                    if let Err(e) = self.resume(cache, saga_id, resend).await {
                        tracing::warn!(error = %format!("{e:#}"), "could not resume saga; the sweep tries again");
                        self.mark_unsent(saga_id);
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Acks a message whose input was handled, asks for a redelivery (later each
    /// time), or, after [`MAX_DELIVER`] deliveries, sets it aside as a dead letter
    /// with the reason, so a poison input never loops.
    async fn settle(&self, message: Inbound, result: anyhow::Result<()>) {
        if !self.tenure.holds() {
            // Past its tenure this instance may have decided from a copy the new
            // leader has moved on from (a report it found stale, say): the input goes
            // back to the stream for the new leader to decide, at once.
            tracing::info!("lead lost: input left to the next leader");
            return message.settle(Settle::Retry(Duration::ZERO)).await;
        }
        let error = match result {
            Ok(()) => return message.settle(Settle::Ack).await,
            Err(e) if deposed(&e) => {
                // The store says another instance leads: stop acting at once (the
                // lease keeper stands down at its next tick) and leave the input to it.
                tracing::warn!(error = %format!("{e:#}"), "lead lost: input left to the next leader");
                self.tenure.end();
                return message.settle(Settle::Retry(Duration::ZERO)).await;
            }
            Err(e) => format!("{e:#}"),
        };
        if message.delivered < MAX_DELIVER {
            let delay = retry_delay(message.delivered);
            tracing::warn!(%error, delivered = message.delivered, ?delay, "input not applied; redelivering");
            return message.settle(Settle::Retry(delay)).await;
        }
        let reason = format!(
            "not applied after {} deliveries: {error}",
            message.delivered
        );
        let letter = if message.subject == self.subjects.signup_requested() {
            SetAside::Signup(contracts::signup::DeadLetter::new(
                &message.subject,
                reason,
                &message.payload,
                self.clock.now(),
            ))
        } else {
            let event = serde_json::from_slice::<StepEvent>(&message.payload).ok();
            SetAside::Input(StepDeadLetter::new(
                crate::bus::DEAD_LETTER_SOURCE,
                &message.subject,
                reason,
                message.delivered,
                event.map(|e| (e.command_id, e.saga_id)),
                &message.payload,
                self.clock.now(),
            ))
        };
        tracing::error!(%error, delivered = message.delivered, "input given up: setting it aside as a dead letter");
        self.set_aside(message, &letter, Settle::Term).await;
    }

    /// Publishes `letter` for `message`, then settles the message `done`; when the
    /// letter cannot be stored, the message is delivered again later instead.
    pub(super) async fn set_aside(&self, message: Inbound, letter: &SetAside, done: Settle) {
        match self.bus.dead_letter(letter).await {
            Ok(()) => {
                crate::observe::dead_letter(match letter {
                    SetAside::Signup(_) => "signups",
                    SetAside::Input(_) => crate::bus::DEAD_LETTER_SOURCE,
                });
                message.settle(done).await
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "dead letter not stored; redelivering");
                let delay = retry_delay(message.delivered);
                message.settle(Settle::Retry(delay)).await;
            }
        }
    }

    /// Applies an input to a stored saga. Returns the new state, if it changed.
    async fn apply(
        &self,
        cache: &mut Cache,
        saga_id: Uuid,
        input: Input,
    ) -> anyhow::Result<Option<Saga>> {
        let Some(saga) = self.load(cache, saga_id).await? else {
            tracing::warn!("input for an unknown saga: dropped");
            return Ok(None);
        };
        self.transition(cache, &saga, input).await
    }

    /// Decides, stores, then carries out. Fails only when nothing was stored: once a
    /// transition is stored, its effects are this driver's to deliver, not the input's.
    async fn transition(
        &self,
        cache: &mut Cache,
        saga: &Saga,
        input: Input,
    ) -> anyhow::Result<Option<Saga>> {
        let now = self.clock.now();
        let definition = self.definition.for_tenant(&saga.tenant);
        match next(&definition, saga, input.clone(), now) {
            Decision::Ignore(reason) => {
                tracing::debug!(%reason, "input ignored");
                Ok(None)
            }
            Decision::Apply {
                saga: after,
                actions,
            } => {
                let events = progress_of(&actions);
                match self.store.update(saga, &after, &events).await {
                    Ok(Updated::Stored) => {
                        cache.keep(&after);
                        crate::observe::transition(
                            &definition,
                            saga,
                            &after,
                            &input,
                            &actions,
                            now,
                        );
                    }
                    Ok(Updated::SubdomainTaken(holder)) => {
                        anyhow::bail!(
                            "the subdomain {} is now held by saga {holder}",
                            saga.tenant.subdomain
                        )
                    }
                    Err(e) => {
                        // The copy may be stale (another writer?): read afresh next time.
                        cache.0.remove(&saga.id);
                        return Err(e).context("storing the transition");
                    }
                }
                let pool_changes = after.tenant.standby_build || saga.tenant.standby.is_some();
                if pool_changes
                    && (after.status != saga.status || after.tenant.standby != saga.tenant.standby)
                {
                    // The pool's upkeep repairs what fails here.
                    if let Err(e) = self.follow_pool(saga, &after).await {
                        tracing::warn!(error = %format!("{e:#}"), "standby pool not updated; its upkeep will");
                    }
                }
                self.carry_out(&after, actions, false).await;
                Ok(Some(after))
            }
        }
    }
}
