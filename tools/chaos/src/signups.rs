//! Talking to the system as the web app, a dashboard and an operator would: signups
//! published on `tenant.signup.requested` (with `Nats-Msg-Id`), progress followed on
//! `tenant.progress.>`, statuses read with `saga.admin.get`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use contracts::admin::{GetReply, SagaRef};
use contracts::{ProgressEvent, SagaStatus, Subjects};
use futures::StreamExt;
use uuid::Uuid;

use crate::faults::{Fault, Signup};

/// What the progress events told so far: each saga's latest status and step, and when
/// the last event arrived. Read by the kill loop to aim at undos and to time failovers.
#[derive(Default)]
pub struct Tracker {
    latest: HashMap<Uuid, (u64, SagaStatus, Option<String>)>,
    /// When the newest transition seen was made (its progress event's `at`): an
    /// event's arrival would also count what the killed leader sent just before it
    /// died, or what the new leader republishes.
    pub last_event: Option<chrono::DateTime<chrono::Utc>>,
}

impl Tracker {
    fn saw(&mut self, event: &ProgressEvent) {
        self.last_event = self.last_event.max(Some(event.at));
        let entry = self
            .latest
            .entry(event.saga_id)
            .or_insert((0, event.status, None));
        if event.sequence >= entry.0 {
            *entry = (event.sequence, event.status, event.step.clone());
        }
    }

    /// The steps being undone right now: `(saga, step)` per compensating saga.
    pub fn compensating_steps(&self) -> Vec<(Uuid, String)> {
        self.latest
            .iter()
            .filter(|(_, (_, status, _))| *status == SagaStatus::Compensating)
            .filter_map(|(id, (_, _, step))| Some((*id, step.clone()?)))
            .collect()
    }

    /// Sagas seen and not ended.
    pub fn in_flight(&self) -> usize {
        self.latest
            .values()
            .filter(|(_, status, _)| !status.is_terminal())
            .count()
    }
}

/// Shared between the progress follower and the kill loop.
pub type SharedTracker = Arc<Mutex<Tracker>>;

/// Follows every saga's progress (core subscription: a gap while a node restarts only
/// blurs the aim of the kill loop; statuses are read with `saga.admin.get`).
pub async fn follow_progress(
    client: async_nats::Client,
    subjects: Subjects,
    tracker: SharedTracker,
) {
    let Ok(mut events) = client.subscribe(subjects.progress_all()).await else {
        return;
    };
    while let Some(message) = events.next().await {
        if let Ok(event) = serde_json::from_slice::<ProgressEvent>(&message.payload) {
            tracker.lock().expect("tracker").saw(&event);
        }
    }
}

/// Publishes the signups one every `every`, as the web app would; an injected Master
/// outage is scripted just before its signup goes out. Returns when all are stored
/// in `TENANT_SIGNUPS` (each publish retried, with the same message id, until a node
/// confirms it).
pub async fn publish_all(
    js: jetstream::Context,
    subjects: Subjects,
    signups: Vec<Signup>,
    master: master_standin::Shared,
    every: Duration,
) -> anyhow::Result<()> {
    for signup in signups {
        if signup.fault == Some(Fault::MasterUnavailable) {
            master
                .lock()
                .expect("master")
                .fail_next_posts
                .extend([503, 503]);
        }
        let payload = serde_json::to_vec(&signup.payload())?;
        let id = signup.id.to_string();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(step_runtime::bus::MSG_ID, id.as_str());
            let sent = async {
                js.publish_with_headers(
                    subjects.signup_requested(),
                    headers,
                    payload.clone().into(),
                )
                .await?
                .await
                .map_err(anyhow::Error::from)
            };
            match tokio::time::timeout(Duration::from_secs(5), sent).await {
                Ok(Ok(_)) => break,
                _ if Instant::now() > deadline => {
                    anyhow::bail!("signup {id} could not be published for 120 s")
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// `saga.admin.get` for `saga_id`: `None` when no orchestrator answered in time.
pub async fn get(
    client: &async_nats::Client,
    subjects: &Subjects,
    saga_id: Uuid,
) -> Option<GetReply> {
    let body = serde_json::to_vec(&SagaRef { saga_id }).ok()?;
    let reply = tokio::time::timeout(
        Duration::from_secs(3),
        client.request(subjects.admin_get(), body.into()),
    )
    .await
    .ok()?
    .ok()?;
    serde_json::from_slice(&reply.payload).ok()
}

/// The latest status read of each saga (`None`: no answer yet, or no saga yet).
pub type Statuses = HashMap<Uuid, Option<SagaStatus>>;

/// Reads the status of every saga not known to be terminal, a few requests at a time.
pub async fn refresh(client: &async_nats::Client, subjects: &Subjects, statuses: &mut Statuses) {
    let open: Vec<Uuid> = statuses
        .iter()
        .filter(|(_, s)| !s.is_some_and(SagaStatus::is_terminal))
        .map(|(id, _)| *id)
        .collect();
    let replies: Vec<(Uuid, Option<GetReply>)> = futures::stream::iter(open)
        .map(|id| async move { (id, get(client, subjects, id).await) })
        .buffer_unordered(16)
        .collect()
        .await;
    for (id, reply) in replies {
        if let Some(saga) = reply.and_then(|r| r.saga) {
            statuses.insert(id, Some(saga.status));
        }
    }
}
