//! The standby pool for operators: `GET /api/v1/pool` (the size in force and where
//! it comes from, the standbys by state, claims and misses of the last hour), read on
//! every instance; `PUT` and `DELETE /api/v1/pool` set the size or go back to
//! `STANDBY_POOL_SIZE`, sent over `saga.admin.pool.set`, which only the leader answers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use contracts::pool::{PoolReply, PoolSetRequest};
use serde::Deserialize;

use super::auth::{Read, Write};
use super::sagas::{ask_leader, body_or_default};
use super::{status_of, AppState, Refusal};

/// How long a change waits for the leader's answer.
const SET_TIMEOUT: Duration = Duration::from_secs(15);

/// The body of `PUT /api/v1/pool`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolSizeBody {
    /// How many standbys to keep building or ready, 0 to 1000 (0 drains the pool).
    #[schema(minimum = 0, maximum = 1000)]
    pub size: u32,
    /// Why (recorded with who and when).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The body of `DELETE /api/v1/pool` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolClearBody {
    /// Why (recorded with who and when).
    #[serde(default)]
    pub reason: Option<String>,
}

fn answer(reply: PoolReply) -> Result<Json<PoolReply>, Refusal> {
    match reply.error {
        Some(error) => Err(Refusal(status_of(&error), error)),
        None => Ok(Json(reply)),
    }
}

#[utoipa::path(get, path = "/api/v1/pool", tag = "pool", operation_id = "get_pool",
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "The pool: size in force and its source, standbys by state, claims and misses of the last hour", body = PoolReply),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 503, description = "The store does not answer", body = super::ApiError)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    _: Read,
) -> Result<Json<PoolReply>, Refusal> {
    answer(state.reads.pool().await)
}

async fn set(state: &AppState, request: PoolSetRequest) -> Result<Json<PoolReply>, Refusal> {
    let payload = serde_json::to_vec(&request).unwrap_or_default();
    let reply: PoolReply =
        ask_leader(state, state.subjects.admin_pool_set(), payload, SET_TIMEOUT).await?;
    answer(reply)
}

#[utoipa::path(put, path = "/api/v1/pool", tag = "pool", operation_id = "set_pool_size",
    params(("X-Operator" = Option<String>, Header, description = "Who asks (recorded); else `write-secret`")),
    request_body = PoolSizeBody,
    security(("provisioning_secret" = [])),
    responses(
        (status = 200, description = "The size is set on every instance (until cleared, across restarts); the pool as it is now, growing or draining towards it", body = PoolReply),
        (status = 400, description = "A size outside 0 to 1000", body = super::ApiError),
        (status = 401, description = "No or a wrong X-Provisioning-Secret", body = super::ApiError),
        (status = 422, description = "Not a body with a size", body = super::ApiError),
        (status = 503, description = "No leader answers, or writes are disabled", body = super::ApiError)))]
pub(crate) async fn put(
    State(state): State<Arc<AppState>>,
    write: Write,
    body: Result<Json<PoolSizeBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PoolReply>, Refusal> {
    let Json(body) = body.map_err(|e| {
        Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            e.body_text(),
        )
    })?;
    let request = PoolSetRequest {
        size: Some(body.size),
        clear: false,
        operator: Some(write.operator),
        reason: body.reason,
    };
    set(&state, request).await
}

#[utoipa::path(delete, path = "/api/v1/pool", tag = "pool", operation_id = "clear_pool_size",
    params(("X-Operator" = Option<String>, Header, description = "Who asks (recorded); else `write-secret`")),
    request_body(content = PoolClearBody, description = "Why (optional)"),
    security(("provisioning_secret" = [])),
    responses(
        (status = 200, description = "Back to STANDBY_POOL_SIZE; the pool as it is now", body = PoolReply),
        (status = 401, description = "No or a wrong X-Provisioning-Secret", body = super::ApiError),
        (status = 503, description = "No leader answers, or writes are disabled", body = super::ApiError)))]
pub(crate) async fn clear(
    State(state): State<Arc<AppState>>,
    write: Write,
    body: Result<Json<PoolClearBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PoolReply>, Refusal> {
    let body = body_or_default(body)?;
    let request = PoolSetRequest {
        size: None,
        clear: true,
        operator: Some(write.operator),
        reason: body.reason,
    };
    set(&state, request).await
}
