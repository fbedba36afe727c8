//! The standby pool's rows: one per standby site, keyed by the saga that builds it.
//! A standby is `building` until its build saga completes, then `ready`; a signup
//! takes a ready one by compare-and-set (`claimed`, with `claimed_by` unique, so two
//! signups never share one); `discarding` while its build saga is undone (the pool
//! no longer wants it: the size shrank, or its signup rolled back or found it
//! unusable); `gone` once it is used up, undone or was never usable. The SQL
//! side runs every write in one transaction behind the leader fence, like the sagas.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::lease::{self, Fence};
use super::Error;

/// Where a standby is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StandbyState {
    /// Its build saga runs.
    Building,
    /// Built and not taken: a signup may claim it.
    Ready,
    /// Taken by a signup (`claimed_by`).
    Claimed,
    /// No longer wanted: its build saga is being undone (folder archived, database
    /// dropped where still the standby's). Never handed out.
    Discarding,
    /// Used up, failed or discarded: never handed out again.
    Gone,
}

impl StandbyState {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Claimed => "claimed",
            Self::Discarding => "discarding",
            Self::Gone => "gone",
        }
    }

    /// The state a stored word names.
    pub fn parse(word: &str) -> Result<Self, Error> {
        Ok(match word {
            "building" => Self::Building,
            "ready" => Self::Ready,
            "claimed" => Self::Claimed,
            "discarding" => Self::Discarding,
            "gone" => Self::Gone,
            other => return Err(Error::Corrupt(format!("unknown standby state {other:?}"))),
        })
    }
}

/// One standby site of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// The saga that builds it (its marker and ledger entry name this saga).
    pub id: Uuid,
    /// The placeholder site name it is built under.
    pub site_name: String,
    /// Its database name; empty until the build saga's database step said it.
    pub db_name: String,
    /// Where it is in its life.
    pub state: StandbyState,
    /// The signup that took it.
    pub claimed_by: Option<Uuid>,
    /// When its build was started (millisecond precision, as stored).
    pub created_at: DateTime<Utc>,
    /// When a signup took it (kept once it is used up or discarded, so the pool's
    /// figures count it; cleared when it is given back).
    pub claimed_at: Option<DateTime<Utc>>,
    /// Since when it is in its state (for operators: a row written before this was
    /// kept tells its last known change: built, ready or claimed).
    pub since: DateTime<Utc>,
}

impl Standby {
    /// A standby whose build saga `id` starts now.
    pub fn building(id: Uuid, site_name: String, now: DateTime<Utc>) -> Self {
        let now = millis_only(now);
        Self {
            id,
            site_name,
            db_name: String::new(),
            state: StandbyState::Building,
            claimed_by: None,
            created_at: now,
            claimed_at: None,
            since: now,
        }
    }
}

/// `at` to the millisecond, as every store keeps it.
pub(super) fn millis_only(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at)
}

/// The SQL side: the table and the fenced statements.
pub(super) mod sql {
    use super::*;

    type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

    /// How often a claim tries again when another writer got between its read and its
    /// compare-and-set (or SQLite refused to upgrade its read to a write).
    const CLAIM_TRIES: u32 = 20;

