//! The whole saga with every real step, the five services as processes: db-step
//! (MariaDB), site-step and user-step (bench emulator), registry-step (Master REST
//! stand-in), orchestrator.

use std::path::Path;

use contracts::{SagaStatus, StepStatus};
use tests::{mariadb_has, Harness};
use uuid::Uuid;

struct World {
    /// First: the services stop before the harness drops the tenants (fields drop in
    /// order).
    _services: tests::Processes,
    h: Harness,
    root: std::path::PathBuf,
    master: master_standin::Shared,
}

async fn world_with(emulator: serde_json::Value) -> World {
    let mut h = Harness::new().await;
    let root = h.bench_folder(emulator);
    let (url, master) = h.start_master().await;
    let services = h.spawn_all(&h.frappe_env(&root, &url));
    World {
        h,
        root,
        master,
        _services: services,
    }
}

async fn world() -> World {
    world_with(serde_json::json!({"delay_ms": 1})).await
}

/// The emulator's users of a site folder `site` under `sites` (a `sites/` folder).
fn users_in(sites: &Path, site: &str) -> Option<serde_json::Value> {
    std::fs::read_to_string(sites.join(format!("{site}/emulator/users.json")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Sites archived under `sites/archived/`.
fn archived_sites(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("sites/archived"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Nothing of `subdomain`'s saga is left: no site in `sites/`, no database, no
/// database user, no Master record.
async fn assert_undone(root: &Path, master: &master_standin::Shared, subdomain: &str) {
    tests::assert_nothing_left(root, subdomain).await;
    assert!(
        !master
            .lock()
            .expect("master")
            .records
            .contains_key(subdomain),
        "{subdomain}: Master record left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_real_the_workspace_is_registered() {
    let World {
        h,
        root,
        master,
        _services,
    } = world().await;
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
                .is_some_and(|s| s.starts_with("v2:web-app:"))
    );

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_undoes_user_site_and_database() {
    let World {
        h,
        root,
        master,
        _services,
    } = world().await;
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
    assert_undone(&root, &master, &subdomain).await;
    let archived = archived_sites(&root);
    assert_eq!(archived.len(), 1, "{archived:?}");
    let left = users_in(&root.join("sites/archived"), &archived[0]).expect("archived users");
    assert!(
        left.get("admin@test.com").is_none(),
        "the admin user was deleted before the site was archived: {left}"
    );
    // Frappe refuses to delete the site's last System Manager; the undo still went
    // through, and says what it did.
    let undo = format!("Removed user admin@test.com from {subdomain}.example.test");
    let timeline = h.timeline(id, 1).await;
    assert!(
        timeline
            .iter()
            .any(|e| e.step.as_deref() == Some("admin_user") && e.message.starts_with(&undo)),
        "no {undo:?} in {:#?}",
        timeline.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_master_is_retried_and_a_registered_tenant_refuses_the_signup() {
    let World {
        h,
        master,
        _services,
        ..
    } = world().await;
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

    // A tenant already registered in the Master under that subdomain: taken, the
    // check says so and the signup is refused before anything is made; the record
    // is kept.
    let other = h.subdomain("squatted");
    master.lock().expect("master").records.insert(
        other.clone(),
        serde_json::json!({"name": other, "saga_id": "someone-else"}),
    );
    let check = h.check_subdomain(&other).await;
    assert!(!check.available, "{check:?}");
    assert!(check.message.contains("a registered tenant"), "{check:?}");
    let second = Uuid::new_v4();
    h.publish_signup(&h.signup(second, &other)).await;
    assert_eq!(h.wait_terminal(second, 60).await, SagaStatus::Rejected);
    let error = h
        .get(second)
        .await
        .saga
        .expect("saga")
        .error
        .expect("error");
    assert_eq!(error.code, "subdomain_taken");
    assert!(error.message.contains("a registered tenant"), "{error:?}");
    assert_eq!(
        mariadb_has(&db_step::database_name(&other)).await,
        (false, false),
        "no database was made for it"
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
    let subdomain = format!("nouser-{}", &Uuid::new_v4().simple().to_string()[..6]);
    let site = format!("{subdomain}.example.test");
    let World { h, root, master, _services } = world_with(serde_json::json!({"delay_ms": 1, "fail": [{"command": "add-system-manager", "site": site}]})).await;
    // Named before the world (its emulator fails that site): dropped with it all the same.
    h.track_subdomain(&subdomain);
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
    assert_undone(&root, &master, &subdomain).await;
    assert_eq!(archived_sites(&root).len(), 1, "the site was archived");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_database_stops_the_saga_before_anything_else_is_made() {
    let World {
        h,
        root,
        master,
        _services,
    } = world().await;
    let subdomain = h.subdomain("dbtaken");
    let db_name = db_step::database_name(&subdomain);
    let pool = tests::admin_pool().await;
    sqlx::raw_sql(&format!("CREATE DATABASE `{db_name}`"))
        .execute(&pool)
        .await
        .expect("foreign database");
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
            .code,
        "database_conflict"
    );
    assert_eq!(
        mariadb_has(&db_name).await,
        (true, false),
        "the foreign database stays, no user was made"
    );
    assert!(!root
        .join(format!("sites/{subdomain}.example.test"))
        .exists());
    assert!(master.lock().expect("master").records.is_empty());
    sqlx::raw_sql(&format!("DROP DATABASE `{db_name}`"))
        .execute(&pool)
        .await
        .expect("cleanup");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_site_is_archived_and_a_foreign_site_folder_refuses_the_signup() {
    let bad = format!("badsite-{}", &Uuid::new_v4().simple().to_string()[..6]);
    let bad_site = format!("{bad}.example.test");
    let World {
        h,
        root,
        master,
        _services,
    } = world_with(
        serde_json::json!({"delay_ms": 1, "fail": [{"command": "install-app", "site": bad_site}]}),
    )
    .await;
    h.track_subdomain(&bad);
    let foreign = h.subdomain("theirsite");
    let foreign_dir = root.join(format!("sites/{foreign}.example.test"));
    std::fs::create_dir_all(&foreign_dir).expect("foreign site");
    std::fs::write(
        foreign_dir.join("site_config.json"),
        r#"{"db_name": "someone_else"}"#,
    )
    .expect("config");

    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    h.publish_signup(&h.signup(first, &bad)).await;
    h.publish_signup(&h.signup(second, &foreign)).await;
    assert_eq!(h.wait_terminal(first, 60).await, SagaStatus::RolledBack);
    assert_eq!(h.wait_terminal(second, 60).await, SagaStatus::Rejected);
    let check = h.check_subdomain(&foreign).await;
    assert!(!check.available, "{check:?}");
    assert!(
        check.message.contains("an existing site folder"),
        "{check:?}"
    );

    assert_undone(&root, &master, &bad).await;
    let archived = archived_sites(&root);
    assert!(
        archived.iter().any(|a| a.starts_with(&bad_site)),
        "{archived:?}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign_dir.join("site_config.json")).expect("kept"),
        r#"{"db_name": "someone_else"}"#
    );
    let error = h
        .get(second)
        .await
        .saga
        .expect("saga")
        .error
        .expect("error");
    assert_eq!(error.code, "subdomain_taken");
    assert!(
        error.message.contains("an existing site folder"),
        "{error:?}"
    );
    assert_eq!(
        mariadb_has(&db_step::database_name(&foreign)).await,
        (false, false),
        "nothing was made for the refused signup"
    );
    assert!(master.lock().expect("master").records.is_empty());
    h.finish().await;
}
