//! The embedded SQLite store's writer: one OS thread with a connection of its own
//! writes every waiting change in one transaction (group commit).
//!
//! Through sqlx every statement is a hop to its SQLite worker thread and back, and a
//! group took about fifteen of them; those hops, not SQLite's work, were most of a
//! group's time besides the commit's fsync. Here the whole group is one hop: the
//! thread runs its statements as plain calls, so each change gets statements of its
//! own (cached, prepared once) and its own answer, with no multi-row statements and
//! no slower fallback paths:
//! - a transition whose stored sequence moved on matches no row: that change alone
//!   gets `Conflict`, and nothing of it is written;
//! - a change the database refuses (it re-stores an event) is undone to its savepoint:
//!   that change alone gets `Refused`, and the others commit;
//! - anything else (disk full, I/O error, the file locked past the busy timeout) fails
//!   the whole group, and every change gets the error.
//!
//! A fenced store instance (one that asked for the lead) checks its fence as the
//! first statement of each group's transaction, as the MySQL writer does (`lease.rs`):
//! a failed check fails the whole group with `Deposed`.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{params, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::group_commit::{Change, Row_, GROUP_MAX};
use super::lease::{self, Fence, Fencing};
use super::{Error, Inserted, Updated};

/// How long a write waits for the file's lock (another process, the rare replay that
/// takes a subdomain back through the read pool) before the group fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the writer's connection and starts its thread, which ends when every sender
/// of `changes` is gone.
pub(super) fn spawn(
    path: PathBuf,
    mut changes: mpsc::Receiver<Change>,
    fence: Fence,
) -> Result<(), Error> {
    let conn =
        open(&path).map_err(|e| Error::Unavailable(format!("opening {}: {e}", path.display())))?;
    std::thread::Builder::new()
        .name("saga-store-writer".into())
        .spawn(move || {
            let mut conn = conn;
            let mut synced = Synced::Full;
            while let Some(first) = changes.blocking_recv() {
                let mut group = vec![first];
                while group.len() < GROUP_MAX {
                    match changes.try_recv() {
                        Ok(change) => group.push(change),
                        Err(_) => break,
                    }
                }
                synced = write_group(&mut conn, &fence, synced, group);
            }
        })
        .map_err(|e| Error::Unavailable(format!("starting the store writer: {e}")))?;
    Ok(())
}

/// Writes `group` at the sync level it needs (the connection is at `synced`); returns
/// the level the connection is at now.
fn write_group(
    conn: &mut rusqlite::Connection,
    fence: &Fence,
    synced: Synced,
    group: Vec<Change>,
) -> Synced {
    let needed = Synced::needed_by(&group);
    if needed != synced {
        if let Err(e) = needed.set(conn) {
            // Not written at a level it does not allow; set again before the next group.
            fail(group, format!("setting the commit's sync level: {e}"));
            return Synced::Unknown;
        }
    }
    write(conn, fence, group);
    needed
}

/// How the writer's connection syncs its commits, set per group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Synced {
    /// `synchronous=FULL`: the commit is on disk before any change of it is answered.
    /// Every group holding an insert or a transition.
    Full,
    /// `synchronous=NORMAL` (in WAL mode: no fsync at the commit, the next synced
    /// commit or checkpoint takes its pages along): a group of publish confirmations
    /// only. Losing one to a power cut loses no transition: the outbox publishes the
    /// event again and JetStream drops the copy (its message id), or a reader skips
    /// a sequence it has.
    Confirmations,
    /// A switch failed: set it again before the next group.
    Unknown,
}

impl Synced {
    /// The level `group` needs.
    fn needed_by(group: &[Change]) -> Self {
        if group.iter().all(|c| matches!(c, Change::Published { .. })) {
            Self::Confirmations
        } else {
            Self::Full
        }
    }

