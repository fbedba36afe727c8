//! The standby pool's rows: a standby's life (building, ready, claimed, released,
//! discarding, gone), a claim given again to the same signup, two signups never sharing one
//! standby however many claim at once, and the writes fenced by the lease.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use orchestrator::store::{Error, SagaStore, Standby, StandbyState};
use uuid::Uuid;

fn standby() -> Standby {
    let id = Uuid::new_v4();
    let site = format!("sb-{}.example.test", &id.simple().to_string()[..8]);
    Standby::building(id, site, Utc::now())
}

async fn state_of(store: &impl SagaStore, id: Uuid) -> StandbyState {
    store
        .standby(id)
        .await
        .expect("standby")
        .expect("stored")
        .state
}

/// One standby's whole life, and a second signup finding none.
pub(crate) async fn lifecycle(store: &impl SagaStore) {
    let (a, b) = (standby(), standby());
    store.add_standby(&a).await.expect("add a");
    store.add_standby(&b).await.expect("add b");
    store.add_standby(&a).await.expect("the same one again");
    let mut listed = store.standbys(None).await.expect("list");
    listed.sort_by_key(|s| s.id);
    let mut added = vec![a.clone(), b.clone()];
    added.sort_by_key(|s| s.id);
    assert_eq!(listed, added, "both building, as added");

    let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(
        store.claim_standby(first, Utc::now()).await.expect("claim"),
        None,
        "a building standby is never handed out"
    );
    assert!(store
        .standby_ready(a.id, "t_sb_a", Utc::now())
        .await
        .expect("ready"));
    assert!(
        !store
            .standby_ready(a.id, "t_sb_a", Utc::now())
            .await
            .expect("ready again"),
        "ready once"
    );
    let taken = store
        .claim_standby(first, Utc::now())
        .await
        .expect("claim")
        .expect("a ready standby");
    assert_eq!((taken.id, taken.state), (a.id, StandbyState::Claimed));
    assert_eq!(
        (taken.db_name.as_str(), taken.claimed_by),
        ("t_sb_a", Some(first))
    );
    assert_eq!(
        store.claim_standby(first, Utc::now()).await.expect("again"),
        Some(taken.clone()),
        "the same signup gets the same standby again"
    );
    assert_eq!(
        store
            .claim_standby(second, Utc::now())
            .await
            .expect("claim"),
        None,
        "a claimed standby is never handed out twice"
    );

    assert!(store
        .standby_ready(b.id, "t_sb_b", Utc::now())
        .await
        .expect("ready b"));
    assert_eq!(
        store
            .standbys(Some(StandbyState::Ready))
            .await
            .expect("ready list")
            .len(),
        1
    );
    let b_taken = store
        .claim_standby(second, Utc::now())
        .await
        .expect("claim");
    assert_eq!(b_taken.map(|s| s.id), Some(b.id));
    assert!(
        !store.release_standby(b.id, first).await.expect("release"),
        "only its holder gives a standby back"
    );
    assert!(store.release_standby(b.id, second).await.expect("release"));
    assert_eq!(state_of(store, b.id).await, StandbyState::Ready);
    let b_again = store.claim_standby(third, Utc::now()).await.expect("claim");
    assert_eq!(
        b_again.map(|s| (s.id, s.claimed_by)),
        Some((b.id, Some(third)))
    );
    // Its signup rolled back: the pool discards it, from the state it saw only.
    assert!(
        !store
            .discard_standby(b.id, StandbyState::Ready)
            .await
            .expect("discard"),
        "a claimed standby is not discarded as a ready one"
    );
    assert!(store
        .discard_standby(b.id, StandbyState::Claimed)
        .await
        .expect("discard"));
    assert_eq!(state_of(store, b.id).await, StandbyState::Discarding);
    assert!(
        !store
            .discard_standby(b.id, StandbyState::Claimed)
            .await
            .expect("discard again"),
        "discarded once"
    );
    assert_eq!(
        store
            .claim_standby(Uuid::new_v4(), Utc::now())
            .await
            .expect("claim"),
        None,
        "a discarding standby is never handed out"
    );
    assert_eq!(
        store
            .standbys(Some(StandbyState::Discarding))
            .await
            .expect("discarding list")
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![b.id]
    );

    assert!(store.standby_gone(a.id).await.expect("gone"));
    assert!(!store.standby_gone(a.id).await.expect("gone again"));
    assert_eq!(state_of(store, a.id).await, StandbyState::Gone);
    let left: Vec<Uuid> = store
        .standbys(None)
        .await
        .expect("list")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left, vec![b.id], "a gone standby is no longer listed");
    assert!(
        !store
            .standby_ready(a.id, "x", Utc::now())
            .await
            .expect("ready"),
        "a gone standby never comes back"
    );
    assert_eq!(store.standby(Uuid::new_v4()).await.expect("get"), None);
}

