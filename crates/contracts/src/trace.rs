//! W3C trace context (`traceparent`) carried in NATS headers, so that one saga is one
//! trace across the web app, the orchestrator and every step service.
//!
//! The web app may send a `traceparent` header with its signup; otherwise the
//! orchestrator starts a trace for the saga. The saga keeps it, so every command sent
//! for it (after restarts and replays too) and every report answering one carries
//! the same trace id; each hop gets a new parent (span) id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The NATS header (as in HTTP) that carries the trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A `traceparent` value: `00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent {
    trace_id: String,
    parent_id: String,
    flags: u8,
}

impl TraceParent {
    /// Reads a header value; `None` unless it is a valid version-00 `traceparent`
    /// with non-zero ids (W3C Trace Context, level 1).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        if parts.next().is_some()
            || version != "00"
            || !hex(trace_id, 32)
            || !hex(parent_id, 16)
            || !hex(flags, 2)
            || zero(trace_id)
            || zero(parent_id)
        {
            return None;
        }
        Some(Self {
            trace_id: trace_id.into(),
            parent_id: parent_id.into(),
            flags: u8::from_str_radix(flags, 16).ok()?,
        })
    }

    /// A new trace (sampled), for a saga whose signup came without one.
    pub fn new_root() -> Self {
        Self {
            trace_id: uuid::Uuid::new_v4().simple().to_string(),
            parent_id: new_span_id(),
            flags: 1,
        }
    }

    /// The same trace with a new parent id: the context of the next hop.
    pub fn child(&self) -> Self {
        Self {
            parent_id: new_span_id(),
            ..self.clone()
        }
    }

    /// The same trace with parent id `parent_id` (16 lowercase hex digits, not all
    /// zero): the context of a hop whose span id is known; `None` if it is not one.
    pub fn with_parent_id(&self, parent_id: &str) -> Option<Self> {
        Self::parse(&format!(
            "00-{}-{parent_id}-{:02x}",
            self.trace_id, self.flags
        ))
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The parent (span) id, 16 lowercase hex digits.
    pub fn parent_id(&self) -> &str {
        &self.parent_id
    }

    /// Whether the caller sampled the trace (flag `01`).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// 8 random bytes, as 16 hex digits, never all zero.
fn new_span_id() -> String {
    let id = uuid::Uuid::new_v4().as_u128() as u64;
    format!("{:016x}", id.max(1))
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl TryFrom<String> for TraceParent {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("not a traceparent: {value:?}"))
    }
}

impl From<TraceParent> for String {
    fn from(value: TraceParent) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_a_w3c_traceparent() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(text).expect("valid");
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.to_string(), text);
        let child = parsed.child();
        assert_eq!(child.trace_id(), parsed.trace_id());
        assert_ne!(child.parent_id(), parsed.parent_id());
        assert!(child.sampled());
    }

    #[test]
    fn refuses_what_is_not_one() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_trace_is_valid() {
        let root = TraceParent::new_root();
        assert_eq!(TraceParent::parse(&root.to_string()), Some(root));
    }
}
