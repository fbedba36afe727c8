//! The orchestrator's NATS adapter: what it publishes (commands, progress, dead
//! letters) behind the [`Bus`] port, and the inputs it receives as [`Inbound`]
//! messages, so the driver never names `async-nats` and its tests run on a fake.
//!
//! Publishes are sent in order on one connection and confirmed off the saga's
//! critical path: every transition is stored before anything is sent, so what is not
//! confirmed is sent again (commands: by the driver's sweep, progress: by the outbox
//! sweep), and the step's deadline is armed whatever happens to the command.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind};
use contracts::admin::DeadLetterEntry;
use contracts::signup::DeadLetter;
use contracts::step_dead_letter::StepDeadLetter;
use contracts::{ProbeReply, ProgressEvent, StepCommand, SubdomainProbe, Subjects, TraceParent};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use step_runtime::bus;

/// Confirmation of a publish: resolves once the stream has every message.
pub type Confirmation = BoxFuture<'static, anyhow::Result<()>>;

/// Which sending of a command this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// The first: plain, with the command id as its message id.
    First,
    /// Once more (resume, takeover, sweep): it may have reached the step before, so
    /// it is marked `Saga-Sent-Again`; same message id, so JetStream drops it within
    /// its duplicate window.
    Again,
    /// Once more for a requeued dead letter (its sequence): marked as sent again,
    /// with a message id of its own per letter (`<command id>:requeue:<seq>`), so
    /// that it goes through within the duplicate window and a second requeue of the
    /// same letter does not.
    Requeued(u64),
}

impl Sending {
    /// The `Nats-Msg-Id` of `command_id` sent this way.
    pub fn message_id(self, command_id: &str) -> String {
        match self {
            Self::First | Self::Again => command_id.to_string(),
            Self::Requeued(letter) => format!("{command_id}:requeue:{letter}"),
        }
    }
}

/// What the driver sends out.
pub trait Bus: Send + Sync + 'static {
    /// Sends a step command (JetStream drops a second copy with the same message
    /// id), marked as sent again unless it is the first `sending`; the returned
    /// confirmation resolves once the stream has it.
    /// The command carries `trace`'s next hop in its `traceparent` header.
    fn dispatch(
        &self,
        command: &StepCommand,
        sending: Sending,
        trace: Option<&TraceParent>,
    ) -> impl Future<Output = anyhow::Result<Confirmation>> + Send;

    /// Sends progress events in order; the returned confirmation resolves once the
    /// stream has them all. Each carries `trace`'s next hop in its `traceparent`
    /// header, so a web app following the saga stays in its trace.
    fn send_progress(
        &self,
        events: &[ProgressEvent],
        trace: Option<&TraceParent>,
    ) -> impl Future<Output = anyhow::Result<Confirmation>> + Send;

    /// Sets an input aside on its dead-letter subject, and waits for the stream to
    /// have it.
    fn dead_letter(&self, letter: &SetAside) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Asks `step`'s service whether it sees the subdomain held (`saga.probe.<step>`).
    fn probe(
        &self,
        step: &str,
        probe: &SubdomainProbe,
    ) -> impl Future<Output = anyhow::Result<ProbeReply>> + Send;
}

/// How long a step service has to answer a probe: the saga's worker waits for it
/// (its other sagas' inputs too), and an unanswered probe starts the saga anyway.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A dead letter: a signup on `tenant.signup.dead_letter` (the web app's contract),
/// anything else the orchestrator gives up on on `saga.dead_letter.orchestrator`.
#[derive(Debug, Clone)]
pub enum SetAside {
    /// A signup that cannot be read or applied.
    Signup(DeadLetter),
    /// A step report that cannot be applied.
    Input(StepDeadLetter),
}

/// The `source` of the orchestrator's own dead letters (`saga.dead_letter.<source>`).
pub const DEAD_LETTER_SOURCE: &str = "orchestrator";

