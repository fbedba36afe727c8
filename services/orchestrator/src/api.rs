//! Request/reply endpoints: `tenant.subdomain.check` and
//! `saga.admin.{get,list,replay,replay_bulk,dead_letters,dead_letters.requeue,pool,pool.set}`
//! (the operations themselves are in `admin.rs`, `dead_letters.rs` and
//! `pool_admin.rs`, shared with the HTTP API).
//! Each runs in a queue group. Every instance answers the reads from the shared store
//! (no cache is involved); only the leading instance subscribes to replays, requeues
//! and the pool's size, which change the store.

use std::sync::Arc;

use contracts::admin::{
    BulkReplayReply, BulkReplayRequest, DeadLettersReply, DeadLettersRequest, GetReply, ListReply,
    ListRequest, ReplayReply, ReplayRequest, RequeueReply, RequeueRequest, SagaRef,
};
use contracts::pool::{PoolReply, PoolRequest, PoolSetRequest};
use contracts::subdomain::{SubdomainCheckReply, SubdomainCheckRequest, UnavailableReason};
use contracts::ErrorInfo;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::bus::NatsBus;
use crate::driver::Core;
use crate::saga::SagaDefinition;
use crate::store::SagaStore;

const QUEUE_GROUP: &str = "orchestrator";

/// What answering a read needs: every instance has it, leading or not.
pub(crate) struct Reader<S> {
    pub store: Arc<S>,
    pub bus: NatsBus,
    pub definition: SagaDefinition,
    pub parent_domain: String,
    /// `STANDBY_POOL_SIZE` of this instance.
    pub pool_size: u32,
}

/// Answers `tenant.subdomain.check`.
pub(crate) async fn subdomain_check<S: SagaStore>(
    core: &Reader<S>,
    payload: &[u8],
) -> SubdomainCheckReply {
    let request: SubdomainCheckRequest = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            return SubdomainCheckReply {
                subdomain: String::new(),
                available: false,
                reason: Some(UnavailableReason::Invalid),
                message: format!("the request must be {{\"subdomain\": \"...\"}}: {e}"),
            }
        }
    };
    let subdomain = request.subdomain.trim().to_string();
    if let Err(rejection) = contracts::signup::check_subdomain(&subdomain) {
        let reason = if rejection.code == "reserved_subdomain" {
            UnavailableReason::Reserved
        } else {
            UnavailableReason::Invalid
        };
        return SubdomainCheckReply {
            subdomain,
            available: false,
            reason: Some(reason),
            message: rejection.message,
        };
    }
    match core.store.subdomain_holder(&subdomain).await {
        Ok(Some(_)) => SubdomainCheckReply {
            message: format!("\"{subdomain}\" is already taken"),
            subdomain,
            available: false,
            reason: Some(UnavailableReason::Taken),
        },
        Ok(None) => {
            let probe = contracts::SubdomainProbe {
                site_name: format!("{subdomain}.{}", core.parent_domain),
                subdomain: subdomain.clone(),
            };
            match crate::driver::held_elsewhere(&core.bus, &core.definition, &probe).await {
                Ok(None) => SubdomainCheckReply {
                    message: format!("\"{subdomain}\" is available"),
                    subdomain,
                    available: true,
                    reason: None,
                },
                Ok(Some(holder)) => SubdomainCheckReply {
                    message: format!("\"{subdomain}\" is already taken ({holder})"),
                    subdomain,
                    available: false,
                    reason: Some(UnavailableReason::Taken),
                },
                Err(e) => SubdomainCheckReply {
                    message: format!("availability cannot be checked right now: {e:#}"),
                    subdomain,
                    available: false,
                    reason: None,
                },
            }
        }
        Err(e) => SubdomainCheckReply {
            message: format!("availability cannot be checked right now: {e}"),
            subdomain,
            available: false,
            reason: None,
        },
    }
}

fn bad_request(message: String) -> ErrorInfo {
    crate::admin::error("bad_request", message)
}

/// Reads a request body; an empty one is the type's default.
fn parse<T: serde::de::DeserializeOwned + Default>(payload: &[u8]) -> Result<T, String> {
    if payload.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(|e| format!("unreadable request: {e}"))
}

