//! `tenant.progress.<saga_id>`: the live timeline of a saga.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a saga stands as a whole.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// The signup was accepted; nothing has run yet.
    Accepted,
    /// Steps are running.
    Running,
    /// A step failed; earlier effects are being undone.
    Compensating,
    /// Terminal: the workspace is ready.
    Completed,
    /// Terminal: a step failed and every effect was undone.
    RolledBack,
    /// Terminal: refused before anything was created.
    Rejected,
    /// Terminal until replayed: an undo could not finish; an operator must look.
    CompensationFailed,
}

impl SagaStatus {
    /// Whether nothing more happens without an operator.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::RolledBack | Self::Rejected | Self::CompensationFailed
        )
    }

    /// The wire name, as in `"rolled_back"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Completed => "completed",
            Self::RolledBack => "rolled_back",
            Self::Rejected => "rejected",
            Self::CompensationFailed => "compensation_failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Running,
            Self::Compensating,
            Self::Completed,
            Self::RolledBack,
            Self::Rejected,
            Self::CompensationFailed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Where the current step stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// An attempt was dispatched.
    Started,
    /// A line of the step's own output (for example bench progress).
    Output,
    /// The step's effect is made.
    Completed,
    /// The step failed for good.
    Failed,
    /// An attempt failed; another follows after a delay.
    Retrying,
    /// The step's undo was dispatched.
    Compensating,
    /// The step's effect is undone.
    Compensated,
}

/// What went wrong, in words a person understands. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// Machine-readable code, such as `subdomain_taken` or `database_conflict`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The step it happened in, when it happened in one.
    #[serde(default)]
    pub step: Option<String>,
    /// On `compensation_failed`: the failure that started the rollback (this error
    /// is then the undo's). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub cause: Option<Box<ErrorInfo>>,
}

/// One entry of a saga's timeline (contract v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct ProgressEvent {
    /// The saga (= signup) id.
    pub saga_id: Uuid,
    /// Grows by one per event of this saga, from 1.
    pub sequence: u64,
    /// The tenant's subdomain; empty when a rejected signup had none that was valid.
    pub subdomain: String,
    /// `<subdomain>.<PARENT_DOMAIN>`.
    pub site_name: String,
    /// The saga's status after this event.
    pub status: SagaStatus,
    /// The step this event is about: `database`, `site`, `admin_user`, `registration`.
    pub step: Option<String>,
    /// Where that step stands.
    pub step_status: Option<StepStatus>,
    /// Attempt number of that step, from 1.
    pub attempt: u32,
    /// Rough completion, 0 to 100.
    pub percent: u8,
    /// What is happening, for people.
    pub message: String,
    /// What failed, when something did.
    pub error: Option<ErrorInfo>,
    /// On `completed`: `site_url`, `admin_email` and what the steps produced for the client.
    pub result: Option<serde_json::Value>,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// On the first event of a run an operator started (a replay): who, when and why.
    /// Absent on every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_action: Option<Box<OperatorAction>>,
}

/// An operator's action on a saga, kept in its timeline (and so in the saga store)
/// on the event it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct OperatorAction {
    /// What was done: `replay` (one saga), `bulk_replay` (chosen by a filter) or
    /// `requeue` (a dead letter of the saga's requeued).
    pub action: String,
    /// Who did it: the `X-Operator` header over HTTP (else the credential's name,
    /// `write-secret`), the request's `operator` over NATS (else `nats`).
    pub operator: String,
    /// Why, as the operator said it (empty when they gave no reason).
    pub reason: String,
    /// When the orchestrator received the request.
    pub at: DateTime<Utc>,
    /// For `requeue`: the letter's sequence in stream `TENANT_DEAD_LETTERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<u64>,
}
