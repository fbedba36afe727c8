//! The harness itself: a test that fails (panics) leaves no process of its own
//! running, neither a service it started nor one a service left behind in the test's
//! folder, and its services' logs stay where the failure message says; the tenant
//! databases, users and ledger rows of the subdomains a test's world handed out (or
//! was told of) are gone once it finishes, or fails; so are those of the standbys a
//! pool's world ([`tests::pool_world`]) built under names of the pool's own.

use std::time::Duration;

use contracts::{StepAction, StepReport};
use tests::{mariadb_has, Harness};
use uuid::Uuid;

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

/// A runtime of the tests' kind, for a test that must see an inner test panic.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_failing_test_leaves_nothing_running_and_keeps_its_logs() {
    let runtime = runtime();
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

/// Whether db-step's ledger (the harness's) has a row for database `name`.
async fn in_ledger(name: &str) -> bool {
    let rows: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM `{}`.tenant_databases WHERE db_name = ?",
        tests::LEDGER
    ))
    .bind(name)
    .fetch_one(&tests::admin_pool().await)
    .await
    .expect("ledger");
    rows > 0
}

/// Makes the tenant database of `subdomain` with the real db-step of `h`, as a saga's
/// first step does; returns its name, checked to be there (database, user, ledger row).
async fn provision_database(h: &Harness, subdomain: &str) -> String {
    let command = tests::steps::command(
        Uuid::new_v4(),
        "database",
        StepAction::Execute,
        1,
        subdomain,
    );
    let report = h.run_command(&command, 60).await;
    assert!(matches!(report, StepReport::Completed { .. }), "{report:?}");
    let name = db_step::database_name(subdomain);
    assert_eq!(mariadb_has(&name).await, (true, true), "{name} made");
    assert!(in_ledger(&name).await, "{name} in the ledger");
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_world_leaves_no_tenant_of_its_names() {
    let mut h = Harness::new().await;
    h.start_db_step();
    h.wait_step_consumer("database").await;
    let handed_out = provision_database(&h, &h.subdomain("gone")).await;
    // A name the test (or a program it runs) made up itself, then told the harness of.
    let told = format!("told-{}", h.suffix);
    h.track_subdomain(&told);
    let told = provision_database(&h, &told).await;
    h.finish().await;
    for name in [handed_out, told] {
        assert_eq!(mariadb_has(&name).await, (false, false), "{name} left");
        assert!(!in_ledger(&name).await, "{name} left in the ledger");
    }
}

#[test]
fn a_failing_test_leaves_no_tenant_of_its_names() {
    let runtime = runtime();
    let mut made = None;
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let mut h = Harness::new().await;
            h.start_db_step();
            h.wait_step_consumer("database").await;
            made = Some(provision_database(&h, &h.subdomain("failed")).await);
            panic!("the test fails here, its tenant made");
        })
    }));
    assert!(failed.is_err(), "the inner test failed");
    let name = made.expect("the inner test got going");
    runtime.block_on(async {
        assert_eq!(mariadb_has(&name).await, (false, false), "{name} left");
        assert!(!in_ledger(&name).await, "{name} left in the ledger");
    });
}

#[test]
fn a_failing_pool_world_leaves_no_standby_database() {
    let runtime = runtime();
    let mut made = None;
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let w = tests::pool_world::PoolWorld::start(1).await;
            let standby = w.ready_standby(&[]).await;
            // Named by the pool (`sb-<8 hex>`), never handed out by the harness.
            assert!(standby.site_name.starts_with("sb-"), "{standby:?}");
            assert_eq!(mariadb_has(&standby.db_name).await, (true, true));
            assert!(in_ledger(&standby.db_name).await);
            made = Some(standby.db_name.clone());
            panic!("the test fails here, a standby ready");
        })
    }));
    assert!(failed.is_err(), "the inner test failed");
    let name = made.expect("the inner test got going");
    runtime.block_on(async {
        let left = mariadb_has(&name).await;
        let ledger = in_ledger(&name).await;
        // Left by a broken world: dropped here by its exact name, then reported.
        tests::drop_tenant(&name).await;
        assert_eq!(left, (false, false), "the standby's database {name} left");
        assert!(!ledger, "the standby's {name} left in the ledger");
    });
}