    fn set(self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        let level = match self {
            Self::Full | Self::Unknown => "FULL",
            Self::Confirmations => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", level)
    }
}

fn open(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The same settings as the read pool's: `synchronous` is the connection's own.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// What one change came to, or why the database refused it.
enum Outcome {
    Inserted(Inserted),
    Updated(Result<Updated, Error>),
    Published,
}

/// Writes a group in one transaction and answers every change.
fn write(conn: &mut rusqlite::Connection, fence: &Fence, group: Vec<Change>) {
    match commit(conn, fence, &group) {
        Ok(Err(reason)) => {
            tracing::warn!(
                %reason,
                changes = group.len(),
                "saga store writes refused: this instance does not lead"
            );
            for change in group {
                answer(change, Err(Error::Deposed(reason.clone())));
            }
        }
        Ok(Ok(outcomes)) => {
            for (change, outcome) in group.into_iter().zip(outcomes) {
                answer(change, outcome);
            }
        }
        Err(e) => fail(group, format!("group commit failed: {e}")),
    }
}

/// Answers every change of a group that was not written with why.
fn fail(group: Vec<Change>, message: String) {
    tracing::warn!(error = %message, changes = group.len(), "group not written");
    for change in group {
        answer(change, Err(Error::Unavailable(message.clone())));
    }
}

/// Writes `group` in one transaction: every change's outcome, or why this instance
/// may not write (deposed: nothing is committed).
fn commit(
    conn: &mut rusqlite::Connection,
    fence: &Fence,
    group: &[Change],
) -> rusqlite::Result<Result<Vec<Result<Outcome, Error>>, String>> {
    // IMMEDIATE: the write lock is taken (or waited for) here, never halfway through,
    // so a takeover by another instance is ordered before or after this whole group.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Err(reason) = check_fence(&tx, fence)? {
        return Ok(Err(reason));
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for change in group {
        let savepoint = tx.savepoint()?;
        match apply(&savepoint, change) {
            Ok(outcome) => {
                savepoint.commit()?;
                outcomes.push(Ok(outcome));
            }
            Err(e) if refused(&e) => {
                // Dropping the savepoint rolls this change back, and only this one.
                drop(savepoint);
                tracing::warn!(error = %e, "change refused by the saga store");
                outcomes.push(Err(Error::Refused(e.to_string())));
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit()?;
    Ok(Ok(outcomes))
}

/// The fence check of `lease::sql::check`, on this connection: `Err(reason)` when
/// another instance took the lead (or this one never had it). A read: the group's
/// transaction is IMMEDIATE, so it holds the file's write lock already, and a takeover
/// (a write) is ordered before or after the whole group. Unlike an UPDATE it leaves
/// the lease's page clean, one page less in every commit.
fn check_fence(conn: &rusqlite::Connection, fence: &Fence) -> rusqlite::Result<Result<(), String>> {
    let fencing = fence.get();
    let (holder, number) = match &fencing {
        Fencing::Off => return Ok(Ok(())),
        Fencing::Lost { reason } => return Ok(Err(reason.clone())),
        Fencing::Held { holder, fence } => (holder.as_str(), *fence),
    };
    let (now_holder, now_fence): (String, i64) = conn
        .prepare_cached("SELECT holder, fence FROM orchestrator_lease WHERE name = 'driver'")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if now_holder == holder && now_fence == number as i64 {
        return Ok(Ok(()));
    }
    let reason = lease::superseded(holder, number, &now_holder, now_fence as u64);
    // The fence only grows: this lead never comes back.
    fence.lose(&fencing, reason.clone());
    Ok(Err(reason))
}

/// A constraint the change breaks (an event stored twice): this change's fault, not
/// the database's, so the others still commit.
fn refused(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

fn is_constraint(result: &rusqlite::Result<usize>) -> bool {
    matches!(result, Err(e) if refused(e))
}

fn apply(conn: &rusqlite::Connection, change: &Change) -> rusqlite::Result<Outcome> {
    match change {
        Change::Insert { row, claim, .. } => insert(conn, row, *claim).map(Outcome::Inserted),
        Change::Update {
            row,
            previous_sequence,
            release_claim,
            ..
        } => {
            // The sequence check is the UPDATE's own WHERE: it holds against any other
            // writer of the file, this process's or not.
            let changed = conn
                .prepare_cached(
                    "UPDATE sagas SET status = ?, sequence = ?, state = ?, updated_at = ? WHERE saga_id = ? AND sequence = ?",
                )?
                .execute(params![
                    row.status,
                    row.sequence,
                    row.state,
                    row.updated_at,
                    row.saga_id.to_string(),
                    previous_sequence
                ])?;
            if changed != 1 {
                return Ok(Outcome::Updated(Err(Error::Conflict(row.saga_id))));
            }
            if *release_claim {
                conn.prepare_cached("DELETE FROM subdomain_claims WHERE saga_id = ?")?
                    .execute([row.saga_id.to_string()])?;
            }
            insert_events(conn, row)?;
            Ok(Outcome::Updated(Ok(Updated::Stored)))
        }
        Change::Published { keys, .. } => {
            let mut statement = conn.prepare_cached(
                "UPDATE progress_events SET published = 1 WHERE saga_id = ? AND sequence = ?",
            )?;
            for (saga_id, sequence) in keys {
                statement.execute(params![saga_id.to_string(), *sequence as i64])?;
            }
            Ok(Outcome::Published)
        }
    }
}

/// A new saga; a duplicate id or a taken subdomain leaves nothing of it behind.
fn insert(conn: &rusqlite::Connection, row: &Row_, claim: bool) -> rusqlite::Result<Inserted> {
    let saga_id = row.saga_id.to_string();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sagas (saga_id, subdomain, status, sequence, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            saga_id,
            row.subdomain,
            row.status,
            row.sequence,
            row.state,
            row.created_at,
            row.updated_at
        ]);
    if is_constraint(&inserted) {
        return Ok(Inserted::Duplicate);
    }
    inserted?;
    if claim {
        let claimed = conn
            .prepare_cached("INSERT INTO subdomain_claims (subdomain, saga_id) VALUES (?, ?)")?
            .execute(params![row.subdomain, saga_id]);
        if is_constraint(&claimed) {
            conn.prepare_cached("DELETE FROM sagas WHERE saga_id = ?")?
                .execute([&saga_id])?;
            let holder: Option<String> = conn
                .prepare_cached("SELECT saga_id FROM subdomain_claims WHERE subdomain = ?")?
                .query_row([&row.subdomain], |r| r.get(0))
                .optional()?;
            return match holder.as_deref().map(Uuid::parse_str) {
                Some(Ok(holder)) => Ok(Inserted::SubdomainTaken(holder)),
                _ => Err(rusqlite::Error::QueryReturnedNoRows),
            };
        }
        claimed?;
    }
    insert_events(conn, row)?;
    Ok(Inserted::Stored)
}

/// Stores the change's progress events, unpublished. One stored already breaks the
/// primary key: a timeline is only ever appended to.
fn insert_events(conn: &rusqlite::Connection, row: &Row_) -> rusqlite::Result<()> {
    if row.events.is_empty() {
        return Ok(());
    }
    let mut statement = conn.prepare_cached(
        "INSERT INTO progress_events (saga_id, sequence, event, published) VALUES (?, ?, ?, 0)",
    )?;
    let saga_id = row.saga_id.to_string();
    for (sequence, event) in &row.events {
        statement.execute(params![saga_id, sequence, event])?;
    }
    Ok(())
}

fn answer(change: Change, outcome: Result<Outcome, Error>) {
    match (change, outcome) {
        (Change::Insert { reply, .. }, Ok(Outcome::Inserted(inserted))) => {
            let _ = reply.send(Ok(inserted));
        }
        (Change::Update { reply, .. }, Ok(Outcome::Updated(updated))) => {
            let _ = reply.send(updated);
        }
        (Change::Published { reply, .. }, Ok(Outcome::Published)) => {
            let _ = reply.send(Ok(()));
        }
        (Change::Insert { reply, .. }, Err(e)) => {
            let _ = reply.send(Err(e));
        }
        (Change::Update { reply, .. }, Err(e)) => {
            let _ = reply.send(Err(e));
        }
        (Change::Published { reply, .. }, Err(e)) => {
            let _ = reply.send(Err(e));
        }
        (change, Ok(_)) => answer(
            change,
            Err(Error::Corrupt("the store writer lost its order".into())),
        ),
    }
}

#[cfg(test)]
mod tests {
    /// The connection that commits is the one whose `synchronous` matters (it is a
    /// per-connection setting): FULL (2) syncs the WAL at every commit, so a
    /// transition acked to its input survives a power loss; NORMAL (1) would not. It
    /// opens at FULL (only a group of confirmations alone is written at NORMAL).
    #[test]
    fn the_writer_syncs_every_transition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = super::open(&dir.path().join("store.db")).expect("writer connection");
        let level: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("pragma");
        assert_eq!(level, 2, "synchronous=FULL on the writer's connection");
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("pragma");
        assert_eq!(journal, "wal");
    }

    fn level(conn: &rusqlite::Connection) -> i64 {
        conn.pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("pragma")
    }

    /// Only a group of publish confirmations commits without an fsync; the next
    /// transition is synced again, and its answer comes after its commit.
    #[test]
    fn confirmations_alone_skip_the_fsync_transitions_never() {
        use super::super::group_commit::{Change, Row_};
        use super::{write_group, Synced};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = super::open(&dir.path().join("store.db")).expect("writer connection");
        conn.execute_batch(
            "CREATE TABLE sagas (saga_id TEXT PRIMARY KEY, subdomain TEXT, status TEXT, sequence INTEGER, state TEXT, created_at INTEGER, updated_at INTEGER);
             CREATE TABLE progress_events (saga_id TEXT, sequence INTEGER, event TEXT, published INTEGER, PRIMARY KEY (saga_id, sequence));",
        )
        .expect("tables");
        let fence = super::Fence::default();
        let saga_id = uuid::Uuid::new_v4();
        let row = || Row_ {
            saga_id,
            subdomain: "acme".into(),
            status: "accepted",
            sequence: 1,
            state: "{}".into(),
            created_at: 0,
            updated_at: 0,
            events: vec![(1, "{}".into())],
        };

        let (reply, inserted) = tokio::sync::oneshot::channel();
        let group = vec![Change::Insert {
            row: row(),
            claim: false,
            reply,
        }];
        let synced = write_group(&mut conn, &fence, Synced::Full, group);
        assert!(matches!(inserted.blocking_recv(), Ok(Ok(_))));
        assert_eq!(level(&conn), 2, "a new saga is committed with FULL");

        let (reply, confirmed) = tokio::sync::oneshot::channel();
        let group = vec![Change::Published {
            keys: vec![(saga_id, 1)],
            reply,
        }];
        let synced = write_group(&mut conn, &fence, synced, group);
        assert!(matches!(confirmed.blocking_recv(), Ok(Ok(()))));
        assert_eq!(level(&conn), 1, "confirmations alone: NORMAL, no fsync");
        let published: i64 = conn
            .query_row("SELECT published FROM progress_events", [], |r| r.get(0))
            .expect("event");
        assert_eq!(published, 1);

        // A transition with a confirmation in the same group: FULL again.
        let (reply, updated) = tokio::sync::oneshot::channel();
        let (confirm, _) = tokio::sync::oneshot::channel();
        let mut next = row();
        next.sequence = 2;
        next.events = vec![(2, "{}".into())];
        let group = vec![
            Change::Published {
                keys: vec![(saga_id, 1)],
                reply: confirm,
            },
            Change::Update {
                row: next,
                previous_sequence: 1,
                release_claim: false,
                reply,
            },
        ];
        write_group(&mut conn, &fence, synced, group);
        assert!(matches!(updated.blocking_recv(), Ok(Ok(_))));
        assert_eq!(level(&conn), 2, "a transition is committed with FULL");
    }
}