/// Many signups claim at once, more than there are ready standbys: each standby goes
/// to one signup, every ready one is taken, the rest find none.
pub(crate) async fn claims_race(store: &impl SagaStore) {
    let ready: Vec<Standby> = (0..3).map(|_| standby()).collect();
    for s in &ready {
        store.add_standby(s).await.expect("add");
        assert!(store
            .standby_ready(s.id, "t_db", Utc::now())
            .await
            .expect("ready"));
    }
    let signups: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let claims = join_all(signups.iter().map(|signup| async move {
        (
            *signup,
            store
                .claim_standby(*signup, Utc::now())
                .await
                .expect("claim"),
        )
    }))
    .await;
    let taken: Vec<(Uuid, Standby)> = claims
        .into_iter()
        .filter_map(|(signup, s)| s.map(|s| (signup, s)))
        .collect();
    let ids: HashSet<Uuid> = taken.iter().map(|(_, s)| s.id).collect();
    assert_eq!(taken.len(), 3, "every ready standby taken, once: {taken:?}");
    assert_eq!(ids, ready.iter().map(|s| s.id).collect(), "{taken:?}");
    for (signup, s) in &taken {
        let stored = store.standby(s.id).await.expect("get").expect("stored");
        assert_eq!(
            stored.claimed_by,
            Some(*signup),
            "the store agrees who holds it"
        );
    }
    assert!(store
        .standbys(Some(StandbyState::Ready))
        .await
        .expect("list")
        .is_empty());
}

/// An instance that lost the lead changes nothing of the pool.
pub(crate) async fn fenced(store: &impl SagaStore) {
    let held = standby();
    store.add_standby(&held).await.expect("add");
    store
        .standby_ready(held.id, "t_db", Utc::now())
        .await
        .expect("ready");
    let long = Duration::from_secs(60);
    assert!(store
        .try_lead("pool-a", long)
        .await
        .expect("lead")
        .is_some());
    store
        .add_standby(&standby())
        .await
        .expect("the leader writes");
    // Another holder asks while the lease is held: this instance is fenced out.
    assert_eq!(store.try_lead("pool-b", long).await.expect("lead"), None);
    let refused = |r: Result<(), Error>| matches!(r, Err(Error::Deposed(_)));
    assert!(refused(store.add_standby(&standby()).await));
    assert!(refused(
        store
            .claim_standby(Uuid::new_v4(), Utc::now())
            .await
            .map(|_| ())
    ));
    assert!(refused(store.standby_gone(held.id).await.map(|_| ())));
    assert!(refused(
        store
            .discard_standby(held.id, StandbyState::Ready)
            .await
            .map(|_| ())
    ));
    assert_eq!(
        state_of(store, held.id).await,
        StandbyState::Ready,
        "nothing changed"
    );
}

/// Two store instances on one database claim at once for many signups: each ready
/// standby still goes to one signup only.
pub(crate) async fn two_instances_race(first: &impl SagaStore, second: &impl SagaStore) {
    let ready: Vec<Standby> = (0..2).map(|_| standby()).collect();
    for s in &ready {
        first.add_standby(s).await.expect("add");
        first
            .standby_ready(s.id, "t_db", Utc::now())
            .await
            .expect("ready");
    }
    let signups: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let claims = join_all(signups.iter().enumerate().map(|(n, signup)| async move {
        let claimed = if n % 2 == 0 {
            first.claim_standby(*signup, Utc::now()).await
        } else {
            second.claim_standby(*signup, Utc::now()).await
        };
        claimed.expect("claim").map(|s| s.id)
    }))
    .await;
    let taken: Vec<Uuid> = claims.into_iter().flatten().collect();
    let distinct: HashSet<Uuid> = taken.iter().copied().collect();
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert_eq!(distinct, ready.iter().map(|s| s.id).collect());
}
