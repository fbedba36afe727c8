//! Measures the saga store alone: transitions per second through `SagaStore::update`
//! from many concurrent sagas, as the orchestrator's workers drive it.
//!
//! `cargo run --release -p orchestrator --example store_bench -- [sagas] [store-url|memory] [fenced]`
//!
//! `fenced`: the store takes the leader lease first, so every commit also checks the
//! fence, as a leading orchestrator's do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::signup::AuthProvider;
use contracts::{StepAction, StepEvent, StepReport, TenantContext};
use orchestrator::saga::{next, Action, Decision, Input, Saga, SagaDefinition};
use orchestrator::store::{MemoryStore, SagaStore, SqlStore};
use uuid::Uuid;

#[allow(clippy::while_let_loop)] // the loop also ends when no command is pending
async fn drive<S: SagaStore>(store: Arc<S>, sagas: usize) -> (usize, Duration) {
    let definition = Arc::new(SagaDefinition::tenant_provisioning());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..sagas {
        let (store, definition) = (store.clone(), definition.clone());
        tasks.push(tokio::spawn(async move {
            let tenant = TenantContext {
                subdomain: format!("bench-{i}-{}", &Uuid::new_v4().simple().to_string()[..8]),
                site_name: "x.localhost".into(),
                organization_name: "Bench".into(),
                admin_email: "a@b.co".into(),
                admin_full_name: "A B".into(),
                auth_provider: AuthProvider::Google,
                admin_password: None,
                standby: None,
                standby_build: false,
            };
            let mut saga = Saga::accepted(Uuid::new_v4(), tenant, Utc::now());
            store.insert(&saga, &[]).await.expect("insert");
            let mut transitions = 0;
            let mut input = Input::Start;
            loop {
                let Decision::Apply {
                    saga: after,
                    actions,
                } = next(&definition, &saga, input, Utc::now())
                else {
                    break;
                };
                let events: Vec<_> = actions
                    .iter()
                    .filter_map(|a| {
                        if let Action::Publish(e) = a {
                            Some(e.clone())
                        } else {
                            None
                        }
                    })
                    .collect();
                store.update(&saga, &after, &events).await.expect("update");
                transitions += 1;
                saga = after;
                let Some(Action::Dispatch { step, attempt, .. }) =
                    saga.pending_dispatch(&definition)
                else {
                    break;
                };
                input = Input::Reported(StepEvent {
                    command_id: String::new(),
                    saga_id: saga.id,
                    run: saga.run,
                    step,
                    action: StepAction::Execute,
                    attempt,
                    report: StepReport::Completed {
                        output: serde_json::Value::Null,
                    },
                    at: Utc::now(),
                });
            }
            transitions
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }
    (total, started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sagas: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite:///tmp/store_bench.db".into());
    let fenced = args.next().as_deref() == Some("fenced");
    let (transitions, elapsed) = if url == "memory" {
        let store = MemoryStore::default();
        if fenced {
            store
                .try_lead("store-bench", Duration::from_secs(600))
                .await?;
        }
        drive(Arc::new(store), sagas).await
    } else {
        let _ = std::fs::remove_file(url.trim_start_matches("sqlite://"));
        let store = SqlStore::connect(&url).await?;
        if fenced {
            store
                .try_lead("store-bench", Duration::from_secs(600))
                .await?
                .ok_or_else(|| anyhow::anyhow!("another instance leads this store"))?;
        }
        println!(
            "store: {}{}",
            store.describe(),
            if fenced { ", fenced" } else { "" }
        );
        drive(Arc::new(store), sagas).await
    };
    println!(
        "{sagas} sagas, {transitions} transitions in {:.2}s: {:.0} transitions/s",
        elapsed.as_secs_f64(),
        transitions as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
