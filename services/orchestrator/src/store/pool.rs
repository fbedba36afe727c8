//! What the store keeps about the standby pool besides its rows (`standbys.rs`): the
//! size an operator set, which overrides `STANDBY_POOL_SIZE` on every instance and
//! across restarts until cleared, and the signups that found no ready standby (the
//! pool's misses), so that every instance reports the same hourly figures.

use chrono::{DateTime, Utc};
use contracts::OperatorAction;
use sqlx::Row;
use uuid::Uuid;

use super::lease::{self, Fence};
use super::Error;

/// How long a miss is kept: the figures look back an hour, the rest is pruned.
pub(super) const MISSES_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// The operators' last word on the pool's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSetting {
    /// The size set (`None`: cleared, the configured size applies).
    pub size: Option<u32>,
    /// Who set or cleared it, when and why (`pool_size` or `pool_size_cleared`).
    pub action: OperatorAction,
}

/// The pool's hourly figures, read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFigures {
    /// Standbys claimed by signups since the instant asked (given-back claims not
    /// counted).
    pub taken: u64,
    /// Signups that found no ready standby while the pool was on, since then.
    pub missed: u64,
}

/// The SQL side.
pub(super) mod sql {
    use super::*;

    /// The tables: one row of setting (`name` = `standby_pool_size`), and the misses.
    pub(in crate::store) fn ddl() -> Vec<String> {
        vec![
            "CREATE TABLE IF NOT EXISTS pool_settings (
                name VARCHAR(64) NOT NULL PRIMARY KEY,
                size BIGINT NULL,
                action TEXT NOT NULL)"
                .to_string(),
            "CREATE TABLE IF NOT EXISTS standby_misses (
                signup_id VARCHAR(36) NOT NULL PRIMARY KEY,
                missed_at BIGINT NOT NULL)"
                .to_string(),
            "CREATE INDEX IF NOT EXISTS standby_misses_by_time ON standby_misses (missed_at)"
                .into(),
        ]
    }

    const SIZE: &str = "standby_pool_size";

    /// A transaction that has passed the fence check.
    async fn fenced<'a>(
        pool: &'a sqlx::AnyPool,
        fence: &Fence,
    ) -> Result<sqlx::Transaction<'a, sqlx::Any>, Error> {
        let mut tx = pool.begin().await?;
        if let Err(reason) = lease::sql::check(&mut tx, fence).await? {
            tx.rollback().await?;
            return Err(Error::Deposed(reason));
        }
        Ok(tx)
    }

    /// The operators' last setting, if any was ever made.
    pub(in crate::store) async fn setting(
        pool: &sqlx::AnyPool,
    ) -> Result<Option<PoolSetting>, Error> {
        let row = sqlx::query("SELECT size, action FROM pool_settings WHERE name = ?")
            .bind(SIZE)
            .fetch_optional(pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let size: Option<i64> = row.try_get("size")?;
        let action = super::super::sql::text_column(&row, "action")?;
        Ok(Some(PoolSetting {
            size: size
                .map(|n| {
                    u32::try_from(n).map_err(|e| Error::Corrupt(format!("pool size {n}: {e}")))
                })
                .transpose()?,
            action: serde_json::from_str(&action).map_err(|e| Error::Corrupt(e.to_string()))?,
        }))
    }

    /// Replaces the setting (fenced).
    pub(in crate::store) async fn set(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        setting: &PoolSetting,
    ) -> Result<(), Error> {
        let action =
            serde_json::to_string(&setting.action).map_err(|e| Error::Corrupt(e.to_string()))?;
        let mut tx = fenced(pool, fence).await?;
        sqlx::query("DELETE FROM pool_settings WHERE name = ?")
            .bind(SIZE)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO pool_settings (name, size, action) VALUES (?, ?, ?)")
            .bind(SIZE)
            .bind(setting.size.map(i64::from))
            .bind(action)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that `signup` found no ready standby (once per signup), and prunes the
    /// misses older than [`MISSES_KEPT`] (fenced).
    pub(in crate::store) async fn missed(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        signup: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = fenced(pool, fence).await?;
        sqlx::query("DELETE FROM standby_misses WHERE missed_at < ?")
            .bind((now - MISSES_KEPT).timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO standby_misses (signup_id, missed_at) VALUES (?, ?)")
                .bind(signup.to_string())
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await;
        match inserted {
            Ok(_) => {}
            // The same signup again (redelivered): counted once.
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims and misses at or after `since`.
    pub(in crate::store) async fn figures(
        pool: &sqlx::AnyPool,
        since: DateTime<Utc>,
    ) -> Result<PoolFigures, Error> {
        let since = since.timestamp_millis();
        let taken: i64 = sqlx::query("SELECT COUNT(*) FROM standbys WHERE claimed_at >= ?")
            .bind(since)
            .fetch_one(pool)
            .await?
            .try_get(0)?;
        let missed: i64 = sqlx::query("SELECT COUNT(*) FROM standby_misses WHERE missed_at >= ?")
            .bind(since)
            .fetch_one(pool)
            .await?
            .try_get(0)?;
        Ok(PoolFigures {
            taken: taken.max(0) as u64,
            missed: missed.max(0) as u64,
        })
    }
}
