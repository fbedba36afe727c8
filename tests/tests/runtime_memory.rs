//! The step runtime's memory of finished commands, seen from outside: a command
//! delivered again after it finished is answered with its stored report, not run again
//! (a failed attempt too, so a late copy never redoes an effect after its saga's undo),
//! and an undo, a command of its own, still runs.

use contracts::{StepAction, StepReport};
use tests::steps::command;
use tests::{Behaviour, Harness, Journal, ScriptedStep};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_command_delivered_again_is_answered_from_memory_and_its_undo_still_runs() {
    let mut h = Harness::new().await;
    let journal = Journal::default();
    h.start_scripted(ScriptedStep::new(
        "site",
        Behaviour::default(),
        journal.clone(),
    ));
    let saga = Uuid::new_v4();
    let execute = command(saga, "site", StepAction::Execute, 1, &h.subdomain("memory"));
    let first = h.run_command(&execute, 20).await;
    assert!(matches!(first, StepReport::Completed { .. }), "{first:?}");

    // The same command again, as after a lost ack or a resume past the duplicate window.
    h.publish_command(&execute, "sent-again").await;
    tests::assert_eventually!(10, "second delivery handled", h.commands_left().await == 0);
    assert_eq!(
        journal.lines(saga),
        ["site execute"],
        "the second delivery was answered, not run"
    );

    // Its undo is another command: it runs.
    let undo = command(
        saga,
        "site",
        StepAction::Compensate,
        1,
        &execute.tenant.subdomain,
    );
    let undone = h.run_command(&undo, 20).await;
    assert!(matches!(undone, StepReport::Completed { .. }), "{undone:?}");
    assert_eq!(journal.lines(saga), ["site execute", "site compensate"]);
    h.finish().await;
}

/// A failed attempt delivered again after its saga undid the step (its ack lost, then
/// the undo ran) must not redo the effect: the late copy is answered with the failure
/// it reported, and nothing is left behind. (Found by the chaos run: a `new-site` whose
/// retryable failure was not remembered ran again after the rollback.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_delivered_again_after_its_undo_is_answered_not_run() {
    let mut h = Harness::new().await;
    let journal = Journal::default();
    h.start_scripted(ScriptedStep::new(
        "site",
        Behaviour {
            fail_executes: 1,
            ..Behaviour::default()
        },
        journal.clone(),
    ));
    let saga = Uuid::new_v4();
    let execute = command(saga, "site", StepAction::Execute, 1, &h.subdomain("late"));
    let first = h.run_command(&execute, 20).await;
    assert!(
        matches!(
            first,
            StepReport::Failed {
                retryable: true,
                ..
            }
        ),
        "{first:?}"
    );
    let undo = command(
        saga,
        "site",
        StepAction::Compensate,
        1,
        &execute.tenant.subdomain,
    );
    let undone = h.run_command(&undo, 20).await;
    assert!(matches!(undone, StepReport::Completed { .. }), "{undone:?}");

    // The failed attempt again, late: the step would succeed this time (it fails once).
    h.publish_command(&execute, "late-copy").await;
    tests::assert_eventually!(10, "late copy handled", h.commands_left().await == 0);
    assert_eq!(
        journal.lines(saga),
        ["site compensate"],
        "the late copy of the failed attempt made its effect again after the undo"
    );
    let answers: Vec<_> = h
        .step_events("site")
        .await
        .into_iter()
        .filter(|e| e.command_id == execute.command_id)
        .map(|e| e.report)
        .collect();
    assert!(
        answers.iter().all(|r| matches!(
            r,
            StepReport::Failed {
                retryable: true,
                ..
            }
        )),
        "the late copy is answered with the failure it reported: {answers:?}"
    );
    h.finish().await;
}
