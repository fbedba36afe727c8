//! The SQL store's writer: one task writes every waiting change in one transaction
//! (group commit), in few statements.
//!
//! Through sqlx every statement is a round trip to the database (for SQLite, to its
//! worker thread), and those round trips, not SQLite's work, dominate a transition's
//! cost. So a group is first written with multi-row statements (see `statements.rs`):
//! few round trips, few distinct statement texts.
//!
//! Two slower paths keep one change from deciding the fate of the others:
//! - a transition whose stored sequence moved on (a stale copy, a second writer, the
//!   same saga twice in the group) makes a multi-row UPDATE match fewer rows than it
//!   names; the group is then written again change by change, where each UPDATE says
//!   by its own row count whether it won, and the losers get `Conflict`;
//! - a change the database refuses (a statement error) aborts the group's transaction;
//!   the changes are then written one per transaction, so only the refused one gets
//!   the error and the others commit.
//!
//! A fenced store instance (one that asked for the lead) checks its fence as the
//! first statement of each transaction (`lease.rs`): one statement per group, not per
//! change. A failed check fails the whole group with `Deposed`: no change of a
//! deposed leader is stored.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::lease::{self, Fence};
use super::statements::{self, Lost};
use super::{Error, Inserted, Updated};

/// Most changes committed together.
pub(super) const GROUP_MAX: usize = 256;

/// A saga row as written.
#[derive(Debug)]
pub(super) struct Row_ {
    pub saga_id: Uuid,
    pub subdomain: String,
    pub status: &'static str,
    pub sequence: i64,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub events: Vec<(i64, String)>,
}

