//! The step runtime's promises, seen from outside: graceful shutdown releases
//! unfinished work to another instance, malformed commands never stop a service and
//! become dead letters, a command that cannot be reported stops at `max_deliver` as a
//! dead letter, a panicking step is reported, and steps answer subdomain probes. (The
//! memory of finished commands: `runtime_memory.rs`.)

use std::time::Duration;

use contracts::{SagaStatus, StepAction, StepCommand, StepReport};
use step_runtime::{Step, StepContext, StepError};
use tests::steps::command;
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
    let garbage = br#"{"command_id": "x", "admin_password": "Leaky-Secret-2", "#;
    h.js.publish(h.subjects.step_command("site"), garbage.to_vec().into())
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
    // Set aside described, never kept as it came.
    let letters = h.step_dead_letters("site").await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert!(letters[0].reason.contains("unreadable"), "{letters:#?}");
    assert_eq!(letters[0].command_id, None);
    assert_eq!(letters[0].payload.bytes, garbage.len());
    let stored = serde_json::to_string(&letters[0]).expect("json");
    assert!(!stored.contains("Leaky-Secret-2"), "{stored}");
    assert!(
        letters[0]
            .payload
            .excerpt
            .contains(r#""admin_password": "***""#),
        "{}",
        letters[0].payload.excerpt
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_report_cannot_be_published_is_dead_lettered_after_max_deliver() {
    let h = Harness::new().await;
    let journal = Journal::default();
    let mut config = h.runtime_config("site");
    config.max_deliver = 3;
    let stop = CancellationToken::new();
    let service = tokio::spawn(step_runtime::run(
        ScriptedStep::new("site", Behaviour::default(), journal.clone()),
        config,
        stop.clone(),
    ));
    h.wait_step_consumer("site").await;
    // No stream takes the reports any more: every report publish fails.
    h.js.delete_stream(h.subjects.events_stream())
        .await
        .expect("events stream deleted");

    let saga = Uuid::new_v4();
    let execute = command(
        saga,
        "site",
        StepAction::Execute,
        1,
        &h.subdomain("deadletter"),
    );
    h.publish_command(&execute, &execute.command_id).await;
    tests::assert_eventually!(
        30,
        "a dead letter for the command",
        !h.step_dead_letters("site").await.is_empty()
    );
    let letters = h.step_dead_letters("site").await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = &letters[0];
    assert_eq!(
        letter.command_id.as_deref(),
        Some(execute.command_id.as_str())
    );
    assert_eq!(letter.saga_id, Some(saga));
    assert_eq!(letter.deliveries, 3);
    assert!(
        letter.reason.contains("report could not be published"),
        "{}",
        letter.reason
    );
    assert_eq!(
        letter.payload,
        contracts::dead_letter::summarize(&serde_json::to_vec(&execute).expect("json"))
    );

    // Terminated: out of the work queue, delivered exactly max_deliver times.
    assert_eq!(h.commands_left().await, 0);
    let consumer =
        h.js.get_stream(h.subjects.commands_stream())
            .await
            .expect("stream")
            .consumer_info(h.subjects.consumer("step-site"))
            .await
            .expect("consumer");
    assert_eq!(consumer.delivered.consumer_sequence, 3);
    assert_eq!((consumer.num_pending, consumer.num_ack_pending), (0, 0));
    assert_eq!(
        journal.lines(saga),
        ["site execute"],
        "run once; the redeliveries were answered from memory"
    );
    stop.cancel();
    service
        .await
        .expect("joined")
        .expect("service ends cleanly");
    h.finish().await;
}

/// A step that panics on its first execute.
struct Panicky;

impl Step for Panicky {
    fn name(&self) -> &str {
        "site"
    }

    async fn execute(
        &self,
        command: &StepCommand,
        _context: &StepContext,
    ) -> Result<serde_json::Value, StepError> {
        assert!(command.attempt > 1, "a bug in the step");
        Ok(serde_json::Value::Null)
    }

    async fn compensate(
        &self,
        _command: &StepCommand,
        _context: &StepContext,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_is_reported_failed_and_the_saga_is_not_wedged() {
    let h = Harness::new().await;
    let stop = CancellationToken::new();
    let service = tokio::spawn(step_runtime::run(
        Panicky,
        h.runtime_config("site"),
        stop.clone(),
    ));
    let saga = Uuid::new_v4();
    let subdomain = h.subdomain("panic");
    let execute = command(saga, "site", StepAction::Execute, 1, &subdomain);
    match h.run_command(&execute, 20).await {
        StepReport::Failed {
            code, retryable, ..
        } => assert_eq!((code.as_str(), retryable), ("step_panicked", true)),
        other => panic!("expected a failure, got {other:?}"),
    }
    // The saga's next commands are not left waiting for the panicked one.
    let retry = command(saga, "site", StepAction::Execute, 2, &subdomain);
    let retried = h.run_command(&retry, 20).await;
    assert!(
        matches!(retried, StepReport::Completed { .. }),
        "{retried:?}"
    );
    stop.cancel();
    service
        .await
        .expect("joined")
        .expect("service ends cleanly");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_without_a_probe_sees_every_subdomain_free() {
    let mut h = Harness::new().await;
    h.start_scripted(ScriptedStep::new(
        "admin_user",
        Behaviour::default(),
        Journal::default(),
    ));
    let reply = h.probe("admin_user", &h.subdomain("anything")).await;
    assert_eq!(reply, contracts::ProbeReply::answer(None));
    // A name that is no subdomain never reaches a step.
    let refused = h.probe("admin_user", "../etc").await;
    assert!(!refused.held);
    assert!(
        refused
            .error
            .as_deref()
            .is_some_and(|e| e.contains("refused")),
        "{refused:?}"
    );
    h.finish().await;
}

/// `max_deliver` of the durable consumer `durable` on stream `stream`.
async fn max_deliver_of(h: &Harness, stream: &str, durable: &str) -> i64 {
    let stream = h.js.get_stream(stream).await.expect("stream");
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(durable).await.expect("consumer");
    consumer
        .info()
        .await
        .expect("consumer info")
        .config
        .max_deliver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_declared_by_an_older_release_get_max_deliver() {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    let mut h = Harness::new().await;
    // As the release before this one declared them: no delivery limit.
    let old = [
        (
            h.subjects.commands_stream(),
            h.subjects.consumer("step-site"),
            h.subjects.step_command("site"),
        ),
        (
            h.subjects.events_stream(),
            h.subjects.consumer("orchestrator-events"),
            h.subjects.step_events_all(),
        ),
    ];
    for (stream, durable, filter) in &old {
        let stream = h.js.get_stream(stream).await.expect("stream");
        stream
            .create_consumer(pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: filter.clone(),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("old consumer");
        assert_eq!(
            max_deliver_of(&h, &stream.cached_info().config.name, durable).await,
            -1
        );
    }
    h.start_orchestrator();
    h.start_scripted(ScriptedStep::new(
        "site",
        Behaviour::default(),
        Journal::default(),
    ));
    let (commands, site) = (&old[0].0, &old[0].1);
    let (events, orchestrator) = (&old[1].0, &old[1].1);
    tests::assert_eventually!(
        30,
        "the step service set its consumer's max_deliver",
        max_deliver_of(&h, commands, site).await == 10
    );
    tests::assert_eventually!(
        30,
        "the orchestrator set its consumer's max_deliver",
        max_deliver_of(&h, events, orchestrator).await == 101
    );
    h.finish().await;
}

/// A broker that loses a consumer's filter (seen on a NATS 2.9 cluster under node
/// restarts) hands one step another step's command. The step must not run it: its
/// report would come back as the other step's done. It is set aside instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_for_another_step_is_set_aside_not_run() {
    let h = Harness::new().await;
    let journal = Journal::default();
    let stop = CancellationToken::new();
    let service = tokio::spawn(step_runtime::run(
        ScriptedStep::new("admin_user", Behaviour::default(), journal.clone()),
        h.runtime_config("admin_user"),
        stop.clone(),
    ));
    h.wait_step_consumer("admin_user").await;

    let undo = command(
        Uuid::new_v4(),
        "site",
        StepAction::Compensate,
        2,
        &h.subdomain("wrongstep"),
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", undo.command_id.as_str());
    h.js.publish_with_headers(
        h.subjects.step_command("admin_user"),
        headers,
        serde_json::to_vec(&undo).expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");

    tests::assert_eventually!(
        30,
        "a dead letter for the command",
        !h.step_dead_letters("admin_user").await.is_empty()
    );
    let letters = h.step_dead_letters("admin_user").await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert!(
        letters[0].reason.contains("\"site\"") && letters[0].reason.contains("\"admin_user\""),
        "{}",
        letters[0].reason
    );
    assert_eq!(
        letters[0].command_id.as_deref(),
        Some(undo.command_id.as_str())
    );
    assert!(journal.entries().is_empty(), "the step did not run it");
    assert!(
        h.step_events("admin_user").await.is_empty(),
        "nothing reported for it"
    );
    stop.cancel();
    service.await.expect("join").expect("service");
    h.finish().await;
}
