//! The `v1` format, kept so values sealed before the HPKE format still open: `v1:` +
//! standard base64 of `nonce (12 random bytes) || AES-256-GCM(ciphertext || 16-byte
//! tag)`, no associated data, key = the 32 bytes of `SAGA_SECRETS_KEY` (standard
//! base64). New values are never sealed this way; give the old key to a [`Keyring`]
//! (`with_legacy`) until no `v1:` value is left, then drop it.
//!
//! [`Keyring`]: crate::Keyring

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use contracts::Sealed;
use rand::RngCore;
use secrecy::SecretString;

use crate::Error;

pub(crate) const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// The symmetric key of the `v1` format. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct LegacyKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LegacyKey(..)")
    }
}

impl LegacyKey {
    /// Reads a key from standard base64 (as in `SAGA_SECRETS_KEY`).
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::BadKey(
                "SAGA_SECRETS_KEY (the legacy key) must be 32 bytes encoded as standard base64"
                    .into(),
            )
        };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad())?;
        Ok(Self { cipher })
    }

    /// A fresh random key, as standard base64 (for tests of the migration).
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// Seals a secret in the `v1` format. Only to make old values in tests and
    /// migrations: services seal with [`Keyring`](crate::Keyring).
    pub fn seal(&self, secret: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            // AES-GCM encryption fails only for inputs beyond 64 GiB.
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Sealed(format!("{PREFIX}{}", STANDARD.encode(blob)))
    }

    /// Opens a sealed secret.
    pub fn open(&self, sealed: &Sealed) -> Result<SecretString, Error> {
        let body = sealed.0.strip_prefix(PREFIX).ok_or(Error::Malformed)?;
        let blob = STANDARD.decode(body).map_err(|_| Error::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(Error::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let clear = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| Error::CannotOpen)?;
        let text = String::from_utf8(clear).map_err(|_| Error::Malformed)?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn seal_and_open_round_trip() {
        let key = LegacyKey::from_base64(&LegacyKey::generate_base64()).expect("key");
        let sealed = key.seal("TestPass123!");
        assert!(sealed.0.starts_with("v1:"));
        assert!(!sealed.0.contains("TestPass123!"));
        assert_ne!(sealed, key.seal("TestPass123!"), "nonce must be fresh");
        assert_eq!(
            key.open(&sealed).expect("opens").expose_secret(),
            "TestPass123!"
        );
    }

    #[test]
    fn wrong_key_and_tampering_are_refused() {
        let key = LegacyKey::from_base64(&LegacyKey::generate_base64()).expect("key");
        let other = LegacyKey::from_base64(&LegacyKey::generate_base64()).expect("key");
        let sealed = key.seal("x");
        assert!(matches!(other.open(&sealed), Err(Error::CannotOpen)));
        let mut bytes = STANDARD.decode(&sealed.0[3..]).expect("b64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = Sealed(format!("v1:{}", STANDARD.encode(bytes)));
        assert!(matches!(key.open(&tampered), Err(Error::CannotOpen)));
        assert!(matches!(
            key.open(&Sealed("plain".into())),
            Err(Error::Malformed)
        ));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(LegacyKey::from_base64("short").is_err());
        assert!(LegacyKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = LegacyKey::from_base64(&LegacyKey::generate_base64()).expect("key");
        assert_eq!(format!("{key:?}"), "LegacyKey(..)");
    }
}
