//! The standby pool for operators, answered the same over NATS (`api.rs`:
//! `saga.admin.pool` on every instance, `saga.admin.pool.set` on the leader) and HTTP
//! (`http/pool.rs`): the size in force and where it comes from, the standbys by state,
//! the claims and misses of the last hour (from the store, so every instance says the
//! same), and the size set or cleared by an operator, recorded with who, when and why.

use chrono::{DateTime, Utc};
use contracts::pool::{
    PoolCounts, PoolReply, PoolSetRequest, PoolSizeSource, PoolStandby, PoolStandbyState,
    MAX_POOL_SIZE,
};
use contracts::ErrorInfo;

use crate::admin::{error, operator_action};
use crate::driver::{effective_size, Core};
use crate::store::{PoolSetting, SagaStore, Standby, StandbyState};

/// A reply that carries only why the request failed.
fn failed(error: ErrorInfo) -> PoolReply {
    PoolReply {
        error: Some(error),
        ..PoolReply::default()
    }
}

fn store_error(e: crate::store::Error) -> ErrorInfo {
    match e {
        crate::store::Error::Refused(message) => error("no_pool", message),
        e => error(
            "store_unavailable",
            format!("the saga store cannot be read: {e}"),
        ),
    }
}

fn listed(standby: &Standby) -> Option<PoolStandby> {
    let state = match standby.state {
        StandbyState::Building => PoolStandbyState::Building,
        StandbyState::Ready => PoolStandbyState::Ready,
        StandbyState::Claimed => PoolStandbyState::Claimed,
        StandbyState::Discarding => PoolStandbyState::Discarding,
        StandbyState::Gone => return None,
    };
    Some(PoolStandby {
        standby_id: standby.id,
        site_name: standby.site_name.clone(),
        state,
        since: standby.since,
        claimed_by: standby.claimed_by,
    })
}

/// The pool as the store has it now, with `configured` as `STANDBY_POOL_SIZE`.
pub(crate) async fn read<S: SagaStore>(
    store: &S,
    configured: u32,
    now: DateTime<Utc>,
) -> PoolReply {
    let read = async {
        let setting = store.pool_setting().await?;
        let standbys = store.standbys(None).await?;
        let figures = store
            .pool_figures(now - chrono::TimeDelta::hours(1))
            .await?;
        Ok::<_, crate::store::Error>((setting, standbys, figures))
    };
    let (setting, standbys, figures) = match read.await {
        Ok(read) => read,
        Err(e) => return failed(store_error(e)),
    };
    let standbys: Vec<PoolStandby> = standbys.iter().filter_map(listed).collect();
    let count = |state| standbys.iter().filter(|s| s.state == state).count() as u32;
    PoolReply {
        size: effective_size(configured, setting.as_ref()),
        source: match setting.as_ref().and_then(|s| s.size) {
            Some(_) => PoolSizeSource::Operator,
            None => PoolSizeSource::Configured,
        },
        configured_size: configured,
        last_action: setting.map(|s| s.action),
        counts: PoolCounts {
            building: count(PoolStandbyState::Building),
            ready: count(PoolStandbyState::Ready),
            claimed: count(PoolStandbyState::Claimed),
            discarding: count(PoolStandbyState::Discarding),
        },
        taken_last_hour: figures.taken,
        missed_last_hour: figures.missed,
        standbys,
        error: None,
    }
}

/// What a set request asks: a size, or `None` to clear; or why it is refused.
pub(crate) fn asked(request: &PoolSetRequest) -> Result<Option<u32>, String> {
    match (request.size, request.clear) {
        (Some(_), true) => Err("give either a size or clear, not both".into()),
        (None, false) => Err(
            "give the size to keep ({\"size\": N}, 0 to 1000) or {\"clear\": true} to go back to STANDBY_POOL_SIZE"
                .into(),
        ),
        (Some(size), false) if size > MAX_POOL_SIZE => Err(format!(
            "the pool size must be 0 to {MAX_POOL_SIZE}, not {size}"
        )),
        (size, _) => Ok(size),
    }
}

/// `saga.admin.pool.set` (the leader only): stores the operators' size (fenced, as
/// every write of the leader), then has the pool's upkeep apply it at once.
pub(crate) async fn set<S: SagaStore>(core: &Core<S>, request: &PoolSetRequest) -> PoolReply {
    let size = match asked(request) {
        Ok(size) => size,
        Err(message) => return failed(error("bad_request", message)),
    };
    let action = operator_action(
        if size.is_some() {
            "pool_size"
        } else {
            "pool_size_cleared"
        },
        request.operator.as_deref(),
        request.reason.as_deref(),
        "nats",
        core.clock.now(),
    );
    tracing::info!(size = ?size, operator = %action.operator, reason = %action.reason, "standby pool size asked");
    if let Err(e) = core
        .store
        .set_pool_setting(&PoolSetting { size, action })
        .await
    {
        return failed(store_error(e));
    }
    core.pool.nudge();
    read(&*core.store, core.pool.configured(), core.clock.now()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(size: Option<u32>, clear: bool) -> PoolSetRequest {
        PoolSetRequest {
            size,
            clear,
            ..PoolSetRequest::default()
        }
    }

    #[test]
    fn a_set_request_says_a_size_or_clear_within_bounds() {
        assert_eq!(asked(&request(Some(0), false)), Ok(Some(0)));
        assert_eq!(asked(&request(Some(1000), false)), Ok(Some(1000)));
        assert_eq!(asked(&request(None, true)), Ok(None));
        assert!(asked(&request(Some(1001), false))
            .unwrap_err()
            .contains("0 to 1000"));
        assert!(asked(&request(Some(2), true)).is_err());
        assert!(asked(&request(None, false)).is_err());
    }

    #[tokio::test]
    async fn the_reply_counts_the_rows_and_says_where_the_size_comes_from() {
        use crate::store::MemoryStore;
        let store = MemoryStore::default();
        let now = Utc::now();
        let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
        for id in &ids {
            let standby = Standby::building(*id, format!("sb-{id}.test"), now);
            store.add_standby(&standby).await.expect("add");
        }
        store
            .standby_ready(ids[0], "db0", now)
            .await
            .expect("ready");
        store
            .standby_ready(ids[1], "db1", now)
            .await
            .expect("ready");
        let signup = uuid::Uuid::new_v4();
        store.claim_standby(signup, now).await.expect("claim");
        store
            .standby_missed(uuid::Uuid::new_v4(), now)
            .await
            .expect("miss");
        let reply = read(&store, 2, now).await;
        assert_eq!(reply.error, None);
        assert_eq!((reply.size, reply.source), (2, PoolSizeSource::Configured));
        assert_eq!(
            reply.counts,
            PoolCounts {
                building: 1,
                ready: 1,
                claimed: 1,
                discarding: 0
            }
        );
        assert_eq!((reply.taken_last_hour, reply.missed_last_hour), (1, 1));
        assert_eq!(reply.standbys.len(), 3);

        let action = operator_action("pool_size", Some("ann"), Some("sale"), "x", now);
        store
            .set_pool_setting(&PoolSetting {
                size: Some(7),
                action,
            })
            .await
            .expect("set");
        let reply = read(&store, 2, now).await;
        assert_eq!((reply.size, reply.source), (7, PoolSizeSource::Operator));
        assert_eq!(reply.last_action.expect("action").operator, "ann");
        // An hour on, the figures are empty.
        let later = read(&store, 2, now + chrono::TimeDelta::minutes(61)).await;
        assert_eq!((later.taken_last_hour, later.missed_last_hour), (0, 0));
    }
}
