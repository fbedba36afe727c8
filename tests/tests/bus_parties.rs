//! The bus's permissions (`deploy/nats/auth.conf`, on a nats-server of the test's own)
//! from the operators' and the step services' side (`bus_permissions.rs` has the web
//! app's and the commands' authenticity):
//!
//! - Operators read the dead letters, not the commands; a step service makes only its
//!   own consumer on its own subject and writes only its own finished-commands keys.
//! - A step service started before the orchestrator waits for the streams (it may not
//!   declare them) and serves once they exist.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use contracts::StepAction;
use tests::private_nats::PrivateNats;
use tests::steps::command;
use tests::Harness;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_dead_letters_and_steps_read_only_their_own_commands() {
    let h = Harness::new().await;
    let quick = |client: async_nats::Client| {
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(2));
        js
    };
    // A dead letter and a command in their streams.
    let orchestrator = jetstream::new(h.nats.connect_as("orchestrator").await);
    orchestrator
        .publish(
            "saga.dead_letter.orchestrator",
            r#"{"reason":"test"}"#.into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");
    let undo = command(Uuid::new_v4(), "database", StepAction::Compensate, 1, "own");
    orchestrator
        .publish(
            "saga.cmd.database",
            serde_json::to_vec(&undo).expect("json").into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");

    // An operator reads the dead letters (direct gets, as `nats stream get`: operators
    // may not make consumers, which could be pointed at any subject).
    let operator = quick(h.operator.clone());
    let letters = operator
        .get_stream("TENANT_DEAD_LETTERS")
        .await
        .expect("the operator sees the dead letters' stream");
    let first = letters
        .direct_get_next_for_subject("saga.dead_letter.>", Some(1))
        .await
        .expect("the operator reads a dead letter");
    assert_eq!(first.subject.as_str(), "saga.dead_letter.orchestrator");
    // ... and not the commands, nor through a consumer of their own.
    assert!(
        operator.get_stream("SAGA_COMMANDS").await.is_err(),
        "the operator read SAGA_COMMANDS"
    );
    let commands = operator
        .create_consumer_on_stream(consumer::pull::OrderedConfig::default(), "SAGA_COMMANDS")
        .await;
    assert!(
        commands.is_err(),
        "the operator made a consumer on SAGA_COMMANDS"
    );
    let own = operator
        .create_consumer_on_stream(
            consumer::pull::OrderedConfig::default(),
            "TENANT_DEAD_LETTERS",
        )
        .await;
    assert!(
        own.is_err(),
        "the operator made a consumer on TENANT_DEAD_LETTERS"
    );

    // site-step may not take db-step's consumer, nor make its own read db-step's
    // commands, nor write db-step's finished-commands keys.
    let site = quick(h.nats.connect_as("site-step").await);
    let commands = site.get_stream("SAGA_COMMANDS").await.expect("stream info");
    for (name, filter) in [
        ("step-database", "saga.cmd.database"),
        ("step-site", "saga.cmd.database"),
        ("step-site", "saga.cmd.>"),
    ] {
        let taken = commands
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.into()),
                filter_subject: filter.into(),
                ..Default::default()
            })
            .await;
        assert!(taken.is_err(), "site-step made {name} on {filter}");
    }
    let foreign_key = site
        .publish(
            "$KV.SAGA_FINISHED_COMMANDS.database.x",
            r#"{"status":"completed"}"#.into(),
        )
        .await
        .expect("sent")
        .await;
    assert!(foreign_key.is_err(), "site-step wrote db-step's key");
    // Its own consumer, on its own subject, it may make.
    commands
        .create_consumer(consumer::pull::Config {
            durable_name: Some("step-site".into()),
            filter_subject: "saga.cmd.site".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("site-step makes its own consumer");
    // The command is still there, unread.
    let mut stream = h.js.get_stream("SAGA_COMMANDS").await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_service_started_before_the_orchestrator_waits_for_its_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = PrivateNats::start_with_auth(dir.path());
    let mut env = nats.env_for("site-step");
    env.push((
        "SAGA_SECRETS_KEYS".into(),
        secrets::ExposeSecret::expose_secret(&secrets::Keyring::generate_entry(&tests::key_id(
            "services",
        )))
        .to_string(),
    ));
    env.push(("HEALTH_ADDR".into(), "127.0.0.1:0".into()));
    let config =
        step_runtime::config_from(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .expect("runtime config");
    let journal = tests::Journal::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let service = tokio::spawn(step_runtime::run(
        tests::ScriptedStep::new("site", tests::Behaviour::default(), journal.clone()),
        config,
        stop.clone(),
    ));
    let inspector = jetstream::new(nats.connect_as(tests::private_nats::TEST_USER).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!service.is_finished(), "the step service waits");
    assert!(
        inspector.get_stream("SAGA_COMMANDS").await.is_err(),
        "a step service declared a stream"
    );

    // The orchestrator declares them (its own start-up call, as its own user).
    let orchestrator = jetstream::new(nats.connect_as("orchestrator").await);
    step_runtime::bus::ensure_streams(
        &orchestrator,
        &contracts::Subjects::new(""),
        1,
        step_runtime::bus::DEFAULT_REPORT_TTL,
    )
    .await
    .expect("the orchestrator declares the streams");
    let saga = Uuid::new_v4();
    let execute = command(saga, "site", StepAction::Execute, 1, "early");
    orchestrator
        .publish(
            "saga.cmd.site",
            serde_json::to_vec(&execute).expect("json").into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");
    tests::assert_eventually!(
        60,
        "the step service serves once the streams exist",
        journal.entries().iter().any(|e| e.saga_id == saga && e.ok)
    );
    stop.cancel();
    service
        .await
        .expect("join")
        .expect("the service ends cleanly");
}
