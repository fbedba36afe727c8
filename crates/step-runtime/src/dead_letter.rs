//! Describing a payload for a dead letter without keeping it: size, SHA-256 and a
//! masked excerpt. A payload set aside may be anything (a clear password published by
//! mistake, a truncated signup), so only its shape survives: field names and
//! punctuation, every value replaced by `***`.

use contracts::step_dead_letter::PayloadSummary;
use sha2::{Digest, Sha256};

/// Characters of the payload the excerpt looks at.
const EXCERPT_SOURCE_CHARS: usize = 256;
/// A field name longer than this, or with other characters than `[A-Za-z0-9_.-]`, is
/// masked like a value: names are kept because they are short identifiers.
const NAME_MAX_CHARS: usize = 40;

/// Size, hash and masked excerpt of `payload`.
pub fn summarize(payload: &[u8]) -> PayloadSummary {
    let digest = Sha256::digest(payload);
    PayloadSummary {
        bytes: payload.len(),
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
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
