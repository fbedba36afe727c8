//! The site step end to end: real orchestrator, db-step and site-step, bench being the
//! bench emulator (dev/bench-emulator) with a real MariaDB; admin_user and registration
//! scripted until their services exist.

use std::path::Path;

use contracts::SagaStatus;
use tests::{mariadb_has, Behaviour, Harness, Journal, ScriptedStep};
use uuid::Uuid;

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("json")
}

fn archived(root: &Path, site: &str) -> Vec<String> {
    std::fs::read_dir(root.join("sites/archived"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(site))
                .collect()
        })
        .unwrap_or_default()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_app_install_archives_the_site_and_drops_the_database() {
    let mut h = Harness::new().await;
    let subdomain = h.subdomain("badapp");
    let site = format!("{subdomain}.example.test");
    let root = h.bench_folder(
        serde_json::json!({"delay_ms": 1, "fail": [{"command": "install-app", "site": site}]}),
    );
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    start_rest(&mut h, &root, false);
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);

    assert!(
        !root.join(format!("sites/{site}")).exists(),
        "the site left sites/"
    );
    assert_eq!(
        archived(&root, &site).len(),
        1,
        "and sits in sites/archived/"
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    let error = h.get(id).await.saga.expect("saga").error.expect("error");
    assert_eq!(error.step.as_deref(), Some("site"));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_site_archives_it_too() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    start_rest(&mut h, &root, true);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("latefail");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);
    let site = format!("{subdomain}.example.test");
    assert!(!root.join(format!("sites/{site}")).exists());
    let archives = archived(&root, &site);
    assert_eq!(archives.len(), 1);
    let users = read(&root.join(format!(
        "sites/archived/{}/emulator/users.json",
        archives[0]
    )));
    assert!(
        users.get("admin@test.com").is_none(),
        "the admin user was removed before the site was archived: {users}"
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_site_folder_is_left_untouched() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let subdomain = h.subdomain("foreignsite");
    let site = format!("{subdomain}.example.test");
    let foreign = root.join(format!("sites/{site}"));
    std::fs::create_dir_all(&foreign).expect("foreign site");
    std::fs::write(
        foreign.join("site_config.json"),
        r#"{"db_name": "someone_else"}"#,
    )
    .expect("config");
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    start_rest(&mut h, &root, false);
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);
    let error = h.get(id).await.saga.expect("saga").error.expect("error");
    assert_eq!(error.code, "site_conflict");
    assert_eq!(
        read(&foreign.join("site_config.json")),
        serde_json::json!({"db_name": "someone_else"}),
        "untouched"
    );
    assert!(archived(&root, &site).is_empty());
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false),
        "our own database is still undone"
    );
    h.finish().await;
}
