//! Every saga's pending timer (a step deadline or a retry's due time) in one task.
//!
//! A saga waits for at most one timer at a time (its phase's), so scheduling a new one
//! replaces the old: memory stays proportional to the sagas in flight, whatever the
//! timeouts. Timers live in memory only; the stored phase holds the instant, and a
//! restarted orchestrator re-arms them from the store.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::driver::{Router, Work};
use crate::saga::Timer;

/// Handle to the timer task.
#[derive(Clone)]
pub(crate) struct Timers {
    schedule: mpsc::UnboundedSender<Timer>,
}

impl Timers {
    /// Starts the task; fired timers go to the saga's worker through `router`.
    pub(crate) fn spawn(router: Router, clock: Clock, stop: CancellationToken) -> Self {
        let (schedule, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(requests, router, clock, stop));
        Self { schedule }
    }

    /// Arms `timer`, replacing the saga's previous one.
    pub(crate) fn schedule(&self, timer: Timer) {
        let _ = self.schedule.send(timer);
    }
}

#[derive(Default)]
struct Pending {
    by_time: BTreeMap<(DateTime<Utc>, Uuid), Timer>,
    by_saga: HashMap<Uuid, DateTime<Utc>>,
}

impl Pending {
    fn insert(&mut self, timer: Timer) {
        if let Some(previous) = self.by_saga.insert(timer.saga_id, timer.at) {
            self.by_time.remove(&(previous, timer.saga_id));
        }
        self.by_time.insert((timer.at, timer.saga_id), timer);
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.by_time.keys().next().map(|(at, _)| *at)
    }

    fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Timer> {
        let key = *self.by_time.keys().next().filter(|(at, _)| *at <= now)?;
        let timer = self.by_time.remove(&key)?;
        self.by_saga.remove(&timer.saga_id);
        Some(timer)
    }
}

async fn run(
    mut requests: mpsc::UnboundedReceiver<Timer>,
    router: Router,
    clock: Clock,
    stop: CancellationToken,
) {
    let mut pending = Pending::default();
    loop {
        let wait = pending.next_due().map_or(Duration::from_secs(3600), |at| {
            (at - clock.now()).to_std().unwrap_or_default()
        });
        tokio::select! {
            () = stop.cancelled() => return,
            request = requests.recv() => match request {
                Some(timer) => pending.insert(timer),
                None => return,
            },
            () = tokio::time::sleep(wait) => {
                while let Some(timer) = pending.pop_due(clock.now()) {
                    router.send(timer.saga_id, Work::Timer(timer)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::Phase;

    fn timer(saga: Uuid, at: DateTime<Utc>) -> Timer {
        Timer {
            saga_id: saga,
            run: 1,
            phase: Phase::Idle,
            at,
        }
    }

    #[test]
    fn a_new_timer_replaces_the_sagas_previous_one() {
        let now = Utc::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut pending = Pending::default();
        pending.insert(timer(a, now + chrono::Duration::seconds(60)));
        pending.insert(timer(b, now + chrono::Duration::seconds(5)));
        pending.insert(timer(a, now + chrono::Duration::seconds(1)));
        assert_eq!(pending.by_time.len(), 2, "one timer per saga");
        assert_eq!(pending.next_due(), Some(now + chrono::Duration::seconds(1)));
        assert!(pending.pop_due(now).is_none(), "nothing due yet");
        let later = now + chrono::Duration::seconds(10);
        assert_eq!(pending.pop_due(later).map(|t| t.saga_id), Some(a));
        assert_eq!(pending.pop_due(later).map(|t| t.saga_id), Some(b));
        assert!(
            pending
                .pop_due(later + chrono::Duration::seconds(100))
                .is_none(),
            "a's 60 s timer was replaced"
        );
    }
}
