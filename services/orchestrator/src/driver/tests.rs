//! The driver over a fake bus and the memory store, with tokio's clock paused: the
//! paths where an error strands a saga unless the driver repairs it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::{ProgressEvent, SagaStatus, StepAction, StepCommand, StepEvent, StepReport};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::recovery;
use super::*;
use crate::bus::{Acker, Confirmation, SetAside};
use crate::saga::Phase;
use crate::store::{Error as StoreError, Inserted, MemoryStore};
use recovery::SWEEP_EVERY;

/// A bus that records what is sent and can be "down".
#[derive(Clone, Default)]
struct FakeBus(Arc<Mutex<Sent>>);

#[derive(Default)]
struct Sent {
    down: bool,
    /// Commands are sent but their acks never come.
    acks_lost: bool,
    /// What each step's probe answers: held by this (step, reason).
    held: Option<(String, String)>,
    /// The step services do not answer probes.
    probes_unanswered: bool,
    commands: Vec<StepCommand>,
    progress: Vec<ProgressEvent>,
    dead_letters: Vec<SetAside>,
}

impl FakeBus {
    fn set_down(&self, down: bool) {
        self.0.lock().expect("lock").down = down;
    }
    fn commands(&self) -> Vec<StepCommand> {
        self.0.lock().expect("lock").commands.clone()
    }
    fn dead_letters(&self) -> Vec<SetAside> {
        self.0.lock().expect("lock").dead_letters.clone()
    }
    fn up(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Sent>> {
        let sent = self.0.lock().expect("lock");
        anyhow::ensure!(!sent.down, "no servers available for connection");
        Ok(sent)
    }
}

impl Bus for FakeBus {
    async fn dispatch(&self, command: &StepCommand) -> anyhow::Result<Confirmation> {
        let mut sent = self.up()?;
        sent.commands.push(command.clone());
        if sent.acks_lost {
            return Ok(async { anyhow::bail!("timed out waiting for the ack") }.boxed());
        }
        Ok(async { Ok(()) }.boxed())
    }
    async fn send_progress(&self, events: &[ProgressEvent]) -> anyhow::Result<Confirmation> {
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
        let sent = self.0.lock().expect("lock");
        anyhow::ensure!(!sent.probes_unanswered, "no responders");
        let reason = sent
            .held
            .as_ref()
            .filter(|(holder, _)| holder == step)
            .map(|(_, reason)| reason.clone());
        Ok(contracts::ProbeReply::answer(reason))
    }
}

/// The memory store, whose updates can be made to fail.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
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
    async fn list(&self, status: Option<SagaStatus>, limit: u32) -> Result<Vec<Saga>, StoreError> {
        self.inner.list(status, limit).await
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
}

/// Records how each input was settled.
#[derive(Clone, Default)]
struct Settled(Arc<Mutex<Vec<Settle>>>);

impl Acker for Settled {
    fn settle(self: Box<Self>, how: Settle) -> BoxFuture<'static, anyhow::Result<()>> {
        self.0.lock().expect("lock").push(how);
        async { Ok(()) }.boxed()
    }
}

struct Rig {
    core: Arc<Core<FlakyStore, FakeBus>>,
    bus: FakeBus,
    settled: Settled,
    stop: CancellationToken,
    _workers: tokio::task::JoinSet<()>,
}

const STEP_TIMEOUT: Duration = Duration::from_secs(10);

