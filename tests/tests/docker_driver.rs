//! The Docker bench driver against a real Docker engine: output, exit codes, the
//! timeout, and the errors an operator can act on.

use std::time::Duration;

use bench::{Bench, CommandLine, Driver, Error};
use secrets::SecretString;
use tests::docker::{Backend, BENCH_PATH};
use tokio::sync::mpsc;

/// A driver for `backend` with `extra` settings over the defaults of a compose
/// deployment.
fn driver(backend: &Backend, extra: &[(&str, &str)]) -> Driver {
    let mut settings = vec![
        ("BENCH_DRIVER", "docker".to_string()),
        ("BENCH_COMPOSE_PROJECT", backend.project.clone()),
        ("BENCH_PATH", BENCH_PATH.to_string()),
    ];
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        settings.push(("DOCKER_HOST", host));
    }
    for (k, v) in extra {
        settings.retain(|(name, _)| name != k);
        settings.push((k, v.to_string()));
    }
    Driver::from_lookup(|k| {
        settings
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("driver settings")
}

async fn run(
    driver: &Driver,
    command: CommandLine,
    timeout: Duration,
) -> (Result<bench::Finished, Error>, Vec<String>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let result = driver.run(&command, timeout, tx).await;
    let mut lines = Vec::new();
    while let Ok(line) = rx.try_recv() {
        lines.push(line.text);
    }
    (result, lines)
}

/// A bench folder and a running backend container on it, or `None` (printed) when
/// there is no engine to test against.
async fn backend(what: &str) -> Option<(tempfile::TempDir, Backend)> {
    let docker = tests::docker::engine().await?;
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!(
        "saga-test-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let backend = Backend::start(&docker, &name, dir.path()).await;
    Some((dir, backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_in_the_container_as_frappe_in_the_bench_folder() {
    let Some((dir, backend)) = backend("exec").await else {
        return;
    };
    let driver = driver(&backend, &[]);
    let secret = SecretString::from("Hunter2Secret");
    let command = CommandLine::new("sh")
        .args([
            "-c",
            r#"id -un; pwd; printf 'Installing [=  ] 10%%\rInstalling [===] 100%%\n'; echo "pw=$2" >&2; touch made-here; exit 3"#,
            "sh",
        ])
        .secret("--password", &secret);
    let (result, lines) = run(&driver, command, Duration::from_secs(30)).await;
    let finished = result.expect("runs");
    assert_eq!(finished.exit_code, 3);
    // Docker keeps each stream's order, not the order between them.
    let stdout: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| *l != "pw=***")
        .collect();
    assert_eq!(
        stdout,
        [
            "frappe",
            BENCH_PATH,
            "Installing [=  ] 10%",
            "Installing [===] 100%"
        ],
        "stdout in order, split on \\r"
    );
    assert!(
        lines.contains(&"pw=***".to_string()),
        "stderr with the secret hidden: {lines:?}"
    );
    assert!(
        dir.path().join("made-here").exists(),
        "ran in the bench folder"
    );
    assert_eq!(driver.check().await, Ok(()));

    // `bench` is the emulator in the container; its usage error keeps Frappe's code.
    let (result, _) = run(
        &driver,
        CommandLine::bench(["new-site", "x.localhost", "--nope"]),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(result.expect("runs").exit_code, 2);
}

/// What `ps` shows in the container.
async fn ps(driver: &Driver) -> String {
    let (ps, _) = run(driver, CommandLine::new("ps"), Duration::from_secs(10)).await;
    ps.expect("ps").stdout()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_owned_kills_what_a_dead_service_left_in_the_container_and_nothing_else() {
    let Some((_dir, backend)) = backend("sweep").await else {
        return;
    };
    let driver = driver(&backend, &[]);
    let mine = format!("{}/site", uuid::Uuid::new_v4().simple());
    let theirs = format!("{}/site", uuid::Uuid::new_v4().simple());

    // The driver tags an owned command's processes.
    let (result, _) = run(
        &driver,
        CommandLine::new("sh")
            .args(["-c", "echo \"[$BENCH_OWNER]\""])
            .owned_by(&mine),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(result.expect("runs").stdout(), format!("[{mine}]"));

    // Two sagas' commands that nobody waits for any more (their service died).
    for (owner, seconds) in [(&mine, 61), (&theirs, 62)] {
        let env = [bench::owner_variable(owner)];
        backend
            .detached(&format!("sleep {seconds} & wait"), &env)
            .await;
    }
    tests::assert_eventually!(20, "both left-behind commands run", {
        let ps = ps(&driver).await;
        ps.contains("sleep 61") && ps.contains("sleep 62")
    });

    let killed = driver.stop_owned(&mine).await.expect("swept");
    assert_eq!(killed, 2, "the shell and its sleep");
    let after = ps(&driver).await;
    assert!(!after.contains("sleep 61"), "still running:\n{after}");
    assert!(
        after.contains("sleep 62"),
        "another saga's command was killed:\n{after}"
    );
    assert_eq!(driver.stop_owned(&mine).await.expect("swept"), 0);
    assert_eq!(driver.stop_owned(&theirs).await.expect("swept"), 2);

    // A stopped container has nothing running, and cannot be swept either.
    backend.stop().await;
    let error = driver.stop_owned(&mine).await.expect_err("stopped");
    assert_eq!(error.code(), "container_stopped", "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_command_inside_the_container() {
    let Some((dir, backend)) = backend("timeout").await else {
        return;
    };
    let driver = driver(&backend, &[]);
    let script = "echo started; (sleep 3; touch survived) & sleep 60";
    let (result, lines) = run(
        &driver,
        CommandLine::new("sh").args(["-c", script]),
        Duration::from_secs(1),
    )
    .await;
    let error = result.expect_err("times out");
    assert!(matches!(error, Error::TimedOut { .. }), "{error}");
    assert_eq!(lines, ["started"]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !dir.path().join("survived").exists(),
        "a child of the timed-out command kept running in the container"
    );
    let ps = ps(&driver).await;
    assert!(!ps.contains("sleep 60"), "still running:\n{ps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_leaves_no_process_behind() {
    let Some((dir, backend)) = backend("drop").await else {
        return;
    };
    let driver = driver(&backend, &[]);
    let command = CommandLine::new("sh").args(["-c", "(sleep 3; touch survived) & sleep 60"]);
    // The step was undone or the service stops: the run's future is dropped.
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        run(&driver, command, Duration::from_secs(60)),
    )
    .await;
    // What a step service does before it exits: wait for the kills to be over.
    driver.settle().await;
    let ps = ps(&driver).await;
    assert!(
        !ps.contains("sleep 60"),
        "still running after settle:\n{ps}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !dir.path().join("survived").exists(),
        "the dropped command kept running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong_and_whether_retrying_helps() {
    let Some((_dir, backend)) = backend("errors").await else {
        return;
    };
    let version = || CommandLine::bench(["version"]);
    let timeout = Duration::from_secs(30);

    let expect_not_started =
        |result: Result<bench::Finished, Error>, code: &str, permanent: bool, says: &str| {
            let error = result.expect_err(code);
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.is_permanent(), permanent, "{error}");
            assert!(error.to_string().contains(says), "{error}");
        };

    let missing = driver(
        &backend,
        &[
            ("BENCH_COMPOSE_PROJECT", ""),
            ("BENCH_CONTAINER", "no-such-backend"),
        ],
    );
    expect_not_started(
        run(&missing, version(), timeout).await.0,
        "container_missing",
        true,
        "BENCH_CONTAINER",
    );
    assert!(missing
        .check()
        .await
        .expect_err("not ready")
        .contains("no-such-backend"));

    let no_project = driver(&backend, &[("BENCH_COMPOSE_PROJECT", "no-such-project")]);
    expect_not_started(
        run(&no_project, version(), timeout).await.0,
        "container_missing",
        true,
        "BENCH_COMPOSE_PROJECT",
    );

    let unreachable = driver(
        &backend,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    expect_not_started(
        run(&unreachable, version(), timeout).await.0,
        "docker_unreachable",
        false,
        "/nonexistent/docker.sock",
    );

    let no_program = driver(&backend, &[("BENCH_BIN", "/opt/no-bench")]);
    expect_not_started(
        run(&no_program, version(), timeout).await.0,
        "exec_refused",
        true,
        "BENCH_BIN",
    );

    let no_user = driver(&backend, &[("BENCH_USER", "nobody-here")]);
    let error = run(&no_user, version(), timeout)
        .await
        .0
        .expect_err("no such user");
    assert!(error.is_permanent(), "{error}");
    assert!(error.to_string().contains("nobody-here"), "{error}");

    let by_name = driver(
        &backend,
        &[
            ("BENCH_COMPOSE_PROJECT", ""),
            ("BENCH_CONTAINER", &backend.name),
        ],
    );
    assert_eq!(
        run(&by_name, version(), timeout)
            .await
            .0
            .expect("runs")
            .exit_code,
        0
    );
    backend.stop().await;
    expect_not_started(
        run(&by_name, version(), timeout).await.0,
        "container_stopped",
        true,
        "exited",
    );
    assert!(by_name.check().await.is_err());
}
