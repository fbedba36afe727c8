//! The saga's durable state and the vocabulary of the state machine: its inputs, the
//! actions it asks for, and its decisions. Plain data; the transitions are in
//! `machine.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use contracts::{
    ErrorInfo, ProgressEvent, Rejection, SagaStatus, StepAction, StepEvent, StepStatus,
    TenantContext, TraceParent,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::definition::{SagaDefinition, StepDefinition};

/// What the saga is doing right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Accepted, nothing dispatched yet.
    Idle,
    /// Waiting for an attempt of step `step` (position) until `deadline`.
    Executing {
        /// Position in the definition.
        step: usize,
        /// Attempt number, from 1.
        attempt: u32,
        /// When the attempt counts as timed out.
        deadline: DateTime<Utc>,
    },
    /// Waiting to dispatch attempt `attempt` of `step` at `due`.
    RetryWait {
        /// Position in the definition.
        step: usize,
        /// The attempt to dispatch.
        attempt: u32,
        /// When to dispatch it.
        due: DateTime<Utc>,
    },
    /// Waiting for an undo attempt of `step` until `deadline`.
    Compensating {
        /// Position in the definition.
        step: usize,
        /// Undo attempt number, from 1.
        attempt: u32,
        /// When the attempt counts as timed out.
        deadline: DateTime<Utc>,
    },
    /// Waiting to dispatch undo attempt `attempt` of `step` at `due`.
    CompensationRetryWait {
        /// Position in the definition.
        step: usize,
        /// The undo attempt to dispatch.
        attempt: u32,
        /// When to dispatch it.
        due: DateTime<Utc>,
    },
    /// Nothing is pending (terminal status).
    Finished,
}

impl Phase {
    /// The step (position), attempt, deadline and action whose report the saga waits
    /// for, if it waits for one.
    pub fn awaited_report(&self) -> Option<(usize, u32, DateTime<Utc>, StepAction)> {
        match *self {
            Phase::Executing {
                step,
                attempt,
                deadline,
            } => Some((step, attempt, deadline, StepAction::Execute)),
            Phase::Compensating {
                step,
                attempt,
                deadline,
            } => Some((step, attempt, deadline, StepAction::Compensate)),
            _ => None,
        }
    }
}

/// The durable state of one saga. Holds secrets only sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saga {
    /// Saga id = signup id.
    pub id: Uuid,
    /// 1 for the first run; +1 for each replay (from the start, or of an undo that
    /// ended `compensation_failed`: its commands then get new ids).
    pub run: u32,
    /// Input shared by every step.
    pub tenant: TenantContext,
    /// Status as published.
    pub status: SagaStatus,
    /// What is pending.
    pub phase: Phase,
    /// Outputs of the steps completed, by name: in this run, or, for an undo resumed
    /// by a replay, in the run it undoes.
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Sequence of the last progress event.
    pub sequence: u64,
    /// Last percent published.
    pub percent: u8,
    /// The failure that made the saga compensate, or the undo failure.
    pub error: Option<ErrorInfo>,
    /// What the client gets on completion.
    pub result: Option<serde_json::Value>,
    /// When the signup was accepted.
    pub created_at: DateTime<Utc>,
    /// When the saga last changed.
    pub updated_at: DateTime<Utc>,
    /// The saga's trace (the signup's `traceparent`, or one started for it): every
    /// command of the saga carries it, also after restarts and replays. Absent in
    /// sagas stored before traces were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceParent>,
}

/// A pending wake-up of a saga; it fires only if the saga still waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// The saga.
    pub saga_id: Uuid,
    /// The run it belongs to.
    pub run: u32,
    /// The phase it ends, as stored (its deadline or due time is `at`).
    pub phase: Phase,
    /// When it fires.
    pub at: DateTime<Utc>,
}

/// Something that happened to a saga.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The signup was accepted and stored: start the first step.
    Start,
    /// The signup was accepted and stored, but must not run: end it rejected.
    Refuse(Rejection),
    /// An operator asked to replay; who and why, when they said so, go on the new
    /// run's first event.
    Replay(Option<contracts::OperatorAction>),
    /// An operator requeued dead letter `letter` (stream sequence), a command of
    /// `step` when it names one: a replayable saga is replayed, one still waiting on
    /// that step gets its pending command again.
    Requeue {
        /// Who, why, when (its `dead_letter` is set to `letter`).
        action: contracts::OperatorAction,
        /// The letter's sequence in `TENANT_DEAD_LETTERS`.
        letter: u64,
        /// The step whose command the letter holds, when known.
        step: Option<String>,
    },
    /// The pool no longer wants the standby a completed standby build saga made (the
    /// pool shrank, or the signup that claimed it ended without it): undo the build
    /// from its last step, saying why. Refused for any other saga.
    Discard(String),
    /// A step service reported.
    Reported(StepEvent),
    /// A timer set earlier fired.
    TimerFired(Timer),
}

