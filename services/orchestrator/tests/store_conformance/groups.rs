//! Many changes at once, as a busy orchestrator makes them: they share the SQL store's
//! group commits (the writer takes whatever is waiting), and no change decides the
//! fate of another. Also two store instances on one database racing on the same sagas.
//!
//! The changes of one burst are submitted before any is awaited (`join_all` on a
//! current-thread runtime), so the SQL store's writer finds them waiting together.

use std::time::Duration;

use chrono::Utc;
use contracts::{ProgressEvent, Rejection};
use futures::future::join_all;
use orchestrator::saga::{next, Action, Decision, Input, Saga};
use orchestrator::store::{Error, Inserted, SagaStore, Updated};
use uuid::Uuid;

use super::{definition, tenant};

/// The transition `input` makes from `saga`, with its progress events.
pub fn transition(saga: &Saga, input: Input) -> (Saga, Vec<ProgressEvent>) {
    let Decision::Apply {
        saga: after,
        actions,
    } = next(&definition(), saga, input, Utc::now())
    else {
        panic!("input ignored")
    };
    let events = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Publish(e) => Some(e),
            _ => None,
        })
        .collect();
    (after, events)
}

/// The pending step reports success.
pub fn completed(saga: &Saga) -> Input {
    let Some(Action::Dispatch { step, attempt, .. }) = saga.pending_dispatch(&definition()) else {
        panic!("no step pending")
    };
    Input::Reported(contracts::StepEvent {
        command_id: String::new(),
        saga_id: saga.id,
        run: saga.run,
        step,
        action: contracts::StepAction::Execute,
        attempt,
        report: contracts::StepReport::Completed {
            output: serde_json::Value::Null,
        },
        at: Utc::now(),
    })
}

/// The pending step's deadline passes.
fn timed_out(saga: &Saga) -> Input {
    Input::TimerFired(saga.timer().expect("a timer pending"))
}

fn suffix() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// `n` accepted sagas, stored and started, each in a burst of its own kind.
async fn started_many(store: &impl SagaStore, name: &str, n: usize) -> Vec<Saga> {
    let suffix = suffix();
    let sagas: Vec<Saga> = (0..n)
        .map(|i| {
            Saga::accepted(
                Uuid::new_v4(),
                tenant(&format!("{name}{i}-{suffix}")),
                Utc::now(),
            )
        })
        .collect();
    for inserted in join_all(sagas.iter().map(|s| store.insert(s, &[]))).await {
        assert_eq!(inserted.expect("insert"), Inserted::Stored);
    }
    advance_all(store, &sagas, |_| Input::Start).await
}

/// Moves every saga on at once with `input`; each must be stored.
async fn advance_all(
    store: &impl SagaStore,
    sagas: &[Saga],
    input: impl Fn(&Saga) -> Input,
) -> Vec<Saga> {
    let moves: Vec<_> = sagas.iter().map(|s| transition(s, input(s))).collect();
    let results = join_all(
        sagas
            .iter()
            .zip(&moves)
            .map(|(before, (after, events))| store.update(before, after, events)),
    )
    .await;
    for (saga, result) in sagas.iter().zip(results) {
        assert_eq!(result.expect("update"), Updated::Stored, "saga {}", saga.id);
    }
    moves.into_iter().map(|(after, _)| after).collect()
}

/// The store holds `saga` as it is, with a whole timeline ending at its sequence.
pub async fn assert_stored(store: &impl SagaStore, saga: &Saga) {
    assert_eq!(
        store.get(saga.id).await.expect("get").as_ref(),
        Some(saga),
        "saga {} as last stored",
        saga.id
    );
    let timeline = store.timeline(saga.id).await.expect("timeline");
    assert_eq!(
        timeline.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=saga.sequence).collect::<Vec<_>>(),
        "timeline of saga {}",
        saga.id
    );
}

