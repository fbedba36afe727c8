//! The orchestrator over its HTTP API (`--api URL`): reads with the read token
//! (`Authorization: Bearer`, else the write secret), writes with the write secret
//! (`X-Provisioning-Secret`), who asks as `X-Operator`, a saga's progress as
//! Server-Sent Events (`sse.rs`).

use std::time::Duration;

use contracts::admin::{
    BulkReplayReply, BulkReplayRequest, DeadLetterEntry, DeadLettersReply, DeadLettersRequest,
    GetReply, ListReply, ListRequest, ReplayReply, RequeueReply, RequeueRequest,
};
use contracts::pool::{PoolReply, PoolSetRequest};
use contracts::subdomain::SubdomainCheckReply;
use contracts::ErrorInfo;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrets::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use uuid::Uuid;

use super::sse::resume_backoff;
pub use super::sse::SseEvents;
use crate::credentials::HttpCredentials;
use crate::error::Error;
use crate::signup::TestSignup;

/// How long a bulk replay may take (each saga is replayed in turn).
const BULK_TIMEOUT: Duration = Duration::from_secs(120);
/// Every refusal of the API: `{"error": {"code", "message"}}`.
#[derive(Deserialize)]
pub(super) struct ApiError {
    pub(super) error: ErrorInfo,
}

/// What `POST /api/v1/provision` answers.
#[derive(Deserialize)]
struct Provisioned {
    saga_id: Uuid,
}

/// The API's address and credentials.
#[derive(Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    base: String,
    read_token: Option<SecretString>,
    secret: Option<SecretString>,
    timeout: Duration,
    /// The waits between attempts to resume a saga's event stream.
    pub(super) resume: backon::ExponentialBuilder,
}

/// Whether a call reads or writes: which credential it sends.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Access {
    Read,
    Write,
}

impl HttpClient {
    /// A client of the API at `base`.
    pub fn new(base: &str, credentials: HttpCredentials, timeout: Duration) -> Result<Self, Error> {
        let parsed = reqwest::Url::parse(base).map_err(|e| {
            Error::Usage(format!(
                "--api / SAGACTL_API {base:?} is not a URL ({e}); for example http://127.0.0.1:8001"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Usage(format!(
                "--api / SAGACTL_API must be an http:// or https:// URL, not {base:?}"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| Error::Usage(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            read_token: credentials.read_token,
            secret: credentials.secret,
            timeout,
            resume: resume_backoff(),
        })
    }

    pub(super) fn call(&self, method: Method, path: &str, access: Access) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match (access, &self.read_token, &self.secret) {
            (Access::Read, Some(token), _) => request.bearer_auth(token.expose_secret()),
            (_, _, Some(secret)) => request.header("X-Provisioning-Secret", secret.expose_secret()),
            _ => request,
        }
    }

    /// Sends `request`, and reads its answer as `T` (the API answers a refused write
    /// with the reply's own type, carrying its `error`) or as the API's refusal.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: RequestBuilder,
        access: Access,
        wait: Duration,
    ) -> Result<T, Error> {
        let response = request
            .timeout(wait)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let url = response.url().path().to_string();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if status == StatusCode::UNAUTHORIZED {
            let needed = match access {
                Access::Read => "set PROVISIONING_READ_TOKEN (or PROVISIONING_API_SECRET) to the orchestrator's",
                Access::Write => "writes need PROVISIONING_API_SECRET set to the orchestrator's (the read token does not do)",
            };
            return Err(Error::Unreachable(format!(
                "401 Unauthorized from {url}: {needed}"
            )));
        }
        if let Ok(reply) = serde_json::from_slice::<T>(&body) {
            return Ok(reply);
        }
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(refusal) if status == StatusCode::SERVICE_UNAVAILABLE => Err(Error::Unreachable(
                format!("{status} from {url}: {}: {}", refusal.error.code, refusal.error.message),
            )),
            Ok(refusal) => Err(Error::refused(&refusal.error)),
            Err(_) => Err(Error::Unreachable(format!(
                "{status} from {url} with an answer that is not the API's: is --api ({}) the orchestrator's HTTP API?",
                self.base
            ))),
        }
    }

    pub(super) fn unreachable(&self, e: &reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Unreachable(format!(
                "the HTTP API at {} did not answer in time: is the orchestrator running? (--timeout waits longer)",
                self.base
            ))
        } else {
            Error::Unreachable(format!(
                "cannot reach the HTTP API at {}: {e}: is the orchestrator running, is --api / SAGACTL_API right?",
                self.base
            ))
        }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        let request = self.call(Method::GET, path, Access::Read).query(query);
        self.send(request, Access::Read, self.timeout).await
    }

    async fn write<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        operator: &str,
        body: &impl serde::Serialize,
        wait: Duration,
    ) -> Result<T, Error> {
        let request = self
            .call(Method::POST, path, Access::Write)
            .header("X-Operator", operator)
            .json(body);
        self.send(request, Access::Write, wait).await
    }

