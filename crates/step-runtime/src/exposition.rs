//! Prometheus metrics of a process: the `metrics` facade's recorder, installed once,
//! and the text `/metrics` serves (on the health port, see `health.rs`).
//!
//! Everything records through the facade (`metrics::counter!` and friends), so code
//! that records never names the exporter. Durations are histograms with buckets fit
//! for what they measure (a saga takes about a minute, a step seconds to minutes);
//! every other histogram would be a summary, which Prometheus cannot aggregate across
//! instances.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of a whole saga's duration, in seconds, around the 60 s target.
const SAGA_BUCKETS: [f64; 14] = [
    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 75.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 3600.0,
];

/// Buckets of one step's or one command's duration, in seconds.
const STEP_BUCKETS: [f64; 15] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// An input's time in the orchestrator: milliseconds, a store commit included.
const INPUT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed as the global one at the first call. A second
/// service in the same process (tests run several) shares it. When another global
/// recorder was installed first, metrics go there and this handle renders nothing.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("saga_duration_seconds".into()), &SAGA_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("saga_input_seconds".into()), &INPUT_BUCKETS)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &STEP_BUCKETS)
            });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            // Only empty bucket lists are refused, and ours are constants.
            Err(e) => {
                tracing::error!(error = %e, "metrics buckets refused: durations as summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed before: /metrics stays empty");
        }
        describe();
        handle
    })
}

/// The metrics in Prometheus' text format.
pub fn render() -> String {
    handle().render()
}

/// The `# HELP` lines: what each metric means (README, "Operations", has the table).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("saga_started_total", "Signups accepted into a saga");
    describe_counter!(
        "saga_ended_total",
        "Sagas ended, by kind (signup, standby_build), run, outcome (completed, rolled_back, rejected, compensation_failed) and error code"
    );
    describe_histogram!(
        "saga_duration_seconds",
        Unit::Seconds,
        "From signup accepted to the saga's end, by kind, run and outcome"
    );
    describe_histogram!(
        "saga_step_duration_seconds",
        Unit::Seconds,
        "One step attempt as the orchestrator saw it, from dispatch to report or timeout, by step, action and outcome"
    );
    describe_histogram!(
        "saga_input_seconds",
        Unit::Seconds,
        "An input's time in the orchestrator, from its delivery to its transition stored and its commands and progress handed to NATS, by input (signup, report: a step's final report, output: a step's output line)"
    );
    describe_counter!(
        "saga_step_retries_total",
        "Step attempts after the first, by step and action"
    );
    describe_counter!("saga_undos_total", "Undos started, by step");
    describe_gauge!(
        "saga_in_flight",
        "Sagas not ended (the leader reports them; standbys 0)"
    );
    describe_gauge!(
        "saga_needing_attention",
        "Sagas an operator must look at: compensation_failed, or stuck past their timer (the leader reports them)"
    );
    describe_gauge!("saga_leader", "1 while this orchestrator leads");
    describe_counter!(
        "saga_standby_claims_total",
        "Signups that looked for a ready standby site: taken, or missed while the pool was on"
    );
    describe_gauge!(
        "saga_standbys",
        "The standby pool's standbys by state (the leader reports them; standbys 0)"
    );
    describe_gauge!(
        "saga_standby_pool_size",
        "The standby pool's size in force, configured or an operator's (the leader reports it)"
    );
    describe_counter!(
        "saga_dead_letters_total",
        "Messages set aside as dead letters, by source"
    );
    describe_counter!(
        "step_commands_total",
        "Commands a step service handled, by step, action and outcome"
    );
    describe_histogram!(
        "step_command_duration_seconds",
        Unit::Seconds,
        "Running one command in a step service, by step, action and outcome"
    );
    describe_counter!(
        "step_redeliveries_total",
        "Commands delivered again by JetStream, by step"
    );
    describe_counter!(
        "step_commands_recalled_total",
        "Commands answered from the finished-commands memory instead of run again, by step and action"
    );
    describe_gauge!(
        "site_new_site_waiting",
        "Sagas waiting in line for a new-site place"
    );
    describe_gauge!("site_new_site_in_use", "new-site places taken");
    describe_gauge!("site_new_site_places", "new-site places (SITE_CONCURRENCY)");
}
