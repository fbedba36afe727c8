//! Live progress as Server-Sent Events, read from JetStream's `TENANT_PROGRESS` with
//! ordered consumers (each connection its own, gone when it ends).
//!
//! - `GET /api/v1/sagas/{id}/events`: one saga's timeline from the start, or after
//!   `Last-Event-ID` (an SSE `id` is the event's `sequence`): no gap, no repeat (an
//!   event the orchestrator published twice is sent once; one whose publish failed,
//!   and that the outbox publishes later, is read from the store when the next one
//!   shows the gap, since a saga's sequences have no holes). The stream ends after the
//!   terminal event of the run current when the client came (an earlier run's end
//!   does not end it) unless `follow=true`, which keeps it open for replays (a replay
//!   starts a new run on the same saga, with the following sequences).
//! - `GET /api/v1/events`: every saga's progress from now on (or after `Last-Event-ID`,
//!   here the stream's own sequence), for a dashboard's table; never ends by itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use contracts::ProgressEvent;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Read;
use super::{AppState, Refusal};

/// Options of `GET /api/v1/sagas/{id}/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FollowParams {
    /// Keep the stream open after a terminal event (to see replays).
    #[serde(default)]
    pub follow: bool,
}

fn last_event_id(headers: &HeaderMap) -> Result<u64, Refusal> {
    match headers.get("last-event-id").map(|v| v.to_str()) {
        None => Ok(0),
        Some(Ok(text)) if text.trim().is_empty() => Ok(0),
        Some(Ok(text)) => text.trim().parse().map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Last-Event-ID must be a whole number",
            )
        }),
        Some(Err(_)) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Last-Event-ID must be a whole number",
        )),
    }
}

/// The messages of `filter` on `TENANT_PROGRESS`, through an ordered consumer.
async fn follow(
    state: &AppState,
    filter: String,
    deliver_policy: DeliverPolicy,
) -> Result<pull::Ordered, Refusal> {
    let unavailable = |e: String| {
        tracing::warn!(error = %e, "cannot follow the progress stream");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the progress stream cannot be read right now",
        )
    };
    let stream = state
        .js
        .get_stream(state.subjects.progress_stream())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    consumer
        .messages()
        .await
        .map_err(|e| unavailable(e.to_string()))
}

fn sse<S>(events: S) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    S: Stream<Item = Event> + Send + 'static,
{
    Sse::new(events.map(Ok)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[utoipa::path(get, path = "/api/v1/sagas/{id}/events", tag = "events",
    params(("id" = Uuid, Path, description = "The saga (= signup) id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence"),
        FollowParams),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "text/event-stream: `event: progress`, `id: <sequence>`, `data: <ProgressEvent>`", content_type = "text/event-stream", body = ProgressEvent),
        (status = 400, description = "A bad id or Last-Event-ID", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 503, description = "The progress stream cannot be read", body = super::ApiError)))]
pub(crate) async fn saga_events(
    State(state): State<Arc<AppState>>,
    _: Read,
    id: Result<Path<Uuid>, axum::extract::rejection::PathRejection>,
    params: Result<Query<FollowParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    let Path(saga_id) =
        id.map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let Query(params) =
        params.map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let after = last_event_id(&headers)?;
    // The run current when the client comes ends with the first terminal event at or
    // past the saga's latest sequence (an earlier run's end is not the end). Already
    // over, and the client has seen the end: nothing more will come.
    let stored = state.reads.get(saga_id).await;
    let latest = stored.timeline.last().map_or(0, |e| e.sequence);
    let over = stored.saga.as_ref().is_some_and(|s| s.status.is_terminal()) && latest <= after;
    let messages = if over && !params.follow {
        None
    } else {
        Some(
            follow(
                &state,
                state.subjects.progress(&saga_id),
                DeliverPolicy::All,
            )
            .await?,
        )
    };
    let shutdown = state.shutdown.clone();
    let ends_at = (!params.follow).then_some(latest);
    let live = messages.map(|messages| {
        Box::pin(messages.filter_map(|message| async move {
            match message {
                Ok(message) => serde_json::from_slice::<ProgressEvent>(&message.payload).ok(),
                Err(e) => {
                    tracing::warn!(error = %e, "progress stream interrupted");
                    None
                }
            }
        }))
    });
    let reads = state.reads.clone();
    let stored = move || {
        let reads = reads.clone();
        async move { reads.get(saga_id).await.timeline }
    };
    let events = saga_stream(live, stored, after, ends_at)
        .map(|event| {
            Event::default()
                .event("progress")
                .id(event.sequence.to_string())
                .json_data(&event)
                .unwrap_or_default()
        })
        .take_until(async move { shutdown.cancelled_owned().await });
    Ok(sse(events))
}

