//! The saga core: `next(saga, input) -> (saga, actions)`. No I/O, no clock, no
//! randomness: the driver passes `now` in, stores the new state, then carries out the
//! actions. Every decision about retries, timeouts and compensation is made here.

use chrono::{DateTime, Utc};
use contracts::{ErrorInfo, SagaStatus, StepAction, StepEvent, StepReport, StepStatus};

use super::definition::{RetryPolicy, SagaDefinition, StepDefinition};
use super::state::{Action, Decision, Input, Phase, Saga, Timer};

/// A deterministic seed for the jitter of one retry.
fn jitter_seed(saga: &Saga, step: usize, attempt: u32, undo: bool) -> u64 {
    // FNV-1a over the coordinates: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(saga.id.as_bytes());
    feed(&saga.run.to_le_bytes());
    feed(&(step as u64).to_le_bytes());
    feed(&attempt.to_le_bytes());
    feed(&[u8::from(undo)]);
    hash
}

fn after(now: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn retry_delay(
    policy: &RetryPolicy,
    saga: &Saga,
    step: usize,
    next_attempt: u32,
    undo: bool,
) -> std::time::Duration {
    policy.delay_before(next_attempt, jitter_seed(saga, step, next_attempt, undo))
}

/// Applies `input` to `saga` at instant `now`.
pub fn next(
    definition: &SagaDefinition,
    saga: &Saga,
    input: Input,
    now: DateTime<Utc>,
) -> Decision {
    let mut t = Transition {
        definition,
        saga: saga.clone(),
        actions: Vec::new(),
        now,
    };
    match t.apply(input) {
        Ok(()) => {
            if let Some(timer) = t.saga.timer() {
                if saga.timer().as_ref() != Some(&timer) {
                    t.actions.push(Action::Schedule(timer));
                }
            }
            Decision::Apply {
                saga: t.saga,
                actions: t.actions,
            }
        }
        Err(reason) => Decision::Ignore(reason),
    }
}

pub(super) struct Transition<'d> {
    pub(super) definition: &'d SagaDefinition,
    pub(super) saga: Saga,
    pub(super) actions: Vec<Action>,
    pub(super) now: DateTime<Utc>,
}

