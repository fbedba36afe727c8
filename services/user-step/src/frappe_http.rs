//! [`SitePasswords`] over a Frappe web server (`BENCH_HTTP_URL`): Frappe's REST API,
//! the site named by `Host` and `X-Frappe-Site-Name` on each request, as frappe_docker's
//! frontend (which routes by `Host`) and `bench serve` both pick it.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, HOST};
use reqwest::{StatusCode, Url};
use secrets::{ExposeSecret, SecretString};
use step_runtime::StepError;

use crate::site_password::{ApiToken, SitePasswords};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A bad `BENCH_HTTP_URL`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not an http(s) URL.
    #[error("BENCH_HTTP_URL {url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// What was given, its password masked.
        url: String,
    },
    /// The HTTP client could not be made (TLS setup).
    #[error("the HTTP client for BENCH_HTTP_URL could not be made: {0}")]
    Client(#[from] reqwest::Error),
}

/// The bench's web server at a base URL.
#[derive(Clone)]
pub struct FrappeHttp {
    base: Url,
    client: reqwest::Client,
}

impl FrappeHttp {
    /// The web server at `url` (`http://127.0.0.1:8000`, `http://frontend:8080`).
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let base = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| ConfigError::BadUrl {
                url: step_runtime::redact::redact_url(url),
            })?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self { base, client })
    }

    fn user_url(&self, email: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["api", "resource", "User", email]);
        }
        url
    }
}

