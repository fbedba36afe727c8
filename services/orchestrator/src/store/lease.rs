//! The leader lease and its fencing, shared by every store.
//!
//! Several orchestrators may run on one store; one drives the sagas. It holds the
//! lease: a holder id, a fence number that grows with every acquisition, and an
//! expiry by the database's clock (instances on different hosts then agree on it).
//! A store instance that asked for the lead is fenced: every write it makes first
//! checks, inside its own transaction, that the lease still names its holder and
//! fence. A deposed leader that still believes it leads (a GC pause, a partition, a
//! SIGSTOP) has its late writes refused, because whoever took over raised the fence.
//!
//! The check does not look at the expiry: fencing is about being superseded, not
//! about the clock. A holder whose lease expired unnoticed still writes safely until
//! someone takes over, and the takeover waits for a write in progress (InnoDB's row
//! lock on the lease row, SQLite's single writer), so no write of the old holder
//! lands after the new holder's fence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Row;

use super::Error;

/// Who holds the lead, for health and admin replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The holder id given to `try_lead`.
    pub holder: String,
    /// The fence number of its lease.
    pub fence: u64,
    /// Milliseconds until the lease expires, by the database's clock; negative when it
    /// has expired and nobody took over yet.
    pub expires_in_ms: i64,
}

/// What a store instance knows of its own lead; the writer reads it at every commit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Fencing {
    /// `try_lead` was never called: writes are not fenced (tests, tools, loadgen).
    #[default]
    Off,
    /// Fenced, without the lead: every write fails with `Deposed(reason)`.
    Lost { reason: String },
    /// Fenced, with the lead as last taken: every write checks it in the database.
    Held { holder: String, fence: u64 },
}

/// The fencing state of one store instance, shared by its clones and its writer.
#[derive(Debug, Clone, Default)]
pub(super) struct Fence(Arc<Mutex<Fencing>>);