async fn admin_get<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> GetReply {
    match serde_json::from_slice::<SagaRef>(payload) {
        Ok(request) => crate::admin::get(core, request.saga_id).await,
        Err(e) => GetReply {
            saga: None,
            timeline: vec![],
            steps: vec![],
            operator_actions: vec![],
            error: Some(bad_request(format!(
                "expected {{\"saga_id\": \"<uuid>\"}}: {e}"
            ))),
        },
    }
}

async fn admin_list<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> ListReply {
    match parse::<ListRequest>(payload) {
        Ok(request) => crate::admin::list(core, &request).await,
        Err(message) => ListReply {
            sagas: vec![],
            next_cursor: None,
            error: Some(bad_request(message)),
        },
    }
}

async fn admin_replay<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> ReplayReply {
    match serde_json::from_slice::<ReplayRequest>(payload) {
        Ok(request) => crate::admin::replay(core, &request).await,
        Err(e) => ReplayReply {
            saga_id: uuid::Uuid::nil(),
            accepted: false,
            status: None,
            message: "bad request".into(),
            error: Some(bad_request(format!(
                "expected {{\"saga_id\": \"<uuid>\", \"operator\"?, \"reason\"?}}: {e}"
            ))),
        },
    }
}

async fn admin_replay_bulk<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> BulkReplayReply {
    match parse::<BulkReplayRequest>(payload) {
        Ok(request) => crate::admin::replay_bulk(core, &core.definition, &request).await,
        Err(message) => BulkReplayReply {
            error: Some(bad_request(message)),
            ..BulkReplayReply::default()
        },
    }
}

async fn admin_dead_letters<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> DeadLettersReply {
    match parse::<DeadLettersRequest>(payload) {
        Ok(request) => crate::dead_letters::list(core, &request).await,
        Err(message) => DeadLettersReply {
            letters: Vec::new(),
            error: Some(bad_request(message)),
        },
    }
}

async fn admin_pool<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> PoolReply {
    match parse::<PoolRequest>(payload) {
        Ok(PoolRequest {}) => {
            crate::pool_admin::read(&*core.store, core.pool_size, chrono::Utc::now()).await
        }
        Err(message) => PoolReply {
            error: Some(bad_request(message)),
            ..PoolReply::default()
        },
    }
}

async fn admin_pool_set<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> PoolReply {
    match serde_json::from_slice::<PoolSetRequest>(payload) {
        Ok(request) => crate::pool_admin::set(core, &request).await,
        Err(e) => PoolReply {
            error: Some(bad_request(format!(
                "expected {{\"size\": <0 to 1000>}} or {{\"clear\": true}}, with \"operator\"? and \"reason\"?: {e}"
            ))),
            ..PoolReply::default()
        },
    }
}

async fn admin_requeue<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> RequeueReply {
    match serde_json::from_slice::<RequeueRequest>(payload) {
        Ok(request) => crate::dead_letters::requeue(core, &request).await,
        Err(e) => {
            let message =
                format!("expected {{\"sequence\": <n>, \"operator\"?, \"reason\"?}}: {e}");
            RequeueReply {
                sequence: 0,
                saga_id: None,
                accepted: false,
                outcome: None,
                status: None,
                message: message.clone(),
                error: Some(bad_request(message)),
            }
        }
    }
}

/// Serves the read-only endpoints (subdomain check, get, list, dead letters, pool) until
/// `stop`.
pub(crate) async fn serve_reads<S: SagaStore>(reader: Arc<Reader<S>>, stop: CancellationToken) {
    let subjects = &reader.bus.subjects;
    let client = reader.bus.client.clone();
    let mut served = tokio::task::JoinSet::new();
    for (subject, kind) in [
        (subjects.subdomain_check(), Read::Check),
        (subjects.admin_get(), Read::Get),
        (subjects.admin_list(), Read::List),
        (subjects.admin_dead_letters(), Read::DeadLetters),
        (subjects.admin_pool(), Read::Pool),
    ] {
        let reader = reader.clone();
        served.spawn(answer_each(
            client.clone(),
            subject,
            stop.clone(),
            move |payload| {
                let reader = reader.clone();
                async move {
                    let reader = &*reader;
                    match kind {
                        Read::Check => encode(&subdomain_check(reader, &payload).await),
                        Read::Get => encode(&admin_get(reader, &payload).await),
                        Read::List => encode(&admin_list(reader, &payload).await),
                        Read::DeadLetters => encode(&admin_dead_letters(reader, &payload).await),
                        Read::Pool => encode(&admin_pool(reader, &payload).await),
                    }
                }
            },
        ));
    }
    while served.join_next().await.is_some() {}
}

