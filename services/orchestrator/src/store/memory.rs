//! [`SagaStore`] in memory: for unit tests and for measuring the orchestrator without
//! a database. Kept honest by the same conformance suite as the SQL store. Nothing
//! survives a restart. One instance is its own database: its lease is fenced like the
//! SQL store's, with `Instant` as the clock, but no second instance shares it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use contracts::{ProgressEvent, SagaStatus};
use uuid::Uuid;

use super::lease::{self, Fencing, LeaseInfo, MemoryLease};
use super::standbys::millis_only;
use super::{
    check_advances, ClaimChange, Error, Inserted, ListQuery, PoolFigures, PoolSetting, SagaStore,
    Standby, StandbyState, Updated,
};
use crate::saga::Saga;

#[derive(Default)]
struct State {
    sagas: HashMap<Uuid, Saga>,
    events: BTreeMap<(Uuid, u64), (ProgressEvent, bool)>,
    claims: HashMap<String, Uuid>,
    /// The pool, with each ready standby's `ready_at` (oldest is claimed first).
    standbys: BTreeMap<Uuid, (Standby, i64)>,
    /// The operators' setting of the pool's size.
    pool_setting: Option<PoolSetting>,
    /// Signups that found no ready standby, and when.
    misses: HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
    lease: MemoryLease,
    fencing: Fencing,
}

impl State {
    /// The fence check every write makes first.
    fn fenced(&self) -> Result<(), Error> {
        self.lease.check(&self.fencing).map_err(Error::Deposed)
    }
}

/// Saga store in a mutex-guarded map.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Refuses events stored already, as the SQL store's primary key does: a timeline is
/// only appended to.
fn check_new(state: &State, events: &[ProgressEvent]) -> Result<(), Error> {
    match events
        .iter()
        .find(|e| state.events.contains_key(&(e.saga_id, e.sequence)))
    {
        Some(e) => Err(Error::Refused(format!(
            "event {} of saga {} is stored already",
            e.sequence, e.saga_id
        ))),
        None => Ok(()),
    }
}

fn add_events(state: &mut State, events: &[ProgressEvent]) {
    for e in events {
        state
            .events
            .insert((e.saga_id, e.sequence), (e.clone(), false));
    }
}

impl SagaStore for MemoryStore {
    async fn insert(&self, saga: &Saga, events: &[ProgressEvent]) -> Result<Inserted, Error> {
        self.with(|state| {
            state.fenced()?;
            if state.sagas.contains_key(&saga.id) {
                return Ok(Inserted::Duplicate);
            }
            check_new(state, events)?;
            if saga.status != SagaStatus::Rejected {
                if let Some(holder) = state.claims.get(&saga.tenant.subdomain) {
                    return Ok(Inserted::SubdomainTaken(*holder));
                }
                state.claims.insert(saga.tenant.subdomain.clone(), saga.id);
            }
            state.sagas.insert(saga.id, saga.clone());
            add_events(state, events);
            Ok(Inserted::Stored)
        })
    }

    async fn update(
        &self,
        previous: &Saga,
        saga: &Saga,
        events: &[ProgressEvent],
    ) -> Result<Updated, Error> {
        check_advances(previous, saga)?;
        self.with(|state| {
            state.fenced()?;
            if state.sagas.get(&saga.id).map(|s| s.sequence) != Some(previous.sequence) {
                return Err(Error::Conflict(saga.id));
            }
            check_new(state, events)?;
            match ClaimChange::of(previous, saga) {
                ClaimChange::Reclaim => {
                    if let Some(holder) = state.claims.get(&saga.tenant.subdomain) {
                        return Ok(Updated::SubdomainTaken(*holder));
                    }
                    state.claims.insert(saga.tenant.subdomain.clone(), saga.id);
                }
                ClaimChange::Release => state.claims.retain(|_, holder| *holder != saga.id),
                ClaimChange::Keep => {}
            }
            state.sagas.insert(saga.id, saga.clone());
            add_events(state, events);
            Ok(Updated::Stored)
        })
    }

    async fn get(&self, id: Uuid) -> Result<Option<Saga>, Error> {
        Ok(self.with(|state| state.sagas.get(&id).cloned()))
    }

