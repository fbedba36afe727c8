//! `schemas/openapi.json` is the OpenAPI document the code generates: this fails when
//! they drift. Regenerate with `UPDATE_SCHEMAS=1 cargo test -p orchestrator --test openapi`.

use std::path::PathBuf;

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let generated = orchestrator::http::document()
        .to_pretty_json()
        .expect("the document serializes")
        + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.json");
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).expect("write schemas/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/openapi.json differs from the code: run `UPDATE_SCHEMAS=1 cargo test -p orchestrator --test openapi` and commit"
    );
}

#[test]
fn every_endpoint_is_documented() {
    let document = orchestrator::http::document();
    for path in [
        "/health",
        "/api/v1/provision",
        "/api/check-subdomain",
        "/api/v1/sagas",
        "/api/v1/sagas/{id}",
        "/api/v1/sagas/{id}/replay",
        "/api/v1/sagas/replay",
        "/api/v1/sagas/{id}/events",
        "/api/v1/events",
        "/api/v1/stats",
        "/api/v1/dead-letters",
        "/api/v1/dead-letters/{seq}",
        "/api/v1/dead-letters/{seq}/requeue",
    ] {
        assert!(document.paths.paths.contains_key(path), "{path} is missing");
    }
}
