//! Request/reply endpoints: `tenant.subdomain.check` and
//! `saga.admin.{get,list,replay,dead_letters}`.
//! Each runs in a queue group. Every instance answers the reads from the shared store
//! (no cache is involved); only the leading instance subscribes to replays, which
//! change sagas.

use std::sync::Arc;

use contracts::admin::{
    DeadLettersReply, DeadLettersRequest, GetReply, ListReply, ListRequest, ReplayReply, SagaRef,
    SagaSummary,
};
use contracts::subdomain::{SubdomainCheckReply, SubdomainCheckRequest, UnavailableReason};
use contracts::ErrorInfo;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::bus::NatsBus;
use crate::driver::{Core, Work};
use crate::saga::{Saga, SagaDefinition};
use crate::store::SagaStore;

const QUEUE_GROUP: &str = "orchestrator";

/// What answering a read needs: every instance has it, leading or not.
pub(crate) struct Reader<S> {
    pub store: Arc<S>,
    pub bus: NatsBus,
    pub definition: SagaDefinition,
    pub parent_domain: String,
}

fn summary(saga: &Saga, definition: &crate::saga::SagaDefinition) -> SagaSummary {
    SagaSummary {
        saga_id: saga.id,
        subdomain: saga.tenant.subdomain.clone(),
        status: saga.status,
        step: saga
            .current_step(definition)
            .map(|s| s.name.clone())
            .or_else(|| saga.error.as_ref().and_then(|e| e.step.clone())),
        run: saga.run,
        error: saga.error.clone(),
        created_at: saga.created_at,
        updated_at: saga.updated_at,
    }
}

fn bad_request(message: String) -> ErrorInfo {
    ErrorInfo {
        code: "bad_request".into(),
        message,
        step: None,
        cause: None,
    }
}

fn unavailable(e: impl std::fmt::Display) -> ErrorInfo {
    ErrorInfo {
        code: "store_unavailable".into(),
        message: format!("the saga store cannot be read: {e}"),
        step: None,
        cause: None,
    }
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

async fn admin_get<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> GetReply {
    let request: SagaRef = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            return GetReply {
                saga: None,
                timeline: vec![],
                error: Some(bad_request(format!(
                    "expected {{\"saga_id\": \"<uuid>\"}}: {e}"
                ))),
            }
        }
    };
    match (
        core.store.get(request.saga_id).await,
        core.store.timeline(request.saga_id).await,
    ) {
        (Ok(Some(saga)), Ok(timeline)) => GetReply {
            saga: Some(summary(&saga, &core.definition)),
            timeline,
            error: None,
        },
        (Ok(None), _) => GetReply {
            saga: None,
            timeline: vec![],
            error: Some(ErrorInfo {
                code: "not_found".into(),
                message: format!("no saga {}", request.saga_id),
                step: None,
                cause: None,
            }),
        },
        (Err(e), _) | (_, Err(e)) => GetReply {
            saga: None,
            timeline: vec![],
            error: Some(unavailable(e)),
        },
    }
}

async fn admin_list<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> ListReply {
    let request: ListRequest = if payload.is_empty() {
        ListRequest::default()
    } else {
        match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                return ListReply {
                    sagas: vec![],
                    error: Some(bad_request(format!(
                        "expected {{\"status\"?, \"limit\"?}}: {e}"
                    ))),
                }
            }
        }
    };
    let limit = request.limit.unwrap_or(50).clamp(1, 500);
    match core.store.list(request.status, limit).await {
        Ok(sagas) => ListReply {
            sagas: sagas.iter().map(|s| summary(s, &core.definition)).collect(),
            error: None,
        },
        Err(e) => ListReply {
            sagas: vec![],
            error: Some(unavailable(e)),
        },
    }
}

async fn admin_replay<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> ReplayReply {
    let request: SagaRef = match serde_json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            return ReplayReply {
                saga_id: uuid::Uuid::nil(),
                accepted: false,
                status: None,
                message: "bad request".into(),
                error: Some(bad_request(format!(
                    "expected {{\"saga_id\": \"<uuid>\"}}: {e}"
                ))),
            }
        }
    };
    let (tx, rx) = oneshot::channel();
    core.router.send(request.saga_id, Work::Replay(tx)).await;
    match rx.await {
        Ok(Ok(status)) => ReplayReply {
            saga_id: request.saga_id,
            accepted: true,
            status: Some(status),
            message: format!(
                "replay started; follow it on tenant.progress.{}",
                request.saga_id
            ),
            error: None,
        },
        Ok(Err(reason)) => ReplayReply {
            saga_id: request.saga_id,
            accepted: false,
            status: core
                .store
                .get(request.saga_id)
                .await
                .ok()
                .flatten()
                .map(|s| s.status),
            message: reason.clone(),
            error: Some(ErrorInfo {
                code: "not_replayable".into(),
                message: reason,
                step: None,
                cause: None,
            }),
        },
        Err(_) => ReplayReply {
            saga_id: request.saga_id,
            accepted: false,
            status: None,
            message: "the orchestrator is shutting down".into(),
            error: Some(ErrorInfo {
                code: "unavailable".into(),
                message: "shutting down".into(),
                step: None,
                cause: None,
            }),
        },
    }
}

async fn admin_dead_letters<S: SagaStore>(core: &Reader<S>, payload: &[u8]) -> DeadLettersReply {
    let request: DeadLettersRequest = if payload.is_empty() {
        DeadLettersRequest::default()
    } else {
        match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                return DeadLettersReply {
                    letters: Vec::new(),
                    error: Some(bad_request(format!("unreadable request: {e}"))),
                }
            }
        }
    };
    let limit = request.limit.unwrap_or(50).clamp(1, 500);
    match core.bus.recent_dead_letters(u64::from(limit)).await {
        Ok(letters) => DeadLettersReply {
            letters,
            error: None,
        },
        Err(e) => DeadLettersReply {
            letters: Vec::new(),
            error: Some(ErrorInfo {
                code: "dead_letters_unavailable".into(),
                message: format!("the dead letters cannot be read: {e:#}"),
                step: None,
                cause: None,
            }),
        },
    }
}

/// Serves the read-only endpoints (subdomain check, get, list, dead letters) until
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
                    }
                }
            },
        ));
    }
    while served.join_next().await.is_some() {}
}

/// Serves `saga.admin.replay` while this instance leads (until `stop`).
pub(crate) async fn serve_replays<S: SagaStore>(core: Arc<Core<S>>, stop: CancellationToken) {
    let client = core.bus.client.clone();
    let subject = core.bus.subjects.admin_replay();
    answer_each(client, subject, stop, move |payload| {
        let core = core.clone();
        async move { encode(&admin_replay(&core, &payload).await) }
    })
    .await
}

#[derive(Clone, Copy)]
enum Read {
    Check,
    Get,
    List,
    DeadLetters,
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
