//! The orchestrator over NATS, as the `operator` user (or whoever `NATS_USER` names):
//! request/reply on `saga.admin.*` and `tenant.subdomain.check`, a saga's progress
//! through a subscription and direct gets (no consumer: the bus gives operators
//! none), and signups published as the web app publishes them.

use std::sync::Mutex;
use std::time::Duration;

use contracts::admin::{
    BulkReplayReply, BulkReplayRequest, DeadLettersReply, DeadLettersRequest, GetReply, ListReply,
    ListRequest, ReplayReply, ReplayRequest, RequeueReply, RequeueRequest, SagaRef,
};
use contracts::pool::{PoolReply, PoolRequest, PoolSetRequest};
use contracts::subdomain::{SubdomainCheckReply, SubdomainCheckRequest};
use contracts::Subjects;
use step_runtime::bus::{NatsAuth, NatsConfig, SagaProgress};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::error::Error;
use crate::signup::TestSignup;

/// How long a bulk replay may take (each saga is replayed in turn).
const BULK_TIMEOUT: Duration = Duration::from_secs(120);

/// A NATS connection and what to call things on it.
pub struct NatsClient {
    client: async_nats::Client,
    subjects: Subjects,
    timeout: Duration,
    /// What the server refused (a permissions violation), in its words.
    refused: Mutex<mpsc::UnboundedReceiver<String>>,
    /// The user we are, for messages.
    user: String,
    /// The server(s), passwords masked, for messages.
    url: String,
}

/// The environment, with `NATS_URL` replaced by `--nats-url` when given.
fn settings(url: Option<String>) -> Result<NatsConfig, Error> {
    let lookup = |name: &str| match (name, &url) {
        ("NATS_URL", Some(url)) => Some(url.clone()),
        _ => std::env::var(name).ok(),
    };
    NatsConfig::from_lookup(lookup).map_err(|e| Error::Usage(format!("{e:#}")))
}

/// A follower's failure, said for an operator.
pub fn following(e: anyhow::Error) -> Error {
    Error::Unreachable(format!(
        "cannot follow the saga's progress: {e:#} (the user needs to read stream TENANT_PROGRESS: operators and the web app may)"
    ))
}

