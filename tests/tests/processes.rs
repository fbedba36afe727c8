//! All five services as processes (orchestrator, db-step, site-step, user-step,
//! registry-step), bench being the emulator and the Master site its stand-in, against
//! the real NATS and MariaDB.

use std::path::{Path, PathBuf};

use contracts::SagaStatus;
use secrets::ExposeSecret;
use tests::{mariadb_has, Harness, Processes};
use uuid::Uuid;

async fn start(
    h: &mut Harness,
    emulator: serde_json::Value,
) -> (
    Processes,
    PathBuf,
    master_standin::Shared,
    Vec<(&'static str, String)>,
) {
    let root = h.bench_folder(emulator);
    let (url, master) = h.start_master().await;
    let env = h.frappe_env(&root, &url);
    (h.spawn_all(&env), root, master, env)
}

/// Largest number of new-site runs that overlapped, from the emulator's record.
fn max_overlap(root: &Path) -> usize {
    let text = std::fs::read_to_string(root.join("logs/new-site-runs.log")).unwrap_or_default();
    let mut events: Vec<(i64, i32)> = text
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            let at: i64 = words
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("a run record without its time: {l:?}"));
            match words.next() {
                Some("start") => (at, 1),
                Some("end") => (at, -1),
                _ => panic!("a run record neither start nor end: {l:?}"),
            }
        })
        .collect();
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_signups_at_once_respect_the_site_limit_and_leak_no_secret() {
    let mut h = Harness::new().await;
    let (services, root, master, _) = start(&mut h, serde_json::json!({"delay_ms": 80})).await;
    let ids: Vec<(Uuid, String)> = (0..6)
        .map(|i| (Uuid::new_v4(), h.subdomain(&format!("six{i}"))))
        .collect();
    for (id, subdomain) in &ids {
        h.publish_signup(&h.signup(*id, subdomain)).await;
    }
    for (id, _) in &ids {
        assert_eq!(h.wait_terminal(*id, 120).await, SagaStatus::Completed);
    }
    assert_eq!(
        max_overlap(&root),
        2,
        "SITE_CONCURRENCY=2 new-site runs at once, never more"
    );
    let mut queued = 0;
    let mut secrets_seen = Vec::new();
    for (id, subdomain) in &ids {
        let timeline = h.timeline(*id, 1).await;
        queued += timeline
            .iter()
            .filter(|e| e.message.starts_with("Queued: place"))
            .count();
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                root.join(format!("sites/{subdomain}.example.test/site_config.json")),
            )
            .expect("config"),
        )
        .expect("json");
        secrets_seen.push(
            config["db_password"]
                .as_str()
                .expect("db password")
                .to_string(),
        );
        let result = timeline
            .last()
            .and_then(|e| e.result.clone())
            .expect("result");
        let sealed = contracts::Sealed(result["api_secret"].as_str().expect("sealed").to_string());
        let binding = secrets::Binding::new(*id, secrets::Field::ApiSecret);
        let api_secret = h
            .web_app_key
            .open(&sealed, binding)
            .expect("the web app's key opens the API secret");
        assert!(
            h.key.open(&sealed, binding).is_err(),
            "the services' key must not open what is sealed to the web app"
        );
        secrets_seen.push(api_secret.expose_secret().to_string());
        let text = serde_json::to_string(&timeline).expect("json");
        for secret in secrets_seen
            .iter()
            .chain(["TestPass123!".to_string()].iter())
        {
            assert!(
                !text.contains(secret.as_str()),
                "a secret in the progress of {subdomain}"
            );
        }
    }
    assert!(queued >= 1, "waiting sagas were told their place in line");
    assert_eq!(master.lock().expect("master").records.len(), 6);

    // No secret in any log line of any of the five services.
    let logs = h.service_logs();
    assert!(
        logs.contains("bench command=bench") || logs.contains("bench new-site"),
        "the services did log their bench calls"
    );
    // The services log at debug (the harness starts them so): that too says nothing
    // secret, their NATS passwords included.
    let nats_passwords = tests::private_nats::DEPLOY_USERS.map(|(user, _)| h.nats.password(user));
    for secret in secrets_seen.iter().chain(
        [
            "TestPass123!".to_string(),
            "secret456".to_string(),
            h.keys_text.clone(),
        ]
        .iter()
        .chain(nats_passwords.iter()),
    ) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the service logs"
        );
    }

    drop(services);
    for (_, subdomain) in &ids {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_step_killed_mid_new_site_and_restarted_ends_the_saga_cleanly() {
    let mut h = Harness::new().await;
    let (mut services, root, master, env) =
        start(&mut h, serde_json::json!({"delay_ms": 400})).await;
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("killsite");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    let site = format!("{subdomain}.example.test");
    tests::assert_eventually!(
        30,
        "new-site is running",
        root.join(format!("sites/{site}/site_config.json")).exists()
    );
    services.kill("site-step");
    let restarted = h.spawn_service("site-step", "1", &env);
    services.children.push(("site-step".into(), restarted));

    let status = h.wait_terminal(id, 120).await;
    match status {
        SagaStatus::Completed => {
            let config =
                std::fs::read_to_string(root.join(format!("sites/{site}/site_config.json")))
                    .expect("site");
            assert!(
                config.contains(&id.to_string()),
                "a completed saga's site carries its marker"
            );
            assert_eq!(
                mariadb_has(&db_step::database_name(&subdomain)).await,
                (true, true)
            );
            tests::drop_tenant(&db_step::database_name(&subdomain)).await;
        }
        SagaStatus::RolledBack => {
            tests::assert_nothing_left(&root, &subdomain).await;
            assert!(master.lock().expect("master").records.is_empty());
        }
        other => panic!("the saga ended {other:?}"),
    }
    drop(services);
    h.finish().await;
}

/// The bench processes running on this machine for `site`: pid and command line.
fn benches_for(site: &str) -> Vec<(i32, String)> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(p.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&raw).replace('\0', " ")))
        })
        .filter(|(_, line)| line.contains("bench-emulator") && line.contains(site))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_left_running_by_a_killed_site_step_is_stopped_before_the_rollback() {
    let mut h = Harness::new().await;
    let subdomain = h.subdomain("orphan");
    let site = format!("{subdomain}.example.test");
    let emulator = serde_json::json!({
        "delay_ms": 30,
        "fail": [{"command": "install-app", "site": site, "hang": true}]
    });
    let root = h.bench_folder(emulator);
    let (url, master) = h.start_master().await;
    let mut env = h.frappe_env(&root, &url);
    env.push(("SAGA_STEP_TIMEOUT_SECS", "6".into()));
    let mut services = h.spawn_all(&env);
    let id = Uuid::new_v4();
    h.publish_signup(&h.signup(id, &subdomain)).await;
    tests::assert_eventually!(
        30,
        "install-app is running (and hangs)",
        benches_for(&site)
            .iter()
            .any(|(_, c)| c.contains("install-app"))
    );

    // SIGKILL: the service cannot stop its bench, which lives on without it.
    services.kill("site-step");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !benches_for(&site).is_empty(),
        "the killed service's bench lives on"
    );
    let restarted = h.spawn_service("site-step", "1", &env);
    services.children.push(("site-step".into(), restarted));

    assert_eq!(h.wait_terminal(id, 90).await, SagaStatus::RolledBack);
    let left = benches_for(&site);
    for (pid, _) in &left {
        // Not to leave a hanging process behind when this fails.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(left.is_empty(), "bench still running for {site}: {left:?}");
    tests::assert_nothing_left(&root, &subdomain).await;
    assert!(master.lock().expect("master").records.is_empty());
    let timeline = h.timeline(id, 1).await;
    assert!(
        timeline.iter().any(|e| e
            .message
            .contains("an earlier attempt of this signup left running")),
        "the progress says what was stopped: {:?}",
        timeline.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    drop(services);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_burst_whose_waiters_gave_up_in_line_a_new_signup_still_gets_its_site() {
    let mut h = Harness::new().await;
    // The first signup's new-site hangs, holding the only place until its 4 s deadline
    // kills it. The nine sent a second later wait behind it; their deadlines come a
    // second after its own, and each new-site after it takes at least 5 x 120 ms (the
    // emulator's progress pauses): all but the first one or two give up in line.
    // A signup on its own needs far less than 4 s per step.
    let burst: Vec<(Uuid, String)> = (0..10)
        .map(|i| (Uuid::new_v4(), h.subdomain(&format!("burst{i}"))))
        .collect();
    let holder_site = format!("{}.example.test", burst[0].1);
    let root = h.bench_folder(serde_json::json!({
        "delay_ms": 120,
        "fail": [{"command": "new-site", "site": holder_site, "hang": true}],
    }));
    let (url, _master) = h.start_master().await;
    let mut env = h.frappe_env(&root, &url);
    env.push(("SITE_CONCURRENCY", "1".into()));
    env.push(("SAGA_STEP_TIMEOUT_SECS", "4".into()));
    // Every command of the burst reaches the line at once (not held back in the stream).
    env.push(("STEP_CONCURRENCY", "16".into()));
    let services = h.spawn_all(&env);

    h.publish_signup(&h.signup(burst[0].0, &burst[0].1)).await;
    tests::assert_eventually!(
        30,
        "the first signup's new-site holds the place",
        std::fs::read_to_string(root.join("logs/bench.log"))
            .is_ok_and(|log| log.contains(&format!("new-site {holder_site}")))
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    for (id, subdomain) in &burst[1..] {
        h.publish_signup(&h.signup(*id, subdomain)).await;
    }
    for (id, subdomain) in &burst {
        match h.wait_terminal(*id, 120).await {
            SagaStatus::Completed => tests::assert_no_claims(&root, subdomain),
            SagaStatus::RolledBack => tests::assert_nothing_left(&root, subdomain).await,
            other => panic!("{subdomain} ended {other:?}"),
        }
    }
    assert!(
        h.service_logs()
            .contains("left the line for new-site before its turn"),
        "waiters gave up in line (the case under test)"
    );

    // The line still lets a newcomer through.
    let id = Uuid::new_v4();
    let subdomain = h.subdomain("after");
    h.publish_signup(&h.signup(id, &subdomain)).await;
    assert_eq!(
        h.wait_terminal(id, 90).await,
        SagaStatus::Completed,
        "a signup after the burst gets its site: {:?}",
        h.timeline(id, 1)
            .await
            .iter()
            .map(|e| &e.message)
            .collect::<Vec<_>>()
    );
    let config = std::fs::read_to_string(
        root.join(format!("sites/{subdomain}.example.test/site_config.json")),
    )
    .expect("site");
    assert!(
        config.contains(&id.to_string()),
        "its site carries its marker"
    );
    tests::assert_no_claims(&root, &subdomain);

    drop(services);
    for subdomain in burst.iter().map(|(_, s)| s).chain([&subdomain]) {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    h.finish().await;
}
