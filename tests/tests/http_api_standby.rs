//! Two orchestrators on one shared MariaDB store, each with the HTTP API: the standby
//! answers reads and passes writes to the leader (provision, replay, bulk replay),
//! and the NATS admin subjects take the same filters, who and why.

use contracts::admin::{BulkReplayReply, ListReply, ReplayReply};
use contracts::SagaStatus;
use serde_json::{json, Value};
use tests::http_api::{wait_for_role, API_SECRET, READ_TOKEN};
use tests::{Behaviour, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_reads_and_its_replays_reach_the_leader() {
    let mut h = Harness::new().await;
    let database = format!("saga_http_api_{}", h.suffix);
    let store = (
        "SAGA_STORE_URL",
        format!("{}/{database}", tests::mysql_url()),
    );
    h.start_steps(&[("registration", Behaviour::fail())]);
    let client = reqwest::Client::new();
    let leader = h.start_api(std::slice::from_ref(&store));
    let leading = wait_for_role(&client, &leader, "leader").await;
    let standby = h.start_api(std::slice::from_ref(&store));
    let standing = wait_for_role(&client, &standby, "standby").await;
    assert_eq!(standing["leader"], leading["instance"], "{standing}");

    // Provisioned through the standby: the leader runs it (registration fails).
    let subdomain = h.subdomain("standby");
    let accepted: Value = client
        .post(format!("{standby}/api/v1/provision"))
        .header("X-Provisioning-Secret", API_SECRET)
        .header("Idempotency-Key", format!("order-{subdomain}"))
        .json(&json!({
            "organization_name": "Standby Org",
            "admin_email": "admin@test.com",
            "password": "TestPass123!-long enough",
            "full_name": "Test Admin",
            "subdomain": subdomain,
        }))
        .send()
        .await
        .expect("provision")
        .json()
        .await
        .expect("json");
    let id: uuid::Uuid = accepted["saga_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);

    // The standby reads it.
    let read = client
        .get(format!("{standby}/api/v1/sagas/{id}"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 200);

    // NATS: the list takes the new filters; a replay asked with who and why.
    let listed: ListReply = h
        .request(
            h.subjects.admin_list(),
            &json!({"subdomain": subdomain, "step": "registration", "status": "rolled_back"}),
        )
        .await;
    assert_eq!(listed.sagas.len(), 1, "{listed:?}");
    let dry: BulkReplayReply = h
        .request(
            h.subjects.admin_replay_bulk(),
            &json!({"step": "registration", "dry_run": true}),
        )
        .await;
    assert!(dry.matched.iter().any(|s| s.saga_id == id) && dry.replays.is_empty());
    let by_nats: ReplayReply = h
        .request(
            h.subjects.admin_replay(),
            &json!({"saga_id": id, "operator": "carol", "reason": "over nats"}),
        )
        .await;
    assert!(by_nats.accepted, "{by_nats:?}");
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);

    // A real bulk replay through the standby's HTTP: the leader replays, who and why kept.
    let bulk = client
        .post(format!("{standby}/api/v1/sagas/replay"))
        .header("X-Provisioning-Secret", API_SECRET)
        .header("X-Operator", "bob")
        .json(&json!({"step": "registration", "reason": "registry fixed", "dry_run": false}))
        .send()
        .await
        .expect("bulk");
    assert_eq!(bulk.status(), 200);
    let bulk: BulkReplayReply = bulk.json().await.expect("json");
    let mine = bulk
        .replays
        .iter()
        .find(|r| r.saga_id == id)
        .expect("the saga was replayed");
    assert!(mine.accepted, "{mine:?}");
    let saga: Value = client
        .get(format!("{standby}/api/v1/sagas/{id}"))
        .header("X-Provisioning-Secret", API_SECRET)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let actions: Vec<(String, String, String)> = saga["operator_actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            let field = |k: &str| a[k].as_str().expect("field").to_string();
            (field("action"), field("operator"), field("reason"))
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("replay".into(), "carol".into(), "over nats".into()),
            ("bulk_replay".into(), "bob".into(), "registry fixed".into())
        ]
    );
    assert_eq!(saga["saga"]["run"], 3);

    // An instance without the secrets takes no HTTP writes nor reads of sagas: 503,
    // saying why; its health still answers.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    h.start_orchestrator_with(&[store.clone(), ("HTTP_ADDR", format!("127.0.0.1:{port}"))]);
    let bare = format!("http://127.0.0.1:{port}");
    wait_for_role(&client, &bare, "standby").await;
    let write = client
        .post(format!("{bare}/api/v1/sagas/{id}/replay"))
        .header("X-Provisioning-Secret", API_SECRET)
        .send()
        .await
        .expect("replay");
    assert_eq!(write.status(), 503);
    let refusal: Value = write.json().await.expect("json");
    assert_eq!(refusal["error"]["code"], "writes_disabled", "{refusal}");
    let read = client
        .get(format!("{bare}/api/v1/sagas"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .expect("list");
    assert_eq!(read.status(), 503);

    h.finish().await;
    let pool = tests::admin_pool().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{database}`"))
        .execute(&pool)
        .await
        .expect("drop the test's store");
}
