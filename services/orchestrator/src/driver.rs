//! The driver: feeds inputs from NATS and timers to the state machine, stores each
//! transition, then carries out its actions.
//!
//! Inputs of one saga are handled one at a time, in arrival order: every input is
//! routed to one of [`SHARDS`] workers by saga id. A message is acknowledged only once
//! its transition is stored and its actions are published, so a crash at any point
//! leads to a redelivery that the state machine recognises as stale or applies anew.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind};
use chrono::Utc;
use contracts::signup::{parse_signup, DeadLetter, ParsedSignup};
use contracts::{Rejection, SagaStatus, StepCommand, StepEvent, TenantContext};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::Bus;
use crate::saga::{next, Action, Decision, Input, Saga, SagaDefinition, Timer};
use crate::store::{Inserted, SagaStore, Updated};

/// Number of workers inputs are spread over (by saga id).
pub const SHARDS: usize = 64;

/// One input for a saga's worker.
pub(crate) enum Work {
    /// A message on the signup subject, parsed far enough to know its id.
    Signup(jetstream::Message, Box<ParsedSignupRead>),
    /// A report from a step service.
    Event(jetstream::Message, Box<StepEvent>),
    /// A timer fired.
    Timer(Timer),
    /// An operator asked for a replay.
    Replay(oneshot::Sender<Result<SagaStatus, String>>),
    /// Resume after a restart: re-send what is pending.
    Resume,
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
pub(crate) struct Cache(std::collections::HashMap<Uuid, Saga>);

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
pub(crate) struct Core<S> {
    pub store: S,
    pub bus: Bus,
    pub definition: SagaDefinition,
    pub key: secrets::SecretsKey,
    pub parent_domain: String,
    pub router: Router,
    pub timers: crate::timers::Timers,
    pub published: mpsc::UnboundedSender<(Uuid, u64)>,
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
pub(crate) fn spawn_workers<S: SagaStore>(
    make_core: impl FnOnce(Router) -> Arc<Core<S>>,
    stop: CancellationToken,
) -> (Arc<Core<S>>, tokio::task::JoinSet<()>) {
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

impl<S: SagaStore> Core<S> {
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

    async fn handle(&self, cache: &mut Cache, saga_id: Uuid, work: Work) {
        use tracing::Instrument;
        let span = tracing::info_span!("saga", %saga_id);
        async {
            match work {
                Work::Signup(message, parsed) => {
                    let result = self.intake(cache, saga_id, *parsed).await;
                    self.settle(message, result).await;
                }
                Work::Event(message, event) => {
                    let result = self.apply(cache, saga_id, Input::Reported(*event)).await.map(|_| ());
                    self.settle(message, result).await;
                }
                Work::Timer(timer) => {
                    if let Err(e) = self.apply(cache, saga_id, Input::TimerFired(timer.clone())).await {
                        tracing::warn!(error = %format!("{e:#}"), "timer could not be applied; retrying in 1s");
                        self.schedule_at(Timer { at: Utc::now() + chrono::Duration::seconds(1), ..timer });
                    }
                }
                Work::Replay(reply) => {
                    let _ = reply.send(self.replay(cache, saga_id).await);
                }
                Work::Resume => {
                    if let Err(e) = self.resume(cache, saga_id).await {
                        tracing::error!(error = %format!("{e:#}"), "could not resume saga");
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// Acks a message whose input was handled, or asks for a redelivery.
    async fn settle(&self, message: jetstream::Message, result: anyhow::Result<()>) {
        match result {
            Ok(()) => {
                if let Err(e) = message.ack().await {
                    tracing::warn!(error = %e, "ack failed; the input will be redelivered and found stale");
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "input not applied; redelivering in 1s");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
        }
    }

    /// Applies an input to a stored saga. Returns the decision's effect, if any.
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

    async fn transition(
        &self,
        cache: &mut Cache,
        saga: &Saga,
        input: Input,
    ) -> anyhow::Result<Option<Saga>> {
        match next(&self.definition, saga, input, Utc::now()) {
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
                    Ok(Updated::Stored) => cache.keep(&after),
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
                self.carry_out(&after, actions).await?;
                Ok(Some(after))
            }
        }
    }

    /// Carries out a stored transition's actions: commands first (they are on the
    /// saga's critical path), then progress, then timers.
    async fn carry_out(&self, saga: &Saga, actions: Vec<Action>) -> anyhow::Result<()> {
        let mut events = Vec::new();
        for action in actions {
            match action {
                Action::Dispatch {
                    step,
                    action,
                    attempt,
                    deadline,
                } => {
                    let command = StepCommand {
                        command_id: StepCommand::id_for(saga.id, saga.run, &step, action, attempt),
                        saga_id: saga.id,
                        run: saga.run,
                        step,
                        action,
                        attempt,
                        deadline,
                        tenant: saga.tenant.clone(),
                        outputs: saga.outputs.clone(),
                    };
                    self.bus.dispatch(&command).await?;
                    tracing::info!(step = %command.step, action = command.action.as_str(), attempt, "command dispatched");
                }
                Action::Publish(event) => events.push(event),
                Action::Schedule(timer) => self.schedule_at(timer),
            }
        }
        self.publish_progress(&events).await
    }

    async fn publish_progress(&self, events: &[contracts::ProgressEvent]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // Stored already: a failure here is repaired by the outbox sweep, never lost.
        match self.bus.send_progress(events).await {
            Ok(acks) => {
                let published = self.published.clone();
                let keys: Vec<(Uuid, u64)> =
                    events.iter().map(|e| (e.saga_id, e.sequence)).collect();
                tokio::spawn(async move {
                    match acks.await {
                        Ok(()) => keys.into_iter().for_each(|key| {
                            let _ = published.send(key);
                        }),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "progress not confirmed; the outbox sweep retries")
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "progress not sent; the outbox sweep retries")
            }
        }
        Ok(())
    }

    pub(crate) fn schedule_at(&self, timer: Timer) {
        self.timers.schedule(timer);
    }

    /// A signup: dedup, validate, claim the subdomain, start.
    async fn intake(
        &self,
        cache: &mut Cache,
        saga_id: Uuid,
        parsed: ParsedSignupRead,
    ) -> anyhow::Result<()> {
        // A saga in flight is in the cache; an older one is found by the insert below
        // (`Duplicate`), which spares a read per signup.
        if cache.0.contains_key(&saga_id) {
            tracing::info!("signup seen before: same request, no second saga");
            return Ok(());
        }
        let signup = match parsed.outcome {
            Ok(signup) => signup,
            Err(rejection) => {
                let subdomain: String = parsed.raw_subdomain.chars().take(64).collect();
                return self
                    .reject(saga_id, self.tenant_for_rejection(&subdomain), &rejection)
                    .await;
            }
        };
        let tenant = TenantContext {
            site_name: format!("{}.{}", signup.subdomain, self.parent_domain),
            subdomain: signup.subdomain.clone(),
            organization_name: signup.organization_name.clone(),
            admin_email: signup.admin_email.clone(),
            admin_full_name: signup.admin_full_name.clone(),
            auth_provider: signup.auth_provider,
            // Sealed at once: the clear password never reaches the store or the bus again.
            admin_password: signup.admin_password.as_deref().map(|p| self.key.seal(p)),
        };
        let saga = Saga::accepted(saga_id, tenant.clone(), Utc::now());
        match self
            .store
            .insert(&saga, &[])
            .await
            .context("storing the new saga")?
        {
            Inserted::Stored => {
                tracing::info!(subdomain = %signup.subdomain, "signup accepted");
                self.transition(cache, &saga, Input::Start).await?;
                Ok(())
            }
            Inserted::Duplicate => {
                tracing::info!("signup seen before: same request, no second saga");
                // A redelivery after the saga was stored but before it started (the
                // start failed): start it now rather than at the next restart.
                if let Some(stored) = self.load(cache, saga_id).await? {
                    if stored.status == SagaStatus::Accepted {
                        self.transition(cache, &stored, Input::Start).await?;
                    }
                }
                Ok(())
            }
            Inserted::SubdomainTaken(holder) => {
                tracing::info!(subdomain = %signup.subdomain, %holder, "subdomain taken");
                let rejection = Rejection {
                    code: "subdomain_taken",
                    message: format!(
                        "the subdomain \"{}\" is already taken; please choose another",
                        signup.subdomain
                    ),
                };
                self.reject(
                    saga_id,
                    TenantContext {
                        admin_password: None,
                        ..tenant
                    },
                    &rejection,
                )
                .await
            }
        }
    }

    fn tenant_for_rejection(&self, subdomain: &str) -> TenantContext {
        let valid = contracts::signup::check_subdomain(subdomain).is_ok();
        TenantContext {
            subdomain: subdomain.to_string(),
            site_name: if valid {
                format!("{subdomain}.{}", self.parent_domain)
            } else {
                String::new()
            },
            organization_name: String::new(),
            admin_email: String::new(),
            admin_full_name: String::new(),
            auth_provider: contracts::signup::AuthProvider::Password,
            admin_password: None,
        }
    }

    async fn reject(
        &self,
        saga_id: Uuid,
        tenant: TenantContext,
        rejection: &Rejection,
    ) -> anyhow::Result<()> {
        tracing::info!(code = rejection.code, message = %rejection.message, "signup rejected");
        let (saga, event) = Saga::rejected(saga_id, tenant, rejection, Utc::now());
        match self
            .store
            .insert(&saga, std::slice::from_ref(&event))
            .await
            .context("storing the rejection")?
        {
            Inserted::Stored => self.publish_progress(&[event]).await,
            Inserted::Duplicate | Inserted::SubdomainTaken(_) => Ok(()),
        }
    }

    async fn replay(&self, cache: &mut Cache, saga_id: Uuid) -> Result<SagaStatus, String> {
        let saga = match self.load(cache, saga_id).await {
            Ok(Some(saga)) => saga,
            Ok(None) => return Err(format!("no saga {saga_id}")),
            Err(e) => return Err(format!("saga store unavailable: {e}")),
        };
        if let Decision::Ignore(reason) = next(&self.definition, &saga, Input::Replay, Utc::now()) {
            return Err(reason);
        }
        match self.transition(cache, &saga, Input::Replay).await {
            Ok(Some(after)) => {
                tracing::info!(
                    run = after.run,
                    status = after.status.as_str(),
                    "replay started"
                );
                Ok(after.status)
            }
            Ok(None) => Err("nothing to replay".into()),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// After a restart: start an accepted saga, re-send a pending command (the step
    /// finds its work done if it had run), re-arm the pending timer.
    async fn resume(&self, cache: &mut Cache, saga_id: Uuid) -> anyhow::Result<()> {
        let Some(saga) = self.load(cache, saga_id).await? else {
            return Ok(());
        };
        if saga.status == SagaStatus::Accepted {
            self.transition(cache, &saga, Input::Start).await?;
            return Ok(());
        }
        let mut actions: Vec<Action> = saga
            .pending_dispatch(&self.definition)
            .into_iter()
            .collect();
        actions.extend(saga.timer().map(Action::Schedule));
        tracing::info!(
            status = saga.status.as_str(),
            pending = actions.len(),
            "resuming saga"
        );
        self.carry_out(&saga, actions).await
    }
}

fn progress_of(actions: &[Action]) -> Vec<contracts::ProgressEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Reads a signup far enough to route it; unreadable ones go to the dead-letter subject.
pub(crate) async fn route_signup<S: SagaStore>(core: &Core<S>, message: jetstream::Message) {
    match parse_signup(&message.payload) {
        ParsedSignup::Unreadable { error } => {
            tracing::warn!(%error, bytes = message.payload.len(), "unreadable signup: sent to the dead-letter subject");
            let letter = DeadLetter::new(
                message.subject.as_str(),
                error,
                &message.payload,
                Utc::now(),
            );
            match core.bus.dead_letter(&letter).await {
                Ok(()) => {
                    let _ = message.ack().await;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "dead letter not stored; redelivering");
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                }
            }
        }
        ParsedSignup::Read { signup_id, outcome } => {
            let raw_subdomain = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| {
                    v.get("subdomain")
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            core.router
                .send(
                    signup_id,
                    Work::Signup(
                        message,
                        Box::new(ParsedSignupRead {
                            outcome,
                            raw_subdomain,
                        }),
                    ),
                )
                .await;
        }
    }
}

/// Reads a step report and routes it; a malformed one is terminated (never redelivered).
pub(crate) async fn route_event<S: SagaStore>(core: &Core<S>, message: jetstream::Message) {
    match serde_json::from_slice::<StepEvent>(&message.payload) {
        Ok(event) => {
            core.router
                .send(event.saga_id, Work::Event(message, Box::new(event)))
                .await
        }
        Err(e) => {
            tracing::error!(error = %e, subject = %message.subject, "malformed step event: terminated");
            let _ = message.ack_with(AckKind::Term).await;
        }
    }
}
