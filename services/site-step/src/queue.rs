//! At most N `new-site` runs at once, first come first served, and each waiting saga
//! knows its place in the line.
//!
//! Cancel-safe: a waiter whose future is dropped (its deadline passed, an undo of its
//! saga arrived) leaves the line at once, and the places of those behind it move up.
//! The places are a [`tokio::sync::Semaphore`] (fair, and a dropped `acquire` leaves
//! its queue); the position shown to people comes from tickets: each waiter takes the
//! next number, its place is one more than the number of smaller tickets still
//! waiting, and a guard returns the ticket when the waiter gets in or gives up.
//!
//! Standby builds (sites made ahead of time for the pool) never delay a signup: they
//! take no ticket and never queue in the semaphore (whose fairness would put them
//! ahead of signups arriving later); they wait until a place is free and nobody waits,
//! and hold at most all places but one, so a signup arriving meanwhile finds one.
//!
//! Its state is exported as gauges whenever it changes: `site_new_site_waiting` (the
//! line's length) and `site_new_site_in_use` (places taken), beside
//! `site_new_site_places` (the capacity).

use std::collections::BTreeSet;
use std::sync::Mutex;

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{watch, Notify, Semaphore, SemaphorePermit};

/// A fair gate with `capacity` places.
pub struct Queue {
    capacity: usize,
    places: Semaphore,
    line: Mutex<Line>,
    /// Bumped whenever a ticket leaves the line, so that waiters recount their place.
    moved: watch::Sender<u64>,
    /// Told whenever a place is given back, for standby builds waiting for one.
    freed: Notify,
    /// Places held by standby builds.
    standbys: AtomicUsize,
}

/// The tickets of the waiters, in the order they came.
#[derive(Default)]
struct Line {
    next: u64,
    waiting: BTreeSet<u64>,
}

/// A place held; dropping it lets the next one in.
pub struct Place<'q> {
    queue: &'q Queue,
    permit: Option<SemaphorePermit<'q>>,
    standby: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.standby {
            self.queue.standbys.fetch_sub(1, Ordering::SeqCst);
        }
        self.queue.freed.notify_waiters();
        self.queue.report();
    }
}

/// A waiter's ticket; it leaves the line when dropped, whether the waiter got in or
/// gave up.
struct Ticket<'q> {
    queue: &'q Queue,
    number: u64,
    admitted: bool,
}

impl Ticket<'_> {
    /// Place in line, 1 = next.
    fn position(&self) -> usize {
        self.queue.line().waiting.range(..self.number).count() + 1
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.admitted {
            tracing::info!("left the line for new-site before its turn");
        }
        self.queue.line().waiting.remove(&self.number);
        self.queue.moved.send_modify(|n| *n = n.wrapping_add(1));
        self.queue.report();
    }
}

impl Queue {
    /// A gate letting `capacity` (at least 1) through at once.
    pub fn new(capacity: usize) -> Self {
        let queue = Self {
            capacity: capacity.max(1),
            places: Semaphore::new(capacity.max(1)),
            line: Mutex::default(),
            moved: watch::Sender::new(0),
            freed: Notify::new(),
            standbys: AtomicUsize::new(0),
        };
        queue.report();
        queue
    }

    fn line(&self) -> std::sync::MutexGuard<'_, Line> {
        // The line holds plain numbers: a panic elsewhere cannot leave it inconsistent.
        self.line.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the gauges to the line's length and the places taken.
    fn report(&self) {
        let waiting = self.waiting();
        let in_use = self
            .capacity
            .saturating_sub(self.places.available_permits());
        metrics::gauge!("site_new_site_places").set(self.capacity as f64);
        metrics::gauge!("site_new_site_waiting").set(waiting as f64);
        metrics::gauge!("site_new_site_in_use").set(in_use as f64);
    }

    /// How many wait for a place now.
    pub fn waiting(&self) -> usize {
        self.line().waiting.len()
    }

