//! A standby build follows its own, shorter definition, chosen by the saga's tenant.

use super::*;

#[test]
fn a_standby_build_runs_only_the_database_and_site_steps_then_completes() {
    let usual = definition();
    let mut saga = new_saga();
    saga.tenant.standby_build = true;
    let def = usual.for_tenant(&saga.tenant);
    let names: Vec<&str> = def.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["database", "site"]);
    // A prefix of the usual steps: a position means the same step in both, so what
    // reads a saga with the usual definition (admin summaries) names the right step.
    assert_eq!(def.steps[..], usual.steps[..2]);

    let (saga, actions) = apply(&def, &saga, Input::Start);
    assert!(
        actions.contains(&"dispatch database execute 1".to_string()),
        "{actions:?}"
    );
    let done = |saga: &Saga, step| {
        Input::Reported(event(
            saga,
            step,
            StepAction::Execute,
            1,
            StepReport::Completed {
                output: serde_json::json!({}),
            },
        ))
    };
    let (saga, actions) = apply(&def, &saga, done(&saga, "database"));
    assert!(
        actions.contains(&"dispatch site execute 1".to_string()),
        "{actions:?}"
    );
    let (saga, actions) = apply(&def, &saga, done(&saga, "site"));
    assert_eq!(saga.status, SagaStatus::Completed, "{actions:?}");
    assert!(
        !actions.iter().any(|a| a.starts_with("dispatch")),
        "no admin user or registration for a standby: {actions:?}"
    );
}

#[test]
fn a_signup_borrows_the_usual_definition() {
    let usual = definition();
    assert!(matches!(
        usual.for_tenant(&new_saga().tenant),
        std::borrow::Cow::Borrowed(_)
    ));
}

fn claimed_saga() -> Saga {
    let mut saga = new_saga();
    saga.tenant.standby = Some(contracts::StandbyRef {
        saga_id: Uuid::from_u128(7),
        site_name: "sb-00000007.localhost".into(),
        db_name: "t_sb_00000007_1234abcd".into(),
    });
    saga
}

fn done() -> StepReport {
    StepReport::Completed {
        output: serde_json::json!({}),
    }
}

fn unusable() -> StepReport {
    StepReport::Failed {
        code: contracts::STANDBY_UNUSABLE.into(),
        message: "the standby's folder is missing".into(),
        retryable: false,
    }
}

#[test]
fn a_signup_with_a_standby_says_it_uses_a_prepared_workspace() {
    let def = definition();
    let (_, actions) = match next(&def, &claimed_saga(), Input::Start, t0()) {
        Decision::Apply { saga, actions } => (saga, actions),
        Decision::Ignore(reason) => panic!("ignored: {reason}"),
    };
    let Some(Action::Publish(first)) = actions.first() else {
        panic!("{actions:?}")
    };
    assert_eq!(first.message, "Signup accepted: using a prepared workspace");
}

#[test]
fn an_unusable_standby_is_undone_and_the_signup_goes_on_the_usual_way() {
    let def = definition();
    let saga = claimed_saga();
    let (saga, _) = apply(&def, &saga, Input::Start);
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Execute, done()),
    );
    // The site step finds the standby unusable: what this run did is undone first.
    let (saga, actions) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Execute, unusable()),
    );
    assert_eq!(saga.status, SagaStatus::Compensating);
    assert_eq!(
        actions,
        [
            "progress compensating site failed 1",
            "progress compensating site compensating 1",
            "dispatch site compensate 1",
            "schedule"
        ]
    );
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "site", StepAction::Compensate, done()),
    );
    let (saga, actions) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Compensate, done()),
    );
    // Then a new run without the standby, from the first step, not a rollback.
    assert_eq!(
        actions,
        [
            "progress compensating database compensated 1",
            "progress running - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule"
        ]
    );
    assert_eq!(saga.status, SagaStatus::Running);
    assert_eq!((saga.run, saga.tenant.standby.clone()), (2, None));
    assert_eq!((saga.error.clone(), saga.outputs.len()), (None, 0));
}

#[test]
fn an_unusable_standby_fails_a_signup_without_one_as_usual() {
    // The code alone changes nothing: a saga with no standby rolls back.
    let def = definition();
    let saga = new_saga();
    let (saga, _) = apply(&def, &saga, Input::Start);
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Execute, unusable()),
    );
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Compensate, done()),
    );
    assert_eq!(saga.status, SagaStatus::RolledBack);
}

#[test]
fn another_failure_of_a_claimed_signup_rolls_it_back_as_usual() {
    let def = definition();
    let saga = claimed_saga();
    let (saga, _) = apply(&def, &saga, Input::Start);
    let failed = StepReport::Failed {
        code: "db_error".into(),
        message: "x".into(),
        retryable: false,
    };
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Execute, failed),
    );
    let (saga, _) = apply(
        &def,
        &saga,
        report(&saga, "database", StepAction::Compensate, done()),
    );
    assert_eq!(saga.status, SagaStatus::RolledBack);
    assert!(
        saga.tenant.standby.is_some(),
        "its standby is the pool's to drop"
    );
}

#[test]
fn a_replayed_signup_that_rolled_back_makes_its_own_site_not_the_discarded_standby() {
    let def = definition();
    let mut saga = claimed_saga();
    saga.status = SagaStatus::RolledBack;
    saga.phase = crate::saga::Phase::Finished;
    let (saga, actions) = apply(&def, &saga, Input::Replay(None));
    assert_eq!(saga.status, SagaStatus::Running);
    assert_eq!(
        saga.tenant.standby, None,
        "the rollback had the standby discarded: a replay must not claim it again"
    );
    assert!(
        actions.contains(&"dispatch database execute 1".to_string()),
        "{actions:?}"
    );
}