/// How an input message is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Handled: never deliver it again.
    Ack,
    /// Not handled: deliver it again after the delay.
    Retry(Duration),
    /// Never deliver it again (malformed, or set aside as a dead letter).
    Term,
}

/// Settles one delivered message.
pub trait Acker: Send + Sync {
    /// Tells the server how the message ended.
    fn settle(self: Box<Self>, how: Settle) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// An input message: a signup or a step report.
pub struct Inbound {
    /// The subject it arrived on.
    pub subject: String,
    /// Its bytes.
    pub payload: bytes::Bytes,
    /// How often it has been delivered, 1 the first time.
    pub delivered: u64,
    /// Its `traceparent` header, when it had a valid one.
    pub traceparent: Option<TraceParent>,
    /// When this process got it (`saga_input_seconds` counts from here).
    pub received: std::time::Instant,
    acker: Box<dyn Acker>,
}

impl Inbound {
    /// A message that `acker` settles.
    pub fn new(
        subject: String,
        payload: bytes::Bytes,
        delivered: u64,
        acker: Box<dyn Acker>,
    ) -> Self {
        Self {
            subject,
            payload,
            delivered,
            traceparent: None,
            received: std::time::Instant::now(),
            acker,
        }
    }

    /// Settles the message; a failure only means the server delivers it again.
    pub async fn settle(self, how: Settle) {
        if let Err(e) = self.acker.settle(how).await {
            tracing::warn!(error = %format!("{e:#}"), ?how, "could not settle an input; it will be redelivered");
        }
    }
}

struct JetStreamAcker(jetstream::Message);

impl Acker for JetStreamAcker {
    fn settle(self: Box<Self>, how: Settle) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            let kind = match how {
                Settle::Ack => AckKind::Ack,
                Settle::Retry(delay) => AckKind::Nak(Some(delay)),
                Settle::Term => AckKind::Term,
            };
            self.0
                .ack_with(kind)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        .boxed()
    }
}

impl From<jetstream::Message> for Inbound {
    fn from(message: jetstream::Message) -> Self {
        let delivered = message
            .info()
            .map(|info| info.delivered.max(1) as u64)
            .unwrap_or(1);
        let traceparent = step_runtime::telemetry::traceparent_of(message.headers.as_ref());
        let mut inbound = Self::new(
            message.subject.to_string(),
            message.payload.clone(),
            delivered,
            Box::new(JetStreamAcker(message)),
        );
        inbound.traceparent = traceparent;
        inbound
    }
}

/// The [`Bus`] over NATS JetStream.
#[derive(Clone)]
pub struct NatsBus {
    pub(crate) js: jetstream::Context,
    pub(crate) client: async_nats::Client,
    pub(crate) subjects: Subjects,
}

impl NatsBus {
    /// Publishes progress events in order and waits until the stream has them all.
    pub async fn progress(
        &self,
        events: &[ProgressEvent],
        trace: Option<&TraceParent>,
    ) -> anyhow::Result<()> {
        self.send_progress(events, trace).await?.await
    }

    /// The dead letter at stream sequence `sequence`, if there is one.
    pub async fn dead_letter_at(&self, sequence: u64) -> anyhow::Result<Option<DeadLetterEntry>> {
        // Streams count from 1; JetStream calls a get of 0 a bad request.
        if sequence == 0 {
            return Ok(None);
        }
        let stream = self
            .js
            .get_stream(self.subjects.dead_letter_stream())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("opening the dead-letter stream")?;
        match stream.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(entry(sequence, &message.subject, &message.payload))),
            Err(e)
                if matches!(
                    e.kind(),
                    jetstream::stream::RawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(anyhow::anyhow!("{e}"))
                .with_context(|| format!("reading dead letter {sequence}")),
        }
    }

    /// The newest `limit` dead letters, newest first.
    pub async fn recent_dead_letters(&self, limit: u64) -> anyhow::Result<Vec<DeadLetterEntry>> {
        let mut stream = self
            .js
            .get_stream(self.subjects.dead_letter_stream())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("opening the dead-letter stream")?;
        let state = stream
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("reading the dead-letter stream's state")?
            .state
            .clone();
        let mut letters = Vec::new();
        let mut sequence = state.last_sequence;
        while sequence >= state.first_sequence.max(1) && (letters.len() as u64) < limit {
            // A gap (a letter removed by hand) is skipped.
            if let Ok(message) = stream.get_raw_message(sequence).await {
                letters.push(entry(sequence, &message.subject, &message.payload));
            }
            sequence -= 1;
        }
        Ok(letters)
    }
}

