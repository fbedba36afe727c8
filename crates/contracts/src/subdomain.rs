//! `tenant.subdomain.check`: is a subdomain free?

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Request on `tenant.subdomain.check`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct SubdomainCheckRequest {
    /// The subdomain to check, as the user typed it.
    pub subdomain: String,
}

/// Why a subdomain cannot be had.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableReason {
    /// A live or completed saga holds it.
    Taken,
    /// Kept for the platform.
    Reserved,
    /// Breaks the naming rule.
    Invalid,
}

/// Reply on `tenant.subdomain.check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct SubdomainCheckReply {
    /// The subdomain checked.
    pub subdomain: String,
    /// Whether a signup with it would be accepted now.
    pub available: bool,
    /// Why not; absent when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<UnavailableReason>,
    /// A sentence for people.
    pub message: String,
}
