//! The saga: its definition (data) and its pure state machine.

pub mod definition;
pub mod machine;

#[cfg(test)]
mod tests;

pub use definition::{RetryPolicy, SagaDefinition, StepDefinition};
pub use machine::{next, Action, Decision, Input, Phase, Saga, Timer};
