//! NATS plumbing shared by the orchestrator, the step services and the tools:
//! connecting with retries (or once, for a tool a person waits on), declaring the
//! streams idempotently, publishing with `Nats-Msg-Id`, following one saga's progress
//! without a consumer (`follow.rs`).
//! This is the only module of the crate that imports `async-nats` types into APIs.
//! The settings and credentials are `config.rs`'s.

mod config;
mod follow;

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use backon::{ExponentialBuilder, Retryable};
use contracts::Subjects;

pub use config::{
    redacted_urls, servers, ClientCert, NatsAuth, NatsConfig, CREDENTIAL_VARIABLES,
    DEPLOYMENT_USERS,
};
pub use follow::SagaProgress;

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
        .with_context(|| format!("connecting to NATS at {}", config::redacted_urls(url)))
}

/// Connects once, trying each server once, for a tool a person waits on (a service
/// rides out a NATS that is not up yet with [`connect`] instead). What the server
/// refuses later (a permissions violation: the message dropped, a request timing
/// out) is sent to `refused` as the server's words, so the tool can say what was
/// refused and what to do.
pub async fn connect_once(
    config: &NatsConfig,
    name: &str,
    refused: tokio::sync::mpsc::UnboundedSender<String>,
) -> anyhow::Result<async_nats::Client> {
    let servers = servers(&config.url)?;
    config
        .connect_options()
        .await?
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let refused = refused.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = refused.send(e.to_string());
                }
            }
        })
        .connect(servers)
        .await
        .with_context(|| {
            format!(
                "connecting to NATS at {}",
                config::redacted_urls(&config.url)
            )
        })
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

/// How long the finished-commands bucket remembers a report unless
/// `STEP_REPORT_TTL_HOURS` says otherwise: 7 days, longer than the command stream keeps
/// a command.
pub const DEFAULT_REPORT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Declares every stream of the saga, and the finished-commands bucket with entries
/// kept `report_ttl`, with `replicas` replicas (idempotent: existing
/// streams are kept as they are, except that a stream missing one of its subjects,
/// declared by an older release, gets it added, and one with fewer replicas gets the
/// configured count. A count is never lowered here: one process started without
/// `NATS_STREAM_REPLICAS` must not turn a cluster's streams into single copies; lower
/// it by hand with `nats stream edit`).
///
/// Only the orchestrator calls this in production (the bus lets no other party declare
/// a stream); step services wait for what it declared ([`wait_for_streams`]).
pub async fn ensure_streams(
    js: &jetstream::Context,
    subjects: &Subjects,
    replicas: usize,
    report_ttl: Duration,
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
            // Readers (the web app, operators) page through a saga's events with
            // direct gets: they may not make consumers (deploy/nats/auth.conf).
            allow_direct: true,
            ..Default::default()
        },
        stream::Config {
            name: subjects.dead_letter_stream(),
            subjects: vec![subjects.signup_dead_letter(), subjects.dead_letters_all()],
            retention: stream::RetentionPolicy::Limits,
            max_age: 30 * day,
            allow_direct: true,
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
        let direct_missing = config.allow_direct && !existing.allow_direct;
        if !missing.is_empty() || existing.num_replicas < replicas || direct_missing {
            let mut updated = existing.clone();
            updated.subjects.extend(missing.iter().cloned());
            updated.num_replicas = existing.num_replicas.max(replicas);
            updated.allow_direct |= config.allow_direct;
            js.update_stream(updated)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| {
                    format!("updating stream {name} (subjects {missing:?}, {replicas} replicas)")
                })?;
            tracing::info!(stream = %name, subjects = ?missing, replicas, "stream updated");
        }
    }
    ensure_bucket(
        js,
        &subjects.finished_commands_bucket(),
        report_ttl,
        replicas,
    )
    .await
}

/// Declares the finished-commands bucket, or updates its TTL when it changed.
///
/// The bucket's stream is declared here with the settings a key-value bucket has
/// (as async-nats' `create_key_value` would): that call first reads the account's
/// info, whose NATS 2.9 form async-nats 0.51 cannot decode.
async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    ttl: Duration,
    replicas: usize,
) -> anyhow::Result<()> {
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("final reports of finished step commands, by step and command id".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: ttl,
        // No rollups: with them a step, which may write its own keys, could purge the
        // other steps' with one `Nats-Rollup: all` header. Puts and gets need none.
        allow_rollup: false,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    };
    // Updated only when its TTL or replicas changed: nats-server 2.9 has been seen to
    // crash (SIGSEGV in `updateWithAdvisory`) under concurrent updates of one stream.
    let mut declared = js
        .get_or_create_stream(config.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("declaring the key-value bucket {bucket}"))?;
    let current = declared
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading the key-value bucket {bucket}"))?
        .config
        .clone();
    // Replicas only go up here, as for the streams.
    if current.max_age != ttl || current.num_replicas < replicas || current.allow_rollup {
        let mut config = config;
        config.num_replicas = current.num_replicas.max(replicas);
        js.update_stream(config)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("changing the key-value bucket {bucket}'s TTL or replicas"))?;
        tracing::info!(%bucket, ?ttl, replicas, "finished-commands bucket changed");
    }
    Ok(())
}

/// Waits until the streams a step service uses exist (the commands, events and dead
/// letters, the finished-commands bucket): the orchestrator declares them, and a step
/// service may start first. Returns `false` when `stop` came first. Each check is
/// logged while it fails, with the server's answer (a missing stream, or a permission
/// the service's NATS user lacks: the request then times out).
pub async fn wait_for_streams(
    js: &jetstream::Context,
    subjects: &Subjects,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    let names = [
        subjects.commands_stream(),
        subjects.events_stream(),
        subjects.dead_letter_stream(),
        format!("KV_{}", subjects.finished_commands_bucket()),
    ];
    let mut delay = Duration::from_millis(200);
    loop {
        let mut missing = None;
        for name in &names {
            if let Err(e) = js.get_stream(name).await {
                missing = Some((name.clone(), e.to_string()));
                break;
            }
        }
        let Some((stream, error)) = missing else {
            return true;
        };
        tracing::warn!(%stream, %error, ?delay, "waiting for the orchestrator to declare the streams");
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
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
