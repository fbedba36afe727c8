//! Operators' endpoints over sagas: list (filters, paging), one saga with its timeline
//! and step timings, replay of one saga and bulk replay. Reads answer on every
//! instance; replays go over `saga.admin.replay{,_bulk}`, which only the leader
//! answers, so a standby's replay reaches the leader.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use contracts::admin::{
    BulkReplayReply, BulkReplayRequest, GetReply, ListReply, ListRequest, ReplayReply,
    ReplayRequest,
};
use contracts::SagaStatus;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::{Read, Write};
use super::{status_of, AppState, Refusal};

/// How long a replay waits for the leader's answer.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a bulk replay waits (each saga is replayed in turn).
const BULK_TIMEOUT: Duration = Duration::from_secs(120);

/// The filters and paging of `GET /api/v1/sagas`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this status.
    pub status: Option<SagaStatus>,
    /// Only sagas at, or stopped at, this step.
    pub step: Option<String>,
    /// Only sagas whose error has this code.
    pub error_code: Option<String>,
    /// Only this subdomain.
    pub subdomain: Option<String>,
    /// Only sagas created at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only signups (`signup`) or only the standby pool's builds (`standby_build`).
    pub kind: Option<contracts::admin::SagaKind>,
    /// At most this many (default 50, 1 to 500).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn bad_query(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
}

#[utoipa::path(get, path = "/api/v1/sagas", tag = "sagas", params(ListParams),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "A page of sagas, newest first", body = ListReply),
        (status = 400, description = "A bad filter or cursor", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 503, description = "The store does not answer", body = super::ApiError)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _: Read,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListReply>, Refusal> {
    let Query(params) = params.map_err(|e| bad_query(e.body_text()))?;
    let request = ListRequest {
        status: params.status,
        limit: params.limit,
        step: params.step,
        error_code: params.error_code,
        subdomain: params.subdomain,
        since: params.since,
        kind: params.kind,
        cursor: params.cursor,
    };
    let reply = state.reads.list(&request).await;
    match reply.error {
        Some(error) => Err(Refusal(status_of(&error), error)),
        None => Ok(Json(reply)),
    }
}

fn saga_id(
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<Uuid, Refusal> {
    id.map(|Path(id)| id)
        .map_err(|e| bad_query(format!("the saga id must be a UUID: {}", e.body_text())))
}

#[utoipa::path(get, path = "/api/v1/sagas/{id}", tag = "sagas",
    params(("id" = Uuid, Path, description = "The saga (= signup) id")),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "The saga, its timeline, step timings and operator actions", body = GetReply),
        (status = 400, description = "Not a UUID", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 404, description = "No such saga", body = super::ApiError),
        (status = 503, description = "The store does not answer", body = super::ApiError)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    _: Read,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
) -> Result<Json<GetReply>, Refusal> {
    let reply = state.reads.get(saga_id(id)?).await;
    match reply.error {
        Some(error) => Err(Refusal(status_of(&error), error)),
        None => Ok(Json(reply)),
    }
}

/// The body of `POST /api/v1/sagas/{id}/replay`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct ReplayBody {
    /// Why (kept in the saga's timeline).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Asks the leader over NATS and reads its answer.
pub(super) async fn ask_leader<T: serde::de::DeserializeOwned>(
    state: &AppState,
    subject: String,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<T, Refusal> {
    let request = async_nats::Request::new()
        .payload(body.into())
        .timeout(Some(timeout));
    let answer = state
        .client
        .send_request(subject, request)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the leader did not answer");
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_leader",
                "no orchestrator leads right now (or it did not answer in time); try again",
            )
        })?;
    serde_json::from_slice(&answer.payload).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_GATEWAY,
            "bad_answer",
            format!("the leader's answer is unreadable: {e}"),
        )
    })
}

/// The JSON body, or the type's default when there is none.
pub(super) fn body_or_default<T: Default>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, Refusal> {
    match body {
        Ok(Json(body)) => Ok(body),
        Err(axum::extract::rejection::JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            e.body_text(),
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/sagas/{id}/replay", tag = "sagas",
    params(("id" = Uuid, Path, description = "The saga (= signup) id"),
        ("X-Operator" = Option<String>, Header, description = "Who asks (recorded); else `write-secret`")),
    request_body(content = ReplayBody, description = "Why (optional)"),
    security(("provisioning_secret" = [])),
    responses(
        (status = 202, description = "The replay started", body = ReplayReply),
        (status = 401, description = "No or a wrong X-Provisioning-Secret", body = super::ApiError),
        (status = 404, description = "No such saga", body = super::ApiError),
        (status = 409, description = "The saga cannot be replayed now", body = ReplayReply),
        (status = 503, description = "No leader answers, or writes are disabled", body = super::ApiError)))]
pub(crate) async fn replay(
    State(state): State<Arc<AppState>>,
    write: Write,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
    body: Result<Json<ReplayBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ReplayReply>), Refusal> {
    let saga_id = saga_id(id)?;
    let body = body_or_default(body)?;
    let known = state.reads.get(saga_id).await;
    if let Some(error) = known.error {
        return Err(Refusal(status_of(&error), error));
    }
    let request = ReplayRequest {
        saga_id,
        operator: Some(write.operator),
        reason: body.reason,
    };
    let payload = serde_json::to_vec(&request).unwrap_or_default();
    let reply: ReplayReply = ask_leader(
        &state,
        state.subjects.admin_replay(),
        payload,
        REPLAY_TIMEOUT,
    )
    .await?;
    let status = match &reply.error {
        None => StatusCode::ACCEPTED,
        Some(error) => status_of(error),
    };
    Ok((status, Json(reply)))
}

#[utoipa::path(post, path = "/api/v1/sagas/replay", tag = "sagas",
    params(("X-Operator" = Option<String>, Header, description = "Who asks (recorded); else `write-secret`")),
    request_body = BulkReplayRequest,
    security(("provisioning_secret" = [])),
    responses(
        (status = 200, description = "What matched and, unless a dry run, each replay's answer", body = BulkReplayReply),
        (status = 400, description = "A bad filter", body = super::ApiError),
        (status = 401, description = "No or a wrong X-Provisioning-Secret", body = super::ApiError),
        (status = 503, description = "No leader answers, or writes are disabled", body = super::ApiError)))]
pub(crate) async fn replay_bulk(
    State(state): State<Arc<AppState>>,
    write: Write,
    body: Result<Json<BulkReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BulkReplayReply>, Refusal> {
    let mut request = body_or_default(body)?;
    // Who asks is the caller, whatever the body says.
    request.operator = Some(write.operator);
    let payload = serde_json::to_vec(&request).unwrap_or_default();
    let reply: BulkReplayReply = ask_leader(
        &state,
        state.subjects.admin_replay_bulk(),
        payload,
        BULK_TIMEOUT,
    )
    .await?;
    match reply.error {
        Some(error) => Err(Refusal(status_of(&error), error)),
        None => Ok(Json(reply)),
    }
}
