//! The registration step: the tenant recorded in the Master site's `SaaS Tenant`
//! DocType through Frappe's REST API.
//!
//! `POST <master>/api/resource/<doctype>` with `Authorization: token <key>:<secret>` and
//! `X-Frappe-Site-Name: <master site>`, the record named by the subdomain. A 409 means the
//! name is taken: read it back; this saga's record is success, another's is a
//! permanent failure. 401/403/417 are permanent, with Frappe's own message taken from
//! `_server_messages`; 429, 5xx and connection errors are transient.
//! Undo: `DELETE` the record if it is this saga's (404 = already gone).
//! Probe (`saga.probe.registration`): a subdomain with a record is held by "a
//! registered tenant" (GET 200), free on Frappe's 404; anything else means the step
//! cannot tell.

mod settings;

use std::time::Duration;

use contracts::{StepCommand, SubdomainProbe};
use secrets::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use step_runtime::{Step, StepContext, StepError};

pub use settings::Missing;

/// How to reach the Master site.
#[derive(Clone)]
pub struct Master {
    /// `MASTER_SITE_URL`, such as `https://master.example.com`.
    pub url: String,
    /// `MASTER_SITE_NAME`, sent as `X-Frappe-Site-Name`.
    pub site_name: String,
    /// `MASTER_API_KEY`.
    pub api_key: String,
    /// `MASTER_API_SECRET`.
    pub api_secret: SecretString,
    /// `MASTER_TENANT_DOCTYPE` (default `SaaS Tenant`).
    pub doctype: String,
}

/// Shows neither the API key nor its secret, nor a password in the URL.
impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("url", &step_runtime::redact::redact_url(&self.url))
            .field("site_name", &self.site_name)
            .field("doctype", &self.doctype)
            .finish_non_exhaustive()
    }
}

/// The `registration` step.
pub struct RegistryStep {
    master: Master,
    http: reqwest::Client,
}