/// Hundreds of inserts, transitions and confirmations at once (several multi-row
/// statements' worth), all stored; two signups for one subdomain in the same burst,
/// of which exactly one gets it.
pub async fn many_changes_at_once(store: &impl SagaStore) {
    let suffix = suffix();
    let accepted: Vec<Saga> = (0..150)
        .map(|i| {
            Saga::accepted(
                Uuid::new_v4(),
                tenant(&format!("many{i}-{suffix}")),
                Utc::now(),
            )
        })
        .collect();
    let twins: Vec<Saga> = (0..2)
        .map(|_| {
            Saga::accepted(
                Uuid::new_v4(),
                tenant(&format!("twin-{suffix}")),
                Utc::now(),
            )
        })
        .collect();
    let rejection = Rejection {
        code: "invalid_email",
        message: "bad".into(),
    };
    let rejected: Vec<(Saga, ProgressEvent)> = (0..5)
        .map(|i| {
            let tenant = tenant(&format!("refused{i}-{suffix}"));
            Saga::rejected(Uuid::new_v4(), tenant, &rejection, Utc::now())
        })
        .collect();
    let inserts = join_all(
        accepted
            .iter()
            .chain(&twins)
            .map(|s| store.insert(s, &[]))
            .chain(
                rejected
                    .iter()
                    .map(|(s, e)| store.insert(s, std::slice::from_ref(e))),
            ),
    )
    .await;
    let inserts: Vec<Inserted> = inserts.into_iter().map(|r| r.expect("insert")).collect();
    assert!(inserts[..150].iter().all(|i| *i == Inserted::Stored));
    assert!(inserts[152..].iter().all(|i| *i == Inserted::Stored));
    let twin_outcomes = &inserts[150..152];
    let winner = match twin_outcomes {
        [Inserted::Stored, Inserted::SubdomainTaken(holder)] if *holder == twins[0].id => &twins[0],
        [Inserted::SubdomainTaken(holder), Inserted::Stored] if *holder == twins[1].id => &twins[1],
        other => panic!("two signups for one subdomain: {other:?}"),
    };
    assert_eq!(
        store
            .subdomain_holder(&winner.tenant.subdomain)
            .await
            .expect("holder"),
        Some(winner.id)
    );

    // Three rounds of transitions of all sagas at once; the last round shares its
    // groups with the confirmation of every event stored so far.
    let mut sagas = advance_all(store, &accepted, |_| Input::Start).await;
    sagas = advance_all(store, &sagas, completed).await;
    let stored: Vec<(Uuid, u64)> = sagas
        .iter()
        .flat_map(|s| (1..=s.sequence).map(|sequence| (s.id, sequence)))
        .collect();
    let moves: Vec<_> = sagas.iter().map(|s| transition(s, completed(s))).collect();
    let (updates, confirmations) = futures::join!(
        join_all(
            sagas
                .iter()
                .zip(&moves)
                .map(|(before, (after, events))| store.update(before, after, events))
        ),
        join_all(stored.chunks(7).map(|keys| store.mark_published(keys)))
    );
    assert!(updates
        .into_iter()
        .all(|u| u.expect("update") == Updated::Stored));
    assert!(confirmations.into_iter().all(|c| c.is_ok()));
    for (after, _) in &moves {
        assert_stored(store, after).await;
    }
    for (saga, _) in &rejected {
        assert_stored(store, saga).await;
    }
    let unpublished = store.unpublished().await.expect("unpublished");
    for (after, events) in &moves {
        let pending: Vec<u64> = unpublished
            .iter()
            .filter(|e| e.saga_id == after.id)
            .map(|e| e.sequence)
            .collect();
        assert_eq!(
            pending,
            events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            "only the last round's events are unpublished"
        );
    }
}

/// A stale transition and two rival transitions of one saga, in one burst with
/// transitions of other sagas: the stale one and one rival get `Conflict`, everything
/// else is stored, and the losers leave no trace.
pub async fn a_conflict_inside_a_group_fails_alone(store: &impl SagaStore) {
    let sagas = started_many(store, "conflict", 40).await;
    let (stale, rivals, others) = (&sagas[0], &sagas[1], &sagas[2..]);
    // The first saga moves on, so the burst's copy of it is stale.
    let (moved, events) = transition(stale, completed(stale));
    assert_eq!(
        store.update(stale, &moved, &events).await.expect("update"),
        Updated::Stored
    );

    // The stale transition and one rival come without their events, so that only
    // the sequence check can catch them (their events would collide with the others').
    let mut burst = vec![
        (
            stale.clone(),
            (transition(stale, timed_out(stale)).0, Vec::new()),
        ),
        (rivals.clone(), transition(rivals, completed(rivals))),
        (
            rivals.clone(),
            (transition(rivals, timed_out(rivals)).0, Vec::new()),
        ),
    ];
    burst.extend(
        others
            .iter()
            .map(|s| (s.clone(), transition(s, completed(s)))),
    );
    let results = join_all(
        burst
            .iter()
            .map(|(before, (after, events))| store.update(before, after, events)),
    )
    .await;
    let mut results = results.into_iter();

    assert!(
        matches!(results.next(), Some(Err(Error::Conflict(id))) if id == stale.id),
        "the stale transition loses"
    );
    assert_stored(store, &moved).await;
    let rival_outcomes = [
        results.next().expect("rival"),
        results.next().expect("rival"),
    ];
    let winner = match rival_outcomes {
        [Ok(Updated::Stored), Err(Error::Conflict(id))] if id == rivals.id => &burst[1].1,
        [Err(Error::Conflict(id)), Ok(Updated::Stored)] if id == rivals.id => &burst[2].1,
        other => panic!("two transitions of one saga from one state: {other:?}"),
    };
    assert_stored(store, &winner.0).await;
    assert_eq!(
        store.timeline(rivals.id).await.expect("timeline")[rivals.sequence as usize..],
        winner.1[..],
        "the timeline holds the winner's events"
    );
    for ((_, (after, _)), result) in burst[3..].iter().zip(results) {
        assert_eq!(result.expect("update"), Updated::Stored);
        assert_stored(store, after).await;
    }
}

