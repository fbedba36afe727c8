//! NATS plumbing shared by the orchestrator and the step services: connecting with
//! retries, declaring the streams idempotently, publishing with `Nats-Msg-Id`.
//! This is the only module of the crate that imports `async-nats` types into APIs.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use backon::{ExponentialBuilder, Retryable};
use contracts::Subjects;

/// Header JetStream deduplicates on.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Connects to NATS, retrying for about a minute so services can start in any order.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    let attempt = || async {
        async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
    };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(15)
                .with_jitter(),
        )
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "nats not reachable yet, retrying"))
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// Declares every stream of the saga (idempotent: existing streams are kept as they
/// are, except that a stream missing one of its subjects, declared by an older
/// release, gets it added).
pub async fn ensure_streams(js: &jetstream::Context, subjects: &Subjects) -> anyhow::Result<()> {
    let day = Duration::from_secs(24 * 3600);
    let streams = [
        stream::Config {
            name: subjects.signups_stream(),
            subjects: vec![subjects.signup_requested()],
            // A signup may carry a clear password: it leaves the stream once accepted.
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(10 * 60),
            max_age: 7 * day,
            ..Default::default()
        },
        stream::Config {
            name: subjects.progress_stream(),
            subjects: vec![subjects.progress_all()],
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(10 * 60),
            max_age: 30 * day,
            ..Default::default()
        },
        stream::Config {
            name: subjects.dead_letter_stream(),
            subjects: vec![subjects.signup_dead_letter(), subjects.dead_letters_all()],
            retention: stream::RetentionPolicy::Limits,
            max_age: 30 * day,
            ..Default::default()
        },
        stream::Config {
            name: subjects.commands_stream(),
            subjects: vec![subjects.step_commands_all()],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(10 * 60),
            max_age: 7 * day,
            ..Default::default()
        },
        stream::Config {
            name: subjects.events_stream(),
            subjects: vec![subjects.step_events_all()],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(10 * 60),
            max_age: 7 * day,
            ..Default::default()
        },
    ];
    for config in streams {
        let name = config.name.clone();
        let mut stream = js
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("declaring stream {name}"))?;
        let existing = &stream
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("reading stream {name}"))?
            .config;
        let missing: Vec<String> = config
            .subjects
            .iter()
            .filter(|s| !existing.subjects.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let mut updated = existing.clone();
            updated.subjects.extend(missing.iter().cloned());
            js.update_stream(updated)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("adding {missing:?} to stream {name}"))?;
            tracing::info!(stream = %name, subjects = ?missing, "stream subjects added");
        }
    }
    Ok(())
}

/// Publishes `payload` with a `Nats-Msg-Id` and returns the future of the stream's ack.
pub async fn publish_once(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    payload: bytes::Bytes,
) -> anyhow::Result<jetstream::context::PublishAckFuture> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID, msg_id);
    js.publish_with_headers(subject.clone(), headers, payload)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("publishing to {subject}"))
}

/// Publishes and waits for the stream's ack.
pub async fn publish_acked(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    payload: bytes::Bytes,
) -> anyhow::Result<()> {
    let ack = publish_once(js, subject.clone(), msg_id, payload).await?;
    ack.await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("waiting for the ack of {subject}"))?;
    Ok(())
}
