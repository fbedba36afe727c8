//! NATS plumbing shared by the orchestrator and the step services: connecting with
//! retries, declaring the streams idempotently, publishing with `Nats-Msg-Id`.
//! This is the only module of the crate that imports `async-nats` types into APIs.
//! The settings and credentials are `config.rs`'s.

mod config;

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use backon::{ExponentialBuilder, Retryable};
use contracts::Subjects;

pub use config::{servers, ClientCert, NatsAuth, NatsConfig};

/// Header JetStream deduplicates on.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// How long start-up waits for NATS: 15 tries, 0.2 s doubling to 5 s, about a minute.
fn start_up_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(15)
        .with_jitter()
}

/// Connects to NATS with `config`'s credentials, retrying for about a minute so
/// services can start in any order. With several servers, each connection attempt
/// tries them in turn. What the server refuses later (a permissions violation: the
/// message is dropped, a request times out) is logged as a warning.
pub async fn connect(config: &NatsConfig, name: &str) -> anyhow::Result<async_nats::Client> {
    let servers = servers(&config.url)?;
    let url = &config.url;
    let options = config.connect_options().await?;
    let attempt = || async {
        options
            .clone()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                if let async_nats::Event::ServerError(e) = event {
                    tracing::warn!(error = %e, "nats server refused something");
                }
            })
            .connect(servers.clone())
            .await
    };
    attempt
        .retry(start_up_backoff())
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "nats not reachable yet, retrying"))
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// Runs a start-up declaration (streams, a bucket, a consumer) again until it works,
/// for about a minute: a JetStream cluster that has just lost a node, or is electing
/// a stream's leader, answers its API late or not at all for a few seconds, and a
/// service should ride that out rather than exit.
pub async fn patiently<T, F, Fut>(what: &str, declare: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    declare
        .retry(start_up_backoff())
        .notify(|e, delay| {
            tracing::warn!(error = %format!("{e:#}"), ?delay, "{what}: JetStream not ready, retrying")
        })
        .await
}

/// Declares every stream of the saga with `replicas` replicas (idempotent: existing
/// streams are kept as they are, except that a stream missing one of its subjects,
/// declared by an older release, gets it added, and one with fewer replicas gets the
/// configured count. A count is never lowered here: one process started without
/// `NATS_STREAM_REPLICAS` must not turn a cluster's streams into single copies; lower
/// it by hand with `nats stream edit`).
pub async fn ensure_streams(
    js: &jetstream::Context,
    subjects: &Subjects,
    replicas: usize,
) -> anyhow::Result<()> {
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
    for mut config in streams {
        config.num_replicas = replicas;
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
        // Updated only when something changed: nats-server 2.9 has been seen to crash
        // under concurrent updates of one stream, and every service declares at start.
        if !missing.is_empty() || existing.num_replicas < replicas {
            let mut updated = existing.clone();
            updated.subjects.extend(missing.iter().cloned());
            updated.num_replicas = existing.num_replicas.max(replicas);
            js.update_stream(updated)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| {
                    format!("updating stream {name} (subjects {missing:?}, {replicas} replicas)")
                })?;
            tracing::info!(stream = %name, subjects = ?missing, replicas, "stream updated");
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
    publish_marked(js, subject, msg_id, &[], payload).await
}

/// [`publish_once`] with more headers.
pub async fn publish_marked(
    js: &jetstream::Context,
    subject: String,
    msg_id: &str,
    marks: &[(&str, &str)],
    payload: bytes::Bytes,
) -> anyhow::Result<jetstream::context::PublishAckFuture> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MSG_ID, msg_id);
    for (name, value) in marks {
        headers.insert(*name, *value);
    }
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
