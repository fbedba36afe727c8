//! The old provisioning service's endpoints, so its clients switch by changing one URL:
//! `GET /health`, `POST /api/v1/provision`, `GET /api/check-subdomain`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use contracts::signup::SignupRequested;
use contracts::subdomain::SubdomainCheckReply;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Write;
use super::{AppState, Refusal};

/// Where the signup ids of provision requests live (UUIDv5 namespace).
const PROVISION_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b0e_7d3a_4c59_9a61_b2d4_5e8f_0c17);

/// `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` when the store and NATS answer, `degraded` otherwise.
    pub status: String,
    /// `MASTER_SITE_NAME`, when set.
    pub master_site: Option<String>,
    /// Now (RFC 3339).
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// `leader` (drives sagas) or `standby` (answers reads, forwards replays).
    pub role: String,
    /// This instance's name in the lead's lease.
    pub instance: String,
    /// Who leads, when someone does.
    pub leader: Option<String>,
    /// Whether the saga store answers.
    pub store: bool,
    /// Whether NATS is connected.
    pub nats: bool,
}

#[utoipa::path(get, path = "/health", tag = "compatible",
    responses((status = 200, description = "The instance's state (200 even when degraded)", body = Health)))]
pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let store = state.reads.store_state().await;
    let nats = state.client.connection_state() == async_nats::connection::State::Connected;
    let leader = store.as_ref().ok().cloned().flatten();
    Json(Health {
        status: if store.is_ok() && nats {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        master_site: state.master_site.clone(),
        timestamp: chrono::Utc::now(),
        role: if leader.as_deref() == Some(state.instance.as_str()) {
            "leader"
        } else {
            "standby"
        }
        .into(),
        instance: state.instance.clone(),
        leader,
        store: store.is_ok(),
        nats,
    })
}

/// `POST /api/v1/provision`: the old service's body. No `Debug`: it holds the
/// password in clear until it is sealed.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProvisionRequest {
    /// The organization (the signup's `organization_name`).
    pub organization_name: String,
    /// The first user's email (`admin_email`).
    pub admin_email: String,
    /// The first user's password (sealed on arrival to `admin_password_sealed`).
    #[schema(format = Password)]
    pub password: String,
    /// The first user's name (`admin_full_name`).
    pub full_name: String,
    /// The wanted subdomain; derived from the organization when absent.
    #[serde(default)]
    pub subdomain: Option<String>,
}

/// The answer to an accepted provision request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ProvisionAccepted {
    /// The saga (= signup) id: the same request again gives the same one.
    pub saga_id: Uuid,
    /// `accepted`.
    pub status: String,
    /// Where the saga's progress is published on NATS.
    pub progress_subject: String,
    /// Where to read the saga over HTTP.
    pub status_url: String,
    /// Where to follow it live (Server-Sent Events).
    pub events_url: String,
}

/// The signup id of a request: from `Idempotency-Key` when given, else from the
/// normalised body without the password (trimmed organization, lowercased email and
/// subdomain): the same request again is the same saga, and the id tells nothing of
/// the password.
fn signup_id(headers: &HeaderMap, request: &ProvisionRequest) -> Uuid {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let name = match key {
        Some(key) => format!("key\n{key}"),
        None => format!(
            "body\n{}\n{}\n{}\n{}",
            request.organization_name.trim(),
            request.admin_email.trim().to_lowercase(),
            request.full_name.trim(),
            request
                .subdomain
                .as_deref()
                .unwrap_or_default()
                .trim()
                .to_lowercase()
        ),
    };
    Uuid::new_v5(&PROVISION_NAMESPACE, name.as_bytes())
}

#[utoipa::path(post, path = "/api/v1/provision", tag = "compatible",
    request_body = ProvisionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Names the request: the same key is the same saga"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the saga joins this trace (one that is not a valid traceparent is ignored)")),
    security(("provisioning_secret" = [])),
    responses(
        (status = 202, description = "Accepted: the saga runs", body = ProvisionAccepted),
        (status = 401, description = "No or a wrong X-Provisioning-Secret", body = super::ApiError),
        (status = 422, description = "The request breaks a rule of the signup", body = super::ApiError),
        (status = 503, description = "Writes are disabled, or NATS does not take the signup", body = super::ApiError)))]
