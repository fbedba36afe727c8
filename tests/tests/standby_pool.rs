//! The standby pool end to end, the five services as processes (db-step on MariaDB,
//! site-step and user-step on the bench emulator, registry-step on the Master
//! stand-in, the orchestrator with `STANDBY_POOL_SIZE=1`):
//!
//! - the pool fills: a standby is built under a placeholder name and becomes ready;
//! - a signup takes it: its site is the standby's folder renamed (marker, `host_name`),
//!   the database ledger names the signup, the admin user and the registration are
//!   made as usual, progress says a prepared workspace was used; the pool refills;
//! - two signups race for one standby: one takes it, the other takes the usual path,
//!   both complete;
//! - a rollback after a claim leaves nothing: no site but the archive, no database,
//!   no ledger row, and the standby is never handed out again.
//!
//! The pool's rows are read from the orchestrator's own store file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contracts::SagaStatus;
use orchestrator::store::{SagaStore, SqlStore, Standby, StandbyState};
use tests::Harness;
use uuid::Uuid;

const PREPARED: &str = "Signup accepted: using a prepared workspace";

struct World {
    h: Harness,
    root: PathBuf,
    master: master_standin::Shared,
    store: SqlStore,
    _services: tests::Processes,
}

async fn world() -> World {
    let mut h = Harness::new().await;
    let root = h.bench_folder(serde_json::json!({"delay_ms": 1}));
    let (url, master) = h.start_master().await;
    let mut env = h.frappe_env(&root, &url);
    env.push(("STANDBY_POOL_SIZE", "1".into()));
    let services = h.spawn_all(&env);
    let store = SqlStore::connect(&format!(
        "sqlite://{}/orchestrator.db",
        h.dir.path().display()
    ))
    .await
    .expect("the orchestrator's store");
    World {
        h,
        root,
        master,
        store,
        _services: services,
    }
}

/// Stops the services (the pool with them, so it starts no other build), tells the
/// harness of every saga's subdomain and every standby the pool made (placeholders the orchestrator named,
/// `sb-<8 hex>`, which the harness did not hand out), so their databases, users and
/// ledger rows go with the world, then finishes it.
async fn finish(w: World) {
    let World {
        h,
        store,
        _services,
        ..
    } = w;
    drop(_services);
    // Every saga of this world's store (a used-up standby is no longer in the pool's
    // list, its build saga is), and every standby still listed.
    for saga in store.list(None, 1000).await.expect("sagas") {
        h.track_subdomain(&saga.tenant.subdomain);
    }
    for standby in store.standbys(None).await.expect("pool") {
        let placeholder = standby
            .site_name
            .split_once('.')
            .map_or(standby.site_name.as_str(), |(sub, _)| sub);
        h.track_subdomain(placeholder);
    }
    h.finish().await;
}

