//! The SQL store's writer: one task writes every waiting change in one transaction
//! (group commit), in few statements.
//!
//! Through sqlx every statement is a round trip to the database (for SQLite, to its
//! worker thread), and those round trips, not SQLite's work, dominate a transition's
//! cost. So a group uses multi-row statements of 64, 16, 4 or 1 rows: few round trips,
//! and few distinct statement texts, which stay in sqlx's prepared-statement cache.

use std::collections::HashMap;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Error, Inserted, Updated};

/// Most changes committed together.
pub(super) const GROUP_MAX: usize = 256;

/// Row counts of the multi-row statements.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

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

/// Splits `len` rows into chunk sizes from [`CHUNKS`].
fn chunks(mut len: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while len > 0 {
        let size = CHUNKS.into_iter().find(|n| *n <= len).unwrap_or(1);
        sizes.push(size);
        len -= size;
    }
    sizes
}

fn repeat(piece: &str, n: usize, separator: &str) -> String {
    vec![piece; n].join(separator)
}

pub(super) async fn writer_loop(pool: AnyPool, mut changes: mpsc::Receiver<Change>) {
    while let Some(first) = changes.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match changes.try_recv() {
                Ok(change) => group.push(change),
                Err(_) => break,
            }
        }
        if let Err(e) = commit(&pool, &mut group).await {
            let message = format!("group commit failed: {e}");
            tracing::warn!(error = %e, changes = group.len(), "group commit failed");
            for change in group {
                match change {
                    Change::Insert { reply, .. } => {
                        let _ = reply.send(Err(Error::Corrupt(message.clone())));
                    }
                    Change::Update { reply, .. } => {
                        let _ = reply.send(Err(Error::Corrupt(message.clone())));
                    }
                    Change::Published { reply, .. } => {
                        let _ = reply.send(Err(Error::Corrupt(message.clone())));
                    }
                }
            }
        }
    }
}

