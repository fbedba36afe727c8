//! The transitions an operator or the intake asks for, beside a step's reports and
//! timers: a signup refused before it starts, a replay (from the start, or of an
//! undo that ended `compensation_failed`), and a dead letter's requeue (a replay, or
//! the pending command sent again).

use contracts::{ErrorInfo, OperatorAction, Rejection, SagaStatus, StepAction};

use super::state::Action;

use super::machine::Transition;
use super::state::Phase;

impl Transition<'_> {
    pub(super) fn refuse(&mut self, rejection: &Rejection) -> Result<(), String> {
        if self.saga.status != SagaStatus::Accepted || self.saga.phase != Phase::Idle {
            return Err(format!(
                "only a saga that has not started can be refused; this one is {}",
                self.saga.status.as_str()
            ));
        }
        self.saga.status = SagaStatus::Rejected;
        self.saga.phase = Phase::Finished;
        // Nothing will use it: a rejected saga keeps no secret, sealed or not.
        self.saga.tenant.admin_password = None;
        self.saga.error = Some(ErrorInfo {
            code: rejection.code.to_string(),
            message: rejection.message.clone(),
            step: None,
            cause: None,
        });
        self.publish(
            None,
            None,
            0,
            format!("Signup rejected: {}", rejection.message),
        );
        Ok(())
    }

    /// The first event of a replayed run (or of a requeue) says who did it and why,
    /// when known, in its message (where people read) and in `operator_action` (for
    /// tools).
    fn note_operator(&mut self, action: Option<OperatorAction>) {
        let Some(action) = action else { return };
        let Some(Action::Publish(event)) = self
            .actions
            .iter_mut()
            .find(|a| matches!(a, Action::Publish(_)))
        else {
            return;
        };
        let who = match action.dead_letter {
            Some(letter) => format!("Requeued by {} (dead letter {letter})", action.operator),
            None => format!("Replayed by {}", action.operator),
        };
        event.message = if action.reason.is_empty() {
            format!("{who}. {}", event.message)
        } else {
            format!("{who}: {}. {}", action.reason, event.message)
        };
        event.operator_action = Some(Box::new(action));
    }

    /// A dead letter requeued once its cause is fixed: a saga that ended replayable
    /// is replayed; one still waiting on the letter's step gets that step's pending
    /// command again (same id: a step that finished it answers from memory); anything
    /// else is refused with what the saga is doing instead.
    pub(super) fn requeue(
        &mut self,
        mut action: OperatorAction,
        letter: u64,
        step: Option<&str>,
    ) -> Result<(), String> {
        action.dead_letter = Some(letter);
        if matches!(
            self.saga.status,
            SagaStatus::RolledBack | SagaStatus::CompensationFailed
        ) {
            return self.replay(Some(action));
        }
        let name = |t: &Self, position: usize| t.step(position).name.clone();
        let Some((position, attempt, deadline, step_action)) = self.saga.phase.awaited_report()
        else {
            return Err(match self.saga.phase {
                Phase::RetryWait { step, attempt, due } => format!(
                    "the saga retries {} by itself at {due} (attempt {attempt}): nothing to requeue",
                    name(self, step)
                ),
                Phase::CompensationRetryWait { step, attempt, due } => format!(
                    "the saga retries the undo of {} by itself at {due} (attempt {attempt}): nothing to requeue",
                    name(self, step)
                ),
                _ => format!(
                    "the saga is {}: nothing to requeue",
                    self.saga.status.as_str()
                ),
            });
        };
        let current = name(self, position);
        if let Some(theirs) = step.filter(|s| *s != current) {
            return Err(format!(
                "the saga now waits on {current}, not {theirs}: the letter's command is no longer pending, nothing to requeue"
            ));
        }
        let what = match step_action {
            StepAction::Execute => "command",
            StepAction::Compensate => "undo",
        };
        self.publish(
            Some(position),
            None,
            attempt,
            format!("Sending the {current} {what} again (attempt {attempt})"),
        );
        self.note_operator(Some(action));
        self.actions.push(Action::Resend {
            step: current,
            action: step_action,
            attempt,
            deadline,
            dead_letter: letter,
        });
        Ok(())
    }

    pub(super) fn replay(&mut self, action: Option<OperatorAction>) -> Result<(), String> {
        let replayed = self.replay_run();
        if replayed.is_ok() {
            self.note_operator(action);
        }
        replayed
    }

    fn replay_run(&mut self) -> Result<(), String> {
        match (self.saga.status, self.saga.phase.clone()) {
            (SagaStatus::RolledBack, _) if self.saga.tenant.standby_build => Err(
                "a standby build that rolled back is not replayed: the pool builds new standbys"
                    .into(),
            ),
            (SagaStatus::RolledBack, _) => {
                self.saga.run += 1;
                self.saga.outputs.clear();
                // Its standby, if it had one, is being discarded since the rollback:
                // the new run makes the tenant's own site.
                self.saga.tenant.standby = None;
                self.saga.error = None;
                self.saga.result = None;
                self.saga.percent = 0;
                self.saga.status = SagaStatus::Running;
                let run = self.saga.run;
                self.publish(
                    None,
                    None,
                    0,
                    format!("Replaying the signup from the start (run {run})"),
                );
                self.begin_step(0, 1);
                Ok(())
            }
            (SagaStatus::CompensationFailed, Phase::Finished) => {
                let Some(position) = self
                    .saga
                    .error
                    .as_ref()
                    .and_then(|e| e.step.as_deref())
                    .and_then(|name| self.definition.position(name))
                else {
                    return Err(
                        "compensation_failed saga does not name the step whose undo failed".into(),
                    );
                };
                // Back to the failure that started the rollback: the undo error is
                // stale now, and a new undo failure is set beside the root again.
                let root = self.saga.error.take().and_then(|e| e.cause).map(|c| *c);
                self.saga.error = root;
                self.saga.status = SagaStatus::Compensating;
                // A new run, so the undo's commands get new ids: the failed undo's id
                // is remembered by its step as finished (a permanent failure is
                // answered from memory, not redone) and JetStream drops a copy within
                // its duplicate window. The undo only removes what this saga owns, by
                // saga id, whichever run made it.
                self.saga.run += 1;
                let run = self.saga.run;
                self.publish(
                    Some(position),
                    None,
                    0,
                    format!("Resuming the undo (run {run})"),
                );
                self.begin_undo(position, 1);
                Ok(())
            }
            (status, _) => Err(format!(
                "only rolled_back or compensation_failed sagas can be replayed; this one is {}",
                status.as_str()
            )),
        }
    }
}