    /// Waits for a place; `on_position(n)` is called with the place in line (1 = next)
    /// when the wait starts and whenever it changes (not at all when a place is free
    /// at once). Dropping the returned future while it waits leaves the line.
    pub async fn enter(&self, mut on_position: impl FnMut(usize)) -> Place<'_> {
        let mut ticket = {
            let mut line = self.line();
            // Straight in only when nobody waits: a newcomer never passes the line.
            if line.waiting.is_empty() {
                if let Ok(permit) = self.places.try_acquire() {
                    drop(line);
                    self.report();
                    return Place {
                        queue: self,
                        permit: Some(permit),
                        standby: false,
                    };
                }
            }
            let number = line.next;
            line.next += 1;
            line.waiting.insert(number);
            drop(line);
            self.report();
            Ticket {
                queue: self,
                number,
                admitted: false,
            }
        };
        let mut moved = self.moved.subscribe();
        // One `acquire` for the whole wait: it keeps this waiter's turn in the
        // semaphore's queue, which a fresh call per change would lose.
        let acquire = self.places.acquire();
        tokio::pin!(acquire);
        let mut shown = None;
        loop {
            let position = ticket.position();
            if shown != Some(position) {
                shown = Some(position);
                on_position(position);
            }
            tokio::select! {
                biased;
                permit = &mut acquire => {
                    ticket.admitted = true;
                    // The ticket's drop reports the line, with this place taken.
                    let place = Place {
                        queue: self,
                        permit: Some(permit.expect("the places are never closed")),
                        standby: false,
                    };
                    drop(ticket);
                    return place;
                }
                // The sender lives in `self`: `changed` cannot fail while we wait.
                _ = moved.changed() => {}
            }
        }
    }
}

