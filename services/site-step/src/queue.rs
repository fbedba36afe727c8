//! At most N `new-site` runs at once, first come first served, and each waiting saga
//! knows its place in the line.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use uuid::Uuid;

/// A FIFO gate with `capacity` places.
pub struct Queue {
    capacity: usize,
    state: Mutex<State>,
    changed: Notify,
}

struct State {
    running: usize,
    waiting: VecDeque<Uuid>,
}

/// A place held; dropping it lets the next one in.
pub struct Place<'q> {
    queue: &'q Queue,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.queue
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running -= 1;
        self.queue.changed.notify_waiters();
    }
}

impl Queue {
    /// A gate letting `capacity` (at least 1) through at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State {
                running: 0,
                waiting: VecDeque::new(),
            }),
            changed: Notify::new(),
        }
    }

    /// Waits for a place; `on_position(n)` is called with the place in line (1 = next)
    /// whenever it changes while waiting (not called when a place is free at once).
    pub async fn enter(&self, id: Uuid, mut on_position: impl FnMut(usize)) -> Place<'_> {
        let mut last = None;
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .push_back(id);
        loop {
            let notified = self.changed.notified();
            {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let position = state.waiting.iter().position(|w| *w == id).unwrap_or(0);
                if position == 0 && state.running < self.capacity {
                    state.waiting.pop_front();
                    state.running += 1;
                    drop(state);
                    self.changed.notify_waiters();
                    return Place { queue: self };
                }
                let in_line = position + 1;
                if last != Some(in_line) {
                    last = Some(in_line);
                    on_position(in_line);
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn lets_capacity_through_and_reports_positions() {
        let queue = Arc::new(Queue::new(2));
        let a = queue
            .enter(Uuid::new_v4(), |_| panic!("a place was free"))
            .await;
        let _b = queue
            .enter(Uuid::new_v4(), |_| panic!("a place was free"))
            .await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let waiter = {
            let (queue, seen) = (queue.clone(), seen.clone());
            tokio::spawn(async move {
                let _c = queue
                    .enter(Uuid::new_v4(), |n| seen.lock().expect("lock").push(n))
                    .await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the third waits");
        assert_eq!(*seen.lock().expect("lock"), vec![1]);
        drop(a);
        waiter.await.expect("the third gets in once a place frees");
    }
}
