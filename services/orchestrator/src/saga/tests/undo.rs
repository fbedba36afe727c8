//! The undo: failures of undos, retries of undos, what `compensation_failed` keeps,
//! and a saga refused before it starts.

use contracts::{SagaStatus, StepAction};

use super::*;

#[test]
fn undo_failure_ends_compensation_failed_and_replay_resumes_the_undo() {
    let mut inputs = vec![
        In::Start,
        In::Done("database", StepAction::Execute, 1),
        In::Fail("site", StepAction::Execute, 1, false),
    ];
    inputs.push(In::Fail("site", StepAction::Compensate, 1, false));
    let (failed, _) = play(inputs.clone());
    inputs.push(In::Replay);
    let (resumed, _) = play(inputs.clone());
    assert_eq!(resumed.run, failed.run + 1, "the resumed undo is a new run");
    inputs.push(In::Done("site", StepAction::Compensate, 1));
    inputs.push(In::Done("database", StepAction::Compensate, 1));
    inputs.push(In::Replay);
    let saga = check(
        inputs,
        &[
            "progress accepted - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
            "progress running database completed 1",
            "progress running site started 1",
            "dispatch site execute 1",
            "schedule",
            "progress compensating site failed 1",
            "progress compensating site compensating 1",
            "dispatch site compensate 1",
            "schedule",
            "progress compensation_failed site failed 1",
            "progress compensating site - 0",
            "progress compensating site compensating 1",
            "dispatch site compensate 1",
            "schedule",
            "progress compensating site compensated 1",
            "progress compensating database compensating 1",
            "dispatch database compensate 1",
            "schedule",
            "progress compensating database compensated 1",
            "progress rolled_back - - 0",
            "progress running - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
        ],
    );
    assert_eq!(saga.run, 3, "a replay from the start is the next run");
}

#[test]
fn retryable_undo_failures_are_retried_before_giving_up() {
    let undo_attempts = definition().steps[0].undo_retry.max_attempts;
    let mut inputs = vec![
        In::Start,
        In::Fail("database", StepAction::Execute, 1, false),
    ];
    for attempt in 1..=undo_attempts {
        inputs.push(In::Fail("database", StepAction::Compensate, attempt, true));
        if attempt < undo_attempts {
            inputs.push(In::Timer);
        }
    }
    let def = definition();
    let mut saga = new_saga();
    let mut dispatches = 0;
    for (i, input) in inputs.into_iter().enumerate() {
        let input = match input {
            In::Start => Input::Start,
            In::Fail(step, action, attempt, retryable) => Input::Reported(event(
                &saga,
                step,
                action,
                attempt,
                StepReport::Failed {
                    code: "x".into(),
                    message: "x".into(),
                    retryable,
                },
            )),
            In::Timer => Input::TimerFired(saga.timer().expect("timer")),
            _ => unreachable!(),
        };
        let Decision::Apply { saga: s, actions } = next(
            &def,
            &saga,
            input,
            t0() + chrono::Duration::seconds(i as i64 * 100),
        ) else {
            panic!("input {i} ignored")
        };
        dispatches += actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Dispatch {
                        action: StepAction::Compensate,
                        ..
                    }
                )
            })
            .count();
        saga = s;
    }
    assert_eq!(dispatches as u32, undo_attempts);
    assert_eq!(saga.status, SagaStatus::CompensationFailed);
    assert_eq!(saga.timer(), None);
}

#[test]
fn compensation_failed_keeps_the_failure_that_started_the_rollback() {
    let saga = check(
        vec![
            In::Start,
            In::Done("database", StepAction::Execute, 1),
            In::Done("site", StepAction::Execute, 1),
            In::Fail("admin_user", StepAction::Execute, 1, false),
            In::Done("admin_user", StepAction::Compensate, 1),
            In::Fail("site", StepAction::Compensate, 1, false),
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
            "progress running site completed 1",
            "progress running admin_user started 1",
            "dispatch admin_user execute 1",
            "schedule",
            "progress compensating admin_user failed 1",
            "progress compensating admin_user compensating 1",
            "dispatch admin_user compensate 1",
            "schedule",
            "progress compensating admin_user compensated 1",
            "progress compensating site compensating 1",
            "dispatch site compensate 1",
            "schedule",
            "progress compensation_failed site failed 1",
        ],
    );
    let error = saga.error.clone().expect("an error is kept");
    assert_eq!(error.step.as_deref(), Some("site"), "the undo's error");
    let cause = error.cause.expect("the failure that started the rollback");
    assert_eq!(cause.step.as_deref(), Some("admin_user"));
    assert_eq!(cause.message, "admin_user broke");

    // The replay resumes the undo with the root cause as the saga's error again.
    let def = definition();
    let Decision::Apply { saga, actions } = next(&def, &saga, Input::Replay(None), t0()) else {
        panic!("a compensation_failed saga is replayable");
    };
    let Some(Action::Publish(resumed)) = actions.first() else {
        panic!("the replay publishes first");
    };
    let shown = resumed.error.as_ref().expect("the root cause is shown");
    assert_eq!(shown.step.as_deref(), Some("admin_user"));
    assert!(shown.cause.is_none());
    assert_eq!(saga.status, SagaStatus::Compensating);
}

#[test]
fn an_accepted_saga_refused_before_it_starts_ends_rejected_with_nothing_to_undo() {
    let def = definition();
    let mut saga = new_saga();
    saga.tenant.admin_password = Some(contracts::Sealed("v2:k1:sealed".into()));
    let refusal = contracts::Rejection {
        code: "subdomain_taken",
        message: "held by a registered tenant".into(),
    };
    let Decision::Apply { saga, actions } = next(&def, &saga, Input::Refuse(refusal.clone()), t0())
    else {
        panic!("an accepted saga can be refused");
    };
    assert_eq!(summary(&actions), ["progress rejected - - 0"]);
    assert_eq!(saga.status, SagaStatus::Rejected);
    assert_eq!(saga.timer(), None, "nothing pending");
    assert_eq!(saga.tenant.admin_password, None, "no secret kept");
    assert_eq!(
        saga.error.as_ref().map(|e| e.code.as_str()),
        Some("subdomain_taken")
    );
    assert!(matches!(
        next(&def, &saga, Input::Start, t0()),
        Decision::Ignore(_)
    ));
    // Once started, a saga is never refused.
    let Decision::Apply { saga: running, .. } = next(&def, &new_saga(), Input::Start, t0()) else {
        panic!("starts");
    };
    assert!(matches!(
        next(&def, &running, Input::Refuse(refusal), t0()),
        Decision::Ignore(_)
    ));
}
