//! Which instance drives sagas. Any number of orchestrators may run on one store; one
//! holds the lead (a lease in the store, renewed every third of its length) and
//! drives: it reads signups and step reports, keeps timers, sweeps, replays. The
//! others stand by, answer the read-only requests, and try to take the lead every
//! sixth of the lease. The store fences every write with the lease's number, so an
//! instance that lost the lead without noticing (paused, cut off) has its late writes
//! refused rather than racing the new leader.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::SagaStore;

/// How long this instance may still act as the leader, by its own clock: a lease's
/// length, less a sixth, after it sent the last lease write the store accepted. The
/// store counts the lease from when it made that write, which is later, so it cannot
/// give the lead to a standby before the tenure ends: an instance that acts only
/// within its tenure never acts beside a new leader, even after being frozen for a
/// while (its clock ran on meanwhile). Unbounded by default (a store without a lease,
/// in tests).
#[derive(Clone, Debug, Default)]
pub(crate) struct Tenure(Arc<Mutex<Option<Instant>>>);

impl Tenure {
    fn bounded(until: Instant) -> Self {
        Self(Arc::new(Mutex::new(Some(until))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Option<Instant>) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Whether this instance may still act as the leader.
    pub fn holds(&self) -> bool {
        self.with(|until| until.is_none_or(|until| Instant::now() < until))
    }

    fn until(&self) -> Option<Instant> {
        self.with(|until| *until)
    }

    fn extend_to(&self, until: Instant) {
        self.with(|current| {
            if current.is_some_and(|c| c < until) {
                *current = Some(until);
            }
        });
    }

    /// Ends the tenure now (the lead is lost).
    pub fn end(&self) {
        self.with(|until| *until = Some(Instant::now()));
    }
}

/// This instance's claim on the lead.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    /// Who this instance is, in the lease row and the logs.
    pub holder: String,
    /// How long the lead lasts without a renewal.
    pub ttl: Duration,
}

impl Lease {
    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    fn poll_every(&self) -> Duration {
        self.ttl / 6
    }

    fn tenure_after(&self, sent: Instant) -> Instant {
        sent + self.ttl - self.ttl / 6
    }

    /// Waits until this instance holds the lead, and returns its fence number and its
    /// tenure; `None` when `stop` comes first.
    pub async fn acquire<S: SagaStore>(
        &self,
        store: &S,
        stop: &CancellationToken,
    ) -> Option<(u64, Tenure)> {
        let mut standing_by = false;
        loop {
            let sent = Instant::now();
            match store.try_lead(&self.holder, self.ttl).await {
                Ok(Some(fence)) => {
                    tracing::info!(holder = %self.holder, fence, "leading sagas");
                    return Some((fence, Tenure::bounded(self.tenure_after(sent))));
                }
                Ok(None) if !standing_by => {
                    standing_by = true;
                    let leader = store.leader().await.ok().flatten();
                    tracing::info!(
                        holder = %self.holder,
                        leader = leader.as_ref().map(|l| l.holder.as_str()).unwrap_or("unknown"),
                        "standing by: another orchestrator leads"
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the saga store to take the lead")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(self.poll_every()) => {}
            }
        }
    }

    /// Renews the lead until `session` ends, extending `tenure` with each renewal;
    /// ends the tenure and `session` when the lead is lost: the store says another
    /// instance holds it, or the tenure ran out before a renewal got through (the store
    /// may give the lead to a standby from then on).
    pub async fn keep<S: SagaStore>(
        self,
        store: Arc<S>,
        fence: u64,
        tenure: Tenure,
        session: CancellationToken,
    ) {
        loop {
            let deadline = tenure.until().unwrap_or_else(|| Instant::now() + self.ttl);
            tokio::select! {
                biased;
                () = session.cancelled() => break,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(fence, "the lead could not be renewed in time: standing down");
                    break;
                }
                () = tokio::time::sleep(self.renew_every()) => {}
            }
            let sent = Instant::now();
            let renewal = tokio::time::timeout(
                self.renew_every(),
                store.renew_lead(&self.holder, fence, self.ttl),
            )
            .await;
            match renewal {
                Ok(Ok(true)) => tenure.extend_to(self.tenure_after(sent)),
                Ok(Ok(false)) => {
                    tracing::warn!(fence, "another orchestrator took the lead: standing down");
                    break;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, fence, "could not renew the lead"),
                Err(_) => tracing::warn!(fence, "renewing the lead got no answer in time"),
            }
        }
        tenure.end();
        session.cancel();
    }

    /// Gives the lead up, so a standby takes over at once rather than after the lease.
    pub async fn resign<S: SagaStore>(&self, store: &S, fence: u64) {
        match tokio::time::timeout(self.renew_every(), store.resign(&self.holder, fence)).await {
            Ok(Ok(())) => tracing::info!(fence, "lead given up"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, fence, "could not give the lead up; it lapses with its lease")
            }
            Err(_) => tracing::warn!(
                fence,
                "giving the lead up got no answer; it lapses with its lease"
            ),
        }
    }
}

/// A name for this instance that no other running instance has: host, process id and
/// a random part (a restarted process is a new holder).
pub(crate) fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orchestrator".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}/{}/{}", std::process::id(), &random[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn lease(holder: &str) -> Lease {
        Lease {
            holder: holder.into(),
            ttl: Duration::from_secs(3),
        }
    }

    #[tokio::test]
    async fn the_leader_stands_down_when_another_takes_the_lead() {
        let store = Arc::new(MemoryStore::default());
        let stop = CancellationToken::new();
        let first = lease("first");
        let (fence, tenure) = first.acquire(&*store, &stop).await.expect("the lead");
        let session = CancellationToken::new();
        let keeper = tokio::spawn(first.clone().keep(
            store.clone(),
            fence,
            tenure.clone(),
            session.clone(),
        ));

        // While it renews, nobody else gets the lead.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            store.try_lead("second", first.ttl).await.expect("ask"),
            None
        );
        assert!(!session.is_cancelled());

        // Given up (as if its lease lapsed), the lead goes to another holder; the
        // first's next renewal finds that out and ends its session.
        store.resign("first", fence).await.expect("resign");
        let taken = store.try_lead("second", first.ttl).await.expect("ask");
        assert!(taken.is_some_and(|second| second > fence), "{taken:?}");
        keeper.await.expect("keeper");
        assert!(session.is_cancelled(), "the deposed leader's session ends");
        assert!(!tenure.holds(), "and it acts as the leader no more");
    }

