//! The bus is locked down by `deploy/nats/auth.conf`, loaded as it is into a
//! nats-server of the test's own: each party does its own part and nothing else.
//!
//! - The web app's user is refused commands, step reports, replays, declaring or
//!   deleting streams and reading the command stream: the server reports a
//!   permissions violation (or the request goes unanswered) and nothing reaches the
//!   stream or the responder, as another user sees.
//! - Publishing a signup, checking a subdomain and following a saga's progress work
//!   with it, against a running orchestrator (a plain subscription and direct gets: no
//!   consumers, since a push consumer can be pointed at any subject).
//! - A JetStream delivery that reaches a request subject (a consumer pointed there by
//!   a party that may make consumers) is never taken for a request.
//! - Only the orchestrator can command: a `compensate` for a live tenant's database
//!   sent with the web app's, an operator's or another step's credentials never reaches
//!   db-step; the database is still there.
//!
//! `bus_parties.rs` has the operators' and the step services' side.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use contracts::{SagaStatus, StepAction, StepReport};
use futures::StreamExt;
use tests::private_nats::PrivateNats;
use tests::steps::command;
use tests::{mariadb_has, Harness};
use uuid::Uuid;

/// A client of `user` that records the errors the server reports to it.
async fn watched(nats: &PrivateNats, user: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = errors.clone();
    let client = nats
        .config_for(user)
        .connect_options()
        .await
        .expect("options")
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().expect("errors").push(e.to_string());
                }
            }
        })
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    (client, errors)
}

/// Waits until the server told `errors`' client that it may not publish to `subject`.
async fn violation_reported(errors: &Arc<Mutex<Vec<String>>>, subject: &str) {
    tests::assert_eventually!(
        10,
        format!("a permissions violation for {subject}"),
        errors.lock().expect("errors").iter().any(|e| {
            e.to_ascii_lowercase().contains("permissions violation") && e.contains(subject)
        })
    );
}

