//! The worker loop: wait for the streams, declare the step's consumer, pull commands
//! and hand each to a [`Job`] within the concurrency limit, serve probes, shut down
//! gracefully.

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull};
use contracts::Subjects;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::job::{InFlightMap, Job};
use crate::memory::FinishedCommands;
use crate::{bus, health, probe, RuntimeConfig, Step};

/// Serves `step` until `shutdown` is cancelled.
pub async fn run<S: Step>(
    step: S,
    config: RuntimeConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let subjects = Subjects::new(&config.namespace);
    let name = step.name().to_string();
    let client = bus::connect(&config.nats, &format!("step-{name}")).await?;
    let step = Arc::new(step);
    let listener = health::bind(
        config
            .health_addr
            .unwrap_or_else(|| health::default_addr(&name)),
    )
    .await?;
    let readiness = {
        let (step, client) = (step.clone(), client.clone());
        health::probe(move || {
            let (step, client) = (step.clone(), client.clone());
            async move {
                let mut checks = vec![health::Check::nats(&client)];
                checks.extend(step.readiness().await);
                checks
            }
        })
    };
    let health_server = health::serve(listener, readiness, shutdown.clone());
    let probes = probe::serve(
        client.clone(),
        subjects.step_probe(&name),
        step.clone(),
        shutdown.clone(),
    )
    .await?;
    let js = jetstream::new(client);
    // Declared by the orchestrator: a step service may only use them.
    if !bus::wait_for_streams(&js, &subjects, &shutdown).await {
        return Ok(());
    }
    let bucket = subjects.finished_commands_bucket();
    let memory = bus::patiently("opening the finished-commands bucket", || {
        FinishedCommands::open(&js, &bucket, &name)
    })
    .await?;
    let durable = subjects.consumer(&format!("step-{name}"));
    let consumer = bus::patiently("declaring the step consumer", || async {
        let stream = js
            .get_stream(subjects.commands_stream())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("opening the command stream")?;
        // Create or update: a consumer declared by an older release gets `max_deliver`.
        stream
            .create_consumer(pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: subjects.step_command(&name),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_ack_pending: (config.concurrency * 2) as i64,
                max_deliver: i64::from(config.max_deliver),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("declaring the step consumer")
    })
    .await?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("subscribing to step commands")?;
    tracing::info!(step = %name, concurrency = config.concurrency, max_deliver = config.max_deliver, "step service ready");

    let limit = Arc::new(Semaphore::new(config.concurrency));
    let in_flight: InFlightMap = Arc::default();
    let work_stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let events_subject = subjects.step_event(&name);
    let dead_letters = subjects.dead_letter(&name);

    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => permit.context("semaphore closed")?,
        };
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            next = messages.next() => match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "error pulling commands");
                    continue;
                }
                None => anyhow::bail!("the command subscription ended"),
            },
        };
        let job = Job {
            step: step.clone(),
            js: js.clone(),
            subject: events_subject.clone(),
            dead_letters: dead_letters.clone(),
            key: config.secrets_key.clone(),
            in_flight: in_flight.clone(),
            memory: memory.clone(),
            stop: work_stop.clone(),
            heartbeat: config.ack_wait / 3,
            max_deliver: config.max_deliver,
        };
        tasks.spawn(async move {
            job.handle(message).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }

    tracing::info!(in_flight = tasks.len(), grace = ?config.shutdown_grace, "stopping: letting in-flight commands finish");
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = tasks.len(),
            "grace period over: releasing the remaining commands"
        );
        work_stop.cancel();
        while tasks.join_next().await.is_some() {}
    }
    step.drain().await;
    let _ = probes.await;
    let _ = health_server.await;
    Ok(())
}
