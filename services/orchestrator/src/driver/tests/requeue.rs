//! A dead letter requeued through the saga's worker: the pending command sent again
//! under a message id of the letter's, a replay for a saga that ended, and a second
//! requeue of the same letter doing nothing.

use contracts::admin::RequeueOutcome;
use contracts::{OperatorAction, SagaStatus, StepAction, StepReport};
use uuid::Uuid;

use super::super::*;
use super::rig::*;
use crate::bus::Sending;

async fn requeue(rig: &Rig, id: Uuid, letter: u64, step: &str) -> Result<Requeued, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let action = OperatorAction {
        action: "requeue".into(),
        operator: "ann".into(),
        reason: "fixed".into(),
        at: chrono::Utc::now(),
        dead_letter: None,
    };
    rig.core
        .router
        .send(
            id,
            Work::Requeue {
                action,
                letter,
                step: Some(step.into()),
                reply: tx,
            },
        )
        .await;
    rx.await.expect("reply")
}

#[tokio::test(start_paused = true)]
async fn a_requeued_letter_resends_the_pending_command_once() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;

    let done = requeue(&rig, id, 4, "database").await.expect("requeued");
    assert_eq!(done.outcome, RequeueOutcome::Resent);
    assert_eq!(done.status, SagaStatus::Running);
    let (commands, sendings) = {
        let sent = rig.bus.0.lock().expect("lock");
        (sent.commands.clone(), sent.sendings.clone())
    };
    assert_eq!(commands.len(), 2, "the first send and the requeue's");
    assert_eq!(commands[0], commands[1], "the same command, same id");
    assert_eq!(sendings, [Sending::First, Sending::Requeued(4)]);
    assert_eq!(
        Sending::Requeued(4).message_id(&commands[1].command_id),
        format!("{}:requeue:4", commands[1].command_id)
    );
    let timeline = rig.core.store.timeline(id).await.expect("timeline");
    let noted = timeline
        .iter()
        .find_map(|e| e.operator_action.as_deref())
        .expect("the requeue is in the timeline");
    assert_eq!(
        (noted.operator.as_str(), noted.dead_letter),
        ("ann", Some(4))
    );

    // The same letter again: nothing sent, the earlier requeue named.
    let again = requeue(&rig, id, 4, "database").await.expect("answered");
    assert_eq!(again.outcome, RequeueOutcome::AlreadyRequeued);
    assert_eq!(again.earlier.map(|a| a.operator), Some("ann".into()));
    assert_eq!(rig.bus.commands().len(), 2, "nothing sent twice");
    finish_every_step(&rig, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_requeued_letter_of_a_rolled_back_saga_replays_it() {
    let rig = Rig::new();
    let id = Uuid::new_v4();
    rig.signup(id).await;
    rig.command_sent("database", StepAction::Execute).await;
    let failed = StepReport::Failed {
        code: "boom".into(),
        message: "database broke".into(),
        retryable: false,
    };
    rig.report("database", failed, 1).await;
    rig.command_sent("database", StepAction::Compensate).await;
    rig.complete("database").await;
    rig.reaches(id, SagaStatus::RolledBack).await;

    let done = requeue(&rig, id, 9, "database").await.expect("requeued");
    assert_eq!(done.outcome, RequeueOutcome::Replayed);
    assert_eq!(rig.saga(id).await.run, 2);
    let again = requeue(&rig, id, 9, "database").await.expect("answered");
    assert_eq!(again.outcome, RequeueOutcome::AlreadyRequeued);
    assert_eq!(rig.saga(id).await.run, 2, "not replayed twice");
    finish_every_step(&rig, id).await;
}