/// Frappe's message from an error body: `_server_messages` (a JSON string holding a list
/// of JSON strings, each with `message`), else `exception`, else `exc_type`.
pub fn frappe_message(body: &Value) -> Option<String> {
    let from_server_messages = body
        .get("_server_messages")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .map(|items| {
            items
                .iter()
                .filter_map(|item| serde_json::from_str::<Value>(item).ok())
                .filter_map(|m| m.get("message").and_then(Value::as_str).map(strip_html))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty());
    from_server_messages
        .or_else(|| {
            body.get("exception")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            body.get("exc_type")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

fn strip_html(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

impl RegistryStep {
    /// A step talking to `master` with a client that times out.
    pub fn new(master: Master) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { master, http })
    }

    fn resource(&self, name: Option<&str>) -> String {
        let doctype = self.master.doctype.replace(' ', "%20");
        let base = format!(
            "{}/api/resource/{doctype}",
            self.master.url.trim_end_matches('/')
        );
        match name {
            Some(n) => format!("{base}/{n}"),
            None => base,
        }
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(
                "Authorization",
                format!(
                    "token {}:{}",
                    self.master.api_key,
                    self.master.api_secret.expose_secret()
                ),
            )
            .header("X-Frappe-Site-Name", &self.master.site_name)
            .header("Accept", "application/json")
    }

    /// Sends a request; maps transport errors and statuses to the step's policy.
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(u16, Value), StepError> {
        let response = builder.send().await.map_err(|e| {
            StepError::transient(
                "master_unreachable",
                format!(
                    "{what}: the Master site is unreachable: {}",
                    without_url(&e)
                ),
            )
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn failure(&self, what: &str, status: u16, body: &Value) -> StepError {
        let message = frappe_message(body).unwrap_or_else(|| format!("HTTP {status}"));
        let text = format!("{what}: Master answered {status}: {message}");
        match status {
            401 | 403 | 417 => StepError::permanent("master_refused", text),
            404 if body.is_null() => StepError::permanent(
                "master_site_unknown",
                format!(
                    "{what}: no site {} at {} (404)",
                    self.master.site_name, self.master.url
                ),
            ),
            429 | 500..=599 => StepError::transient("master_unavailable", text),
            _ => StepError::permanent("master_refused", text),
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Value>, StepError> {
        let (status, body) = self
            .send(
                self.request(reqwest::Method::GET, self.resource(Some(name))),
                "reading the tenant record",
            )
            .await?;
        match status {
            200 => Ok(body.get("data").cloned()),
            404 if !body.is_null() => Ok(None),
            _ => Err(self.failure("reading the tenant record", status, &body)),
        }
    }
}

/// reqwest's errors name the URL; ours is not secret, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text.replace("()", "").replace("  ", " ").trim().to_string()
}

impl Step for RegistryStep {
    fn name(&self) -> &str {
        "registration"
    }

    async fn holds(&self, probe: &SubdomainProbe) -> Result<Option<String>, StepError> {
        Ok(self
            .read(&probe.subdomain)
            .await?
            .map(|_| "a registered tenant".to_string()))
    }

    async fn execute(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<Value, StepError> {
        let tenant = &command.tenant;
        let saga = command.saga_id.to_string();
        let record = json!({
            "name": tenant.subdomain,
            "subdomain": tenant.subdomain,
            "site_name": tenant.site_name,
            "organization_name": tenant.organization_name,
            "admin_email": tenant.admin_email,
            "status": "Active",
            "saga_id": saga,
        });
        let (status, body) = self
            .send(
                self.request(reqwest::Method::POST, self.resource(None))
                    .json(&record),
                "creating the tenant record",
            )
            .await?;
        match status {
            200 | 201 => {}
            409 => match self.read(&tenant.subdomain).await? {
                Some(existing)
                    if existing.get("saga_id").and_then(Value::as_str) == Some(saga.as_str()) =>
                {
                    context
                        .output(
                            format!(
                                "Tenant {} was already registered by this signup",
                                tenant.subdomain
                            ),
                            Some(100),
                        )
                        .await;
                }
                Some(existing) => {
                    let other = existing
                        .get("saga_id")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown");
                    return Err(StepError::permanent("tenant_registered", format!("the Master site already has a tenant {} (saga {other}); it was left untouched", tenant.subdomain)));
                }
                None => {
                    return Err(StepError::transient(
                        "master_inconsistent",
                        "the Master site answered 409 but has no such record; retrying",
                    ))
                }
            },
            _ => return Err(self.failure("creating the tenant record", status, &body)),
        }
        context
            .output(
                format!(
                    "Tenant {} registered on {}",
                    tenant.subdomain, self.master.site_name
                ),
                Some(100),
            )
            .await;
        Ok(json!({ "record": tenant.subdomain, "doctype": self.master.doctype }))
    }

    async fn compensate(
        &self,
        command: &StepCommand,
        context: &StepContext,
    ) -> Result<(), StepError> {
        let name = &command.tenant.subdomain;
        let saga = command.saga_id.to_string();
        match self.read(name).await? {
            Some(existing)
                if existing.get("saga_id").and_then(Value::as_str) == Some(saga.as_str()) => {}
            Some(_) => {
                context
                    .output(
                        format!("Tenant record {name} is not this signup's: left untouched"),
                        None,
                    )
                    .await;
                return Ok(());
            }
            None => return Ok(()),
        }
        let (status, body) = self
            .send(
                self.request(reqwest::Method::DELETE, self.resource(Some(name))),
                "deleting the tenant record",
            )
            .await?;
        match status {
            200 | 202 | 204 => {
                context
                    .output(format!("Removed tenant record {name}"), None)
                    .await;
                Ok(())
            }
            404 if !body.is_null() => Ok(()),
            _ => Err(self.failure("deleting the tenant record", status, &body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frappe_error_messages() {
        let body = json!({
            "exc_type": "ValidationError",
            "_server_messages": "[\"{\\\"message\\\": \\\"Value missing for <strong>Site Name</strong>\\\", \\\"title\\\": \\\"Message\\\"}\"]"
        });
        assert_eq!(
            frappe_message(&body).as_deref(),
            Some("Value missing for Site Name")
        );
        assert_eq!(
            frappe_message(&json!({"exc_type": "DoesNotExistError"})).as_deref(),
            Some("DoesNotExistError")
        );
        assert_eq!(frappe_message(&Value::Null), None);
    }
}
