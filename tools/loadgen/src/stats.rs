//! Measuring: percentiles, and the recorder both runs share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Semaphore};
use uuid::Uuid;

/// p50, p99 and max of a sample.
pub struct Summary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Nearest-rank percentiles; zeros for an empty sample.
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self {
                p50: 0.0,
                p99: 0.0,
                max: 0.0,
            };
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank =
            |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// What one run measured.
pub struct Report {
    /// Sagas finished.
    pub sagas: usize,
    /// Wall time from first publish to last terminal event.
    pub elapsed: Duration,
    /// Per-step overhead samples (ms).
    pub step_overhead_ms: Vec<f64>,
    /// Saga latency samples (ms).
    pub saga_latency_ms: Vec<f64>,
    /// The orchestrator's own time per report (ms): from its delivery to the next
    /// command handed to NATS, the store's commit included (`saga_input_seconds`).
    /// Empty for the baseline.
    pub handling_ms: Vec<f64>,
}

/// Lets at most `concurrency` sagas be in flight and notes when each started.
#[derive(Clone)]
pub struct Gate {
    started: Arc<Mutex<HashMap<Uuid, Instant>>>,
    slots: Arc<Semaphore>,
}

impl Gate {
    /// Waits for a free slot, then counts `saga` as started now.
    pub async fn admit(&self, saga: Uuid) {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes")
            .forget();
        self.started.lock().await.insert(saga, Instant::now());
    }
}

/// Turns observed dispatches and ends into a [`Report`].
pub struct Recorder {
    gate: Gate,
    last_dispatch: HashMap<Uuid, DateTime<Utc>>,
    report: Report,
    begin: Instant,
}

impl Recorder {
    /// A recorder for runs with `concurrency` sagas in flight.
    pub fn new(concurrency: usize) -> Self {
        Self {
            gate: Gate {
                started: Arc::default(),
                slots: Arc::new(Semaphore::new(concurrency)),
            },
            last_dispatch: HashMap::new(),
            report: Report {
                sagas: 0,
                elapsed: Duration::ZERO,
                step_overhead_ms: Vec::new(),
                saga_latency_ms: Vec::new(),
                handling_ms: Vec::new(),
            },
            begin: Instant::now(),
        }
    }

    /// The gate the publisher goes through.
    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    /// A step of `saga` was dispatched at `at` (or the saga ended then): the time since
    /// the previous dispatch is one step's round trip, all overhead for a no-op step.
    pub fn dispatched(&mut self, saga: Uuid, at: DateTime<Utc>) {
        if let Some(previous) = self.last_dispatch.insert(saga, at) {
            self.report
                .step_overhead_ms
                .push((at - previous).num_microseconds().unwrap_or_default() as f64 / 1000.0);
        }
    }

    /// `saga` ended: its latency is recorded and its slot freed.
    pub async fn finished(&mut self, saga: Uuid) {
        if let Some(t0) = self.gate.started.lock().await.remove(&saga) {
            self.report
                .saga_latency_ms
                .push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        self.last_dispatch.remove(&saga);
        self.report.sagas += 1;
        self.gate.slots.add_permits(1);
    }

    /// Sagas finished so far.
    pub fn finished_count(&self) -> usize {
        self.report.sagas
    }

    /// The report, timed from the recorder's creation.
    pub fn report(mut self) -> Report {
        self.report.elapsed = self.begin.elapsed();
        self.report
    }
}