impl Fence {
    fn with<T>(&self, f: impl FnOnce(&mut Fencing) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub(super) fn get(&self) -> Fencing {
        self.with(|state| state.clone())
    }

    pub(super) fn set(&self, fencing: Fencing) {
        self.with(|state| *state = fencing);
    }

    /// Fences an instance from its first `try_lead` on, before it has an answer: a
    /// write made meanwhile is not left unfenced.
    pub(super) fn arm(&self) {
        self.with(|state| {
            if *state == Fencing::Off {
                *state = Fencing::Lost {
                    reason: "this store instance has not taken the lead".into(),
                };
            }
        });
    }

    /// The lead `was` is lost, unless a later `try_lead` replaced it meanwhile.
    pub(super) fn lose(&self, was: &Fencing, reason: String) {
        self.with(|state| {
            if *state == *was {
                *state = Fencing::Lost { reason };
            }
        });
    }

    /// The lead `holder`/`fence` is lost, if it is still this instance's.
    pub(super) fn lose_held(&self, holder: &str, fence: u64, reason: String) {
        let was = Fencing::Held {
            holder: holder.to_string(),
            fence,
        };
        self.lose(&was, reason);
    }
}

/// Holder ids name an instance in the lease row (`VARCHAR(128)`); empty means nobody.
pub(super) fn check_holder(holder: &str) -> Result<(), Error> {
    if holder.is_empty() || holder.len() > 128 {
        return Err(Error::Refused(format!(
            "a lease holder id has 1 to 128 bytes, not {}",
            holder.len()
        )));
    }
    Ok(())
}

/// Why a fenced write of `holder`/`fence` is refused, given who holds the lease now.
pub(super) fn superseded(holder: &str, fence: u64, now_holder: &str, now_fence: u64) -> String {
    if now_holder.is_empty() {
        format!("nobody leads (the lead was resigned at fence {now_fence}); this instance had {holder} at fence {fence}")
    } else {
        format!(
            "{now_holder} leads at fence {now_fence}; this instance had {holder} at fence {fence}"
        )
    }
}

/// Why `try_lead` got no lead.
pub(super) fn held_by(now_holder: &str, now_fence: u64) -> String {
    format!("{now_holder} leads at fence {now_fence}")
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The lease of the memory store, with `Instant` as its clock.
#[derive(Debug)]
pub(super) struct MemoryLease {
    holder: String,
    fence: u64,
    expires: Instant,
}

impl Default for MemoryLease {
    fn default() -> Self {
        Self {
            holder: String::new(),
            fence: 0,
            expires: Instant::now(),
        }
    }
}

impl MemoryLease {
    /// The same rule as the SQL store's acquisition.
    pub(super) fn acquire(&mut self, holder: &str, ttl: Duration) -> Result<u64, String> {
        let now = Instant::now();
        if self.holder.is_empty() || self.expires < now || self.holder == holder {
            self.holder = holder.to_string();
            self.fence += 1;
            self.expires = now + ttl;
            Ok(self.fence)
        } else {
            Err(held_by(&self.holder, self.fence))
        }
    }

    pub(super) fn renew(&mut self, holder: &str, fence: u64, ttl: Duration) -> bool {
        let holds = self.holds(holder, fence);
        if holds {
            self.expires = Instant::now() + ttl;
        }
        holds
    }

    pub(super) fn resign(&mut self, holder: &str, fence: u64) {
        if self.holds(holder, fence) {
            self.holder.clear();
            self.expires = Instant::now();
        }
    }

    fn holds(&self, holder: &str, fence: u64) -> bool {
        self.holder == holder && self.fence == fence
    }

    pub(super) fn info(&self) -> Option<LeaseInfo> {
        if self.holder.is_empty() {
            return None;
        }
        let now = Instant::now();
        let expires_in_ms = if self.expires >= now {
            millis(self.expires - now)
        } else {
            -millis(now - self.expires)
        };
        Some(LeaseInfo {
            holder: self.holder.clone(),
            fence: self.fence,
            expires_in_ms,
        })
    }

    /// The fence check of a write, against this lease.
    pub(super) fn check(&self, fencing: &Fencing) -> Result<(), String> {
        match fencing {
            Fencing::Off => Ok(()),
            Fencing::Lost { reason } => Err(reason.clone()),
            Fencing::Held { holder, fence } if self.holds(holder, *fence) => Ok(()),
            Fencing::Held { holder, fence } => {
                Err(superseded(holder, *fence, &self.holder, self.fence))
            }
        }
    }
}

/// The lease in SQL. Time is the database's clock in milliseconds since the epoch.
pub(super) mod sql {
    use super::*;

    /// A transaction of the saga store.
    type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

    /// The database's clock in milliseconds. MariaDB's `NOW(3)` reads in the session's
    /// time zone, which the store sets to UTC on every connection, so no daylight
    /// saving hour is ever ambiguous.
    fn now(mysql: bool) -> &'static str {
        if mysql {
            "CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)"
        } else {
            "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)"
        }
    }

    /// The lease table and its one row (`holder = ''`: nobody leads). Both statements
    /// may run again, from any number of instances starting at once.
    pub(in crate::store) fn ddl(mysql: bool) -> Vec<String> {
        let ignore = if mysql {
            "INSERT IGNORE"
        } else {
            "INSERT OR IGNORE"
        };
        vec![
            "CREATE TABLE IF NOT EXISTS orchestrator_lease (
                name VARCHAR(32) NOT NULL PRIMARY KEY,
                holder VARCHAR(128) NOT NULL,
                fence BIGINT NOT NULL,
                expires_at BIGINT NOT NULL)"
                .to_string(),
            format!(
                "{ignore} INTO orchestrator_lease (name, holder, fence, expires_at) VALUES ('driver', '', 0, 0)"
            ),
        ]
    }

    /// The lease row as it is: holder and fence.
    async fn current(tx: &mut Tx<'_>) -> Result<(String, u64), sqlx::Error> {
        let row = sqlx::query("SELECT holder, fence FROM orchestrator_lease WHERE name = 'driver'")
            .fetch_one(&mut **tx)
            .await?;
        let fence: i64 = row.try_get("fence")?;
        Ok((row.try_get("holder")?, fence as u64))
    }

