//! JSON Schemas of the messages, generated from the types above.
//!
//! `schemas/` holds the committed copies; the `schemas_are_current` test in this crate
//! fails when they drift. Regenerate with `UPDATE_SCHEMAS=1 cargo test -p contracts`.

use schemars::schema_for;

/// `(file name, schema)` for every message that crosses NATS.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    fn to_value(schema: schemars::Schema) -> serde_json::Value {
        schema.to_value()
    }
    vec![
        (
            "tenant.signup.requested.json",
            to_value(schema_for!(crate::SignupRequested)),
        ),
        (
            "tenant.signup.dead_letter.json",
            to_value(schema_for!(crate::signup::DeadLetter)),
        ),
        (
            "tenant.progress.json",
            to_value(schema_for!(crate::ProgressEvent)),
        ),
        (
            "tenant.subdomain.check.request.json",
            to_value(schema_for!(crate::subdomain::SubdomainCheckRequest)),
        ),
        (
            "tenant.subdomain.check.reply.json",
            to_value(schema_for!(crate::subdomain::SubdomainCheckReply)),
        ),
        (
            "saga.admin.get.request.json",
            to_value(schema_for!(crate::admin::SagaRef)),
        ),
        (
            "saga.admin.get.reply.json",
            to_value(schema_for!(crate::admin::GetReply)),
        ),
        (
            "saga.admin.list.request.json",
            to_value(schema_for!(crate::admin::ListRequest)),
        ),
        (
            "saga.admin.list.reply.json",
            to_value(schema_for!(crate::admin::ListReply)),
        ),
        (
            "saga.admin.dead_letters.request.json",
            to_value(schema_for!(crate::admin::DeadLettersRequest)),
        ),
        (
            "saga.admin.dead_letters.reply.json",
            to_value(schema_for!(crate::admin::DeadLettersReply)),
        ),
        (
            "saga.admin.dead_letters.requeue.request.json",
            to_value(schema_for!(crate::admin::RequeueRequest)),
        ),
        (
            "saga.admin.dead_letters.requeue.reply.json",
            to_value(schema_for!(crate::admin::RequeueReply)),
        ),
        (
            "saga.admin.replay.request.json",
            to_value(schema_for!(crate::admin::ReplayRequest)),
        ),
        (
            "saga.admin.replay.reply.json",
            to_value(schema_for!(crate::admin::ReplayReply)),
        ),
        (
            "saga.admin.replay_bulk.request.json",
            to_value(schema_for!(crate::admin::BulkReplayRequest)),
        ),
        (
            "saga.admin.replay_bulk.reply.json",
            to_value(schema_for!(crate::admin::BulkReplayReply)),
        ),
        (
            "saga.admin.pool.request.json",
            to_value(schema_for!(crate::pool::PoolRequest)),
        ),
        (
            "saga.admin.pool.reply.json",
            to_value(schema_for!(crate::pool::PoolReply)),
        ),
        (
            "saga.admin.pool.set.request.json",
            to_value(schema_for!(crate::pool::PoolSetRequest)),
        ),
        (
            "saga.admin.pool.set.reply.json",
            to_value(schema_for!(crate::pool::PoolReply)),
        ),
        (
            "internal/saga.cmd.json",
            to_value(schema_for!(crate::StepCommand)),
        ),
        (
            "internal/saga.evt.json",
            to_value(schema_for!(crate::StepEvent)),
        ),
        (
            "internal/saga.probe.request.json",
            to_value(schema_for!(crate::SubdomainProbe)),
        ),
        (
            "internal/saga.probe.reply.json",
            to_value(schema_for!(crate::ProbeReply)),
        ),
        (
            "internal/saga.dead_letter.json",
            to_value(schema_for!(crate::step_dead_letter::StepDeadLetter)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn schemas_are_current() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for (name, schema) in super::all() {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(&schema).expect("schema serialises") + "\n";
            if update {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir schemas");
                std::fs::write(&path, &text).expect("write schema");
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "schemas/ differs from the Rust types for {stale:?}: run `UPDATE_SCHEMAS=1 cargo test -p contracts` and commit"
        );
    }
}
