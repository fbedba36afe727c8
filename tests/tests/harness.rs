//! The harness itself: a test that fails (panics) leaves no process of its own
//! running, neither a service it started nor one a service left behind in the test's
//! folder, and its services' logs stay where the failure message says.

use std::time::Duration;

use tests::Harness;

/// Whether `pid` runs (a zombie does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // pid (comm) state ...: the state follows the last ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

#[test]
fn a_failing_test_leaves_nothing_running_and_keeps_its_logs() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut seen = None;
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let h = Harness::new().await;
            let service = h.spawn_service("orchestrator", "0", &[]);
            tests::assert_eventually!(
                30,
                "the orchestrator logs",
                std::fs::metadata(&service.log).is_ok_and(|m| m.len() > 0)
            );
            // A process left behind in the test's folder, as a bench whose service
            // was killed: in a shell of its own that exits, so nobody waits for it.
            let stray = std::process::Command::new("sh")
                .args(["-c", "sleep 600 >/dev/null 2>&1 & echo $!"])
                .current_dir(h.dir.path())
                .output()
                .expect("sh");
            let stray: u32 = String::from_utf8_lossy(&stray.stdout)
                .trim()
                .parse()
                .expect("pid");
            seen = Some((service.id(), stray, service.log.clone()));
            assert!(running(service.id()) && running(stray));
            panic!("the test fails here, with its services running");
        })
    }));
    assert!(failed.is_err(), "the inner test failed");
    let (service, stray, log) = seen.expect("the inner test got going");
    // Killed by the drops the panic ran; a signal takes effect a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while running(stray) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !running(stray),
        "process {stray} left in the test's folder still runs"
    );
    assert!(!running(service), "service process {service} still runs");
    let text = std::fs::read_to_string(&log).expect("the log is kept");
    assert!(!text.is_empty(), "{}", log.display());
    assert!(
        log.starts_with(
            std::env::current_exe()
                .expect("exe")
                .ancestors()
                .nth(3)
                .expect("target")
                .join("test-logs")
        ),
        "{}",
        log.display()
    );
}
