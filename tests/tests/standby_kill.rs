//! A standby claim interrupted by SIGKILL (issue 13), the five services as processes
//! (db-step on MariaDB, site-step and user-step on the bench emulator, registry-step on
//! the Master stand-in, the orchestrator with `STANDBY_POOL_SIZE=1`). A signup claims
//! the ready standby and a process dies at a moment inside the claim, made
//! deterministic with the emulator's scripted hangs:
//!
//! - site-step, before the folder is moved (the readiness check's `bench version`
//!   hangs);
//! - site-step, after the move and before the password, the marker and `host_name`
//!   (the tenant site's first `set-config` hangs);
//! - the orchestrator, between the claim at intake and the saga's start (the saga is
//!   stored while its subdomain probe waits for a stopped registry-step);
//! - the orchestrator, during the site step (after the move; the emulator's commands
//!   slowed down);
//! - the orchestrator, between the claim and storing the saga: the state that kill
//!   leaves (the row claimed by the signup, no saga, the signup not acknowledged) is
//!   made by hand, since no signal lands there on cue.
//!
//! The killed process is restarted. What a user or an operator would notice then: the
//! signup completes, and exactly one of the two holds: the tenant's site is the
//! standby (marker the signup's, `host_name` set, the database's ledger row the
//! signup's; the standby's row used up, no placeholder folder, no database of the
//! tenant's own name), or the standby is still ready and whole (folder with its build's
//! marker, database, ledger row of its build) and the signup made its own. Never both,
//! never neither; no second standby handed to the signup; the pool refills.

use std::path::Path;
use std::time::{Duration, Instant};

use contracts::SagaStatus;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use orchestrator::store::{SagaStore, Standby, StandbyState};
use tests::pool_world::{first_message, ledger_holder, site_config, PoolWorld, PREPARED};
use uuid::Uuid;

/// Sends `signal` to service `name` of `w`.
fn signal(w: &PoolWorld, name: &str, sent: Signal) {
    let (_, service) = w
        .services
        .children
        .iter()
        .find(|(n, _)| n == name)
        .expect("service running");
    kill(Pid::from_raw(service.id() as i32), sent).expect("signal");
}

/// Sets the emulator's settings (`fail`: scripted failures and hangs; `command_ms`).
fn emulator(root: &Path, fail: serde_json::Value, command_ms: u64) {
    let settings = serde_json::json!({"delay_ms": 1, "fail": fail, "command_ms": command_ms});
    std::fs::write(root.join("emulator.json"), settings.to_string()).expect("emulator.json");
}

/// What the emulator logged so far: every command it was asked, one line each, before
/// it does anything.
fn bench_log(w: &PoolWorld) -> String {
    std::fs::read_to_string(w.root.join("logs/bench.log")).unwrap_or_default()
}

