//! The rig the driver's tests run on: a bus that records what is sent and can be
//! down, a memory store whose writes can fail, an acker that records settlements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::{ProgressEvent, SagaStatus, StepAction, StepCommand, StepEvent, StepReport};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::*;
use crate::bus::{Acker, Confirmation, Sending, SetAside};
use crate::store::{
    Error as StoreError, Inserted, MemoryStore, PoolFigures, PoolSetting, Standby, StandbyState,
};

/// A bus that records what is sent and can be "down".
#[derive(Clone, Default)]
pub(super) struct FakeBus(pub(super) Arc<Mutex<Sent>>);

#[derive(Default)]
pub(super) struct Sent {
    pub(super) down: bool,
    /// Commands are sent but their acks never come.
    pub(super) acks_lost: bool,
    /// What each step's probe answers: held by this (step, reason).
    pub(super) held: Option<(String, String)>,
    /// The step services do not answer probes.
    pub(super) probes_unanswered: bool,
    /// The steps asked about a subdomain, in order.
    pub(super) probed: Vec<String>,
    pub(super) commands: Vec<StepCommand>,
    /// For each command, whether it was marked as sent again.
    pub(super) sent_again: Vec<bool>,
    /// For each command, how it was sent.
    pub(super) sendings: Vec<Sending>,
    pub(super) progress: Vec<ProgressEvent>,
    pub(super) dead_letters: Vec<SetAside>,
}

impl FakeBus {
    pub(super) fn set_down(&self, down: bool) {
        self.0.lock().expect("lock").down = down;
    }
    pub(super) fn commands(&self) -> Vec<StepCommand> {
        self.0.lock().expect("lock").commands.clone()
    }
    pub(super) fn dead_letters(&self) -> Vec<SetAside> {
        self.0.lock().expect("lock").dead_letters.clone()
    }
    fn up(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Sent>> {
        let sent = self.0.lock().expect("lock");
        anyhow::ensure!(!sent.down, "no servers available for connection");
        Ok(sent)
    }
}

impl Bus for FakeBus {
    async fn dispatch(
        &self,
        command: &StepCommand,
        sending: Sending,
        _trace: Option<&contracts::TraceParent>,
    ) -> anyhow::Result<Confirmation> {
        let mut sent = self.up()?;
        sent.commands.push(command.clone());
        sent.sent_again.push(sending != Sending::First);
        sent.sendings.push(sending);
        if sent.acks_lost {
            return Ok(async { anyhow::bail!("timed out waiting for the ack") }.boxed());
        }
        Ok(async { Ok(()) }.boxed())
    }
    async fn send_progress(
        &self,
        events: &[ProgressEvent],
        _trace: Option<&contracts::TraceParent>,
    ) -> anyhow::Result<Confirmation> {
        self.up()?.progress.extend_from_slice(events);
        Ok(async { Ok(()) }.boxed())
    }
    async fn dead_letter(&self, letter: &SetAside) -> anyhow::Result<()> {
        self.up()?.dead_letters.push(letter.clone());
        Ok(())
    }
    async fn probe(
        &self,
        step: &str,
        _probe: &contracts::SubdomainProbe,
    ) -> anyhow::Result<contracts::ProbeReply> {
        // `down` takes JetStream publishes away, as when the server goes just after
        // the signup arrived; probes have a switch of their own.
        let mut sent = self.0.lock().expect("lock");
        sent.probed.push(step.to_string());
        anyhow::ensure!(!sent.probes_unanswered, "no responders");
        let reason = sent
            .held
            .as_ref()
            .filter(|(holder, _)| holder == step)
            .map(|(_, reason)| reason.clone());
        Ok(contracts::ProbeReply::answer(reason))
    }
}

/// The memory store, whose updates can be made to fail; it keeps the standby pool
/// only when made `pooled` (else it refuses, as a store without one).
#[derive(Default)]
pub(super) struct FlakyStore {
    inner: MemoryStore,
    pub(super) failing: AtomicBool,
    pub(super) pooled: bool,
}

impl FlakyStore {
    fn pool(&self) -> Result<&MemoryStore, StoreError> {
        if self.pooled {
            Ok(&self.inner)
        } else {
            Err(StoreError::Refused(
                "this saga store keeps no standby pool".into(),
            ))
        }
    }
}

impl SagaStore for FlakyStore {
    async fn insert(&self, saga: &Saga, events: &[ProgressEvent]) -> Result<Inserted, StoreError> {
        self.inner.insert(saga, events).await
    }
    async fn update(
        &self,
        previous: &Saga,
        saga: &Saga,
        events: &[ProgressEvent],
    ) -> Result<Updated, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt("the disk is on fire".into()));
        }
        self.inner.update(previous, saga, events).await
    }
    async fn get(&self, id: Uuid) -> Result<Option<Saga>, StoreError> {
        self.inner.get(id).await
    }
    async fn list_page(&self, query: &crate::store::ListQuery) -> Result<Vec<Saga>, StoreError> {
        self.inner.list_page(query).await
    }
    async fn timeline(&self, id: Uuid) -> Result<Vec<ProgressEvent>, StoreError> {
        self.inner.timeline(id).await
    }
    async fn in_flight(&self) -> Result<Vec<Saga>, StoreError> {
        self.inner.in_flight().await
    }
    async fn unpublished(&self) -> Result<Vec<ProgressEvent>, StoreError> {
        self.inner.unpublished().await
    }
    async fn mark_published(&self, events: &[(Uuid, u64)]) -> Result<(), StoreError> {
        self.inner.mark_published(events).await
    }
    async fn subdomain_holder(&self, subdomain: &str) -> Result<Option<Uuid>, StoreError> {
        self.inner.subdomain_holder(subdomain).await
    }
    async fn add_standby(&self, standby: &Standby) -> Result<(), StoreError> {
        self.pool()?.add_standby(standby).await
    }
    async fn standby_ready(&self, id: Uuid, db: &str, now: Now) -> Result<bool, StoreError> {
        self.pool()?.standby_ready(id, db, now).await
    }
    async fn claim_standby(&self, signup: Uuid, now: Now) -> Result<Option<Standby>, StoreError> {
        self.pool()?.claim_standby(signup, now).await
    }
    async fn release_standby(&self, id: Uuid, signup: Uuid) -> Result<bool, StoreError> {
        self.pool()?.release_standby(id, signup).await
    }
    async fn discard_standby(&self, id: Uuid, from: StandbyState) -> Result<bool, StoreError> {
        self.pool()?.discard_standby(id, from).await
    }
    async fn standby_gone(&self, id: Uuid) -> Result<bool, StoreError> {
        self.pool()?.standby_gone(id).await
    }
    async fn standbys(&self, state: Option<StandbyState>) -> Result<Vec<Standby>, StoreError> {
        self.pool()?.standbys(state).await
    }
    async fn standby(&self, id: Uuid) -> Result<Option<Standby>, StoreError> {
        self.pool()?.standby(id).await
    }
    async fn pool_setting(&self) -> Result<Option<PoolSetting>, StoreError> {
        self.pool()?.pool_setting().await
    }
    async fn set_pool_setting(&self, setting: &PoolSetting) -> Result<(), StoreError> {
        self.pool()?.set_pool_setting(setting).await
    }
    async fn standby_missed(&self, signup: Uuid, now: Now) -> Result<(), StoreError> {
        self.pool()?.standby_missed(signup, now).await
    }
    async fn pool_figures(&self, since: Now) -> Result<PoolFigures, StoreError> {
        self.pool()?.pool_figures(since).await
    }
}

