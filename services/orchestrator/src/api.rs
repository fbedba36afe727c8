//! Request/reply endpoints: `tenant.subdomain.check` and
//! `saga.admin.{get,list,replay,dead_letters}`.
//! Each runs in a queue group, so several orchestrators can answer.

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

use crate::driver::{Core, Work};
use crate::saga::Saga;
use crate::store::SagaStore;

const QUEUE_GROUP: &str = "orchestrator";

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
    core: &Core<S>,
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

async fn admin_get<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> GetReply {
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

async fn admin_list<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> ListReply {
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

async fn admin_dead_letters<S: SagaStore>(core: &Core<S>, payload: &[u8]) -> DeadLettersReply {
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

/// Serves the request/reply endpoints until `stop`.
pub(crate) async fn serve<S: SagaStore>(
    core: Arc<Core<S>>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let client = core.bus.client.clone();
    let subjects = core.bus.subjects.clone();
    let subscribe = |subject: String| {
        let client = client.clone();
        async move {
            client
                .queue_subscribe(subject.clone(), QUEUE_GROUP.into())
                .await
                .map_err(|e| anyhow::anyhow!("subscribing to {subject}: {e}"))
        }
    };
    let mut check = subscribe(subjects.subdomain_check()).await?;
    let mut get = subscribe(subjects.admin_get()).await?;
    let mut list = subscribe(subjects.admin_list()).await?;
    let mut replay = subscribe(subjects.admin_replay()).await?;
    let mut dead_letters = subscribe(subjects.admin_dead_letters()).await?;
    loop {
        let (message, kind) = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            Some(m) = check.next() => (m, "check"),
            Some(m) = get.next() => (m, "get"),
            Some(m) = list.next() => (m, "list"),
            Some(m) = replay.next() => (m, "replay"),
            Some(m) = dead_letters.next() => (m, "dead_letters"),
            else => anyhow::bail!("request subscriptions ended"),
        };
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let core = core.clone();
        let client = client.clone();
        // Each request runs on its own task: a slow replay never holds up a check.
        tokio::spawn(async move {
            let payload = &message.payload;
            let body = match kind {
                "check" => serde_json::to_vec(&subdomain_check(&core, payload).await),
                "get" => serde_json::to_vec(&admin_get(&core, payload).await),
                "list" => serde_json::to_vec(&admin_list(&core, payload).await),
                "dead_letters" => serde_json::to_vec(&admin_dead_letters(&core, payload).await),
                _ => serde_json::to_vec(&admin_replay(&core, payload).await),
            };
            match body {
                Ok(body) => {
                    if let Err(e) = client.publish(reply_to, body.into()).await {
                        tracing::warn!(error = %e, "could not send a reply");
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not encode a reply"),
            }
        });
    }
}