    /// Takes the lead if nobody holds it, its lease expired, or `holder` holds it
    /// already; the new fence, or who leads instead.
    pub(in crate::store) async fn acquire(
        pool: &sqlx::AnyPool,
        mysql: bool,
        holder: &str,
        ttl: Duration,
    ) -> Result<Result<u64, String>, sqlx::Error> {
        let now = now(mysql);
        // A look first, without a lock: a standby polls every sixth of a lease, and on
        // InnoDB an UPDATE locks the row even when it matches nothing, holding up every
        // write of the leader (each checks its fence on that row) until it commits.
        let row = sqlx::query(&format!(
            "SELECT holder, fence, CASE WHEN holder = '' OR expires_at < {now} OR holder = ? THEN 1 ELSE 0 END AS free
             FROM orchestrator_lease WHERE name = 'driver'"
        ))
        .bind(holder)
        .fetch_one(pool)
        .await?;
        let free: i64 = row.try_get("free")?;
        if free == 0 {
            let fence: i64 = row.try_get("fence")?;
            return Ok(Err(held_by(
                &row.try_get::<String, _>("holder")?,
                fence as u64,
            )));
        }
        let mut tx = pool.begin().await?;
        let taken = sqlx::query(&format!(
            "UPDATE orchestrator_lease SET holder = ?, fence = fence + 1, expires_at = {now} + ?
             WHERE name = 'driver' AND (holder = '' OR expires_at < {now} OR holder = ?)"
        ))
        .bind(holder.to_string())
        .bind(millis(ttl))
        .bind(holder.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // Read in the same transaction: the row is this transaction's until it commits.
        let (now_holder, now_fence) = current(&mut tx).await?;
        tx.commit().await?;
        Ok(if taken {
            Ok(now_fence)
        } else {
            Err(held_by(&now_holder, now_fence))
        })
    }

    /// Extends the lease of `holder`/`fence` by `ttl` from now; whether it still held it.
    pub(in crate::store) async fn renew(
        pool: &sqlx::AnyPool,
        mysql: bool,
        holder: &str,
        fence: u64,
        ttl: Duration,
    ) -> Result<bool, sqlx::Error> {
        let now = now(mysql);
        let renewed = sqlx::query(&format!(
            "UPDATE orchestrator_lease SET expires_at = {now} + ? WHERE name = 'driver' AND holder = ? AND fence = ?"
        ))
        .bind(millis(ttl))
        .bind(holder.to_string())
        .bind(fence as i64)
        .execute(pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease up: nobody holds it, so the next `acquire` succeeds at once,
    /// and a write of the old holder still in flight fails its fence check. The
    /// fence stays, so the next holder's is higher.
    pub(in crate::store) async fn resign(
        pool: &sqlx::AnyPool,
        mysql: bool,
        holder: &str,
        fence: u64,
    ) -> Result<(), sqlx::Error> {
        let now = now(mysql);
        sqlx::query(&format!(
            "UPDATE orchestrator_lease SET holder = '', expires_at = {now} WHERE name = 'driver' AND holder = ? AND fence = ?"
        ))
        .bind(holder.to_string())
        .bind(fence as i64)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Who holds the lead, if anybody.
    pub(in crate::store) async fn leader(
        pool: &sqlx::AnyPool,
        mysql: bool,
    ) -> Result<Option<LeaseInfo>, sqlx::Error> {
        let now = now(mysql);
        let row = sqlx::query(&format!(
            "SELECT holder, fence, expires_at - {now} AS expires_in_ms FROM orchestrator_lease WHERE name = 'driver'"
        ))
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let holder: String = row.try_get("holder")?;
        if holder.is_empty() {
            return Ok(None);
        }
        let fence: i64 = row.try_get("fence")?;
        Ok(Some(LeaseInfo {
            holder,
            fence: fence as u64,
            expires_in_ms: row.try_get("expires_in_ms")?,
        }))
    }

    /// The fence check, the first statement of every write transaction of a fenced
    /// instance. On InnoDB the UPDATE also locks the lease row until the transaction
    /// ends, so an acquisition by another instance (which raises the fence) waits for
    /// this write, and every later write of this instance fails the check; on SQLite
    /// the single writer lock orders them the same way. MySQL counts matched rows
    /// (sqlx sets CLIENT_FOUND_ROWS), SQLite counts every row an UPDATE touches, so a
    /// match is 1 on both although nothing changes. `Err(reason)`: deposed; nothing of
    /// the transaction may be committed.
    pub(in crate::store) async fn check(
        tx: &mut Tx<'_>,
        fence: &Fence,
    ) -> Result<Result<(), String>, sqlx::Error> {
        let fencing = fence.get();
        let (holder, number) = match &fencing {
            Fencing::Off => return Ok(Ok(())),
            Fencing::Lost { reason } => return Ok(Err(reason.clone())),
            Fencing::Held { holder, fence } => (holder.as_str(), *fence),
        };
        let matched = sqlx::query(
            "UPDATE orchestrator_lease SET fence = fence WHERE name = 'driver' AND holder = ? AND fence = ?",
        )
        .bind(holder.to_string())
        .bind(number as i64)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if matched == 1 {
            return Ok(Ok(()));
        }
        let (now_holder, now_fence) = current(tx).await?;
        let reason = superseded(holder, number, &now_holder, now_fence);
        // The fence only grows: this lead never comes back, later writes need no check.
        fence.lose(&fencing, reason.clone());
        Ok(Err(reason))
    }
}
