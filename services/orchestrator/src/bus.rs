//! The orchestrator's NATS adapter: publishing commands, progress and dead letters.

use anyhow::Context as _;
use async_nats::jetstream;
use contracts::signup::DeadLetter;
use contracts::{ProgressEvent, StepCommand, Subjects};
use step_runtime::bus;

/// What the orchestrator publishes.
#[derive(Clone)]
pub struct Bus {
    pub(crate) js: jetstream::Context,
    pub(crate) client: async_nats::Client,
    pub(crate) subjects: Subjects,
}

impl Bus {
    /// Publishes a step command; JetStream drops a second copy with the same id.
    pub async fn dispatch(&self, command: &StepCommand) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(command).context("encoding a step command")?;
        bus::publish_acked(
            &self.js,
            self.subjects.step_command(&command.step),
            &command.command_id,
            payload.into(),
        )
        .await
    }

    /// Publishes progress events in order and waits until the stream has them all.
    pub async fn progress(&self, events: &[ProgressEvent]) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event).context("encoding a progress event")?;
            let msg_id = format!("{}:{}", event.saga_id, event.sequence);
            acks.push(
                bus::publish_once(
                    &self.js,
                    self.subjects.progress(&event.saga_id),
                    &msg_id,
                    payload.into(),
                )
                .await?,
            );
        }
        for ack in acks {
            ack.await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("waiting for a progress ack")?;
        }
        Ok(())
    }

    /// Sets an unreadable signup aside on the dead-letter subject.
    pub async fn dead_letter(&self, letter: &DeadLetter) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(letter).context("encoding a dead letter")?;
        let ack = self
            .js
            .publish(self.subjects.signup_dead_letter(), payload.into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ack.await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("waiting for the dead-letter ack")?;
        Ok(())
    }
}
