//! Publishing a command's output lines and its final report on `saga.evt.<step>`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream;
use chrono::Utc;
use contracts::{StepCommand, StepEvent, StepReport};

use crate::bus;

/// Publishes a command's output lines and its final report.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub(crate) js: jetstream::Context,
    pub(crate) subject: String,
    pub(crate) command: Arc<StepCommand>,
    /// This handling of the command, unique: an instance that takes over a command
    /// (after its first one died or released it) numbers its lines from 0 again, and
    /// they must not pass for the first one's. (The delivery count cannot tell them
    /// apart: a copy the orchestrator sends again is a new message counting from 1.)
    pub(crate) handling: String,
    pub(crate) lines: Arc<AtomicU32>,
    /// The command's trace: each report carries its next hop (`traceparent`).
    pub(crate) trace: Option<contracts::TraceParent>,
}

impl Reporter {
    fn event(&self, report: StepReport) -> StepEvent {
        StepEvent {
            command_id: self.command.command_id.clone(),
            saga_id: self.command.saga_id,
            run: self.command.run,
            step: self.command.step.clone(),
            action: self.command.action,
            attempt: self.command.attempt,
            report,
            at: Utc::now(),
        }
    }

    pub(crate) async fn output(&self, line: String, percent: Option<u8>) {
        let n = self.lines.fetch_add(1, Ordering::Relaxed);
        let event = self.event(StepReport::Output { line, percent });
        let msg_id = format!("{}:out:{}:{n}", self.command.command_id, self.handling);
        // Output is best effort: a lost line must not fail the step.
        if let Err(e) = self.publish(&msg_id, &event).await {
            tracing::warn!(error = %e, "could not publish an output line");
        }
    }

    /// Publishes the final report and waits for the stream's ack. Its message id is
    /// `<command_id>:done` whoever sends it, so a report sent again (from memory, or by
    /// another instance) within the duplicate window is stored once.
    pub(crate) async fn finish(&self, report: StepReport) -> anyhow::Result<()> {
        let event = self.event(report);
        let msg_id = format!("{}:done", self.command.command_id);
        self.publish(&msg_id, &event)
            .await?
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("waiting for the ack of {}", self.subject))?;
        Ok(())
    }

    async fn publish(
        &self,
        msg_id: &str,
        event: &StepEvent,
    ) -> anyhow::Result<jetstream::context::PublishAckFuture> {
        let payload = serde_json::to_vec(event).context("encoding the report")?;
        let traceparent = self
            .trace
            .as_ref()
            .map(|t| crate::telemetry::outgoing(t).to_string());
        let marks: Vec<(&str, &str)> = traceparent
            .iter()
            .map(|t| (contracts::trace::TRACEPARENT_HEADER, t.as_str()))
            .collect();
        bus::publish_marked(
            &self.js,
            self.subject.clone(),
            msg_id,
            &marks,
            payload.into(),
        )
        .await
    }
}
