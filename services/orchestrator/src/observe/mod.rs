//! The orchestrator's metrics (served on `/metrics` of its HTTP port).
//!
//! Counters and histograms come from stored transitions: [`transition`] compares a
//! saga before and after one, so a transition is counted once, when it is stored, and
//! a resume or a sweep that sends pending commands again counts nothing.
//!
//! The gauges (sagas in flight, sagas needing attention) describe the store, not
//! this process: the leader reads them from the store when it takes the lead and at
//! every full sweep (each minute), and moves them with each stored transition in
//! between. A standby reports zero with `saga_leader 0`, so summing over instances
//! is truthful, and a restarted or new leader starts from the store, not from zero.

use chrono::{DateTime, Utc};
use contracts::{SagaStatus, StepAction, StepReport};

use crate::saga::{Action, Input, Phase, Saga, SagaDefinition};
use crate::store::SagaStore;

/// A saga whose timer is this far past without the saga moving on counts as stuck: a
/// healthy saga acts on its timer within seconds (and the sweep re-arms it within a
/// minute).
pub(crate) const STUCK_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// At most this many `compensation_failed` sagas are counted (each is a page for an
/// operator; beyond this the number no longer matters).
const ATTENTION_LIMIT: u32 = 10_000;

/// Counts a signup accepted into a saga.
pub(crate) fn accepted() {
    metrics::counter!("saga_started_total").increment(1);
    metrics::gauge!("saga_in_flight").increment(1.0);
}

/// Times one input in this orchestrator, from its delivery to its transition stored
/// and its commands and progress handed to NATS (their acks not awaited). `input`:
/// `signup`, `report` (a step's final report: what the orchestrator adds to the step's
/// round trip) or `output` (a step's output line). Every delivery counts, also one
/// ignored as stale or not applied (then redelivered).
pub(crate) fn input_handled(input: &'static str, received: std::time::Instant) {
    metrics::histogram!("saga_input_seconds", "input" => input)
        .record(received.elapsed().as_secs_f64());
}

/// Counts a standby build saga started: in flight like any saga (the store's count,
/// which the leader reads each minute, has it), but no signup (`saga_started_total`).
pub(crate) fn standby_build_started() {
    metrics::gauge!("saga_in_flight").increment(1.0);
}

/// Counts a signup that looked for a standby site: `taken` one, or `missed` (none
/// was ready; it took the usual path).
pub(crate) fn standby_claim(taken: bool) {
    let outcome = if taken { "taken" } else { "missed" };
    metrics::counter!("saga_standby_claims_total", "outcome" => outcome).increment(1);
}

/// The standby pool's gauges, as the leader's upkeep finds the store each round: the
/// size in force and the standbys by state (`rows`: every one not gone).
pub(crate) fn pool_gauges(size: u32, rows: &[crate::store::Standby]) {
    metrics::gauge!("saga_standby_pool_size").set(f64::from(size));
    for state in POOL_STATES {
        let count = rows.iter().filter(|s| s.state == state).count();
        metrics::gauge!("saga_standbys", "state" => state.as_str()).set(count as f64);
    }
}

/// The states the `saga_standbys` gauge has a series for.
const POOL_STATES: [crate::store::StandbyState; 4] = [
    crate::store::StandbyState::Building,
    crate::store::StandbyState::Ready,
    crate::store::StandbyState::Claimed,
    crate::store::StandbyState::Discarding,
];

/// What a saga is, for the labels of what it counts: a signup's, or a standby's build
/// (which operators reading signup figures must be able to leave out).
pub(crate) fn kind(saga: &Saga) -> &'static str {
    crate::admin::kind_of(saga).as_str()
}

/// Counts a saga inserted already ended (a signup rejected at intake).
pub(crate) fn rejected_at_intake(saga: &Saga, now: DateTime<Utc>) {
    ended(saga, now);
}

/// Counts a dead letter set aside by the orchestrator (`signups` or `orchestrator`).
pub(crate) fn dead_letter(source: &'static str) {
    metrics::counter!("saga_dead_letters_total", "source" => source).increment(1);
}

/// Counts what one stored transition from `before` to `after`, caused by `input`
/// and asking for `actions`, did.
pub(crate) fn transition(
    definition: &SagaDefinition,
    before: &Saga,
    after: &Saga,
    input: &Input,
    actions: &[Action],
    now: DateTime<Utc>,
) {
    attempt_ended(definition, before, after, input, now);
    for action in actions {
        if let Action::Dispatch {
            step,
            action,
            attempt,
            ..
        } = action
        {
            if *attempt > 1 {
                metrics::counter!("saga_step_retries_total", "step" => step.clone(), "action" => action.as_str())
                    .increment(1);
            } else if *action == StepAction::Compensate {
                metrics::counter!("saga_undos_total", "step" => step.clone()).increment(1);
            }
        }
    }
    if after.status.is_terminal() && !before.status.is_terminal() {
        ended(after, now);
        metrics::gauge!("saga_in_flight").decrement(1.0);
        if after.status == SagaStatus::CompensationFailed {
            metrics::gauge!("saga_needing_attention", "reason" => "compensation_failed")
                .increment(1.0);
        }
    } else if before.status.is_terminal() && !after.status.is_terminal() {
        // A replay: the saga is in flight again.
        metrics::gauge!("saga_in_flight").increment(1.0);
        if before.status == SagaStatus::CompensationFailed {
            metrics::gauge!("saga_needing_attention", "reason" => "compensation_failed")
                .decrement(1.0);
        }
    }
}

