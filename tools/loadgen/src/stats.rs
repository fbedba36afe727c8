//! Percentiles.

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
