//! The tenant-provisioning saga orchestrator.
//!
//! [`run`] wires the parts: the [`store`] (durable state), the [`saga`] core (pure state
//! machine), the driver (inputs in, actions out) and the request/reply API.

mod admin;
mod api;
mod bus;
mod clock;
pub mod config;
mod dead_letters;
mod driver;
pub mod http;
mod leadership;
mod observe;
mod outbox;
mod pool_admin;
pub mod saga;
mod stats;
pub mod store;
mod timers;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use contracts::Subjects;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use driver::{Core, Work};
/// The sites' password policy signups are checked against (kept in `secrets`, where
/// `sagactl` finds it too).
pub use secrets::password_policy;
use store::{SagaStore, SqlStore};

/// Runs the orchestrator until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = SqlStore::connect(config.store_url.expose())
        .await
        .with_context(|| format!("opening the saga store {}", config.store_url))?;
    tracing::info!(store = %store.describe(), "saga store ready");
    run_with_store(config, store, shutdown).await
}

/// `/readyz` of the orchestrator: NATS connected, the saga store answering a read. A
/// standby is ready too: it answers requests and takes the lead when needed.
fn readiness<S: SagaStore>(
    store: Arc<S>,
    client: async_nats::Client,
) -> step_runtime::health::Probe {
    use step_runtime::health::Check;
    step_runtime::health::probe(move || {
        let (store, client) = (store.clone(), client.clone());
        async move {
            let store = async {
                store
                    .get(uuid::Uuid::nil())
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("the saga store does not answer: {e}"))
            };
            vec![Check::nats(&client), Check::within("store", store).await]
        }
    })
}

/// How long JetStream waits for the orchestrator to settle an input before it
/// delivers it again (to whichever instance leads then).
const INPUT_ACK_WAIT: Duration = Duration::from_secs(5);

async fn pull_consumer(
    js: &jetstream::Context,
    stream: String,
    durable: String,
    filter: String,
) -> anyhow::Result<jetstream::consumer::pull::Stream> {
    step_runtime::bus::patiently("declaring the orchestrator's consumers", || async {
        let stream = js
            .get_stream(&stream)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("opening stream {stream}"))?;
        // Create or update: a consumer declared by an older release gets `max_deliver`.
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: filter.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                // Short, so that what a leader that died had fetched reaches the next
                // one soon after it takes over. An input held longer (a long worker
                // queue) is delivered again and handled as the duplicate it is.
                ack_wait: INPUT_ACK_WAIT,
                max_ack_pending: 4096,
                // The driver sets an input aside as a dead letter at its last
                // delivery; the server's limit only backs that up.
                max_deliver: driver::MAX_DELIVER as i64 + 1,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("declaring consumer {durable}"))?;
        consumer
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("subscribing with {durable}"))
    })
    .await
}

/// Runs the orchestrator over a given store (used by tests and benchmarks).
///
/// Every instance answers the read-only requests; the one holding the lead (see
/// `leadership.rs`) also drives sagas, until it loses the lead or `shutdown` comes.
pub async fn run_with_store<S: SagaStore>(
    config: Config,
    store: S,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subjects = Subjects::new(&config.namespace);
    let http = step_runtime::health::bind(config.http_addr).await?;
    let client = step_runtime::bus::connect(&config.nats, "orchestrator").await?;
    let js = jetstream::new(client.clone());
    let (replicas, report_ttl) = (config.nats.stream_replicas, config.report_ttl);
    step_runtime::bus::patiently("declaring the streams", || {
        step_runtime::bus::ensure_streams(&js, &subjects, replicas, report_ttl)
    })
    .await?;
    let bus = bus::NatsBus {
        js,
        client,
        subjects,
    };
    let store = Arc::new(store);
    let reader = Arc::new(api::Reader {
        store: store.clone(),
        bus: bus.clone(),
        definition: config.definition.clone(),
        parent_domain: config.parent_domain.clone(),
        pool_size: config.standby_pool_size,
    });
    let reads = tokio::spawn(api::serve_reads(reader.clone(), shutdown.clone()));
    let app = http::router(
        http::AppState {
            reads: reader,
            client: bus.client.clone(),
            js: bus.js.clone(),
            subjects: bus.subjects.clone(),
            keyring: config.secrets_key.clone(),
            credentials: http::Credentials {
                write: config.api_secret.clone(),
                read: config.read_token.clone(),
            },
            master_site: config.master_site.clone(),
            instance: config.instance.clone(),
            shutdown: shutdown.clone(),
        },
        readiness(store.clone(), bus.client.clone()),
    );
    let health = step_runtime::health::serve_with(http, app, shutdown.clone());
    tokio::task::spawn_blocking(password_policy::warm_up);
    tracing::info!(namespace = %config.namespace, parent_domain = %config.parent_domain, instance = %config.instance, saga_public_key = %config.secrets_key.recipient().to_text(), "orchestrator ready (signups seal admin_password_sealed to saga_public_key, the web app's SAGA_PUBLIC_KEY)");

    observe::stand_by();
    let lease = leadership::Lease {
        holder: config.instance.clone(),
        ttl: config.lease,
    };
    loop {
        let Some((fence, tenure)) = lease.acquire(&*store, &shutdown).await else {
            break;
        };
        let session = shutdown.child_token();
        let keeper = tokio::spawn(lease.clone().keep(
            store.clone(),
            fence,
            tenure.clone(),
            session.clone(),
        ));
        let driven = drive(&config, store.clone(), bus.clone(), tenure, session.clone()).await;
        session.cancel();
        let _ = keeper.await;
        // Only the leader reports sagas in flight: the next one reads them afresh.
        observe::stand_by();
        if shutdown.is_cancelled() {
            lease.resign(&*store, fence).await;
            break;
        }
        if let Err(e) = driven {
            // Another instance may fare better (its own connections); this one tries
            // again as a standby after a lease, rather than leaving no orchestrator.
            tracing::error!(error = %format!("{e:#}"), fence, "driving failed: giving the lead up");
            lease.resign(&*store, fence).await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(config.lease) => {}
            }
        } else {
            tracing::warn!(fence, "lost the lead: standing by");
        }
    }
    let _ = health.await;
    let _ = reads.await;
    Ok(())
}

