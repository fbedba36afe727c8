//! Table-style tests of the state machine: feed inputs, compare the actions.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use contracts::signup::AuthProvider;
use contracts::{SagaStatus, StepAction, StepEvent, StepReport, TenantContext};
use uuid::Uuid;

use super::*;

mod discard;
mod requeue;
mod standby;
mod undo;

const STEPS: [&str; 4] = ["database", "site", "admin_user", "registration"];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn definition() -> SagaDefinition {
    SagaDefinition::tenant_provisioning()
        .with_timings(Duration::from_secs(10), Duration::from_secs(1))
}

fn new_saga() -> Saga {
    let tenant = TenantContext {
        subdomain: "test-org".into(),
        site_name: "test-org.localhost".into(),
        organization_name: "Test Org".into(),
        admin_email: "admin@test.com".into(),
        admin_full_name: "Test Admin".into(),
        auth_provider: AuthProvider::Password,
        admin_password: None,
        standby: None,
        standby_build: false,
    };
    Saga::accepted(Uuid::nil(), tenant, t0())
}

/// One input of a scenario, in a compact form.
#[derive(Clone)]
enum In {
    Start,
    Replay,
    Done(&'static str, StepAction, u32),
    Fail(&'static str, StepAction, u32, bool),
    Output(&'static str, u32, Option<u8>),
    /// Fire the timer the saga waits for.
    Timer,
    /// A report for an earlier run.
    OldRun(&'static str),
    /// Dead letter `n` (of a command of this step, when given) requeued by "ann".
    Requeue(Option<&'static str>, u64),
}

fn event(
    saga: &Saga,
    step: &str,
    action: StepAction,
    attempt: u32,
    report: StepReport,
) -> StepEvent {
    StepEvent {
        command_id: contracts::StepCommand::id_for(saga.id, saga.run, step, action, attempt),
        saga_id: saga.id,
        run: saga.run,
        step: step.into(),
        action,
        attempt,
        report,
        at: t0(),
    }
}

/// Applies `input`, which must not be ignored: the saga after and its actions.
fn apply(def: &SagaDefinition, saga: &Saga, input: Input) -> (Saga, Vec<String>) {
    match next(def, saga, input, t0()) {
        Decision::Apply { saga, actions } => (saga, summary(&actions)),
        Decision::Ignore(reason) => panic!("ignored: {reason}"),
    }
}

/// The first attempt's report of `step`'s `action`.
fn report(saga: &Saga, step: &str, action: StepAction, report: StepReport) -> Input {
    Input::Reported(event(saga, step, action, 1, report))
}

fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Dispatch {
                step,
                action,
                attempt,
                ..
            } => format!("dispatch {step} {} {attempt}", action.as_str()),
            Action::Publish(e) => format!(
                "progress {} {} {} {}",
                e.status.as_str(),
                e.step.as_deref().unwrap_or("-"),
                e.step_status
                    .map(|s| format!("{s:?}").to_lowercase())
                    .unwrap_or("-".into()),
                e.attempt
            ),
            Action::Resend {
                step,
                action,
                attempt,
                dead_letter,
                ..
            } => format!(
                "resend {step} {} {attempt} for letter {dead_letter}",
                action.as_str()
            ),
            Action::Schedule(_) => "schedule".into(),
        })
        .collect()
}

/// Feeds `inputs` from a fresh saga and checks every action, in order. Returns the saga.
fn check(inputs: Vec<In>, expected: &[&str]) -> Saga {
    let (saga, got) = play(inputs);
    let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(got, expected, "\n got: {got:#?}");
    saga
}

/// Applies `inputs` to a new saga: the saga after them and what they asked for, in
/// the form [`check`] compares.
fn play(inputs: Vec<In>) -> (Saga, Vec<String>) {
    let def = definition();
    let mut saga = new_saga();
    let mut actions = Vec::new();
    let mut now = t0();
    for input in inputs {
        now += chrono::Duration::milliseconds(10);
        let input = match input {
            In::Start => Input::Start,
            In::Replay => Input::Replay(None),
            In::Done(step, action, attempt) => Input::Reported(event(
                &saga,
                step,
                action,
                attempt,
                StepReport::Completed {
                    output: serde_json::json!({"step": step}),
                },
            )),
            In::Fail(step, action, attempt, retryable) => Input::Reported(event(
                &saga,
                step,
                action,
                attempt,
                StepReport::Failed {
                    code: "boom".into(),
                    message: format!("{step} broke"),
                    retryable,
                },
            )),
            In::Output(step, attempt, percent) => Input::Reported(event(
                &saga,
                step,
                StepAction::Execute,
                attempt,
                StepReport::Output {
                    line: "working".into(),
                    percent,
                },
            )),
            In::Timer => {
                let timer = saga.timer().expect("saga waits for a timer");
                now = timer.at;
                Input::TimerFired(timer)
            }
            In::Requeue(step, letter) => Input::Requeue {
                action: contracts::OperatorAction {
                    action: "requeue".into(),
                    operator: "ann".into(),
                    reason: "site-step fixed".into(),
                    at: now,
                    dead_letter: None,
                },
                letter,
                step: step.map(str::to_string),
            },
            In::OldRun(step) => {
                let mut e = event(
                    &saga,
                    step,
                    StepAction::Execute,
                    1,
                    StepReport::Completed {
                        output: serde_json::Value::Null,
                    },
                );
                e.run = saga.run.saturating_sub(1);
                Input::Reported(e)
            }
        };
        match next(&def, &saga, input, now) {
            Decision::Apply {
                saga: s,
                actions: a,
            } => {
                saga = s;
                actions.extend(a);
            }
            Decision::Ignore(reason) => actions.push(Action::Publish(contracts::ProgressEvent {
                message: reason,
                ..ignored_marker(&saga)
            })),
        }
    }
    (saga, summary(&actions))
}

/// Ignored inputs show up as this marker line, so scenarios can assert them.
fn ignored_marker(saga: &Saga) -> contracts::ProgressEvent {
    contracts::ProgressEvent {
        saga_id: saga.id,
        sequence: 0,
        subdomain: String::new(),
        site_name: String::new(),
        status: SagaStatus::Rejected,
        step: Some("IGNORED".into()),
        step_status: None,
        attempt: 0,
        percent: 0,
        message: String::new(),
        error: None,
        result: None,
        at: t0(),
        operator_action: None,
    }
}

const IGNORED: &str = "progress rejected IGNORED - 0";

fn started(step: &str) -> [String; 3] {
    [
        format!("progress running {step} started 1"),
        format!("dispatch {step} execute 1"),
        "schedule".into(),
    ]
}

fn completed(step: &str) -> String {
    format!("progress running {step} completed 1")
}

fn happy_path_lines() -> Vec<String> {
    let mut lines = vec!["progress accepted - - 0".to_string()];
    for (i, step) in STEPS.iter().enumerate() {
        if i > 0 {
            lines.push(completed(STEPS[i - 1]));
        }
        lines.extend(started(step));
    }
    lines.push("progress running registration completed 1".into());
    lines.push("progress completed - - 0".into());
    lines
}

#[test]
fn happy_path_runs_every_step_in_order() {
    let mut inputs = vec![In::Start];
    inputs.extend(STEPS.iter().map(|s| In::Done(s, StepAction::Execute, 1)));
    let expected = happy_path_lines();
    let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
    let saga = check(inputs, &refs);
    assert_eq!(saga.status, SagaStatus::Completed);
    assert_eq!(saga.percent, 100);
    assert_eq!(
        saga.sequence as usize,
        refs.iter().filter(|l| l.starts_with("progress")).count()
    );
    let result = saga.result.clone().expect("result on completion");
    assert_eq!(result["site_url"], "https://test-org.localhost");
    assert_eq!(result["admin_email"], "admin@test.com");
    assert_eq!(saga.timer(), None);
}

#[test]
fn permanent_failure_at_each_position_undoes_every_started_step_in_reverse() {
    for failing in 0..STEPS.len() {
        let mut inputs = vec![In::Start];
        let mut expected = vec!["progress accepted - - 0".to_string()];
        for (i, step) in STEPS.iter().enumerate().take(failing + 1) {
            expected.extend(started(step));
            if i < failing {
                inputs.push(In::Done(step, StepAction::Execute, 1));
                expected.push(completed(step));
            }
        }
        inputs.push(In::Fail(STEPS[failing], StepAction::Execute, 1, false));
        expected.push(format!("progress compensating {} failed 1", STEPS[failing]));
        for step in STEPS[..=failing].iter().rev() {
            expected.push(format!("progress compensating {step} compensating 1"));
            expected.push(format!("dispatch {step} compensate 1"));
            expected.push("schedule".into());
            inputs.push(In::Done(step, StepAction::Compensate, 1));
            expected.push(format!("progress compensating {step} compensated 1"));
        }
        expected.push("progress rolled_back - - 0".into());
        let refs: Vec<&str> = expected.iter().map(String::as_str).collect();
        let saga = check(inputs, &refs);
        assert_eq!(saga.status, SagaStatus::RolledBack, "failing at {failing}");
        assert!(saga.outputs.is_empty());
        let error = saga.error.expect("error kept for the client");
        assert_eq!(error.step.as_deref(), Some(STEPS[failing]));
    }
}

#[test]
fn retryable_failure_retries_with_backoff_then_compensates_when_exhausted() {
    check(
        vec![
            In::Start,
            In::Fail("database", StepAction::Execute, 1, true),
            In::Timer,
            In::Fail("database", StepAction::Execute, 2, true),
            In::Timer,
            In::Fail("database", StepAction::Execute, 3, true),
            In::Done("database", StepAction::Compensate, 1),
        ],
        &[
            "progress accepted - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
            "progress running database retrying 1",
            "schedule",
            "progress running database started 2",
            "dispatch database execute 2",
            "schedule",
            "progress running database retrying 2",
            "schedule",
            "progress running database started 3",
            "dispatch database execute 3",
            "schedule",
            "progress compensating database failed 3",
            "progress compensating database compensating 1",
            "dispatch database compensate 1",
            "schedule",
            "progress compensating database compensated 1",
            "progress rolled_back - - 0",
        ],
    );
}

#[test]
fn a_timed_out_attempt_is_retried_and_its_late_report_ignored() {
    let saga = check(
        vec![
            In::Start,
            In::Timer,
            In::Done("database", StepAction::Execute, 1),
            In::Timer,
            In::Done("database", StepAction::Execute, 2),
        ],
        &[
            "progress accepted - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
            "progress running database retrying 1",
            "schedule",
            IGNORED,
            "progress running database started 2",
            "dispatch database execute 2",
            "schedule",
            "progress running database completed 2",
            "progress running site started 1",
            "dispatch site execute 1",
            "schedule",
        ],
    );
    assert_eq!(saga.status, SagaStatus::Running);
}

#[test]
fn duplicate_stale_and_foreign_run_reports_change_nothing() {
    check(
        vec![
            In::Start,
            In::Done("database", StepAction::Execute, 1),
            In::Done("database", StepAction::Execute, 1),
            In::Done("site", StepAction::Compensate, 1),
            In::OldRun("site"),
            In::Output("database", 1, None),
            In::Start,
        ],
        &[
            "progress accepted - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
            "progress running database completed 1",
            "progress running site started 1",
            "dispatch site execute 1",
            "schedule",
            IGNORED,
            IGNORED,
            IGNORED,
            IGNORED,
            IGNORED,
        ],
    );
}

#[test]
fn output_lines_become_progress_within_the_step_band() {
    let def = definition();
    let mut saga = new_saga();
    for input in [Input::Start] {
        if let Decision::Apply { saga: s, .. } = next(&def, &saga, input, t0()) {
            saga = s;
        }
    }
    let report = Input::Reported(event(
        &saga,
        "database",
        StepAction::Execute,
        1,
        StepReport::Output {
            line: "half way".into(),
            percent: Some(50),
        },
    ));
    let Decision::Apply {
        saga: after,
        actions,
    } = next(&def, &saga, report, t0())
    else {
        panic!("output applies")
    };
    let step = &def.steps[0];
    assert_eq!(
        after.percent,
        step.percent_start + (step.percent_end - step.percent_start) / 2
    );
    assert_eq!(after.sequence, saga.sequence + 1);
    assert_eq!(
        summary(&actions),
        vec!["progress running database output 1"]
    );
    assert_eq!(
        after.phase, saga.phase,
        "output does not change what is pending"
    );
}

#[test]
fn only_ended_sagas_can_be_replayed() {
    check(
        vec![In::Replay, In::Start, In::Replay],
        &[
            IGNORED,
            "progress accepted - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
            IGNORED,
        ],
    );
}

#[test]
fn a_stale_timer_is_ignored() {
    let def = definition();
    let saga = new_saga();
    let Decision::Apply { saga: running, .. } = next(&def, &saga, Input::Start, t0()) else {
        panic!()
    };
    let timer = running.timer().expect("timeout timer");
    let done = Input::Reported(event(
        &running,
        "database",
        StepAction::Execute,
        1,
        StepReport::Completed {
            output: serde_json::Value::Null,
        },
    ));
    let Decision::Apply { saga: moved_on, .. } = next(&def, &running, done, t0()) else {
        panic!()
    };
    assert!(matches!(
        next(&def, &moved_on, Input::TimerFired(timer), t0()),
        Decision::Ignore(_)
    ));
}