impl Queue {
    /// Waits for a place for a standby build: only when one is free, nobody waits and
    /// standby builds hold fewer than all places but one (with one place, the one).
    /// Dropping the future while it waits changes nothing.
    pub async fn enter_when_idle(&self) -> Place<'_> {
        let mut moved = self.moved.subscribe();
        let standby_limit = self.capacity.saturating_sub(1).max(1);
        loop {
            // Registered before looking, so a place given back meanwhile still wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let line = self.line();
                if line.waiting.is_empty() && self.standbys.load(Ordering::SeqCst) < standby_limit {
                    if let Ok(permit) = self.places.try_acquire() {
                        self.standbys.fetch_add(1, Ordering::SeqCst);
                        drop(line);
                        self.report();
                        return Place {
                            queue: self,
                            permit: Some(permit),
                            standby: true,
                        };
                    }
                }
            }
            tokio::select! {
                _ = &mut freed => {}
                _ = moved.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Lets every task that can run do so (time is paused: the sleep ends only once
    /// the runtime has nothing else to do).
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    type Seen = Arc<Mutex<Vec<usize>>>;

    /// A task waiting for a place, recording the positions it is told; it holds the
    /// place until `release` is dropped or sent.
    fn waiter(
        queue: &Arc<Queue>,
        release: tokio::sync::oneshot::Receiver<()>,
    ) -> (Seen, tokio::task::JoinHandle<()>) {
        let seen: Seen = Arc::default();
        let task = {
            let (queue, seen) = (queue.clone(), seen.clone());
            tokio::spawn(async move {
                let _place = queue.enter(|n| seen.lock().expect("lock").push(n)).await;
                let _ = release.await;
            })
        };
        (seen, task)
    }

    fn positions(seen: &Seen) -> Vec<usize> {
        seen.lock().expect("lock").clone()
    }

    #[tokio::test(start_paused = true)]
    async fn lets_capacity_through_and_reports_positions() {
        let queue = Arc::new(Queue::new(2));
        let a = queue.enter(|_| panic!("a place was free")).await;
        let _b = queue.enter(|_| panic!("a place was free")).await;
        let (release, held) = tokio::sync::oneshot::channel();
        let (seen, third) = waiter(&queue, held);
        settle().await;
        assert!(!third.is_finished(), "the third waits");
        assert_eq!(positions(&seen), vec![1]);
        assert_eq!(queue.waiting(), 1);
        drop(a);
        settle().await;
        assert_eq!(queue.waiting(), 0, "the third got in once a place freed");
        drop(release);
        third.await.expect("the third ran");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_the_line_at_once() {
        let queue = Arc::new(Queue::new(1));
        let first = queue.enter(|_| panic!("a place was free")).await;

        // The second gives up after 5 s, as a step does when its deadline passes.
        let gives_up = {
            let queue = queue.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(5), queue.enter(|_| {}))
                    .await
                    .is_err()
            })
        };
        settle().await;
        let (release_third, held) = tokio::sync::oneshot::channel();
        let (third_seen, third) = waiter(&queue, held);
        settle().await;
        let (_release_fourth, held) = tokio::sync::oneshot::channel();
        let (fourth_seen, fourth) = waiter(&queue, held);
        settle().await;
        assert_eq!(queue.waiting(), 3);
        assert_eq!(positions(&third_seen), vec![2]);
        assert_eq!(positions(&fourth_seen), vec![3]);

        assert!(gives_up.await.expect("task"), "the second timed out");
        assert_eq!(queue.waiting(), 2, "the second left the line at once");
        settle().await;
        assert_eq!(positions(&third_seen), vec![2, 1], "the third moved up");
        assert_eq!(positions(&fourth_seen), vec![3, 2], "the fourth moved up");

        // The place goes to the third, not to the one that gave up.
        drop(first);
        settle().await;
        assert_eq!(queue.waiting(), 1, "the third got in");
        assert_eq!(positions(&fourth_seen), vec![3, 2, 1]);
        drop(release_third);
        third.await.expect("the third ran");
        settle().await;
        assert_eq!(queue.waiting(), 0, "the fourth got in");
        drop(_release_fourth);
        fourth.await.expect("the fourth ran");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_aborted_while_next_in_line_passes_its_turn_on() {
        // An undo arriving drops the waiting execute: the same as aborting its task.
        let queue = Arc::new(Queue::new(1));
        let first = queue.enter(|_| panic!("a place was free")).await;
        let (_keep, held) = tokio::sync::oneshot::channel();
        let (_, aborted) = waiter(&queue, held);
        settle().await;
        aborted.abort();
        assert!(aborted.await.expect_err("aborted").is_cancelled());
        assert_eq!(queue.waiting(), 0);
        drop(first);

        // Later arrivals find the line empty and a place free: straight in.
        let again = tokio::time::timeout(
            Duration::from_secs(1),
            queue.enter(|_| panic!("nobody should be ahead")),
        )
        .await;
        assert!(again.is_ok(), "a later arrival gets the place");
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_capacity_inside_and_every_patient_waiter_gets_in() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let queue = Arc::new(Queue::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..8u64 {
            let (queue, inside, most) = (queue.clone(), inside.clone(), most.clone());
            // Every other one (from the third on) gives up while it waits.
            let patient = i < 2 || i % 2 == 0;
            tasks.push((
                patient,
                tokio::spawn(async move {
                    let wait = Duration::from_secs(if patient { 3600 } else { 1 });
                    let Ok(_place) = tokio::time::timeout(wait, queue.enter(|_| {})).await else {
                        return false;
                    };
                    let now = inside.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    inside.fetch_sub(1, SeqCst);
                    true
                }),
            ));
            settle().await;
        }
        for (patient, task) in tasks {
            assert_eq!(task.await.expect("task"), patient);
        }
        assert_eq!(most.load(SeqCst), 2);
        assert_eq!(queue.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_build_waits_behind_every_signup_and_leaves_one_place_free() {
        let queue = Arc::new(Queue::new(2));
        let signup = queue.enter(|_| panic!("a place was free")).await;
        // One place free, but a standby may hold at most one of two: it gets it.
        let first_standby = queue.enter_when_idle().await;
        // Both places taken; a signup waits, then a standby build arrives.
        let (release, held) = tokio::sync::oneshot::channel();
        let (seen, waiting_signup) = waiter(&queue, held);
        settle().await;
        let second_standby = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let _place = queue.enter_when_idle().await;
            })
        };
        settle().await;
        assert_eq!(
            positions(&seen),
            vec![1],
            "the standby took no place in line"
        );
        drop(signup);
        settle().await;
        assert_eq!(
            queue.waiting(),
            0,
            "the freed place went to the waiting signup"
        );
        assert!(!second_standby.is_finished(), "the standby still waits");
        drop(release);
        waiting_signup.await.expect("signup ran");
        settle().await;
        assert!(
            !second_standby.is_finished(),
            "a place is free, but standbys keep one place for signups"
        );
        drop(first_standby);
        settle().await;
        assert!(
            second_standby.is_finished(),
            "the standby got in once allowed"
        );
        // A signup arriving now finds a place at once.
        let _now = tokio::time::timeout(
            Duration::from_secs(1),
            queue.enter(|_| panic!("a place is kept for signups")),
        )
        .await
        .expect("straight in");
    }
}
