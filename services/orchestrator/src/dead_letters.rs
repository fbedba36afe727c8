//! Dead letters for operators, the same over NATS (`api.rs`) and HTTP (`http/`): the
//! newest ones or one by its sequence in `TENANT_DEAD_LETTERS`, and the requeue of a
//! step's letter once its cause is fixed, which re-drives the saga it names (the
//! driver decides how: `driver/recovery.rs`, `saga/replay.rs`).
//!
//! A signup's letter cannot be requeued: it keeps no password, by design (a dead
//! letter never holds a secret), so the user signs up again.

use contracts::admin::{
    DeadLettersReply, DeadLettersRequest, RequeueOutcome, RequeueReply, RequeueRequest,
};
use contracts::step_dead_letter::StepDeadLetter;
use contracts::ErrorInfo;
use tokio::sync::oneshot;

use crate::admin::{error, operator_action};
use crate::api::Reader;
use crate::driver::{Core, Work};
use crate::store::SagaStore;

fn unreadable(e: &anyhow::Error) -> ErrorInfo {
    error(
        "dead_letters_unavailable",
        format!("the dead letters cannot be read: {e:#}"),
    )
}

/// `saga.admin.dead_letters` / `GET /api/v1/dead-letters[/{seq}]`: the newest
/// letters, or the one at `sequence`.
pub(crate) async fn list<S: SagaStore>(
    reader: &Reader<S>,
    request: &DeadLettersRequest,
) -> DeadLettersReply {
    let empty = |error| DeadLettersReply {
        letters: Vec::new(),
        error: Some(error),
    };
    if let Some(sequence) = request.sequence {
        return match reader.bus.dead_letter_at(sequence).await {
            Ok(Some(letter)) => DeadLettersReply {
                letters: vec![letter],
                error: None,
            },
            Ok(None) => empty(error(
                "not_found",
                format!("no dead letter at sequence {sequence}"),
            )),
            Err(e) => empty(unreadable(&e)),
        };
    }
    let limit = request.limit.unwrap_or(50).clamp(1, 500);
    match reader.bus.recent_dead_letters(u64::from(limit)).await {
        Ok(letters) => DeadLettersReply {
            letters,
            error: None,
        },
        Err(e) => empty(unreadable(&e)),
    }
}

/// `saga.admin.dead_letters.requeue` (the leader only): re-drives the saga a step's
/// letter names, recorded as an operator action in its timeline, at most once per
/// letter.
pub(crate) async fn requeue<S: SagaStore>(
    core: &Core<S>,
    request: &RequeueRequest,
) -> RequeueReply {
    let sequence = request.sequence;
    let refuse = |saga_id, code: &str, message: String| RequeueReply {
        sequence,
        saga_id,
        accepted: false,
        outcome: None,
        status: None,
        message: message.clone(),
        error: Some(error(code, message)),
    };
    let entry = match core.bus.dead_letter_at(sequence).await {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            return refuse(
                None,
                "not_found",
                format!("no dead letter at sequence {sequence}"),
            )
        }
        Err(e) => {
            let e = unreadable(&e);
            return refuse(None, &e.code, e.message);
        }
    };
    if entry.subject == core.subjects.signup_dead_letter() {
        return refuse(
            None,
            "signup_not_requeueable",
            format!(
                "dead letter {sequence} is a signup: it keeps no password (by design), so it cannot be sent again; the user must sign up again"
            ),
        );
    }
    let Ok(letter) = serde_json::from_value::<StepDeadLetter>(entry.letter) else {
        return refuse(
            None,
            "not_requeueable",
            format!("dead letter {sequence} is not a step's dead letter: nothing to re-drive"),
        );
    };
    let Some(saga_id) = letter.saga_id else {
        return refuse(
            None,
            "not_requeueable",
            format!(
                "dead letter {sequence} names no saga (its message could not be read: {}): nothing to re-drive; fix its sender",
                letter.reason
            ),
        );
    };
    let action = operator_action(
        "requeue",
        request.operator.as_deref(),
        request.reason.as_deref(),
        "nats",
        core.clock.now(),
    );
    tracing::info!(%saga_id, letter = sequence, operator = %action.operator, reason = %action.reason, "requeue asked");
    let (tx, rx) = oneshot::channel();
    core.router
        .send(
            saga_id,
            Work::Requeue {
                action,
                letter: sequence,
                step: letter.step().map(str::to_string),
                reply: tx,
            },
        )
        .await;
    let done = match rx.await {
        Ok(Ok(done)) => done,
        Ok(Err(reason)) => {
            let mut reply = refuse(
                Some(saga_id),
                "not_requeueable",
                format!("saga {saga_id}: {reason}"),
            );
            reply.status = core
                .store
                .get(saga_id)
                .await
                .ok()
                .flatten()
                .map(|s| s.status);
            return reply;
        }
        Err(_) => return refuse(Some(saga_id), "unavailable", "shutting down".into()),
    };
    let follow = format!("follow it on {}", core.subjects.progress(&saga_id));
    let (accepted, message) = match (&done.outcome, &done.earlier) {
        (RequeueOutcome::AlreadyRequeued, Some(earlier)) => (
            false,
            format!(
                "dead letter {sequence} was requeued already, by {} at {}: nothing done again",
                earlier.operator,
                earlier
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ),
        (RequeueOutcome::AlreadyRequeued, None) => (
            false,
            format!("dead letter {sequence} was requeued already: nothing done again"),
        ),
        (RequeueOutcome::Replayed, _) => (true, format!("saga {saga_id} replayed; {follow}")),
        (RequeueOutcome::Resent, _) => (
            true,
            format!(
                "the {} command of saga {saga_id} was sent again; {follow}",
                letter.step().unwrap_or("pending")
            ),
        ),
    };
    RequeueReply {
        sequence,
        saga_id: Some(saga_id),
        accepted,
        outcome: Some(done.outcome),
        status: Some(done.status),
        message,
        error: None,
    }
}
