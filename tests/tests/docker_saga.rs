//! The whole saga with `BENCH_DRIVER=docker`: the five services as processes, bench
//! (the emulator) exec'd in a "backend" container of a real Docker engine, found by
//! its compose labels, as in a frappe_docker deployment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use contracts::SagaStatus;
use tests::docker::{Backend, BENCH_PATH};
use tests::Harness;
use uuid::Uuid;

struct World {
    /// First: the services stop before the harness drops the tenants (fields drop in
    /// order), a failing test included.
    services: tests::Processes,
    h: Harness,
    root: PathBuf,
    backend: Backend,
    master: master_standin::Shared,
    /// The services' settings, to start one again.
    env: Vec<(&'static str, String)>,
}

async fn world(emulator: serde_json::Value, extra: &[(&'static str, String)]) -> Option<World> {
    let docker = tests::docker::engine().await?;
    let mut h = Harness::new().await;
    let root = h.bench_folder(emulator);
    std::fs::create_dir_all(root.join("logs")).expect("logs");
    let backend = Backend::start(&docker, &format!("saga-test-backend-{}", h.suffix), &root).await;
    let (url, master) = h.start_master().await;
    let mut env = h.frappe_env(&root, &url);
    // The web server stays the host's `bench serve` of the same (bind-mounted) folder.
    env.retain(|(k, _)| !k.starts_with("BENCH_") || *k == "BENCH_HTTP_URL");
    env.extend([
        ("BENCH_DRIVER", "docker".to_string()),
        ("BENCH_COMPOSE_PROJECT", backend.project.clone()),
        ("BENCH_PATH", BENCH_PATH.to_string()),
        ("BENCH_BIN", "bench".to_string()),
    ]);
    env.extend(extra.iter().cloned());
    let services = h.spawn_all(&env);
    Some(World {
        h,
        root,
        backend,
        master,
        services,
        env,
    })
}

fn site_folder(root: &Path, subdomain: &str) -> PathBuf {
    root.join(format!("sites/{subdomain}.example.test"))
}

fn archived(root: &Path, subdomain: &str) -> bool {
    std::fs::read_dir(root.join("sites/archived"))
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{subdomain}.example.test-"))
            })
        })
        .unwrap_or(false)
}