fn ended(saga: &Saga, now: DateTime<Utc>) {
    let outcome = saga.status.as_str();
    // What the signup itself saw, apart from what an operator's replay made of it
    // later (whose duration still counts from the signup).
    let run = if saga.run == 1 { "first" } else { "replay" };
    let code = saga
        .error
        .as_ref()
        .map_or_else(|| "none".to_string(), |e| e.code.clone());
    let kind = kind(saga);
    metrics::counter!("saga_ended_total", "kind" => kind, "run" => run, "outcome" => outcome, "error_code" => code)
        .increment(1);
    let took = (now - saga.created_at).to_std().unwrap_or_default();
    metrics::histogram!("saga_duration_seconds", "kind" => kind, "run" => run, "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// When `before` waited for an attempt that this transition ended, records its
/// duration (from its dispatch, its deadline less the step's timeout) by outcome.
fn attempt_ended(
    definition: &SagaDefinition,
    before: &Saga,
    after: &Saga,
    input: &Input,
    now: DateTime<Utc>,
) {
    if before.phase == after.phase && before.run == after.run {
        return;
    }
    let (position, deadline, action) = match before.phase {
        Phase::Executing { step, deadline, .. } => (step, deadline, StepAction::Execute),
        Phase::Compensating { step, deadline, .. } => (step, deadline, StepAction::Compensate),
        _ => return,
    };
    let Some(step) = definition.steps.get(position) else {
        return;
    };
    let timeout = match action {
        StepAction::Execute => step.timeout,
        StepAction::Compensate => step.undo_timeout,
    };
    let outcome = match input {
        Input::Reported(event) => match &event.report {
            StepReport::Completed { .. } | StepReport::Output { .. } => "completed",
            StepReport::Failed {
                retryable: true, ..
            } => "failed",
            StepReport::Failed { .. } => "failed_permanent",
        },
        Input::TimerFired(_) => "timed_out",
        _ => "abandoned",
    };
    let dispatched = deadline - chrono::Duration::from_std(timeout).unwrap_or_default();
    let took = (now - dispatched).to_std().unwrap_or_default();
    metrics::histogram!("saga_step_duration_seconds", "step" => step.name.clone(), "action" => action.as_str(), "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// The gauges' values, read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Snapshot {
    /// Sagas not terminal.
    pub in_flight: usize,
    /// Sagas ended `compensation_failed` (until replayed).
    pub compensation_failed: usize,
    /// Sagas in flight whose timer is over [`STUCK_AFTER`] past, or accepted and
    /// not started for that long.
    pub stuck: usize,
}

impl Snapshot {
    /// The gauges for these sagas in flight and this many `compensation_failed`.
    pub(crate) fn of(in_flight: &[Saga], compensation_failed: usize, now: DateTime<Utc>) -> Self {
        let stuck = in_flight
            .iter()
            .filter(|saga| {
                let since = saga.timer().map_or(saga.updated_at, |timer| timer.at);
                now - since > STUCK_AFTER
            })
            .count();
        Self {
            in_flight: in_flight.len(),
            compensation_failed,
            stuck,
        }
    }

    /// Reads the gauges from the store, given the sagas in flight already listed.
    pub(crate) async fn read<S: SagaStore>(
        store: &S,
        in_flight: &[Saga],
        now: DateTime<Utc>,
    ) -> Result<Self, crate::store::Error> {
        let failed = store
            .list(Some(SagaStatus::CompensationFailed), ATTENTION_LIMIT)
            .await?;
        Ok(Self::of(in_flight, failed.len(), now))
    }

    /// Sets the gauges as the leader.
    pub(crate) fn publish(&self) {
        metrics::gauge!("saga_leader").set(1.0);
        metrics::gauge!("saga_in_flight").set(self.in_flight as f64);
        metrics::gauge!("saga_needing_attention", "reason" => "compensation_failed")
            .set(self.compensation_failed as f64);
        metrics::gauge!("saga_needing_attention", "reason" => "stuck").set(self.stuck as f64);
    }
}

/// Sets the gauges as a standby: zero, and `saga_leader 0` (the leader reports them).
pub(crate) fn stand_by() {
    metrics::gauge!("saga_leader").set(0.0);
    pool_gauges(0, &[]);
    metrics::gauge!("saga_in_flight").set(0.0);
    metrics::gauge!("saga_needing_attention", "reason" => "compensation_failed").set(0.0);
    metrics::gauge!("saga_needing_attention", "reason" => "stuck").set(0.0);
}

/// Reads the gauges from the store and publishes them as the leader; a failed read
/// leaves them as they are (the next sweep tries again).
pub(crate) async fn refresh<S: SagaStore>(store: &S, in_flight: &[Saga], now: DateTime<Utc>) {
    match Snapshot::read(store, in_flight, now).await {
        Ok(snapshot) => snapshot.publish(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "could not read the sagas needing attention")
        }
    }
}

#[cfg(test)]
mod tests;