    /// The table. `claimed_by` is unique: a second signup can never hold a standby
    /// (several NULLs are allowed by SQLite and MariaDB alike).
    pub(in crate::store) fn ddl() -> Vec<String> {
        vec![
            "CREATE TABLE IF NOT EXISTS standbys (
                standby_id VARCHAR(36) NOT NULL PRIMARY KEY,
                site_name VARCHAR(255) NOT NULL,
                db_name VARCHAR(64) NOT NULL,
                state VARCHAR(16) NOT NULL,
                claimed_by VARCHAR(36) NULL UNIQUE,
                created_at BIGINT NOT NULL,
                ready_at BIGINT NULL,
                claimed_at BIGINT NULL,
                changed_at BIGINT NULL)"
                .to_string(),
            "CREATE INDEX IF NOT EXISTS standbys_by_state ON standbys (state, ready_at)".into(),
            // The pool's figures count the claims of the last hour.
            "CREATE INDEX IF NOT EXISTS standbys_by_claim ON standbys (claimed_at)".into(),
        ]
    }

    /// Brings a `standbys` table made by an earlier release up to date: it lacks
    /// `changed_at` (SQLite has no `ADD COLUMN IF NOT EXISTS`, so the column is looked
    /// for first; two instances starting at once may both add it, and the loser finds
    /// it there).
    pub(in crate::store) async fn migrate(pool: &sqlx::AnyPool) -> Result<(), Error> {
        let has = |pool: &sqlx::AnyPool| {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT changed_at FROM standbys WHERE 1 = 0")
                    .fetch_all(&pool)
                    .await
                    .is_ok()
            }
        };
        if has(pool).await {
            return Ok(());
        }
        let added = sqlx::query("ALTER TABLE standbys ADD COLUMN changed_at BIGINT NULL")
            .execute(pool)
            .await;
        match added {
            Ok(_) => Ok(()),
            Err(_) if has(pool).await => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    const COLUMNS: &str =
        "standby_id, site_name, db_name, state, claimed_by, created_at, ready_at, claimed_at, changed_at";

    fn from_row(row: &sqlx::any::AnyRow) -> Result<Standby, Error> {
        let uuid = |text: String| Uuid::parse_str(&text).map_err(|e| Error::Corrupt(e.to_string()));
        let claimed_by: Option<String> = row.try_get("claimed_by")?;
        let at = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| Error::Corrupt(format!("standby time {ms}")))
        };
        let created_at: i64 = row.try_get("created_at")?;
        let ready_at: Option<i64> = row.try_get("ready_at")?;
        let claimed_at: Option<i64> = row.try_get("claimed_at")?;
        let changed_at: Option<i64> = row.try_get("changed_at")?;
        let state = StandbyState::parse(&row.try_get::<String, _>("state")?)?;
        // A row of an earlier release has no `changed_at`: its last known change.
        let since = changed_at.or(match state {
            StandbyState::Ready => ready_at,
            StandbyState::Claimed => claimed_at,
            _ => None,
        });
        Ok(Standby {
            id: uuid(row.try_get("standby_id")?)?,
            site_name: row.try_get("site_name")?,
            db_name: row.try_get("db_name")?,
            state,
            claimed_by: claimed_by.map(uuid).transpose()?,
            created_at: at(created_at)?,
            claimed_at: claimed_at.map(at).transpose()?,
            since: at(since.unwrap_or(created_at))?,
        })
    }

    /// A transaction that has passed the fence check.
    async fn fenced<'a>(pool: &'a sqlx::AnyPool, fence: &Fence) -> Result<Tx<'a>, Error> {
        let mut tx = pool.begin().await?;
        if let Err(reason) = lease::sql::check(&mut tx, fence).await? {
            tx.rollback().await?;
            return Err(Error::Deposed(reason));
        }
        Ok(tx)
    }

    /// Stores a new standby (building); the same one again changes nothing.
    pub(in crate::store) async fn add(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        standby: &Standby,
    ) -> Result<(), Error> {
        let mut tx = fenced(pool, fence).await?;
        let inserted = sqlx::query(
            "INSERT INTO standbys (standby_id, site_name, db_name, state, claimed_by, created_at, changed_at) VALUES (?, ?, ?, ?, NULL, ?, ?)",
        )
        .bind(standby.id.to_string())
        .bind(standby.site_name.as_str())
        .bind(standby.db_name.as_str())
        .bind(standby.state.as_str())
        .bind(standby.created_at.timestamp_millis())
        .bind(standby.since.timestamp_millis())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                tx.rollback().await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    /// building → ready, with its database name; whether it changed.
    pub(in crate::store) async fn ready(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        id: Uuid,
        db_name: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let update = sqlx::query(
            "UPDATE standbys SET state = 'ready', db_name = ?, ready_at = ?, changed_at = ? WHERE standby_id = ? AND state = 'building'",
        )
        .bind(db_name.to_string())
        .bind(now.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(id.to_string());
        fenced_change(pool, fence, update).await
    }

    /// The standby `signup` holds, else the oldest ready one, taken by compare-and-set.
    pub(in crate::store) async fn claim(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        signup: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Standby>, Error> {
        let mut last = None;
        for attempt in 0..CLAIM_TRIES {
            match claim_once(pool, fence, signup, now).await {
                Ok(Some(taken)) => return Ok(taken),
                // Another writer took the row first: look again.
                Ok(None) => {}
                Err(Error::Database(e)) if contended(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(attempt + 1))).await;
        }
        Err(match last {
            Some(e) => Error::Database(e),
            None => Error::Unavailable("standby claims kept colliding".into()),
        })
    }

    /// A write another writer got in the way of: worth another try.
    fn contended(e: &sqlx::Error) -> bool {
        match e {
            sqlx::Error::Database(db) => {
                db.is_unique_violation() || {
                    let message = db.message().to_ascii_lowercase();
                    message.contains("locked")
                        || message.contains("busy")
                        || message.contains("deadlock")
                }
            }
            _ => false,
        }
    }

    /// One try: `Ok(None)` when the compare-and-set lost.
    async fn claim_once(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        signup: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<Standby>>, Error> {
        let mut tx = fenced(pool, fence).await?;
        let held = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM standbys WHERE claimed_by = ?"
        ))
        .bind(signup.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = held {
            tx.rollback().await?;
            return Ok(Some(Some(from_row(&row)?)));
        }
        let candidate = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM standbys WHERE state = 'ready' ORDER BY ready_at, standby_id LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = candidate else {
            tx.rollback().await?;
            return Ok(Some(None));
        };
        let mut standby = from_row(&row)?;
        let taken = sqlx::query(
            "UPDATE standbys SET state = 'claimed', claimed_by = ?, claimed_at = ?, changed_at = ? WHERE standby_id = ? AND state = 'ready'",
        )
        .bind(signup.to_string())
        .bind(now.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(standby.id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        standby.state = StandbyState::Claimed;
        standby.claimed_by = Some(signup);
        standby.claimed_at = Some(millis_only(now));
        standby.since = millis_only(now);
        Ok(Some(Some(standby)))
    }

    /// claimed by `signup` → ready again (its signup never used it); whether it changed.
    pub(in crate::store) async fn release(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        id: Uuid,
        signup: Uuid,
    ) -> Result<bool, Error> {
        let update = sqlx::query(
            "UPDATE standbys SET state = 'ready', claimed_by = NULL, claimed_at = NULL, changed_at = ? WHERE standby_id = ? AND state = 'claimed' AND claimed_by = ?",
        )
        .bind(changed_now())
        .bind(id.to_string())
        .bind(signup.to_string());
        fenced_change(pool, fence, update).await
    }

    /// `from` → discarding, by compare-and-set (a ready standby a signup claims at the
    /// same instant goes to one of them only); whether it changed.
    pub(in crate::store) async fn discarding(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        id: Uuid,
        from: StandbyState,
    ) -> Result<bool, Error> {
        let update = sqlx::query(
            "UPDATE standbys SET state = 'discarding', changed_at = ? WHERE standby_id = ? AND state = ?",
        )
        .bind(changed_now())
        .bind(id.to_string())
        .bind(from.as_str());
        fenced_change(pool, fence, update).await
    }

    /// Any state → gone; whether it changed.
    pub(in crate::store) async fn gone(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        id: Uuid,
    ) -> Result<bool, Error> {
        let update = sqlx::query(
            "UPDATE standbys SET state = 'gone', changed_at = ? WHERE standby_id = ? AND state <> 'gone'",
        )
        .bind(changed_now())
        .bind(id.to_string());
        fenced_change(pool, fence, update).await
    }

    /// When a change that is given no time happens: the host's clock, only shown to
    /// operators (`since`); no rule reads it.
    fn changed_now() -> i64 {
        Utc::now().timestamp_millis()
    }

    /// Runs one conditional `UPDATE` in a transaction behind the lease's fence;
    /// whether it changed the row (the compare-and-set held).
    async fn fenced_change<'q>(
        pool: &sqlx::AnyPool,
        fence: &Fence,
        update: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<bool, Error> {
        let mut tx = fenced(pool, fence).await?;
        let changed = update.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Standbys, oldest first, of one state or of every state but gone.
    pub(in crate::store) async fn list(
        pool: &sqlx::AnyPool,
        state: Option<StandbyState>,
    ) -> Result<Vec<Standby>, Error> {
        let rows = match state {
            Some(state) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM standbys WHERE state = ? ORDER BY created_at, standby_id"
                ))
                .bind(state.as_str())
                .fetch_all(pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM standbys WHERE state <> 'gone' ORDER BY created_at, standby_id"
                ))
                .fetch_all(pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// The standby `id`.
    pub(in crate::store) async fn get(
        pool: &sqlx::AnyPool,
        id: Uuid,
    ) -> Result<Option<Standby>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM standbys WHERE standby_id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