/// The processes of the container, as `ps` shows them there.
async fn container_processes(backend: &Backend) -> String {
    use bench::Bench;
    let driver = bench::Driver::from_lookup(|k| match k {
        "BENCH_DRIVER" => Some("docker".into()),
        "BENCH_CONTAINER" => Some(backend.name.clone()),
        "BENCH_PATH" => Some(BENCH_PATH.into()),
        "DOCKER_HOST" => std::env::var("DOCKER_HOST").ok(),
        _ => None,
    })
    .expect("driver");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    driver
        .run(
            &bench::CommandLine::new("ps").args(["-o", "pid,args"]),
            Duration::from_secs(10),
            tx,
        )
        .await
        .expect("ps")
        .stdout()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_is_made_inside_the_backend_container() {
    let Some(w) = world(serde_json::json!({"delay_ms": 1}), &[]).await else {
        return;
    };
    let id = Uuid::new_v4();
    let subdomain = w.h.subdomain("docker");
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(w.h.wait_terminal(id, 90).await, SagaStatus::Completed);

    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(site_folder(&w.root, &subdomain).join("site_config.json"))
            .expect("site_config.json written in the container's bench"),
    )
    .expect("json");
    assert_eq!(config["provisioning_saga_id"], id.to_string());
    assert_eq!(config["db_name"], db_step::database_name(&subdomain));
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(site_folder(&w.root, &subdomain)).expect("site folder"),
    );
    assert_eq!(owner, 1000, "made by user frappe of the container");
    let users =
        std::fs::read_to_string(site_folder(&w.root, &subdomain).join("emulator/users.json"))
            .expect("users");
    assert!(users.contains("admin@test.com"), "{users}");
    assert!(w
        .master
        .lock()
        .expect("master")
        .records
        .contains_key(&subdomain));
    let logs = w.h.service_logs();
    assert!(!logs.contains("TestPass123!"), "a password reached a log");

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    drop(w.services);
    w.h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_inside_the_container_rolls_back() {
    let subdomain_tag = "dkfail";
    let Some(w) = world(
        serde_json::json!({"delay_ms": 1, "fail": [{"command": "install-app"}]}),
        &[],
    )
    .await
    else {
        return;
    };
    let id = Uuid::new_v4();
    let subdomain = w.h.subdomain(subdomain_tag);
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(w.h.wait_terminal(id, 90).await, SagaStatus::RolledBack);

    let error = w.h.get(id).await.saga.expect("saga").error.expect("error");
    assert!(
        error.message.contains("emulated failure of install-app"),
        "{error:?}"
    );
    tests::assert_nothing_left(&w.root, &subdomain).await;
    assert!(archived(&w.root, &subdomain), "site not archived");
    drop(w.services);
    w.h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_stopped_during_new_site_fails_clearly_and_rolls_back_once_started() {
    // Slow progress lines, so new-site is still running when the container stops.
    let Some(w) = world(serde_json::json!({"delay_ms": 400}), &[]).await else {
        return;
    };
    let id = Uuid::new_v4();
    let subdomain = w.h.subdomain("dkstop");
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    let runs = w.root.join("logs/new-site-runs.log");
    tests::assert_eventually!(
        60,
        "new-site started in the container",
        std::fs::read_to_string(&runs).is_ok_and(|t| t.contains("start"))
    );
    w.backend.stop().await;

    // The lost command is retried, finds the container stopped (retrying cannot help)
    // and the undo cannot run either: an operator must start it.
    assert_eq!(
        w.h.wait_terminal(id, 90).await,
        SagaStatus::CompensationFailed
    );
    let error = w.h.get(id).await.saga.expect("saga").error.expect("error");
    assert_eq!(error.code, "container_stopped", "{error:?}");
    assert!(
        error.message.contains("start it") && error.message.contains(&w.backend.project),
        "{error:?}"
    );

    w.backend.resume().await;
    let reply = w.h.replay(id).await;
    assert!(reply.accepted, "{reply:?}");
    assert_eq!(w.h.wait_terminal(id, 90).await, SagaStatus::RolledBack);
    tests::assert_nothing_left(&w.root, &subdomain).await;
    drop(w.services);
    w.h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_new_site_is_killed_inside_the_container_and_rolled_back() {
    let Some(w) = world(
        serde_json::json!({"delay_ms": 1, "fail": [{"command": "new-site", "hang": true}]}),
        &[("SAGA_STEP_TIMEOUT_SECS", "3".to_string())],
    )
    .await
    else {
        return;
    };
    let id = Uuid::new_v4();
    let subdomain = w.h.subdomain("dkhang");
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(w.h.wait_terminal(id, 120).await, SagaStatus::RolledBack);
    let timeline = w.h.timeline(id, 1).await;
    assert!(
        timeline
            .iter()
            .any(|e| e.message.contains("did not answer within 3s")),
        "{timeline:#?}"
    );
    tests::assert_eventually!(
        20,
        "no bench new-site left running in the container",
        !container_processes(&w.backend).await.contains("new-site")
    );
    tests::assert_nothing_left(&w.root, &subdomain).await;
    drop(w.services);
    w.h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_site_step_leaves_no_bench_running_in_the_container() {
    let Some(mut w) = world(
        serde_json::json!({"delay_ms": 1, "fail": [{"command": "new-site", "hang": true}]}),
        &[("STEP_SHUTDOWN_GRACE_SECS", "1".to_string())],
    )
    .await
    else {
        return;
    };
    let id = Uuid::new_v4();
    let subdomain = w.h.subdomain("dkterm");
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    tests::assert_eventually!(
        60,
        "new-site running in the container",
        container_processes(&w.backend).await.contains("new-site")
    );
    // compose stop: the grace period ends, the command is released, and before the
    // service exits the bench it started is killed inside the container.
    w.services.terminate("site-step");
    let left = container_processes(&w.backend).await;
    assert!(!left.contains("new-site"), "left running:\n{left}");

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    drop(w.services);
    w.h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_orphaned_in_the_container_by_a_killed_site_step_is_stopped_and_rolled_back() {
    let Some(mut w) = world(
        serde_json::json!({"delay_ms": 1, "fail": [{"command": "new-site", "hang": true}]}),
        &[("SAGA_STEP_TIMEOUT_SECS", "6".to_string())],
    )
    .await
    else {
        return;
    };
    let id = Uuid::new_v4();
    let subdomain = w.h.subdomain("dkorphan");
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    tests::assert_eventually!(
        60,
        "new-site running in the container",
        container_processes(&w.backend).await.contains("new-site")
    );
    // SIGKILL: no drain, so the bench it exec'd lives on in the container.
    w.services.kill("site-step");
    assert!(container_processes(&w.backend).await.contains("new-site"));
    let env = w.env.clone();
    let restarted = w.h.spawn_service("site-step", "1", &env);
    w.services.children.push(("site-step".into(), restarted));

    assert_eq!(w.h.wait_terminal(id, 120).await, SagaStatus::RolledBack);
    let left = container_processes(&w.backend).await;
    assert!(!left.contains("new-site"), "left running:\n{left}");
    let timeline = w.h.timeline(id, 1).await;
    assert!(
        timeline.iter().any(|e| e
            .message
            .contains("an earlier attempt of this signup left running")),
        "{:#?}",
        timeline.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    assert!(archived(&w.root, &subdomain), "site not archived");
    tests::assert_nothing_left(&w.root, &subdomain).await;
    drop(w.services);
    w.h.finish().await;
}
