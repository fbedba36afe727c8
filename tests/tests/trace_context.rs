//! One trace per saga: a signup's W3C `traceparent` reaches every command of the saga
//! and every report answering one, and the five services' log lines of the saga
//! carry its trace id, as do its progress events; a signup without one gets a trace
//! of its own. The services
//! export their spans over OTLP/HTTP (JSON) to a receiver of the test's own, and each
//! service's spans of the saga are in its trace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use contracts::{SagaStatus, StepCommand, StepEvent, TraceParent};
use futures::StreamExt as _;
use tests::Harness;
use uuid::Uuid;

/// A message seen on the bus: its saga and the trace id of its `traceparent`.
fn seen(
    message: &async_nats::Message,
    saga_of: impl Fn(&[u8]) -> Option<Uuid>,
) -> Option<(Uuid, Option<String>)> {
    let saga = saga_of(&message.payload)?;
    let trace = message
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .and_then(|v| TraceParent::parse(v.as_str()))
        .map(|t| t.trace_id().to_string());
    Some((saga, trace))
}

/// Spans received over OTLP: (service.name, trace id, span name).
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// An OTLP/HTTP receiver (JSON encoding) on a free port: its URL and what it got.
async fn otlp_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(received): axum::extract::State<Received>,
                 body: axum::body::Bytes| async move {
                    let request: serde_json::Value =
                        serde_json::from_slice(&body).expect("OTLP JSON");
                    let mut received = received.lock().expect("lock");
                    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
                        let service = resource["resource"]["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .find(|a| a["key"] == "service.name")
                            .and_then(|a| a["value"]["stringValue"].as_str())
                            .unwrap_or("?")
                            .to_string();
                        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                            for span in scope["spans"].as_array().into_iter().flatten() {
                                received.push((
                                    service.clone(),
                                    span["traceId"].as_str().unwrap_or("").to_lowercase(),
                                    span["name"].as_str().unwrap_or("").to_string(),
                                ));
                            }
                        }
                    }
                    axum::Json(serde_json::json!({}))
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// `text` without its ANSI colour codes (the services log to a file as to a terminal).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signups_traceparent_follows_every_command_report_and_log_line() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let (url, _master) = h.start_master().await;
    let (collector, received) = otlp_receiver().await;
    let mut env = h.frappe_env(&root, &url);
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", collector));
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()));
    let _services = h.spawn_all(&env);

    // Everything sent on the command and event subjects, as the test's own user sees it.
    let mut commands = h.client.subscribe("saga.cmd.>").await.expect("subscribe");
    let mut events = h.client.subscribe("saga.evt.>").await.expect("subscribe");
    h.client.flush().await.expect("flush");

    let traced = Uuid::new_v4();
    let subdomain = h.subdomain("traced");
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", traced.to_string().as_str());
    headers.insert("traceparent", traceparent);
    jetstream::new(h.web_app.clone())
        .publish_with_headers(
            h.subjects.signup_requested(),
            headers,
            serde_json::to_vec(&h.signup(traced, &subdomain))
                .expect("json")
                .into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    let untraced = Uuid::new_v4();
    let other = h.subdomain("untraced");
    h.publish_signup(&h.signup(untraced, &other)).await;
    assert_eq!(h.wait_terminal(traced, 60).await, SagaStatus::Completed);
    assert_eq!(h.wait_terminal(untraced, 60).await, SagaStatus::Completed);

    // Four commands per saga (one per step), each with the saga's trace.
    let mut by_saga: Vec<(Uuid, Option<String>)> = Vec::new();
    while by_saga.len() < 8 {
        let message = tokio::time::timeout(Duration::from_secs(10), commands.next())
            .await
            .expect("a command within 10 s")
            .expect("subscription");
        if let Some(s) = seen(&message, |p| {
            serde_json::from_slice::<StepCommand>(p)
                .ok()
                .map(|c| c.saga_id)
        }) {
            by_saga.push(s);
        }
    }
    let traces_of = |saga: Uuid, seen: &[(Uuid, Option<String>)]| -> BTreeSet<Option<String>> {
        seen.iter()
            .filter(|(s, _)| *s == saga)
            .map(|(_, t)| t.clone())
            .collect()
    };
    assert_eq!(
        traces_of(traced, &by_saga),
        BTreeSet::from([Some(trace_id.to_string())]),
        "every command of the traced saga carries the signup's trace id"
    );
    let own = traces_of(untraced, &by_saga);
    assert_eq!(own.len(), 1, "one trace for the untraced saga: {own:?}");
    let own_trace = own
        .into_iter()
        .next()
        .flatten()
        .expect("a trace started for it");
    assert_ne!(own_trace, trace_id);

    // The final reports carry it back.
    let mut reports = Vec::new();
    while reports.len() < 4 {
        let message = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("subscription");
        if let Some(s) = seen(&message, |p| {
            serde_json::from_slice::<StepEvent>(p)
                .ok()
                .filter(|e| {
                    e.saga_id == traced && !matches!(e.report, contracts::StepReport::Output { .. })
                })
                .map(|e| e.saga_id)
        }) {
            reports.push(s);
        }
    }
    assert!(
        reports.iter().all(|(_, t)| t.as_deref() == Some(trace_id)),
        "{reports:?}"
    );

    // The progress events a web app follows are in the trace too, as stored.
    let progress = jetstream::new(h.client.clone())
        .get_stream(h.subjects.progress_stream())
        .await
        .expect("progress stream")
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: h.subjects.progress(&traced),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut stored = progress.messages().await.expect("messages");
    let mut traces = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stored.next())
            .await
            .expect("a progress event within 10 s")
            .expect("stream")
            .expect("message");
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get("traceparent"))
            .and_then(|v| TraceParent::parse(v.as_str()))
            .map(|t| t.trace_id().to_string());
        traces.push(header);
        let event: contracts::ProgressEvent =
            serde_json::from_slice(&message.payload).expect("progress event");
        if event.status.is_terminal() {
            break;
        }
    }
    assert!(
        traces.len() > 4 && traces.iter().all(|t| t.as_deref() == Some(trace_id)),
        "every progress event of the saga carries its trace id: {traces:?}"
    );

    // Each service's log lines about the traced saga carry its trace id.
    for service in [
        "orchestrator",
        "db-step",
        "site-step",
        "user-step",
        "registry-step",
    ] {
        let log = without_colours(
            &std::fs::read_to_string(h.logs.join(format!("{service}-0.log"))).expect("log"),
        );
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("saga_id={traced}")))
            .collect();
        assert!(!lines.is_empty(), "{service}: no line about the saga");
        let without: Vec<&&str> = lines.iter().filter(|l| !l.contains(trace_id)).collect();
        assert!(
            without.is_empty(),
            "{service}: {} of {} lines of the saga without its trace id, such as {:?}",
            without.len(),
            lines.len(),
            without.first()
        );
    }
    // Exported: every service's spans of the saga are in its trace (the batch
    // exporter sends every few seconds).
    let services = [
        "orchestrator",
        "db-step",
        "site-step",
        "user-step",
        "registry-step",
    ];
    let in_trace = || -> BTreeMap<String, BTreeSet<String>> {
        let mut by_service = BTreeMap::<String, BTreeSet<String>>::new();
        for (service, trace, name) in received.lock().expect("lock").iter() {
            if trace == trace_id {
                by_service
                    .entry(service.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        by_service
    };
    tests::assert_eventually!(
        30,
        format!("spans of every service in the trace: {:?}", in_trace()),
        services.iter().all(|s| in_trace().contains_key(*s))
    );
    let spans = in_trace();
    assert!(spans["orchestrator"].contains("saga"), "{spans:?}");
    for step in &services[1..] {
        assert!(spans[*step].contains("command"), "{step}: {spans:?}");
    }

    for subdomain in [&subdomain, &other] {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    h.finish().await;
}

/// A web app migrating from the old HTTP service sends its `traceparent` with
/// `POST /api/v1/provision`: the saga joins that trace as it would over NATS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provision_requests_traceparent_follows_its_commands() {
    use tests::http_api::{wait_for_role, API_SECRET};
    let mut h = Harness::new().await;
    h.start_steps(&[]);
    let base = h.start_api(&[]);
    let client = reqwest::Client::new();
    wait_for_role(&client, &base, "leader").await;
    let mut commands = h.client.subscribe("saga.cmd.>").await.expect("subscribe");
    h.client.flush().await.expect("flush");

    let subdomain = h.subdomain("httptraced");
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let accepted: serde_json::Value = client
        .post(format!("{base}/api/v1/provision"))
        .header("X-Provisioning-Secret", API_SECRET)
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .json(&serde_json::json!({
            "organization_name": "Http Traced", "admin_email": "admin@test.com",
            "password": "TestPass123!-long enough", "full_name": "Test Admin",
            "subdomain": subdomain,
        }))
        .send()
        .await
        .expect("provision")
        .json()
        .await
        .expect("json");
    let saga: Uuid = accepted["saga_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("saga id");
    assert_eq!(h.wait_terminal(saga, 60).await, SagaStatus::Completed);
    let mut traces = BTreeSet::new();
    let mut seen_commands = 0;
    while seen_commands < 4 {
        let message = tokio::time::timeout(Duration::from_secs(10), commands.next())
            .await
            .expect("a command within 10 s")
            .expect("subscription");
        if let Some((_, trace)) = seen(&message, |p| {
            serde_json::from_slice::<StepCommand>(p)
                .ok()
                .map(|c| c.saga_id)
                .filter(|s| *s == saga)
        }) {
            seen_commands += 1;
            traces.insert(trace);
        }
    }
    assert_eq!(
        traces,
        BTreeSet::from([Some(trace_id.to_string())]),
        "every command of the saga carries the caller's trace id"
    );
    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}
