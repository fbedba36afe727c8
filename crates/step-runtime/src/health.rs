//! `/healthz` and `/readyz` over HTTP, on each service's own port, so docker compose
//! and Kubernetes can probe it.
//!
//! - `/healthz` (liveness): 200 while the process serves requests at all. It checks
//!   nothing outside, so an outage of NATS or MariaDB never gets a service restarted.
//! - `/readyz` (readiness): 200 when every dependency answers (NATS, and what the
//!   service adds: the saga store, MariaDB, the Docker engine and the backend
//!   container, the bench folder), 503 otherwise; the JSON body names each check.
//! - `/metrics`: the process's Prometheus metrics (`exposition.rs`), on the same port
//!   so that a deployment opens one port per service.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long all readiness checks together may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one dependency may take to answer ([`Check::within`]).
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of one dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `nats`, `store`, `mariadb`, `docker`, `bench`.
    pub name: String,
    /// Whether it answered.
    pub ok: bool,
    /// Why not, for the operator (no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    /// `name` is ready when `result` is `Ok`.
    pub fn from_result(name: &str, result: Result<(), String>) -> Self {
        Self {
            name: name.into(),
            ok: result.is_ok(),
            detail: result.err(),
        }
    }

    /// `name` is ready when `answer` gives `Ok` within 2 s: a dependency that hangs
    /// (a pool waiting for a server that drops packets) is named, not just late.
    pub async fn within(name: &str, answer: impl Future<Output = Result<(), String>>) -> Self {
        let result = tokio::time::timeout(DEPENDENCY_TIMEOUT, answer)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no answer within {}s",
                    DEPENDENCY_TIMEOUT.as_secs()
                ))
            });
        Self::from_result(name, result)
    }

    /// The NATS connection's state.
    pub fn nats(client: &async_nats::Client) -> Self {
        let state = client.connection_state();
        Self::from_result(
            "nats",
            match state {
                async_nats::connection::State::Connected => Ok(()),
                other => Err(format!("connection {other}")),
            },
        )
    }
}

/// Runs the readiness checks of a service.
pub type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<Check>> + Send>> + Send + Sync + 'static>;

/// A probe from an async closure.
pub fn probe<F, Fut>(checks: F) -> Probe
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Check>> + Send + 'static,
{
    Arc::new(move || Box::pin(checks()))
}

/// Binds the health port (`HEALTH_ADDR`, or the orchestrator's `HTTP_ADDR`).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the health endpoint on {addr}"))
}

#[derive(Serialize)]
struct Report {
    status: &'static str,
    checks: Vec<Check>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown`.
pub fn serve(
    listener: TcpListener,
    probe: Probe,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    serve_with(listener, routes(probe), shutdown)
}

/// `/healthz`, `/readyz` and `/metrics` as a router, for a service that serves more on
/// its port (the orchestrator's HTTP API).
pub fn routes(probe: Probe) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "alive"})) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(probe)
}

/// Serves `app` on `listener` until `shutdown`.
pub fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // Installed now, so the first scrape already finds the recorder.
    crate::exposition::handle();
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    tracing::info!(%addr, "http endpoints served: /healthz, /readyz, /metrics");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    })
}

async fn metrics() -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::exposition::render(),
    )
}

async fn ready(State(probe): State<Probe>) -> (StatusCode, Json<Report>) {
    let checks = match tokio::time::timeout(CHECK_TIMEOUT, probe()).await {
        Ok(checks) => checks,
        Err(_) => vec![Check::from_result(
            "checks",
            Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
        )],
    };
    if checks.iter().all(|c| c.ok) {
        (
            StatusCode::OK,
            Json(Report {
                status: "ready",
                checks,
            }),
        )
    } else {
        for check in checks.iter().filter(|c| !c.ok) {
            tracing::warn!(check = %check.name, detail = ?check.detail, "not ready");
        }
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Report {
                status: "not_ready",
                checks,
            }),
        )
    }
}

/// The default health port of a step service, so a compose file or a
/// developer's shell can run all four on one host without setting `HEALTH_ADDR`.
pub fn default_addr(step: &str) -> SocketAddr {
    let port = match step {
        "database" => 8011,
        "site" => 8012,
        "admin_user" => 8013,
        "registration" => 8014,
        _ => 8019,
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}
