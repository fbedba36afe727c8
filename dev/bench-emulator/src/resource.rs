//! `PUT /api/resource/User/<email>` of `bench serve`: Frappe's REST update of a User,
//! as far as setting a password goes (the way to set one without a command line).
//!
//! - Authorization `token <api_key>:<api_secret>` of that user or of a System Manager;
//!   none: 403 `PermissionError`; a wrong token: 401 `AuthenticationError`; a token of
//!   another user who is no System Manager: 403.
//! - No such user: 404 `DoesNotExistError`.
//! - Body `{"new_password": "<pw>"}`: the password policy (zxcvbn score >= 2 with the
//!   user's data) or 417 `ValidationError` titled "Invalid Password" with Frappe's
//!   advice, and the old password stays; else the password is set (hashed), the user's
//!   sessions end (the emulator keeps none) and the answer is 200 with the whole
//!   document: `new_password` empty, `api_key` in clear, `api_secret` masked.
//!   Other fields of the body are not applied (the emulator only sets passwords).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::password_policy;
use crate::store::SiteUsers;

/// The answer to `PUT /api/resource/User/<name>`.
pub fn put_user(mut users: SiteUsers, name: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "Not permitted",
            "Insufficient Permission for User",
        );
    };
    let caller = authorization
        .strip_prefix("token ")
        .and_then(|token| token.trim().split_once(':'))
        .and_then(|(key, secret)| users.token_user(key, secret));
    let Some(caller) = caller else {
        return error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "Not permitted",
            "Invalid API key or secret",
        );
    };
    let Some(row) = users.get(name).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            "Not found",
            &format!("User {name} not found"),
        );
    };
    if caller != name && !users.is_system_manager_user(&caller) {
        return error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "Not permitted",
            &format!("No permission for User {name}"),
        );
    }
    let fields: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Value::Object(fields),
        _ => {
            return error(
                StatusCode::EXPECTATION_FAILED,
                "ValidationError",
                "Message",
                "Invalid JSON body",
            )
        }
    };
    if let Some(password) = fields["new_password"].as_str().filter(|p| !p.is_empty()) {
        let text = |field: &str| {
            row[field]
                .as_str()
                .filter(|v| !v.is_empty())
                .unwrap_or("None")
                .to_string()
        };
        // (first_name, middle_name, last_name, email, birth_date), as User.validate
        // passes them; `None` becomes the word "none" in Python's zxcvbn.
        let inputs = [
            text("first_name"),
            text("middle_name"),
            text("last_name"),
            name.to_string(),
            text("birth_date"),
        ];
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        if let Some(advice) = password_policy::refusal(password, &inputs) {
            return error(
                StatusCode::EXPECTATION_FAILED,
                "ValidationError",
                "Invalid Password",
                &advice,
            );
        }
        users.set_password(name, password);
        users.save();
    }
    Json(json!({ "data": document(name, &row) })).into_response()
}

/// The User document as the REST API shows it.
fn document(name: &str, row: &Value) -> Value {
    let mut doc = row.as_object().cloned().unwrap_or_default();
    doc.insert("name".into(), json!(name));
    doc.insert("email".into(), json!(name));
    doc.insert("doctype".into(), json!("User"));
    doc.insert("new_password".into(), json!(""));
    let roles: Vec<Value> = row["roles"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|role| json!({ "doctype": "Has Role", "role": role }))
        .collect();
    doc.insert("roles".into(), Value::Array(roles));
    let masked = crate::store::truthy(&row["api_secret"]).then(|| "*".repeat(15));
    doc.insert("api_secret".into(), json!(masked));
    Value::Object(doc)
}

/// A Frappe error answer: `exc_type`, `exception`, `exc` (the traceback as a JSON list
/// in a string) and `_server_messages` (a JSON list of JSON strings, each a message
/// with its title), as Frappe's `frappe.throw` leaves them.
fn error(status: StatusCode, exc_type: &str, title: &str, message: &str) -> Response {
    let exception = format!("frappe.exceptions.{exc_type}: {message}");
    let traceback = format!(
        "Traceback (most recent call last):\n  File \"apps/frappe/frappe/app.py\", line 114, in application\n    response = frappe.api.handle(request)\n{exception}\n"
    );
    let server_message = json!({
        "message": message,
        "title": title,
        "indicator": "red",
        "raise_exception": 1,
    })
    .to_string();
    let body = json!({
        "exc_type": exc_type,
        "exception": exception,
        "exc": json!([traceback]).to_string(),
        "_server_messages": json!([server_message]).to_string(),
    });
    (status, Json(body)).into_response()
}