impl Transition<'_> {
    fn apply(&mut self, input: Input) -> Result<(), String> {
        match input {
            Input::Start => self.start(),
            Input::Refuse(rejection) => self.refuse(&rejection),
            Input::Replay(action) => self.replay(action),
            Input::Requeue {
                action,
                letter,
                step,
            } => self.requeue(action, letter, step.as_deref()),
            Input::Discard(reason) => self.discard(reason),
            Input::Reported(event) => self.reported(event),
            Input::TimerFired(timer) => self.timer_fired(timer),
        }
    }

    pub(super) fn step(&self, position: usize) -> &StepDefinition {
        &self.definition.steps[position]
    }

    pub(super) fn publish(
        &mut self,
        step: Option<usize>,
        status: Option<StepStatus>,
        attempt: u32,
        message: String,
    ) {
        let name = step.map(|p| self.definition.steps[p].name.clone());
        let event = self
            .saga
            .progress(self.now, name.as_deref(), status, attempt, message);
        self.actions.push(Action::Publish(event));
    }

    fn start(&mut self) -> Result<(), String> {
        if self.saga.status != SagaStatus::Accepted || self.saga.phase != Phase::Idle {
            return Err(format!(
                "saga already started ({})",
                self.saga.status.as_str()
            ));
        }
        let accepted = if self.saga.tenant.standby.is_some() {
            "Signup accepted: using a prepared workspace"
        } else {
            "Signup accepted"
        };
        self.publish(None, None, 0, accepted.into());
        self.saga.status = SagaStatus::Running;
        self.begin_step(0, 1);
        Ok(())
    }

    /// A standby the pool no longer wants: its completed build is undone from the last
    /// step back, like a failed signup's (each step undoes only what is still the
    /// standby's: a claimed folder or an adopted database belongs to its signup). The
    /// saga keeps its run: its undo commands were never sent before.
    fn discard(&mut self, reason: String) -> Result<(), String> {
        if !self.saga.tenant.standby_build {
            return Err("only a standby build saga can be discarded".into());
        }
        if self.saga.status != SagaStatus::Completed {
            return Err(format!(
                "only a completed standby build can be discarded; this one is {}",
                self.saga.status.as_str()
            ));
        }
        let message = format!("Standby discarded ({reason}): removing what it created");
        self.saga.error = Some(ErrorInfo {
            code: super::state::STANDBY_DISCARDED.into(),
            message: reason,
            step: None,
            cause: None,
        });
        self.saga.status = SagaStatus::Compensating;
        self.saga.result = None;
        self.publish(None, None, 0, message);
        self.begin_undo(self.definition.steps.len() - 1, 1);
        Ok(())
    }

    pub(super) fn begin_step(&mut self, position: usize, attempt: u32) {
        let step = self.step(position).clone();
        let deadline = after(self.now, step.timeout);
        self.saga.phase = Phase::Executing {
            step: position,
            attempt,
            deadline,
        };
        if attempt == 1 {
            self.saga.percent = step.percent_start;
        }
        self.publish(
            Some(position),
            Some(StepStatus::Started),
            attempt,
            step.message.clone(),
        );
        self.actions.push(Action::Dispatch {
            step: step.name,
            action: StepAction::Execute,
            attempt,
            deadline,
        });
    }

    pub(super) fn begin_undo(&mut self, position: usize, attempt: u32) {
        let step = self.step(position).clone();
        let deadline = after(self.now, step.undo_timeout);
        self.saga.phase = Phase::Compensating {
            step: position,
            attempt,
            deadline,
        };
        self.publish(
            Some(position),
            Some(StepStatus::Compensating),
            attempt,
            step.undo_message.clone(),
        );
        self.actions.push(Action::Dispatch {
            step: step.name,
            action: StepAction::Compensate,
            attempt,
            deadline,
        });
    }

    fn reported(&mut self, event: StepEvent) -> Result<(), String> {
        if event.run != self.saga.run {
            return Err(format!(
                "report for run {} but the saga is at run {}",
                event.run, self.saga.run
            ));
        }
        let (position, attempt) = match (&self.saga.phase, event.action) {
            (Phase::Executing { step, attempt, .. }, StepAction::Execute)
            | (Phase::Compensating { step, attempt, .. }, StepAction::Compensate) => {
                (*step, *attempt)
            }
            _ => {
                return Err(format!(
                    "no {} of {} is pending",
                    event.action.as_str(),
                    event.step
                ))
            }
        };
        if self.step(position).name != event.step || attempt != event.attempt {
            return Err(format!(
                "stale report for {} attempt {}; pending is {} attempt {attempt}",
                event.step,
                event.attempt,
                self.step(position).name
            ));
        }
        match (event.action, event.report) {
            (_, StepReport::Output { line, percent }) => {
                if event.action == StepAction::Execute {
                    if let Some(p) = percent {
                        let step = self.step(position);
                        let span = u32::from(step.percent_end.saturating_sub(step.percent_start));
                        let within = (span * u32::from(p.min(100)) / 100) as u8;
                        // Progress never goes backwards on a dashboard.
                        self.saga.percent = self.saga.percent.max(step.percent_start + within);
                    }
                }
                self.publish(Some(position), Some(StepStatus::Output), attempt, line);
            }
            (StepAction::Execute, StepReport::Completed { output }) => {
                self.step_completed(position, attempt, output)
            }
            (
                StepAction::Execute,
                StepReport::Failed {
                    code,
                    message,
                    retryable,
                },
            ) => self.step_failed(
                position,
                attempt,
                ErrorInfo {
                    code,
                    message,
                    step: Some(event.step),
                    cause: None,
                },
                retryable,
            ),
            (StepAction::Compensate, StepReport::Completed { .. }) => {
                self.undo_completed(position, attempt)
            }
            (
                StepAction::Compensate,
                StepReport::Failed {
                    code,
                    message,
                    retryable,
                },
            ) => self.undo_failed(
                position,
                attempt,
                ErrorInfo {
                    code,
                    message,
                    step: Some(event.step),
                    cause: None,
                },
                retryable,
            ),
        }
        Ok(())
    }

    fn timer_fired(&mut self, timer: Timer) -> Result<(), String> {
        if timer.run != self.saga.run || timer.phase != self.saga.phase {
            return Err("timer no longer pending".into());
        }
        match timer.phase {
            Phase::Executing { step, attempt, .. } => {
                let name = self.step(step).name.clone();
                let timeout = self.step(step).timeout;
                let error = ErrorInfo {
                    code: "step_timeout".into(),
                    message: format!("{name} did not answer within {}s", timeout.as_secs()),
                    step: Some(name),
                    cause: None,
                };
                self.step_failed(step, attempt, error, true);
            }
            Phase::RetryWait { step, attempt, .. } => self.begin_step(step, attempt),
            Phase::Compensating { step, attempt, .. } => {
                let name = self.step(step).name.clone();
                let timeout = self.step(step).undo_timeout;
                let error = ErrorInfo {
                    code: "undo_timeout".into(),
                    message: format!(
                        "undo of {name} did not answer within {}s",
                        timeout.as_secs()
                    ),
                    step: Some(name),
                    cause: None,
                };
                self.undo_failed(step, attempt, error, true);
            }
            Phase::CompensationRetryWait { step, attempt, .. } => self.begin_undo(step, attempt),
            Phase::Idle | Phase::Finished => return Err("timer no longer pending".into()),
        }
        Ok(())
    }

    fn step_completed(&mut self, position: usize, attempt: u32, output: serde_json::Value) {
        let step = self.step(position).clone();
        self.saga.outputs.insert(step.name.clone(), output);
        self.saga.percent = step.percent_end;
        self.publish(
            Some(position),
            Some(StepStatus::Completed),
            attempt,
            format!("{}: done", step.message),
        );
        if position + 1 < self.definition.steps.len() {
            self.begin_step(position + 1, 1);
            return;
        }
        self.saga.status = SagaStatus::Completed;
        self.saga.phase = Phase::Finished;
        self.saga.percent = 100;
        self.saga.result = Some(self.completion_result());
        self.publish(
            None,
            None,
            0,
            format!("Workspace ready at https://{}", self.saga.tenant.site_name),
        );
    }

    /// What the client gets: the site URL, the admin email, and the `result` object that
    /// any step put in its output (for example API keys, with secrets sealed).
    fn completion_result(&self) -> serde_json::Value {
        let mut result = serde_json::Map::new();
        result.insert(
            "site_url".into(),
            format!("https://{}", self.saga.tenant.site_name).into(),
        );
        result.insert(
            "site_name".into(),
            self.saga.tenant.site_name.clone().into(),
        );
        result.insert(
            "subdomain".into(),
            self.saga.tenant.subdomain.clone().into(),
        );
        result.insert(
            "admin_email".into(),
            self.saga.tenant.admin_email.clone().into(),
        );
        for step in &self.definition.steps {
            if let Some(serde_json::Value::Object(extra)) = self
                .saga
                .outputs
                .get(&step.name)
                .and_then(|o| o.get("result"))
            {
                for (k, v) in extra {
                    result.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        serde_json::Value::Object(result)
    }

    fn step_failed(&mut self, position: usize, attempt: u32, error: ErrorInfo, retryable: bool) {
        let step = self.step(position).clone();
        if retryable && attempt < step.retry.max_attempts {
            let delay = retry_delay(&step.retry, &self.saga, position, attempt + 1, false);
            self.saga.phase = Phase::RetryWait {
                step: position,
                attempt: attempt + 1,
                due: after(self.now, delay),
            };
            let message = format!(
                "{}: attempt {attempt} of {} failed ({}); retrying in {:.1}s",
                step.message,
                step.retry.max_attempts,
                error.message,
                delay.as_secs_f64()
            );
            self.saga.error = Some(error);
            self.publish(Some(position), Some(StepStatus::Retrying), attempt, message);
            // The error belongs to this attempt only; a later success clears it.
            self.saga.error = None;
            return;
        }
        let message = format!("{} failed: {}", step.message, error.message);
        self.saga.error = Some(error);
        self.saga.status = SagaStatus::Compensating;
        self.publish(Some(position), Some(StepStatus::Failed), attempt, message);
        // Every step that started is undone, the failed one included: it may have left
        // a partial effect. Steps own their undo and make it idempotent.
        self.begin_undo(position, 1);
    }

    fn undo_completed(&mut self, position: usize, attempt: u32) {
        let step = self.step(position).clone();
        self.saga.outputs.remove(&step.name);
        self.publish(
            Some(position),
            Some(StepStatus::Compensated),
            attempt,
            format!("{}: done", step.undo_message),
        );
        if position > 0 {
            self.begin_undo(position - 1, 1);
            return;
        }
        if self.standby_fallback() {
            return;
        }
        self.saga.status = SagaStatus::RolledBack;
        self.saga.phase = Phase::Finished;
        let ended = if self.saga.tenant.standby_build {
            "Standby removed: everything created for it was removed"
        } else {
            "Signup rolled back: everything created was removed"
        };
        self.publish(None, None, 0, ended.into());
    }

    /// A signup whose claimed standby turned out unusable, now undone: it goes on
    /// without the standby, the usual way, in a new run (its commands get new ids),
    /// instead of ending rolled back. Whether it did.
    fn standby_fallback(&mut self) -> bool {
        let unusable = self
            .saga
            .error
            .as_ref()
            .is_some_and(|e| e.code == contracts::STANDBY_UNUSABLE);
        if !unusable || self.saga.tenant.standby.is_none() {
            return false;
        }
        let why = self
            .saga
            .error
            .take()
            .map(|e| e.message)
            .unwrap_or_default();
        self.saga.tenant.standby = None;
        self.saga.run += 1;
        self.saga.outputs.clear();
        self.saga.result = None;
        self.saga.percent = 0;
        self.saga.status = SagaStatus::Running;
        self.publish(
            None,
            None,
            0,
            format!(
                "The prepared workspace could not be used ({why}); preparing one the usual way"
            ),
        );
        self.begin_step(0, 1);
        true
    }

    fn undo_failed(&mut self, position: usize, attempt: u32, error: ErrorInfo, retryable: bool) {
        let step = self.step(position).clone();
        if retryable && attempt < step.undo_retry.max_attempts {
            let delay = retry_delay(&step.undo_retry, &self.saga, position, attempt + 1, true);
            self.saga.phase = Phase::CompensationRetryWait {
                step: position,
                attempt: attempt + 1,
                due: after(self.now, delay),
            };
            let message = format!(
                "{}: attempt {attempt} of {} failed ({}); retrying in {:.1}s",
                step.undo_message,
                step.undo_retry.max_attempts,
                error.message,
                delay.as_secs_f64()
            );
            self.publish(Some(position), Some(StepStatus::Retrying), attempt, message);
            return;
        }
        let message = format!(
            "{} failed: {}; an operator must look (replay resumes the undo)",
            step.undo_message, error.message
        );
        // The undo's error goes beside the failure that started the rollback, never
        // over it: that failure is what an operator must mend first.
        self.saga.error = Some(ErrorInfo {
            cause: self.saga.error.take().map(Box::new),
            ..error
        });
        self.saga.status = SagaStatus::CompensationFailed;
        self.saga.phase = Phase::Finished;
        self.publish(Some(position), Some(StepStatus::Failed), attempt, message);
    }
}
