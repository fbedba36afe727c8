//! The standby pool's upkeep over the memory store: the size an operator sets in the
//! store grows and drains the pool at the next round, a signup still takes what is
//! ready while it shrinks, a claim whose signup never got stored is discarded after
//! the grace period (never given back), a store without a pool is asked once, and
//! builds start a few at a time, and wait longer after each failed one.

use super::*;
use crate::driver::pool::CLAIM_GRACE;
use crate::store::{PoolSetting, StandbyState};

fn setting(size: Option<u32>) -> PoolSetting {
    PoolSetting {
        size,
        action: crate::admin::operator_action(
            "pool_size",
            Some("ann"),
            None,
            "x",
            chrono::Utc::now(),
        ),
    }
}

async fn states(rig: &Rig) -> Vec<StandbyState> {
    let mut states: Vec<StandbyState> = rig
        .core
        .store
        .standbys(None)
        .await
        .expect("rows")
        .iter()
        .map(|s| s.state)
        .collect();
    states.sort_by_key(|s| s.as_str());
    states
}

/// Marks every building standby ready, as its build completing would.
async fn all_built(rig: &Rig) {
    for standby in rig
        .core
        .store
        .standbys(Some(StandbyState::Building))
        .await
        .expect("rows")
    {
        rig.core
            .store
            .standby_ready(standby.id, "db", rig.core.clock.now())
            .await
            .expect("ready");
    }
}

