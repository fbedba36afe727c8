//! `/healthz` and `/readyz` of the five services, as compose and Kubernetes probe them.

use std::time::Duration;

use step_runtime::Step as _;
use tests::http_api::free_port;
use tests::Harness;

/// `GET url`, retried while the service is still starting; status and JSON body.
async fn probe(url: &str) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = client.get(url).timeout(Duration::from_secs(5)).send().await {
            let status = response.status().as_u16();
            return (status, response.json().await.expect("JSON body"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered")
}

/// The names of the checks of a `/readyz` body, with their state.
fn checks(body: &serde_json::Value) -> Vec<(String, bool)> {
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_string(),
                c["ok"].as_bool().expect("ok"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_on_its_own_port() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({}));
    let (url, _master) = h.start_master().await;
    let env = h.frappe_env(&root, &url);
    let expected = [
        ("orchestrator", "HTTP_ADDR", vec!["nats", "store"]),
        ("db-step", "HEALTH_ADDR", vec!["nats", "mariadb"]),
        ("site-step", "HEALTH_ADDR", vec!["nats", "bench"]),
        ("user-step", "HEALTH_ADDR", vec!["nats", "bench"]),
        ("registry-step", "HEALTH_ADDR", vec!["nats"]),
    ];
    let mut children = Vec::new();
    for (service, variable, names) in expected {
        let port = free_port();
        let mut service_env = env.clone();
        service_env.push((variable, format!("127.0.0.1:{port}")));
        children.push((
            service.to_string(),
            h.spawn_service(service, "health", &service_env),
        ));
        let base = format!("http://127.0.0.1:{port}");
        let (status, body) = probe(&format!("{base}/healthz")).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("alive")),
            "{service}"
        );
        let (status, body) = probe(&format!("{base}/readyz")).await;
        assert_eq!(status, 200, "{service}: {body}");
        assert_eq!(
            checks(&body),
            names
                .iter()
                .map(|n| (n.to_string(), true))
                .collect::<Vec<_>>(),
            "{service}"
        );
    }
    drop(tests::Processes { children });
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_what_is_down_while_healthz_stays_alive() {
    let h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({}));
    let mut env = h.frappe_env(&root, "http://127.0.0.1:9");
    env.retain(|(k, _)| !k.starts_with("BENCH_"));
    let port = free_port();
    env.extend([
        ("BENCH_DRIVER", "docker".to_string()),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock".to_string()),
        ("HEALTH_ADDR", format!("127.0.0.1:{port}")),
    ]);
    let site_step = h.spawn_service("site-step", "docker-down", &env);
    let base = format!("http://127.0.0.1:{port}");
    let (status, _) = probe(&format!("{base}/healthz")).await;
    assert_eq!(status, 200, "alive though Docker is down: no restart loop");
    let (status, body) = probe(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(
        checks(&body),
        [("nats".to_string(), true), ("bench".to_string(), false)]
    );
    assert!(
        body["checks"][1]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/nonexistent/docker.sock")),
        "{body}"
    );
    drop(tests::Processes {
        children: vec![("site-step".into(), site_step)],
    });

    // MariaDB down: the database step says so (its pool connects lazily).
    let unreachable =
        db_step::mariadb::MariaDb::new("mysql://root@127.0.0.1:9", "saga_provisioning")
            .expect("lazy pool");
    let checks = db_step::DatabaseStep::new(unreachable).readiness().await;
    assert_eq!(checks.len(), 1);
    assert_eq!((checks[0].name.as_str(), checks[0].ok), ("mariadb", false));
    h.finish().await;
}
