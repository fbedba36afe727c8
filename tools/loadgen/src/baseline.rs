//! The raw JetStream baseline: the orchestrated saga's message pattern (signup in,
//! per step one acked command and one acked report through work-queue streams, the
//! same number of progress publishes), with no store and no state machine.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::stats::{Recorder, Report};

#[derive(Serialize, Deserialize)]
struct Msg {
    saga: Uuid,
    step: usize,
}

#[derive(Serialize, Deserialize)]
struct Progress {
    saga: Uuid,
    kind: String,
    at: chrono::DateTime<chrono::Utc>,
}

async fn publish(
    js: &jetstream::Context,
    subject: String,
    body: &impl Serialize,
) -> anyhow::Result<()> {
    js.publish(subject, serde_json::to_vec(body)?.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

async fn consume(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: String,
) -> anyhow::Result<pull::Stream> {
    let consumer = js
        .get_stream(stream)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .create_consumer(pull::Config {
            durable_name: Some(name.into()),
            filter_subject: filter,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 4096,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs `sagas` baseline sagas of `steps` steps with `concurrency` in flight, on
/// streams of `replicas` replicas.
pub async fn run(
    client: &async_nats::Client,
    sagas: usize,
    concurrency: usize,
    steps: usize,
    replicas: usize,
) -> anyhow::Result<Report> {
    let ns = format!("base{}", &Uuid::new_v4().simple().to_string()[..8]);
    let js = jetstream::new(client.clone());
    let upper = ns.to_uppercase();
    let streams = [
        (
            format!("{upper}_IN"),
            format!("{ns}.in"),
            stream::RetentionPolicy::WorkQueue,
        ),
        (
            format!("{upper}_CMD"),
            format!("{ns}.cmd.>"),
            stream::RetentionPolicy::WorkQueue,
        ),
        (
            format!("{upper}_EVT"),
            format!("{ns}.evt.>"),
            stream::RetentionPolicy::WorkQueue,
        ),
        (
            format!("{upper}_PROGRESS"),
            format!("{ns}.progress.*"),
            stream::RetentionPolicy::Limits,
        ),
    ];
    for (name, subject, retention) in &streams {
        js.get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            retention: *retention,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("baseline stream")?;
    }

    let mut tasks = Vec::new();
    // The "driver": signup -> first command; report k -> command k+1 or the end.
    for (stream_name, filter) in [
        (&streams[0].0, format!("{ns}.in")),
        (&streams[2].0, format!("{ns}.evt.>")),
    ] {
        let mut messages = consume(&js, stream_name, "driver", filter).await?;
        let (js, ns) = (js.clone(), ns.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let (js, ns) = (js.clone(), ns.clone());
                tokio::spawn(async move {
                    let Ok(msg) = serde_json::from_slice::<Msg>(&message.payload) else {
                        return;
                    };
                    let from_signup = message.subject.as_str().ends_with(".in");
                    let next = if from_signup { 0 } else { msg.step + 1 };
                    let progress = |kind: &str| Progress {
                        saga: msg.saga,
                        kind: kind.into(),
                        at: chrono::Utc::now(),
                    };
                    let subject = format!("{ns}.progress.{}", msg.saga);
                    let _ = publish(
                        &js,
                        subject.clone(),
                        &progress(if from_signup { "accepted" } else { "completed" }),
                    )
                    .await;
                    if next < steps {
                        let _ = publish(&js, subject, &progress("started")).await;
                        let _ = publish(
                            &js,
                            format!("{ns}.cmd.{next}"),
                            &Msg {
                                saga: msg.saga,
                                step: next,
                            },
                        )
                        .await;
                    } else {
                        let _ = publish(&js, subject, &progress("terminal")).await;
                    }
                    let _ = message.ack().await;
                });
            }
        }));
    }
    // The "step services": command -> report.
    for step in 0..steps {
        let mut messages = consume(
            &js,
            &streams[1].0,
            &format!("step{step}"),
            format!("{ns}.cmd.{step}"),
        )
        .await?;
        let (js, ns) = (js.clone(), ns.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                let (js, ns) = (js.clone(), ns.clone());
                tokio::spawn(async move {
                    if let Ok(msg) = serde_json::from_slice::<Msg>(&message.payload) {
                        let _ = publish(&js, format!("{ns}.evt.{}", msg.step), &msg).await;
                    }
                    let _ = message.ack().await;
                });
            }
        }));
    }

    let mut progress = client.subscribe(format!("{ns}.progress.*")).await?;
    let mut recorder = Recorder::new(concurrency);
    let publisher = {
        let (js, ns, gate) = (js.clone(), ns.clone(), recorder.gate());
        tokio::spawn(async move {
            for _ in 0..sagas {
                let saga = Uuid::new_v4();
                gate.admit(saga).await;
                // As the orchestrated run's signups: acks awaited aside.
                let body = serde_json::to_vec(&Msg { saga, step: 0 }).expect("json");
                match js.publish(format!("{ns}.in"), body.into()).await {
                    Ok(ack) => {
                        tokio::spawn(async move {
                            if let Err(e) = ack.await {
                                eprintln!("loadgen: baseline saga {saga} not acknowledged: {e}");
                            }
                        });
                    }
                    Err(e) => eprintln!("loadgen: baseline saga {saga} not published: {e}"),
                }
            }
        })
    };
    while recorder.finished_count() < sagas {
        let message = tokio::time::timeout(Duration::from_secs(30), progress.next())
            .await
            .context("baseline stalled")?
            .context("subscription ended")?;
        let event: Progress = serde_json::from_slice(&message.payload)?;
        if event.kind == "started" || event.kind == "terminal" {
            recorder.dispatched(event.saga, event.at);
        }
        if event.kind == "terminal" {
            recorder.finished(event.saga).await;
        }
    }
    let report = recorder.report();
    publisher.await?;
    for task in tasks {
        task.abort();
    }
    for (name, _, _) in &streams {
        let _ = js.delete_stream(name).await;
    }
    Ok(report)
}
