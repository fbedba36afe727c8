//! Following one saga's progress (`tenant.progress.<saga_id>`) as a party that may
//! not make consumers does it: the web app, operators, `sagactl`, the tests
//! (`deploy/nats/auth.conf`; README, "Security", "The bus").
//!
//! A plain subscription brings what comes, direct gets on `TENANT_PROGRESS`
//! (`next_by_subj` from a stream sequence) what came before. The subscription is made
//! first, so nothing falls between the two. Events are handed out in the saga's
//! order, each once: a live event that skips a sequence, and every quiet second, send
//! the reader back to the stream for what it missed (a reconnect, a slow replica),
//! so the timeline has no gap and no repeat.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use contracts::{ProgressEvent, Subjects};
use futures::StreamExt as _;
use uuid::Uuid;

/// How long a quiet follower waits before it looks at the stream again.
const QUIET: Duration = Duration::from_secs(1);

/// One saga's progress events, in order, each once, without a consumer.
pub struct SagaProgress {
    live: async_nats::Subscriber,
    stream: jetstream::stream::Stream,
    subject: String,
    /// The stream sequence to read the stored events from next.
    next_stored: u64,
    /// The saga sequence of the last event handed out (0: none yet).
    last: u64,
    ready: VecDeque<ProgressEvent>,
}

impl SagaProgress {
    /// Subscribes to the saga's progress, then opens the stream for its history.
    /// Fails when the user may not (or the stream is missing): the error says which.
    pub async fn start(
        client: &async_nats::Client,
        subjects: &Subjects,
        saga_id: Uuid,
    ) -> anyhow::Result<Self> {
        let subject = subjects.progress(&saga_id);
        let live = client
            .subscribe(subject.clone())
            .await
            .with_context(|| format!("subscribing to {subject}"))?;
        let name = subjects.progress_stream();
        let stream = jetstream::new(client.clone())
            .get_stream(&name)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("opening stream {name}"))?;
        Ok(Self {
            live,
            stream,
            subject,
            next_stored: 1,
            last: 0,
            ready: VecDeque::new(),
        })
    }

    /// The stored events not handed out yet (the whole history on the first call),
    /// without waiting for more.
    pub async fn stored(&mut self) -> anyhow::Result<Vec<ProgressEvent>> {
        self.catch_up().await?;
        Ok(self.ready.drain(..).collect())
    }

    /// The next event, waiting for it as long as it takes.
    pub async fn next(&mut self) -> anyhow::Result<ProgressEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            tokio::select! {
                message = self.live.next() => {
                    let message = message.context("the progress subscription ended")?;
                    // Something that is no event (a stray publish) is not the saga's.
                    let Ok(event) = serde_json::from_slice::<ProgressEvent>(&message.payload) else {
                        continue;
                    };
                    if event.sequence == self.last + 1 {
                        self.hand_out(event);
                    } else if event.sequence > self.last {
                        // A gap: what fell in it is in the stream (this one too).
                        self.catch_up().await?;
                    }
                }
                () = tokio::time::sleep(QUIET) => self.catch_up().await?,
            }
        }
    }

    fn hand_out(&mut self, event: ProgressEvent) {
        self.last = event.sequence;
        self.ready.push_back(event);
    }

    /// Reads the stored events after the last one read, keeping those after the last
    /// one handed out.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            let message = match self
                .stream
                .direct_get_next_for_subject(self.subject.clone(), Some(self.next_stored))
                .await
            {
                Ok(message) => message,
                Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => return Ok(()),
                Err(e) => {
                    return Err(anyhow::anyhow!("{e}"))
                        .with_context(|| format!("reading {} from the stream", self.subject))
                }
            };
            self.next_stored = message.sequence + 1;
            if let Ok(event) = serde_json::from_slice::<ProgressEvent>(&message.payload) {
                if event.sequence > self.last {
                    self.hand_out(event);
                }
            }
        }
    }
}
