//! `GET /api/v1/stats`: the dashboard's headline figures (success rate, median and p90
//! time to ready over a window, in flight, needing attention), read from the store on
//! every instance (`crate::stats`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::Read;
use super::{status_of, AppState, Refusal};
use crate::stats::{parse_window, Stats};

/// Options of `GET /api/v1/stats`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// The window of the success rate and time to ready: a whole number of minutes,
    /// hours or days (`90m`, `24h`, `7d`), at most `30d`; default `24h`.
    #[param(pattern = "^[0-9]+[mhd]$", example = "24h")]
    pub window: Option<String>,
    /// Whose figures: `signup` (default) or `standby_build` (the standby pool's builds).
    pub kind: Option<contracts::admin::SagaKind>,
}

#[utoipa::path(get, path = "/api/v1/stats", tag = "sagas", params(StatsParams),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "The headline figures: the window's success rate and time to ready, sagas in flight and needing attention now", body = Stats),
        (status = 400, description = "A bad window", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 503, description = "The store does not answer", body = super::ApiError)))]
pub(crate) async fn stats(
    State(state): State<Arc<AppState>>,
    _: Read,
    params: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Stats>, Refusal> {
    let bad = |message: String| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", message);
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let text = params.window.unwrap_or_else(|| "24h".into());
    let window = parse_window(&text).map_err(bad)?;
    let kind = params.kind.unwrap_or_default();
    match state.reads.stats((&text, window), kind).await {
        Ok(stats) => Ok(Json(stats)),
        Err(error) => Err(Refusal(status_of(&error), error)),
    }
}