impl Rig {
    fn new() -> Self {
        let stop = CancellationToken::new();
        let bus = FakeBus::default();
        let clock = Clock::tokio();
        let (published, _) = mpsc::unbounded_channel();
        let (core, workers) = spawn_workers(
            |router| {
                Arc::new(Core {
                    store: FlakyStore::default(),
                    bus: bus.clone(),
                    definition: SagaDefinition::tenant_provisioning()
                        .with_timings(STEP_TIMEOUT, Duration::from_secs(1)),
                    key: secrets::SecretsKey::from_base64(&secrets::SecretsKey::generate_base64())
                        .expect("key"),
                    parent_domain: "localhost".into(),
                    timers: crate::timers::Timers::spawn(router.clone(), clock, stop.clone()),
                    router,
                    clock,
                    published,
                    signup_subject: "tenant.signup.requested".into(),
                    unsent: Default::default(),
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

    fn inbound(&self, subject: &str, payload: Vec<u8>, delivered: u64) -> Inbound {
        Inbound::new(
            subject.into(),
            payload.into(),
            delivered,
            Box::new(self.settled.clone()),
        )
    }

    async fn signup(&self, id: Uuid) {
        let payload = serde_json::json!({
            "signup_id": id,
            "organization_name": "Test Org",
            "subdomain": format!("t{}", &id.simple().to_string()[..8]),
            "admin_email": "admin@test.com",
            "admin_full_name": "Test Admin",
            "admin_password": "Correct-Horse-42",
        });
        let payload = serde_json::to_vec(&payload).expect("json");
        let message = self.inbound("tenant.signup.requested", payload, 1);
        route_signup(&self.core, message).await;
    }

    /// Reports `report` for the last command sent to `step`.
    async fn report(&self, step: &str, report: StepReport, delivered: u64) {
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
        let message = self.inbound(&format!("saga.evt.{step}"), payload, delivered);
        route_event(&self.core, message).await;
    }

    async fn complete(&self, step: &str) {
        let report = StepReport::Completed {
            output: serde_json::json!({}),
        };
        self.report(step, report, 1).await;
    }

    async fn saga(&self, id: Uuid) -> Saga {
        self.core.store.get(id).await.expect("store").expect("saga")
    }

    fn sent_to(&self, step: &str, action: StepAction) -> Vec<u32> {
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
async fn within(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !condition().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finish_every_step(rig: &Rig, id: Uuid) {
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

#[tokio::test(start_paused = true)]
async fn a_command_not_sent_because_nats_was_away_is_sent_by_the_sweep() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.bus.set_down(true);
    rig.signup(id).await;
    within(Duration::from_secs(1), "the saga is stored running", async || {
        matches!(rig.core.store.get(id).await, Ok(Some(s)) if s.status == SagaStatus::Running)
    })
    .await;
    assert!(rig.bus.commands().is_empty(), "NATS is away");
    assert_eq!(
        rig.settled.0.lock().expect("lock").as_slice(),
        &[Settle::Ack],
        "the stored signup is acknowledged: its effects are the driver's to deliver"
    );

    rig.bus.set_down(false);
    within(
        SWEEP_EVERY * 2,
        "the sweep sends the first command again",
        async || rig.sent_to("database", StepAction::Execute) == vec![1],
    )
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_command_whose_ack_never_came_is_sent_again() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.bus.0.lock().expect("lock").acks_lost = true;
    rig.signup(id).await;
    within(Duration::from_secs(1), "the first command", async || {
        rig.sent_to("database", StepAction::Execute) == vec![1]
    })
    .await;
    rig.bus.0.lock().expect("lock").acks_lost = false;
    within(SWEEP_EVERY * 2, "the same command again", async || {
        rig.sent_to("database", StepAction::Execute) == vec![1, 1]
    })
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_saga_whose_command_was_lost_still_has_its_timer() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.bus.set_down(true);
    rig.signup(id).await;
    // NATS stays away past the step's deadline: the armed timer moves the saga on
    // (a timed-out attempt is retried), and once NATS is back it ends.
    tokio::time::sleep(STEP_TIMEOUT + Duration::from_secs(1)).await;
    let saga = rig.saga(id).await;
    assert!(
        !matches!(saga.phase, Phase::Executing { attempt: 1, .. }),
        "the deadline of attempt 1 fired: {:?}",
        saga.phase
    );
    rig.bus.set_down(false);
    within(STEP_TIMEOUT * 2, "a database command is sent", async || {
        !rig.sent_to("database", StepAction::Execute).is_empty()
    })
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn an_undo_dispatched_by_a_timer_while_nats_is_away_is_sent_again() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    within(Duration::from_secs(1), "database command", async || {
        !rig.sent_to("database", StepAction::Execute).is_empty()
    })
    .await;
    rig.complete("database").await;
    within(Duration::from_secs(1), "site command", async || {
        !rig.sent_to("site", StepAction::Execute).is_empty()
    })
    .await;
    let failed = StepReport::Failed {
        code: "boom".into(),
        message: "site broke".into(),
        retryable: false,
    };
    rig.bus.set_down(true);
    rig.report("site", failed, 1).await;
    within(Duration::from_secs(1), "compensating", async || {
        rig.saga(id).await.status == SagaStatus::Compensating
    })
    .await;
    assert!(rig.sent_to("site", StepAction::Compensate).is_empty());
    rig.bus.set_down(false);
    within(SWEEP_EVERY * 2, "the undo is sent", async || {
        rig.sent_to("site", StepAction::Compensate) == vec![1]
    })
    .await;
    rig.complete("site").await;
    within(Duration::from_secs(1), "database undo", async || {
        !rig.sent_to("database", StepAction::Compensate).is_empty()
    })
    .await;
    rig.complete("database").await;
    within(Duration::from_secs(1), "rolled back", async || {
        rig.saga(id).await.status == SagaStatus::RolledBack
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_replay_while_nats_is_away_still_runs() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    within(Duration::from_secs(1), "database command", async || {
        !rig.sent_to("database", StepAction::Execute).is_empty()
    })
    .await;
    let failed = StepReport::Failed {
        code: "boom".into(),
        message: "database broke".into(),
        retryable: false,
    };
    rig.report("database", failed, 1).await;
    within(Duration::from_secs(1), "database undo", async || {
        !rig.sent_to("database", StepAction::Compensate).is_empty()
    })
    .await;
    rig.complete("database").await;
    within(Duration::from_secs(1), "rolled back", async || {
        rig.saga(id).await.status == SagaStatus::RolledBack
    })
    .await;

    rig.bus.set_down(true);
    let (tx, rx) = tokio::sync::oneshot::channel();
    rig.core.router.send(id, Work::Replay(tx)).await;
    assert_eq!(rx.await.expect("reply"), Ok(SagaStatus::Running));
    rig.bus.set_down(false);
    within(SWEEP_EVERY * 2, "run 2's first command", async || {
        rig.bus.commands().iter().any(|c| c.run == 2)
    })
    .await;
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn an_input_that_keeps_failing_becomes_a_dead_letter_instead_of_looping() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    within(Duration::from_secs(1), "database command", async || {
        !rig.sent_to("database", StepAction::Execute).is_empty()
    })
    .await;
    rig.core.store.failing.store(true, Ordering::SeqCst);
    let done = || StepReport::Completed {
        output: serde_json::json!({}),
    };
    rig.report("database", done(), 3).await;
    rig.report("database", done(), MAX_DELIVER).await;
    within(Duration::from_secs(1), "both settled", async || {
        rig.settled.0.lock().expect("lock").len() == 3
    })
    .await;
    let settled = rig.settled.0.lock().expect("lock").clone();
    assert_eq!(
        settled[1..],
        [Settle::Retry(Duration::from_secs(4)), Settle::Term],
        "redelivered later each time, then set aside"
    );
    let letters = rig.bus.dead_letters();
    let [SetAside::Input(letter)] = letters.as_slice() else {
        panic!("one dead letter of a step report: {letters:?}");
    };
    assert!(
        letter.reason.contains("not applied after 100 deliveries")
            && letter.reason.contains("the disk is on fire"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.source, "orchestrator");
    assert_eq!(letter.saga_id, Some(id));
    assert_eq!(letter.deliveries, MAX_DELIVER);
}

#[test]
fn redelivery_waits_longer_each_time_up_to_a_minute() {
    let delays: Vec<u64> = [1, 2, 3, 4, 7, 8, 50]
        .into_iter()
        .map(|n| retry_delay(n).as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 60, 60, 60]);
}

#[tokio::test(start_paused = true)]
async fn a_subdomain_held_by_a_registered_tenant_is_rejected_before_anything_is_created() {
    let rig = Rig::new();
    rig.bus.0.lock().expect("lock").held =
        Some(("registration".into(), "a registered tenant".into()));
    let id = Uuid::new_v4();
    rig.signup(id).await;
    within(Duration::from_secs(1), "rejected", async || {
        matches!(rig.core.store.get(id).await, Ok(Some(s)) if s.status == SagaStatus::Rejected)
    })
    .await;
    let saga = rig.saga(id).await;
    let error = saga.error.expect("the reason");
    assert_eq!(error.code, "subdomain_taken");
    assert!(
        error.message.contains("a registered tenant"),
        "{}",
        error.message
    );
    assert!(rig.bus.commands().is_empty(), "no step ran");
    assert_eq!(
        rig.core
            .store
            .subdomain_holder(&saga.tenant.subdomain)
            .await
            .expect("store"),
        None,
        "the saga store does not keep the subdomain for a rejected signup"
    );
}

#[tokio::test(start_paused = true)]
async fn a_signup_whose_subdomain_cannot_be_checked_is_not_held_up() {
    let rig = Rig::new();
    rig.bus.0.lock().expect("lock").probes_unanswered = true;
    let id = Uuid::new_v4();
    rig.signup(id).await;
    // A step service that is down cannot say the subdomain is held: the saga runs,
    // and its steps refuse a foreign folder or record (then it rolls back).
    finish_every_step(&rig, id).await;
    assert_eq!(
        rig.settled.0.lock().expect("lock")[0],
        Settle::Ack,
        "the signup is not redelivered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_malformed_report_is_set_aside_without_its_content() {
    let rig = Rig::new();
    let payload = br#"{"saga_id": "x", "api_secret": "TopSecret1!""#.to_vec();
    route_event(&rig.core, rig.inbound("saga.evt.site", payload, 1)).await;
    let letters = rig.bus.dead_letters();
    let [SetAside::Input(letter)] = letters.as_slice() else {
        panic!("one dead letter: {letters:?}");
    };
    assert!(
        letter.reason.starts_with("not a step event"),
        "{}",
        letter.reason
    );
    assert!(!format!("{letter:?}").contains("TopSecret1!"));
    assert_eq!(
        rig.settled.0.lock().expect("lock").as_slice(),
        &[Settle::Term]
    );
}