/// Writes a group. Replies are sent only after the commit; on error the caller
/// answers every change with the error.
async fn commit(pool: &AnyPool, group: &mut Vec<Change>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut events: Vec<(String, i64, String)> = Vec::new();
    let mut insert_outcomes: Vec<Result<Inserted, Error>> = Vec::new();
    let mut update_outcomes: Vec<Result<Updated, Error>> = Vec::new();

    // Updates: check every expected sequence in one pass, then write the valid ones.
    let updates: Vec<(&Row_, i64, bool)> = group
        .iter()
        .filter_map(|c| match c {
            Change::Update {
                row,
                previous_sequence,
                release_claim,
                ..
            } => Some((row, *previous_sequence, *release_claim)),
            _ => None,
        })
        .collect();
    let stored = stored_sequences(
        &mut tx,
        updates.iter().map(|(row, _, _)| row.saga_id).collect(),
    )
    .await?;
    let valid: Vec<&Row_> = updates
        .iter()
        .filter(|(row, previous, _)| stored.get(&row.saga_id) == Some(previous))
        .map(|(row, _, _)| *row)
        .collect();
    write_updates(&mut tx, &valid).await?;
    for (row, previous, release) in &updates {
        if stored.get(&row.saga_id) != Some(previous) {
            update_outcomes.push(Err(Error::Conflict(row.saga_id)));
            continue;
        }
        if *release {
            sqlx::query("DELETE FROM subdomain_claims WHERE saga_id = ?")
                .bind(row.saga_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        events.extend(
            row.events
                .iter()
                .map(|(seq, e)| (row.saga_id.to_string(), *seq, e.clone())),
        );
        update_outcomes.push(Ok(Updated::Stored));
    }

    // Inserts: one by one, each may meet a duplicate id or a taken subdomain. A failed
    // statement does not abort the transaction (SQLite and InnoDB roll back the
    // statement only).
    for change in group.iter() {
        let Change::Insert { row, claim, .. } = change else {
            continue;
        };
        insert_outcomes.push(insert_one(&mut tx, row, *claim).await?);
        if matches!(insert_outcomes.last(), Some(Ok(Inserted::Stored))) {
            events.extend(
                row.events
                    .iter()
                    .map(|(seq, e)| (row.saga_id.to_string(), *seq, e.clone())),
            );
        }
    }

    insert_events(&mut tx, &events).await?;
    let published: Vec<(Uuid, u64)> = group
        .iter()
        .flat_map(|c| match c {
            Change::Published { keys, .. } => keys.clone(),
            _ => Vec::new(),
        })
        .collect();
    mark_published(&mut tx, &published).await?;
    tx.commit().await?;

    let mut inserts = insert_outcomes.into_iter();
    let mut updates = update_outcomes.into_iter();
    for change in group.drain(..) {
        match change {
            Change::Insert { reply, .. } => {
                let _ = reply.send(
                    inserts
                        .next()
                        .unwrap_or(Err(Error::Corrupt("missing outcome".into()))),
                );
            }
            Change::Update { reply, .. } => {
                let _ = reply.send(
                    updates
                        .next()
                        .unwrap_or(Err(Error::Corrupt("missing outcome".into()))),
                );
            }
            Change::Published { reply, .. } => {
                let _ = reply.send(Ok(()));
            }
        }
    }
    Ok(())
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

async fn stored_sequences(
    tx: &mut Tx<'_>,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, i64>, sqlx::Error> {
    let mut found = HashMap::with_capacity(ids.len());
    let mut rest = ids.as_slice();
    for size in chunks(ids.len()) {
        let (chunk, tail) = rest.split_at(size);
        let sql = format!(
            "SELECT saga_id, sequence FROM sagas WHERE saga_id IN ({})",
            repeat("?", size, ", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.to_string());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let id: String = row.try_get(0)?;
            let sequence: i64 = row.try_get(1)?;
            if let Ok(id) = Uuid::parse_str(&id) {
                found.insert(id, sequence);
            }
        }
        rest = tail;
    }
    Ok(found)
}

async fn write_updates(tx: &mut Tx<'_>, rows: &[&Row_]) -> Result<(), sqlx::Error> {
    let mut rest = rows;
    for size in chunks(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        let case = |column: &str| {
            format!(
                "{column} = CASE saga_id {} END",
                repeat("WHEN ? THEN ?", size, " ")
            )
        };
        let sql = format!(
            "UPDATE sagas SET {}, {}, {}, {} WHERE saga_id IN ({})",
            case("status"),
            case("sequence"),
            case("state"),
            case("updated_at"),
            repeat("?", size, ", ")
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.status);
        }
        for row in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.sequence);
        }
        for row in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.state.as_str());
        }
        for row in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.updated_at);
        }
        for row in chunk {
            query = query.bind(row.saga_id.to_string());
        }
        query.execute(&mut **tx).await?;
        rest = tail;
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn insert_one(
    tx: &mut Tx<'_>,
    row: &Row_,
    claim: bool,
) -> Result<Result<Inserted, Error>, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO sagas (saga_id, subdomain, status, sequence, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(row.saga_id.to_string())
        .bind(row.subdomain.as_str())
        .bind(row.status)
        .bind(row.sequence)
        .bind(row.state.as_str())
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&mut **tx)
        .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(Ok(Inserted::Duplicate)),
        Err(e) => return Err(e),
    }
    if !claim {
        return Ok(Ok(Inserted::Stored));
    }
    let claimed = sqlx::query("INSERT INTO subdomain_claims (subdomain, saga_id) VALUES (?, ?)")
        .bind(row.subdomain.as_str())
        .bind(row.saga_id.to_string())
        .execute(&mut **tx)
        .await;
    match claimed {
        Ok(_) => Ok(Ok(Inserted::Stored)),
        Err(e) if is_unique_violation(&e) => {
            // Taken: the saga row goes again, within this transaction.
            sqlx::query("DELETE FROM sagas WHERE saga_id = ?")
                .bind(row.saga_id.to_string())
                .execute(&mut **tx)
                .await?;
            let holder: String =
                sqlx::query("SELECT saga_id FROM subdomain_claims WHERE subdomain = ?")
                    .bind(row.subdomain.as_str())
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get(0)?;
            Ok(match Uuid::parse_str(&holder) {
                Ok(holder) => Ok(Inserted::SubdomainTaken(holder)),
                Err(e) => Err(Error::Corrupt(e.to_string())),
            })
        }
        Err(e) => Err(e),
    }
}

async fn insert_events(tx: &mut Tx<'_>, rows: &[(String, i64, String)]) -> Result<(), sqlx::Error> {
    let mut rest = rows;
    for size in chunks(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        let sql = format!(
            "INSERT INTO progress_events (saga_id, sequence, event, published) VALUES {}",
            repeat("(?, ?, ?, 0)", size, ", ")
        );
        let mut query = sqlx::query(&sql);
        for (saga_id, sequence, event) in chunk {
            query = query
                .bind(saga_id.as_str())
                .bind(*sequence)
                .bind(event.as_str());
        }
        query.execute(&mut **tx).await?;
        rest = tail;
    }
    Ok(())
}

async fn mark_published(tx: &mut Tx<'_>, keys: &[(Uuid, u64)]) -> Result<(), sqlx::Error> {
    let mut rest = keys;
    for size in chunks(keys.len()) {
        let (chunk, tail) = rest.split_at(size);
        let sql = format!(
            "UPDATE progress_events SET published = 1 WHERE {}",
            repeat("(saga_id = ? AND sequence = ?)", size, " OR ")
        );
        let mut query = sqlx::query(&sql);
        for (saga_id, sequence) in chunk {
            query = query.bind(saga_id.to_string()).bind(*sequence as i64);
        }
        query.execute(&mut **tx).await?;
        rest = tail;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_cover_the_rows_with_few_statement_shapes() {
        assert_eq!(super::chunks(0), Vec::<usize>::new());
        assert_eq!(super::chunks(1), vec![1]);
        assert_eq!(super::chunks(87), vec![64, 16, 4, 1, 1, 1]);
        assert_eq!(super::chunks(200).iter().sum::<usize>(), 200);
    }
}
