//! A standby build follows its own, shorter definition, chosen by the saga's tenant.

use super::*;

fn apply(def: &SagaDefinition, saga: &Saga, input: Input) -> (Saga, Vec<String>) {
    match next(def, saga, input, t0()) {
        Decision::Apply { saga, actions } => (saga, summary(&actions)),
        Decision::Ignore(reason) => panic!("ignored: {reason}"),
    }
}

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
