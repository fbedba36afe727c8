//! The standby pool as operators run it, end to end, the five services as processes
//! (as `standby_pool.rs`), the orchestrator with its HTTP API and
//! `STANDBY_POOL_SIZE=0`:
//!
//! - `PUT /api/v1/pool` sets the size without a restart: the pool grows; the reply
//!   says the size comes from an operator, who and why;
//! - two signups race for the one ready standby: `saga.admin.pool` and
//!   `GET /api/v1/pool` count one taken and one missed in the last hour;
//! - the size set survives an orchestrator restart (the configured size is still 0)
//!   and the ready standbys stay;
//! - a size of 0 drains the pool: nothing left of any standby (no folder, database or
//!   ledger row); `DELETE /api/v1/pool` goes back to the configured size.

use std::time::{Duration, Instant};

use contracts::pool::{PoolReply, PoolSizeSource};
use contracts::SagaStatus;
use orchestrator::store::{SagaStore, Standby, StandbyState};
use serde_json::json;
use tests::http_api::{free_port, wait_for_role, API_SECRET, READ_TOKEN};
use tests::pool_world::{PoolWorld, PREPARED};
use uuid::Uuid;

/// The pool's world ([`tests::pool_world`]) with the orchestrator's HTTP API.
struct World {
    pool: PoolWorld,
    api: String,
    http: reqwest::Client,
}