    /// `GET /api/v1/sagas`.
    pub async fn list(&self, request: &ListRequest) -> Result<ListReply, Error> {
        let mut query = Vec::new();
        if let Some(status) = request.status {
            query.push(("status", status.as_str().to_string()));
        }
        let texts = [
            ("step", &request.step),
            ("error_code", &request.error_code),
            ("subdomain", &request.subdomain),
            ("cursor", &request.cursor),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if let Some(since) = request.since {
            query.push(("since", since.to_rfc3339()));
        }
        if let Some(kind) = request.kind {
            query.push(("kind", kind.as_str().to_string()));
        }
        if let Some(limit) = request.limit {
            query.push(("limit", limit.to_string()));
        }
        self.read("/api/v1/sagas", &query).await
    }

    /// `GET /api/v1/sagas/{id}`.
    pub async fn get(&self, saga_id: Uuid) -> Result<GetReply, Error> {
        self.read(&format!("/api/v1/sagas/{saga_id}"), &[]).await
    }

    /// `POST /api/v1/sagas/{id}/replay`.
    pub async fn replay(
        &self,
        saga_id: Uuid,
        operator: &str,
        reason: Option<&str>,
    ) -> Result<ReplayReply, Error> {
        let body = serde_json::json!({ "reason": reason });
        let wait = self.timeout.max(BULK_TIMEOUT / 8);
        self.write(
            &format!("/api/v1/sagas/{saga_id}/replay"),
            operator,
            &body,
            wait,
        )
        .await
    }

    /// `POST /api/v1/sagas/replay`.
    pub async fn replay_bulk(&self, request: &BulkReplayRequest) -> Result<BulkReplayReply, Error> {
        let operator = request.operator.clone().unwrap_or_default();
        let wait = self.timeout.max(BULK_TIMEOUT);
        self.write("/api/v1/sagas/replay", &operator, request, wait)
            .await
    }

    /// `GET /api/v1/dead-letters`, or `/api/v1/dead-letters/{seq}` for one.
    pub async fn dead_letters(
        &self,
        request: &DeadLettersRequest,
    ) -> Result<DeadLettersReply, Error> {
        if let Some(sequence) = request.sequence {
            let letter: DeadLetterEntry = self
                .read(&format!("/api/v1/dead-letters/{sequence}"), &[])
                .await?;
            return Ok(DeadLettersReply {
                letters: vec![letter],
                error: None,
            });
        }
        let query: Vec<(&str, String)> = request
            .limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        self.read("/api/v1/dead-letters", &query).await
    }

    /// `POST /api/v1/dead-letters/{seq}/requeue`.
    pub async fn requeue(&self, request: &RequeueRequest) -> Result<RequeueReply, Error> {
        let body = serde_json::json!({ "reason": request.reason });
        let operator = request.operator.clone().unwrap_or_default();
        let wait = self.timeout.max(BULK_TIMEOUT / 8);
        let path = format!("/api/v1/dead-letters/{}/requeue", request.sequence);
        self.write(&path, &operator, &body, wait).await
    }

    /// `GET /api/v1/pool`.
    pub async fn pool(&self) -> Result<PoolReply, Error> {
        self.read("/api/v1/pool", &[]).await
    }

    /// `PUT /api/v1/pool` (a size) or `DELETE /api/v1/pool` (clear).
    pub async fn pool_set(&self, request: &PoolSetRequest) -> Result<PoolReply, Error> {
        let operator = request.operator.clone().unwrap_or_default();
        let (method, body) = match request.size {
            Some(size) => (
                Method::PUT,
                serde_json::json!({ "size": size, "reason": request.reason }),
            ),
            None => (
                Method::DELETE,
                serde_json::json!({ "reason": request.reason }),
            ),
        };
        let call = self
            .call(method, "/api/v1/pool", Access::Write)
            .header("X-Operator", operator)
            .json(&body);
        self.send(call, Access::Write, self.timeout).await
    }

    /// `GET /api/check-subdomain`.
    pub async fn check(&self, subdomain: &str) -> Result<SubdomainCheckReply, Error> {
        self.read(
            "/api/check-subdomain",
            &[("subdomain", subdomain.to_string())],
        )
        .await
    }

    /// `POST /api/v1/provision` with a fresh `Idempotency-Key` (every run is a new
    /// signup); the password goes in the body, which the orchestrator seals on
    /// arrival.
    pub async fn signup(&self, signup: &TestSignup) -> Result<Uuid, Error> {
        let request = self
            .call(Method::POST, "/api/v1/provision", Access::Write)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(&signup.provision_body());
        let answer: Provisioned = self.send(request, Access::Write, self.timeout).await?;
        Ok(answer.saga_id)
    }

    /// `GET /api/v1/sagas/{id}/events`; `latest` as for [`super::Client::follow`].
    pub async fn follow(&self, saga_id: Uuid, latest: u64) -> Result<SseEvents, Error> {
        SseEvents::open(self.clone(), saga_id, latest, self.resume).await
    }
}
