//! The group commit's statements. Multi-row statements take 64, 16, 4 or 1 rows, so a
//! group needs few round trips and only a few distinct statement texts exist, which
//! stay in sqlx's prepared-statement cache.

use sqlx::Row;
use uuid::Uuid;

use super::group_commit::Row_;
use super::{Error, Inserted};

/// Row counts of the multi-row statements.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// A transaction of the saga store.
pub(super) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// A multi-row UPDATE matched fewer sagas than it named: some stored sequence moved
/// on (or a saga was named twice). Which one the row count cannot tell.
#[derive(Debug)]
pub(super) struct Lost;

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

/// Writes transitions, each valid only while its saga's stored sequence is the given
/// previous one. The check is in the UPDATE's WHERE, so it holds against any other
/// writer of the database: of two transitions from one sequence only the first to
/// lock the row matches it. `Lost` when any row did not match; the transaction must
/// then be rolled back.
pub(super) async fn update_sagas(
    tx: &mut Tx<'_>,
    rows: &[(&Row_, i64)],
) -> Result<Result<(), Lost>, sqlx::Error> {
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
            "UPDATE sagas SET {}, {}, {}, {} WHERE saga_id IN ({}) AND {}",
            case("status"),
            case("sequence"),
            case("state"),
            case("updated_at"),
            repeat("?", size, ", "),
            case("sequence"),
        );
        let mut query = sqlx::query(&sql);
        for (row, _) in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.status);
        }
        for (row, _) in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.sequence);
        }
        for (row, _) in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.state.as_str());
        }
        for (row, _) in chunk {
            query = query.bind(row.saga_id.to_string()).bind(row.updated_at);
        }
        for (row, _) in chunk {
            query = query.bind(row.saga_id.to_string());
        }
        for (row, previous) in chunk {
            query = query.bind(row.saga_id.to_string()).bind(*previous);
        }
        // MySQL counts matched rows here, not changed ones (sqlx sets FOUND_ROWS).
        if query.execute(&mut **tx).await?.rows_affected() != size as u64 {
            return Ok(Err(Lost));
        }
        rest = tail;
    }
    Ok(Ok(()))
}

/// Writes one transition if the stored sequence is still `previous`; whether it did.
pub(super) async fn update_saga(
    tx: &mut Tx<'_>,
    row: &Row_,
    previous: i64,
) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query(
        "UPDATE sagas SET status = ?, sequence = ?, state = ?, updated_at = ? WHERE saga_id = ? AND sequence = ?",
    )
    .bind(row.status)
    .bind(row.sequence)
    .bind(row.state.as_str())
    .bind(row.updated_at)
    .bind(row.saga_id.to_string())
    .bind(previous)
    .execute(&mut **tx)
    .await?;
    Ok(changed.rows_affected() == 1)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Inserts a new saga and, with `claim`, its subdomain claim. A duplicate id or a
/// taken subdomain fails only the statement, and the saga row goes again.
pub(super) async fn insert_saga(
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

/// Gives up the subdomain claims of these sagas.
pub(super) async fn release_claims(tx: &mut Tx<'_>, sagas: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut rest = sagas;
    for size in chunks(sagas.len()) {
        let (chunk, tail) = rest.split_at(size);
        let sql = format!(
            "DELETE FROM subdomain_claims WHERE saga_id IN ({})",
            repeat("?", size, ", ")
        );
        let mut query = sqlx::query(&sql);
        for saga_id in chunk {
            query = query.bind(saga_id.to_string());
        }
        query.execute(&mut **tx).await?;
        rest = tail;
    }
    Ok(())
}

/// Stores progress events, unpublished. An event stored already fails the statement:
/// a timeline is only ever appended to.
pub(super) async fn insert_events(
    tx: &mut Tx<'_>,
    rows: &[(Uuid, i64, &str)],
) -> Result<(), sqlx::Error> {
    let mut rest = rows;
    for size in chunks(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        let sql = format!(
            "INSERT INTO progress_events (saga_id, sequence, event, published) VALUES {}",
            repeat("(?, ?, ?, 0)", size, ", ")
        );
        let mut query = sqlx::query(&sql);
        for (saga_id, sequence, event) in chunk {
            query = query.bind(saga_id.to_string()).bind(*sequence).bind(*event);
        }
        query.execute(&mut **tx).await?;
        rest = tail;
    }
    Ok(())
}

/// Marks progress events as confirmed on the stream.
pub(super) async fn mark_published(
    tx: &mut Tx<'_>,
    keys: &[(Uuid, u64)],
) -> Result<(), sqlx::Error> {
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