/// One change waiting for the group commit.
#[derive(Debug)]
pub(super) enum Change {
    /// A new saga; `claim` takes its subdomain.
    Insert {
        row: Row_,
        claim: bool,
        reply: oneshot::Sender<Result<Inserted, Error>>,
    },
    /// A transition, valid only if the stored sequence is still `previous_sequence`.
    Update {
        row: Row_,
        previous_sequence: i64,
        release_claim: bool,
        reply: oneshot::Sender<Result<Updated, Error>>,
    },
    /// Progress events confirmed on the stream.
    Published {
        keys: Vec<(Uuid, u64)>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// What a committed change came to, in the group's order.
enum Outcome {
    Inserted(Result<Inserted, Error>),
    Updated(Result<Updated, Error>),
    Published,
}

/// Why a group's transaction did not commit.
enum Failed {
    /// A multi-row UPDATE matched fewer rows than it named: write change by change.
    Lost,
    /// The database failed or refused a statement.
    Database(sqlx::Error),
    /// This instance no longer holds the lead (the fence check failed): why.
    Deposed(String),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl From<Lost> for Failed {
    fn from(_: Lost) -> Self {
        Self::Lost
    }
}

/// How a transaction checks the transitions' sequences.
#[derive(Clone, Copy)]
enum Checks {
    /// Multi-row statements; any lost check fails the whole transaction.
    Batched,
    /// One statement per change, in arrival order; a lost check is that change's
    /// `Conflict`.
    OneByOne,
}

pub(super) async fn writer_loop(pool: AnyPool, mut changes: mpsc::Receiver<Change>, fence: Fence) {
    while let Some(first) = changes.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match changes.try_recv() {
                Ok(change) => group.push(change),
                Err(_) => break,
            }
        }
        write(&pool, &fence, group).await;
    }
}

/// Writes a group and answers every change.
async fn write(pool: &AnyPool, fence: &Fence, group: Vec<Change>) {
    let failed = match commit(pool, fence, &group, Checks::Batched).await {
        Ok(outcomes) => return answer(group, outcomes),
        Err(Failed::Lost) => match commit_one_by_one(pool, fence, &group).await {
            Ok(outcomes) => return answer(group, outcomes),
            Err(failed) => failed,
        },
        Err(failed) => failed,
    };
    let e = match failed {
        Failed::Deposed(reason) => return depose_all(group, &reason),
        Failed::Database(e) => e,
        Failed::Lost => lost_one_by_one(),
    };
    if group.len() == 1 || !refused(&e) {
        tracing::warn!(error = %e, changes = group.len(), "group commit failed");
        return fail_all(group, e);
    }
    tracing::warn!(error = %e, changes = group.len(), "group commit refused, writing its changes one at a time");
    let mut changes = group.into_iter();
    while let Some(change) = changes.next() {
        let alone = vec![change];
        match commit_one_by_one(pool, fence, &alone).await {
            Ok(outcomes) => answer(alone, outcomes),
            Err(Failed::Database(e)) if refused(&e) => {
                tracing::warn!(error = %e, "change refused by the saga store");
                fail_all(alone, e);
            }
            Err(Failed::Deposed(reason)) => {
                // Deposed meanwhile: the rest would fail the same check.
                return depose_all(alone.into_iter().chain(changes.by_ref()).collect(), &reason);
            }
            Err(Failed::Database(e)) => {
                // The database is gone: the rest would only wait for it in turn.
                tracing::warn!(error = %e, "group commit failed");
                fail_all(alone.into_iter().chain(changes.by_ref()).collect(), e);
            }
            Err(Failed::Lost) => fail_all(alone, lost_one_by_one()),
        }
    }
}

/// [`commit`] change by change, where a lost sequence check is that change's conflict.
async fn commit_one_by_one(
    pool: &AnyPool,
    fence: &Fence,
    group: &[Change],
) -> Result<Vec<Outcome>, Failed> {
    commit(pool, fence, group, Checks::OneByOne).await
}

/// Only multi-row statements lose checks, and none run change by change.
fn lost_one_by_one() -> sqlx::Error {
    sqlx::Error::Protocol("a sequence check was lost writing change by change".into())
}

/// Answers every change of a deposed leader's group with `Deposed`.
fn depose_all(group: Vec<Change>, reason: &str) {
    tracing::warn!(
        reason,
        changes = group.len(),
        "saga store writes refused: this instance does not lead"
    );
    for change in group {
        fail(change, Error::Deposed(reason.to_string()));
    }
}

/// Whether the database answered and refused a statement (one change may be the
/// cause), rather than being unreachable (every change would fail alike).
fn refused(e: &sqlx::Error) -> bool {
    !matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

fn answer(group: Vec<Change>, outcomes: Vec<Outcome>) {
    for (change, outcome) in group.into_iter().zip(outcomes) {
        match (change, outcome) {
            (Change::Insert { reply, .. }, Outcome::Inserted(result)) => {
                let _ = reply.send(result);
            }
            (Change::Update { reply, .. }, Outcome::Updated(result)) => {
                let _ = reply.send(result);
            }
            (Change::Published { reply, .. }, Outcome::Published) => {
                let _ = reply.send(Ok(()));
            }
            (change, _) => fail(change, Error::Corrupt("group commit lost its order".into())),
        }
    }
}

/// Answers every change with the failure: a change alone gets the error itself, the
/// changes of a group its text (an error cannot be cloned).
fn fail_all(mut group: Vec<Change>, e: sqlx::Error) {
    if group.len() == 1 {
        if let Some(change) = group.pop() {
            fail(change, Error::Database(e));
        }
        return;
    }
    let message = format!("group commit failed: {e}");
    for change in group {
        fail(change, Error::Unavailable(message.clone()));
    }
}

fn fail(change: Change, error: Error) {
    match change {
        Change::Insert { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Change::Update { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Change::Published { reply, .. } => {
            let _ = reply.send(Err(error));
        }
    }
}

/// Writes `group` in one transaction; the outcomes come in the group's order and
/// hold only once the transaction committed.
async fn commit(
    pool: &AnyPool,
    fence: &Fence,
    group: &[Change],
    checks: Checks,
) -> Result<Vec<Outcome>, Failed> {
    let mut tx = pool.begin().await?;
    // First, so that on InnoDB the lease row is locked before any saga row (every
    // fenced transaction takes them in that order) and a takeover waits for this one.
    lease::sql::check(&mut tx, fence)
        .await?
        .map_err(Failed::Deposed)?;
    if let Checks::Batched = checks {
        // Transitions first, every sequence checked by the UPDATE itself: all win, or
        // the group is written again one by one.
        let rows: Vec<(&Row_, i64)> = group
            .iter()
            .filter_map(|c| match c {
                Change::Update {
                    row,
                    previous_sequence,
                    ..
                } => Some((row, *previous_sequence)),
                _ => None,
            })
            .collect();
        statements::update_sagas(&mut tx, &rows).await??;
    }
    let mut outcomes = Vec::with_capacity(group.len());
    let mut events: Vec<(Uuid, i64, &str)> = Vec::new();
    let mut released: Vec<Uuid> = Vec::new();
    let mut published: Vec<(Uuid, u64)> = Vec::new();
    for change in group {
        let (row, outcome) = match change {
            // Inserts one by one: each may meet a duplicate id or a taken subdomain,
            // which fails only its statement (SQLite and InnoDB roll back the
            // statement, not the transaction).
            Change::Insert { row, claim, .. } => {
                let inserted = statements::insert_saga(&mut tx, row, *claim).await?;
                let stored = matches!(inserted, Ok(Inserted::Stored));
                (stored.then_some(row), Outcome::Inserted(inserted))
            }
            Change::Update {
                row,
                previous_sequence,
                release_claim,
                ..
            } => {
                let won = match checks {
                    Checks::Batched => true,
                    Checks::OneByOne => {
                        statements::update_saga(&mut tx, row, *previous_sequence).await?
                    }
                };
                if !won {
                    outcomes.push(Outcome::Updated(Err(Error::Conflict(row.saga_id))));
                    continue;
                }
                if *release_claim {
                    released.push(row.saga_id);
                }
                (Some(row), Outcome::Updated(Ok(Updated::Stored)))
            }
            Change::Published { keys, .. } => {
                published.extend_from_slice(keys);
                (None, Outcome::Published)
            }
        };
        if let Some(row) = row {
            events.extend(
                row.events
                    .iter()
                    .map(|(sequence, event)| (row.saga_id, *sequence, event.as_str())),
            );
        }
        outcomes.push(outcome);
    }
    statements::release_claims(&mut tx, &released).await?;
    statements::insert_events(&mut tx, &events).await?;
    statements::mark_published(&mut tx, &published).await?;
    tx.commit().await?;
    Ok(outcomes)
}
