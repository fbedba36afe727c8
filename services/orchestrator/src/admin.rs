//! Operators' operations, answered the same over NATS (`api.rs`) and HTTP (`http/`):
//! a saga with its timeline, filtered and paged lists, replays (one saga, or many by
//! a filter) that record who asked and why.

use contracts::admin::{
    BulkReplayReply, BulkReplayRequest, GetReply, ListReply, ListRequest, ReplayReply,
    ReplayRequest, SagaKind, SagaSummary,
};
use contracts::{ErrorInfo, OperatorAction, SagaStatus};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::api::Reader;
use crate::driver::{Core, Work};
use crate::saga::{Saga, SagaDefinition};
use crate::store::{ListCursor, ListQuery, SagaStore};

/// How many sagas one list request reads at most while it looks for matches of the
/// filters the store cannot apply (step, error code); past that it returns what it
/// found with a cursor to go on from.
const MAX_SCAN: usize = 5000;

/// The longest operator name and reason kept (longer ones are cut).
const MAX_OPERATOR: usize = 100;
const MAX_REASON: usize = 500;

/// A saga as operators see it in a list.
pub(crate) fn summary(saga: &Saga, definition: &SagaDefinition) -> SagaSummary {
    SagaSummary {
        saga_id: saga.id,
        subdomain: saga.tenant.subdomain.clone(),
        kind: kind_of(saga),
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

/// Whether `saga` is a signup's or a standby pool's build.
pub(crate) fn kind_of(saga: &Saga) -> SagaKind {
    if saga.tenant.standby_build {
        SagaKind::StandbyBuild
    } else {
        SagaKind::Signup
    }
}

/// An error with a code and a message.
pub(crate) fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        message: message.into(),
        step: None,
        cause: None,
    }
}

fn unavailable(e: impl std::fmt::Display) -> ErrorInfo {
    error(
        "store_unavailable",
        format!("the saga store cannot be read: {e}"),
    )
}