/// A transition the database refuses (it re-stores an event of the saga's timeline),
/// in one burst with transitions of other sagas: it alone fails, nothing of it is
/// stored, the others are stored, and the saga moves on afterwards.
pub async fn a_refused_change_fails_alone(store: &impl SagaStore) {
    let sagas = started_many(store, "refused", 40).await;
    let first_event = store.timeline(sagas[0].id).await.expect("timeline")[0].clone();
    let mut burst: Vec<_> = sagas.iter().map(|s| transition(s, completed(s))).collect();
    burst[0].1.push(first_event);
    let results = join_all(
        sagas
            .iter()
            .zip(&burst)
            .map(|(before, (after, events))| store.update(before, after, events)),
    )
    .await;
    let mut results = results.into_iter();
    match results.next().expect("result") {
        Err(Error::Conflict(_)) | Ok(_) => panic!("the bad transition must be refused"),
        Err(_) => {}
    }
    assert_stored(store, &sagas[0]).await;
    for ((after, _), result) in burst[1..].iter().zip(results) {
        assert_eq!(result.expect("update"), Updated::Stored);
        assert_stored(store, after).await;
    }
    let (after, events) = transition(&sagas[0], completed(&sagas[0]));
    assert_eq!(
        store
            .update(&sagas[0], &after, &events)
            .await
            .expect("update"),
        Updated::Stored
    );
    assert_stored(store, &after).await;
}

/// What holds the database's write lock while both writers get ready, so that both
/// have read their sagas before either writes.
pub enum Gate {
    /// Nothing to hold (one process, one lock: the memory store).
    Open,
    /// A SQLite file: a third connection holds its write lock for a moment.
    Sqlite(String),
    /// A MariaDB database: a third connection locks the sagas' rows until both
    /// writers' UPDATEs wait for them.
    Mysql { url: String, database: String },
}

impl Gate {
    /// Takes the lock; `open` lets go of it (once the writers wait, where that can be
    /// seen).
    async fn close(&self) -> Option<sqlx::AnyConnection> {
        use sqlx::Connection;
        let (url, lock) = match self {
            Gate::Open => return None,
            Gate::Sqlite(url) => (url.clone(), "BEGIN IMMEDIATE"),
            Gate::Mysql { url, .. } => (url.clone(), "BEGIN"),
        };
        let mut conn = sqlx::AnyConnection::connect(&url)
            .await
            .expect("gate connection");
        sqlx::raw_sql(lock).execute(&mut conn).await.expect("lock");
        if let Gate::Mysql { .. } = self {
            sqlx::raw_sql("SELECT saga_id FROM sagas FOR UPDATE")
                .execute(&mut conn)
                .await
                .expect("row locks");
        }
        Some(conn)
    }

    async fn open(&self, conn: Option<sqlx::AnyConnection>) {
        let Some(mut conn) = conn else { return };
        match self {
            Gate::Open => {}
            // SQLite does not show who waits for its lock: give the writers a moment.
            Gate::Sqlite(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            Gate::Mysql { url, database } => {
                let mut watcher = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
                    .await
                    .expect("watcher");
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'UPDATE sagas%'",
                    )
                    .bind(database.as_str())
                    .fetch_one(&mut watcher)
                    .await
                    .expect("processlist");
                    if waiting >= 2 {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "both writers' UPDATEs never waited for the lock"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut conn)
            .await
            .expect("unlock");
    }
}

/// Two store instances on one database (two orchestrators on one store by mistake)
/// move the same sagas on from the same state at the same time: for every saga
/// exactly one wins and the other gets `Conflict`; the store holds the winner.
pub async fn two_writers_race(first: &impl SagaStore, second: &impl SagaStore, gate: &Gate) {
    let sagas = started_many(first, "race", 20).await;
    for saga in &sagas {
        assert_eq!(second.get(saga.id).await.expect("get").as_ref(), Some(saga));
    }
    let ours: Vec<_> = sagas.iter().map(|s| transition(s, completed(s))).collect();
    let theirs: Vec<_> = sagas.iter().map(|s| transition(s, timed_out(s))).collect();
    let lock = gate.close().await;
    let (ours_results, theirs_results, ()) = futures::join!(
        join_all(
            sagas
                .iter()
                .zip(&ours)
                .map(|(before, (after, events))| first.update(before, after, events))
        ),
        join_all(
            sagas
                .iter()
                .zip(&theirs)
                .map(|(before, (after, events))| second.update(before, after, events))
        ),
        gate.open(lock),
    );
    for (i, saga) in sagas.iter().enumerate() {
        let winner = match (&ours_results[i], &theirs_results[i]) {
            (Ok(Updated::Stored), Err(Error::Conflict(id))) if *id == saga.id => &ours[i],
            (Err(Error::Conflict(id)), Ok(Updated::Stored)) if *id == saga.id => &theirs[i],
            other => panic!(
                "saga {}: exactly one writer must win, got {other:?}",
                saga.id
            ),
        };
        assert_stored(first, &winner.0).await;
        assert_stored(second, &winner.0).await;
    }
}