/// Waits (virtual time) until signup `id`'s saga is stored.
async fn stored(rig: &Rig, id: Uuid) {
    within(Duration::from_secs(1), "stored", async || {
        rig.core.store.get(id).await.expect("store").is_some()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_size_set_in_the_store_grows_and_drains_the_pool() {
    let rig = Rig::with_pool(true, 1);
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        states(&rig).await,
        [StandbyState::Building],
        "the configured 1"
    );
    assert_eq!(rig.core.pool.size(), 1);

    rig.core
        .store
        .set_pool_setting(&setting(Some(3)))
        .await
        .expect("set");
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(rig.core.pool.size(), 3);
    assert_eq!(
        states(&rig).await,
        [StandbyState::Building; 3],
        "grown to 3"
    );
    all_built(&rig).await;

    // Lowered to 0: until the next round signups still take what is ready.
    rig.core
        .store
        .set_pool_setting(&setting(Some(0)))
        .await
        .expect("set");
    assert!(rig.core.pool.claimable());
    let signup = Uuid::new_v4();
    rig.signup(signup).await;
    stored(&rig, signup).await;
    assert!(
        rig.saga(signup).await.tenant.standby.is_some(),
        "a ready standby is used rather than discarded"
    );
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(rig.core.pool.size(), 0);
    assert_eq!(
        states(&rig).await,
        [
            StandbyState::Claimed,
            StandbyState::Discarding,
            StandbyState::Discarding
        ],
        "drained: the ready ones discarded, the claimed one left to its signup"
    );
    rig.core.tend_pool().await.expect("tend");
    assert!(
        !rig.core.pool.claimable(),
        "none left ready: signups look no more"
    );

    // Cleared: back to the configured size.
    rig.core
        .store
        .set_pool_setting(&setting(None))
        .await
        .expect("clear");
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(rig.core.pool.size(), 1);
    assert!(states(&rig).await.contains(&StandbyState::Building));
}

#[tokio::test(start_paused = true)]
async fn a_claim_whose_signup_was_never_stored_is_discarded_after_the_grace() {
    let rig = Rig::with_pool(true, 1);
    rig.core.tend_pool().await.expect("tend");
    all_built(&rig).await;
    // A signup claims it, and its saga never reaches the store (dead-lettered).
    let lost = Uuid::new_v4();
    let claimed = rig
        .core
        .store
        .claim_standby(lost, rig.core.clock.now())
        .await
        .expect("claim")
        .expect("ready one");
    rig.core.tend_pool().await.expect("tend");
    let state = |rig: &Rig| {
        let store = rig.core.store.clone();
        async move {
            store
                .standby(claimed.id)
                .await
                .expect("row")
                .expect("kept")
                .state
        }
    };
    assert_eq!(
        state(&rig).await,
        StandbyState::Claimed,
        "the signup may still come"
    );
    tokio::time::advance(
        (CLAIM_GRACE - chrono::Duration::minutes(1))
            .to_std()
            .expect("std"),
    )
    .await;
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(state(&rig).await, StandbyState::Claimed, "within the grace");
    tokio::time::advance(Duration::from_secs(120)).await;
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        state(&rig).await,
        StandbyState::Discarding,
        "past the grace: discarded, never given back"
    );
    // REVIEW: the signup comes at last (a leader back after a long outage).
    rig.signup(lost).await;
    stored(&rig, lost).await;
    assert_ne!(
        rig.saga(lost).await.tenant.standby.map(|s| s.saga_id),
        Some(claimed.id),
        "a discarded standby is never handed to its late signup"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_without_a_pool_is_asked_once() {
    // The configured size says 2, the store keeps no pool.
    let rig = Rig::with_pool(false, 2);
    assert!(rig.core.pool.claimable());
    let signup = Uuid::new_v4();
    rig.signup(signup).await;
    stored(&rig, signup).await;
    assert!(rig.saga(signup).await.tenant.standby.is_none());
    assert!(
        !rig.core.pool.claimable(),
        "refused once: never asked again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pool_configured_off_and_set_on_by_an_operator_serves_signups() {
    let rig = Rig::with_pool(true, 0);
    rig.core.tend_pool().await.expect("tend");
    assert!(states(&rig).await.is_empty(), "off as configured");
    assert!(!rig.core.pool.claimable());
    rig.core
        .store
        .set_pool_setting(&setting(Some(1)))
        .await
        .expect("set");
    rig.core.tend_pool().await.expect("tend");
    all_built(&rig).await;
    let signup = Uuid::new_v4();
    rig.signup(signup).await;
    stored(&rig, signup).await;
    assert!(rig.saga(signup).await.tenant.standby.is_some());
    // A second signup finds none ready: a miss, kept in the store.
    let late = Uuid::new_v4();
    rig.signup(late).await;
    stored(&rig, late).await;
    let figures = rig
        .core
        .store
        .pool_figures(rig.core.clock.now() - chrono::TimeDelta::hours(1))
        .await
        .expect("figures");
    assert_eq!((figures.taken, figures.missed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn builds_start_a_few_at_a_time() {
    // A pool of 5, at most 2 builds under way (STANDBY_BUILDS_AT_ONCE).
    let rig = Rig::with_pool_builds(true, 5, 2);
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        states(&rig).await,
        [StandbyState::Building; 2],
        "two builds, not five at once"
    );
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(states(&rig).await.len(), 2, "none more while two build");
    all_built(&rig).await;
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        states(&rig).await,
        [
            StandbyState::Building,
            StandbyState::Building,
            StandbyState::Ready,
            StandbyState::Ready
        ],
        "the next two once those are ready"
    );
    all_built(&rig).await;
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        states(&rig).await,
        [
            StandbyState::Building,
            StandbyState::Ready,
            StandbyState::Ready,
            StandbyState::Ready,
            StandbyState::Ready
        ],
        "the fifth: the pool's size, never more"
    );
}

#[test]
fn the_wait_after_failed_builds_doubles_up_to_ten_minutes() {
    use crate::driver::pool::build_backoff;
    let secs = |n| build_backoff(n).num_seconds();
    assert_eq!(
        [0, 1, 2, 3, 7, 8, 100].map(secs),
        [0, 10, 20, 40, 600, 600, 600]
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_failed_build_the_next_waits() {
    let rig = Rig::with_pool(true, 1);
    rig.core.tend_pool().await.expect("tend");
    let building = rig
        .core
        .store
        .standbys(Some(StandbyState::Building))
        .await
        .expect("rows");
    let [build] = &building[..] else {
        panic!("one build: {building:?}")
    };
    stored(&rig, build.id).await;
    // Its build fails (apps that cannot install, say).
    let before = rig.saga(build.id).await;
    let mut failed = before.clone();
    failed.status = SagaStatus::RolledBack;
    failed.error = Some(crate::admin::error("bench_error", "install-app failed"));
    rig.core
        .follow_pool(&before, &failed)
        .await
        .expect("follow");
    assert_eq!(states(&rig).await, [], "gone from the pool");

    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        states(&rig).await,
        [],
        "no new build at once after a failed one"
    );
    tokio::time::advance(Duration::from_secs(11)).await;
    rig.core.tend_pool().await.expect("tend");
    assert_eq!(
        states(&rig).await,
        [StandbyState::Building],
        "the next build once the wait is over"
    );
}