type Now = chrono::DateTime<chrono::Utc>;

/// Records how each input was settled.
#[derive(Clone, Default)]
pub(super) struct Settled(pub(super) Arc<Mutex<Vec<Settle>>>);

impl Acker for Settled {
    fn settle(self: Box<Self>, how: Settle) -> BoxFuture<'static, anyhow::Result<()>> {
        self.0.lock().expect("lock").push(how);
        async { Ok(()) }.boxed()
    }
}

pub(super) struct Rig {
    pub(super) core: Arc<Core<FlakyStore, FakeBus>>,
    pub(super) bus: FakeBus,
    pub(super) settled: Settled,
    stop: CancellationToken,
    _workers: tokio::task::JoinSet<()>,
}

pub(super) const STEP_TIMEOUT: Duration = Duration::from_secs(10);

impl Rig {
    pub(super) fn new() -> Self {
        Self::with_pool(false, 0)
    }

    /// A rig of `STANDBY_POOL_SIZE` `size` whose store keeps a standby pool when
    /// `pooled` (else it refuses, as a store without one).
    pub(super) fn with_pool(pooled: bool, size: u32) -> Self {
        Self::with_pool_builds(pooled, size, 1000)
    }

    /// As [`Rig::with_pool`], with at most `at_once` builds under way at a time.
    pub(super) fn with_pool_builds(pooled: bool, size: u32, at_once: u32) -> Self {
        let stop = CancellationToken::new();
        let bus = FakeBus::default();
        let clock = Clock::tokio();
        let (published, _) = mpsc::unbounded_channel();
        let (core, workers) = spawn_workers(
            |router| {
                Arc::new(Core {
                    store: Arc::new(FlakyStore {
                        pooled,
                        ..FlakyStore::default()
                    }),
                    bus: bus.clone(),
                    definition: SagaDefinition::tenant_provisioning()
                        .with_timings(STEP_TIMEOUT, Duration::from_secs(1)),
                    key: secrets::Keyring::random(&secrets::KeyId::parse("test").expect("key id")),
                    parent_domain: "localhost".into(),
                    timers: crate::timers::Timers::spawn(router.clone(), clock, stop.clone()),
                    router,
                    clock,
                    published,
                    subjects: contracts::Subjects::new(""),
                    unsent: Default::default(),
                    tenure: Default::default(),
                    pool: crate::driver::PoolLive::new(size, at_once),
                })
            },
            stop.clone(),
        );
        tokio::spawn(sweep_loop(core.clone(), stop.clone()));
        Self {
            core,
            bus,
            settled: Settled::default(),
            stop,
            _workers: workers,
        }
    }

