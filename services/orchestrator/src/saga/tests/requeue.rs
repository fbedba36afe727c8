//! A dead letter requeued: the saga replayed when it ended replayable, its pending
//! command sent again when it still waits on the letter's step, refused otherwise.

use super::*;

fn last_event(inputs: Vec<In>) -> (Saga, contracts::ProgressEvent) {
    let def = definition();
    let (saga, _) = play(inputs[..inputs.len() - 1].to_vec());
    let input = match inputs.last() {
        Some(In::Requeue(step, letter)) => Input::Requeue {
            action: contracts::OperatorAction {
                action: "requeue".into(),
                operator: "ann".into(),
                reason: "site-step fixed".into(),
                at: t0(),
                dead_letter: None,
            },
            letter: *letter,
            step: step.map(str::to_string),
        },
        _ => panic!("the last input is a requeue"),
    };
    let Decision::Apply { saga, actions } = next(&def, &saga, input, t0()) else {
        panic!("the requeue applies");
    };
    let event = actions
        .iter()
        .find_map(|a| match a {
            Action::Publish(e) => Some(e.clone()),
            _ => None,
        })
        .expect("an event");
    (saga, event)
}

#[test]
fn a_saga_waiting_on_the_letters_step_gets_the_same_command_again() {
    let saga = check(
        vec![
            In::Start,
            In::Done("database", StepAction::Execute, 1),
            In::Requeue(Some("site"), 7),
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
            // No new attempt, no new timer: the pending one, once more.
            "progress running site - 1",
            "resend site execute 1 for letter 7",
        ],
    );
    assert_eq!(saga.status, SagaStatus::Running);
    let (_, event) = last_event(vec![
        In::Start,
        In::Done("database", StepAction::Execute, 1),
        In::Requeue(Some("site"), 7),
    ]);
    assert_eq!(
        event.message,
        "Requeued by ann (dead letter 7): site-step fixed. Sending the site command again (attempt 1)"
    );
    let noted = event.operator_action.expect("the operator action is kept");
    assert_eq!(
        (noted.action.as_str(), noted.dead_letter),
        ("requeue", Some(7))
    );
}

#[test]
fn an_undo_waited_on_is_sent_again_too() {
    check(
        vec![
            In::Start,
            In::Fail("database", StepAction::Execute, 1, false),
            In::Requeue(None, 3),
        ],
        &[
            "progress accepted - - 0",
            "progress running database started 1",
            "dispatch database execute 1",
            "schedule",
            "progress compensating database failed 1",
            "progress compensating database compensating 1",
            "dispatch database compensate 1",
            "schedule",
            "progress compensating database - 1",
            "resend database compensate 1 for letter 3",
        ],
    );
}

#[test]
fn a_rolled_back_saga_is_replayed_from_the_start() {
    let inputs = vec![
        In::Start,
        In::Fail("database", StepAction::Execute, 1, false),
        In::Done("database", StepAction::Compensate, 1),
        In::Requeue(Some("database"), 9),
    ];
    let (saga, _) = play(inputs.clone());
    assert_eq!(saga.run, 2);
    assert_eq!(saga.status, SagaStatus::Running);
    let (_, event) = last_event(inputs);
    assert!(
        event
            .message
            .starts_with("Requeued by ann (dead letter 9): site-step fixed. Replaying"),
        "{}",
        event.message
    );
    assert_eq!(event.operator_action.and_then(|a| a.dead_letter), Some(9));
}

/// Why `inputs` (the last a requeue) leave the saga as it was.
fn refusal(inputs: Vec<In>) -> String {
    let def = definition();
    let (before, _) = play(inputs[..inputs.len() - 1].to_vec());
    let Some(In::Requeue(step, letter)) = inputs.last() else {
        panic!("the last input is a requeue");
    };
    let input = Input::Requeue {
        action: contracts::OperatorAction {
            action: "requeue".into(),
            operator: "ann".into(),
            reason: String::new(),
            at: t0(),
            dead_letter: None,
        },
        letter: *letter,
        step: step.map(str::to_string),
    };
    match next(&def, &before, input, t0()) {
        Decision::Ignore(reason) => reason,
        Decision::Apply { actions, .. } => panic!("applied: {:?}", summary(&actions)),
    }
}

#[test]
fn anything_else_is_refused_with_what_the_saga_does_instead() {
    // A letter of a step the saga has left: its command is no longer pending.
    let reason = refusal(vec![
        In::Start,
        In::Done("database", StepAction::Execute, 1),
        In::Requeue(Some("database"), 1),
    ]);
    assert!(
        reason.contains("now waits on site, not database"),
        "{reason}"
    );
    // Waiting for a retry: it comes by itself.
    let reason = refusal(vec![
        In::Start,
        In::Fail("database", StepAction::Execute, 1, true),
        In::Requeue(Some("database"), 1),
    ]);
    assert!(reason.contains("retries database by itself"), "{reason}");
    // Completed: nothing to do.
    let reason = refusal(vec![
        In::Start,
        In::Done("database", StepAction::Execute, 1),
        In::Done("site", StepAction::Execute, 1),
        In::Done("admin_user", StepAction::Execute, 1),
        In::Done("registration", StepAction::Execute, 1),
        In::Requeue(Some("registration"), 2),
    ]);
    assert!(reason.contains("completed: nothing to requeue"), "{reason}");
}
