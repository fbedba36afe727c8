//! A scripted stand-in for a step service (positions 2-4 in this tests, no-op
//! steps in the load generator). It journals every command it runs and fails on
//! request; it runs inside the real step runtime, so everything around it is real.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::{StepAction, StepCommand};
use step_runtime::{Step, StepContext, StepError};

/// How a scripted step behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Fail this many execute attempts (counted over the step's life).
    pub fail_executes: u32,
    /// Whether those failures are permanent (else transient).
    pub permanent: bool,
    /// Fail this many undo attempts (permanently).
    pub fail_compensations: u32,
    /// Work this long per execute.
    pub delay: Duration,
}

impl Behaviour {
    /// Fails every execute permanently.
    pub fn fail() -> Self {
        Self {
            fail_executes: u32::MAX,
            permanent: true,
            ..Self::default()
        }
    }
}

/// One journal line: which step did what, for which saga, with which inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Step name.
    pub step: String,
    /// Execute or compensate.
    pub action: StepAction,
    /// The saga.
    pub saga_id: uuid::Uuid,
    /// The saga run.
    pub run: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Whether it succeeded.
    pub ok: bool,
    /// The command's outputs of earlier steps.
    pub outputs: serde_json::Value,
}

/// What the scripted steps did, in order.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Entry>>>);

impl Journal {
    /// Every entry so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("journal").clone()
    }

    /// `"<step> <action>"` for one saga's successful work, in order.
    pub fn lines(&self, saga_id: uuid::Uuid) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| e.saga_id == saga_id && e.ok)
            .map(|e| format!("{} {}", e.step, e.action.as_str()))
            .collect()
    }

    fn push(&self, entry: Entry) {
        self.0.lock().expect("journal").push(entry);
    }
}

/// A step that does nothing but what its [`Behaviour`] says.
pub struct ScriptedStep {
    name: String,
    behaviour: Behaviour,
    journal: Journal,
    executes: AtomicU32,
    compensations: AtomicU32,
}

impl ScriptedStep {
    /// A scripted step called `name`.
    pub fn new(name: &str, behaviour: Behaviour, journal: Journal) -> Self {
        Self {
            name: name.into(),
            behaviour,
            journal,
            executes: AtomicU32::new(0),
            compensations: AtomicU32::new(0),
        }
    }

    fn record(&self, command: &StepCommand, ok: bool) {
        self.journal.push(Entry {
            step: self.name.clone(),
            action: command.action,
            saga_id: command.saga_id,
            run: command.run,
            attempt: command.attempt,
            ok,
            outputs: serde_json::to_value(&command.outputs).unwrap_or_default(),
        });
    }
}

impl Step for ScriptedStep {
    fn name(&self) -> &str {
        &self.name
    }

    async fn execute(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        if !self.behaviour.delay.is_zero() {
            context
                .output(format!("{} working", self.name), Some(50))
                .await;
            tokio::time::sleep(self.behaviour.delay).await;
        }
        if self.executes.fetch_add(1, Ordering::SeqCst) < self.behaviour.fail_executes {
            self.record(command, false);
            let message = format!("{} failed as scripted", self.name);
            return Err(if self.behaviour.permanent {
                StepError::permanent("scripted_failure", message)
            } else {
                StepError::transient("scripted_failure", message)
            });
        }
        self.record(command, true);
        Ok(serde_json::json!({ "step": self.name }))
    }

    async fn compensate(
        &self,
        command: &StepCommand,
        _context: &StepContext,
    ) -> Result<(), StepError> {
        if self.compensations.fetch_add(1, Ordering::SeqCst) < self.behaviour.fail_compensations {
            self.record(command, false);
            return Err(StepError::permanent(
                "scripted_undo_failure",
                format!("undo of {} failed as scripted", self.name),
            ));
        }
        self.record(command, true);
        Ok(())
    }
}
