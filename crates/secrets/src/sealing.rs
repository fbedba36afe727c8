//! The `v2` format: HPKE (RFC 9180) base mode to a key pair named by a key id, with
//! associated data binding each value to its saga and field (the crate's docs give the
//! exact format).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use contracts::Sealed;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use secrecy::SecretString;
use uuid::Uuid;

use crate::legacy::LegacyKey;
use crate::Error;

type PrivateKey = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
type PublicKey = <X25519HkdfSha256 as hpke::Kem>::PublicKey;

const PREFIX: &str = "v2:";
const INFO: &[u8] = b"tenant-saga secrets v2";
/// X25519's encapsulated key.
const ENC_LEN: usize = 32;
/// AES-256-GCM's tag.
const TAG_LEN: usize = 16;

/// The operating system's randomness, as hpke's `rand_core` takes it (panics only when
/// the OS has none, as every key generation would).
fn os_rng() -> rand_core::UnwrapErr<rand_core::OsRng> {
    rand_core::UnwrapErr(rand_core::OsRng)
}

/// What a sealed value holds, bound into it so it cannot stand in for another field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The tenant admin's chosen password (the signup's, then the saga's).
    AdminPassword,
    /// The tenant database's password (db-step's output and ledger).
    DbPassword,
    /// The site's Administrator password (site-step).
    AdministratorPassword,
    /// The tenant admin's API secret, sealed to the web app.
    ApiSecret,
}

impl Field {
    /// The name in the associated data: `admin_password`, `db_password`,
    /// `administrator_password`, `api_secret`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminPassword => "admin_password",
            Self::DbPassword => "db_password",
            Self::AdministratorPassword => "administrator_password",
            Self::ApiSecret => "api_secret",
        }
    }
}

/// The saga and field a value belongs to: its associated data, `<saga id>/<field>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The saga (for a signup's password: its `signup_id`, which is the saga id).
    pub saga: Uuid,
    /// What the value is.
    pub field: Field,
}

impl Binding {
    /// The value `field` of saga `saga`.
    pub fn new(saga: Uuid, field: Field) -> Self {
        Self { saga, field }
    }

    fn aad(&self) -> Vec<u8> {
        format!("{}/{}", self.saga.hyphenated(), self.field.as_str()).into_bytes()
    }
}

/// A key pair's name: 1 to 32 of `[A-Za-z0-9._-]`, chosen by the operator (a date such
/// as `2026-12` reads well), carried in every sealed value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Checks the spelling.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let ok = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(Error::BadKey(format!(
                "key id {text:?} must be 1 to 32 of letters, digits, '.', '_' and '-'"
            )))
        }
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `<id>:<base64 of 32 bytes>`.
fn id_and_bytes(entry: &str, what: &str) -> Result<(KeyId, [u8; 32]), Error> {
    let (id, key) = entry.trim().split_once(':').ok_or_else(|| {
        Error::BadKey(format!(
            "{what} must be written `<key id>:<32 bytes in standard base64>`"
        ))
    })?;
    let id = KeyId::parse(id.trim())?;
    let bytes = STANDARD
        .decode(key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            Error::BadKey(format!(
                "{what} of key id {id}: the key must be 32 bytes in standard base64"
            ))
        })?;
    Ok((id, bytes))
}

/// Whom values are sealed to: a public key and its id (`WEB_APP_PUBLIC_KEY`, or a
/// keyring's current key). Sealing needs nothing else; opening needs the private key.
#[derive(Clone)]
pub struct Recipient {
    id: KeyId,
    key: PublicKey,
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.to_text())
    }
}

impl Recipient {
    /// Reads `<key id>:<standard base64 of the 32-byte X25519 public key>`.
    /// Refused: a key that is no X25519 public key, or one of low order (such as all
    /// zeros), to which nothing can be sealed.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (id, bytes) = id_and_bytes(text, "a public key")?;
        let key = PublicKey::from_bytes(&bytes)
            .map_err(|_| Error::BadKey(format!("public key {id} is not an X25519 key")))?;
        // HPKE refuses an encapsulation whose shared secret is all zeros, which a
        // low-order point gives: try one now rather than fail every seal later.
        let trial = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
            &OpModeS::Base,
            &key,
            INFO,
            b"",
            b"",
            &mut os_rng(),
        );
        if trial.is_err() {
            return Err(Error::BadKey(format!(
                "public key {id} is a low-order X25519 point: nothing can be sealed to it"
            )));
        }
        Ok(Self { id, key })
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// `<key id>:<base64 public key>`, as [`Recipient::parse`] reads it (not secret).
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.id, STANDARD.encode(self.key.to_bytes()))
    }

    /// Seals `secret` for `binding`, with a fresh ephemeral key.
    pub fn seal(&self, secret: &str, binding: Binding) -> Sealed {
        let (enc, ciphertext) =
            hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
                &OpModeS::Base,
                &self.key,
                INFO,
                secret.as_bytes(),
                &binding.aad(),
                &mut os_rng(),
            )
            // Encapsulation to a valid X25519 key and AES-GCM of a short secret cannot fail;
            // the key was checked when it was read.
            .expect("HPKE seal to a checked public key cannot fail");
        let mut blob = enc.to_bytes().to_vec();
        blob.extend_from_slice(&ciphertext);
        Sealed(format!("{PREFIX}{}:{}", self.id, STANDARD.encode(blob)))
    }
}

