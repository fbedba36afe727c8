//! URLs that may carry a password (`mysql://user:password@host/db`): kept whole for
//! connecting, shown with the password masked wherever people may see them (`Debug`,
//! `Display`, logs, error texts).

use std::fmt;

/// What stands for a hidden password.
const MASK: &str = "***";

/// A URL whose password shows as `***` when formatted; [`SecretUrl::expose`] gives it
/// whole, for the connection only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password: pass it to the client that connects, nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl")
            .field(&redact_url(&self.0))
            .finish()
    }
}

impl fmt::Display for SecretUrl {
    /// The URL with its password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `url` with the password of its user part replaced by `***`; the user name, host,
/// path and query stay, so people can still tell which server is meant. A URL the
/// parser refuses (a password with a `/` in it, say) loses everything before its last
/// `@` instead: when in doubt, hide more.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some(MASK)) {
            Ok(()) => parsed.to_string(),
            Err(()) => mask_before_at(url),
        },
        // `user:secret@host` parses as scheme `user` with no authority at all.
        Ok(parsed) if parsed.cannot_be_a_base() => mask_before_at(url),
        // No password: shown as given (the parser would normalise it).
        Ok(_) => url.to_string(),
        Err(_) => mask_before_at(url),
    }
}

/// Everything between the scheme and the last `@` masked (all of it before the `@`
/// when there is no scheme); the text unchanged when it has no `@`.
fn mask_before_at(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    match url.find("://") {
        Some(scheme) if scheme < at => format!("{}://{MASK}@{}", &url[..scheme], &url[at + 1..]),
        _ => format!("{MASK}@{}", &url[at + 1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_masked_and_the_rest_kept() {
        assert_eq!(
            redact_url("mysql://saga:hunter22@db.internal:3306/saga?ssl-mode=required"),
            "mysql://saga:***@db.internal:3306/saga?ssl-mode=required"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1:3306"),
            "mysql://root@127.0.0.1:3306"
        );
        assert_eq!(
            redact_url("sqlite://data/orchestrator.db"),
            "sqlite://data/orchestrator.db"
        );
        // An `@` in the password is still the password's (the last `@` ends it).
        assert_eq!(redact_url("mysql://u:p@ss@h/db"), "mysql://u:***@h/db");
    }

    #[test]
    fn what_the_parser_refuses_is_masked_more() {
        // A `/` in the password ends the authority early: not a URL to the parser.
        let refused = "mysql://user:pa/ss:word@db/x";
        assert_eq!(redact_url(refused), "mysql://***@db/x");
        assert_eq!(redact_url("user:secret@host"), "***@host");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn formatting_never_shows_the_password() {
        let url = SecretUrl::new("mysql://saga:hunter22@db/saga");
        for shown in [format!("{url:?}"), format!("{url:#?}"), url.to_string()] {
            assert!(!shown.contains("hunter22"), "{shown}");
            assert!(shown.contains("db/saga"), "{shown}");
        }
        assert_eq!(url.expose(), "mysql://saga:hunter22@db/saga");
    }
}
