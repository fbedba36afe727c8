//! The whole saga with every real step: db-step (MariaDB), site-step and user-step
//! (bench emulator), registry-step (Master REST stand-in).

use std::path::Path;

use contracts::{SagaStatus, StepStatus};
use tests::{mariadb_has, Harness};
use uuid::Uuid;

struct World {
    h: Harness,
    root: std::path::PathBuf,
    master: master_standin::Shared,
}

async fn world() -> World {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let (url, master) = h.start_master().await;
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    h.start_user_step(&root);
    h.start_registry_step(&url);
    World { h, root, master }
}

/// The emulator's users of a site folder `site` under `sites` (a `sites/` folder).
fn users_in(sites: &Path, site: &str) -> Option<serde_json::Value> {
    std::fs::read_to_string(sites.join(format!("{site}/emulator/users.json")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_real_the_workspace_is_registered() {
    let World { h, root, master } = world().await;
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("full");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);

    let record = master
        .lock()
        .expect("master")
        .records
        .get(&subdomain)
        .cloned()
        .expect("Master record");
    assert_eq!(record["saga_id"], id.to_string());
    assert_eq!(record["site_name"], format!("{subdomain}.example.test"));
    assert_eq!(record["admin_email"], "admin@test.com");
    assert!(
        users_in(&root.join("sites"), &format!("{subdomain}.example.test")).expect("users")
            ["admin@test.com"]
            .is_object()
    );
    let result = h
        .timeline(id, 1)
        .await
        .last()
        .and_then(|e| e.result.clone())
        .expect("result");
    assert!(
        result["api_key"].is_string()
            && result["api_secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("v1:"))
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_undoes_user_site_and_database() {
    let World { h, root, master } = world().await;
    let subdomain = h.subdomain("refused");
    master
        .lock()
        .expect("master")
        .refuse_names
        .push(subdomain.clone());
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);

    let error = h.get(id).await.saga.expect("saga").error.expect("error");
    assert_eq!(
        (error.code.as_str(), error.step.as_deref()),
        ("master_refused", Some("registration"))
    );
    assert!(
        error
            .message
            .contains(&format!("Tenant {subdomain} is not allowed")),
        "Frappe's message, without HTML: {}",
        error.message
    );
    let site = format!("{subdomain}.example.test");
    assert!(
        !root.join(format!("sites/{site}")).exists(),
        "site archived"
    );
    let archived: Vec<String> = std::fs::read_dir(root.join("sites/archived"))
        .expect("archive")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    let left = users_in(&root.join("sites/archived"), &archived[0]).expect("archived users");
    assert!(
        left.get("admin@test.com").is_none(),
        "the admin user was deleted before the site was archived: {left}"
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    assert!(master.lock().expect("master").records.is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_master_is_retried_and_another_signups_record_is_left_alone() {
    let World { h, master, .. } = world().await;
    master.lock().expect("master").fail_next_posts = vec![503, 429];
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("busy");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::Completed);
    let retries = h
        .timeline(id, 1)
        .await
        .iter()
        .filter(|e| {
            e.step.as_deref() == Some("registration") && e.step_status == Some(StepStatus::Retrying)
        })
        .count();
    assert_eq!(retries, 2, "503 and 429 are transient");

    // A record with the same name from someone else: permanent, and kept.
    let other = h.subdomain("squatted");
    master.lock().expect("master").records.insert(
        other.clone(),
        serde_json::json!({"name": other, "saga_id": "someone-else"}),
    );
    let second = Uuid::new_v4();
    h.publish_signup(&h.signup(second, &other)).await;
    assert_eq!(h.wait_terminal(second, 60).await, SagaStatus::RolledBack);
    assert_eq!(
        h.get(second)
            .await
            .saga
            .expect("saga")
            .error
            .expect("error")
            .code,
        "tenant_registered"
    );
    assert_eq!(
        master.lock().expect("master").records[&other]["saga_id"],
        "someone-else"
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_admin_user_undoes_site_and_database_and_registers_nothing() {
    let mut h = Harness::new().await;
    let subdomain = h.subdomain("nouser");
    let site = format!("{subdomain}.example.test");
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1, "fail": [{"command": "add-system-manager", "site": site}]}));
    let (url, master) = h.start_master().await;
    h.start_orchestrator();
    h.start_db_step();
    h.start_site_step(&root, 2);
    h.start_user_step(&root);
    h.start_registry_step(&url);
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(h.wait_terminal(id, 60).await, SagaStatus::RolledBack);
    assert_eq!(
        h.get(id)
            .await
            .saga
            .expect("saga")
            .error
            .expect("error")
            .step
            .as_deref(),
        Some("admin_user")
    );
    assert!(
        !root.join(format!("sites/{site}")).exists(),
        "site archived"
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&subdomain)).await,
        (false, false)
    );
    assert!(master.lock().expect("master").records.is_empty());
    h.finish().await;
}
