//! The saga: its definition (data) and its pure state machine.

pub mod definition;
pub mod machine;
mod replay;
pub mod state;

#[cfg(test)]
mod tests;

pub use definition::{RetryPolicy, SagaDefinition, StepDefinition};
pub use machine::next;
pub use state::{Action, Decision, Input, Phase, Saga, Timer, STANDBY_DISCARDED};
