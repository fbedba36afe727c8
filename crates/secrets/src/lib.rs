//! Secrets that must never be seen: sealing for the bus and the stores, and generation.
//!
//! Secrets are sealed with HPKE (RFC 9180) to the public key of whoever must open them,
//! so a party that only seals (the web app sealing a signup's password, a step sealing
//! the API secret for the web app) never holds a key that opens anything but its own.
//! Two key pairs take part:
//! - the services' key ([`Keyring`] from `SAGA_SECRETS_KEYS`, held by the orchestrator
//!   and the step services): database passwords, the stored admin password, the site's
//!   Administrator password, and the password a signup carries;
//! - the web app's key (its public half, [`Recipient`] from `WEB_APP_PUBLIC_KEY`, held by
//!   the user step): the new admin's API secret, which only the web app opens.
//!
//! Format of a sealed value (see [`contracts::Sealed`]), `v2`:
//! `v2:<key id>:` + standard base64 of `enc (32 bytes) || ciphertext and 16-byte tag`,
//! where `enc, ciphertext = SealBase(pkR, info, aad, secret)` with the suite
//! DHKEM(X25519, HKDF-SHA256) (KEM 0x0020), HKDF-SHA256 (KDF 0x0001), AES-256-GCM
//! (AEAD 0x0002), `info` = ASCII `tenant-saga secrets v2`, and `aad` = ASCII
//! `<saga id>/<field>` (the saga's UUID in lowercase with hyphens; the field as
//! [`Field::as_str`] spells it). The associated data binds a value to its saga and
//! field: moved to another saga or field, it no longer opens. The key id names the key
//! pair so keys can be rotated: a keyring opens every id it holds and seals with its
//! first. Any HPKE library opens these values.
//!
//! Values sealed before (`v1:`, AES-256-GCM under the symmetric `SAGA_SECRETS_KEY`)
//! still open when that key is given as the keyring's legacy key ([`legacy`]).
//!
//! Besides: password generation, and the tenant sites' password policy
//! ([`password_policy`]), which the orchestrator checks signups against and `sagactl`
//! its test signups' passwords.

pub mod legacy;
pub mod password_policy;
mod sealing;

pub use sealing::{Binding, Field, KeyId, Keyring, Recipient};

use rand::Rng;
pub use secrecy::{ExposeSecret, SecretString};

/// What can go wrong with keys and sealed values. Never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key list or key is not written as expected; says which and how to fix it.
    #[error("{0}")]
    BadKey(String),
    /// The value is not a sealed value of a known format.
    #[error("sealed value is malformed")]
    Malformed,
    /// The value was sealed with a key id the keyring does not hold (retired too early,
    /// or a keyring from another deployment).
    #[error("sealed value names key id {0:?}, which is not in this keyring")]
    UnknownKey(String),
    /// A `v1:` value and no legacy key to open it.
    #[error(
        "sealed value is in the v1 format and no SAGA_SECRETS_KEY (legacy key) is set to open it"
    )]
    NoLegacyKey,
    /// The key does not open it: tampered, sealed to another key under the same id, or
    /// moved to another saga or field.
    #[error(
        "sealed value cannot be opened: wrong key, tampered, or sealed for another saga or field"
    )]
    CannotOpen,
}

/// A random password of `len` characters from `[A-Za-z0-9]`: strong, and free of the
/// `'`, `\` and `"` that Frappe would interpolate into SQL unescaped.
pub fn generate_password(len: usize) -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    let text: String = (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    SecretString::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_hidden_from_debug() {
        let password = generate_password(24);
        assert_eq!(password.expose_secret().len(), 24);
        assert!(password
            .expose_secret()
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        assert!(!format!("{password:?}").contains(password.expose_secret()));
    }
}