/// Waits for a ready standby other than those in `not`.
async fn ready_standby(w: &World, not: &[Uuid]) -> Standby {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = w
            .store
            .standbys(Some(StandbyState::Ready))
            .await
            .expect("standbys");
        if let Some(standby) = ready.into_iter().find(|s| !not.contains(&s.id)) {
            return standby;
        }
        assert!(
            Instant::now() < deadline,
            "no standby became ready; pool: {:?}\n{}",
            w.store.standbys(None).await,
            w.h.service_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn state_of(w: &World, id: Uuid) -> StandbyState {
    w.store
        .standby(id)
        .await
        .expect("standby")
        .expect("stored")
        .state
}

fn site_config(root: &Path, site: &str) -> serde_json::Value {
    let path = root.join(format!("sites/{site}/site_config.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("site_config")).expect("json")
}

/// The saga the database ledger names for `db_name`, if any.
async fn ledger_holder(db_name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT saga_id FROM saga_provisioning.tenant_databases WHERE db_name = ?")
        .bind(db_name)
        .fetch_optional(&tests::admin_pool().await)
        .await
        .expect("ledger")
}

async fn first_message(h: &Harness, id: Uuid) -> String {
    h.timeline(id, 1)
        .await
        .first()
        .map(|e| e.message.clone())
        .expect("a first event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_takes_a_ready_standby_and_the_pool_refills() {
    let w = world().await;
    let standby = ready_standby(&w, &[]).await;
    assert!(standby.site_name.starts_with("sb-"), "{standby:?}");
    assert!(w.root.join(format!("sites/{}", standby.site_name)).is_dir());
    assert_eq!(
        ledger_holder(&standby.db_name).await,
        Some(standby.id.to_string()),
        "the standby's database is its build's"
    );

    let subdomain = w.h.subdomain("pooled");
    let site = format!("{subdomain}.example.test");
    let id = Uuid::new_v4();
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(
        w.h.wait_terminal(id, 90).await,
        SagaStatus::Completed,
        "{:#?}",
        w.h.get(id).await
    );
    assert_eq!(first_message(&w.h, id).await, PREPARED);

    // The standby's folder, renamed, is the tenant's site now.
    assert!(!w.root.join(format!("sites/{}", standby.site_name)).exists());
    let config = site_config(&w.root, &site);
    assert_eq!(config["provisioning_saga_id"], id.to_string());
    assert_eq!(config["host_name"], format!("https://{site}"));
    assert_eq!(config["db_name"], standby.db_name.as_str());
    assert_eq!(ledger_holder(&standby.db_name).await, Some(id.to_string()));
    // The admin user and the registration as usual.
    let users = std::fs::read_to_string(w.root.join(format!("sites/{site}/emulator/users.json")))
        .expect("users");
    assert!(users.contains("admin@test.com"), "{users}");
    assert!(
        w.master
            .lock()
            .expect("master")
            .records
            .contains_key(&subdomain),
        "registered"
    );
    // Used up, and replaced.
    assert_eq!(state_of(&w, standby.id).await, StandbyState::Gone);
    let next = ready_standby(&w, &[standby.id]).await;
    assert_ne!(next.site_name, standby.site_name);

    finish(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_signups_race_for_one_standby_one_takes_it_both_complete() {
    let w = world().await;
    let standby = ready_standby(&w, &[]).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (sub_a, sub_b) = (w.h.subdomain("race-a"), w.h.subdomain("race-b"));
    let (signup_a, signup_b) = (w.h.signup(a, &sub_a), w.h.signup(b, &sub_b));
    futures::join!(w.h.publish_signup(&signup_a), w.h.publish_signup(&signup_b));
    for id in [a, b] {
        assert_eq!(
            w.h.wait_terminal(id, 120).await,
            SagaStatus::Completed,
            "{:#?}",
            w.h.get(id).await
        );
    }
    let prepared = [
        first_message(&w.h, a).await == PREPARED,
        first_message(&w.h, b).await == PREPARED,
    ];
    assert_eq!(
        prepared.iter().filter(|p| **p).count(),
        1,
        "exactly one signup took the standby: {prepared:?}"
    );
    let holder = if prepared[0] { a } else { b };
    let stored = w
        .store
        .standby(standby.id)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(stored.claimed_by, Some(holder));
    assert_eq!(
        ledger_holder(&standby.db_name).await,
        Some(holder.to_string())
    );
    let other = if prepared[0] { &sub_b } else { &sub_a };
    assert_eq!(
        ledger_holder(&db_step::database_name(other)).await,
        Some(if prepared[0] { b } else { a }.to_string()),
        "the other made a database of its own"
    );

    finish(w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_after_a_claim_leaves_nothing() {
    let w = world().await;
    let standby = ready_standby(&w, &[]).await;
    let subdomain = w.h.subdomain("pool-undo");
    w.master
        .lock()
        .expect("master")
        .refuse_names
        .push(subdomain.clone());
    let id = Uuid::new_v4();
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(w.h.wait_terminal(id, 90).await, SagaStatus::RolledBack);
    assert_eq!(first_message(&w.h, id).await, PREPARED);

    let site = format!("{subdomain}.example.test");
    assert!(!w.root.join(format!("sites/{site}")).exists(), "no site");
    assert!(
        !w.root.join(format!("sites/{}", standby.site_name)).exists(),
        "no placeholder either"
    );
    tests::assert_no_claims(&w.root, &subdomain);
    assert_eq!(
        tests::mariadb_has(&standby.db_name).await,
        (false, false),
        "the database went with the signup"
    );
    assert_eq!(ledger_holder(&standby.db_name).await, None);
    let archived: Vec<String> = std::fs::read_dir(w.root.join("sites/archived"))
        .expect("archive")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        archived.iter().any(|name| name.contains(&subdomain)),
        "archived: {archived:?}"
    );
    // Never handed out again; the pool builds another.
    assert_eq!(state_of(&w, standby.id).await, StandbyState::Gone);
    ready_standby(&w, &[standby.id]).await;
    finish(w).await;
}
