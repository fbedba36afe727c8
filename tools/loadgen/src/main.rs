//! `loadgen`: runs N sagas with no-op steps through the real orchestrator and step
//! runtime over JetStream, then the same message pattern on raw JetStream (no store,
//! no state machine), and prints throughput, per-step overhead and saga latency.
//!
//! Usage: `cargo run --release -p loadgen -- [--sagas N] [--concurrency C] [--store URL|memory]
//! [--nats URL[,URL...]] [--replicas R]`: `--replicas 3` on a three-node cluster gives
//! every stream of both runs three replicas. `RUST_LOG=warn` shows the services'
//! warnings on stderr.

mod baseline;
mod stats;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use contracts::{ProgressEvent, StepStatus, Subjects};
use futures::StreamExt;
use secrets::ExposeSecret as _;
use step_runtime::{Step, StepContext, StepError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use stats::{Recorder, Report, Summary};

const STEPS: [&str; 4] = ["database", "site", "admin_user", "registration"];

struct Args {
    sagas: usize,
    concurrency: usize,
    store: Option<String>,
    nats: String,
    replicas: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        sagas: 1000,
        concurrency: 50,
        store: None,
        nats: std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
        replicas: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sagas" => args.sagas = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--store" => args.store = Some(value()?),
            "--nats" => args.nats = value()?,
            "--replicas" => args.replicas = value()?.parse()?,
            other => anyhow::bail!(
                "unknown flag {other}; use --sagas N --concurrency C --store URL --nats URL --replicas R"
            ),
        }
    }
    Ok(args)
}

