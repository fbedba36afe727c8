//! `saga.admin.get`, `saga.admin.list`, `saga.admin.replay`, `saga.admin.dead_letters`:
//! operators' request/reply API.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorInfo, ProgressEvent, SagaStatus};

/// Request on `saga.admin.get` and `saga.admin.replay`. Nothing but `saga_id`: any
/// other message that happens to hold one (a progress event) is not a request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SagaRef {
    /// The saga (= signup) id.
    pub saga_id: Uuid,
}

/// Request on `saga.admin.list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ListRequest {
    /// Only sagas with this status.
    #[serde(default)]
    pub status: Option<SagaStatus>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A saga as operators see it in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SagaSummary {
    /// The saga (= signup) id.
    pub saga_id: Uuid,
    /// The tenant's subdomain.
    pub subdomain: String,
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GetReply {
    /// The saga, when it exists.
    pub saga: Option<SagaSummary>,
    /// Its whole timeline, oldest first.
    #[serde(default)]
    pub timeline: Vec<ProgressEvent>,
    /// Why the request failed.
    pub error: Option<ErrorInfo>,
}

/// Reply on `saga.admin.list`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ListReply {
    /// Newest first.
    pub sagas: Vec<SagaSummary>,
    /// Why the request failed.
    pub error: Option<ErrorInfo>,
}

/// Reply on `saga.admin.replay`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct DeadLettersRequest {
    /// At most this many, newest first (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One dead letter as stored on stream `TENANT_DEAD_LETTERS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct DeadLettersReply {
    /// Newest first.
    pub letters: Vec<DeadLetterEntry>,
    /// Set when the stream could not be read.
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}
