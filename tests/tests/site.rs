//! The Frappe steps wired in this process (real orchestrator, db-step, site-step and
//! user-step; bench = the emulator with a real MariaDB; registration scripted), looking
//! closely at what a saga leaves on the bench: a successful one, one whose site command
//! is delivered again after it completed, a rolled-back one. Failures at each step and
//! the five services as processes: `full_saga.rs`.

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
        .web_app_key
        .open(
            &contracts::Sealed(
                result["api_secret"]
                    .as_str()
                    .expect("sealed secret")
                    .to_string(),
            ),
            secrets::Binding::new(id, secrets::Field::ApiSecret),
        )
        .expect("opens");
    use secrets::ExposeSecret;
    assert_eq!(Some(secret.expose_secret()), user["api_secret"].as_str());
    assert!(!text.contains(secret.expose_secret()) && !text.contains("TestPass123!"));

    // The claim served only until the marker was written: no bookkeeping stays.
    tests::assert_no_claims(&root, &subdomain);

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

/// Every message on `subject` from now on, decoded, in a shared list.
async fn record<T: serde::de::DeserializeOwned + Send + 'static>(
    h: &Harness,
    subject: String,
) -> std::sync::Arc<std::sync::Mutex<Vec<T>>> {
    use futures::StreamExt;
    let mut subscription = h.client.subscribe(subject).await.expect("subscribe");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Some(message) = subscription.next().await {
            if let Ok(value) = serde_json::from_slice(&message.payload) {
                keep.lock().expect("lock").push(value);
            }
        }
    });
    seen
}

/// The output of each report of `command_id` that says it completed.
fn completions(
    events: &std::sync::Mutex<Vec<contracts::StepEvent>>,
    command_id: &str,
) -> Vec<serde_json::Value> {
    events
        .lock()
        .expect("lock")
        .iter()
        .filter(|e| e.command_id == command_id)
        .filter_map(|e| match &e.report {
            contracts::StepReport::Completed { output } => Some(output.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_site_commands_run_again_after_they_completed_change_nothing() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    start_rest(&mut h, &root, false);
    // Core subscriptions see every command and report as it is published.
    let commands = record::<contracts::StepCommand>(&h, h.subjects.step_command("site")).await;
    let events = record::<contracts::StepEvent>(&h, h.subjects.step_event("site")).await;
    let db_commands =
        record::<contracts::StepCommand>(&h, h.subjects.step_command("database")).await;
    let db_events = record::<contracts::StepEvent>(&h, h.subjects.step_event("database")).await;
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("again");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);

    let command = commands
        .lock()
        .expect("lock")
        .iter()
        .find(|c| c.saga_id == id && !completions(&events, &c.command_id).is_empty())
        .cloned()
        .expect("the site command that completed");
    let first = completions(&events, &command.command_id).remove(0);
    assert!(
        first["administrator_password"].is_string(),
        "the first run reports Administrator's sealed password: {first}"
    );

    // Run again after it completed (a later attempt, as after a lost report: a new
    // command id, so the runtime's memory of finished commands does not answer it and
    // the step itself must find its work done). The database step too, first.
    let db_command = db_commands
        .lock()
        .expect("lock")
        .iter()
        .find(|c| c.saga_id == id)
        .cloned()
        .expect("the database command");
    for (step, previous) in [("database", &db_command), ("site", &command)] {
        let mut again = previous.clone();
        again.attempt += 10;
        again.command_id =
            contracts::StepCommand::id_for(id, again.run, step, again.action, again.attempt);
        again.deadline = chrono::Utc::now() + chrono::Duration::seconds(60);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", again.command_id.as_str());
        h.js.publish_with_headers(
            h.subjects.step_command(step),
            headers,
            serde_json::to_vec(&again).expect("json").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
        let reports = if step == "site" { &events } else { &db_events };
        tests::assert_eventually!(
            30,
            format!("the {step} step completes its command again"),
            !completions(reports, &again.command_id).is_empty()
        );
        if step == "site" {
            let second = completions(&events, &again.command_id).remove(0);
            assert_eq!(
                second, first,
                "the same result, Administrator's password included"
            );
        }
    }

    // One effect: one new-site, one site folder, nothing archived, no bookkeeping.
    let log = std::fs::read_to_string(root.join("logs/bench.log")).expect("bench.log");
    assert_eq!(
        log.lines().filter(|l| l.contains(" new-site ")).count(),
        1,
        "{log}"
    );
    let site = format!("{subdomain}.example.test");
    let folders: Vec<String> = std::fs::read_dir(root.join("sites"))
        .expect("sites")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".provisioning")
        .collect();
    assert_eq!(folders, vec![site.clone()]);
    tests::assert_no_claims(&root, &subdomain);
    let config = read(&root.join(format!("sites/{site}/site_config.json")));
    assert_eq!(config["provisioning_saga_id"], id.to_string());
    assert_eq!(h.wait_terminal(id, 10).await, SagaStatus::Completed);

    // The site still reaches its database with the password its config holds.
    let (db_name, db_password) = (
        config["db_name"].as_str().expect("db_name"),
        config["db_password"].as_str().expect("db_password"),
    );
    let login = sqlx::mysql::MySqlConnectOptions::new()
        .host("127.0.0.1")
        .port(3306)
        .username(db_name)
        .password(db_password)
        .database(db_name);
    let connection = sqlx::ConnectOptions::connect(&login)
        .await
        .expect("the site's database user logs in with site_config.json's password");
    sqlx::Connection::close(connection).await.ok();

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_signup_leaves_its_site_archived_and_no_bookkeeping() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    start_rest(&mut h, &root, true);
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("undone");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);

    tests::assert_nothing_left(&root, &subdomain).await;
    let archived: Vec<String> = std::fs::read_dir(root.join("sites/archived"))
        .expect("sites/archived")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        archived
            .iter()
            .any(|a| a.starts_with(&format!("{subdomain}.example.test-"))),
        "the site was archived: {archived:?}"
    );
    h.finish().await;
}

#[tokio::test]
async fn site_folder_exists_tells_what_is_in_sites() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("sites/taken.example.test")).expect("folder");
    std::fs::write(dir.path().join("sites/a-file.example.test"), "x").expect("file");
    let step = |root: &Path| {
        site_step::SiteStep::new(
            bench::local::LocalBench::new("bench", root),
            site_step::Settings {
                apps: vec![],
                concurrency: 1,
                command_timeout: std::time::Duration::from_secs(10),
            },
        )
    };
    let bench = step(dir.path());
    assert_eq!(
        bench.site_folder_exists("taken.example.test").await,
        Ok(true)
    );
    assert_eq!(
        bench.site_folder_exists("a-file.example.test").await,
        Ok(true),
        "anything of that name holds it"
    );
    assert_eq!(
        bench.site_folder_exists("free.example.test").await,
        Ok(false)
    );
    for bad in ["../sites", "a/b", ".provisioning", ""] {
        assert!(
            matches!(
                bench.site_folder_exists(bad).await,
                Err(step_runtime::StepError::Permanent { ref code, .. }) if code == "invalid_site_name"
            ),
            "{bad:?} is refused"
        );
    }
    // A bench that cannot answer is an error, never "free".
    let gone = step(&dir.path().join("no-such-bench"));
    assert!(matches!(
        gone.site_folder_exists("taken.example.test").await,
        Err(step_runtime::StepError::Transient { .. })
    ));
}
