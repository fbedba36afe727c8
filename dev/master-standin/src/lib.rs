//! A STAND-IN for the Master Frappe site's REST API, for development and tests only: it
//! answers `/api/resource/<doctype>` the way Frappe 15 does (observed on a real bench):
//! token auth, `X-Frappe-Site-Name`, 200 `{"data": ...}`, 409 `DuplicateEntryError`,
//! 417 `ValidationError` with `_server_messages`, 404 `{"exc_type":"DoesNotExistError"}`,
//! DELETE 202 `{"data":"ok"}`, and an HTML 404 for an unknown site.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the stand-in knows and how it misbehaves.
#[derive(Default)]
pub struct Master {
    /// Answered as `X-Frappe-Site-Name` (or Host).
    pub site_name: String,
    /// `token <key>:<secret>` accepted.
    pub api_key: String,
    /// See `api_key`.
    pub api_secret: String,
    /// The only DocType served, such as `SaaS Tenant`.
    pub doctype: String,
    /// Records by name.
    pub records: HashMap<String, Value>,
    /// Statuses to answer the next POSTs with, first first (e.g. 503, 429).
    pub fail_next_posts: Vec<u16>,
    /// Names whose POST always fails validation (417).
    pub refuse_names: Vec<String>,
    /// POSTs received by the resource routes (admitted or not), so tests can tell
    /// whether a step wrote again.
    pub posts: usize,
}

/// The shared state.
pub type Shared = Arc<Mutex<Master>>;

fn frappe_error(status: StatusCode, exc_type: &str, message: &str) -> Response {
    let server_messages = serde_json::to_string(&vec![
        json!({ "message": message, "title": "Message", "indicator": "red" }).to_string(),
    ])
    .unwrap_or_default();
    (status, Json(json!({ "exc_type": exc_type, "exception": format!("frappe.exceptions.{exc_type}: {message}"), "_server_messages": server_messages }))).into_response()
}

/// Checks site and token; `Err` is the response Frappe would give.
// The error is the response itself, built once per refused request.
#[allow(clippy::result_large_err)]
fn admit(master: &Master, headers: &HeaderMap, doctype: &str) -> Result<(), Response> {
    let site = headers
        .get("x-frappe-site-name")
        .or_else(|| headers.get("host"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if site != master.site_name {
        return Err((
            StatusCode::NOT_FOUND,
            Html(format!(
                "<html><body><h1>Not Found</h1><p>{site} does not exist</p></body></html>"
            )),
        )
            .into_response());
    }
    let expected = format!("token {}:{}", master.api_key, master.api_secret);
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => {
            return Err(frappe_error(
                StatusCode::FORBIDDEN,
                "PermissionError",
                "Not permitted",
            ))
        }
        Some(given) if given != expected => {
            return Err(frappe_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                "Invalid API key or secret",
            ))
        }
        Some(_) => {}
    }
    if doctype != master.doctype {
        return Err(frappe_error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            &format!("DocType {doctype} not found"),
        ));
    }
    Ok(())
}

async fn create(
    State(state): State<Shared>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut master = state.lock().unwrap_or_else(|p| p.into_inner());
    master.posts += 1;
    if let Err(response) = admit(&master, &headers, &doctype) {
        return response;
    }
    if !master.fail_next_posts.is_empty() {
        let status = master.fail_next_posts.remove(0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return frappe_error(
            status,
            "ServiceUnavailable",
            "scripted failure of the stand-in",
        );
    }
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&body) else {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            "Invalid JSON",
        );
    };
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty()
        || doc
            .get("site_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
    {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            "Value missing for <strong>Site Name</strong>",
        );
    }
    if master.refuse_names.contains(&name) {
        return frappe_error(
            StatusCode::EXPECTATION_FAILED,
            "ValidationError",
            &format!("Tenant <strong>{name}</strong> is not allowed"),
        );
    }
    if master.records.contains_key(&name) {
        return frappe_error(
            StatusCode::CONFLICT,
            "DuplicateEntryError",
            &format!("{doctype} {name} already exists"),
        );
    }
    doc.insert("doctype".into(), json!(doctype));
    doc.insert("docstatus".into(), json!(0));
    let doc = Value::Object(doc);
    master.records.insert(name, doc.clone());
    (StatusCode::OK, Json(json!({ "data": doc }))).into_response()
}

async fn read(
    State(state): State<Shared>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let master = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(response) = admit(&master, &headers, &doctype) {
        return response;
    }
    match master.records.get(&name) {
        Some(doc) => (StatusCode::OK, Json(json!({ "data": doc }))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "exc_type": "DoesNotExistError" })),
        )
            .into_response(),
    }
}

async fn delete(
    State(state): State<Shared>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut master = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(response) = admit(&master, &headers, &doctype) {
        return response;
    }
    match master.records.remove(&name) {
        Some(_) => (StatusCode::ACCEPTED, Json(json!({ "data": "ok" }))).into_response(),
        // Frappe's body for a missing document, exactly.
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "exc_type": "DoesNotExistError" })),
        )
            .into_response(),
    }
}

/// The stand-in's routes over `state`.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/resource/{doctype}", axum::routing::post(create))
        .route("/api/resource/{doctype}/{name}", get(read).delete(delete))
        .with_state(state)
}

/// Serves until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, state: Shared) -> anyhow::Result<()> {
    axum::serve(listener, router(state)).await?;
    Ok(())
}