pub(crate) async fn provision(
    State(state): State<Arc<AppState>>,
    write: Write,
    headers: HeaderMap,
    body: Result<Json<ProvisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<impl IntoResponse, Refusal> {
    // serde's message may quote the value it could not read (a password sent as a
    // number, say): the answer names the form only.
    let Json(request) = body.map_err(|_| {
        Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_payload",
            "the body must be a JSON object with the strings organization_name, admin_email, password, full_name and, optionally, subdomain (no other field)",
        )
    })?;
    let id = signup_id(&headers, &request);
    let mut signup = SignupRequested {
        signup_id: id,
        organization_name: request.organization_name,
        subdomain: request.subdomain.filter(|s| !s.trim().is_empty()),
        admin_email: request.admin_email,
        admin_full_name: request.full_name,
        admin_password: Some(request.password),
        admin_password_sealed: None,
        auth_provider: None,
        requested_at: Some(chrono::Utc::now()),
    };
    // The rules that need no lookup answer at once; the rest show in the saga.
    let invalid =
        |r: contracts::Rejection| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, r.code, r.message);
    let valid = contracts::signup::validate(signup.clone()).map_err(invalid)?;
    let password = signup.admin_password.take().unwrap_or_default();
    contracts::signup::check_password(&password).map_err(invalid)?;
    // The site's password policy too, as the intake would: a weak password is told at
    // once, and no saga is made that a stronger one could not replace (the saga id
    // does not depend on the password).
    let (password, strength) = tokio::task::spawn_blocking(move || {
        let owner = crate::password_policy::PasswordOwner {
            full_name: &valid.admin_full_name,
            email: &valid.admin_email,
        };
        let strength = crate::password_policy::check_password_strength(&password, owner);
        (password, strength)
    })
    .await
    .map_err(|_| {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the password could not be checked; try again",
        )
    })?;
    strength.map_err(invalid)?;
    // Sealed at once, as a web app would: the clear password rests nowhere.
    signup.admin_password_sealed = Some(state.keyring.seal(
        &password,
        secrets::Binding::new(id, secrets::Field::AdminPassword),
    ));
    drop(password);
    let body = serde_json::to_vec(&signup)
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let mut nats_headers = async_nats::HeaderMap::new();
    nats_headers.insert("Nats-Msg-Id", id.to_string().as_str());
    // The caller's trace goes on with the signup, as a web app's over NATS would.
    if let Some(trace) = headers
        .get(contracts::trace::TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(contracts::TraceParent::parse)
    {
        nats_headers.insert(
            contracts::trace::TRACEPARENT_HEADER,
            trace.to_string().as_str(),
        );
    }
    let stored = async {
        state
            .js
            .publish_with_headers(state.subjects.signup_requested(), nats_headers, body.into())
            .await?
            .await
    };
    if let Err(e) = stored.await {
        tracing::warn!(error = %e, saga_id = %id, "a provision request could not be published");
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the signup could not be stored on NATS; try again",
        ));
    }
    tracing::info!(saga_id = %id, operator = %write.operator, "provision request accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(ProvisionAccepted {
            saga_id: id,
            status: "accepted".into(),
            progress_subject: state.subjects.progress(&id),
            status_url: format!("/api/v1/sagas/{id}"),
            events_url: format!("/api/v1/sagas/{id}/events"),
        }),
    ))
}

/// `GET /api/check-subdomain?subdomain=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct CheckQuery {
    /// The subdomain to check.
    pub subdomain: String,
}

#[utoipa::path(get, path = "/api/check-subdomain", tag = "compatible",
    params(CheckQuery),
    responses(
        (status = 200, description = "The same answer as tenant.subdomain.check", body = SubdomainCheckReply),
        (status = 400, description = "No subdomain given", body = super::ApiError)))]
pub(crate) async fn check_subdomain(
    State(state): State<Arc<AppState>>,
    query: Result<Query<CheckQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SubdomainCheckReply>, Refusal> {
    let Query(query) =
        query.map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    Ok(Json(state.reads.check(query.subdomain).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(email: &str) -> ProvisionRequest {
        ProvisionRequest {
            organization_name: " Acme ".into(),
            admin_email: email.into(),
            password: "whatever".into(),
            full_name: "Ann".into(),
            subdomain: None,
        }
    }

    #[test]
    fn the_same_request_is_the_same_saga() {
        let none = HeaderMap::new();
        let a = signup_id(&none, &request("Ann@Acme.io"));
        assert_eq!(a, signup_id(&none, &request("ann@acme.io")));
        assert_ne!(a, signup_id(&none, &request("bob@acme.io")));
        let mut keyed = HeaderMap::new();
        keyed.insert("idempotency-key", "k-1".parse().expect("header"));
        assert_eq!(
            signup_id(&keyed, &request("ann@acme.io")),
            signup_id(&keyed, &request("bob@acme.io"))
        );
    }
}
