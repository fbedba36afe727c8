//! The progress outbox: progress events are stored with their transition and marked
//! published once JetStream confirms them; whatever stays unconfirmed (a crash, a NATS
//! outage) is published again, at start-up and by a periodic sweep.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::driver::Core;
use crate::store::SagaStore;

/// Confirms published progress events to the store in batches (the outbox), and
/// republishes the ones left unconfirmed (after a crash or a NATS outage).
pub(crate) async fn outbox_loop<S: SagaStore>(
    core: Arc<Core<S>>,
    mut published: mpsc::UnboundedReceiver<(Uuid, u64)>,
    stop: CancellationToken,
) {
    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    sweep.tick().await;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            received = published.recv() => match received {
                Some(item) => {
                    batch.push(item);
                    while let Ok(item) = published.try_recv() {
                        batch.push(item);
                    }
                    if let Err(e) = core.store.mark_published(&batch).await {
                        tracing::warn!(error = %e, "could not confirm published progress; the sweep republishes it");
                    }
                    batch.clear();
                }
                None => return,
            },
            _ = sweep.tick() => republish_unconfirmed(&core, chrono::Duration::seconds(5)).await,
            () = stop.cancelled() => {
                while let Ok(item) = published.try_recv() {
                    batch.push(item);
                }
                let _ = core.store.mark_published(&batch).await;
                return;
            }
        }
    }
}

/// Publishes every stored, unconfirmed progress event (JetStream drops copies it
/// already has within its duplicate window, keyed `<saga_id>:<sequence>`).
pub(crate) async fn republish_unconfirmed<S: SagaStore>(core: &Core<S>, min_age: chrono::Duration) {
    let events = match core.store.unpublished().await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the outbox");
            return;
        }
    };
    // Events stored moments ago are usually being published right now; leave them.
    let settled: Vec<_> = events
        .into_iter()
        .filter(|e| Utc::now() - e.at >= min_age)
        .collect();
    if settled.is_empty() {
        return;
    }
    tracing::info!(
        count = settled.len(),
        "republishing unconfirmed progress events"
    );
    // Outside any saga's span: these events go without a `traceparent`.
    if core.bus.progress(&settled, None).await.is_ok() {
        let keys: Vec<_> = settled.iter().map(|e| (e.saga_id, e.sequence)).collect();
        if let Err(e) = core.store.mark_published(&keys).await {
            tracing::warn!(error = %e, "could not confirm republished progress");
        }
    }
}