impl SitePasswords for FrappeHttp {
    async fn set_password(
        &self,
        site: &str,
        email: &str,
        token: ApiToken<'_>,
        password: &SecretString,
    ) -> Result<(), StepError> {
        let mut authorization = HeaderValue::from_str(&format!(
            "token {}:{}",
            token.key,
            token.secret.expose_secret()
        ))
        .map_err(|_| {
            StepError::permanent(
                "site_auth_refused",
                "the API token is not a valid header value",
            )
        })?;
        authorization.set_sensitive(true);
        let url = self.user_url(email);
        tracing::info!(%url, site, "setting the admin user's password over the site's http api");
        let response = self
            .client
            .put(url)
            .header(HOST, site)
            .header("X-Frappe-Site-Name", site)
            .header(AUTHORIZATION, authorization)
            .json(&serde_json::json!({ "new_password": password.expose_secret() }))
            .send()
            .await
            .map_err(|e| {
                StepError::transient(
                    "site_unreachable",
                    format!(
                        "the bench's web server at {} did not answer for {site}: {}",
                        step_runtime::redact::redact_url(self.base.as_str()),
                        e.without_url()
                    ),
                )
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(refusal(status, &body, site, email, password))
    }
}

/// What a refused request means for the step.
fn refusal(
    status: StatusCode,
    body: &str,
    site: &str,
    email: &str,
    password: &SecretString,
) -> StepError {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let exc_type = json["exc_type"].as_str().unwrap_or_default();
    // Frappe's own words, with the password masked should a message ever quote it.
    let said = frappe_message(&json).map(|m| {
        let secret = password.expose_secret();
        if secret.is_empty() {
            m
        } else {
            m.replace(secret, "***")
        }
    });
    let said_or = |fallback: &str| said.clone().unwrap_or_else(|| fallback.to_string());
    match status.as_u16() {
        417 if exc_type == "ValidationError" => StepError::permanent(
            "invalid_password",
            format!(
                "{site} refused the chosen password for {email} under its password policy: {}",
                said_or("no reason given").trim()
            ),
        ),
        401 => StepError::permanent(
            "site_auth_refused",
            format!("{site} refused the API token of {email} (401 {exc_type}); the user's keys may have been revoked"),
        ),
        403 => StepError::permanent(
            "site_permission_denied",
            format!("{site} did not let {email} change its own password (403 {exc_type})"),
        ),
        404 if json.is_null() => StepError::permanent(
            "site_not_served",
            format!("the bench's web server does not serve {site} (404): check BENCH_HTTP_URL"),
        ),
        429 => StepError::transient(
            "site_busy",
            format!("{site} asked to slow down (429) while setting the password"),
        ),
        code if code >= 500 => StepError::transient(
            "site_http_error",
            format!("{site} failed setting the password ({status} {exc_type}): {}", said_or("")),
        ),
        _ => StepError::permanent(
            "site_http_error",
            format!("{site} refused setting the password ({status} {exc_type}): {}", said_or("")),
        ),
    }
}

/// The first message of a Frappe error: `_server_messages` (a JSON list of JSON
/// strings, each with `message`), else `message`, else `exception`.
fn frappe_message(json: &serde_json::Value) -> Option<String> {
    let from_server_messages = json["_server_messages"]
        .as_str()
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .and_then(|list| {
            list.iter()
                .filter_map(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                .find_map(|m| m["message"].as_str().map(str::to_string))
        });
    from_server_messages
        .or_else(|| json["message"].as_str().map(str::to_string))
        .or_else(|| json["exception"].as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> StepError {
        let password = SecretString::from("Pw-in-the-message-1".to_string());
        refusal(
            StatusCode::from_u16(status).expect("status"),
            body,
            "s.test",
            "a@b.co",
            &password,
        )
    }

    #[test]
    fn refusals_are_classified_with_frappes_words_and_never_the_password() {
        let weak = serde_json::json!({
            "exc_type": "ValidationError",
            "_server_messages": serde_json::json!([serde_json::json!({
                "message": " Avoid sequences like abc or 6543 as they are easy to guess",
                "title": "Invalid Password",
            }).to_string()]).to_string(),
        });
        let error = classify(417, &weak.to_string());
        assert!(
            matches!(&error, StepError::Permanent { code, message }
                if code == "invalid_password" && message.ends_with("policy: Avoid sequences like abc or 6543 as they are easy to guess")),
            "{error:?}"
        );
        let quoting = serde_json::json!({"exc_type": "ValidationError", "message": "bad Pw-in-the-message-1"});
        let error = classify(417, &quoting.to_string());
        assert!(
            !error.to_string().contains("Pw-in-the-message-1"),
            "{error}"
        );

        let code = |e: StepError| match e {
            StepError::Permanent { code, .. } => (true, code),
            StepError::Transient { code, .. } => (false, code),
        };
        let frappe = |t: &str| serde_json::json!({ "exc_type": t }).to_string();
        assert_eq!(
            code(classify(401, &frappe("AuthenticationError"))),
            (true, "site_auth_refused".into())
        );
        assert_eq!(
            code(classify(403, &frappe("PermissionError"))),
            (true, "site_permission_denied".into())
        );
        assert_eq!(
            code(classify(404, "<html>Not Found</html>")),
            (true, "site_not_served".into())
        );
        assert_eq!(code(classify(429, "")), (false, "site_busy".into()));
        assert_eq!(
            code(classify(502, "<html>Bad Gateway</html>")),
            (false, "site_http_error".into())
        );
        assert_eq!(
            code(classify(500, &frappe("QueryTimeoutError"))),
            (false, "site_http_error".into())
        );
    }

    #[test]
    fn urls_name_the_user_and_keep_the_base_path() {
        let http = FrappeHttp::new("http://frontend:8080").expect("url");
        assert_eq!(
            http.user_url("a+b@c.io").as_str(),
            "http://frontend:8080/api/resource/User/a+b@c.io"
        );
        let prefixed = FrappeHttp::new("http://h:1/frappe/").expect("url");
        assert_eq!(
            prefixed.user_url("a@b.co").as_str(),
            "http://h:1/frappe/api/resource/User/a@b.co"
        );
        assert!(FrappeHttp::new("frontend:8080").is_err());
        assert!(FrappeHttp::new("ftp://x").is_err());
    }
}
