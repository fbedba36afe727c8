//! A step service that starts while its NATS server has no JetStream yet (a cluster
//! that has just lost a node, electing leaders, answers the same way for a while)
//! waits for it rather than exiting, and serves commands once it is there.
//!
//! One test per binary, on a private nats-server, started first without JetStream.

use std::time::Duration;

use contracts::{StepAction, Subjects};
use secrets::ExposeSecret as _;
use tests::private_nats::PrivateNats;
use tests::scripted::{Behaviour, Journal, ScriptedStep};
use tests::steps::command;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_service_waits_for_jetstream_instead_of_exiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nats = PrivateNats::start(dir.path());
    nats.stop();
    nats.jetstream = false;
    nats.run();

    let namespace = format!("late{}", &Uuid::new_v4().simple().to_string()[..8]);
    let key = secrets::Keyring::generate_entry(&tests::key_id("late"))
        .expose_secret()
        .to_string();
    let env = [
        ("NATS_URL", nats.url()),
        ("NATS_NAMESPACE", namespace.clone()),
        ("SAGA_SECRETS_KEYS", key),
        ("HEALTH_ADDR", "127.0.0.1:0".to_string()),
    ];
    let config =
        step_runtime::config_from(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .expect("runtime config");
    let journal = Journal::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let service = tokio::spawn(step_runtime::run(
        ScriptedStep::new("site", Behaviour::default(), journal.clone()),
        config,
        stop.clone(),
    ));

    // JetStream comes a few seconds later, on the same port.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!service.is_finished(), "the service waits for JetStream");
    nats.stop();
    nats.jetstream = true;
    nats.run();

    // Once it is there (and the streams, which the orchestrator declares), the service
    // declares its consumer and runs a command.
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let subjects = Subjects::new(&namespace);
    let saga = Uuid::new_v4();
    let execute = command(saga, "site", StepAction::Execute, 1, "late");
    tests::assert_eventually!(60, "a command is taken and run", {
        let declared = step_runtime::bus::ensure_streams(
            &js,
            &subjects,
            1,
            step_runtime::bus::DEFAULT_REPORT_TTL,
        )
        .await;
        if declared.is_ok() {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", execute.command_id.as_str());
            let _ = js
                .publish_with_headers(
                    subjects.step_command("site"),
                    headers,
                    serde_json::to_vec(&execute).expect("json").into(),
                )
                .await;
        }
        journal.entries().iter().any(|e| e.saga_id == saga && e.ok)
    });
    assert!(!service.is_finished(), "the service kept running");
    stop.cancel();
    service
        .await
        .expect("join")
        .expect("the service ends cleanly");
}
