//! Durable saga state. Every transition is stored, with the progress events it
//! produced, before anything is published; the events double as an outbox that a
//! restarted orchestrator republishes from. Several orchestrators may share a store:
//! a leader lease says which one drives, and fences the writes of the others
//! (`lease.rs`).

mod group_commit;
mod lease;
mod listing;
mod memory;
mod mysql_database;
mod pool;
mod sql;
mod sql_schema;
mod sqlite_writer;
mod standbys;
mod statements;

use std::future::Future;
use std::time::Duration;

use contracts::{ProgressEvent, SagaStatus};
use uuid::Uuid;

use crate::saga::Saga;
pub use lease::LeaseInfo;
pub use memory::MemoryStore;
pub use pool::{PoolFigures, PoolSetting};
pub use sql::SqlStore;
pub use standbys::{Standby, StandbyState};

/// Store failures. Nothing of a change that fails is stored. All are worth a retry
/// except `Corrupt` and `Refused`; `Deposed` is worth one only once this instance
/// leads again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or refused the statement.
    #[error("saga store: {0}")]
    Database(#[from] sqlx::Error),
    /// The database failed the whole group commit this change waited in (it could not
    /// be reached), or the store's writer stopped, or (at connect) the database cannot
    /// be opened: the message then says what to run.
    #[error("saga store unavailable: {0}")]
    Unavailable(String),
    /// The change breaks a rule of the store (for example, it re-stores an event: a
    /// timeline is only appended to).
    #[error("saga store refused the change: {0}")]
    Refused(String),
    /// Another writer changed the saga first (a stale copy, or two orchestrators on
    /// one store): the stored sequence is no longer the transition's previous one.
    #[error("saga {0} was changed concurrently")]
    Conflict(Uuid),
    /// A stored row could not be read back.
    #[error("saga store holds an unreadable row: {0}")]
    Corrupt(String),
    /// This store instance is fenced and another holds the lead now (or nobody, or it
    /// never took it): its write was refused. The message says who leads, if known.
    /// Step down, or retry once `try_lead` succeeds again.
    #[error("saga store refused a write of a deposed leader: {0}")]
    Deposed(String),
}

/// What `insert` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The saga is new and stored.
    Stored,
    /// A saga with this id exists already (the same signup again).
    Duplicate,
    /// The subdomain is held by another live or completed saga.
    SubdomainTaken(Uuid),
}

/// What `update` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// Stored.
    Stored,
    /// A replay needed the subdomain back, but another saga holds it now.
    SubdomainTaken(Uuid),
}

/// What a transition does to the saga's subdomain claim. One rule for every store: a
/// replay of a rolled-back saga takes the subdomain back; ending rolled back (or
/// rejected) gives it up; a completed saga keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimChange {
    /// Nothing changes.
    Keep,
    /// Take the subdomain again (it may be held by another saga by now).
    Reclaim,
    /// Give the subdomain up.
    Release,
}

impl ClaimChange {
    /// The claim change of the transition from `previous` to `saga`.
    pub fn of(previous: &Saga, saga: &Saga) -> Self {
        if previous.status == SagaStatus::RolledBack && saga.status != SagaStatus::RolledBack {
            Self::Reclaim
        } else if matches!(saga.status, SagaStatus::RolledBack | SagaStatus::Rejected)
            && previous.status != saga.status
        {
            Self::Release
        } else {
            Self::Keep
        }
    }
}

/// Which sagas [`SagaStore::list`] gives: newest first (`created_at`, then id, both
/// descending), those after `after`, matching every filter set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<SagaStatus>,
    /// Only this subdomain.
    pub subdomain: Option<String>,
    /// Only sagas created at or after this instant (millisecond precision).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only sagas created before this instant (millisecond precision).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only sagas listed after this one (the last of the previous page).
    pub after: Option<ListCursor>,
    /// At most this many.
    pub limit: u32,
}

/// A position in the newest-first order: a saga's creation (milliseconds, as every
/// store keeps it) and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    /// `created_at` in milliseconds since the epoch.
    pub created_at_ms: i64,
    /// The saga's id (ties broken by id, descending).
    pub saga_id: Uuid,
}

impl ListCursor {
    /// The position of `saga`.
    pub fn of(saga: &Saga) -> Self {
        Self {
            created_at_ms: saga.created_at.timestamp_millis(),
            saga_id: saga.id,
        }
    }

