//! `/metrics` of the five services after a completed and a rolled-back saga: the
//! numbers an operator's dashboard and alerts read (README, "Operations").

use std::time::Duration;

use contracts::SagaStatus;
use tests::http_api::free_port;
use tests::Harness;
use uuid::Uuid;

/// `GET <base>/metrics`, retried while the service is still starting.
async fn scrape(base: &str) -> String {
    let client = reqwest::Client::new();
    let url = format!("{base}/metrics");
    for _ in 0..200 {
        if let Ok(response) = client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            assert_eq!(response.status().as_u16(), 200, "{url}");
            return response.text().await.expect("text");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered")
}

/// The value of `series` (a name with its labels, as the exporter renders them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[track_caller]
fn assert_sample(text: &str, series: &str, expected: f64) {
    assert_eq!(
        sample(text, series),
        Some(expected),
        "{series} in:\n{}",
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_and_a_rolled_back_saga_are_counted_where_operators_look() {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let (url, master) = h.start_master().await;
    let env = h.frappe_env(&root, &url);
    let mut bases = Vec::new();
    let mut services = Vec::new();
    for (service, variable) in [
        ("orchestrator", "HTTP_ADDR"),
        ("db-step", "HEALTH_ADDR"),
        ("site-step", "HEALTH_ADDR"),
        ("user-step", "HEALTH_ADDR"),
        ("registry-step", "HEALTH_ADDR"),
    ] {
        let port = free_port();
        let mut service_env = env.clone();
        service_env.push((variable, format!("127.0.0.1:{port}")));
        services.push(h.spawn_service(service, "0", &service_env));
        bases.push(format!("http://127.0.0.1:{port}"));
    }

    let done = h.subdomain("counted");
    let refused = h.subdomain("refused");
    master
        .lock()
        .expect("master")
        .refuse_names
        .push(refused.clone());
    let (done_id, refused_id) = (Uuid::new_v4(), Uuid::new_v4());
    h.publish_signup(&h.signup(done_id, &done)).await;
    assert_eq!(h.wait_terminal(done_id, 60).await, SagaStatus::Completed);
    h.publish_signup(&h.signup(refused_id, &refused)).await;
    assert_eq!(
        h.wait_terminal(refused_id, 60).await,
        SagaStatus::RolledBack
    );

    let orchestrator = scrape(&bases[0]).await;
    // Kept beside the services' logs, for a look at what a scrape shows.
    std::fs::write(h.logs.join("orchestrator-metrics.txt"), &orchestrator).expect("written");
    assert_sample(&orchestrator, "saga_started_total", 2.0);
    assert_sample(
        &orchestrator,
        r#"saga_ended_total{kind="signup",run="first",outcome="completed",error_code="none"}"#,
        1.0,
    );
    assert_sample(
        &orchestrator,
        r#"saga_ended_total{kind="signup",run="first",outcome="rolled_back",error_code="master_refused"}"#,
        1.0,
    );
    for outcome in ["completed", "rolled_back"] {
        assert_sample(
            &orchestrator,
            &format!(
                r#"saga_duration_seconds_count{{kind="signup",run="first",outcome="{outcome}"}}"#
            ),
            1.0,
        );
    }
    // Within the dashboard's 60 s target bucket: both ran in seconds.
    assert_sample(
        &orchestrator,
        r#"saga_duration_seconds_bucket{kind="signup",run="first",outcome="completed",le="60"}"#,
        1.0,
    );
    for step in ["database", "site", "admin_user"] {
        assert_sample(
            &orchestrator,
            &format!(
                r#"saga_step_duration_seconds_count{{step="{step}",action="execute",outcome="completed"}}"#
            ),
            2.0,
        );
        assert_sample(
            &orchestrator,
            &format!(r#"saga_undos_total{{step="{step}"}}"#),
            1.0,
        );
    }
    assert_sample(
        &orchestrator,
        r#"saga_step_duration_seconds_count{step="registration",action="execute",outcome="completed"}"#,
        1.0,
    );
    assert_sample(
        &orchestrator,
        r#"saga_step_duration_seconds_count{step="registration",action="execute",outcome="failed_permanent"}"#,
        1.0,
    );
    // Every input timed: two signups; four final reports of the completed saga, eight
    // of the rolled-back one (three steps, the refusal, four undos: the refused
    // registration's own too); the steps' output lines apart.
    assert_sample(
        &orchestrator,
        r#"saga_input_seconds_count{input="signup"}"#,
        2.0,
    );
    assert_sample(
        &orchestrator,
        r#"saga_input_seconds_count{input="report"}"#,
        12.0,
    );
    assert!(
        orchestrator.contains(r#"saga_input_seconds_count{input="output"}"#),
        "output lines are timed apart"
    );
    assert!(
        orchestrator.contains(r#"saga_input_seconds_bucket{input="report",le="0.001"}"#),
        "its buckets are milliseconds"
    );
    // Nothing left in flight or needing attention, as the leader reports it.
    assert_sample(&orchestrator, "saga_leader", 1.0);
    assert_sample(&orchestrator, "saga_in_flight", 0.0);
    // The standby pool is off here (STANDBY_POOL_SIZE=0): its gauges say so.
    assert_sample(&orchestrator, "saga_standby_pool_size", 0.0);
    for state in ["building", "ready", "claimed", "discarding"] {
        assert_sample(
            &orchestrator,
            &format!(r#"saga_standbys{{state="{state}"}}"#),
            0.0,
        );
    }
    assert_sample(
        &orchestrator,
        r#"saga_needing_attention{reason="compensation_failed"}"#,
        0.0,
    );

    let registry = scrape(&bases[4]).await;
    for outcome in ["completed", "failed_permanent"] {
        assert_sample(
            &registry,
            &format!(
                r#"step_commands_total{{step="registration",action="execute",outcome="{outcome}"}}"#
            ),
            1.0,
        );
        assert_sample(
            &registry,
            &format!(
                r#"step_command_duration_seconds_count{{step="registration",action="execute",outcome="{outcome}"}}"#
            ),
            1.0,
        );
    }
    let site = scrape(&bases[2]).await;
    assert_sample(
        &site,
        r#"step_commands_total{step="site",action="execute",outcome="completed"}"#,
        2.0,
    );
    assert_sample(
        &site,
        r#"step_commands_total{step="site",action="compensate",outcome="completed"}"#,
        1.0,
    );
    // The line for new-site is empty again and its places free.
    assert_sample(&site, "site_new_site_places", 2.0);
    assert_sample(&site, "site_new_site_in_use", 0.0);
    assert_sample(&site, "site_new_site_waiting", 0.0);

    for subdomain in [&done, &refused] {
        tests::drop_tenant(&db_step::database_name(subdomain)).await;
    }
    drop(services);
    h.finish().await;
}
