//! Operators' endpoints over dead letters: the newest ones, one by its sequence in
//! `TENANT_DEAD_LETTERS`, and the requeue of a step's letter once its cause is fixed
//! (forwarded to the leader over `saga.admin.dead_letters.requeue`, as replays are).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use contracts::admin::{
    DeadLetterEntry, DeadLettersReply, DeadLettersRequest, RequeueOutcome, RequeueReply,
    RequeueRequest,
};
use serde::Deserialize;

use super::auth::{Read, Write};
use super::sagas::{ask_leader, body_or_default, ReplayBody};
use super::{status_of, AppState, Refusal};

/// How long a requeue waits for the leader's answer.
const REQUEUE_TIMEOUT: Duration = Duration::from_secs(15);

/// The paging of `GET /api/v1/dead-letters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LettersParams {
    /// At most this many, newest first (default 50, 1 to 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

fn sequence_of(
    seq: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<u64, Refusal> {
    let refuse = |why: String| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the sequence must be a whole number from 1 (the letter's `sequence`){why}"),
        )
    };
    match seq {
        Ok(Path(0)) => Err(refuse(String::new())),
        Ok(Path(seq)) => Ok(seq),
        Err(e) => Err(refuse(format!(": {}", e.body_text()))),
    }
}

#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "dead letters", params(LettersParams),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "The newest dead letters (signups, step commands, reports), newest first; none holds a secret", body = DeadLettersReply),
        (status = 400, description = "A bad limit", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 503, description = "The dead-letter stream cannot be read", body = super::ApiError)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _: Read,
    params: Result<Query<LettersParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLettersReply>, Refusal> {
    let Query(params) =
        params.map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let request = DeadLettersRequest {
        limit: params.limit,
        sequence: None,
    };
    let reply = state.reads.dead_letters(&request).await;
    match reply.error {
        Some(error) => Err(Refusal(status_of(&error), error)),
        None => Ok(Json(reply)),
    }
}

#[utoipa::path(get, path = "/api/v1/dead-letters/{seq}", tag = "dead letters",
    params(("seq" = u64, Path, minimum = 1, description = "The letter's sequence in stream TENANT_DEAD_LETTERS")),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "The letter", body = DeadLetterEntry),
        (status = 400, description = "Not a sequence (a whole number from 1)", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 404, description = "No letter at this sequence", body = super::ApiError),
        (status = 503, description = "The dead-letter stream cannot be read", body = super::ApiError)))]
pub(crate) async fn one(
    State(state): State<Arc<AppState>>,
    _: Read,
    seq: Result<Path<u64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<DeadLetterEntry>, Refusal> {
    let request = DeadLettersRequest {
        limit: None,
        sequence: Some(sequence_of(seq)?),
    };
    let mut reply = state.reads.dead_letters(&request).await;
    match (reply.error, reply.letters.pop()) {
        (Some(error), _) => Err(Refusal(status_of(&error), error)),
        (None, Some(letter)) => Ok(Json(letter)),
        (None, None) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no dead letter at this sequence",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/dead-letters/{seq}/requeue", tag = "dead letters",
    params(("seq" = u64, Path, minimum = 1, description = "The letter's sequence in stream TENANT_DEAD_LETTERS"),
        ("X-Operator" = Option<String>, Header, description = "Who asks (recorded); else `write-secret`")),
    request_body(content = ReplayBody, description = "Why: what was fixed (optional)"),
    security(("provisioning_secret" = [])),
    responses(
        (status = 202, description = "The saga was re-driven: replayed, or its pending command sent again", body = RequeueReply),
        (status = 200, description = "The letter was requeued before: nothing done again", body = RequeueReply),
        (status = 400, description = "Not a sequence (a whole number from 1)", body = super::ApiError),
        (status = 401, description = "No or a wrong X-Provisioning-Secret", body = super::ApiError),
        (status = 404, description = "No letter at this sequence", body = RequeueReply),
        (status = 409, description = "The letter cannot be requeued: a signup's (the user signs up again), one naming no saga, or a saga in no state to re-drive", body = RequeueReply),
        (status = 503, description = "No leader answers, or writes are disabled", body = super::ApiError)))]
pub(crate) async fn requeue(
    State(state): State<Arc<AppState>>,
    write: Write,
    seq: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Json<ReplayBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<RequeueReply>), Refusal> {
    let sequence = sequence_of(seq)?;
    let body = body_or_default(body)?;
    let request = RequeueRequest {
        sequence,
        operator: Some(write.operator),
        reason: body.reason,
    };
    let payload = serde_json::to_vec(&request).unwrap_or_default();
    let reply: RequeueReply = ask_leader(
        &state,
        state.subjects.admin_requeue(),
        payload,
        REQUEUE_TIMEOUT,
    )
    .await?;
    let status = match (&reply.error, reply.outcome) {
        (Some(error), _) => status_of(error),
        (None, Some(RequeueOutcome::AlreadyRequeued)) => StatusCode::OK,
        (None, _) => StatusCode::ACCEPTED,
    };
    Ok((status, Json(reply)))
}