    async fn list_page(&self, query: &ListQuery) -> Result<Vec<Saga>, Error> {
        let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis();
        Ok(self.with(|state| {
            let mut sagas: Vec<Saga> = state
                .sagas
                .values()
                .filter(|s| query.status.is_none_or(|st| s.status == st))
                .filter(|s| {
                    query
                        .subdomain
                        .as_deref()
                        .is_none_or(|d| s.tenant.subdomain == d)
                })
                .filter(|s| query.since.is_none_or(|t| ms(s.created_at) >= ms(t)))
                .filter(|s| query.until.is_none_or(|t| ms(s.created_at) < ms(t)))
                .filter(|s| query.after.is_none_or(|c| c.precedes(s)))
                .cloned()
                .collect();
            // Milliseconds, as the SQL stores keep them, so pages agree across stores.
            sagas.sort_by(|a, b| {
                ms(b.created_at)
                    .cmp(&ms(a.created_at))
                    .then(b.id.cmp(&a.id))
            });
            sagas.truncate(query.limit as usize);
            sagas
        }))
    }

    async fn timeline(&self, id: Uuid) -> Result<Vec<ProgressEvent>, Error> {
        Ok(self.with(|state| {
            state
                .events
                .range((id, 0)..=(id, u64::MAX))
                .map(|(_, (e, _))| e.clone())
                .collect()
        }))
    }

    async fn in_flight(&self) -> Result<Vec<Saga>, Error> {
        Ok(self.with(|state| {
            state
                .sagas
                .values()
                .filter(|s| !s.status.is_terminal())
                .cloned()
                .collect()
        }))
    }

    async fn unpublished(&self) -> Result<Vec<ProgressEvent>, Error> {
        Ok(self.with(|state| {
            state
                .events
                .values()
                .filter(|(_, published)| !published)
                .map(|(e, _)| e.clone())
                .collect()
        }))
    }

    async fn mark_published(&self, events: &[(Uuid, u64)]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        self.with(|state| {
            state.fenced()?;
            for key in events {
                if let Some(entry) = state.events.get_mut(key) {
                    entry.1 = true;
                }
            }
            Ok(())
        })
    }

    async fn subdomain_holder(&self, subdomain: &str) -> Result<Option<Uuid>, Error> {
        Ok(self.with(|state| state.claims.get(subdomain).copied()))
    }

    async fn try_lead(&self, holder: &str, ttl: Duration) -> Result<Option<u64>, Error> {
        lease::check_holder(holder)?;
        Ok(self.with(|state| match state.lease.acquire(holder, ttl) {
            Ok(fence) => {
                state.fencing = Fencing::Held {
                    holder: holder.to_string(),
                    fence,
                };
                Some(fence)
            }
            Err(reason) => {
                state.fencing = Fencing::Lost { reason };
                None
            }
        }))
    }

    async fn renew_lead(&self, holder: &str, fence: u64, ttl: Duration) -> Result<bool, Error> {
        Ok(self.with(|state| {
            let renewed = state.lease.renew(holder, fence, ttl);
            let held = Fencing::Held {
                holder: holder.to_string(),
                fence,
            };
            if !renewed && state.fencing == held {
                state.fencing = Fencing::Lost {
                    reason: format!("{holder} no longer leads at fence {fence}"),
                };
            }
            renewed
        }))
    }

    async fn resign(&self, holder: &str, fence: u64) -> Result<(), Error> {
        self.with(|state| {
            state.lease.resign(holder, fence);
            state.fencing = Fencing::Lost {
                reason: format!("{holder} resigned the lead at fence {fence}"),
            };
        });
        Ok(())
    }

    async fn leader(&self) -> Result<Option<LeaseInfo>, Error> {
        Ok(self.with(|state| state.lease.info()))
    }

    async fn add_standby(&self, standby: &Standby) -> Result<(), Error> {
        self.with(|state| {
            state.fenced()?;
            state
                .standbys
                .entry(standby.id)
                .or_insert_with(|| (standby.clone(), 0));
            Ok(())
        })
    }

