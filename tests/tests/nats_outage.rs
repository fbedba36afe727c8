//! NATS goes away while the orchestrator dispatches: a private nats-server (its own
//! port and file store) is stopped while a saga waits for a retry, so the retry's
//! command is dispatched with no server to take it, then started again on the same
//! store. The saga must still end, completed, with every step run.
//!
//! The harness's own nats-server (the deployment's users) is the one stopped.

use std::time::Duration;

use contracts::{SagaStatus, StepAction};
use tests::{Behaviour, Harness};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_dispatched_while_nats_is_down_still_ends_the_saga() {
    let mut h = Harness::new().await;
    // The site step fails its first attempt (retryable); the retry is due 4 s later,
    // while NATS is down.
    let journal = h.start_steps(&[(
        "site",
        Behaviour {
            fail_executes: 1,
            ..Behaviour::default()
        },
    )]);
    let mut env = h.env_for("orchestrator");
    env.retain(|(k, _)| k != "SAGA_RETRY_BASE_MS" && k != "SAGA_STEP_TIMEOUT_SECS");
    env.push(("SAGA_RETRY_BASE_MS".into(), "4000".into()));
    env.push(("SAGA_STEP_TIMEOUT_SECS".into(), "30".into()));
    let config = orchestrator::config::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("orchestrator config");
    let stop = tokio_util::sync::CancellationToken::new();
    let orchestrator = tokio::spawn(orchestrator::run(config, stop.clone()));

    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &h.subdomain("outage")))
        .await;
    tests::assert_eventually!(
        30,
        "the site step's first attempt failed",
        journal
            .entries()
            .iter()
            .any(|e| e.step == "site" && e.attempt == 1 && !e.ok)
    );
    // Give the orchestrator a moment to store the retry, then take NATS away past the
    // retry's due time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.nats.stop();
    tokio::time::sleep(Duration::from_secs(9)).await;
    h.nats.run();

    assert_eq!(
        h.wait_terminal(id, 120).await,
        SagaStatus::Completed,
        "nats-server log: {}",
        std::fs::read_to_string(&h.nats.log).unwrap_or_default()
    );
    let site_runs: Vec<(u32, bool)> = journal
        .entries()
        .iter()
        .filter(|e| e.step == "site" && e.action == StepAction::Execute && e.saga_id == id)
        .map(|e| (e.attempt, e.ok))
        .collect();
    assert_eq!(site_runs.first(), Some(&(1, false)));
    assert!(
        site_runs.iter().any(|(_, ok)| *ok),
        "a later attempt of the site step succeeded: {site_runs:?}"
    );
    stop.cancel();
    let _ = orchestrator.await;
    h.finish().await;
}
