//! [`SagaStore`] over SQLite (embedded, the default) or MySQL/MariaDB (shared), through
//! sqlx's `Any` driver. Only portable SQL and types (`VARCHAR`, `BIGINT`, `TEXT`) are
//! used, so one implementation serves both; the DDL differs only in the text type.

use std::str::FromStr;
use std::time::Duration;

use contracts::{ProgressEvent, SagaStatus};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Row};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::group_commit::{self, Change, Row_};
use super::lease::{self, Fence, Fencing, LeaseInfo};
use super::listing;
use super::sql_schema::{ddl, sqlite_url};
use super::{
    check_advances, mysql_database, pool, sqlite_writer, standbys, ClaimChange, Error, Inserted,
    ListQuery, PoolFigures, PoolSetting, SagaStore, Standby, StandbyState, Updated,
};
use crate::saga::Saga;

/// Saga store over a SQL database.
///
/// Transitions are written by one writer task with group commit: whatever transitions
/// are waiting when a commit ends go into the next transaction together, so a busy
/// orchestrator pays one commit for many sagas (SQLite has a single writer anyway).
///
/// Clones share the writer and the fencing: they are one store instance.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    writer: mpsc::Sender<Change>,
    mysql: bool,
    fence: Fence,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Corrupt(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(e.to_string()))
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path` or `mysql://...`) and creates the tables if
    /// they are missing. A SQLite file and its folder are created when absent, and so
    /// is a MariaDB database (when the account may create it; otherwise the error
    /// says what to run).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let (url, sqlite_path) = if sqlite {
            sqlite_url(url)?
        } else {
            (url.to_string(), Default::default())
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = if sqlite {
            AnyPoolOptions::new()
                // Reads (and the rare replay that takes a subdomain back): the writer
                // has its own connection, and WAL lets these read meanwhile.
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        for pragma in [
                            "PRAGMA journal_mode=WAL",
                            // FULL: a commit is on disk before the writer answers. With
                            // NORMAL a power loss may undo transactions whose inputs
                            // were acked already (ARCHITECTURE.md, group commit).
                            "PRAGMA synchronous=FULL",
                            "PRAGMA busy_timeout=5000",
                        ] {
                            sqlx::Executor::execute(&mut *conn, pragma).await?;
                        }
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?
        } else {
            mysql_database::connect(options).await?
        };
        for statement in ddl(!sqlite) {
            sqlx::query(&statement).execute(&pool).await?;
        }
        standbys::sql::migrate(&pool).await?;
        let fence = Fence::default();
        let (writer, changes) = mpsc::channel(4 * group_commit::GROUP_MAX);
        if sqlite {
            // A connection and thread of its own: a whole group in one hop.
            sqlite_writer::spawn(sqlite_path, changes, fence.clone())?;
        } else {
            tokio::spawn(group_commit::writer_loop(
                pool.clone(),
                changes,
                fence.clone(),
            ));
        }
        Ok(Self {
            pool,
            writer,
            mysql: !sqlite,
            fence,
        })
    }

    /// A transition that takes the subdomain back (replay of a rolled-back saga).
    async fn update_with_claim(
        &self,
        previous: &Saga,
        saga: &Saga,
        events: &[ProgressEvent],
    ) -> Result<Updated, Error> {
        let mut tx = self.pool.begin().await?;
        if let Err(reason) = lease::sql::check(&mut tx, &self.fence).await? {
            tx.rollback().await?;
            return Err(Error::Deposed(reason));
        }
        let changed = sqlx::query(
            "UPDATE sagas SET status = ?, sequence = ?, state = ?, updated_at = ? WHERE saga_id = ? AND sequence = ?",
        )
        .bind(saga.status.as_str())
        .bind(saga.sequence as i64)
        .bind(encode(saga)?)
        .bind(millis(saga.updated_at))
        .bind(saga.id.to_string())
        .bind(previous.sequence as i64)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(Error::Conflict(saga.id));
        }
        if let Some(holder) = claim(&mut tx, saga).await? {
            tx.rollback().await?;
            return Ok(Updated::SubdomainTaken(holder));
        }
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(Updated::Stored)
    }

    async fn submit<T>(
        &self,
        change: Change,
        outcome: oneshot::Receiver<Result<T, Error>>,
    ) -> Result<T, Error> {
        self.writer
            .send(change)
            .await
            .map_err(|_| writer_stopped())?;
        outcome.await.map_err(|_| writer_stopped())?
    }

    /// Which backend and durability setting this store runs with, for reports.
    pub fn describe(&self) -> String {
        match self.pool.connect_options().database_url.scheme() {
            "sqlite" => "sqlite (WAL, synchronous=FULL)".into(),
            other => format!("{other} (InnoDB defaults)"),
        }
    }
}

fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    events: &[ProgressEvent],
) -> Result<(), Error> {
    for event in events {
        sqlx::query(
            "INSERT INTO progress_events (saga_id, sequence, event, published) VALUES (?, ?, ?, 0)",
        )
        .bind(event.saga_id.to_string())
        .bind(event.sequence as i64)
        .bind(encode(event)?)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn claim(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    saga: &Saga,
) -> Result<Option<Uuid>, Error> {
    let result = sqlx::query("INSERT INTO subdomain_claims (subdomain, saga_id) VALUES (?, ?)")
        .bind(&saga.tenant.subdomain)
        .bind(saga.id.to_string())
        .execute(&mut **tx)
        .await;
    match result {
        Ok(_) => Ok(None),
        Err(e) if is_unique_violation(&e) => {
            let holder: String =
                sqlx::query("SELECT saga_id FROM subdomain_claims WHERE subdomain = ?")
                    .bind(&saga.tenant.subdomain)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get(0)?;
            let holder = Uuid::parse_str(&holder).map_err(|e| Error::Corrupt(e.to_string()))?;
            Ok(Some(holder))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads a text column. Through the `Any` driver MySQL reports `TEXT` columns as
/// `BLOB`, so bytes are accepted too.
pub(super) fn text_column(row: &sqlx::any::AnyRow, name: &str) -> Result<String, Error> {
    match row.try_get::<String, _>(name) {
        Ok(text) => Ok(text),
        Err(_) => {
            let bytes: Vec<u8> = row.try_get(name)?;
            String::from_utf8(bytes).map_err(|e| Error::Corrupt(e.to_string()))
        }
    }
}

fn row_of(saga: &Saga, events: &[ProgressEvent]) -> Result<Row_, Error> {
    Ok(Row_ {
        saga_id: saga.id,
        subdomain: saga.tenant.subdomain.clone(),
        status: saga.status.as_str(),
        sequence: saga.sequence as i64,
        state: encode(saga)?,
        created_at: millis(saga.created_at),
        updated_at: millis(saga.updated_at),
        events: events
            .iter()
            .map(|e| Ok((e.sequence as i64, encode(e)?)))
            .collect::<Result<_, Error>>()?,
    })
}

fn writer_stopped() -> Error {
    Error::Unavailable("the store writer stopped".into())
}

fn saga_from_row(row: &sqlx::any::AnyRow) -> Result<Saga, Error> {
    decode(&text_column(row, "state")?)
}

impl SagaStore for SqlStore {
    async fn insert(&self, saga: &Saga, events: &[ProgressEvent]) -> Result<Inserted, Error> {
        let (reply, outcome) = oneshot::channel();
        let change = Change::Insert {
            row: row_of(saga, events)?,
            claim: saga.status != SagaStatus::Rejected,
            reply,
        };
        self.submit(change, outcome).await
    }

    async fn update(
        &self,
        previous: &Saga,
        saga: &Saga,
        events: &[ProgressEvent],
    ) -> Result<Updated, Error> {
        check_advances(previous, saga)?;
        let claim = ClaimChange::of(previous, saga);
        if claim == ClaimChange::Reclaim {
            // Taking the subdomain back may fail: its own transaction.
            return self.update_with_claim(previous, saga, events).await;
        }
        let (reply, outcome) = oneshot::channel();
        let release_claim = claim == ClaimChange::Release;
        let change = Change::Update {
            row: row_of(saga, events)?,
            previous_sequence: previous.sequence as i64,
            release_claim,
            reply,
        };
        self.submit(change, outcome).await
    }

    async fn get(&self, id: Uuid) -> Result<Option<Saga>, Error> {
        let row = sqlx::query("SELECT state FROM sagas WHERE saga_id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(saga_from_row).transpose()
    }

    async fn list_page(&self, query: &ListQuery) -> Result<Vec<Saga>, Error> {
        let rows = listing::page(&self.pool, query).await?;
        rows.iter().map(saga_from_row).collect()
    }

    async fn timeline(&self, id: Uuid) -> Result<Vec<ProgressEvent>, Error> {
        let rows =
            sqlx::query("SELECT event FROM progress_events WHERE saga_id = ? ORDER BY sequence")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| decode(&text_column(row, "event")?))
            .collect()
    }

    async fn in_flight(&self) -> Result<Vec<Saga>, Error> {
        let rows = sqlx::query("SELECT state FROM sagas WHERE status IN ('accepted', 'running', 'compensating') ORDER BY created_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(saga_from_row).collect()
    }

    async fn unpublished(&self) -> Result<Vec<ProgressEvent>, Error> {
        let rows = sqlx::query(
            "SELECT event FROM progress_events WHERE published = 0 ORDER BY saga_id, sequence",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| decode(&text_column(row, "event")?))
            .collect()
    }

    async fn mark_published(&self, events: &[(Uuid, u64)]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        let (reply, outcome) = oneshot::channel();
        self.submit(
            Change::Published {
                keys: events.to_vec(),
                reply,
            },
            outcome,
        )
        .await
    }

    async fn subdomain_holder(&self, subdomain: &str) -> Result<Option<Uuid>, Error> {
        let row = sqlx::query("SELECT saga_id FROM subdomain_claims WHERE subdomain = ?")
            .bind(subdomain)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let id: String = r.try_get(0)?;
            Uuid::parse_str(&id).map_err(|e| Error::Corrupt(e.to_string()))
        })
        .transpose()
    }

    async fn try_lead(&self, holder: &str, ttl: Duration) -> Result<Option<u64>, Error> {
        lease::check_holder(holder)?;
        self.fence.arm();
        let taken = lease::sql::acquire(&self.pool, self.mysql, holder, ttl).await?;
        Ok(match taken {
            Ok(fence) => {
                self.fence.set(Fencing::Held {
                    holder: holder.to_string(),
                    fence,
                });
                Some(fence)
            }
            Err(reason) => {
                self.fence.set(Fencing::Lost { reason });
                None
            }
        })
    }

    async fn renew_lead(&self, holder: &str, fence: u64, ttl: Duration) -> Result<bool, Error> {
        let renewed = lease::sql::renew(&self.pool, self.mysql, holder, fence, ttl).await?;
        if !renewed {
            let reason = format!("{holder} no longer leads at fence {fence}");
            self.fence.lose_held(holder, fence, reason);
        }
        Ok(renewed)
    }

    async fn resign(&self, holder: &str, fence: u64) -> Result<(), Error> {
        // Refused here first: no write of this instance starts after the resignation.
        self.fence.set(Fencing::Lost {
            reason: format!("{holder} resigned the lead at fence {fence}"),
        });
        lease::sql::resign(&self.pool, self.mysql, holder, fence).await?;
        Ok(())
    }

    async fn leader(&self) -> Result<Option<LeaseInfo>, Error> {
        Ok(lease::sql::leader(&self.pool, self.mysql).await?)
    }

    async fn add_standby(&self, standby: &Standby) -> Result<(), Error> {
        standbys::sql::add(&self.pool, &self.fence, standby).await
    }

    async fn standby_ready(
        &self,
        id: Uuid,
        db_name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, Error> {
        standbys::sql::ready(&self.pool, &self.fence, id, db_name, now).await
    }

    async fn claim_standby(
        &self,
        signup: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Standby>, Error> {
        standbys::sql::claim(&self.pool, &self.fence, signup, now).await
    }

    async fn release_standby(&self, id: Uuid, signup: Uuid) -> Result<bool, Error> {
        standbys::sql::release(&self.pool, &self.fence, id, signup).await
    }

    async fn discard_standby(&self, id: Uuid, from: StandbyState) -> Result<bool, Error> {
        standbys::sql::discarding(&self.pool, &self.fence, id, from).await
    }

    async fn standby_gone(&self, id: Uuid) -> Result<bool, Error> {
        standbys::sql::gone(&self.pool, &self.fence, id).await
    }

    async fn standbys(&self, state: Option<StandbyState>) -> Result<Vec<Standby>, Error> {
        standbys::sql::list(&self.pool, state).await
    }

    async fn standby(&self, id: Uuid) -> Result<Option<Standby>, Error> {
        standbys::sql::get(&self.pool, id).await
    }

    async fn pool_setting(&self) -> Result<Option<PoolSetting>, Error> {
        pool::sql::setting(&self.pool).await
    }

    async fn set_pool_setting(&self, setting: &PoolSetting) -> Result<(), Error> {
        pool::sql::set(&self.pool, &self.fence, setting).await
    }

    async fn standby_missed(
        &self,
        signup: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        pool::sql::missed(&self.pool, &self.fence, signup, now).await
    }

    async fn pool_figures(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<PoolFigures, Error> {
        pool::sql::figures(&self.pool, since).await
    }
}

#[cfg(test)]
mod tests {
    /// The store says how durable it is (the writer's own test checks the setting).
    #[tokio::test]
    async fn the_sqlite_store_reports_its_durability() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/store.db", dir.path().display());
        let store = super::SqlStore::connect(&url).await.expect("sqlite store");
        assert_eq!(store.describe(), "sqlite (WAL, synchronous=FULL)");
    }
}
