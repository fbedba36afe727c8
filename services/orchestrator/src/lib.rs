//! The tenant-provisioning saga orchestrator.

pub mod saga;
pub mod store;
