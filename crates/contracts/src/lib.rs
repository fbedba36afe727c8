//! The public contract (v1) of the tenant-provisioning saga and the internal step
//! protocol: wire types, subject names, validation rules and JSON Schema generation.
//!
//! This crate does no I/O. Everything that crosses NATS is defined here, so that the
//! orchestrator, the step services and the tests agree by construction.

pub mod admin;
pub mod dead_letter;
pub mod pool;
pub mod probe;
pub mod progress;
pub mod schema;
pub mod signup;
pub mod step;
pub mod step_dead_letter;
pub mod subdomain;
pub mod subjects;
pub mod trace;

pub use probe::{ProbeReply, SubdomainProbe};
pub use progress::{ErrorInfo, OperatorAction, ProgressEvent, SagaStatus, StepStatus};
pub use signup::{Rejection, SignupRequested, ValidSignup};
pub use step::{
    Sealed, StandbyRef, StepAction, StepCommand, StepEvent, StepReport, TenantContext,
    SENT_AGAIN_HEADER, STANDBY_UNUSABLE,
};
pub use subjects::Subjects;
pub use trace::TraceParent;