/// Who and why, cleaned: control characters dropped, trimmed, cut to a sane length.
pub(crate) fn operator_action(
    action: &str,
    operator: Option<&str>,
    reason: Option<&str>,
    fallback: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> OperatorAction {
    let clean = |text: &str, max: usize| -> String {
        text.chars()
            .filter(|c| !c.is_control())
            .take(max)
            .collect::<String>()
            .trim()
            .to_string()
    };
    let operator = clean(operator.unwrap_or_default(), MAX_OPERATOR);
    OperatorAction {
        action: action.into(),
        operator: if operator.is_empty() {
            fallback.into()
        } else {
            operator
        },
        reason: clean(reason.unwrap_or_default(), MAX_REASON),
        at,
        dead_letter: None,
    }
}

/// `saga.admin.get` / `GET /api/v1/sagas/{id}`.
pub(crate) async fn get<S: SagaStore>(reader: &Reader<S>, saga_id: Uuid) -> GetReply {
    let empty = |error| GetReply {
        saga: None,
        timeline: vec![],
        steps: vec![],
        operator_actions: vec![],
        error: Some(error),
    };
    match (
        reader.store.get(saga_id).await,
        reader.store.timeline(saga_id).await,
    ) {
        (Ok(Some(saga)), Ok(timeline)) => GetReply {
            saga: Some(summary(&saga, &reader.definition)),
            steps: contracts::admin::step_timings(&timeline),
            operator_actions: timeline
                .iter()
                .filter_map(|e| e.operator_action.as_deref().cloned())
                .collect(),
            timeline,
            error: None,
        },
        (Ok(None), _) => empty(error("not_found", format!("no saga {saga_id}"))),
        (Err(e), _) | (_, Err(e)) => empty(unavailable(e)),
    }
}

/// The opaque form of a list position: `<created_at ms>.<saga id>`.
fn encode_cursor(cursor: ListCursor) -> String {
    format!("{}.{}", cursor.created_at_ms, cursor.saga_id)
}

fn decode_cursor(text: &str) -> Option<ListCursor> {
    let (ms, id) = text.split_once('.')?;
    Some(ListCursor {
        created_at_ms: ms.parse().ok()?,
        saga_id: id.parse().ok()?,
    })
}

/// The sagas `query` selects that `keep` accepts, up to `limit`, and the cursor to go
/// on from when there may be more.
async fn scan<S: SagaStore>(
    store: &S,
    mut query: ListQuery,
    limit: usize,
    filtered: bool,
    keep: impl Fn(&Saga) -> bool,
) -> Result<(Vec<Saga>, Option<ListCursor>), crate::store::Error> {
    // Without filters of its own, a page of the store is the page asked for.
    query.limit = if filtered { 200 } else { limit as u32 };
    let (mut found, mut scanned) = (Vec::new(), 0usize);
    loop {
        let page = query.limit as usize;
        let sagas = store.list_page(&query).await?;
        let exhausted = sagas.len() < page;
        for saga in sagas {
            scanned += 1;
            query.after = Some(ListCursor::of(&saga));
            if keep(&saga) {
                found.push(saga);
                if found.len() == limit {
                    return Ok((found, query.after));
                }
            }
        }
        if exhausted {
            return Ok((found, None));
        }
        if scanned >= MAX_SCAN {
            return Ok((found, query.after));
        }
    }
}

/// `saga.admin.list` / `GET /api/v1/sagas`.
pub(crate) async fn list<S: SagaStore>(reader: &Reader<S>, request: &ListRequest) -> ListReply {
    let refuse = |message: String| ListReply {
        sagas: vec![],
        next_cursor: None,
        error: Some(error("bad_request", message)),
    };
    let after = match request.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => match decode_cursor(text) {
            Some(cursor) => Some(cursor),
            None => return refuse(format!("{text:?} is not a cursor this API gave")),
        },
    };
    let limit = request.limit.unwrap_or(50).clamp(1, 500) as usize;
    let query = ListQuery {
        status: request.status,
        subdomain: request.subdomain.clone(),
        since: request.since,
        after,
        ..ListQuery::default()
    };
    let (step, code) = (request.step.as_deref(), request.error_code.as_deref());
    let kind = request.kind;
    let definition = &reader.definition;
    let keep = |saga: &Saga| {
        step.is_none_or(|s| summary(saga, definition).step.as_deref() == Some(s))
            && code.is_none_or(|c| saga.error.as_ref().is_some_and(|e| e.code == c))
            && kind.is_none_or(|k| kind_of(saga) == k)
    };
    let filtered = step.is_some() || code.is_some() || kind.is_some();
    match scan(&*reader.store, query, limit, filtered, keep).await {
        Ok((sagas, next)) => ListReply {
            sagas: sagas.iter().map(|s| summary(s, definition)).collect(),
            next_cursor: next.map(encode_cursor),
            error: None,
        },
        Err(e) => ListReply {
            sagas: vec![],
            next_cursor: None,
            error: Some(unavailable(e)),
        },
    }
}

/// Replays one saga on the leader, `action` saying who asked and why.
async fn replay_one<S: SagaStore>(
    core: &Core<S>,
    saga_id: Uuid,
    action: OperatorAction,
) -> ReplayReply {
    let (tx, rx) = oneshot::channel();
    core.router
        .send(saga_id, Work::Replay(Some(action), tx))
        .await;
    match rx.await {
        Ok(Ok(status)) => ReplayReply {
            saga_id,
            accepted: true,
            status: Some(status),
            message: format!(
                "replay started; follow it on {}",
                core.subjects.progress(&saga_id)
            ),
            error: None,
        },
        Ok(Err(reason)) => ReplayReply {
            saga_id,
            accepted: false,
            status: core
                .store
                .get(saga_id)
                .await
                .ok()
                .flatten()
                .map(|s| s.status),
            message: reason.clone(),
            error: Some(error("not_replayable", reason)),
        },
        Err(_) => ReplayReply {
            saga_id,
            accepted: false,
            status: None,
            message: "the orchestrator is shutting down".into(),
            error: Some(error("unavailable", "shutting down")),
        },
    }
}

