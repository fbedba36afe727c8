//! Dead letters: messages set aside because they could not be handled, kept for an
//! operator without ever holding a secret.
//!
//! A message that is JSON keeps its structure and the signup contract's harmless
//! fields; every other string is masked. One that is not JSON may be anything (a truncated signup, form
//! encoding, bytes), so no byte of it can be trusted to be harmless: it is kept only as
//! its size, its SHA-256 (to match it against the sender's own records) and a masked
//! excerpt that shows its shape (quoted keys before a `:` and punctuation) and no
//! value.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::step_dead_letter::PayloadSummary;

/// What goes to a dead-letter subject (`tenant.signup.dead_letter` for signups).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// The subject the message arrived on.
    pub subject: String,
    /// Why it was set aside.
    pub error: String,
    /// JSON: the payload with every string masked but the signup contract's harmless
    /// fields (`signup_id`, `organization_name`, `subdomain`, `admin_email`,
    /// `admin_full_name`, `auth_provider`, `requested_at`), cut to
    /// 4 KiB. Anything else: a masked excerpt of its first 256 characters (field
    /// names and punctuation only, every value `***`; `…` when cut).
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

/// Where a JSON payload broke (kind, line, column), without serde's message, which
/// may quote the payload's values.
pub fn where_it_broke(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
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

/// Fields of the signup contract whose values are no secret: kept in a dead letter.
const KEPT_FIELDS: [&str; 7] = [
    "signup_id",
    "organization_name",
    "subdomain",
    "admin_email",
    "admin_full_name",
    "auth_provider",
    "requested_at",
];

/// Every string of a JSON value becomes `***`, except the value of a field the signup
/// contract names as no secret ([`KEPT_FIELDS`]): a secret may sit under any name
/// (`pwd`, `token`, a misspelt `pasword`), so only the known harmless ones are kept.
/// Numbers, booleans and the structure stay.
pub fn mask_secrets(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if !(KEPT_FIELDS.contains(&key.as_str()) && v.is_string()) {
                    mask_secrets(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        serde_json::Value::String(text) => *text = "***".into(),
        _ => {}
    }
}

/// Characters of the payload the excerpt looks at.
const EXCERPT_SOURCE_CHARS: usize = 256;
/// A field name longer than this, or with other characters than `[A-Za-z0-9_.-]`, is
/// masked like a value: names are kept because they are short identifiers.
const NAME_MAX_CHARS: usize = 40;

/// Size, hash and masked excerpt of `payload`.
pub fn summarize(payload: &[u8]) -> PayloadSummary {
    PayloadSummary {
        bytes: payload.len(),
        sha256: hex(&Sha256::digest(payload)),
        excerpt: masked_excerpt(payload),
    }
}

/// The start of `payload` with every value masked. Quoted strings and bare words are
/// kept only when they are field names (followed by `:` or `=`) made of
/// `[A-Za-z0-9_.-]`; every other one becomes `"***"` or `***`. Punctuation and spaces
/// are kept, so `{"admin_password": "hunter2", "n": 5` reads
/// `{"admin_password": "***", "n": ***`.
pub fn masked_excerpt(payload: &[u8]) -> String {
    let text: Vec<char> = String::from_utf8_lossy(payload)
        .chars()
        .take(EXCERPT_SOURCE_CHARS)
        .collect();
    let truncated = payload.len() > text.iter().map(|c| c.len_utf8()).sum::<usize>();
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == '"' || c == '\'' {
            let start = i + 1;
            let mut end = start;
            while end < text.len() && text[end] != c {
                end += if text[end] == '\\' { 2 } else { 1 };
            }
            let inner: String = text[start..end.min(text.len())].iter().collect();
            let next = end + 1;
            if is_name(&inner) && followed_by_separator(&text, next) {
                out.push(c);
                out.push_str(&inner);
                out.push(c);
            } else {
                out.push(c);
                out.push_str("***");
                out.push(c);
            }
            i = next;
        } else if is_word_char(c) {
            let start = i;
            while i < text.len() && is_word_char(text[i]) {
                i += 1;
            }
            let word: String = text[start..i].iter().collect();
            if is_name(&word) && followed_by_separator(&text, i) {
                out.push_str(&word);
            } else {
                out.push_str("***");
            }
        } else {
            out.push(if c.is_control() { ' ' } else { c });
            i += 1;
        }
    }
    if truncated {
        out.push('…');
    }
    out
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !"{}[],:=;&\"'()<>".contains(c)
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.chars().count() <= NAME_MAX_CHARS
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn followed_by_separator(text: &[char], from: usize) -> bool {
    text.iter()
        .skip(from)
        .find(|c| !c.is_whitespace())
        .is_some_and(|c| *c == ':' || *c == '=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_dead_letters_keep_only_the_contracts_harmless_values() {
        let payload = br#"{"signup_id": 5, "subdomain": "acme", "pwd": "TopSecret1!", "token": ["abc"], "n": {"admin_email": "a@b.c", "k": "x"}}"#;
        let dl = DeadLetter::new("s", "bad".into(), payload, chrono::Utc::now());
        assert_eq!(
            dl.payload,
            r#"{"n":{"admin_email":"a@b.c","k":"***"},"pwd":"***","signup_id":5,"subdomain":"acme","token":["***"]}"#
        );
        let bare = DeadLetter::new("s", "bad".into(), br#""TopSecret1!""#, chrono::Utc::now());
        assert_eq!(bare.payload, r#""***""#);
    }

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
                r#"{"signup_id": "***", "admin_password": "***", "***""#,
            ),
            (
                b"admin_password=TopSecret1!&x=1",
                "admin_password=***&x=***",
            ),
            (b"TopSecret1!", "***"),
        ] {
            let dl = DeadLetter::new("s", "not JSON".into(), payload, chrono::Utc::now());
            assert!(!dl.payload.contains("TopSecret"), "{}", dl.payload);
            assert_eq!(dl.payload, shape);
            assert_eq!(dl.payload_bytes, payload.len());
            assert_eq!(dl.payload_sha256, Some(summarize(payload).sha256));
        }
        let binary = DeadLetter::new("s", "x".into(), b"\xff\x00Secret", chrono::Utc::now());
        assert!(!binary.payload.contains("Secret"), "{}", binary.payload);
    }

    #[test]
    fn values_are_masked_and_names_kept() {
        let cut = br#"{"signup_id": "0192", "admin_password": "TopSecret1!", "n": 5, "ok": tr"#;
        assert_eq!(
            masked_excerpt(cut),
            r#"{"signup_id": "***", "admin_password": "***", "n": ***, "ok": ***"#
        );
        assert_eq!(
            masked_excerpt(b"password=hunter2&user=bob"),
            "password=***&user=***"
        );
        // A bare secret, or words that are no field names, are masked whole.
        assert_eq!(masked_excerpt(b"TopSecret1!"), "***");
        assert_eq!(masked_excerpt(b"{ not a command"), "{ *** *** ***");
        // An escaped quote does not end a string early.
        assert_eq!(masked_excerpt(br#"["a\"b: c", 1]"#), r#"["***", ***]"#);
        // Binary garbage shows as masked words.
        assert!(!masked_excerpt(b"\xff\x00secret").contains("secret"));
    }

    #[test]
    fn long_payloads_are_cut_and_hashed() {
        let long = format!(r#"{{"k": "{}"}}"#, "x".repeat(1000));
        let summary = summarize(long.as_bytes());
        assert_eq!(summary.bytes, long.len());
        assert_eq!(summary.sha256.len(), 64);
        assert!(summary.excerpt.ends_with('…'), "{}", summary.excerpt);
        assert!(!summary.excerpt.contains("xxxx"));
        assert_eq!(
            summarize(b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
