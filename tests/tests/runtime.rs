//! The step runtime's promises, seen from outside: graceful shutdown releases
//! unfinished work to another instance, and malformed commands never stop a service.

use std::time::Duration;

use contracts::SagaStatus;
use tests::{Behaviour, Harness, Journal, ScriptedStep};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_step_service_releases_its_command_to_another_instance() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    h.start_db_step();
    let journal = Journal::default();
    for name in ["admin_user", "registration"] {
        h.start_scripted(ScriptedStep::new(
            name,
            Behaviour::default(),
            journal.clone(),
        ));
    }
    // Instance A takes the site command but needs 30 s; it is asked to stop after it
    // started, with 1 s of grace.
    let stop_a = CancellationToken::new();
    let slow = Behaviour {
        delay: Duration::from_secs(30),
        ..Behaviour::default()
    };
    let instance_a = h.start_scripted_until(
        ScriptedStep::new("site", slow, journal.clone()),
        stop_a.clone(),
        Duration::from_secs(1),
    );

    let id = Uuid::new_v4();
    let subdomain = h.subdomain("handover");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    tests::assert_eventually!(20, "instance A runs the site step", {
        let timeline = h.get(id).await.timeline;
        timeline.iter().any(|e| {
            e.step.as_deref() == Some("site")
                && e.step_status == Some(contracts::StepStatus::Output)
        })
    });
    stop_a.cancel();
    instance_a.await.expect("instance A stops within its grace");

    // Instance B gets the same command (released, not timed out) and finishes the saga.
    let quick = Behaviour {
        delay: Duration::from_millis(200),
        ..Behaviour::default()
    };
    h.start_scripted(ScriptedStep::new("site", quick, journal.clone()));
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Completed);
    let timeline = h.timeline(id, 1).await;
    let working = timeline
        .iter()
        .filter(|e| e.message == "site working")
        .count();
    assert_eq!(
        working,
        2,
        "the progress shows both instances' output, the second not taken for a duplicate: {:?}",
        timeline
            .iter()
            .map(|e| format!("{} {:?} {}", e.sequence, e.step_status, e.message))
            .collect::<Vec<_>>()
    );
    let site_runs: Vec<_> = journal
        .entries()
        .into_iter()
        .filter(|e| e.saga_id == id && e.step == "site")
        .collect();
    assert_eq!(
        site_runs.len(),
        1,
        "only instance B ran it to the end: {site_runs:#?}"
    );
    assert_eq!(
        site_runs[0].attempt, 1,
        "the same attempt, handed over, not retried after a timeout"
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_command_is_set_aside_and_the_service_goes_on() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    h.start_steps(&[]);
    h.js.publish(h.subjects.step_command("site"), "{ not a command".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("aftermalformed");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Completed);
    // Terminated, not redelivered: the work queue is empty again.
    let mut commands =
        h.js.get_stream(h.subjects.commands_stream())
            .await
            .expect("stream");
    tests::assert_eventually!(
        10,
        "command stream drained",
        commands.info().await.expect("info").state.messages == 0
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}
