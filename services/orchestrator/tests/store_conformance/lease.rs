//! The leader lease and its fencing. One store instance (every backend): taking,
//! renewing, resigning, expiry, and its writes refused while it does not lead. Two
//! instances on one database (SQLite and MariaDB; a memory store is its own
//! database): only one leads, the other takes over when the lease expires or is
//! resigned, and the deposed one's late writes (each kind, and a burst the writer
//! groups) are refused with nothing stored. An instance never asked to lead writes as
//! before.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use orchestrator::saga::{Input, Saga};
use orchestrator::store::{Error, Inserted, LeaseInfo, SagaStore, Updated};
use uuid::Uuid;

use super::groups::{self, assert_stored, completed, transition};
use super::{fail_first_step_and_roll_back, started, tenant};

/// A lease no test outlives.
const LONG: Duration = Duration::from_secs(60);
/// A lease that expires while a test waits for it.
const SHORT: Duration = Duration::from_millis(300);

fn unique(name: &str) -> String {
    format!("{name}-{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// The reason of a write refused because this instance does not lead.
fn deposed<T: Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Deposed(reason)) => reason,
        other => panic!(
            "a write of an instance that does not lead must be refused as deposed, got {other:?}"
        ),
    }
}

/// Asks for the lead until another's lease has expired (the wait is bounded only so
/// that a broken expiry fails rather than hangs).
async fn lead_once_expired(store: &impl SagaStore, holder: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(fence) = store.try_lead(holder, LONG).await.expect("try_lead") {
            return fence;
        }
        assert!(
            Instant::now() < deadline,
            "{holder} never got the lead after the lease expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_leader(store: &impl SagaStore, holder: &str, fence: u64) {
    let leader: Option<LeaseInfo> = store.leader().await.expect("leader");
    match leader {
        Some(info) if info.holder == holder && info.fence == fence => {}
        other => panic!("{holder} should lead at fence {fence}, the store says {other:?}"),
    }
}

/// Sagas a leader stored, for a deposed instance to try to change.
struct Victims {
    /// Started, their events unpublished.
    started: Vec<Saga>,
    /// Rolled back: moving it on takes its subdomain back (the replay path).
    rolled_back: Saga,
}

async fn victims(store: &impl SagaStore) -> Victims {
    let mut started_sagas = Vec::new();
    for _ in 0..4 {
        started_sagas.push(started(store, &unique("victim")).await);
    }
    let undone = started(store, &unique("undone")).await;
    Victims {
        started: started_sagas,
        rolled_back: fail_first_step_and_roll_back(store, &undone).await,
    }
}

/// Every kind of write of `writer` is refused as deposed, alone and in a burst, and
/// `reader` (an instance that sees the same database) finds nothing of it stored.
/// The reason of the first refusal.
async fn assert_writes_refused(
    writer: &impl SagaStore,
    reader: &impl SagaStore,
    victims: &Victims,
) -> String {
    let newcomer = Saga::accepted(Uuid::new_v4(), tenant(&unique("newcomer")), Utc::now());
    let reason = deposed(writer.insert(&newcomer, &[]).await);
    assert_eq!(reader.get(newcomer.id).await.expect("get"), None);
    assert_eq!(
        reader
            .subdomain_holder(&newcomer.tenant.subdomain)
            .await
            .expect("holder"),
        None,
        "a refused insert claims nothing"
    );

    let saga = &victims.started[0];
    let (after, events) = transition(saga, completed(saga));
    deposed(writer.update(saga, &after, &events).await);
    assert_stored(reader, saga).await;

    deposed(writer.mark_published(&[(saga.id, 1)]).await);
    assert!(
        reader
            .unpublished()
            .await
            .expect("unpublished")
            .iter()
            .any(|e| e.saga_id == saga.id && e.sequence == 1),
        "a refused confirmation leaves the event unpublished"
    );

    let undone = &victims.rolled_back;
    let (replayed, events) = transition(undone, Input::Replay(None));
    deposed(writer.update(undone, &replayed, &events).await);
    assert_stored(reader, undone).await;
    assert_eq!(
        reader
            .subdomain_holder(&undone.tenant.subdomain)
            .await
            .expect("holder"),
        None,
        "a refused replay takes no subdomain back"
    );

    // A burst, which the SQL store's writer takes as groups: every change refused.
    let newcomers: Vec<Saga> = (0..20)
        .map(|_| Saga::accepted(Uuid::new_v4(), tenant(&unique("burst")), Utc::now()))
        .collect();
    let moves: Vec<_> = victims
        .started
        .iter()
        .map(|s| transition(s, completed(s)))
        .collect();
    let firsts: Vec<[(Uuid, u64); 1]> = victims.started.iter().map(|s| [(s.id, 1)]).collect();
    let (inserts, updates, confirmations) = futures::join!(
        join_all(newcomers.iter().map(|s| writer.insert(s, &[]))),
        join_all(
            victims
                .started
                .iter()
                .zip(&moves)
                .map(|(before, (after, events))| writer.update(before, after, events))
        ),
        join_all(firsts.iter().map(|keys| writer.mark_published(keys))),
    );
    inserts.into_iter().for_each(|r| drop(deposed(r)));
    updates.into_iter().for_each(|r| drop(deposed(r)));
    confirmations.into_iter().for_each(|r| drop(deposed(r)));
    for saga in &newcomers {
        assert_eq!(reader.get(saga.id).await.expect("get"), None);
    }
    let unpublished = reader.unpublished().await.expect("unpublished");
    for saga in &victims.started {
        assert_stored(reader, saga).await;
        assert!(unpublished
            .iter()
            .any(|e| e.saga_id == saga.id && e.sequence == 1));
    }
    reason
}

/// Writes of `store` are stored.
async fn assert_writes_stored(store: &impl SagaStore) {
    let saga = started(store, &unique("stored")).await;
    assert_stored(store, &saga).await;
    store
        .mark_published(&[(saga.id, 1)])
        .await
        .expect("confirmation");
}

/// One store instance through the lease's life.
pub async fn one_instance(store: &impl SagaStore) {
    // Never asked to lead: nobody leads and writes are not fenced.
    assert_eq!(store.leader().await.expect("leader"), None);
    assert_writes_stored(store).await;

    let first = store.try_lead("alpha", LONG).await.expect("try_lead");
    let first = first.expect("nobody led: alpha gets the lead");
    let info = store.leader().await.expect("leader").expect("a leader");
    assert_eq!((info.holder.as_str(), info.fence), ("alpha", first));
    assert!(
        info.expires_in_ms > 0 && info.expires_in_ms <= 60_000,
        "a fresh lease of 60 s expires within it, by the database's clock: {info:?}"
    );
    assert_writes_stored(store).await;
    // The group commit's slow paths (change by change, one per transaction) are fenced
    // too, and a leader passes them.
    groups::a_conflict_inside_a_group_fails_alone(store).await;
    groups::a_refused_change_fails_alone(store).await;

    // The same holder again (a restart): a new, higher fence, and writes go on.
    let second = store.try_lead("alpha", LONG).await.expect("try_lead");
    let second = second.expect("the holder takes its own lead again");
    assert!(second > first, "fence {second} after {first}");
    assert_leader(store, "alpha", second).await;
    assert!(store
        .renew_lead("alpha", second, LONG)
        .await
        .expect("renew"));
    assert!(
        !store.renew_lead("alpha", first, LONG).await.expect("renew"),
        "a superseded fence renews nothing"
    );
    assert_writes_stored(store).await;

    // Another holder finds the lead taken; the instance is then fenced without it.
    let victims = victims(store).await;
    assert_eq!(store.try_lead("beta", LONG).await.expect("try_lead"), None);
    let reason = assert_writes_refused(store, store, &victims).await;
    assert!(
        reason.contains("alpha") && reason.contains(&second.to_string()),
        "the refusal names who leads: {reason}"
    );
    assert_leader(store, "alpha", second).await;

    // Resigning frees the lead at once, long before its ttl; writes are refused after.
    let third = store.try_lead("alpha", LONG).await.expect("try_lead");
    let third = third.expect("alpha still holds it");
    assert_writes_stored(store).await;
    store.resign("alpha", third).await.expect("resign");
    assert_eq!(store.leader().await.expect("leader"), None);
    deposed(
        store
            .insert(
                &Saga::accepted(Uuid::new_v4(), tenant(&unique("late")), Utc::now()),
                &[],
            )
            .await,
    );
    let fourth = store.try_lead("beta", SHORT).await.expect("try_lead");
    let fourth = fourth.expect("a resigned lead is free at once");
    assert!(fourth > third, "fence {fourth} after {third}");
    assert_writes_stored(store).await;

    // An expired lease is taken over, with a higher fence.
    let fifth = lead_once_expired(store, "gamma").await;
    assert!(fifth > fourth, "fence {fifth} after {fourth}");
    assert_leader(store, "gamma", fifth).await;
    assert!(
        !store.renew_lead("beta", fourth, LONG).await.expect("renew"),
        "the deposed holder cannot renew"
    );
    assert_writes_stored(store).await;

    // Resigning a lead one does not hold changes nothing in the store.
    store.resign("beta", fourth).await.expect("resign");
    assert_leader(store, "gamma", fifth).await;
}

/// Two store instances on one database, and a third that never asks to lead.
pub async fn two_instances(
    first: &impl SagaStore,
    second: &impl SagaStore,
    unfenced: &impl SagaStore,
) {
    let (one, two) = futures::join!(first.try_lead("one", LONG), second.try_lead("two", LONG));
    match (one.expect("try_lead"), two.expect("try_lead")) {
        (Some(fence), None) => passes_the_lead(first, "one", second, "two", fence).await,
        (None, Some(fence)) => passes_the_lead(second, "two", first, "one", fence).await,
        other => panic!("exactly one of two instances must get the lead, got {other:?}"),
    }

    // An instance never asked to lead writes as before, whoever leads.
    assert_writes_stored(unfenced).await;
}

async fn passes_the_lead(
    leader: &impl SagaStore,
    leader_id: &str,
    standby: &impl SagaStore,
    standby_id: &str,
    fence: u64,
) {
    assert_leader(standby, leader_id, fence).await;
    let victims = victims(leader).await;

    // The standby never led: none of its writes is stored.
    let reason = assert_writes_refused(standby, leader, &victims).await;
    assert!(
        reason.contains(leader_id) && reason.contains(&fence.to_string()),
        "the refusal names who leads: {reason}"
    );
    // Nor may it renew what it does not hold.
    assert!(!standby
        .renew_lead(standby_id, fence, LONG)
        .await
        .expect("renew"));

    // The leader lets its lease run short; the standby takes over once it expired.
    assert!(leader
        .renew_lead(leader_id, fence, SHORT)
        .await
        .expect("renew"));
    let taken = lead_once_expired(standby, standby_id).await;
    assert!(taken > fence, "fence {taken} after {fence}");
    assert_leader(leader, standby_id, taken).await;

    // The deposed leader still believes it leads: its late writes are refused.
    let reason = assert_writes_refused(leader, standby, &victims).await;
    assert!(
        reason.contains(standby_id) && reason.contains(&taken.to_string()),
        "the refusal names who leads now: {reason}"
    );
    assert!(
        !leader
            .renew_lead(leader_id, fence, LONG)
            .await
            .expect("renew"),
        "the deposed leader cannot renew"
    );
    assert!(standby
        .renew_lead(standby_id, taken, LONG)
        .await
        .expect("renew"));

    // The new leader moves the sagas on.
    let saga = &victims.started[0];
    let (after, events) = transition(saga, completed(saga));
    assert_eq!(
        standby.update(saga, &after, &events).await.expect("update"),
        Updated::Stored
    );
    assert_stored(leader, &after).await;

    // Resigning hands the lead over at once, though its lease had a minute left.
    standby.resign(standby_id, taken).await.expect("resign");
    assert_eq!(leader.leader().await.expect("leader"), None);
    let again = leader.try_lead(leader_id, LONG).await.expect("try_lead");
    let again = again.expect("a resigned lead is free at once");
    assert!(again > taken, "fence {again} after {taken}");
    assert_writes_stored(leader).await;
    let late = Saga::accepted(Uuid::new_v4(), tenant(&unique("late")), Utc::now());
    deposed(standby.insert(&late, &[]).await);
    assert_eq!(
        leader.insert(&late, &[]).await.expect("insert"),
        Inserted::Stored
    );
}

/// Polls MariaDB's process list until a statement starting with `prefix` waits in
/// `database`; false if none did within 20 s. (Not asserted here: a panic while the
/// gate holds its lock would leave the store's writer stuck in its transaction, and
/// the test database could not be dropped.)
async fn waited(url: &str, database: &str, prefix: &str) -> bool {
    let mut watcher = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("watcher");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE ?",
        )
        .bind(database)
        .bind(format!("{prefix}%"))
        .fetch_one(&mut watcher)
        .await
        .expect("processlist");
        if waiting >= 1 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// MariaDB: a write of the leader in flight when its lease has expired, and a
/// takeover at that moment. The fence check locks the lease row for the write's
/// transaction, so the takeover waits for the write to commit: the write is stored
/// before the new fence exists, never after it, and the old leader's next write is
/// refused. (SQLite's single writer lock orders them by itself.)
pub async fn takeover_waits_for_a_write_in_flight(
    first: &impl SagaStore,
    second: &impl SagaStore,
    url: &str,
    database: &str,
) {
    let fence = first.try_lead("one", LONG).await.expect("try_lead");
    let fence = fence.expect("nobody led");
    let saga = started(first, &unique("in-flight")).await;
    assert!(first.renew_lead("one", fence, SHORT).await.expect("renew"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while second
        .leader()
        .await
        .expect("leader")
        .is_some_and(|l| l.expires_in_ms >= 0)
    {
        assert!(Instant::now() < deadline, "the short lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A third connection holds the saga's row, so the leader's write stops inside its
    // transaction, after its fence check.
    let mut gate = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("gate");
    sqlx::raw_sql("BEGIN")
        .execute(&mut gate)
        .await
        .expect("begin");
    sqlx::query("SELECT saga_id FROM sagas WHERE saga_id = ? FOR UPDATE")
        .bind(saga.id.to_string())
        .fetch_all(&mut gate)
        .await
        .expect("row lock");
    let (after, events) = transition(&saga, completed(&saga));
    let (written, (write_waited, taken), takeover_waited) = futures::join!(
        first.update(&saga, &after, &events),
        async {
            let write_waited = waited(url, database, "UPDATE sagas").await;
            (write_waited, second.try_lead("two", LONG).await)
        },
        async {
            let takeover_waited =
                waited(url, database, "UPDATE orchestrator_lease SET holder").await;
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut gate)
                .await
                .expect("unlock");
            takeover_waited
        },
    );
    assert!(write_waited, "the leader's write never waited for the row");
    assert!(
        takeover_waited,
        "the takeover never waited for the leader's write in flight"
    );
    assert_eq!(written.expect("the write in flight"), Updated::Stored);
    let taken = taken
        .expect("try_lead")
        .expect("the expired lease is taken");
    assert!(taken > fence, "fence {taken} after {fence}");
    assert_stored(second, &after).await;
    let (next, events) = transition(&after, completed(&after));
    deposed(first.update(&after, &next, &events).await);
    assert_stored(second, &after).await;
}
