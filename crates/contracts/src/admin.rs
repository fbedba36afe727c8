//! `saga.admin.get`, `saga.admin.list`, `saga.admin.replay`, `saga.admin.replay_bulk`,
//! `saga.admin.dead_letters`, `saga.admin.dead_letters.requeue`: operators'
//! request/reply API. The orchestrator's HTTP API
//! (`/api/v1/sagas...`) answers with the same types.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorInfo, ProgressEvent, SagaStatus, StepStatus};

/// Request on `saga.admin.get` (and the oldest form of `saga.admin.replay`). Nothing
/// but `saga_id`: any other message that happens to hold one (a progress event) is not
/// a request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaRef {
    /// The saga (= signup) id.
    pub saga_id: Uuid,
}

/// Request on `saga.admin.replay`: a [`SagaRef`] that may say who asks and why. No
/// other field: a message that merely holds a `saga_id` is not a replay request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The saga (= signup) id.
    pub saga_id: Uuid,
    /// Who asks (kept in the timeline); `nats` when absent. At most 100 characters.
    #[serde(default)]
    pub operator: Option<String>,
    /// Why (kept in the timeline). At most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a saga provisions: a tenant's signup, or a standby site the pool builds ahead
/// of time (README, "Standby pool"), which operators reading signup figures leave out.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SagaKind {
    /// A tenant's signup.
    #[default]
    Signup,
    /// A standby site's build (and, when the pool discards it, its undo).
    StandbyBuild,
}

impl SagaKind {
    /// The word used in metrics labels and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::StandbyBuild => "standby_build",
        }
    }
}

/// Request on `saga.admin.list`. Every filter is optional; they combine with "and".
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
pub struct ListRequest {
    /// Only sagas with this status.
    #[serde(default)]
    pub status: Option<SagaStatus>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only sagas at, or stopped at, this step (`database`, `site`, ...).
    #[serde(default)]
    pub step: Option<String>,
    /// Only sagas whose error has this code (such as `database_conflict`).
    #[serde(default)]
    pub error_code: Option<String>,
    /// Only the saga(s) of this subdomain.
    #[serde(default)]
    pub subdomain: Option<String>,
    /// Only sagas created at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only signups (`signup`) or only the standby pool's builds (`standby_build`);
    /// both when absent.
    #[serde(default)]
    pub kind: Option<SagaKind>,
    /// The `next_cursor` of the previous page: the next page starts after it.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A saga as operators see it in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct SagaSummary {
    /// The saga (= signup) id.
    pub saga_id: Uuid,
    /// The tenant's subdomain (`sb-<8 hex>` for a standby build).
    pub subdomain: String,
    /// A signup, or a standby pool's build.
    #[serde(default)]
    pub kind: SagaKind,
    /// The saga's status.
    pub status: SagaStatus,
    /// The step it is at or stopped at.
    pub step: Option<String>,
    /// 1 for the first run, +1 for each replay (from the start, or of an undo that
    /// ended `compensation_failed`).
    pub run: u32,
    /// What failed, when something did.
    pub error: Option<ErrorInfo>,
    /// When the signup was accepted.
    pub created_at: DateTime<Utc>,
    /// When the saga last changed.
    pub updated_at: DateTime<Utc>,
}

/// Reply on `saga.admin.get`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct GetReply {
    /// The saga, when it exists.
    pub saga: Option<SagaSummary>,
    /// Its whole timeline, oldest first.
    #[serde(default)]
    pub timeline: Vec<ProgressEvent>,
    /// Each step's time, attempts and undos, computed from the timeline.
    #[serde(default)]
    pub steps: Vec<StepTiming>,
    /// What operators did to the saga (replays), oldest first, from the timeline.
    #[serde(default)]
    pub operator_actions: Vec<crate::OperatorAction>,
    /// Why the request failed.
    pub error: Option<ErrorInfo>,
}

/// Reply on `saga.admin.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct ListReply {
    /// Newest first.
    pub sagas: Vec<SagaSummary>,
    /// Set when there may be more: pass it as `cursor` for the next page. Opaque.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// Why the request failed.
    pub error: Option<ErrorInfo>,
}

/// Reply on `saga.admin.replay`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct ReplayReply {
    /// The saga asked for.
    pub saga_id: Uuid,
    /// Whether the replay started.
    pub accepted: bool,
    /// The saga's status after the request.
    pub status: Option<SagaStatus>,
    /// What happens now, or why nothing does.
    pub message: String,
    /// Why the request was refused.
    pub error: Option<ErrorInfo>,
}

/// Request on `saga.admin.dead_letters`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct DeadLettersRequest {
    /// At most this many, newest first (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only the letter at this stream sequence: `letters` then holds it alone, or the
    /// reply's error is `not_found`.
    #[serde(default)]
    pub sequence: Option<u64>,
}

/// One dead letter as stored on stream `TENANT_DEAD_LETTERS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct DeadLetterEntry {
    /// Its sequence in the stream.
    pub sequence: u64,
    /// `tenant.signup.dead_letter` (a signup) or `saga.dead_letter.<source>` (a step
    /// command, or a report the orchestrator gave up on).
    pub subject: String,
    /// The letter: a `DeadLetter` or a `StepDeadLetter` (schemas
    /// `tenant.signup.dead_letter.json`, `internal/saga.dead_letter.json`). Never holds
    /// a secret.
    pub letter: serde_json::Value,
}