/// Waits until the emulator has been asked a command whose line contains `needle`,
/// after the first `from` bytes of its log.
async fn wait_bench_command(w: &PoolWorld, needle: &str, from: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !bench_log(w)
        .get(from..)
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(needle))
    {
        assert!(
            Instant::now() < deadline,
            "the bench was never asked {needle:?}\n{}",
            w.h.service_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the signup ended up, once it completed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Its site is the standby, renamed.
    TookTheStandby,
    /// The standby is still ready and whole; the signup made its own site.
    UsualPath,
}

/// Waits for signup `id` (for `subdomain`, which claimed `standby`) to complete, checks
/// that exactly one of the two outcomes holds in full, that no other standby was handed
/// to it, and that the pool refills; returns the outcome.
async fn outcome(w: &PoolWorld, standby: &Standby, id: Uuid, subdomain: &str) -> Outcome {
    assert_eq!(
        w.h.wait_terminal(id, 180).await,
        SagaStatus::Completed,
        "{:#?}\n{}",
        w.h.get(id).await,
        w.h.service_logs()
    );
    let site = format!("{subdomain}.example.test");
    let config = site_config(&w.root, &site);
    assert_eq!(
        config["provisioning_saga_id"],
        id.to_string(),
        "the site is the signup's"
    );
    assert_eq!(config["host_name"], format!("https://{site}"));
    let own_db = db_step::database_name(subdomain);
    let placeholder = w.root.join(format!("sites/{}", standby.site_name));
    let row = settled(w, standby.id).await;
    let took = config["db_name"] == standby.db_name.as_str();
    let outcome = if took {
        // The standby, whole, became the tenant's: nothing of it is left as a standby,
        // nothing of the usual path was made.
        assert_eq!(row.state, StandbyState::Gone, "used up: {row:?}");
        assert_eq!(row.claimed_by, Some(id));
        assert!(!placeholder.exists(), "a placeholder folder left");
        assert_eq!(
            ledger_holder(&standby.db_name).await,
            Some(id.to_string()),
            "the database is the signup's"
        );
        assert_eq!(
            tests::mariadb_has(&standby.db_name).await,
            (true, true),
            "the signup's database and user"
        );
        assert_eq!(
            tests::mariadb_has(&own_db).await,
            (false, false),
            "a database of the tenant's own name besides the standby's"
        );
        assert_eq!(ledger_holder(&own_db).await, None);
        Outcome::TookTheStandby
    } else {
        // The standby untouched and ready for the next signup.
        assert_eq!(row.state, StandbyState::Ready, "{row:?}");
        assert_eq!(row.claimed_by, None);
        assert_eq!(
            site_config(&w.root, &standby.site_name)["provisioning_saga_id"],
            standby.id.to_string(),
            "the placeholder still carries its build's marker"
        );
        assert_eq!(
            ledger_holder(&standby.db_name).await,
            Some(standby.id.to_string())
        );
        assert_eq!(tests::mariadb_has(&standby.db_name).await, (true, true));
        assert_eq!(config["db_name"], own_db.as_str());
        assert_eq!(ledger_holder(&own_db).await, Some(id.to_string()));
        Outcome::UsualPath
    };
    // No second standby was handed to this signup.
    let mut held = Vec::new();
    for saga in w.store.list(None, 1000).await.expect("sagas") {
        if !saga.tenant.standby_build {
            continue;
        }
        if let Some(s) = w.store.standby(saga.id).await.expect("standby") {
            if s.claimed_by == Some(id) {
                held.push(s.id);
            }
        }
    }
    let expected: Vec<Uuid> = if took { vec![standby.id] } else { vec![] };
    assert_eq!(held, expected, "standbys handed to the signup");
    // The pool refills.
    w.ready_standby(&[standby.id]).await;
    outcome
}

/// Standby `id`'s row once the pool followed its signup's end (the driver does right
/// after storing it, the pool's upkeep repairs a crash in between): neither claimed
/// nor discarding.
async fn settled(w: &PoolWorld, id: Uuid) -> Standby {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = w
            .store
            .standby(id)
            .await
            .expect("standby")
            .expect("its row");
        if !matches!(row.state, StandbyState::Claimed | StandbyState::Discarding) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "standby still {:?} after its signup ended\n{}",
            row.state,
            w.h.service_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signup for a new subdomain; publishes it and returns its id and subdomain.
async fn sign_up(w: &PoolWorld, name: &str) -> (Uuid, String) {
    let subdomain = w.h.subdomain(name);
    let id = Uuid::new_v4();
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    (id, subdomain)
}

/// Waits until signup `id` is stored with a claim on `standby`; returns its status.
async fn stored_claim(w: &PoolWorld, id: Uuid, standby: &Standby) -> SagaStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(saga) = w.store.get(id).await.expect("saga") {
            assert_eq!(
                saga.tenant.standby.as_ref().map(|s| s.saga_id),
                Some(standby.id),
                "the signup claimed the ready standby"
            );
            return saga.status;
        }
        assert!(Instant::now() < deadline, "{}", w.h.service_logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_step_killed_before_the_move_the_signup_takes_the_standby() {
    let mut w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    // The readiness check (before the move) asks `bench version`, which hangs. The
    // pool's next build hangs in `new-site`, before its own `bench version`, so the
    // only `version` the bench is asked is the claim's.
    emulator(
        &w.root,
        serde_json::json!([{"command": "version", "hang": true}, {"command": "new-site", "hang": true}]),
        0,
    );
    let from = bench_log(&w).len();
    let (id, subdomain) = sign_up(&w, "kill-early").await;
    wait_bench_command(&w, "INFO bench version", from).await;
    w.kill("site-step");
    let site = format!("{subdomain}.example.test");
    assert!(
        w.root.join(format!("sites/{}", standby.site_name)).is_dir()
            && !w.root.join(format!("sites/{site}")).exists(),
        "killed before the move"
    );
    emulator(&w.root, serde_json::json!([]), 0);
    w.restart("site-step");

    assert_eq!(
        outcome(&w, &standby, id, &subdomain).await,
        Outcome::TookTheStandby
    );
    assert_eq!(first_message(&w.h, id).await, PREPARED);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_step_killed_after_the_move_the_next_attempt_finishes_the_claim() {
    let mut w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    let subdomain = w.h.subdomain("kill-moved");
    let site = format!("{subdomain}.example.test");
    // The first command on the tenant's site after the move (sealing Administrator's
    // password again) hangs.
    emulator(
        &w.root,
        serde_json::json!([{"command": "set-config", "site": site, "hang": true}]),
        0,
    );
    let id = Uuid::new_v4();
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    wait_bench_command(&w, &format!("--site {site} set-config"), 0).await;
    w.kill("site-step");
    // Moved, still the standby's: its marker, its placeholder's host_name.
    assert!(!w.root.join(format!("sites/{}", standby.site_name)).exists());
    let config = site_config(&w.root, &site);
    assert_eq!(config["provisioning_saga_id"], standby.id.to_string());
    assert_eq!(
        config["host_name"],
        format!("https://{}", standby.site_name)
    );
    emulator(&w.root, serde_json::json!([]), 0);
    w.restart("site-step");

    assert_eq!(
        outcome(&w, &standby, id, &subdomain).await,
        Outcome::TookTheStandby
    );
    let saga = w.h.get(id).await.saga.expect("saga");
    assert_eq!(saga.run, 1, "no detour the usual way");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_between_the_claim_and_the_saga_start() {
    let mut w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    // The saga starts once the steps answered its subdomain probe: a stopped
    // registry-step leaves it stored, with its claim, and not started for a while.
    signal(&w, "registry-step", Signal::SIGSTOP);
    let (id, subdomain) = sign_up(&w, "kill-intake").await;
    let status = stored_claim(&w, id, &standby).await;
    w.kill("orchestrator");
    signal(&w, "registry-step", Signal::SIGCONT);
    assert_eq!(status, SagaStatus::Accepted, "killed before the start");
    assert_eq!(
        w.store.get(id).await.expect("saga").expect("stored").status,
        SagaStatus::Accepted,
        "killed before the start"
    );
    w.restart("orchestrator");

    assert_eq!(
        outcome(&w, &standby, id, &subdomain).await,
        Outcome::TookTheStandby
    );
    assert_eq!(first_message(&w.h, id).await, PREPARED);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_during_the_site_step_of_a_claim() {
    let mut w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    // Every bench command lasts 2 s: after the move, the site step still has three
    // `set-config` to run when the orchestrator dies.
    emulator(&w.root, serde_json::json!([]), 2000);
    let (id, subdomain) = sign_up(&w, "kill-site").await;
    let site = format!("{subdomain}.example.test");
    tests::assert_eventually!(
        90,
        "the standby moved to the tenant's name",
        w.root.join(format!("sites/{site}")).is_dir()
    );
    w.kill("orchestrator");
    emulator(&w.root, serde_json::json!([]), 0);
    w.restart("orchestrator");

    assert_eq!(
        outcome(&w, &standby, id, &subdomain).await,
        Outcome::TookTheStandby
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_after_the_claim_before_the_saga_is_stored() {
    let mut w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    w.kill("orchestrator");
    // What the kill leaves: the row claimed by the signup (the intake's compare-and-set
    // on the store, here by the test's own unfenced store instance), no saga, and the
    // signup in its stream, not acknowledged.
    let id = Uuid::new_v4();
    let claimed = w
        .store
        .claim_standby(id, chrono::Utc::now())
        .await
        .expect("claim")
        .expect("the ready standby");
    assert_eq!(claimed.id, standby.id);
    let subdomain = w.h.subdomain("kill-claim");
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    w.restart("orchestrator");

    // The signup comes again and finds its claim: the same standby, no other.
    assert_eq!(
        outcome(&w, &standby, id, &subdomain).await,
        Outcome::TookTheStandby
    );
    assert_eq!(first_message(&w.h, id).await, PREPARED);
    w.finish().await;
}
