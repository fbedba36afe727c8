//! The two ways to the orchestrator, one set of operations: NATS request/reply on
//! `saga.admin.*` (`nats.rs`) or the HTTP API (`http.rs`, its event streams in
//! `sse.rs`). Both answer with the contract's types, so what is printed does not
//! depend on the way.

mod http;
mod nats;
mod sse;

use std::time::Duration;

use contracts::admin::{
    BulkReplayReply, BulkReplayRequest, DeadLettersReply, DeadLettersRequest, GetReply, ListReply,
    ListRequest, ReplayReply, RequeueReply, RequeueRequest,
};
use contracts::pool::{PoolReply, PoolSetRequest};
use contracts::subdomain::SubdomainCheckReply;
use contracts::ProgressEvent;
use uuid::Uuid;

use crate::cli::Cli;
use crate::error::Error;
use crate::signup::TestSignup;

/// Talks to the orchestrator.
pub enum Client {
    /// Over NATS.
    Nats(nats::NatsClient),
    /// Over the HTTP API.
    Http(http::HttpClient),
}

/// A saga's progress events as they come.
pub enum Follower {
    /// Over NATS: a subscription and direct gets.
    Nats(Box<step_runtime::bus::SagaProgress>),
    /// Over HTTP: the saga's Server-Sent Events.
    Http(Box<http::SseEvents>),
}

impl Client {
    /// The way the command line and the environment name: `--api` (HTTP), else NATS.
    pub async fn connect(cli: &Cli) -> Result<Self, Error> {
        let timeout = Duration::from_secs(cli.timeout.max(1));
        if let Some(url) = &cli.nats_url {
            crate::credentials::check_nats_url(url)?;
        }
        match &cli.api {
            Some(url) => Ok(Self::Http(http::HttpClient::new(
                url,
                crate::credentials::HttpCredentials::load(cli)?,
                timeout,
            )?)),
            None => Ok(Self::Nats(
                nats::NatsClient::connect(cli.nats_url.clone(), timeout).await?,
            )),
        }
    }

    /// `saga.admin.list` / `GET /api/v1/sagas`.
    pub async fn list(&self, request: &ListRequest) -> Result<ListReply, Error> {
        match self {
            Self::Nats(c) => c.list(request).await,
            Self::Http(c) => c.list(request).await,
        }
    }

    /// `saga.admin.get` / `GET /api/v1/sagas/{id}`.
    pub async fn get(&self, saga_id: Uuid) -> Result<GetReply, Error> {
        match self {
            Self::Nats(c) => c.get(saga_id).await,
            Self::Http(c) => c.get(saga_id).await,
        }
    }

    /// `saga.admin.replay` / `POST /api/v1/sagas/{id}/replay`.
    pub async fn replay(
        &self,
        saga_id: Uuid,
        operator: &str,
        reason: Option<&str>,
    ) -> Result<ReplayReply, Error> {
        match self {
            Self::Nats(c) => c.replay(saga_id, operator, reason).await,
            Self::Http(c) => c.replay(saga_id, operator, reason).await,
        }
    }

    /// `saga.admin.replay_bulk` / `POST /api/v1/sagas/replay`.
    pub async fn replay_bulk(&self, request: &BulkReplayRequest) -> Result<BulkReplayReply, Error> {
        match self {
            Self::Nats(c) => c.replay_bulk(request).await,
            Self::Http(c) => c.replay_bulk(request).await,
        }
    }

    /// `saga.admin.dead_letters` / `GET /api/v1/dead-letters[/{seq}]`.
    pub async fn dead_letters(
        &self,
        request: &DeadLettersRequest,
    ) -> Result<DeadLettersReply, Error> {
        match self {
            Self::Nats(c) => c.dead_letters(request).await,
            Self::Http(c) => c.dead_letters(request).await,
        }
    }

    /// `saga.admin.dead_letters.requeue` / `POST /api/v1/dead-letters/{seq}/requeue`.
    pub async fn requeue(&self, request: &RequeueRequest) -> Result<RequeueReply, Error> {
        match self {
            Self::Nats(c) => c.requeue(request).await,
            Self::Http(c) => c.requeue(request).await,
        }
    }

    /// `saga.admin.pool` / `GET /api/v1/pool`.
    pub async fn pool(&self) -> Result<PoolReply, Error> {
        match self {
            Self::Nats(c) => c.pool().await,
            Self::Http(c) => c.pool().await,
        }
    }

    /// `saga.admin.pool.set` / `PUT` or `DELETE /api/v1/pool`.
    pub async fn pool_set(&self, request: &PoolSetRequest) -> Result<PoolReply, Error> {
        match self {
            Self::Nats(c) => c.pool_set(request).await,
            Self::Http(c) => c.pool_set(request).await,
        }
    }

    /// `tenant.subdomain.check` / `GET /api/check-subdomain`.
    pub async fn check(&self, subdomain: &str) -> Result<SubdomainCheckReply, Error> {
        match self {
            Self::Nats(c) => c.check(subdomain).await,
            Self::Http(c) => c.check(subdomain).await,
        }
    }

    /// Sends a test signup; its saga's id.
    pub async fn signup(&self, signup: &TestSignup) -> Result<Uuid, Error> {
        match self {
            Self::Nats(c) => c.signup(signup).await,
            Self::Http(c) => c.signup(signup).await,
        }
    }

    /// Starts following a saga's progress; `latest` is the last sequence the saga
    /// had when asked (0 for a new one): an end before it is an earlier run's.
    pub async fn follow(&self, saga_id: Uuid, latest: u64) -> Result<Follower, Error> {
        match self {
            Self::Nats(c) => Ok(Follower::Nats(Box::new(c.follow(saga_id).await?))),
            Self::Http(c) => Ok(Follower::Http(Box::new(c.follow(saga_id, latest).await?))),
        }
    }

    /// A saga named by its id or by a subdomain (the subdomain's newest saga).
    pub async fn resolve(&self, saga: &str) -> Result<Uuid, Error> {
        if let Ok(id) = saga.trim().parse::<Uuid>() {
            return Ok(id);
        }
        let request = ListRequest {
            subdomain: Some(saga.trim().to_lowercase()),
            limit: Some(1),
            ..ListRequest::default()
        };
        let reply = self.list(&request).await?;
        crate::error::check(&reply.error)?;
        reply.sagas.first().map(|s| s.saga_id).ok_or_else(|| {
            Error::Refused(format!(
                "no saga has the subdomain {saga:?} (and it is no saga id): see sagactl list"
            ))
        })
    }
}

impl Follower {
    /// The events stored so far (over HTTP: none; the stream sends them).
    pub async fn stored(&mut self) -> Result<Vec<ProgressEvent>, Error> {
        match self {
            Self::Nats(p) => p.stored().await.map_err(nats::following),
            Self::Http(_) => Ok(Vec::new()),
        }
    }

    /// The next event; `None` once the saga's end was seen and the server ended the
    /// stream (over HTTP; over NATS it never ends: the caller stops). A stream that
    /// ends before the saga's end is resumed, and is an error when it keeps ending.
    pub async fn next(&mut self) -> Result<Option<ProgressEvent>, Error> {
        match self {
            Self::Nats(p) => p.next().await.map(Some).map_err(nats::following),
            Self::Http(s) => s.next().await,
        }
    }
}