/// The private keys of one party (`SAGA_SECRETS_KEYS`), newest first: the first seals,
/// every one opens. Its `Debug` shows the key ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(KeyId, PrivateKey)>,
    current: Recipient,
    legacy: Option<LegacyKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("ids", &ids)
            .field("legacy", &self.legacy.is_some())
            .finish()
    }
}

impl Keyring {
    /// Reads a comma-separated list of `<key id>:<standard base64 of 32 random bytes>`
    /// (any 32 bytes are an X25519 private key: `openssl rand -base64 32` makes one).
    /// The first entry seals; ids must be distinct.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut keys: Vec<(KeyId, PrivateKey)> = Vec::new();
        for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
            let (id, bytes) = id_and_bytes(entry, "each entry of SAGA_SECRETS_KEYS")?;
            if keys.iter().any(|(known, _)| *known == id) {
                return Err(Error::BadKey(format!(
                    "SAGA_SECRETS_KEYS names key id {id} twice"
                )));
            }
            let key = PrivateKey::from_bytes(&bytes)
                .map_err(|_| Error::BadKey(format!("private key {id} is not an X25519 key")))?;
            keys.push((id, key));
        }
        let (id, first) = keys.first().ok_or_else(|| {
            Error::BadKey("SAGA_SECRETS_KEYS holds no key (`<key id>:<base64>`, ...)".into())
        })?;
        let current = Recipient {
            id: id.clone(),
            key: X25519HkdfSha256::sk_to_pk(first),
        };
        Ok(Self {
            keys,
            current,
            legacy: None,
        })
    }

    /// The services' keyring from the environment, through `lookup`:
    /// `SAGA_SECRETS_KEYS` (required), plus `SAGA_SECRETS_KEY`, the symmetric key of
    /// the `v1` format, when set (it then only opens values sealed before).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let text = lookup("SAGA_SECRETS_KEYS").ok_or_else(|| {
            Error::BadKey(
                "SAGA_SECRETS_KEYS is required: `<key id>:<32 random bytes in standard base64>`, \
                 for example `k1:$(openssl rand -base64 32)`, the same for the orchestrator \
                 and every step service"
                    .into(),
            )
        })?;
        let ring = Self::parse(&text)?;
        // Empty counts as unset: compose passes `${SAGA_SECRETS_KEY:-}` through.
        Ok(
            match lookup("SAGA_SECRETS_KEY").filter(|v| !v.trim().is_empty()) {
                Some(legacy) => ring.with_legacy(LegacyKey::from_base64(&legacy)?),
                None => ring,
            },
        )
    }

    /// A new random private key written as a keyring entry, `<id>:<base64>` (secret).
    pub fn generate_entry(id: &KeyId) -> SecretString {
        let (private, _) = X25519HkdfSha256::gen_keypair(&mut os_rng());
        SecretString::from(format!("{id}:{}", STANDARD.encode(private.to_bytes())))
    }

    /// A keyring of one new random key named `id` (tests, dev set-ups).
    pub fn random(id: &KeyId) -> Self {
        use secrecy::ExposeSecret as _;
        Self::parse(Self::generate_entry(id).expose_secret())
            .expect("a generated entry is well formed")
    }

    /// Also opens `v1:` values with the old symmetric key (`SAGA_SECRETS_KEY`).
    pub fn with_legacy(mut self, key: LegacyKey) -> Self {
        self.legacy = Some(key);
        self
    }

    /// Whom this keyring's values are sealed to: the first key's public half.
    pub fn recipient(&self) -> &Recipient {
        &self.current
    }

    /// The public halves of every key, first the one that seals (not secret).
    pub fn recipients(&self) -> Vec<Recipient> {
        self.keys
            .iter()
            .map(|(id, key)| Recipient {
                id: id.clone(),
                key: X25519HkdfSha256::sk_to_pk(key),
            })
            .collect()
    }

    /// Seals to this keyring's current key.
    pub fn seal(&self, secret: &str, binding: Binding) -> Sealed {
        self.current.seal(secret, binding)
    }

    /// Opens a value sealed to any key of this keyring for `binding` (or a `v1:` value
    /// with the legacy key, which binds nothing).
    pub fn open(&self, sealed: &Sealed, binding: Binding) -> Result<SecretString, Error> {
        if sealed.0.starts_with(crate::legacy::PREFIX) {
            return self.legacy.as_ref().ok_or(Error::NoLegacyKey)?.open(sealed);
        }
        let rest = sealed.0.strip_prefix(PREFIX).ok_or(Error::Malformed)?;
        let (id, body) = rest.split_once(':').ok_or(Error::Malformed)?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| known.as_str() == id)
            .ok_or_else(|| Error::UnknownKey(id.to_string()))?;
        let blob = STANDARD.decode(body).map_err(|_| Error::Malformed)?;
        if blob.len() < ENC_LEN + TAG_LEN {
            return Err(Error::Malformed);
        }
        let (enc, ciphertext) = blob.split_at(ENC_LEN);
        let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(enc)
            .map_err(|_| Error::Malformed)?;
        let clear = hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            key,
            &enc,
            INFO,
            ciphertext,
            &binding.aad(),
        )
        .map_err(|_| Error::CannotOpen)?;
        let text = String::from_utf8(clear).map_err(|_| Error::Malformed)?;
        Ok(SecretString::from(text))
    }

    /// Whether `sealed` is under a key other than the current one (a `v1:` value
    /// included): a value to seal again after a rotation.
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        let current = format!("{PREFIX}{}:", self.current.id);
        !sealed.0.starts_with(&current)
    }
}

#[cfg(test)]
mod tests;