    /// Whether `saga` comes after this position in the newest-first order.
    pub fn precedes(&self, saga: &Saga) -> bool {
        let at = saga.created_at.timestamp_millis();
        at < self.created_at_ms || (at == self.created_at_ms && saga.id < self.saga_id)
    }
}

/// Refuses a transition that does not advance the saga's sequence: the sequence is
/// what every store checks a transition against, so a transition that kept it could
/// be stored twice from one state.
fn check_advances(previous: &Saga, saga: &Saga) -> Result<(), Error> {
    if saga.id != previous.id || saga.sequence <= previous.sequence {
        return Err(Error::Refused(format!(
            "a transition of saga {} must advance its sequence (from {} to {})",
            previous.id, previous.sequence, saga.sequence
        )));
    }
    Ok(())
}

/// Where sagas live. Implemented over SQLite and MySQL/MariaDB by [`SqlStore`]; the
/// conformance suite in `tests/store_conformance.rs` runs against both.
pub trait SagaStore: Send + Sync + 'static {
    /// Stores a new saga with its first events. An accepted saga also claims its
    /// subdomain; a rejected one does not.
    fn insert(
        &self,
        saga: &Saga,
        events: &[ProgressEvent],
    ) -> impl Future<Output = Result<Inserted, Error>> + Send;

    /// Stores a transition from `previous` to `saga`, with the events it produced.
    /// Releases the subdomain when the saga ends rolled back, claims it again when a
    /// rolled-back saga is replayed.
    ///
    /// Stored only if the stored saga is still at `previous.sequence`, checked
    /// atomically with the write: of two writers moving one saga on from the same
    /// state, whichever process or store instance they run in, exactly one succeeds
    /// and the other gets [`Error::Conflict`]. `saga.sequence` must be greater than
    /// `previous.sequence` ([`Error::Refused`] otherwise).
    fn update(
        &self,
        previous: &Saga,
        saga: &Saga,
        events: &[ProgressEvent],
    ) -> impl Future<Output = Result<Updated, Error>> + Send;

    /// One saga.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Option<Saga>, Error>> + Send;

    /// Sagas newest first, optionally of one status.
    fn list(
        &self,
        status: Option<SagaStatus>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Saga>, Error>> + Send {
        async move {
            self.list_page(&ListQuery {
                status,
                limit,
                ..ListQuery::default()
            })
            .await
        }
    }

    /// One page of sagas, newest first, as `query` says.
    fn list_page(&self, query: &ListQuery)
        -> impl Future<Output = Result<Vec<Saga>, Error>> + Send;

    /// A saga's whole timeline, oldest first.
    fn timeline(&self, id: Uuid) -> impl Future<Output = Result<Vec<ProgressEvent>, Error>> + Send;

    /// Every saga that is not terminal (to resume after a restart).
    fn in_flight(&self) -> impl Future<Output = Result<Vec<Saga>, Error>> + Send;

    /// Progress events stored but not yet confirmed published, oldest first.
    fn unpublished(&self) -> impl Future<Output = Result<Vec<ProgressEvent>, Error>> + Send;

    /// Confirms that these events are on the progress stream.
    fn mark_published(
        &self,
        events: &[(Uuid, u64)],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The saga holding a subdomain, if any.
    fn subdomain_holder(
        &self,
        subdomain: &str,
    ) -> impl Future<Output = Result<Option<Uuid>, Error>> + Send;

    /// Takes the lead if nobody holds it, its lease has expired by the database's
    /// clock, or `holder` holds it already (a restart of the same holder gets a new
    /// fence). The new fence number, or `None` when another holds a live lease.
    ///
    /// From the first call on, this store instance is fenced: each of its writes
    /// (`insert`, `update`, `mark_published`) first checks, inside its transaction,
    /// that the lease still has this holder and fence, and otherwise fails with
    /// [`Error::Deposed`], storing nothing. Until a call succeeds (and after a `None`)
    /// every write fails so. An instance never asked to lead writes unfenced.
    ///
    /// The default refuses: a store that keeps no lease cannot be led.
    fn try_lead(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, Error>> + Send {
        let _ = (holder, ttl);
        async { Err(no_lease()) }
    }

    /// Extends the lease by `ttl` from now (database clock). `false` when
    /// `holder`/`fence` no longer hold it (another took over); this instance's writes
    /// are refused from then on. Renewing never gives an instance its writes back:
    /// only `try_lead` does.
    fn renew_lead(
        &self,
        holder: &str,
        fence: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = (holder, fence, ttl);
        async { Err(no_lease()) }
    }

    /// Gives the lease up at once, so a standby takes over without waiting for the
    /// ttl; does nothing to the lease if `holder`/`fence` do not hold it. This
    /// instance's writes are refused ([`Error::Deposed`]) afterwards.
    fn resign(&self, holder: &str, fence: u64) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (holder, fence);
        async { Err(no_lease()) }
    }

    /// Who holds the lead and until when (database clock), for health and admin.
    /// `None` when nobody does (never taken, or resigned).
    fn leader(&self) -> impl Future<Output = Result<Option<LeaseInfo>, Error>> + Send {
        async { Err(no_lease()) }
    }

    /// Stores a new standby of the pool (`building`, as [`Standby::building`] makes
    /// it); the same one again changes nothing. Fenced like every write.
    fn add_standby(&self, standby: &Standby) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = standby;
        async { Err(no_pool()) }
    }

    /// Marks a building standby ready, with the database its build made. Whether it
    /// changed (false: not building, or unknown).
    fn standby_ready(
        &self,
        id: Uuid,
        db_name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = (id, db_name, now);
        async { Err(no_pool()) }
    }

    /// Gives `signup` a standby: the one it holds already (the signup may come again
    /// after a crash between its claim and its saga's insert), else the longest ready
    /// one, taken by compare-and-set. Of any number of signups claiming at once, from
    /// any number of store instances, each ready standby goes to one at most. `None`:
    /// none is ready.
    fn claim_standby(
        &self,
        signup: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Option<Standby>, Error>> + Send {
        let _ = (signup, now);
        async { Err(no_pool()) }
    }

    /// Gives a standby `signup` claimed but never used back to the pool (ready).
    /// Whether it changed (false: not held by `signup`).
    fn release_standby(
        &self,
        id: Uuid,
        signup: Uuid,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = (id, signup);
        async { Err(no_pool()) }
    }

    /// Marks a standby of state `from` discarding (its build saga is to be undone), by
    /// compare-and-set: whether it changed (false: not in `from`, or unknown).
    fn discard_standby(
        &self,
        id: Uuid,
        from: StandbyState,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = (id, from);
        async { Err(no_pool()) }
    }

    /// Marks a standby gone (used up, failed, discarded): never handed out again.
    /// Whether it changed.
    fn standby_gone(&self, id: Uuid) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = id;
        async { Err(no_pool()) }
    }

    /// Standbys oldest first: of `state`, or (`None`) every one not gone.
    fn standbys(
        &self,
        state: Option<StandbyState>,
    ) -> impl Future<Output = Result<Vec<Standby>, Error>> + Send {
        let _ = state;
        async { Err(no_pool()) }
    }

    /// One standby, whatever its state.
    fn standby(&self, id: Uuid) -> impl Future<Output = Result<Option<Standby>, Error>> + Send {
        let _ = id;
        async { Err(no_pool()) }
    }

    /// The operators' last word on the pool's size (`size: None`: cleared), if they
    /// ever gave one.
    fn pool_setting(&self) -> impl Future<Output = Result<Option<PoolSetting>, Error>> + Send {
        async { Err(no_pool()) }
    }

    /// Replaces the operators' setting of the pool's size. Fenced like every write.
    fn set_pool_setting(
        &self,
        setting: &PoolSetting,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = setting;
        async { Err(no_pool()) }
    }

    /// Records that `signup` found no ready standby while the pool was on: once per
    /// signup, however often it comes. Misses older than a day are dropped. Fenced.
    fn standby_missed(
        &self,
        signup: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (signup, now);
        async { Err(no_pool()) }
    }

    /// Standbys claimed (and not given back) and misses recorded at or after `since`.
    fn pool_figures(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<PoolFigures, Error>> + Send {
        let _ = since;
        async { Err(no_pool()) }
    }
}

fn no_pool() -> Error {
    Error::Refused("this saga store keeps no standby pool".into())
}

fn no_lease() -> Error {
    Error::Refused("this saga store keeps no leader lease".into())
}
