//! The saga end to end: real orchestrator, real db-step, scripted positions 2-4,
//! real NATS JetStream and MariaDB.

use contracts::{SagaStatus, StepStatus};
use tests::{mariadb_has, Behaviour, Harness};
use uuid::Uuid;

const STEPS: [&str; 4] = ["database", "site", "admin_user", "registration"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_becomes_a_completed_saga_with_a_real_database() {
    let mut h = Harness::new().await;
    h.start_orchestrator();
    let journal = h.start_steps(&[]);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("happy");
    h.publish_signup(&h.signup(id, &subdomain)).await;

    assert_eq!(h.wait_terminal(id, 30).await, SagaStatus::Completed);
    let timeline = h.timeline(id, 1).await;
    let sequences: Vec<u64> = timeline.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=timeline.len() as u64).collect::<Vec<_>>(), "a late subscriber reads the whole timeline in order");
    let last = timeline.last().expect("events");
    assert_eq!(last.status, SagaStatus::Completed);
    assert_eq!(last.percent, 100);
    let result = last.result.as_ref().expect("result");
    assert_eq!(result["site_url"], format!("https://{subdomain}.example.test"));
    assert_eq!(result["admin_email"], "admin@test.com");
    let completed: Vec<&str> = timeline
        .iter()
        .filter(|e| e.step_status == Some(StepStatus::Completed))
        .filter_map(|e| e.step.as_deref())
        .collect();
    assert_eq!(completed, STEPS);

    // The database and its user exist, and the user logs in with the password the
    // later steps received (sealed) - the one bench new-site will be given.
    let db_name = db_step::database_name(&subdomain);
    assert_eq!(mariadb_has(&db_name).await, (true, true));
    let site_input = journal.entries().into_iter().find(|e| e.step == "site").expect("site ran");
    let database = &site_input.outputs["database"];
    assert_eq!(database["db_name"], db_name.as_str());
    let sealed = contracts::Sealed(database["db_password"].as_str().expect("sealed password").to_string());
    let password = h.key.open(&sealed).expect("opens with the saga key");
    use secrets::ExposeSecret;
    let url = format!("mysql://{db_name}:{}@127.0.0.1:3306/{db_name}", password.expose_secret());
    let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&url).await.expect("tenant user logs in");
    sqlx::query("CREATE TABLE t (id INT)").execute(&mut conn).await.expect("tenant user owns its database");

    // Secrets never show in progress events.
    let text = serde_json::to_string(&timeline).expect("json");
    assert!(!text.contains("TestPass123!") && !text.contains(password.expose_secret()));

    tests::drop_tenant(&db_name).await;
    h.finish().await;
}
