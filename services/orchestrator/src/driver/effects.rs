//! Carrying out a stored transition: the timer first, then the commands (each
//! confirmed in the background, an unconfirmed one marked for the sweep), then the
//! progress events (an unconfirmed one left to the outbox). Nothing here fails the
//! input whose transition it carries out.

use contracts::StepCommand;
use uuid::Uuid;

use super::Core;
use crate::bus::{Bus, Sending};
use crate::saga::{Action, Saga, Timer};
use crate::store::SagaStore;

impl<S: SagaStore, B: Bus> Core<S, B> {
    /// Carries out a stored transition's actions: the timer first (so nothing that
    /// fails below can leave the saga without one), then commands (the saga's
    /// critical path), then progress. Never fails: an unsent command is marked for
    /// the sweep, unsent progress is the outbox's. `again`: the commands are the
    /// pending ones sent once more (resume, sweep), marked so.
    pub(super) async fn carry_out(&self, saga: &Saga, actions: Vec<Action>, again: bool) {
        let mut events = Vec::new();
        let mut commands = Vec::new();
        let plain = if again {
            Sending::Again
        } else {
            Sending::First
        };
        let command = |step: String, action, attempt, deadline| StepCommand {
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
        for action in actions {
            match action {
                Action::Schedule(timer) => self.schedule_at(timer),
                Action::Publish(event) => events.push(event),
                Action::Dispatch {
                    step,
                    action,
                    attempt,
                    deadline,
                } => commands.push((command(step, action, attempt, deadline), plain)),
                Action::Resend {
                    step,
                    action,
                    attempt,
                    deadline,
                    dead_letter,
                } => commands.push((
                    command(step, action, attempt, deadline),
                    Sending::Requeued(dead_letter),
                )),
            }
        }
        for (command, sending) in &commands {
            match self
                .bus
                .dispatch(command, *sending, saga.trace.as_ref())
                .await
            {
                Ok(confirmation) => {
                    tracing::info!(step = %command.step, action = command.action.as_str(), attempt = command.attempt, "command dispatched");
                    let unsent = self.unsent.clone();
                    let saga_id = saga.id;
                    tokio::spawn(async move {
                        if let Err(e) = confirmation.await {
                            tracing::warn!(error = %format!("{e:#}"), %saga_id, "command not confirmed; the sweep sends it again");
                            unsent
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(saga_id);
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), step = %command.step, "command not sent; the sweep sends it again");
                    self.mark_unsent(saga.id);
                }
            }
        }
        self.publish_progress(&events, saga.trace.as_ref()).await;
    }

    pub(super) fn mark_unsent(&self, saga_id: Uuid) {
        self.unsent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(saga_id);
    }

    pub(super) async fn publish_progress(
        &self,
        events: &[contracts::ProgressEvent],
        trace: Option<&contracts::TraceParent>,
    ) {
        if events.is_empty() {
            return;
        }
        // Stored already: a failure here is repaired by the outbox sweep, never lost.
        match self.bus.send_progress(events, trace).await {
            Ok(confirmation) => {
                let published = self.published.clone();
                let keys: Vec<(Uuid, u64)> =
                    events.iter().map(|e| (e.saga_id, e.sequence)).collect();
                tokio::spawn(async move {
                    match confirmation.await {
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
    }

    pub(crate) fn schedule_at(&self, timer: Timer) {
        self.timers.schedule(timer);
    }
}

pub(super) fn progress_of(actions: &[Action]) -> Vec<contracts::ProgressEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}
