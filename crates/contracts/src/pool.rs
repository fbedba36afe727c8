//! `saga.admin.pool` and `saga.admin.pool.set`: the standby pool for operators (its
//! size in force and where it comes from, its standbys by state, claims and misses of
//! the last hour), and the size set or cleared without a restart. The HTTP API
//! (`/api/v1/pool`) answers with the same types.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{ErrorInfo, OperatorAction};

/// The highest pool size, as `STANDBY_POOL_SIZE` allows.
pub const MAX_POOL_SIZE: u32 = 1000;

/// Request on `saga.admin.pool`: nothing to say (an empty body or `{}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolRequest {}

/// Request on `saga.admin.pool.set`: exactly one of `size` (keep that many standbys,
/// whatever `STANDBY_POOL_SIZE` says, until cleared) and `clear` (back to
/// `STANDBY_POOL_SIZE`). No other field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSetRequest {
    /// The size to keep, 0 to 1000 (0 drains the pool: the ready standbys are
    /// discarded, signups take the usual path).
    #[serde(default)]
    pub size: Option<u32>,
    /// Go back to the configured size.
    #[serde(default)]
    pub clear: bool,
    /// Who asks (recorded); `nats` when absent. At most 100 characters.
    #[serde(default)]
    pub operator: Option<String>,
    /// Why (recorded). At most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Where the size in force comes from.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PoolSizeSource {
    /// `STANDBY_POOL_SIZE` (no operator setting, or it was cleared).
    #[default]
    Configured,
    /// An operator set it (`last_action` says who, when and why).
    Operator,
}

/// Where a standby is in its life (the pool lists no used-up or removed ones).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PoolStandbyState {
    /// Its build saga runs.
    Building,
    /// Built and not taken: the next signup gets it.
    Ready,
    /// Taken by a signup (`claimed_by`).
    Claimed,
    /// No longer wanted: its build saga is being undone.
    Discarding,
}

/// The pool's standbys by state.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
pub struct PoolCounts {
    /// Being built.
    pub building: u32,
    /// Ready to be taken.
    pub ready: u32,
    /// Taken by a signup that has not completed yet.
    pub claimed: u32,
    /// Being removed.
    pub discarding: u32,
}

/// One standby of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct PoolStandby {
    /// The saga that builds it (see it with `saga.admin.get`).
    pub standby_id: Uuid,
    /// The placeholder site name it is built under (`sb-<8 hex>.<parent domain>`).
    pub site_name: String,
    /// Where it is in its life.
    pub state: PoolStandbyState,
    /// Since when it is in that state.
    pub since: DateTime<Utc>,
    /// The signup that took it, when claimed.
    #[serde(default)]
    pub claimed_by: Option<Uuid>,
}

/// Reply on `saga.admin.pool` and `saga.admin.pool.set`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct PoolReply {
    /// How many standbys the pool keeps building or ready now.
    pub size: u32,
    /// Whether that is `STANDBY_POOL_SIZE` or an operator's setting.
    pub source: PoolSizeSource,
    /// `STANDBY_POOL_SIZE` of the orchestrator that answered.
    pub configured_size: u32,
    /// The operators' last change of the size (`pool_size` set, or
    /// `pool_size_cleared`): who, when, why.
    #[serde(default)]
    pub last_action: Option<OperatorAction>,
    /// The standbys by state.
    pub counts: PoolCounts,
    /// Standbys signups took in the last hour (claims given back not counted).
    pub taken_last_hour: u64,
    /// Signups in the last hour that found no ready standby while the pool was on
    /// (they took the usual path).
    pub missed_last_hour: u64,
    /// Every standby not used up or removed, oldest first.
    pub standbys: Vec<PoolStandby>,
    /// Why the request failed (`bad_request`, `store_unavailable`, `no_pool`).
    #[serde(default)]
    pub error: Option<ErrorInfo>,
}
