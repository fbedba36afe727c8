//! The orchestrator's HTTP API on `HTTP_ADDR`, beside `/healthz` and `/readyz`: the
//! old provisioning service's endpoints (`compat.rs`), the operators' endpoints
//! (`sagas.rs`, `events.rs`, `dead_letters.rs`, `pool.rs`), the dashboard's headline figures
//! (`stats.rs`), who may call what (`auth.rs`), the OpenAPI document (`openapi.rs`),
//! served at `/openapi.json`, and the live dashboard at `/` (`dashboard.rs`).

mod auth;
mod compat;
mod dashboard;
mod dead_letters;
mod events;
mod openapi;
mod pool;
mod sagas;
mod stats;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::admin::{DeadLettersReply, DeadLettersRequest, GetReply, ListReply, ListRequest};
use contracts::subdomain::SubdomainCheckReply;
use contracts::ErrorInfo;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) use auth::Credentials;
pub use openapi::document;

use crate::api::Reader;
use crate::store::SagaStore;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the handlers read through, whatever the store: every instance answers reads.
pub(crate) trait Reads: Send + Sync + 'static {
    /// One saga with its timeline.
    fn get(&self, saga_id: Uuid) -> Boxed<'_, GetReply>;
    /// A page of sagas.
    fn list<'a>(&'a self, request: &'a ListRequest) -> Boxed<'a, ListReply>;
    /// The dashboard's headline figures over `window` (its text and length) of the
    /// sagas of `kind`, now.
    fn stats<'a>(
        &'a self,
        window: (&'a str, chrono::TimeDelta),
        kind: contracts::admin::SagaKind,
    ) -> Boxed<'a, Result<crate::stats::Stats, ErrorInfo>>;
    /// `tenant.subdomain.check`'s answer.
    fn check(&self, subdomain: String) -> Boxed<'_, SubdomainCheckReply>;
    /// The newest dead letters, or one.
    fn dead_letters<'a>(&'a self, request: &'a DeadLettersRequest) -> Boxed<'a, DeadLettersReply>;
    /// The standby pool.
    fn pool(&self) -> Boxed<'_, contracts::pool::PoolReply>;
    /// Whether the store answers, and who leads (`None`: nobody).
    fn store_state(&self) -> Boxed<'_, Result<Option<String>, String>>;
}

impl<S: SagaStore> Reads for Reader<S> {
    fn get(&self, saga_id: Uuid) -> Boxed<'_, GetReply> {
        Box::pin(crate::admin::get(self, saga_id))
    }
    fn list<'a>(&'a self, request: &'a ListRequest) -> Boxed<'a, ListReply> {
        Box::pin(crate::admin::list(self, request))
    }
    fn stats<'a>(
        &'a self,
        window: (&'a str, chrono::TimeDelta),
        kind: contracts::admin::SagaKind,
    ) -> Boxed<'a, Result<crate::stats::Stats, ErrorInfo>> {
        Box::pin(async move {
            crate::stats::read(&*self.store, window, kind, chrono::Utc::now())
                .await
                .map_err(|e| {
                    crate::admin::error(
                        "store_unavailable",
                        format!("the saga store cannot be read: {e}"),
                    )
                })
        })
    }
    fn check(&self, subdomain: String) -> Boxed<'_, SubdomainCheckReply> {
        Box::pin(async move {
            let payload = serde_json::json!({ "subdomain": subdomain }).to_string();
            crate::api::subdomain_check(self, payload.as_bytes()).await
        })
    }
    fn dead_letters<'a>(&'a self, request: &'a DeadLettersRequest) -> Boxed<'a, DeadLettersReply> {
        Box::pin(crate::dead_letters::list(self, request))
    }
    fn pool(&self) -> Boxed<'_, contracts::pool::PoolReply> {
        Box::pin(crate::pool_admin::read(
            &*self.store,
            self.pool_size,
            chrono::Utc::now(),
        ))
    }
    fn store_state(&self) -> Boxed<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            let read = self.store.leader();
            match tokio::time::timeout(std::time::Duration::from_secs(2), read).await {
                Ok(Ok(lease)) => Ok(lease.map(|l| l.holder)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer within 2s".into()),
            }
        })
    }
}

/// Everything a handler needs.
pub(crate) struct AppState {
    pub reads: Arc<dyn Reads>,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub subjects: contracts::Subjects,
    pub keyring: secrets::Keyring,
    pub credentials: auth::Credentials,
    pub master_site: Option<String>,
    pub instance: String,
    /// Ends the live event streams at shutdown (the server waits for them).
    pub shutdown: CancellationToken,
}

/// The API's routes over `state`, with `/healthz` and `/readyz` merged in.
pub(crate) fn router(state: AppState, health: step_runtime::health::Probe) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .route("/health", get(compat::health))
        .route("/api/v1/provision", post(compat::provision))
        .route("/api/check-subdomain", get(compat::check_subdomain))
        .route("/api/v1/sagas", get(sagas::list))
        .route("/api/v1/sagas/replay", post(sagas::replay_bulk))
        .route("/api/v1/sagas/{id}", get(sagas::get))
        .route("/api/v1/sagas/{id}/replay", post(sagas::replay))
        .route("/api/v1/sagas/{id}/events", get(events::saga_events))
        .route("/api/v1/events", get(events::all_events))
        .route("/api/v1/stats", get(stats::stats))
        .route(
            "/api/v1/pool",
            get(pool::get).put(pool::put).delete(pool::clear),
        )
        .route("/api/v1/dead-letters", get(dead_letters::list))
        .route("/api/v1/dead-letters/{seq}", get(dead_letters::one))
        .route(
            "/api/v1/dead-letters/{seq}/requeue",
            post(dead_letters::requeue),
        )
        .with_state(Arc::new(state));
    api.merge(dashboard::routes())
        .merge(step_runtime::health::routes(health))
}

/// The JSON body of every refusal: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ApiError {
    /// What went wrong.
    pub error: ErrorInfo,
}

/// A refusal with its status.
pub(crate) struct Refusal(pub StatusCode, pub ErrorInfo);

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self(status, crate::admin::error(code, message))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

/// The HTTP status an error code of the admin operations maps to.
pub(crate) fn status_of(error: &ErrorInfo) -> StatusCode {
    match error.code.as_str() {
        "bad_request" => StatusCode::BAD_REQUEST,
        "not_found" => StatusCode::NOT_FOUND,
        "not_replayable" | "not_requeueable" | "signup_not_requeueable" => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}