/// Serves `saga.admin.replay`, `saga.admin.replay_bulk`,
/// `saga.admin.dead_letters.requeue` and `saga.admin.pool.set` while this instance
/// leads (until `stop`).
pub(crate) async fn serve_replays<S: SagaStore>(core: Arc<Core<S>>, stop: CancellationToken) {
    let client = core.bus.client.clone();
    let single = answer_each(
        client.clone(),
        core.bus.subjects.admin_replay(),
        stop.clone(),
        {
            let core = core.clone();
            move |payload| {
                let core = core.clone();
                async move { encode(&admin_replay(&core, &payload).await) }
            }
        },
    );
    let bulk = answer_each(
        client.clone(),
        core.bus.subjects.admin_replay_bulk(),
        stop.clone(),
        {
            let core = core.clone();
            move |payload| {
                let core = core.clone();
                async move { encode(&admin_replay_bulk(&core, &payload).await) }
            }
        },
    );
    let requeue = answer_each(
        client.clone(),
        core.bus.subjects.admin_requeue(),
        stop.clone(),
        {
            let core = core.clone();
            move |payload| {
                let core = core.clone();
                async move { encode(&admin_requeue(&core, &payload).await) }
            }
        },
    );
    let pool = answer_each(
        client,
        core.bus.subjects.admin_pool_set(),
        stop,
        move |payload| {
            let core = core.clone();
            async move { encode(&admin_pool_set(&core, &payload).await) }
        },
    );
    tokio::join!(single, bulk, requeue, pool);
}

#[derive(Clone, Copy)]
enum Read {
    Check,
    Get,
    List,
    DeadLetters,
    Pool,
}

fn encode<T: serde::Serialize>(reply: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(reply)
        .map_err(|e| tracing::error!(error = %e, "could not encode a reply"))
        .ok()
}

/// Answers every request on `subject` (queue group `orchestrator`) with `handle`'s
/// reply, each on its own task, so a slow replay never holds up a check. A
/// subscription that fails or ends (the connection's trouble) is made again a second
/// later: one lost subject must not leave the instance answering nothing while its
/// health says ready.
async fn answer_each<F, Fut>(
    client: async_nats::Client,
    subject: String,
    stop: CancellationToken,
    handle: F,
) where
    F: Fn(bytes::Bytes) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Vec<u8>>> + Send + 'static,
{
    let handle = Arc::new(handle);
    loop {
        match client
            .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
            .await
        {
            Ok(mut requests) => loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    next = requests.next() => match next {
                        Some(message) => message,
                        None => {
                            tracing::warn!(%subject, "request subscription ended; subscribing again");
                            break;
                        }
                    },
                };
                let Some(reply_to) = message.reply.clone() else {
                    continue;
                };
                // A JetStream delivery, not a request: a push consumer made to deliver a
                // stream's messages here (whoever may create consumers can point one at
                // any subject, nats-server issue 8274). Never acted on, never answered.
                if reply_to.as_str().starts_with("$JS.") {
                    tracing::warn!(%subject, "a JetStream delivery arrived as a request: ignored (a consumer delivers here)");
                    continue;
                }
                let (client, handle) = (client.clone(), handle.clone());
                tokio::spawn(async move {
                    if let Some(body) = handle(message.payload).await {
                        if let Err(e) = client.publish(reply_to, body.into()).await {
                            tracing::warn!(error = %e, "could not send a reply");
                        }
                    }
                });
            },
            Err(e) => {
                tracing::warn!(error = %e, %subject, "cannot subscribe to requests; trying again")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