impl std::ops::Deref for World {
    type Target = PoolWorld;
    fn deref(&self) -> &PoolWorld {
        &self.pool
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut PoolWorld {
        &mut self.pool
    }
}

async fn world() -> World {
    let port = free_port();
    let pool = PoolWorld::start_with(vec![
        ("STANDBY_POOL_SIZE", "0".to_string()),
        ("HTTP_ADDR", format!("127.0.0.1:{port}")),
        ("PROVISIONING_API_SECRET", API_SECRET.to_string()),
        ("PROVISIONING_READ_TOKEN", READ_TOKEN.to_string()),
    ])
    .await;
    let api = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for_role(&http, &api, "leader").await;
    World { pool, api, http }
}

async fn get_pool(w: &World) -> PoolReply {
    let response = w
        .http
        .get(format!("{}/api/v1/pool", w.api))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .expect("GET /api/v1/pool");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a pool reply")
}

async fn put_size(w: &World, size: u32, reason: &str) -> reqwest::Response {
    w.http
        .put(format!("{}/api/v1/pool", w.api))
        .header("X-Provisioning-Secret", API_SECRET)
        .header("X-Operator", "ann")
        .json(&json!({"size": size, "reason": reason}))
        .send()
        .await
        .expect("PUT /api/v1/pool")
}

/// Waits until the pool has `ready` standbys ready and nothing else under way.
async fn settles(w: &World, ready: usize) -> Vec<Standby> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = w.store.standbys(None).await.expect("pool");
        if rows.len() == ready && rows.iter().all(|s| s.state == StandbyState::Ready) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "the pool never settled at {ready} ready: {rows:?}\n{}",
            w.h.service_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_size_the_pool_live_it_survives_a_restart_and_drains_to_nothing() {
    let mut w = world().await;
    let off = get_pool(&w).await;
    assert_eq!(
        (off.size, off.source, off.configured_size),
        (0, PoolSizeSource::Configured, 0)
    );
    assert!(
        off.standbys.is_empty() && off.last_action.is_none(),
        "{off:?}"
    );

    // Bad input changes nothing.
    let refused = put_size(&w, 1001, "too many").await;
    assert_eq!(refused.status(), 400, "{:?}", refused.text().await);
    assert_eq!(get_pool(&w).await.size, 0);

    // Grown without a restart.
    let set = put_size(&w, 1, "launch day").await;
    assert_eq!(set.status(), 200);
    let set: PoolReply = set.json().await.expect("reply");
    assert_eq!((set.size, set.source), (1, PoolSizeSource::Operator));
    let action = set.last_action.expect("recorded");
    assert_eq!(
        (
            action.action.as_str(),
            action.operator.as_str(),
            action.reason.as_str()
        ),
        ("pool_size", "ann", "launch day")
    );
    let standby = settles(&w, 1).await.remove(0);

    // Two signups race for the one ready standby: one takes it, one misses.
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (sub_a, sub_b) = (w.h.subdomain("live-a"), w.h.subdomain("live-b"));
    let (signup_a, signup_b) = (w.h.signup(a, &sub_a), w.h.signup(b, &sub_b));
    futures::join!(w.h.publish_signup(&signup_a), w.h.publish_signup(&signup_b));
    for id in [a, b] {
        assert_eq!(
            w.h.wait_terminal(id, 120).await,
            SagaStatus::Completed,
            "{:#?}",
            w.h.get(id).await
        );
    }
    let mut prepared = 0;
    for id in [a, b] {
        if w.h
            .timeline(id, 1)
            .await
            .first()
            .map(|e| e.message.as_str())
            == Some(PREPARED)
        {
            prepared += 1;
        }
    }
    assert_eq!(prepared, 1, "one signup took the standby");
    let by_nats: PoolReply = w.h.request(w.h.subjects.admin_pool(), &json!({})).await;
    assert_eq!(
        (by_nats.taken_last_hour, by_nats.missed_last_hour),
        (1, 1),
        "{by_nats:?}"
    );
    let by_http = get_pool(&w).await;
    assert_eq!((by_http.taken_last_hour, by_http.missed_last_hour), (1, 1));
    assert!(
        !by_http.standbys.iter().any(|s| s.standby_id == standby.id),
        "a used-up standby is not listed"
    );

    // Two now, and refilled.
    assert_eq!(put_size(&w, 2, "more signups").await.status(), 200);
    let kept = settles(&w, 2).await;
    let counted = get_pool(&w).await;
    assert_eq!((counted.counts.ready, counted.counts.building), (2, 0));
    assert_eq!(counted.standbys.len(), 2);

    // Restarted with STANDBY_POOL_SIZE=0: the size set stays, and so do the standbys.
    w.services.terminate("orchestrator");
    w.restart("orchestrator");
    wait_for_role(&w.http, &w.api, "leader").await;
    let after = get_pool(&w).await;
    assert_eq!(
        (after.size, after.source, after.configured_size),
        (2, PoolSizeSource::Operator, 0)
    );
    // A few rounds of the upkeep (every 2 s) under the new process: nothing discarded.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still: Vec<Uuid> = settles(&w, 2).await.iter().map(|s| s.id).collect();
    let mut kept_ids: Vec<Uuid> = kept.iter().map(|s| s.id).collect();
    kept_ids.sort();
    let mut still = still;
    still.sort();
    assert_eq!(still, kept_ids, "the same standbys, kept");

    // 0 drains it: nothing of any standby is left.
    let drained = put_size(&w, 0, "maintenance").await;
    assert_eq!(drained.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !w.store.standbys(None).await.expect("pool").is_empty() {
        assert!(
            Instant::now() < deadline,
            "not drained: {:?}\n{}",
            w.store.standbys(None).await,
            w.h.service_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for standby in &kept {
        w.assert_standby_left_nothing(standby).await;
    }
    let empty = get_pool(&w).await;
    assert_eq!(empty.counts, contracts::pool::PoolCounts::default());
    assert!(empty.standbys.is_empty());

    // Cleared: back to STANDBY_POOL_SIZE (0 here).
    let cleared = w
        .http
        .delete(format!("{}/api/v1/pool", w.api))
        .header("X-Provisioning-Secret", API_SECRET)
        .header("X-Operator", "bob")
        .json(&json!({"reason": "done"}))
        .send()
        .await
        .expect("DELETE /api/v1/pool");
    assert_eq!(cleared.status(), 200);
    let cleared: PoolReply = cleared.json().await.expect("reply");
    assert_eq!(
        (cleared.size, cleared.source),
        (0, PoolSizeSource::Configured)
    );
    let action = cleared.last_action.expect("recorded");
    assert_eq!(
        (action.action.as_str(), action.operator.as_str()),
        ("pool_size_cleared", "bob")
    );

    w.pool.finish().await;
}