    /// A leader whose store stops answering stands down when its tenure runs out, a
    /// sixth of a lease before the store could give the lead away.
    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_stands_down_before_its_lease_ends() {
        let store = Arc::new(crate::store::MemoryStore::default());
        let first = lease("first");
        let (fence, tenure) = first
            .acquire(&*store, &CancellationToken::new())
            .await
            .expect("the lead");
        let session = CancellationToken::new();
        // A store that never answers a renewal.
        let silent = Arc::new(Unanswering);
        let keeper = tokio::spawn(first.clone().keep(
            silent,
            fence,
            tenure.clone(),
            session.clone(),
        ));
        tokio::time::sleep(first.ttl / 2).await;
        assert!(tenure.holds(), "within its tenure it still leads");
        keeper.await.expect("keeper");
        assert!(session.is_cancelled());
        assert!(!tenure.holds());
    }

    /// A store whose renewals never come back.
    struct Unanswering;

    impl SagaStore for Unanswering {
        async fn insert(
            &self,
            _: &crate::saga::Saga,
            _: &[contracts::ProgressEvent],
        ) -> Result<crate::store::Inserted, crate::store::Error> {
            unreachable!()
        }
        async fn update(
            &self,
            _: &crate::saga::Saga,
            _: &crate::saga::Saga,
            _: &[contracts::ProgressEvent],
        ) -> Result<crate::store::Updated, crate::store::Error> {
            unreachable!()
        }
        async fn get(
            &self,
            _: uuid::Uuid,
        ) -> Result<Option<crate::saga::Saga>, crate::store::Error> {
            unreachable!()
        }
        async fn list_page(
            &self,
            _: &crate::store::ListQuery,
        ) -> Result<Vec<crate::saga::Saga>, crate::store::Error> {
            unreachable!()
        }
        async fn timeline(
            &self,
            _: uuid::Uuid,
        ) -> Result<Vec<contracts::ProgressEvent>, crate::store::Error> {
            unreachable!()
        }
        async fn in_flight(&self) -> Result<Vec<crate::saga::Saga>, crate::store::Error> {
            unreachable!()
        }
        async fn unpublished(&self) -> Result<Vec<contracts::ProgressEvent>, crate::store::Error> {
            unreachable!()
        }
        async fn mark_published(&self, _: &[(uuid::Uuid, u64)]) -> Result<(), crate::store::Error> {
            unreachable!()
        }
        async fn subdomain_holder(
            &self,
            _: &str,
        ) -> Result<Option<uuid::Uuid>, crate::store::Error> {
            unreachable!()
        }
        async fn renew_lead(
            &self,
            _: &str,
            _: u64,
            _: Duration,
        ) -> Result<bool, crate::store::Error> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_standby_waits_until_the_lead_is_free() {
        let store = Arc::new(MemoryStore::default());
        let stop = CancellationToken::new();
        let (fence, _) = lease("first").acquire(&*store, &stop).await.expect("lead");
        let waiting = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move { lease("second").acquire(&*store, &stop).await })
        };
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(
            !waiting.is_finished(),
            "the standby waits while the lead is held"
        );
        lease("first").resign(&*store, fence).await;
        let (second, _) = waiting.await.expect("standby").expect("the lead");
        assert!(second > fence);

        // A standby that is told to stop stops waiting.
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(lease("third").acquire(&*store, &stop).await.is_none());
    }
}