/// The last sequence a stream ever stored (the work queues drop handled messages).
async fn last_sequence(h: &Harness, name: &str) -> u64 {
    let mut stream = h.js.get_stream(name).await.expect("stream");
    stream.info().await.expect("info").state.last_sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_cannot_command_report_replay_declare_or_read_commands() {
    let h = Harness::new().await;
    let (web, errors) = watched(&h.nats, "web-app").await;
    // A refused JetStream request goes unanswered: wait 2 s for each, not 5.
    let mut web_js = jetstream::new(web.clone());
    web_js.set_timeout(Duration::from_secs(2));
    // Another user listens where the forbidden publishes would land.
    let mut admin_requests = h.client.subscribe("saga.admin.>").await.expect("subscribe");
    h.client.flush().await.expect("flush");
    let (commands_before, events_before) = (
        last_sequence(&h, "SAGA_COMMANDS").await,
        last_sequence(&h, "SAGA_EVENTS").await,
    );

    for subject in ["saga.cmd.database", "saga.evt.database"] {
        web.publish(subject, "{}".into()).await.expect("sent");
        web.flush().await.expect("flush");
        violation_reported(&errors, subject).await;
    }
    let replay = tokio::time::timeout(
        Duration::from_secs(2),
        web.request("saga.admin.replay", r#"{"saga_id":"x"}"#.into()),
    )
    .await;
    assert!(!matches!(replay, Ok(Ok(_))), "a replay request is answered");
    violation_reported(&errors, "saga.admin.replay").await;
    // Declaring, deleting, reading the command stream: each refused.
    let created = web_js
        .create_stream(stream::Config {
            name: "WEB_APP_STREAM".into(),
            subjects: vec!["web.>".into()],
            ..Default::default()
        })
        .await;
    assert!(created.is_err(), "the web app declared a stream");
    assert!(
        web_js.delete_stream("SAGA_COMMANDS").await.is_err(),
        "the web app deleted the command stream"
    );
    assert!(
        web_js.get_stream("SAGA_COMMANDS").await.is_err(),
        "the web app read the command stream's info"
    );
    let ordered = web_js
        .create_consumer_on_stream(
            consumer::pull::OrderedConfig {
                filter_subject: "saga.cmd.database".into(),
                ..Default::default()
            },
            "SAGA_COMMANDS",
        )
        .await;
    assert!(
        ordered.is_err(),
        "the web app made a consumer on SAGA_COMMANDS"
    );
    // Nor on the progress it may read: a push consumer would deliver wherever it is
    // told, saga.admin.replay included, whatever its creator may publish.
    let pointed = web_js
        .create_consumer_on_stream(
            consumer::push::Config {
                deliver_subject: "saga.admin.replay".into(),
                ..Default::default()
            },
            "TENANT_PROGRESS",
        )
        .await;
    assert!(
        pointed.is_err(),
        "the web app made a consumer delivering to saga.admin.replay"
    );
    for api in [
        "$JS.API.STREAM.MSG.GET.SAGA_COMMANDS",
        "$JS.API.DIRECT.GET.SAGA_COMMANDS",
        "$JS.API.DIRECT.GET.SAGA_COMMANDS.saga.cmd.database",
    ] {
        let got = tokio::time::timeout(
            Duration::from_secs(2),
            web.request(api, r#"{"seq":1}"#.into()),
        )
        .await;
        assert!(!matches!(got, Ok(Ok(_))), "{api} answered the web app");
        violation_reported(&errors, api).await;
    }
    // A plain subscription to the commands is refused too.
    let mut spy = web.subscribe("saga.cmd.>").await.expect("sent");
    web.flush().await.expect("flush");
    violation_reported(&errors, "saga.cmd.>").await;

    // Nothing reached the streams nor the responder: the only command stored and the
    // only admin request seen are the ones sent as parties allowed to send them.
    let orchestrator = h.nats.connect_as("orchestrator").await;
    let probe = command(
        Uuid::new_v4(),
        "database",
        StepAction::Compensate,
        1,
        "nobody",
    );
    jetstream::new(orchestrator)
        .publish(
            "saga.cmd.database",
            serde_json::to_vec(&probe).expect("json").into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");
    h.operator
        .publish("saga.admin.list", "{}".into())
        .await
        .expect("sent");
    h.operator.flush().await.expect("flush");
    let seen = tokio::time::timeout(Duration::from_secs(10), admin_requests.next())
        .await
        .expect("the operator's request")
        .expect("message");
    assert_eq!(
        seen.subject.as_str(),
        "saga.admin.list",
        "the first admin request"
    );
    assert_eq!(
        last_sequence(&h, "SAGA_COMMANDS").await,
        commands_before + 1
    );
    assert_eq!(last_sequence(&h, "SAGA_EVENTS").await, events_before);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), spy.next())
            .await
            .is_err(),
        "the web app read a command"
    );
    assert!(
        h.js.get_stream("WEB_APP_STREAM").await.is_err(),
        "no stream was made"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_signs_up_checks_a_subdomain_and_follows_progress() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let _journal = h.start_steps(&[]);
    let (web, errors) = watched(&h.nats, "web-app").await;
    let subdomain = h.subdomain("webapp");
    // Once the orchestrator answers at all.
    let _ = h.get(Uuid::new_v4()).await;
    let check = h.check_subdomain(&subdomain).await;
    assert!(check.available, "{check:?}");

    // Live progress, as the web app follows a signup it just sent: a plain
    // subscription made before the signup (what came before, it reads with direct
    // gets: `h.timeline` below).
    let id = Uuid::new_v4();
    let web_js = jetstream::new(web.clone());
    let mut live = web
        .subscribe(format!("tenant.progress.{id}"))
        .await
        .expect("subscribe");
    // The signup as the web app sends it (JetStream publish, acked).
    let signup = serde_json::to_vec(&h.signup(id, &subdomain)).expect("json");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.to_string().as_str());
    web_js
        .publish_with_headers("tenant.signup.requested", headers, signup.into())
        .await
        .expect("sent")
        .await
        .expect("the signup is acked");

    let mut statuses = Vec::new();
    while statuses.last() != Some(&SagaStatus::Completed) {
        let message = tokio::time::timeout(Duration::from_secs(30), live.next())
            .await
            .expect("progress within 30 s")
            .expect("progress message");
        let event: contracts::ProgressEvent =
            serde_json::from_slice(&message.payload).expect("event");
        statuses.push(event.status);
    }
    assert_eq!(statuses.first(), Some(&SagaStatus::Accepted));
    // And read back from the start, as a page opened later does (direct gets of the
    // saga's subject, as the web app's user): the same events, in order.
    let timeline = h.timeline(id, 1).await;
    assert_eq!(
        timeline.iter().map(|e| e.status).collect::<Vec<_>>(),
        statuses
    );
    let taken = h.check_subdomain(&subdomain).await;
    assert!(!taken.available, "{taken:?}");
    assert!(
        errors.lock().expect("errors").is_empty(),
        "the server refused the web app something: {:?}",
        errors.lock().expect("errors")
    );
    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_orchestrator_can_command_a_step() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    // db-step one command at a time: once a later command's report is out, every
    // command stored before it was handled.
    let mut config = h.runtime_config("database");
    config.concurrency = 1;
    let databases =
        db_step::mariadb::MariaDb::new(&tests::mysql_url(), "saga_provisioning").expect("mariadb");
    databases.prepare().await.expect("ledger");
    let stop = tokio_util::sync::CancellationToken::new();
    let db_step = tokio::spawn(step_runtime::run(
        db_step::DatabaseStep::new(databases),
        config,
        stop.clone(),
    ));
    for step in ["site", "admin_user", "registration"] {
        h.start_scripted(tests::ScriptedStep::new(
            step,
            tests::Behaviour::default(),
            tests::Journal::default(),
        ));
    }
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("live");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);
    let db_name = db_step::database_name(&subdomain);
    assert_eq!(mariadb_has(&db_name).await, (true, true), "a live tenant");
    // The orchestrator and the other steps stop (db-step goes on), so that db-step's
    // reports stay in the event stream to be read.
    h.stop_services().await;
    let commands_before = last_sequence(&h, "SAGA_COMMANDS").await;

    // The undo of that tenant's database, as the orchestrator would send it, from
    // three parties that are not the orchestrator.
    let (mut forged, mut refusals) = (Vec::new(), Vec::new());
    for (attempt, user) in [(7, "web-app"), (8, "operator"), (9, "site-step")] {
        let (client, errors) = watched(&h.nats, user).await;
        let undo = command(id, "database", StepAction::Compensate, attempt, &subdomain);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", undo.command_id.as_str());
        client
            .publish_with_headers(
                "saga.cmd.database",
                headers,
                serde_json::to_vec(&undo).expect("json").into(),
            )
            .await
            .expect("sent");
        client.flush().await.expect("flush");
        forged.push(undo.command_id);
        refusals.push((client, errors));
    }
    // A command the orchestrator's user sends after them is handled.
    let after = command(
        Uuid::new_v4(),
        "database",
        StepAction::Compensate,
        1,
        "nobody",
    );
    let orchestrator = h.nats.connect_as("orchestrator").await;
    jetstream::new(orchestrator)
        .publish(
            "saga.cmd.database",
            serde_json::to_vec(&after).expect("json").into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");
    assert!(matches!(
        h.final_report("database", &after.command_id, 30).await,
        StepReport::Completed { .. }
    ));

    assert_eq!(
        mariadb_has(&db_name).await,
        (true, true),
        "the tenant's database and user are still there"
    );
    let events = h.step_events("database").await;
    assert!(
        !events.iter().any(|e| forged.contains(&e.command_id)),
        "db-step handled a forged command"
    );
    assert_eq!(
        last_sequence(&h, "SAGA_COMMANDS").await,
        commands_before + 1,
        "only the orchestrator's command was stored"
    );
    for (_client, errors) in &refusals {
        violation_reported(errors, "saga.cmd.database").await;
    }
    stop.cancel();
    let _ = db_step.await;
    tests::drop_tenant(&db_name).await;
    h.finish().await;
}

/// Defence in depth behind the permissions: even a consumer made by a user that may
/// (here the test's own) delivering the progress stream to `saga.admin.replay` does
/// not replay anything: every progress event holds a `saga_id`, but a JetStream
/// delivery is not a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_delivery_on_a_request_subject_is_never_a_request() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let _journal = h.start_steps(&[("site", tests::Behaviour::fail())]);
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &h.subdomain("pointed")))
        .await;
    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::RolledBack);

    let progress = h.js.get_stream("TENANT_PROGRESS").await.expect("stream");
    let mut pointed: consumer::PushConsumer = progress
        .create_consumer(consumer::push::Config {
            deliver_subject: "saga.admin.replay".into(),
            // The orchestrators' queue group: delivered to them as their requests are.
            deliver_group: Some("orchestrator".into()),
            durable_name: Some("pointed".into()),
            filter_subject: format!("tenant.progress.{id}"),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("the test's user may make it");
    // Delivered to the orchestrator's replay subscription, every event of the saga.
    let events = h.timeline(id, 1).await.len() as u64;
    tests::assert_eventually!(
        10,
        "the consumer delivered the saga's events to saga.admin.replay",
        pointed
            .info()
            .await
            .expect("info")
            .delivered
            .consumer_sequence
            >= events
    );
    // A replay, had one started, shows within a second or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let saga = h.get(id).await.saga.expect("saga");
    assert_eq!(
        (saga.status, saga.run),
        (SagaStatus::RolledBack, 1),
        "a progress event delivered to saga.admin.replay replayed the saga"
    );
    h.finish().await;
}
