//! The orchestrator's NATS adapter: publishing commands, progress and dead letters.
//!
//! Publishes are sent in order on one connection and confirmed off the saga's
//! critical path: every transition is stored before anything is sent, so what is not
//! confirmed is sent again (commands: once at once, then by the step timeout or a
//! restart; progress: by the outbox sweep).

use std::future::Future;

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
    /// Sends a step command (JetStream drops a second copy with the same id) and
    /// confirms it in the background.
    pub async fn dispatch(&self, command: &StepCommand) -> anyhow::Result<()> {
        let payload: bytes::Bytes = serde_json::to_vec(command)
            .context("encoding a step command")?
            .into();
        let subject = self.subjects.step_command(&command.step);
        let ack = bus::publish_once(
            &self.js,
            subject.clone(),
            &command.command_id,
            payload.clone(),
        )
        .await?;
        let js = self.js.clone();
        let msg_id = command.command_id.clone();
        tokio::spawn(async move {
            if let Err(e) = ack.await {
                tracing::warn!(error = %e, command = %msg_id, "command not confirmed; sending it again");
                if let Err(e) = bus::publish_acked(&js, subject, &msg_id, payload).await {
                    tracing::error!(error = %format!("{e:#}"), command = %msg_id, "command lost; the step timeout will retry it");
                }
            }
        });
        Ok(())
    }

    /// Sends progress events in order; the returned future resolves once the stream
    /// has them all.
    pub async fn send_progress(
        &self,
        events: &[ProgressEvent],
    ) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + Send + 'static> {
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
        Ok(async move {
            for ack in acks {
                ack.await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("waiting for a progress ack")?;
            }
            Ok(())
        })
    }

    /// Publishes progress events in order and waits until the stream has them all.
    pub async fn progress(&self, events: &[ProgressEvent]) -> anyhow::Result<()> {
        self.send_progress(events).await?.await
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