    pub(super) fn inbound(&self, subject: &str, payload: Vec<u8>, delivered: u64) -> Inbound {
        Inbound::new(
            subject.into(),
            payload.into(),
            delivered,
            Box::new(self.settled.clone()),
        )
    }

    /// A signup whose password the web app sealed to the services' current key.
    pub(super) async fn signup_sealed(&self, id: Uuid) -> contracts::Sealed {
        let binding = secrets::Binding::new(id, secrets::Field::AdminPassword);
        let sealed = self.core.key.recipient().seal("Correct-Horse-42", binding);
        self.signup_with(id, "admin_password_sealed", &sealed.0)
            .await;
        sealed
    }

    /// A signup with its password in clear (older clients).
    pub(super) async fn signup(&self, id: Uuid) {
        self.signup_with(id, "admin_password", "Correct-Horse-42")
            .await;
    }

    /// A signup whose password is `password` in field `field`.
    async fn signup_with(&self, id: Uuid, field: &str, password: &str) {
        let mut payload = serde_json::json!({
            "signup_id": id,
            "organization_name": "Test Org",
            "subdomain": format!("t{}", &id.simple().to_string()[..8]),
            "admin_email": "admin@test.com",
            "admin_full_name": "Test Admin",
        });
        payload[field] = password.into();
        let payload = serde_json::to_vec(&payload).expect("json");
        let message = self.inbound("tenant.signup.requested", payload, 1);
        route_signup(&self.core, message).await;
    }

    /// Reports `report` for the last command sent to `step`.
    pub(super) async fn report(&self, step: &str, report: StepReport, delivered: u64) {
        self.report_on(&format!("saga.evt.{step}"), step, report, delivered)
            .await;
    }

    /// Reports `report` for the last command sent to `step`, on `subject`.
    pub(super) async fn report_on(
        &self,
        subject: &str,
        step: &str,
        report: StepReport,
        delivered: u64,
    ) {
        let command = self
            .bus
            .commands()
            .into_iter()
            .rev()
            .find(|c| c.step == step)
            .expect("a command was sent to the step");
        let event = StepEvent {
            command_id: command.command_id.clone(),
            saga_id: command.saga_id,
            run: command.run,
            step: command.step.clone(),
            action: command.action,
            attempt: command.attempt,
            report,
            at: self.core.clock.now(),
        };
        let payload = serde_json::to_vec(&event).expect("json");
        let message = self.inbound(subject, payload, delivered);
        route_event(&self.core, message).await;
    }

    pub(super) async fn complete(&self, step: &str) {
        let report = StepReport::Completed {
            output: serde_json::json!({}),
        };
        self.report(step, report, 1).await;
    }

    pub(super) async fn saga(&self, id: Uuid) -> Saga {
        self.core.store.get(id).await.expect("store").expect("saga")
    }

    /// Waits (virtual time, at most 1 s) until a command went to `step`.
    pub(super) async fn command_sent(&self, step: &str, action: StepAction) {
        within(Duration::from_secs(1), step, async || {
            !self.sent_to(step, action).is_empty()
        })
        .await;
    }

    /// Waits (virtual time, at most 1 s) until the stored saga has `status`.
    pub(super) async fn reaches(&self, id: Uuid, status: SagaStatus) {
        within(Duration::from_secs(1), status.as_str(), async || {
            self.saga(id).await.status == status
        })
        .await;
    }

    pub(super) fn sent_to(&self, step: &str, action: StepAction) -> Vec<u32> {
        self.bus
            .commands()
            .iter()
            .filter(|c| c.step == step && c.action == action)
            .map(|c| c.attempt)
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Lets virtual time pass (the clock is paused: this costs no real time) until
/// `condition` holds, for at most `limit`.
pub(super) async fn within(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !condition().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn finish_every_step(rig: &Rig, id: Uuid) {
    for step in ["database", "site", "admin_user", "registration"] {
        within(Duration::from_secs(2), step, async || {
            !rig.sent_to(step, StepAction::Execute).is_empty()
        })
        .await;
        rig.complete(step).await;
    }
    within(Duration::from_secs(2), "completed", async || {
        rig.saga(id).await.status == SagaStatus::Completed
    })
    .await;
}