/// The error code a discarded standby's build saga carries: not a failure, the
/// reason the pool undid it.
pub const STANDBY_DISCARDED: &str = "standby_discarded";

/// What the driver must do after storing the new state, in this order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Publish a command to a step service.
    Dispatch {
        /// Step name.
        step: String,
        /// Effect or undo.
        action: StepAction,
        /// Attempt number.
        attempt: u32,
        /// When the attempt times out.
        deadline: DateTime<Utc>,
    },
    /// Publish the pending command of a step once more, for a requeued dead letter:
    /// the same command (same id, attempt and deadline) as its `Dispatch`, marked as
    /// sent again, under a message id of its own per letter (JetStream would drop a
    /// copy under the command's id within its duplicate window).
    Resend {
        /// Step name.
        step: String,
        /// Effect or undo.
        action: StepAction,
        /// Attempt number.
        attempt: u32,
        /// When the attempt times out (unchanged).
        deadline: DateTime<Utc>,
        /// The requeued letter's sequence.
        dead_letter: u64,
    },
    /// Publish a progress event.
    Publish(ProgressEvent),
    /// Wake the saga at the timer's instant.
    Schedule(Timer),
}

/// Result of applying an input.
// One `Decision` lives briefly per input; boxing the saga would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The saga changes: store `saga`, then carry out `actions`.
    Apply {
        /// The new state.
        saga: Saga,
        /// What to do once it is stored.
        actions: Vec<Action>,
    },
    /// Nothing changes (stale or duplicate input, or a refused request); the reason is for logs.
    Ignore(String),
}

impl Saga {
    /// A new saga for an accepted signup.
    pub fn accepted(id: Uuid, tenant: TenantContext, now: DateTime<Utc>) -> Self {
        Self {
            id,
            run: 1,
            tenant,
            status: SagaStatus::Accepted,
            phase: Phase::Idle,
            outputs: BTreeMap::new(),
            sequence: 0,
            percent: 0,
            error: None,
            result: None,
            created_at: now,
            updated_at: now,
            trace: None,
        }
    }

    /// A saga refused before anything was created, with its one progress event.
    pub fn rejected(
        id: Uuid,
        tenant: TenantContext,
        rejection: &Rejection,
        now: DateTime<Utc>,
    ) -> (Self, ProgressEvent) {
        let mut saga = Self::accepted(id, tenant, now);
        saga.status = SagaStatus::Rejected;
        saga.phase = Phase::Finished;
        saga.error = Some(ErrorInfo {
            code: rejection.code.to_string(),
            message: rejection.message.clone(),
            step: None,
            cause: None,
        });
        let event = saga.progress(
            now,
            None,
            None,
            0,
            format!("Signup rejected: {}", rejection.message),
        );
        (saga, event)
    }

    /// The timer the saga waits for, if any.
    pub fn timer(&self) -> Option<Timer> {
        let at = match &self.phase {
            Phase::Executing { deadline, .. } | Phase::Compensating { deadline, .. } => *deadline,
            Phase::RetryWait { due, .. } | Phase::CompensationRetryWait { due, .. } => *due,
            Phase::Idle | Phase::Finished => return None,
        };
        Some(Timer {
            saga_id: self.id,
            run: self.run,
            phase: self.phase.clone(),
            at,
        })
    }

    /// The name of the step the saga is at, if any.
    pub fn current_step<'d>(&self, definition: &'d SagaDefinition) -> Option<&'d StepDefinition> {
        match self.phase {
            Phase::Executing { step, .. }
            | Phase::RetryWait { step, .. }
            | Phase::Compensating { step, .. }
            | Phase::CompensationRetryWait { step, .. } => definition.steps.get(step),
            Phase::Idle | Phase::Finished => None,
        }
    }

    /// The command to re-send after a restart, if the saga waits for a step's report.
    pub fn pending_dispatch(&self, definition: &SagaDefinition) -> Option<Action> {
        let (step, attempt, deadline, action) = self.phase.awaited_report()?;
        Some(Action::Dispatch {
            step: definition.steps.get(step)?.name.clone(),
            action,
            attempt,
            deadline,
        })
    }

    pub(super) fn progress(
        &mut self,
        now: DateTime<Utc>,
        step: Option<&str>,
        step_status: Option<StepStatus>,
        attempt: u32,
        message: String,
    ) -> ProgressEvent {
        self.sequence += 1;
        self.updated_at = now;
        ProgressEvent {
            saga_id: self.id,
            sequence: self.sequence,
            subdomain: self.tenant.subdomain.clone(),
            site_name: self.tenant.site_name.clone(),
            status: self.status,
            step: step.map(str::to_string),
            step_status,
            attempt,
            percent: self.percent,
            message,
            error: self.error.clone(),
            result: self.result.clone(),
            at: now,
            operator_action: None,
        }
    }
}
