//! A test signup: the admin's password from `SAGACTL_SIGNUP_PASSWORD` or generated,
//! held to the sites' password policy before anything is sent, never printed; sealed
//! to the services' key as the web app seals it when it goes over NATS.

use contracts::signup::AuthProvider;
use contracts::SignupRequested;
use secrets::password_policy::{check_password_strength, PasswordOwner};
use secrets::{Binding, ExposeSecret as _, Field, Recipient, SecretString};
use uuid::Uuid;

use crate::cli::SignupArgs;
use crate::error::Error;

/// Where a chosen password comes from (never an argument: it would show in `ps`).
pub const PASSWORD_VARIABLE: &str = "SAGACTL_SIGNUP_PASSWORD";

/// How long a generated password is.
const GENERATED_LENGTH: usize = 20;

/// A signup to send.
pub struct TestSignup {
    /// Its id (over NATS; over HTTP the orchestrator derives the saga's).
    pub signup_id: Uuid,
    organization_name: String,
    subdomain: Option<String>,
    admin_email: String,
    admin_full_name: String,
    password: SecretString,
}

impl TestSignup {
    /// The signup the arguments describe, with its password (the variable's, else a
    /// generated one), held to the sites' password policy.
    pub fn new(args: &SignupArgs) -> Result<Self, Error> {
        let owner = PasswordOwner {
            full_name: &args.name,
            email: &args.email,
        };
        let password = match std::env::var(PASSWORD_VARIABLE) {
            Ok(chosen) if !chosen.is_empty() => {
                check_password_strength(&chosen, owner).map_err(|r| {
                    Error::Usage(format!(
                        "{PASSWORD_VARIABLE} is refused by the sites' password policy: {}",
                        r.message
                    ))
                })?;
                SecretString::from(chosen)
            }
            _ => loop {
                // Random letters and digits of this length pass at once; the check
                // keeps that promise whatever the name and email.
                let generated = secrets::generate_password(GENERATED_LENGTH);
                if check_password_strength(generated.expose_secret(), owner).is_ok() {
                    break generated;
                }
            },
        };
        Ok(Self {
            signup_id: Uuid::new_v4(),
            organization_name: args.org.clone(),
            subdomain: args.subdomain.clone(),
            admin_email: args.email.clone(),
            admin_full_name: args.name.clone(),
            password,
        })
    }

    /// The signup as the web app publishes it: the password sealed to the services'
    /// public key, bound to this signup.
    pub fn sealed_for(&self, services: &Recipient) -> SignupRequested {
        let binding = Binding::new(self.signup_id, Field::AdminPassword);
        SignupRequested {
            signup_id: self.signup_id,
            organization_name: self.organization_name.clone(),
            subdomain: self.subdomain.clone(),
            admin_email: self.admin_email.clone(),
            admin_full_name: self.admin_full_name.clone(),
            admin_password: None,
            admin_password_sealed: Some(services.seal(self.password.expose_secret(), binding)),
            auth_provider: Some(AuthProvider::Password),
            requested_at: Some(chrono::Utc::now()),
        }
    }

    /// The body of `POST /api/v1/provision` (the orchestrator seals the password on
    /// arrival; the request is TLS's to protect on the way).
    pub fn provision_body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "organization_name": self.organization_name,
            "admin_email": self.admin_email,
            "password": self.password.expose_secret(),
            "full_name": self.admin_full_name,
        });
        if let Some(subdomain) = &self.subdomain {
            body["subdomain"] = subdomain.clone().into();
        }
        body
    }
}
