//! `tenant.signup.requested`: the signup event and the rules it must satisfy.

pub use crate::dead_letter::DeadLetter;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Shortest subdomain the contract accepts.
pub const SUBDOMAIN_MIN_LEN: usize = 3;
/// Longest subdomain the contract accepts.
pub const SUBDOMAIN_MAX_LEN: usize = 32;

/// Subdomains kept for the platform itself.
pub const RESERVED_SUBDOMAINS: &[&str] = &[
    "www",
    "admin",
    "api",
    "mail",
    "erp",
    "app",
    "apps",
    "assets",
    "auth",
    "billing",
    "blog",
    "cdn",
    "console",
    "dashboard",
    "docs",
    "frappe",
    "ftp",
    "help",
    "imap",
    "login",
    "master",
    "ns1",
    "ns2",
    "pop",
    "portal",
    "root",
    "signup",
    "smtp",
    "static",
    "status",
    "support",
    "system",
];

/// How the admin signed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthProvider {
    /// Email and password: `admin_password` is required.
    Password,
    /// Google sign-in: no password is sent, one is generated.
    Google,
}

/// A signup as the web app publishes it (contract v1).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SignupRequested {
    /// UUID chosen by the client; it becomes the saga id. The same id again is the same request.
    pub signup_id: Uuid,
    /// The customer's organization, shown in the workspace.
    pub organization_name: String,
    /// Wanted subdomain; derived from `organization_name` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// Email of the workspace's first System Manager.
    pub admin_email: String,
    /// Full name of that user.
    pub admin_full_name: String,
    /// Password of that user in clear; absent for Google sign-in (then generated).
    /// Kept for older clients: prefer `admin_password_sealed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// The same password sealed to the orchestrator's public key (`SAGA_PUBLIC_KEY`),
    /// bound to this `signup_id` and the field `admin_password` (README, "Sealed
    /// values"), so it never rests in clear on the bus. Give this or `admin_password`,
    /// not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_sealed: Option<crate::Sealed>,
    /// `password` or `google`; inferred from `admin_password` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_provider: Option<AuthProvider>,
    /// When the user pressed the button.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A signup that passed every rule that needs no lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidSignup {
    /// The saga id.
    pub signup_id: Uuid,
    /// Trimmed organization name.
    pub organization_name: String,
    /// Valid, not reserved subdomain (given or derived).
    pub subdomain: String,
    /// Lowercased admin email.
    pub admin_email: String,
    /// Trimmed full name.
    pub admin_full_name: String,
    /// The password, present when the provider is `password`.
    pub admin_password: Option<SignupPassword>,
    /// The provider, inferred when it was absent.
    pub auth_provider: AuthProvider,
}

/// The password a signup carries, as it came. Its `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub enum SignupPassword {
    /// Sent in clear by an older client (length and characters already checked).
    Clear(String),
    /// Sealed by the client to the orchestrator's key: only the orchestrator opens it
    /// (and then checks it with [`check_password`]).
    Sealed(crate::Sealed),
}

impl std::fmt::Debug for SignupPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Clear(_) => f.write_str("Clear(..)"),
            Self::Sealed(_) => f.write_str("Sealed(..)"),
        }
    }
}

/// Why a signup was refused before anything was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable code, such as `invalid_email` or `subdomain_taken`.
    pub code: &'static str,
    /// A sentence a person understands.
    pub message: String,
}

impl Rejection {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What could be read from the bytes on the signup subject.
#[derive(Debug)]
pub enum ParsedSignup {
    /// Not even a signup id could be read: the message belongs in the dead-letter subject.
    Unreadable {
        /// The parse error, free of the message's content.
        error: String,
    },
    /// A signup id was read; the rest may still be invalid.
    Read {
        /// The signup id (= saga id).
        signup_id: Uuid,
        /// The validated signup, or why it is refused.
        outcome: Result<ValidSignup, Rejection>,
    },
}

/// Parses and validates a signup payload. Never panics, whatever the bytes.
pub fn parse_signup(payload: &[u8]) -> ParsedSignup {
    let value: serde_json::Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            return ParsedSignup::Unreadable {
                error: format!("payload is not JSON: {e}"),
            }
        }
    };
    let Some(object) = value.as_object() else {
        return ParsedSignup::Unreadable {
            error: "payload is not a JSON object".into(),
        };
    };
    let signup_id = match object.get("signup_id").and_then(|v| v.as_str()) {
        Some(s) => match Uuid::parse_str(s) {
            Ok(id) => id,
            Err(_) => {
                return ParsedSignup::Unreadable {
                    error: "signup_id is not a UUID".into(),
                }
            }
        },
        None => {
            return ParsedSignup::Unreadable {
                error: "signup_id is missing or not a string".into(),
            }
        }
    };
    let outcome = serde_json::from_value::<SignupRequested>(value)
        .map_err(|e| describe_serde_error(&e))
        .and_then(validate);
    ParsedSignup::Read { signup_id, outcome }
}

fn describe_serde_error(e: &serde_json::Error) -> Rejection {
    let text = e.to_string();
    if let Some(field) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return Rejection::new("missing_field", format!("{field} is required"));
    }
    // serde's messages name the field and the expected type, never the value's content
    // beyond short enum variants, so they are safe to show.
    Rejection::new(
        "invalid_payload",
        format!("the signup is malformed: {text}"),
    )
}

