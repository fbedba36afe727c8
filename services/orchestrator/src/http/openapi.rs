//! The OpenAPI document, generated from the handlers and the contract's types with
//! `utoipa`, served at `/openapi.json`; `schemas/openapi.json` is its committed copy
//! (a test fails when they drift: regenerate with `UPDATE_SCHEMAS=1`).

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenant provisioning orchestrator",
        description = "Provisions tenants (the old provisioning service's endpoints) and lets operators follow and replay sagas, requeue dead letters and size the standby pool."
    ),
    paths(
        super::compat::health,
        super::compat::provision,
        super::compat::check_subdomain,
        super::sagas::list,
        super::sagas::get,
        super::sagas::replay,
        super::sagas::replay_bulk,
        super::events::saga_events,
        super::events::all_events,
        super::stats::stats,
        super::dead_letters::list,
        super::dead_letters::one,
        super::dead_letters::requeue,
        super::pool::get,
        super::pool::put,
        super::pool::clear,
    ),
    components(schemas(super::ApiError)),
    modifiers(&Security),
    tags(
        (name = "compatible", description = "The old provisioning service's endpoints"),
        (name = "sagas", description = "Operators: sagas, replays, headline figures"),
        (name = "events", description = "Live progress (Server-Sent Events)"),
        (name = "dead letters", description = "Operators: what was set aside, and requeues once the cause is fixed"),
        (name = "pool", description = "Operators: the standby pool, and its size changed without a restart")
    )
)]
struct Api;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "provisioning_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Provisioning-Secret",
                "PROVISIONING_API_SECRET: writes (and reads)",
            ))),
        );
        components.add_security_scheme(
            "read_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("PROVISIONING_READ_TOKEN: reads"))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of the HTTP API.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Api::openapi();
    // The version is the contract's, not the crate's: it changes when the API does.
    doc.info.version = "1".into();
    doc
}

pub(crate) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
