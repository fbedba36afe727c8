//! The transitions an operator or the intake asks for, beside a step's reports and
//! timers: a signup refused before it starts, and a replay (from the start, or of an
//! undo that ended `compensation_failed`).

use contracts::{ErrorInfo, OperatorAction, Rejection, SagaStatus};

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

    /// The first event of a replayed run says who replayed it and why, when known,
    /// in its message (where people read) and in `operator_action` (for tools).
    fn note_operator(&mut self, action: Option<OperatorAction>) {
        let Some(action) = action else { return };
        let Some(Action::Publish(event)) = self
            .actions
            .iter_mut()
            .find(|a| matches!(a, Action::Publish(_)))
        else {
            return;
        };
        event.message = if action.reason.is_empty() {
            format!("Replayed by {}. {}", action.operator, event.message)
        } else {
            format!(
                "Replayed by {}: {}. {}",
                action.operator, action.reason, event.message
            )
        };
        event.operator_action = Some(Box::new(action));
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
            (SagaStatus::RolledBack, _) => {
                self.saga.run += 1;
                self.saga.outputs.clear();
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
