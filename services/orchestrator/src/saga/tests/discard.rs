//! Discarding a standby: the undo of a completed standby build, from its last step
//! back, refused for anything else.

use super::*;

fn ignored(def: &SagaDefinition, saga: &Saga, input: Input) -> String {
    match next(def, saga, input, t0()) {
        Decision::Apply { actions, .. } => panic!("applied: {:?}", summary(&actions)),
        Decision::Ignore(reason) => reason,
    }
}

fn done() -> StepReport {
    StepReport::Completed {
        output: serde_json::json!({"db_name": "t_sb_00000000_1234abcd"}),
    }
}

fn discard() -> Input {
    Input::Discard("the pool's size is now 0".into())
}

/// A standby build saga that completed, with its definition.
fn built() -> (SagaDefinition, Saga) {
    let mut saga = new_saga();
    saga.tenant.standby_build = true;
    let def = definition().for_tenant(&saga.tenant).into_owned();
    let (saga, _) = apply(&def, &saga, Input::Start);
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Execute, done()),
    );
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Execute, done()),
    );
    assert_eq!(saga.status, SagaStatus::Completed);
    (def, saga)
}

#[test]
fn a_discarded_standby_is_undone_from_its_last_step_and_ends_rolled_back() {
    let (def, saga) = built();
    let (saga, actions) = apply(&def, &saga, discard());
    assert_eq!(
        actions,
        [
            "progress compensating - - 0",
            "progress compensating site compensating 1",
            "dispatch site compensate 1",
            "schedule"
        ]
    );
    assert_eq!((saga.status, saga.run), (SagaStatus::Compensating, 1));
    assert_eq!(saga.result, None, "a discarded standby is no one's result");
    let error = saga.error.clone().expect("why");
    assert_eq!(error.code, STANDBY_DISCARDED);
    assert_eq!(error.message, "the pool's size is now 0");
    assert!(
        saga.outputs.contains_key("database"),
        "the database's undo still reads what the build made"
    );

    let (saga, actions) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Compensate, done()),
    );
    assert_eq!(
        actions,
        [
            "progress compensating site compensated 1",
            "progress compensating database compensating 1",
            "dispatch database compensate 1",
            "schedule"
        ]
    );
    let (saga, actions) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Compensate, done()),
    );
    assert_eq!(
        actions,
        [
            "progress compensating database compensated 1",
            "progress rolled_back - - 0"
        ]
    );
    assert_eq!(saga.status, SagaStatus::RolledBack);
    assert_eq!(saga.phase, Phase::Finished);
}

#[test]
fn the_discard_message_says_why_and_the_end_says_standby() {
    let (def, saga) = built();
    let Decision::Apply { saga, actions } = next(&def, &saga, discard(), t0()) else {
        panic!("ignored")
    };
    let Some(Action::Publish(first)) = actions.first() else {
        panic!("{actions:?}")
    };
    assert_eq!(
        first.message,
        "Standby discarded (the pool's size is now 0): removing what it created"
    );
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Compensate, done()),
    );
    let Decision::Apply { actions, .. } = next(
        &def,
        &saga,
        report(&saga, "database", StepAction::Compensate, done()),
        t0(),
    ) else {
        panic!("ignored")
    };
    let Some(Action::Publish(last)) = actions.last() else {
        panic!("{actions:?}")
    };
    assert_eq!(
        last.message,
        "Standby removed: everything created for it was removed"
    );
}

#[test]
fn a_discard_is_refused_for_a_signup_or_a_build_not_completed() {
    // A signup, even completed, is never discarded.
    let def = definition();
    let mut saga = new_saga();
    saga.status = SagaStatus::Completed;
    saga.phase = Phase::Finished;
    assert!(ignored(&def, &saga, discard()).contains("only a standby build"));

    // A build still running, or discarded already (compensating, rolled back).
    let mut building = new_saga();
    building.tenant.standby_build = true;
    let def = definition().for_tenant(&building.tenant).into_owned();
    let (building, _) = apply(&def, &building, Input::Start);
    assert!(ignored(&def, &building, discard()).contains("this one is running"));
    let (def, saga) = built();
    let (discarding, _) = apply(&def, &saga, discard());
    assert!(ignored(&def, &discarding, discard()).contains("this one is compensating"));
}

#[test]
fn a_discard_whose_undo_fails_ends_compensation_failed_with_the_reason_beside() {
    let (def, saga) = built();
    let (saga, _) = apply(&def, &saga, discard());
    let failed = StepReport::Failed {
        code: "bench_error".into(),
        message: "archive failed".into(),
        retryable: false,
    };
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Compensate, failed),
    );
    assert_eq!(saga.status, SagaStatus::CompensationFailed);
    let error = saga.error.expect("error");
    assert_eq!(error.code, "bench_error");
    assert_eq!(error.cause.map(|c| c.code), Some(STANDBY_DISCARDED.into()));
}

#[test]
fn a_standby_build_that_rolled_back_is_not_replayed() {
    // The pool builds new standbys; a replayed build would make one it never tracks.
    let (def, saga) = built();
    let (saga, _) = apply(&def, &saga, discard());
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Compensate, done()),
    );
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Compensate, done()),
    );
    assert_eq!(saga.status, SagaStatus::RolledBack);
    assert!(ignored(&def, &saga, Input::Replay(None)).contains("not replayed"));
}