/// One saga's events after sequence `after`, in order, each once, from `live`; an
/// event whose sequence skips some is preceded by the skipped ones, read through
/// `stored` (the saga's stored timeline: every event is stored before it is
/// published). Ends after a terminal event at or past sequence `ends_at`, if given.
fn saga_stream<L, S, F>(
    live: Option<L>,
    stored: S,
    after: u64,
    ends_at: Option<u64>,
) -> impl Stream<Item = ProgressEvent> + Send
where
    L: Stream<Item = ProgressEvent> + Send + Unpin,
    S: Fn() -> F + Send,
    F: std::future::Future<Output = Vec<ProgressEvent>> + Send,
{
    let Some(live) = live else {
        return futures::stream::empty().left_stream();
    };
    let ready = std::collections::VecDeque::<ProgressEvent>::new();
    futures::stream::unfold(
        (live, stored, ready, after, false),
        move |(mut live, stored, mut ready, mut last, ended)| async move {
            loop {
                if let Some(event) = ready.pop_front() {
                    last = event.sequence;
                    let end = ended
                        || (event.status.is_terminal()
                            && ends_at.is_some_and(|from| event.sequence >= from));
                    if end {
                        ready.clear();
                    }
                    return Some((event, (live, stored, ready, last, end)));
                }
                if ended {
                    return None;
                }
                let event = live.next().await?;
                if event.sequence <= last {
                    continue;
                }
                if event.sequence > last + 1 {
                    let missing: Vec<ProgressEvent> = stored()
                        .await
                        .into_iter()
                        .filter(|e| e.sequence > last && e.sequence < event.sequence)
                        .collect();
                    if missing.len() as u64 != event.sequence - last - 1 {
                        tracing::warn!(
                            after = last,
                            next = event.sequence,
                            found = missing.len(),
                            "progress events missing from the stream and the store"
                        );
                    }
                    ready.extend(missing);
                }
                ready.push_back(event);
            }
        },
    )
    .right_stream()
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "Resume after this stream sequence")),
    security(("read_token" = []), ("provisioning_secret" = [])),
    responses(
        (status = 200, description = "text/event-stream of every saga's progress from now on: `event: progress`, `id: <stream sequence>`, `data: <ProgressEvent>`", content_type = "text/event-stream", body = ProgressEvent),
        (status = 400, description = "A bad Last-Event-ID", body = super::ApiError),
        (status = 401, description = "No or a wrong credential", body = super::ApiError),
        (status = 503, description = "The progress stream cannot be read", body = super::ApiError)))]
pub(crate) async fn all_events(
    State(state): State<Arc<AppState>>,
    _: Read,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    let after = last_event_id(&headers)?;
    let policy = match after {
        0 => DeliverPolicy::New,
        _ => DeliverPolicy::ByStartSequence {
            start_sequence: after.checked_add(1).ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Last-Event-ID is past any stream sequence",
                )
            })?,
        },
    };
    let messages = follow(&state, state.subjects.progress_all(), policy).await?;
    let shutdown = state.shutdown.clone();
    let events = messages
        .filter_map(|message| async move {
            let message = message.ok()?;
            let sequence = message.info().ok()?.stream_sequence;
            let event = serde_json::from_slice::<ProgressEvent>(&message.payload).ok()?;
            Event::default()
                .event("progress")
                .id(sequence.to_string())
                .json_data(&event)
                .ok()
        })
        .take_until(async move { shutdown.cancelled_owned().await });
    Ok(sse(events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::SagaStatus;

    fn event(sequence: u64, status: SagaStatus) -> ProgressEvent {
        ProgressEvent {
            saga_id: Uuid::nil(),
            sequence,
            subdomain: "acme".into(),
            site_name: "acme.localhost".into(),
            status,
            step: None,
            step_status: None,
            attempt: 0,
            percent: 0,
            message: format!("event {sequence}"),
            error: None,
            result: None,
            at: chrono::Utc::now(),
            operator_action: None,
        }
    }

    async fn sequences(live: Vec<u64>, stored: Vec<u64>, after: u64) -> Vec<u64> {
        let status = |s: u64| {
            if s == 6 {
                SagaStatus::Completed
            } else {
                SagaStatus::Running
            }
        };
        let live = futures::stream::iter(live.into_iter().map(move |s| event(s, status(s))));
        let stored = move || {
            let events = stored.iter().map(|s| event(*s, status(*s))).collect();
            async move { events }
        };
        saga_stream(Some(live), stored, after, Some(1))
            .map(|e| e.sequence)
            .collect()
            .await
    }

    #[tokio::test]
    async fn an_event_published_late_is_read_from_the_store_in_its_place() {
        // Event 3's publish failed; the outbox publishes it after 4 and 5.
        let all = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(
            sequences(vec![1, 2, 4, 5, 3, 6], all.clone(), 0).await,
            all,
            "no gap, no repeat, in order"
        );
        // Resumed after 1, with 2 and 3 late.
        assert_eq!(
            sequences(vec![4, 2, 3, 5, 6], all.clone(), 1).await,
            vec![2, 3, 4, 5, 6]
        );
        // Ends with the terminal event, whatever comes after.
        assert_eq!(
            sequences(vec![1, 6, 7], all, 0).await,
            vec![1, 2, 3, 4, 5, 6]
        );
    }
}