    async fn standby_ready(
        &self,
        id: Uuid,
        db_name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, Error> {
        self.with(|state| {
            state.fenced()?;
            Ok(match state.standbys.get_mut(&id) {
                Some((standby, ready_at)) if standby.state == StandbyState::Building => {
                    standby.state = StandbyState::Ready;
                    standby.db_name = db_name.to_string();
                    standby.since = millis_only(now);
                    *ready_at = now.timestamp_millis();
                    true
                }
                _ => false,
            })
        })
    }

    async fn claim_standby(
        &self,
        signup: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Standby>, Error> {
        self.with(|state| {
            state.fenced()?;
            if let Some((held, _)) = state
                .standbys
                .values()
                .find(|(s, _)| s.claimed_by == Some(signup))
            {
                return Ok(Some(held.clone()));
            }
            let oldest = state
                .standbys
                .values_mut()
                .filter(|(s, _)| s.state == StandbyState::Ready)
                .min_by_key(|(s, ready_at)| (*ready_at, s.id));
            Ok(oldest.map(|(standby, _)| {
                standby.state = StandbyState::Claimed;
                standby.claimed_by = Some(signup);
                standby.claimed_at = Some(millis_only(now));
                standby.since = millis_only(now);
                standby.clone()
            }))
        })
    }

    async fn release_standby(&self, id: Uuid, signup: Uuid) -> Result<bool, Error> {
        self.with(|state| {
            state.fenced()?;
            Ok(match state.standbys.get_mut(&id) {
                Some((standby, _))
                    if standby.state == StandbyState::Claimed
                        && standby.claimed_by == Some(signup) =>
                {
                    standby.state = StandbyState::Ready;
                    standby.claimed_by = None;
                    standby.claimed_at = None;
                    standby.since = millis_only(chrono::Utc::now());
                    true
                }
                _ => false,
            })
        })
    }

    async fn discard_standby(&self, id: Uuid, from: StandbyState) -> Result<bool, Error> {
        self.with(|state| {
            state.fenced()?;
            Ok(match state.standbys.get_mut(&id) {
                Some((standby, _)) if standby.state == from => {
                    standby.state = StandbyState::Discarding;
                    standby.since = millis_only(chrono::Utc::now());
                    true
                }
                _ => false,
            })
        })
    }

    async fn standby_gone(&self, id: Uuid) -> Result<bool, Error> {
        self.with(|state| {
            state.fenced()?;
            Ok(match state.standbys.get_mut(&id) {
                Some((standby, _)) if standby.state != StandbyState::Gone => {
                    standby.state = StandbyState::Gone;
                    standby.since = millis_only(chrono::Utc::now());
                    true
                }
                _ => false,
            })
        })
    }

    async fn standbys(&self, wanted: Option<StandbyState>) -> Result<Vec<Standby>, Error> {
        Ok(self.with(|state| {
            let mut list: Vec<Standby> = state
                .standbys
                .values()
                .map(|(s, _)| s.clone())
                .filter(|s| match wanted {
                    Some(wanted) => s.state == wanted,
                    None => s.state != StandbyState::Gone,
                })
                .collect();
            list.sort_by_key(|s| (s.created_at, s.id));
            list
        }))
    }

    async fn standby(&self, id: Uuid) -> Result<Option<Standby>, Error> {
        Ok(self.with(|state| state.standbys.get(&id).map(|(s, _)| s.clone())))
    }

    async fn pool_setting(&self) -> Result<Option<PoolSetting>, Error> {
        Ok(self.with(|state| state.pool_setting.clone()))
    }

    async fn set_pool_setting(&self, setting: &PoolSetting) -> Result<(), Error> {
        self.with(|state| {
            state.fenced()?;
            state.pool_setting = Some(setting.clone());
            Ok(())
        })
    }

    async fn standby_missed(
        &self,
        signup: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        self.with(|state| {
            state.fenced()?;
            state
                .misses
                .retain(|_, at| *at >= now - super::pool::MISSES_KEPT);
            state.misses.entry(signup).or_insert(millis_only(now));
            Ok(())
        })
    }

    async fn pool_figures(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<PoolFigures, Error> {
        let since = millis_only(since);
        Ok(self.with(|state| PoolFigures {
            taken: state
                .standbys
                .values()
                .filter(|(s, _)| s.claimed_at.is_some_and(|at| at >= since))
                .count() as u64,
            missed: state.misses.values().filter(|at| **at >= since).count() as u64,
        }))
    }
}