/// `saga.admin.replay` (the leader only).
pub(crate) async fn replay<S: SagaStore>(core: &Core<S>, request: &ReplayRequest) -> ReplayReply {
    let action = operator_action(
        "replay",
        request.operator.as_deref(),
        request.reason.as_deref(),
        "nats",
        core.clock.now(),
    );
    tracing::info!(saga_id = %request.saga_id, operator = %action.operator, reason = %action.reason, "replay asked");
    replay_one(core, request.saga_id, action).await
}

/// `saga.admin.replay_bulk` (the leader only): lists the replayable sagas the filter
/// picks and, unless a dry run, replays each in turn.
pub(crate) async fn replay_bulk<S: SagaStore>(
    core: &Core<S>,
    definition: &SagaDefinition,
    request: &BulkReplayRequest,
) -> BulkReplayReply {
    let replayable = [SagaStatus::RolledBack, SagaStatus::CompensationFailed];
    if let Some(status) = request.status.filter(|s| !replayable.contains(s)) {
        return BulkReplayReply {
            dry_run: request.dry_run,
            error: Some(error(
                "bad_request",
                format!(
                    "only rolled_back or compensation_failed sagas can be replayed, not {}",
                    status.as_str()
                ),
            )),
            ..BulkReplayReply::default()
        };
    }
    let unfiltered = request.step.is_none()
        && request.error_code.is_none()
        && request.status.is_none()
        && request.since.is_none()
        && request.until.is_none();
    if unfiltered && !request.dry_run && !request.all {
        return BulkReplayReply {
            dry_run: false,
            error: Some(error(
                "bad_request",
                "a bulk replay with no filter would replay every failed saga: give a step, error code, status or time range, or say \"all\": true (a dry run lists what it would replay)",
            )),
            ..BulkReplayReply::default()
        };
    }
    let query = ListQuery {
        status: request.status,
        since: request.since,
        until: request.until,
        ..ListQuery::default()
    };
    let (step, code) = (request.step.as_deref(), request.error_code.as_deref());
    let keep = |saga: &Saga| {
        replayable.contains(&saga.status)
            && step.is_none_or(|s| summary(saga, definition).step.as_deref() == Some(s))
            && code.is_none_or(|c| saga.error.as_ref().is_some_and(|e| e.code == c))
    };
    let limit = request.limit.unwrap_or(100).clamp(1, 500) as usize;
    let matched = match scan(&*core.store, query, limit, true, keep).await {
        Ok((sagas, _)) => sagas,
        Err(e) => {
            return BulkReplayReply {
                dry_run: request.dry_run,
                error: Some(unavailable(e)),
                ..BulkReplayReply::default()
            }
        }
    };
    let summaries: Vec<SagaSummary> = matched.iter().map(|s| summary(s, definition)).collect();
    let action = operator_action(
        "bulk_replay",
        request.operator.as_deref(),
        request.reason.as_deref(),
        "nats",
        core.clock.now(),
    );
    tracing::info!(matched = summaries.len(), dry_run = request.dry_run, operator = %action.operator, reason = %action.reason, "bulk replay asked");
    let mut replays = Vec::new();
    if !request.dry_run {
        for saga in &matched {
            replays.push(replay_one(core, saga.id, action.clone()).await);
        }
    }
    BulkReplayReply {
        dry_run: request.dry_run,
        matched: summaries,
        replays,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let cursor = ListCursor {
            created_at_ms: 1_700_000_000_123,
            saga_id: Uuid::new_v4(),
        };
        assert_eq!(decode_cursor(&encode_cursor(cursor)), Some(cursor));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor("12.not-a-uuid"), None);
    }

    #[test]
    fn operator_names_are_cleaned() {
        let at = chrono::Utc::now();
        let action = operator_action("replay", Some(" ann\n\u{7}"), None, "x", at);
        assert_eq!(action.operator, "ann");
        assert_eq!(action.reason, "");
        let action = operator_action("replay", Some("  "), Some(&"y".repeat(900)), "x", at);
        assert_eq!(action.operator, "x");
        assert_eq!(action.reason.len(), MAX_REASON);
    }
}
