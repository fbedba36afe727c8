//! What the step runtime counts (served on `/metrics`, README "Operations"):
//! `step_commands_total` by step, action and outcome, and the outcome label of a
//! command's duration (`step_command_duration_seconds`).

use contracts::{StepCommand, StepReport};

/// Counts a handled command in `step_commands_total` by step, action and outcome.
pub(crate) fn command(command: &StepCommand, outcome: &'static str) {
    metrics::counter!("step_commands_total", "step" => command.step.clone(), "action" => command.action.as_str(), "outcome" => outcome)
        .increment(1);
}

/// The `outcome` label of a run's report: `completed`, `timed_out` (the runtime's
/// deadline), `failed` (retryable) or `failed_permanent`.
pub(crate) fn outcome_of(report: &StepReport) -> &'static str {
    match report {
        StepReport::Completed { .. } | StepReport::Output { .. } => "completed",
        StepReport::Failed { code, .. } if code == "step_timeout" => "timed_out",
        StepReport::Failed {
            retryable: true, ..
        } => "failed",
        StepReport::Failed { .. } => "failed_permanent",
    }
}
