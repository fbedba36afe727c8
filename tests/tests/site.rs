//! The Frappe steps wired in this process (real orchestrator, db-step, site-step and
//! user-step; bench = the emulator with a real MariaDB; registration scripted), looking
//! closely at what a successful saga leaves on the bench. Failures and the five
//! services as processes: `full_saga.rs`.

use std::path::Path;

use contracts::SagaStatus;
use tests::{Behaviour, Harness, Journal, ScriptedStep};
use uuid::Uuid;

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("json")
}

/// The real user step, and a scripted registration (failing on request).
fn start_rest(h: &mut Harness, root: &Path, registration_fails: bool) -> Journal {
    let journal = Journal::default();
    h.start_user_step(root);
    let behaviour = if registration_fails {
        Behaviour::fail()
    } else {
        Behaviour::default()
    };
    h.start_scripted(ScriptedStep::new(
        "registration",
        behaviour,
        journal.clone(),
    ));
    journal
}

fn users(root: &Path, site: &str) -> serde_json::Value {
    read(&root.join(format!("sites/{site}/emulator/users.json")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_gets_a_marked_site_on_its_own_database() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    start_rest(&mut h, &root, false);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("site");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);

    let site = format!("{subdomain}.example.test");
    let config = read(&root.join(format!("sites/{site}/site_config.json")));
    assert_eq!(
        config["provisioning_saga_id"],
        id.to_string(),
        "the marker proves whose site it is"
    );
    assert_eq!(config["host_name"], format!("https://{site}"));
    assert_eq!(config["db_name"], db_step::database_name(&subdomain));
    assert_eq!(
        read(&root.join(format!("sites/{site}/emulator/apps.json"))),
        serde_json::json!(["frappe", "erpnext"])
    );
    assert_eq!(config["pause_scheduler"], 0, "scheduler enabled");

    // bench output reached the timeline, secrets did not.
    let timeline = h.timeline(id, 1).await;
    assert!(
        timeline
            .iter()
            .any(|e| e.message.contains("Updating DocTypes for erpnext")),
        "bench progress is shown"
    );
    let text = serde_json::to_string(&timeline).expect("json");
    assert!(
        !text.contains(config["db_password"].as_str().expect("password")),
        "the database password leaked into progress"
    );
    let log = std::fs::read_to_string(root.join("logs/bench.log")).expect("bench.log");
    assert!(
        log.contains("new-site") && log.contains("--no-setup-db"),
        "{log}"
    );
    assert!(!log.contains("--force") && !log.contains("--mariadb-user-host-login-scope"));

    // The System Manager exists, and the keys the client gets are the ones that work.
    let user = &users(&root, &site)["admin@test.com"];
    assert!(user["roles"]
        .as_array()
        .expect("roles")
        .contains(&serde_json::json!("System Manager")));
    assert_eq!(
        (user["first_name"].as_str(), user["last_name"].as_str()),
        (Some("Test"), Some("Admin"))
    );
    let result = timeline
        .last()
        .and_then(|e| e.result.clone())
        .expect("result");
    assert_eq!(result["api_key"], user["api_key"]);
    let secret = h
        .key
        .open(&contracts::Sealed(
            result["api_secret"]
                .as_str()
                .expect("sealed secret")
                .to_string(),
        ))
        .expect("opens");
    use secrets::ExposeSecret;
    assert_eq!(Some(secret.expose_secret()), user["api_secret"].as_str());
    assert!(!text.contains(secret.expose_secret()) && !text.contains("TestPass123!"));

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}
