//! Getting sagas moving again: an operator's replay or requeue of a dead letter, the
//! resume after a restart, and the sweep that re-sends what an error left unsent and
//! re-arms every saga's timer.

use std::sync::Arc;
use std::time::Duration;

use contracts::admin::RequeueOutcome;
use contracts::{OperatorAction, SagaStatus};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Cache, Core, Work};
use crate::bus::Bus;
use crate::saga::{next, Action, Decision, Input};
use crate::store::SagaStore;

/// How often the sweep re-sends the commands of sagas marked unsent.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Every this many sweeps, every saga in flight is checked: its timer re-armed, an
/// accepted one that never started is started.
const FULL_SWEEP_ROUNDS: u64 = 12;

/// How long an accepted saga may wait for its start before the sweep starts it (its
/// intake may still be running).
const START_GRACE: chrono::Duration = chrono::Duration::seconds(30);

impl<S: SagaStore, B: Bus> Core<S, B> {
    pub(super) async fn replay(
        &self,
        cache: &mut Cache,
        saga_id: Uuid,
        action: Option<contracts::OperatorAction>,
    ) -> Result<SagaStatus, String> {
        let saga = match self.load(cache, saga_id).await {
            Ok(Some(saga)) => saga,
            Ok(None) => return Err(format!("no saga {saga_id}")),
            Err(e) => return Err(format!("saga store unavailable: {e}")),
        };
        if let Decision::Ignore(reason) = next(
            &self.definition.for_tenant(&saga.tenant),
            &saga,
            Input::Replay(None),
            self.clock.now(),
        ) {
            return Err(reason);
        }
        match self.transition(cache, &saga, Input::Replay(action)).await {
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

    /// A dead letter requeued (`input` is an [`Input::Requeue`]): at most once per
    /// letter. Its operator action in the saga's timeline (stored with the
    /// transition, read here by the saga's one worker) says it was done, and then
    /// nothing is done again.
    pub(super) async fn requeue(
        &self,
        cache: &mut Cache,
        saga_id: Uuid,
        input: Input,
    ) -> Result<Requeued, String> {
        let Input::Requeue { letter, .. } = &input else {
            return Err("not a requeue".into());
        };
        let letter = *letter;
        let saga = match self.load(cache, saga_id).await {
            Ok(Some(saga)) => saga,
            Ok(None) => return Err(format!("no saga {saga_id}")),
            Err(e) => return Err(format!("saga store unavailable: {e:#}")),
        };
        let timeline = self
            .store
            .timeline(saga_id)
            .await
            .map_err(|e| format!("saga store unavailable: {e}"))?;
        let earlier = timeline
            .iter()
            .filter_map(|e| e.operator_action.as_deref())
            .find(|a| a.action == "requeue" && a.dead_letter == Some(letter));
        if let Some(earlier) = earlier {
            return Ok(Requeued {
                outcome: RequeueOutcome::AlreadyRequeued,
                status: saga.status,
                earlier: Some(earlier.clone()),
            });
        }
        let now = self.clock.now();
        let actions = match next(&self.definition, &saga, input.clone(), now) {
            Decision::Ignore(reason) => return Err(reason),
            Decision::Apply { actions, .. } => actions,
        };
        let outcome = if actions.iter().any(|a| matches!(a, Action::Resend { .. })) {
            RequeueOutcome::Resent
        } else {
            RequeueOutcome::Replayed
        };
        match self.transition(cache, &saga, input).await {
            Ok(Some(after)) => {
                tracing::info!(letter, outcome = ?outcome, run = after.run, status = after.status.as_str(), "dead letter requeued");
                Ok(Requeued {
                    outcome,
                    status: after.status,
                    earlier: None,
                })
            }
            Ok(None) => Err("nothing to requeue".into()),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    /// Starts an accepted saga; otherwise re-arms the pending timer and, when
    /// `resend`, re-sends the pending command (the step finds its work done if it had
    /// run, and JetStream drops a copy within its duplicate window).
    pub(super) async fn resume(
        &self,
        cache: &mut Cache,
        saga_id: Uuid,
        resend: bool,
    ) -> anyhow::Result<()> {
        let Some(saga) = self.load(cache, saga_id).await? else {
            return Ok(());
        };
        if saga.status == SagaStatus::Accepted {
            return self.start_unless_held(cache, &saga).await;
        }
        let mut actions: Vec<Action> = saga.timer().map(Action::Schedule).into_iter().collect();
        if resend {
            actions.extend(saga.pending_dispatch(&self.definition.for_tenant(&saga.tenant)));
            tracing::info!(
                status = saga.status.as_str(),
                pending = actions.len(),
                "resuming saga"
            );
        }
        self.carry_out(&saga, actions, true).await;
        Ok(())
    }
}

/// What a requeue did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Requeued {
    /// Replayed, sent again, or nothing (done before).
    pub outcome: RequeueOutcome,
    /// The saga's status afterwards.
    pub status: SagaStatus,
    /// When the letter had been requeued before: by whom, when, why.
    pub earlier: Option<OperatorAction>,
}

/// Every [`SWEEP_EVERY`]: sends again the commands an error left unsent. Every
/// [`FULL_SWEEP_ROUNDS`] sweeps: asks each saga in flight's worker to re-arm its timer
/// (through the worker, so a newer timer is never replaced by a stale one) and to
/// start an accepted saga that waited too long.
pub(crate) async fn sweep_loop<S: SagaStore, B: Bus>(
    core: Arc<Core<S, B>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut round = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        round += 1;
        let unsent: Vec<Uuid> = core
            .unsent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for saga_id in unsent {
            core.router.send(saga_id, Work::Resume).await;
        }
        if round % FULL_SWEEP_ROUNDS != 0 {
            continue;
        }
        match core.store.in_flight().await {
            Ok(sagas) => {
                let now = core.clock.now();
                crate::observe::refresh(&*core.store, &sagas, now).await;
                for saga in sagas {
                    let waited = now - saga.created_at;
                    if saga.status != SagaStatus::Accepted || waited > START_GRACE {
                        core.router.send(saga.id, Work::Rearm).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "sweep could not list sagas in flight")
            }
        }
    }
}
