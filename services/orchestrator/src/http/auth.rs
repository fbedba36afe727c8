//! Who may call what. Writes (provision, replays) need `X-Provisioning-Secret` =
//! `PROVISIONING_API_SECRET`; reads need `Authorization: Bearer` with
//! `PROVISIONING_READ_TOKEN` or the write secret (either header). Compared in constant
//! time; a missing or wrong credential gets 401, an unconfigured one 503.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::{AppState, Refusal};

/// The configured credentials (never logged: `SecretString` prints `[REDACTED]`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    pub write: Option<SecretString>,
    pub read: Option<SecretString>,
}

fn equal(given: &str, expected: &SecretString) -> bool {
    given
        .as_bytes()
        .ct_eq(expected.expose_secret().as_bytes())
        .into()
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(parts: &Parts) -> Option<&str> {
    header(parts, "authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    })
}

/// Who made the request, as recorded on an operator action: the `X-Operator` header,
/// else the credential's name.
fn operator(parts: &Parts, credential: &str) -> String {
    header(parts, "x-operator")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(credential)
        .to_string()
}

fn unauthorized(message: &str) -> Refusal {
    Refusal::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Proof that the request may write; carries who asked.
pub(crate) struct Write {
    pub operator: String,
}

impl FromRequestParts<Arc<AppState>> for Write {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(secret) = &state.credentials.write else {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "writes_disabled",
                "this orchestrator takes no HTTP writes: PROVISIONING_API_SECRET is not set",
            ));
        };
        match header(parts, "x-provisioning-secret") {
            Some(given) if equal(given, secret) => Ok(Self {
                operator: operator(parts, "write-secret"),
            }),
            Some(_) => Err(unauthorized("X-Provisioning-Secret is wrong")),
            None => Err(unauthorized(
                "send the API secret as the X-Provisioning-Secret header",
            )),
        }
    }
}

/// Proof that the request may read.
pub(crate) struct Read;

impl FromRequestParts<Arc<AppState>> for Read {
    type Rejection = Refusal;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let credentials = &state.credentials;
        if credentials.write.is_none() && credentials.read.is_none() {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reads_disabled",
                "this orchestrator takes no HTTP reads: set PROVISIONING_READ_TOKEN",
            ));
        }
        let by_secret = header(parts, "x-provisioning-secret")
            .zip(credentials.write.as_ref())
            .is_some_and(|(given, secret)| equal(given, secret));
        let by_bearer = bearer(parts).is_some_and(|given| {
            [&credentials.read, &credentials.write]
                .into_iter()
                .flatten()
                .any(|expected| equal(given, expected))
        });
        if by_secret || by_bearer {
            Ok(Self)
        } else if bearer(parts).is_some() || header(parts, "x-provisioning-secret").is_some() {
            Err(unauthorized("the credential is wrong"))
        } else {
            Err(unauthorized(
                "send the read token as Authorization: Bearer <token>",
            ))
        }
    }
}