impl NatsClient {
    /// Connects as the environment says (one attempt per server: nobody waits a
    /// minute for a typo).
    pub async fn connect(url: Option<String>, timeout: Duration) -> Result<Self, Error> {
        let config = settings(url)?;
        let shown = step_runtime::bus::redacted_urls(&config.url);
        let user = match &config.auth {
            NatsAuth::UserPassword { user, .. } => user.clone(),
            NatsAuth::Anonymous => "(anonymous)".into(),
            NatsAuth::Creds(_) => "(NATS_CREDS)".into(),
            NatsAuth::NKey(_) => "(NATS_NKEY)".into(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let client = step_runtime::bus::connect_once(&config, "sagactl", tx)
            .await
            .map_err(|e| {
                Error::Unreachable(format!(
                    "{e:#}: is NATS running there, is NATS_URL (or --nats-url) right, are NATS_USER/NATS_PASSWORD (or NATS_CREDS, NATS_NKEY) right? Or use the HTTP API: --api URL"
                ))
            })?;
        let namespace = std::env::var("NATS_NAMESPACE").unwrap_or_default();
        Ok(Self {
            client,
            subjects: Subjects::new(&namespace),
            timeout,
            refused: Mutex::new(rx),
            user,
            url: shown,
        })
    }

    /// What the server refused since the last look.
    fn refusals(&self) -> Vec<String> {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        std::iter::from_fn(|| refused.try_recv().ok()).collect()
    }

    /// The refusal of `subject` by the server's permissions, if it said so.
    fn refusal_of(&self, subject: &str) -> Option<String> {
        self.refusals()
            .into_iter()
            .find(|r| r.to_lowercase().contains("permissions violation") && r.contains(subject))
    }

    async fn request<T: serde::de::DeserializeOwned>(
        &self,
        subject: String,
        body: &impl serde::Serialize,
        wait: Duration,
    ) -> Result<T, Error> {
        let payload = serde_json::to_vec(body).map_err(|e| Error::Usage(e.to_string()))?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(wait));
        let answer = self.client.send_request(subject.clone(), request).await;
        let message = match answer {
            Ok(message) => message,
            Err(e) => return Err(self.explain(&subject, &e, wait)),
        };
        serde_json::from_slice(&message.payload).map_err(|e| {
            Error::Unreachable(format!(
                "the answer on {subject} is unreadable ({e}): is the orchestrator of this release?"
            ))
        })
    }

    fn explain(&self, subject: &str, e: &async_nats::RequestError, wait: Duration) -> Error {
        use async_nats::RequestErrorKind;
        if let Some(refusal) = self.refusal_of(subject) {
            return Error::Unreachable(format!(
                "NATS refused: {refusal}: user {} may not ask {subject}; operators connect as `operator` (NATS_USER=operator, NATS_PASSWORD from the deployment's .env)",
                self.user
            ));
        }
        let leader_only = subject.ends_with("replay")
            || subject.ends_with("replay_bulk")
            || subject.ends_with("requeue");
        match e.kind() {
            RequestErrorKind::NoResponders if leader_only => Error::Unreachable(format!(
                "no orchestrator leads right now (nobody answers {subject} on {}): is one running and healthy (/readyz)? A standby takes over within seconds: try again",
                self.url
            )),
            RequestErrorKind::NoResponders => Error::Unreachable(format!(
                "no orchestrator answers {subject} on {}: is it running? is NATS_URL right (and NATS_NAMESPACE, if one is used)?",
                self.url
            )),
            RequestErrorKind::TimedOut => Error::Unreachable(format!(
                "no orchestrator answered on {subject} within {}s: is it running? is NATS_URL ({}) right? (--timeout waits longer)",
                wait.as_secs(),
                self.url
            )),
            _ => Error::Unreachable(format!("asking {subject} on {} failed: {e}", self.url)),
        }
    }

    /// `saga.admin.list`.
    pub async fn list(&self, request: &ListRequest) -> Result<ListReply, Error> {
        self.request(self.subjects.admin_list(), request, self.timeout)
            .await
    }

    /// `saga.admin.get`.
    pub async fn get(&self, saga_id: Uuid) -> Result<GetReply, Error> {
        self.request(
            self.subjects.admin_get(),
            &SagaRef { saga_id },
            self.timeout,
        )
        .await
    }

    /// `saga.admin.replay` (the leader answers).
    pub async fn replay(
        &self,
        saga_id: Uuid,
        operator: &str,
        reason: Option<&str>,
    ) -> Result<ReplayReply, Error> {
        let request = ReplayRequest {
            saga_id,
            operator: Some(operator.to_string()),
            reason: reason.map(str::to_string),
        };
        self.request(
            self.subjects.admin_replay(),
            &request,
            self.timeout.max(BULK_TIMEOUT / 8),
        )
        .await
    }

    /// `saga.admin.replay_bulk` (the leader answers; each saga in turn).
    pub async fn replay_bulk(&self, request: &BulkReplayRequest) -> Result<BulkReplayReply, Error> {
        self.request(
            self.subjects.admin_replay_bulk(),
            request,
            self.timeout.max(BULK_TIMEOUT),
        )
        .await
    }

    /// `saga.admin.dead_letters`.
    pub async fn dead_letters(
        &self,
        request: &DeadLettersRequest,
    ) -> Result<DeadLettersReply, Error> {
        self.request(self.subjects.admin_dead_letters(), request, self.timeout)
            .await
    }

    /// `saga.admin.pool`.
    pub async fn pool(&self) -> Result<PoolReply, Error> {
        self.request(self.subjects.admin_pool(), &PoolRequest {}, self.timeout)
            .await
    }

    /// `saga.admin.pool.set` (the leader answers).
    pub async fn pool_set(&self, request: &PoolSetRequest) -> Result<PoolReply, Error> {
        self.request(self.subjects.admin_pool_set(), request, self.timeout)
            .await
    }

    /// `saga.admin.dead_letters.requeue` (the leader answers).
    pub async fn requeue(&self, request: &RequeueRequest) -> Result<RequeueReply, Error> {
        self.request(
            self.subjects.admin_requeue(),
            request,
            self.timeout.max(BULK_TIMEOUT / 8),
        )
        .await
    }

    /// `tenant.subdomain.check`.
    pub async fn check(&self, subdomain: &str) -> Result<SubdomainCheckReply, Error> {
        let request = SubdomainCheckRequest {
            subdomain: subdomain.to_string(),
        };
        self.request(self.subjects.subdomain_check(), &request, self.timeout)
            .await
    }

    /// Publishes the signup on `tenant.signup.requested` (JetStream, `Nats-Msg-Id`:
    /// its id) with the password sealed to `SAGA_PUBLIC_KEY`, as the web app does.
    pub async fn signup(&self, signup: &TestSignup) -> Result<Uuid, Error> {
        let key = std::env::var("SAGA_PUBLIC_KEY").map_err(|_| {
            Error::Usage(
                "a signup over NATS seals its password to the services' public key: set SAGA_PUBLIC_KEY (`saga-keys public` prints it from SAGA_SECRETS_KEYS; the orchestrator logs it at start as saga_public_key), or use the HTTP API (--api URL with PROVISIONING_API_SECRET)".into(),
            )
        })?;
        let recipient = secrets::Recipient::parse(key.trim())
            .map_err(|e| Error::Usage(format!("SAGA_PUBLIC_KEY: {e}")))?;
        let message = signup.sealed_for(&recipient);
        let payload = serde_json::to_vec(&message).map_err(|e| Error::Usage(e.to_string()))?;
        let subject = self.subjects.signup_requested();
        let mut js = async_nats::jetstream::new(self.client.clone());
        js.set_timeout(self.timeout);
        let refused = |detail: String| {
            if let Some(refusal) = self.refusal_of(&subject) {
                Error::Unreachable(format!(
                    "NATS refused: {refusal}: user {} may not publish signups; only the web app's user may (NATS_USER=web-app NATS_PASSWORD=…), or send it over HTTP (--api URL with PROVISIONING_API_SECRET)",
                    self.user
                ))
            } else {
                Error::Unreachable(format!(
                    "the signup was not stored ({detail}): is the orchestrator's stream TENANT_SIGNUPS there, and may user {} publish signups? Only the web app's user may (NATS_USER=web-app); or use --api URL",
                    self.user
                ))
            }
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            step_runtime::bus::MSG_ID,
            message.signup_id.to_string().as_str(),
        );
        let ack = js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| refused(e.to_string()))?;
        ack.await.map_err(|e| refused(e.to_string()))?;
        Ok(message.signup_id)
    }

    /// The saga's progress: a subscription and direct gets, no consumer.
    pub async fn follow(&self, saga_id: Uuid) -> Result<SagaProgress, Error> {
        SagaProgress::start(&self.client, &self.subjects, saga_id)
            .await
            .map_err(following)
    }
}