/// A stored dead letter as the admin API shows it.
fn entry(sequence: u64, subject: &str, payload: &[u8]) -> DeadLetterEntry {
    DeadLetterEntry {
        sequence,
        subject: subject.to_string(),
        letter: serde_json::from_slice(payload)
            .unwrap_or_else(|_| serde_json::Value::String("(not JSON)".into())),
    }
}

impl Bus for NatsBus {
    async fn dispatch(
        &self,
        command: &StepCommand,
        sending: Sending,
        trace: Option<&TraceParent>,
    ) -> anyhow::Result<Confirmation> {
        let payload: bytes::Bytes = serde_json::to_vec(command)
            .context("encoding a step command")?
            .into();
        let subject = self.subjects.step_command(&command.step);
        // Sent from inside the saga's span: the step's span becomes its child.
        let traceparent = trace.map(|t| step_runtime::telemetry::outgoing(t).to_string());
        let mut marks: Vec<(&str, &str)> = Vec::with_capacity(2);
        if sending != Sending::First {
            marks.push((contracts::SENT_AGAIN_HEADER, "1"));
        }
        if let Some(traceparent) = &traceparent {
            marks.push((contracts::trace::TRACEPARENT_HEADER, traceparent));
        }
        let msg_id = sending.message_id(&command.command_id);
        let ack = bus::publish_marked(&self.js, subject, &msg_id, &marks, payload).await?;
        Ok(async move {
            ack.await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("waiting for the command's ack")?;
            Ok(())
        }
        .boxed())
    }

    async fn send_progress(
        &self,
        events: &[ProgressEvent],
        trace: Option<&TraceParent>,
    ) -> anyhow::Result<Confirmation> {
        let traceparent = trace.map(|t| step_runtime::telemetry::outgoing(t).to_string());
        let marks: Vec<(&str, &str)> = traceparent
            .iter()
            .map(|t| (contracts::trace::TRACEPARENT_HEADER, t.as_str()))
            .collect();
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event).context("encoding a progress event")?;
            let msg_id = format!("{}:{}", event.saga_id, event.sequence);
            acks.push(
                bus::publish_marked(
                    &self.js,
                    self.subjects.progress(&event.saga_id),
                    &msg_id,
                    &marks,
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
        }
        .boxed())
    }

    async fn dead_letter(&self, letter: &SetAside) -> anyhow::Result<()> {
        let (subject, payload) = match letter {
            SetAside::Signup(letter) => (
                self.subjects.signup_dead_letter(),
                serde_json::to_vec(letter),
            ),
            SetAside::Input(letter) => (
                self.subjects.dead_letter(DEAD_LETTER_SOURCE),
                serde_json::to_vec(letter),
            ),
        };
        let payload = payload.context("encoding a dead letter")?;
        let ack = self
            .js
            .publish(subject, payload.into())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ack.await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("waiting for the dead-letter ack")?;
        Ok(())
    }

    async fn probe(&self, step: &str, probe: &SubdomainProbe) -> anyhow::Result<ProbeReply> {
        let subject = self.subjects.step_probe(step);
        let body = serde_json::to_vec(probe).context("encoding a probe")?;
        let reply = tokio::time::timeout(PROBE_TIMEOUT, self.client.request(subject, body.into()))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {PROBE_TIMEOUT:?}"))?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        serde_json::from_slice(&reply.payload).context("reading the probe's reply")
    }
}
