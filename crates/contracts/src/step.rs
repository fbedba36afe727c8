//! The internal step protocol between the orchestrator and the step services.
//!
//! The orchestrator publishes a [`StepCommand`] on `saga.cmd.<step>` (stream
//! `SAGA_COMMANDS`, header `Nats-Msg-Id: <command_id>`); the step service answers with
//! [`StepEvent`]s on `saga.evt.<step>` (stream `SAGA_EVENTS`): any number of `output`
//! reports, then exactly one `completed` or `failed` (`Nats-Msg-Id: <command_id>:done`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signup::AuthProvider;

/// A secret sealed with HPKE to the key pair that must open it: `v2:<key id>:` followed
/// by standard base64 of `enc || ciphertext`, bound to its saga and field (README,
/// "Sealed secrets"). Opening it needs the `secrets` crate or any HPKE library.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Sealed(pub String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// Whether a command asks for the effect or for its undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// Make the step's effect (idempotently).
    Execute,
    /// Undo the step's effect, only what this saga made (idempotently).
    Compensate,
}

impl StepAction {
    /// `execute` or `compensate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Execute => "execute",
            Self::Compensate => "compensate",
        }
    }
}

/// Who the tenant is: the input every step shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TenantContext {
    /// The tenant's subdomain.
    pub subdomain: String,
    /// `<subdomain>.<PARENT_DOMAIN>`.
    pub site_name: String,
    /// The organization's name.
    pub organization_name: String,
    /// The first System Manager's email.
    pub admin_email: String,
    /// Their full name.
    pub admin_full_name: String,
    /// How they signed up.
    pub auth_provider: AuthProvider,
    /// Their password, sealed; absent for Google sign-ups.
    pub admin_password: Option<Sealed>,
    /// The standby site this signup claimed from the pool: its database and site are
    /// taken over instead of made. Absent on the usual path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<StandbyRef>,
    /// This saga builds a standby site for the pool (a placeholder tenant, only the
    /// `database` and `site` steps), not a signup's workspace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub standby_build: bool,
}

/// A standby site (built ahead of time by its own saga) that a signup takes over by
/// renaming it: the ledger and the site's marker name the standby's build saga until
/// the signup's steps move them to the signup's saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StandbyRef {
    /// The standby's build saga: whose marker and ledger entry the steps expect.
    pub saga_id: Uuid,
    /// The placeholder site name the standby was built under (`sb-<8 hex>.<parent>`).
    pub site_name: String,
    /// Its database (and user) name; a claimed site keeps it.
    pub db_name: String,
}

/// The failure code of a step that finds a claimed standby unusable (folder missing,
/// marker or ledger not the standby's, database login refused, apps or bench version
/// changed since it was built): permanent; the signup then takes the usual path.
pub const STANDBY_UNUSABLE: &str = "standby_unusable";

/// Header of a step command the orchestrator sends again (after a restart, a takeover
/// or a send it could not confirm): only such a command, or one JetStream delivers
/// again, may have finished before, so only then does a step look up its memory of
/// finished commands. A first send runs straight away.
pub const SENT_AGAIN_HEADER: &str = "Saga-Sent-Again";

/// A command to one step service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepCommand {
    /// `<saga_id>:<run>:<step>:<action>:<attempt>`; also the `Nats-Msg-Id`.
    pub command_id: String,
    /// The saga.
    pub saga_id: Uuid,
    /// The saga's run (1 + replays, from the start or of a failed undo).
    pub run: u32,
    /// The step's name, such as `database`.
    pub step: String,
    /// Effect or undo.
    pub action: StepAction,
    /// Attempt number of this action, from 1.
    pub attempt: u32,
    /// After this the orchestrator counts the attempt as timed out; work past it is wasted.
    pub deadline: DateTime<Utc>,
    /// Who the tenant is.
    pub tenant: TenantContext,
    /// Outputs of the steps completed so far, by step name: of this run, or for an
    /// undo resumed by a replay, of the run whose effects it undoes.
    pub outputs: BTreeMap<String, serde_json::Value>,
}

impl StepCommand {
    /// The command id for these coordinates.
    pub fn id_for(saga_id: Uuid, run: u32, step: &str, action: StepAction, attempt: u32) -> String {
        format!("{saga_id}:{run}:{step}:{}:{attempt}", action.as_str())
    }
}

/// What a step service reports about one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepReport {
    /// A line of progress output; `percent` is within the step (0-100) when known.
    Output {
        /// The line, free of secrets.
        line: String,
        /// Progress within the step, when known.
        #[serde(default)]
        percent: Option<u8>,
    },
    /// Done; `output` is kept by the saga and handed to later steps and the undo.
    Completed {
        /// What later steps need (secrets in it are sealed).
        output: serde_json::Value,
    },
    /// Failed; `retryable` says whether another attempt may succeed.
    Failed {
        /// Machine-readable code.
        code: String,
        /// A sentence for people, free of secrets.
        message: String,
        /// Whether another attempt may succeed.
        retryable: bool,
    },
}

/// A report from a step service, on `saga.evt.<step>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepEvent {
    /// The command this answers.
    pub command_id: String,
    /// The saga.
    pub saga_id: Uuid,
    /// The saga's run.
    pub run: u32,
    /// The step's name.
    pub step: String,
    /// Effect or undo.
    pub action: StepAction,
    /// The attempt this answers.
    pub attempt: u32,
    /// What happened.
    pub report: StepReport,
    /// When the step service reported it.
    pub at: DateTime<Utc>,
}
