//! The orchestrator killed with SIGKILL mid-saga and restarted finishes the saga
//! exactly once. The orchestrator runs as a real process here; the step services run
//! in the test process (they are not the ones being killed).

use std::time::Duration;

use contracts::{SagaStatus, StepStatus};
use secrets::ExposeSecret;
use tests::{Behaviour, Harness, Service};
use uuid::Uuid;

/// The orchestrator as a process (at `RUST_LOG=debug`, as every service process the
/// harness starts), killed if the test fails.
fn spawn_orchestrator(h: &Harness, generation: usize, extra_env: &[(&str, &str)]) -> Service {
    let extra: Vec<(&str, String)> = extra_env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    h.spawn_service("orchestrator", &generation.to_string(), &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_repeatedly_mid_saga_finishes_it_exactly_once() {
    let mut h = Harness::new().await;
    let slow = Behaviour {
        delay: Duration::from_millis(800),
        ..Behaviour::default()
    };
    let journal = h.start_steps(&[
        ("site", slow.clone()),
        ("admin_user", slow.clone()),
        ("registration", slow),
    ]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("crash");
    let mut child = spawn_orchestrator(&h, 0, &[]);
    h.publish_signup(&h.signup(id, &subdomain)).await;
    // The first instance leads from the start: the kills begin once it drives the
    // saga (each killed leader's lease must run out before the next one leads).
    tests::assert_eventually!(30, "the saga accepted", h.get(id).await.saga.is_some());

    // Kill -9 at several points of the saga: while steps run, between them, while
    // reports wait in the stream. Restart at once each time.
    let mut generation = 0;
    for pause_ms in [150, 500, 900, 700, 1100] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        generation += 1;
        child = spawn_orchestrator(&h, generation, &[]);
    }
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);

    // Each scripted step ran its effect exactly once, and with the same inputs.
    let executes: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.saga_id == id)
        .collect();
    let names: Vec<&str> = executes.iter().map(|e| e.step.as_str()).collect();
    assert_eq!(
        names,
        ["site", "admin_user", "registration"],
        "{executes:#?}"
    );
    assert!(executes
        .iter()
        .all(|e| e.ok && e.run == 1 && e.attempt == 1));
    assert_eq!(
        tests::mariadb_has(&db_step::database_name(&subdomain)).await,
        (true, true)
    );

    // The timeline is whole, in order, and ends once.
    let timeline = h.timeline(id, 1).await;
    let sequences: Vec<u64> = timeline.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=timeline.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        timeline
            .iter()
            .filter(|e| e.status == SagaStatus::Completed)
            .count(),
        1
    );
    let completed_steps = timeline
        .iter()
        .filter(|e| e.step_status == Some(StepStatus::Completed))
        .count();
    assert_eq!(completed_steps, 4);

    // Secrets appear in no log line of any generation.
    let db_password = {
        let site = journal
            .entries()
            .into_iter()
            .find(|e| e.step == "site")
            .expect("site ran");
        let sealed = contracts::Sealed(
            site.outputs["database"]["db_password"]
                .as_str()
                .expect("sealed")
                .to_string(),
        );
        h.key
            .open(
                &sealed,
                secrets::Binding::new(site.saga_id, secrets::Field::DbPassword),
            )
            .expect("opens")
            .expose_secret()
            .to_string()
    };
    let logs = h.service_logs();
    assert!(
        logs.contains("resuming"),
        "the restarted orchestrator resumed the saga"
    );
    assert!(!logs.contains("TestPass123!"), "admin password in logs");
    assert!(!logs.contains(&db_password), "database password in logs");
    assert!(!logs.contains(&h.keys_text), "the services' key in logs");

    child.kill().expect("stop");
    child.wait().expect("reaped");
    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_survives_a_restart_and_rolls_back() {
    let mut h = Harness::new().await;
    // admin_user never answers in time: its timeout (set to 2 s below) must fire even
    // though the orchestrator that armed it was killed.
    let stuck = Behaviour {
        delay: Duration::from_secs(60),
        ..Behaviour::default()
    };
    let journal = h.start_steps(&[("admin_user", stuck)]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("timeout");
    let fast_timeouts = [
        ("SAGA_STEP_TIMEOUT_SECS", "2"),
        ("SAGA_RETRY_BASE_MS", "50"),
    ];
    let mut child = spawn_orchestrator(&h, 0, &fast_timeouts);
    h.publish_signup(&h.signup(id, &subdomain)).await;
    tests::assert_eventually!(
        20,
        "admin_user started",
        h.get(id)
            .await
            .timeline
            .iter()
            .any(|e| e.step.as_deref() == Some("admin_user"))
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    tokio::time::sleep(Duration::from_secs(3)).await; // the deadline passes while nobody runs
    let mut child = spawn_orchestrator(&h, 1, &fast_timeouts);
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);
    let saga = h.get(id).await.saga.expect("saga");
    assert_eq!(saga.error.expect("error").code, "step_timeout");
    assert_eq!(
        tests::mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    assert!(journal.lines(id).contains(&"site compensate".to_string()));
    child.kill().expect("stop");
    child.wait().expect("reaped");
    h.finish().await;
}
