//! Dead letters: messages set aside because they could not be handled, kept for an
//! operator without ever holding a secret.
//!
//! A message that is JSON keeps its structure with every `*password*` / `*secret*`
//! field masked. One that is not JSON may be anything (a truncated signup, form
//! encoding, bytes), so no byte of it can be trusted to be harmless: it is kept only as
//! its size, its SHA-256 (to match it against the sender's own records) and a masked
//! excerpt that shows its shape (quoted keys before a `:` and punctuation) and no
//! value.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What goes to a dead-letter subject (`tenant.signup.dead_letter` for signups).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// The subject the message arrived on.
    pub subject: String,
    /// Why it was set aside.
    pub error: String,
    /// JSON: the payload with every `*password*` / `*secret*` field masked, cut to
    /// 4 KiB. Anything else: a masked excerpt (keys and punctuation only, every value
    /// `***`), cut to 256 characters.
    pub payload: String,
    /// Size of the original payload in bytes.
    pub payload_bytes: usize,
    /// SHA-256 of the original payload, lowercase hex (absent in letters written
    /// before it was added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// When it was set aside.
    pub at: chrono::DateTime<chrono::Utc>,
}

const MAX_JSON: usize = 4096;
const MAX_EXCERPT: usize = 256;
const MAX_KEY: usize = 64;

impl DeadLetter {
    /// Builds the dead letter for `payload`, keeping nothing that may be a secret.
    pub fn new(
        subject: &str,
        error: String,
        payload: &[u8],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let text = match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(mut value) => {
                mask_secrets(&mut value);
                cut(value.to_string(), MAX_JSON)
            }
            Err(_) => masked_excerpt(payload),
        };
        Self {
            subject: subject.to_string(),
            error,
            payload: text,
            payload_bytes: payload.len(),
            payload_sha256: Some(hex(&Sha256::digest(payload))),
            at,
        }
    }
}

/// Size, SHA-256 and masked excerpt of `payload`, for a letter that keeps no byte of
/// it.
pub fn summarize(payload: &[u8]) -> crate::step_dead_letter::PayloadSummary {
    crate::step_dead_letter::PayloadSummary {
        bytes: payload.len(),
        sha256: hex(&Sha256::digest(payload)),
        excerpt: masked_excerpt(payload),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Every JSON object field whose name holds `password` or `secret` becomes `***`.
pub fn mask_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let key = key.to_ascii_lowercase();
                if key.contains("password") || key.contains("secret") {
                    *v = serde_json::Value::String("***".into());
                } else {
                    mask_secrets(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

/// Characters that give a payload its shape (JSON, form encoding) and never belong to
/// a value.
fn is_structure(c: char) -> bool {
    matches!(c, '{' | '}' | '[' | ']' | ':' | ',' | '=' | '&' | ';' | ' ')
}

/// The shape of a payload that is not JSON: a quoted string directly followed by `:`
/// (a key) is kept, every other quoted string and every run of other characters
/// becomes `***`; structural characters stay.
fn masked_excerpt(payload: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(payload) else {
        return format!("(binary, {} bytes)", payload.len());
    };
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_EXCERPT {
        let c = chars[i];
        if c == '"' {
            let mut end = i + 1;
            while end < chars.len() && chars[end] != '"' {
                end += if chars[end] == '\\' { 2 } else { 1 };
            }
            let closed = end < chars.len();
            let after = chars[(end + 1).min(chars.len())..]
                .iter()
                .find(|c| !c.is_whitespace());
            let inner: String = chars[i + 1..end.min(chars.len())].iter().collect();
            let is_key = closed
                && after == Some(&':')
                && inner.chars().count() <= MAX_KEY
                && !inner.to_ascii_lowercase().contains("secret")
                && !inner.chars().any(|c| c == '\\');
            if is_key {
                out.push('"');
                out.push_str(&inner);
                out.push('"');
            } else {
                out.push_str("\"***");
                if closed {
                    out.push('"');
                }
            }
            i = end + 1;
        } else if is_structure(c) {
            out.push(c);
            i += 1;
        } else if c.is_whitespace() {
            out.push(' ');
            i += 1;
        } else {
            while i < chars.len()
                && !(chars[i] == '"' || is_structure(chars[i]) || chars[i].is_whitespace())
            {
                i += 1;
            }
            out.push_str("***");
        }
    }
    cut(out, MAX_EXCERPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets_in_json_dead_letters() {
        let payload =
            br#"{"signup_id": 5, "admin_password": "TopSecret1!", "nested": {"api_secret": "x"}}"#;
        let dl = DeadLetter::new("s", "bad".into(), payload, chrono::Utc::now());
        assert!(!dl.payload.contains("TopSecret1!"));
        assert!(dl.payload.contains("***"));
        assert_eq!(dl.payload_bytes, payload.len());
    }

    #[test]
    fn a_payload_that_is_not_json_keeps_no_value() {
        for (payload, shape) in [
            (
                &br#"{"signup_id": "0192", "admin_password": "TopSecret1!", "org"#[..],
                r#"{"signup_id": "***", "admin_password": "***", "***"#,
            ),
            (b"admin_password=TopSecret1!&x=1", "***=***&***=***"),
            (b"TopSecret1!", "***"),
        ] {
            let dl = DeadLetter::new("s", "not JSON".into(), payload, chrono::Utc::now());
            assert!(!dl.payload.contains("TopSecret"), "{}", dl.payload);
            assert_eq!(dl.payload, shape);
            assert_eq!(dl.payload_bytes, payload.len());
            assert_eq!(
                dl.payload_sha256.as_deref(),
                Some(hex(&Sha256::digest(payload)).as_str())
            );
            assert_eq!(dl.payload_sha256.as_ref().map(String::len), Some(64));
        }
        let binary = DeadLetter::new("s", "x".into(), b"\xff\x00Secret", chrono::Utc::now());
        assert_eq!(binary.payload, "(binary, 8 bytes)");
    }
}
