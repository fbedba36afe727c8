//! `bench serve --port N`: the emulated sites over HTTP, for tests to check who can
//! get in (dev only).
//!
//! Like Frappe's web server it serves every site of the bench, picked by
//! `X-Frappe-Site-Name` or else `Host` (without its port); an unknown site gets an HTML
//! 404. Per site:
//! - `GET|POST /api/method/frappe.auth.get_logged_user` with `Authorization: token
//!   <api_key>:<api_secret>`: 200 `{"message": "<user>"}`; a wrong or revoked token 401
//!   `AuthenticationError`; no token 403 `PermissionError` (a guest may not call it). A
//!   disabled user's token still works, as in Frappe.
//! - `POST /api/method/login` with `usr` and `pwd` (JSON or form): 200 `{"message":
//!   "Logged In", ...}`, or 401 with Frappe's message (`Invalid login credentials`,
//!   `User disabled or missing`). The emulator keeps no sessions, so it sets no cookie.
//! - `PUT /api/resource/User/<email>` with `{"new_password": ...}` and a token: sets
//!   the password under the site's password policy (`resource.rs`).
//!
//! It binds 127.0.0.1 only (Frappe's development server binds every address) and, like
//! werkzeug, prints ` * Running on http://127.0.0.1:<port>` on stderr, the real port
//! when `--port 0` asked for a free one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::cli::Parsed;
use crate::store::SiteUsers;
use crate::Bench;

/// Serves until the process is stopped; returns the exit code.
pub fn serve(bench: &Bench, p: Parsed) -> u8 {
    let port: u16 = match p.value("--port").unwrap_or("8000").parse() {
        Ok(port) => port,
        Err(_) => {
            eprintln!("Error: Invalid value for '--port': not a valid integer.");
            return 2;
        }
    };
    let shared = Arc::new(Bench {
        root: bench.root.clone(),
        settings: bench.settings.clone(),
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("OSError: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("OSError: [Errno 98] {e}");
                return 1;
            }
        };
        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        {
            use std::io::Write;
            let mut err = std::io::stderr();
            // One write: a reader polling the log never sees the URL without its port.
            let line = format!(" * Running on http://127.0.0.1:{bound}\n");
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers, body| {
            let bench = shared.clone();
            async move {
                if method == Method::PUT && uri.path().starts_with("/api/resource/User/") {
                    tokio::time::sleep(bench.timing().put_user()).await;
                }
                answer(&bench, method, uri, headers, body)
            }
        });
        match axum::serve(listener, app).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("OSError: {e}");
                1
            }
        }
    })
}

/// The site a request is for, as Frappe picks it.
fn site_of(headers: &HeaderMap) -> String {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    header("x-frappe-site-name")
        .or_else(|| header("host").map(|h| h.split(':').next().unwrap_or(h)))
        .unwrap_or_default()
        .to_string()
}

fn site_exists(bench: &Bench, site: &str) -> bool {
    !site.is_empty()
        && !site.contains(['/', '\\'])
        && !site.starts_with('.')
        && bench.sites().join(site).join("site_config.json").is_file()
}

fn frappe_error(status: StatusCode, exc_type: &str, message: Option<&str>) -> Response {
    let mut body = json!({
        "exc_type": exc_type,
        "exception": format!("frappe.exceptions.{exc_type}"),
    });
    if let Some(message) = message {
        body["message"] = json!(message);
    }
    (status, Json(body)).into_response()
}

fn answer(bench: &Bench, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let site = site_of(&headers);
    if !site_exists(bench, &site) {
        return (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<html><body><h1>Not Found</h1><p>{site} does not exist</p></body></html>"
            )),
        )
            .into_response();
    }
    let users = SiteUsers::load(bench, &site);
    match (method, uri.path()) {
        (Method::GET | Method::POST, "/api/method/frappe.auth.get_logged_user") => {
            logged_user(&users, &headers)
        }
        (Method::POST, "/api/method/login") => login(&users, &headers, &body),
        (Method::PUT, path) if path.starts_with("/api/resource/User/") => {
            let name = percent_decode(&path["/api/resource/User/".len()..], false);
            crate::resource::put_user(users, &name, &headers, &body)
        }
        _ => frappe_error(StatusCode::NOT_FOUND, "DoesNotExistError", None),
    }
}

fn logged_user(users: &SiteUsers, headers: &HeaderMap) -> Response {
    let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            Some("Not permitted"),
        );
    };
    let user = authorization
        .strip_prefix("token ")
        .and_then(|token| token.trim().split_once(':'))
        .and_then(|(key, secret)| users.token_user(key, secret));
    match user {
        Some(user) => Json(json!({ "message": user })).into_response(),
        None => frappe_error(StatusCode::UNAUTHORIZED, "AuthenticationError", None),
    }
}

fn login(users: &SiteUsers, headers: &HeaderMap, body: &[u8]) -> Response {
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let fields: HashMap<String, String> = if json_body {
        serde_json::from_slice::<HashMap<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_default()))
            .collect()
    } else {
        form_fields(&String::from_utf8_lossy(body))
    };
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    match users.login(field("usr"), field("pwd")) {
        Ok(full_name) => Json(json!({
            "message": "Logged In",
            "home_page": "/app",
            "full_name": full_name,
        }))
        .into_response(),
        Err(message) => frappe_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            Some(message),
        ),
    }
}

/// `application/x-www-form-urlencoded` fields.
fn form_fields(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k, true), percent_decode(v, true)))
        .collect()
}

/// `%XX` decoded; `+` is a space in a form (`form`), itself in a path.
fn percent_decode(text: &str, form: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if form => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forms_and_picks_sites() {
        let fields = form_fields("usr=a%40b.co&pwd=p%26w+1%21");
        assert_eq!(fields["usr"], "a@b.co");
        assert_eq!(fields["pwd"], "p&w 1!");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz", true), "%zz");
        assert_eq!(percent_decode("a+b%40c.io", false), "a+b@c.io");
        let mut headers = HeaderMap::new();
        headers.insert("host", "a.localhost:8000".parse().expect("header"));
        assert_eq!(site_of(&headers), "a.localhost");
        headers.insert("x-frappe-site-name", "b.localhost".parse().expect("header"));
        assert_eq!(site_of(&headers), "b.localhost");
    }
}