/// Reply on `saga.admin.dead_letters`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct DeadLettersReply {
    /// Newest first.
    pub letters: Vec<DeadLetterEntry>,
    /// Set when the stream could not be read.
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}

/// Request on `saga.admin.dead_letters.requeue`: re-drive the saga a step's dead
/// letter names, once its cause is fixed. No other field.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequeueRequest {
    /// The letter's sequence in stream `TENANT_DEAD_LETTERS`.
    pub sequence: u64,
    /// Who asks (kept in the timeline); `nats` when absent. At most 100 characters.
    #[serde(default)]
    pub operator: Option<String>,
    /// Why: what was fixed (kept in the timeline). At most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What a requeue did to the letter's saga.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RequeueOutcome {
    /// The saga had ended replayable (`rolled_back`, `compensation_failed`): it was
    /// replayed, as `saga.admin.replay` does.
    Replayed,
    /// The saga still waited on the letter's step: that step's pending command was
    /// sent again, with its same command id (a step that had finished it answers
    /// from its memory instead of running it twice).
    Resent,
    /// This letter was requeued before (its operator action is in the timeline):
    /// nothing was done again.
    AlreadyRequeued,
}

/// Reply on `saga.admin.dead_letters.requeue`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct RequeueReply {
    /// The letter asked for.
    pub sequence: u64,
    /// The saga it names, when it names one.
    #[serde(default)]
    pub saga_id: Option<Uuid>,
    /// Whether the saga was re-driven now.
    pub accepted: bool,
    /// What was done (absent when refused).
    #[serde(default)]
    pub outcome: Option<RequeueOutcome>,
    /// The saga's status after the request.
    #[serde(default)]
    pub status: Option<SagaStatus>,
    /// What happens now, or why nothing does, and what to do instead.
    pub message: String,
    /// Why the request was refused: `not_found` (no such letter), `not_requeueable`
    /// (the saga is in no state to re-drive), `signup_not_requeueable` (a signup's
    /// letter: the user signs up again).
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}

/// Request on `saga.admin.replay_bulk`: replays every replayable saga (`rolled_back`
/// or `compensation_failed`) that matches all the filters given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct BulkReplayRequest {
    /// Only sagas that stopped at this step.
    #[serde(default)]
    pub step: Option<String>,
    /// Only sagas whose error has this code.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Only sagas with this status (`rolled_back` or `compensation_failed`).
    #[serde(default)]
    pub status: Option<SagaStatus>,
    /// Only sagas created at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only sagas created before this time.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// At most this many sagas (default 100, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only list what would be replayed.
    #[serde(default)]
    pub dry_run: bool,
    /// A real run with no filter at all replays every replayable saga (up to
    /// `limit`) only when this says so; without it such a request is refused.
    #[serde(default)]
    pub all: bool,
    /// Who asks (kept in each replayed saga's timeline); `nats` when absent.
    #[serde(default)]
    pub operator: Option<String>,
    /// Why (kept in each replayed saga's timeline).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Reply on `saga.admin.replay_bulk`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct BulkReplayReply {
    /// Whether this was a dry run (nothing replayed).
    pub dry_run: bool,
    /// The sagas that matched, newest first (as they were before any replay).
    pub matched: Vec<SagaSummary>,
    /// On a real run: each matched saga's replay answer, in the same order.
    #[serde(default)]
    pub replays: Vec<ReplayReply>,
    /// Why the request failed.
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}

/// One step's share of a saga's timeline, computed from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct StepTiming {
    /// The step's name.
    pub step: String,
    /// Its first event (across runs).
    pub started_at: DateTime<Utc>,
    /// Its last event (across runs).
    pub last_at: DateTime<Utc>,
    /// `last_at - started_at`, in milliseconds.
    pub duration_ms: i64,
    /// Attempts started (every run counted).
    pub attempts: u32,
    /// Attempts that failed and were tried again.
    pub retries: u32,
    /// Undos dispatched.
    pub undos: u32,
    /// Where it stands at its last event.
    pub last_status: Option<StepStatus>,
}

/// Computes each step's [`StepTiming`] from a timeline (oldest first), in the order
/// the steps first appear.
pub fn step_timings(timeline: &[ProgressEvent]) -> Vec<StepTiming> {
    let mut steps: Vec<StepTiming> = Vec::new();
    for event in timeline {
        let Some(name) = event.step.as_deref() else {
            continue;
        };
        let index = match steps.iter().position(|s| s.step == name) {
            Some(i) => i,
            None => {
                steps.push(StepTiming {
                    step: name.to_string(),
                    started_at: event.at,
                    last_at: event.at,
                    duration_ms: 0,
                    attempts: 0,
                    retries: 0,
                    undos: 0,
                    last_status: None,
                });
                steps.len() - 1
            }
        };
        let timing = &mut steps[index];
        timing.last_at = timing.last_at.max(event.at);
        timing.duration_ms = (timing.last_at - timing.started_at).num_milliseconds();
        match event.step_status {
            Some(StepStatus::Started) => timing.attempts += 1,
            Some(StepStatus::Retrying) => timing.retries += 1,
            Some(StepStatus::Compensating) => timing.undos += 1,
            _ => {}
        }
        if event.step_status.is_some_and(|s| s != StepStatus::Output) {
            timing.last_status = event.step_status;
        }
    }
    steps
}