/// Checks every rule of the contract that needs no lookup.
pub fn validate(signup: SignupRequested) -> Result<ValidSignup, Rejection> {
    let organization_name = signup.organization_name.trim().to_string();
    if organization_name.is_empty() {
        return Err(Rejection::new(
            "missing_field",
            "organization_name must not be empty",
        ));
    }
    if organization_name.chars().count() > 140 {
        return Err(Rejection::new(
            "invalid_organization_name",
            "organization_name is longer than 140 characters",
        ));
    }
    let admin_full_name = signup.admin_full_name.trim().to_string();
    if admin_full_name.is_empty() {
        return Err(Rejection::new(
            "missing_field",
            "admin_full_name must not be empty",
        ));
    }
    if admin_full_name.chars().count() > 140 {
        return Err(Rejection::new(
            "invalid_full_name",
            "admin_full_name is longer than 140 characters",
        ));
    }
    let admin_email = signup.admin_email.trim().to_ascii_lowercase();
    if !is_valid_email(&admin_email) {
        return Err(Rejection::new(
            "invalid_email",
            format!(
                "\"{}\" is not a valid email address",
                signup.admin_email.trim()
            ),
        ));
    }
    let password = match (signup.admin_password, signup.admin_password_sealed) {
        (Some(_), Some(_)) => {
            return Err(Rejection::new(
                "invalid_password",
                "give admin_password_sealed or admin_password, not both",
            ))
        }
        (Some(clear), None) => Some(SignupPassword::Clear(clear)),
        (None, Some(sealed)) => Some(SignupPassword::Sealed(sealed)),
        (None, None) => None,
    };
    let auth_provider = signup.auth_provider.unwrap_or(if password.is_some() {
        AuthProvider::Password
    } else {
        AuthProvider::Google
    });
    let admin_password = match (auth_provider, password) {
        (AuthProvider::Password, None) => {
            return Err(Rejection::new(
                "missing_field",
                "admin_password_sealed (or admin_password) is required when auth_provider is \"password\"",
            ))
        }
        (AuthProvider::Password, Some(SignupPassword::Clear(p))) => {
            check_password(&p)?;
            Some(SignupPassword::Clear(p))
        }
        (AuthProvider::Password, Some(sealed)) => Some(sealed),
        // A Google sign-up never carries a usable password: one is generated later.
        (AuthProvider::Google, _) => None,
    };
    let subdomain = match signup.subdomain {
        Some(s) => {
            let s = s.trim().to_string();
            check_subdomain(&s)?;
            s
        }
        None => {
            let derived = derive_subdomain(&organization_name);
            check_subdomain(&derived).map_err(|_| {
                Rejection::new(
                    "invalid_subdomain",
                    format!(
                        "no valid subdomain can be derived from \"{organization_name}\"; please choose one"
                    ),
                )
            })?;
            derived
        }
    };
    Ok(ValidSignup {
        signup_id: signup.signup_id,
        organization_name,
        subdomain,
        admin_email,
        admin_full_name,
        admin_password,
        auth_provider,
    })
}

/// Splits a full name into first and last name at the first space, as the admin user
/// is made on the site (`add-system-manager --first-name F --last-name L`); the
/// password check passes the same names to zxcvbn as Frappe does.
pub fn split_full_name(full: &str) -> (String, Option<String>) {
    match full.trim().split_once(char::is_whitespace) {
        Some((first, last)) if !last.trim().is_empty() => {
            (first.to_string(), Some(last.trim().to_string()))
        }
        _ => (full.trim().to_string(), None),
    }
}

/// The contract's rules for a password's form (length, no control characters); the
/// orchestrator applies them to a sealed password once it has opened it.
pub fn check_password(password: &str) -> Result<(), Rejection> {
    let len = password.chars().count();
    if len < 8 {
        return Err(Rejection::new(
            "invalid_password",
            "admin_password must have at least 8 characters",
        ));
    }
    if len > 128 {
        return Err(Rejection::new(
            "invalid_password",
            "admin_password must have at most 128 characters",
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(Rejection::new(
            "invalid_password",
            "admin_password must not contain control characters",
        ));
    }
    Ok(())
}

fn is_valid_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Checks a subdomain against the contract: `^[a-z0-9][a-z0-9-]*[a-z0-9]$`,
/// 3 to 32 characters, not reserved.
pub fn check_subdomain(subdomain: &str) -> Result<(), Rejection> {
    let len = subdomain.len();
    let charset_ok = subdomain
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ends_ok = !subdomain.starts_with('-') && !subdomain.ends_with('-');
    if !charset_ok || !ends_ok || !(SUBDOMAIN_MIN_LEN..=SUBDOMAIN_MAX_LEN).contains(&len) {
        return Err(Rejection::new(
            "invalid_subdomain",
            format!(
                "\"{subdomain}\" is not a valid subdomain: use {SUBDOMAIN_MIN_LEN} to {SUBDOMAIN_MAX_LEN} lowercase letters, digits or hyphens, starting and ending with a letter or digit"
            ),
        ));
    }
    if RESERVED_SUBDOMAINS.contains(&subdomain) {
        return Err(Rejection::new(
            "reserved_subdomain",
            format!("\"{subdomain}\" is reserved; please choose another subdomain"),
        ));
    }
    Ok(())
}

/// Derives a subdomain from an organization name: lowercase ASCII letters and digits,
/// every other run of characters becomes one hyphen, trimmed to 32 characters.
pub fn derive_subdomain(organization_name: &str) -> String {
    let mut out = String::new();
    for c in organization_name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(SUBDOMAIN_MAX_LEN);
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests;
