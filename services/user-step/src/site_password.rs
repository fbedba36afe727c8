//! Setting the admin user's login password on its site, without a command line.
//!
//! bench writes every command line to `logs/bench.log` and shows it in `ps`, so the
//! chosen password never goes through bench: the user is made with a throwaway
//! password, then the chosen one is set through the site's own HTTP API with the
//! user's API token (`PUT /api/resource/User/<email>`, dev/bench-emulator/FACTS.md),
//! which also ends the throwaway's use. The port is named for that need;
//! [`crate::frappe_http`] is its adapter.

use std::future::Future;

use secrets::SecretString;
use step_runtime::StepError;

/// A user's API token, `token <key>:<secret>`.
pub struct ApiToken<'a> {
    /// `api_key`.
    pub key: &'a str,
    /// `api_secret`.
    pub secret: &'a SecretString,
}

/// Sets login passwords on the bench's sites.
pub trait SitePasswords: Send + Sync + 'static {
    /// Sets `email`'s login password on `site` to `password`, acting as the holder of
    /// `token`. Errors: `invalid_password` (permanent, the site's password policy
    /// refused it, with the site's advice), refused credentials (permanent), the site
    /// unreachable or failing (transient). No error text holds the password or the
    /// token.
    fn set_password(
        &self,
        site: &str,
        email: &str,
        token: ApiToken<'_>,
        password: &SecretString,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
}
