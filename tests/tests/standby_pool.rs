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
//!   no ledger row, and the standby is never handed out again;
//! - a rollback before the rename (`bench version` failing for the readiness check)
//!   leaves nothing either: the standby is discarded, its placeholder folder archived
//!   and its database dropped, nothing under the tenant's name;
//! - an unusable standby (its folder removed behind the pool's back) is discarded and
//!   the signup completes the usual way in a new run;
//! - a pool shrunk (the orchestrator restarted with a smaller size) discards the
//!   newest extra ready standby and keeps the other.
//!
//! The pool's rows are read from the orchestrator's own store file
//! ([`tests::pool_world`]).

use std::path::Path;

use contracts::SagaStatus;
use orchestrator::store::{SagaStore, Standby, StandbyState};
use tests::pool_world::{first_message, ledger_holder, site_config, PoolWorld, PREPARED};
use uuid::Uuid;

/// What a discarded standby must leave: its placeholder folder archived (none in
/// `sites/`), no database or user, no ledger row; its row gone, its build rolled back.
async fn assert_discarded(w: &PoolWorld, standby: &Standby) {
    w.wait_gone(standby.id).await;
    w.assert_standby_left_nothing(standby).await;
}

/// Sets the emulator's scripted failures (`[]`: none).
fn script_failures(root: &Path, fail: serde_json::Value) {
    let settings = serde_json::json!({"delay_ms": 1, "fail": fail});
    std::fs::write(root.join("emulator.json"), settings.to_string()).expect("emulator.json");
}

/// Drops the databases the pool still holds at the end of a test.
async fn drop_pool(w: &PoolWorld) {
    for s in w.store.standbys(None).await.expect("pool") {
        if !s.db_name.is_empty() {
            tests::drop_tenant(&s.db_name).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_takes_a_ready_standby_and_the_pool_refills() {
    let w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
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
    assert_eq!(w.state_of(standby.id).await, StandbyState::Gone);
    let next = w.ready_standby(&[standby.id]).await;
    assert_ne!(next.site_name, standby.site_name);

    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_signups_race_for_one_standby_one_takes_it_both_complete() {
    let w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
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

    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_after_a_claim_leaves_nothing() {
    let w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
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
    // Never handed out again (its build undone: nothing of it was left to remove);
    // the pool builds another.
    w.wait_gone(standby.id).await;
    assert_eq!(w.build_status(standby.id).await, SagaStatus::RolledBack);
    w.ready_standby(&[standby.id]).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_before_the_rename_discards_the_standby_and_leaves_nothing() {
    let w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    // The site step's readiness check asks `bench version` before the rename: a bench
    // that cannot answer fails the site step (after its retries), so the signup rolls
    // back with the standby's folder still under its placeholder name.
    script_failures(&w.root, serde_json::json!([{"command": "version"}]));
    let subdomain = w.h.subdomain("pool-early");
    let id = Uuid::new_v4();
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(
        w.h.wait_terminal(id, 90).await,
        SagaStatus::RolledBack,
        "{:#?}",
        w.h.get(id).await
    );
    script_failures(&w.root, serde_json::json!([]));
    assert_eq!(first_message(&w.h, id).await, PREPARED);

    // The standby went with it: folder archived, database dropped, row gone.
    assert_discarded(&w, &standby).await;
    let archived: Vec<String> = std::fs::read_dir(w.root.join("sites/archived"))
        .expect("archive")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        archived
            .iter()
            .any(|name| name.contains(&standby.site_name)),
        "the placeholder is archived: {archived:?}"
    );
    // Nothing under the tenant's name.
    tests::assert_nothing_left(&w.root, &subdomain).await;
    // The pool builds another, which signups can take.
    let next = w.ready_standby(&[standby.id]).await;
    assert_eq!(w.state_of(next.id).await, StandbyState::Ready);
    drop_pool(&w).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_standby_is_discarded_and_the_signup_completes_the_usual_way() {
    let w = PoolWorld::start(1).await;
    let standby = w.ready_standby(&[]).await;
    // Behind the pool's back: the standby's folder is gone.
    std::fs::remove_dir_all(w.root.join(format!("sites/{}", standby.site_name)))
        .expect("remove the standby's folder");
    let subdomain = w.h.subdomain("pool-unusable");
    let id = Uuid::new_v4();
    w.h.publish_signup(&w.h.signup(id, &subdomain)).await;
    assert_eq!(
        w.h.wait_terminal(id, 120).await,
        SagaStatus::Completed,
        "{:#?}",
        w.h.get(id).await
    );
    let saga = w.h.get(id).await.saga.expect("saga");
    assert_eq!(saga.run, 2, "a new run, the usual way");
    let timeline = w.h.timeline(id, 1).await;
    assert!(
        timeline
            .iter()
            .any(|e| e.message.contains("preparing one the usual way")),
        "{timeline:#?}"
    );
    // The tenant's own site and database, made the usual way.
    let site = format!("{subdomain}.example.test");
    assert_eq!(
        site_config(&w.root, &site)["provisioning_saga_id"],
        id.to_string()
    );
    assert_eq!(
        ledger_holder(&db_step::database_name(&subdomain)).await,
        Some(id.to_string())
    );
    // The standby is discarded: nothing of it is left, it is never handed out.
    assert_discarded(&w, &standby).await;

    tests::drop_tenant(&db_step::database_name(&subdomain)).await;
    drop_pool(&w).await;
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shrunk_pool_discards_its_newest_extra_standby() {
    let mut w = PoolWorld::start(2).await;
    let first = w.ready_standby(&[]).await;
    let second = w.ready_standby(&[first.id]).await;
    // The newest by when its build started (then by id, as the pool orders them).
    let (older, newer) = if (first.created_at, first.id) <= (second.created_at, second.id) {
        (first, second)
    } else {
        (second, first)
    };
    w.services.terminate("orchestrator");
    w.env.retain(|(k, _)| *k != "STANDBY_POOL_SIZE");
    w.env.push(("STANDBY_POOL_SIZE", "1".into()));
    w.restart("orchestrator");

    assert_discarded(&w, &newer).await;
    assert_eq!(
        w.state_of(older.id).await,
        StandbyState::Ready,
        "the pool keeps one"
    );
    assert!(w.root.join(format!("sites/{}", older.site_name)).is_dir());
    assert_eq!(
        w.store.standbys(None).await.expect("pool").len(),
        1,
        "and builds none"
    );
    drop_pool(&w).await;
    w.finish().await;
}
