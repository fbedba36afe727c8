//! The saga definition: an ordered list of steps, each with its own timeout, retry
//! policy and progress wording. It is data; the state machine knows no step by name.

use std::time::Duration;

/// How often and how patiently an action is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Growth of the delay per attempt.
    pub multiplier: f64,
    /// Share of the delay that is random (0 = none, 1 = "full jitter").
    pub jitter: f64,
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 or more) of one action.
    ///
    /// The jitter is drawn from `seed` (derived from the saga, step and attempt), so the
    /// state machine stays deterministic and a replayed transition schedules the same
    /// instant, while different sagas still spread out.
    pub fn delay_before(&self, next_attempt: u32, seed: u64) -> Duration {
        let exponent = next_attempt.saturating_sub(2).min(30) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let fraction = (seed % 10_000) as f64 / 10_000.0;
        let jitter = self.jitter.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * (1.0 - jitter * fraction))
    }
}

/// One step of the saga.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDefinition {
    /// The step's name; also the subject suffix of its service (`saga.cmd.<name>`).
    pub name: String,
    /// Shown while it runs, such as "Deploying ERPNext instance".
    pub message: String,
    /// Shown while it is undone.
    pub undo_message: String,
    /// Percent shown when the step starts.
    pub percent_start: u8,
    /// Percent shown when it completes.
    pub percent_end: u8,
    /// How long one attempt may take before it counts as failed (and retried).
    pub timeout: Duration,
    /// Retries of the effect.
    pub retry: RetryPolicy,
    /// How long one undo attempt may take.
    pub undo_timeout: Duration,
    /// Retries of the undo; when they run out the saga ends `compensation_failed`.
    pub undo_retry: RetryPolicy,
    /// Whether the step's service can see a subdomain held outside the saga store (a
    /// site folder, a registered tenant), and so is asked at intake and by the
    /// subdomain check (`saga.probe.<step>`). A step that cannot would always say
    /// free: asking it is a round trip for nothing.
    pub sees_subdomains: bool,
}

/// The steps a standby build runs.
pub const STANDBY_STEPS: [&str; 2] = ["database", "site"];

/// The ordered steps of a saga.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaDefinition {
    /// In execution order; undone in reverse.
    pub steps: Vec<StepDefinition>,
}

impl SagaDefinition {
    /// The tenant-provisioning saga of contract v1: database, site, admin user,
    /// registration.
    pub fn tenant_provisioning() -> Self {
        let quick = RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
        };
        let undo = RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.5,
        };
        let step = |name: &str, message: &str, undo_message: &str, band: (u8, u8), timeout: u64| {
            StepDefinition {
                // The site step sees site folders, the registry step the Master's
                // tenants; the database and admin user steps see nothing of the kind.
                sees_subdomains: matches!(name, "site" | "registration"),
                name: name.into(),
                message: message.into(),
                undo_message: undo_message.into(),
                percent_start: band.0,
                percent_end: band.1,
                timeout: Duration::from_secs(timeout),
                retry: quick.clone(),
                undo_timeout: Duration::from_secs(timeout.min(120)),
                undo_retry: undo.clone(),
            }
        };
        Self {
            steps: vec![
                step(
                    "database",
                    "Creating the database",
                    "Dropping the database",
                    (5, 15),
                    60,
                ),
                step(
                    "site",
                    "Deploying ERPNext instance",
                    "Archiving the site",
                    (15, 80),
                    900,
                ),
                step(
                    "admin_user",
                    "Creating the administrator account",
                    "Removing the administrator account",
                    (80, 90),
                    120,
                ),
                step(
                    "registration",
                    "Registering the workspace",
                    "Removing the registration",
                    (90, 99),
                    60,
                ),
            ],
        }
    }

    /// The same definition with every timeout and delay replaced, for tests and
    /// benchmarks that must not wait for production delays.
    pub fn with_timings(mut self, timeout: Duration, initial_delay: Duration) -> Self {
        for step in &mut self.steps {
            step.timeout = timeout;
            step.undo_timeout = timeout;
            step.retry.initial_delay = initial_delay;
            step.undo_retry.initial_delay = initial_delay;
        }
        self
    }

    /// The saga that builds a standby site for the pool: only the steps that make the
    /// database and the site (a standby has no tenant to give an account or register).
    pub fn standby_build(&self) -> Self {
        Self {
            steps: self
                .steps
                .iter()
                .filter(|s| STANDBY_STEPS.contains(&s.name.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// The definition a saga of `tenant` follows: [`SagaDefinition::standby_build`]
    /// for a standby build, else this one (borrowed: the usual path copies nothing).
    pub fn for_tenant(&self, tenant: &contracts::TenantContext) -> std::borrow::Cow<'_, Self> {
        if tenant.standby_build {
            std::borrow::Cow::Owned(self.standby_build())
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }

    /// The step called `name`, with its position.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.5,
        };
        assert_eq!(p.delay_before(2, 0), Duration::from_secs(1));
        assert_eq!(p.delay_before(3, 0), Duration::from_secs(2));
        assert_eq!(p.delay_before(4, 0), Duration::from_secs(4));
        assert_eq!(p.delay_before(9, 0), Duration::from_secs(10));
        let jittered = p.delay_before(3, 9_999);
        assert!(jittered >= Duration::from_millis(1000) && jittered < Duration::from_secs(2));
    }
}