/// Drives sagas while this instance leads: reads signups and step reports, resumes
/// what was in flight, sweeps, keeps the outbox and answers replays, until `session`
/// ends (the lead lost, or shutdown). Every part stops with it: a deposed instance
/// reads no more input and keeps no cache, and none of its inputs is acknowledged
/// once its tenure ended (they go back to the stream for the next leader).
async fn drive<S: SagaStore>(
    config: &Config,
    store: Arc<S>,
    bus: bus::NatsBus,
    tenure: leadership::Tenure,
    session: CancellationToken,
) -> anyhow::Result<()> {
    let subjects = bus.subjects.clone();
    let consumers = async {
        let signups = pull_consumer(
            &bus.js,
            subjects.signups_stream(),
            subjects.consumer("orchestrator-signups"),
            subjects.signup_requested(),
        )
        .await?;
        let events = pull_consumer(
            &bus.js,
            subjects.events_stream(),
            subjects.consumer("orchestrator-events"),
            subjects.step_events_all(),
        )
        .await?;
        anyhow::Ok((signups, events))
    };
    // Declaring may take a while on a cluster that lost a node: not past the lead.
    let (mut signups, mut events) = tokio::select! {
        biased;
        () = session.cancelled() => return Ok(()),
        declared = consumers => declared?,
    };

    let (published_tx, published_rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let (core, mut workers) = driver::spawn_workers(
        |router| {
            Arc::new(Core {
                store,
                bus,
                definition: config.definition.clone(),
                key: config.secrets_key.clone(),
                parent_domain: config.parent_domain.clone(),
                timers: timers::Timers::spawn(router.clone(), clock::Clock::System, stop.clone()),
                router,
                clock: clock::Clock::System,
                published: published_tx,
                subjects: subjects.clone(),
                unsent: Default::default(),
                tenure: tenure.clone(),
                pool: driver::PoolLive::new(
                    config.standby_pool_size,
                    config.standby_builds_at_once,
                ),
            })
        },
        stop.clone(),
    );

    // Recovery: finish publishing what was stored, then resume every saga in flight.
    outbox::republish_unconfirmed(&core, chrono::Duration::zero()).await;
    let in_flight = core
        .store
        .in_flight()
        .await
        .context("listing sagas in flight")?;
    if !in_flight.is_empty() {
        tracing::info!(count = in_flight.len(), "resuming sagas in flight");
    }
    // The gauges as the store has them: a new leader reports what it took over.
    observe::refresh(&*core.store, &in_flight, core.clock.now()).await;
    for saga in in_flight {
        if session.is_cancelled() {
            break;
        }
        core.router.send(saga.id, Work::Resume).await;
    }

    let sweep = tokio::spawn(driver::sweep_loop(core.clone(), stop.clone()));
    let pool = tokio::spawn(driver::pool_loop(core.clone(), stop.clone()));
    let outbox = tokio::spawn(outbox::outbox_loop(
        core.clone(),
        published_rx,
        stop.clone(),
    ));
    let replays = tokio::spawn(api::serve_replays(core.clone(), stop.clone()));

    let result = loop {
        tokio::select! {
            biased;
            () = session.cancelled() => break Ok(()),
            next = signups.next() => match next {
                Some(Ok(message)) => driver::route_signup(&core, message.into()).await,
                Some(Err(e)) => tracing::warn!(error = %e, "error pulling signups"),
                None => break Err(anyhow::anyhow!("the signup subscription ended")),
            },
            next = events.next() => match next {
                Some(Ok(message)) => driver::route_event(&core, message.into()).await,
                Some(Err(e)) => tracing::warn!(error = %e, "error pulling step events"),
                None => break Err(anyhow::anyhow!("the step event subscription ended")),
            },
        }
    };
    tracing::info!("stopping: finishing the inputs being handled");
    // No more input is pulled: what was fetched and not handled is redelivered to
    // whoever leads next, after the consumers' ack wait.
    drop(signups);
    drop(events);
    stop.cancel();
    while workers.join_next().await.is_some() {}
    let _ = outbox.await;
    let _ = sweep.await;
    let _ = pool.await;
    let _ = replays.await;
    result
}