/// A step that does nothing: what remains of a saga's time is the orchestration's.
struct NoopStep(&'static str);

impl Step for NoopStep {
    fn name(&self) -> &str {
        self.0
    }
    async fn execute(
        &self,
        _: &contracts::StepCommand,
        _: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        Ok(serde_json::Value::Null)
    }
    async fn compensate(
        &self,
        _: &contracts::StepCommand,
        _: &StepContext,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

impl Report {
    fn print(&self, title: &str) {
        let secs = self.elapsed.as_secs_f64();
        let overhead = Summary::of(&self.step_overhead_ms);
        let latency = Summary::of(&self.saga_latency_ms);
        println!("{title}");
        println!(
            "  sagas: {} in {:.2}s -> {:.1} sagas/s, {:.1} steps/s",
            self.sagas,
            secs,
            self.sagas as f64 / secs,
            (self.sagas * STEPS.len()) as f64 / secs
        );
        println!(
            "  per-step overhead ms: p50 {:.3}  p99 {:.3}  max {:.3}",
            overhead.p50, overhead.p99, overhead.max
        );
        println!(
            "  saga latency ms:      p50 {:.3}  p99 {:.3}  max {:.3}",
            latency.p50, latency.p99, latency.max
        );
        if !self.handling_ms.is_empty() {
            let handling = Summary::of(&self.handling_ms);
            println!(
                "  orchestrator's own time per step ms (report in -> next command out, store commit included): p50 {:.3}  p99 {:.3}  max {:.3}",
                handling.p50, handling.p99, handling.max
            );
        }
    }
}

/// The orchestrator's `saga_input_seconds` samples of `input`, in ms (taken out of the
/// recorder: a second call sees only newer ones).
fn input_samples_ms(snapshotter: &metrics_util::debugging::Snapshotter, input: &str) -> Vec<f64> {
    use metrics_util::debugging::DebugValue;
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == "saga_input_seconds"
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "input" && l.value() == input)
        })
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(samples) => samples
                .into_iter()
                .map(|s| s.into_inner() * 1000.0)
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

async fn run_orchestrated(
    args: &Args,
    client: &async_nats::Client,
    snapshotter: &metrics_util::debugging::Snapshotter,
) -> anyhow::Result<(Report, String)> {
    let namespace = format!("load{}", &Uuid::new_v4().simple().to_string()[..8]);
    let subjects = Subjects::new(&namespace);
    let dir = tempfile::tempdir()?;
    let store_url = args
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/orchestrator.db", dir.path().display()));
    let key = secrets::Keyring::generate_entry(&secrets::KeyId::parse("loadgen")?);
    let env: HashMap<&str, String> = HashMap::from([
        ("NATS_URL", args.nats.clone()),
        ("NATS_STREAM_REPLICAS", args.replicas.to_string()),
        ("NATS_NAMESPACE", namespace.clone()),
        ("SAGA_SECRETS_KEYS", key.expose_secret().to_string()),
        ("SAGA_STORE_URL", store_url.clone()),
        ("STEP_CONCURRENCY", "64".into()),
        // No standby pool: every saga runs the four steps, as the baseline does.
        ("STANDBY_POOL_SIZE", "0".into()),
        // Any free ports: a deployment on this host keeps its own.
        ("HTTP_ADDR", "127.0.0.1:0".into()),
        ("HEALTH_ADDR", "127.0.0.1:0".into()),
    ]);
    // The NATS credentials are loadgen's own, from its environment (one user for all:
    // a development server, or a user allowed everything).
    let lookup = |k: &str| {
        env.get(k).cloned().or_else(|| {
            step_runtime::bus::CREDENTIAL_VARIABLES
                .contains(&k)
                .then(|| std::env::var(k).ok())
                .flatten()
        })
    };
    let config = orchestrator::config::from_lookup(lookup)?;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let store_description = if store_url == "memory" {
        tasks.push(tokio::spawn(orchestrator::run_with_store(
            config,
            orchestrator::store::MemoryStore::default(),
            stop.clone(),
        )));
        "memory (no durability: measures the orchestrator without a database)".to_string()
    } else {
        let store = orchestrator::store::SqlStore::connect(&store_url).await?;
        let description = store.describe();
        tasks.push(tokio::spawn(orchestrator::run_with_store(
            config,
            store,
            stop.clone(),
        )));
        description
    };
    for step in STEPS {
        let runtime = step_runtime::config_from(lookup)?;
        tasks.push(tokio::spawn(step_runtime::run(
            NoopStep(step),
            runtime,
            stop.clone(),
        )));
    }
    let js = async_nats::jetstream::new(client.clone());
    step_runtime::bus::ensure_streams(
        &js,
        &subjects,
        args.replicas,
        step_runtime::bus::DEFAULT_REPORT_TTL,
    )
    .await?;

    // The signups as the web app publishes them, made before the clock starts: the
    // password sealed to the services' public key for its signup (the web app's work).
    let recipient = secrets::Keyring::parse(key.expose_secret())?
        .recipient()
        .clone();
    let mut signups: Vec<(Uuid, Vec<u8>)> = (0..=args.sagas)
        .map(|i| {
            let id = Uuid::new_v4();
            let binding = secrets::Binding::new(id, secrets::Field::AdminPassword);
            let signup = serde_json::json!({
                "signup_id": id, "organization_name": format!("Load {i}"), "subdomain": format!("load-{}", &id.simple().to_string()[..12]),
                "admin_email": "load@test.com", "admin_full_name": "Load Test",
                "admin_password_sealed": recipient.seal("LoadPass123!", binding).0,
            });
            (id, serde_json::to_vec(&signup).expect("json"))
        })
        .collect();

    // One saga first, not measured: the clock starts once the orchestrator leads and
    // every consumer is up (on a cluster that takes seconds, which the first sagas
    // would otherwise count as theirs).
    let (warm_up, signup) = signups.pop().expect("one signup more than measured");
    let mut warm_progress = client.subscribe(subjects.progress(&warm_up)).await?;
    js.publish(subjects.signup_requested(), signup.into())
        .await?
        .await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), warm_progress.next())
            .await
            .context("the warm-up saga did not finish within 60 s: is the orchestrator stuck?")?
            .context("progress subscription ended")?;
        let event: ProgressEvent = serde_json::from_slice(&message.payload)?;
        if event.status.is_terminal() {
            anyhow::ensure!(
                event.status == contracts::SagaStatus::Completed,
                "the warm-up saga ended {:?}: {:?}",
                event.status,
                event.error
            );
            break;
        }
    }
    drop(warm_progress);
    // Its samples are not the run's.
    let _ = input_samples_ms(snapshotter, "report");

    // Progress is read on a plain subscription: what a live dashboard sees.
    let mut progress = client.subscribe(subjects.progress_all()).await?;
    let mut recorder = Recorder::new(args.concurrency);
    let publisher = {
        let (js, subjects, gate) = (js.clone(), subjects.clone(), recorder.gate());
        tokio::spawn(async move {
            for (id, signup) in signups {
                gate.admit(id).await;
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.to_string().as_str());
                let ack = js
                    .publish_with_headers(subjects.signup_requested(), headers, signup.into())
                    .await;
                // Not waited for before the next signup: a web app's users sign up at
                // once, and on a cluster one ack takes a replication round trip.
                match ack {
                    Ok(ack) => {
                        tokio::spawn(async move {
                            if let Err(e) = ack.await {
                                eprintln!(
                                    "loadgen: signup {id} not acknowledged by JetStream: {e}"
                                );
                            }
                        });
                    }
                    Err(e) => eprintln!("loadgen: signup {id} not published: {e}"),
                }
            }
        })
    };

    while recorder.finished_count() < args.sagas {
        let message = tokio::time::timeout(Duration::from_secs(30), progress.next())
            .await
            .context("no progress for 30s: is the orchestrator stuck?")?
            .context("progress subscription ended")?;
        let event: ProgressEvent = serde_json::from_slice(&message.payload)?;
        if event.step_status == Some(StepStatus::Started) || event.status.is_terminal() {
            recorder.dispatched(event.saga_id, event.at);
        }
        if event.status.is_terminal() {
            anyhow::ensure!(
                event.status == contracts::SagaStatus::Completed,
                "saga {} ended {:?}: {:?}",
                event.saga_id,
                event.status,
                event.error
            );
            recorder.finished(event.saga_id).await;
        }
    }
    let mut report = recorder.report();
    report.handling_ms = input_samples_ms(snapshotter, "report");
    publisher.await?;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    for stream in subjects.streams() {
        let _ = js.delete_stream(&stream).await;
    }
    Ok((report, store_description))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // The services' warnings on stderr when asked for (`RUST_LOG=warn`): what held a
    // saga up. Off by default: logging is work the measurement should not include.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    // Raw samples of the orchestrator's metrics (its `/metrics` stays empty here).
    let metrics = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = metrics.snapshotter();
    metrics
        .install()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    let nats = step_runtime::bus::NatsConfig::from_lookup(|k| match k {
        "NATS_URL" => Some(args.nats.clone()),
        _ => std::env::var(k).ok(),
    })?;
    let client = step_runtime::bus::connect(&nats, "loadgen").await?;
    let server = client.server_info();
    println!(
        "loadgen: {} sagas x {} no-op steps, {} in flight; NATS {} (JetStream file storage, {} replica(s), synced as the server is configured); {} cores",
        args.sagas,
        STEPS.len(),
        args.concurrency,
        server.version,
        args.replicas,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let (orchestrated, store) = run_orchestrated(&args, &client, &snapshotter).await?;
    println!("store: {store}");
    orchestrated.print("orchestrator + step runtime:");
    let raw = baseline::run(
        &client,
        args.sagas,
        args.concurrency,
        STEPS.len(),
        args.replicas,
    )
    .await?;
    raw.print("raw JetStream baseline (same publishes and acks, no store, no state machine):");
    let ratio = (orchestrated.sagas as f64 / orchestrated.elapsed.as_secs_f64())
        / (raw.sagas as f64 / raw.elapsed.as_secs_f64());
    println!("throughput ratio orchestrator/baseline: {ratio:.2}");
    Ok(())
}
