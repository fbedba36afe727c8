//! Logging set-up shared by every binary: human-readable by default, JSON with
//! `LOG_FORMAT=json`, level from `RUST_LOG` (default `info`).
//!
//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP
//! (HTTP; protobuf, or JSON with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) in batches
//! from a thread of their own, as service `OTEL_SERVICE_NAME` (default: the program's
//! name). Unset, no exporter or layer exists at all. A saga's spans join its trace
//! ([`adopt`]), and what a service sends on carries its next hop ([`outgoing`]).
//!
//! Some libraries log whole request bodies at debug level, and ours carry secrets:
//! bollard logs each exec's command line (bench's `--password`, `--db-password`).
//! Those libraries are held at `info` whatever `RUST_LOG` says, so no level an
//! operator picks puts a secret in the logs.

use std::sync::OnceLock;

use contracts::TraceParent;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// The OTLP pipeline, when one was set up: flushed by [`flush`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = with_secret_safe_levels(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    );
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let logs = if json {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    let (otel, otel_error) = match otel_layer() {
        Ok(layer) => (layer, None),
        Err(e) => (None, Some(e)),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(otel)
        .init();
    match otel_error {
        Some(e) => {
            tracing::error!(error = %e, "traces not exported: the OTLP exporter could not be set up")
        }
        None if PROVIDER.get().is_some() => tracing::info!("exporting traces over OTLP"),
        None => {}
    }
    // Before anything records: a gauge set at start-up (say, site-step's places)
    // must reach `/metrics`.
    crate::exposition::handle();
}

/// The OTLP layer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads it
/// and the `OTEL_EXPORTER_OTLP_*` settings), `None` otherwise.
fn otel_layer<S>() -> Result<Option<impl Layer<S>>, String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Ok(None);
    }
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/json") => Protocol::HttpJson,
        Ok("http/protobuf") | Err(_) => Protocol::HttpBinary,
        Ok(other) => {
            return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other:?}: only http/protobuf and http/json are supported"
        ))
        }
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
        .map_err(|e| e.to_string())?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(program_name)
        .unwrap_or_else(|| "saga".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("saga");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

fn program_name() -> Option<String> {
    let path = std::env::args().next()?;
    Some(
        std::path::Path::new(&path)
            .file_name()?
            .to_string_lossy()
            .into_owned(),
    )
}

/// The valid `traceparent` among a message's headers, if any.
pub fn traceparent_of(headers: Option<&async_nats::HeaderMap>) -> Option<TraceParent> {
    headers?
        .get(contracts::trace::TRACEPARENT_HEADER)
        .and_then(|value| TraceParent::parse(value.as_str()))
}

/// Sends the spans not exported yet; call before the process exits.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("traces: the last spans may not have been exported: {e}");
        }
    }
}

/// Makes `span` part of the saga's trace: its `trace_id` field (on every log line
/// inside it) and, when traces are exported, its parent. Call before the span is
/// first entered.
pub fn adopt(span: &tracing::Span, trace: &TraceParent) {
    span.record("trace_id", trace.trace_id());
    if PROVIDER.get().is_none() {
        return;
    }
    let (Ok(trace_id), Ok(span_id)) = (
        TraceId::from_hex(trace.trace_id()),
        SpanId::from_hex(trace.parent_id()),
    ) else {
        return;
    };
    let flags = if trace.sampled() {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let remote = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The `traceparent` to send on from inside a saga's span: the current span as the
/// parent when it is exported in that trace, else a new hop of `trace`.
pub fn outgoing(trace: &TraceParent) -> TraceParent {
    if PROVIDER.get().is_some() {
        let cx = tracing::Span::current().context();
        let current = cx.span().span_context().clone();
        if current.is_valid() && current.trace_id().to_string() == trace.trace_id() {
            if let Some(next) = trace.with_parent_id(&current.span_id().to_string()) {
                return next;
            }
        }
    }
    trace.child()
}

/// Libraries that log request or response bodies (secrets among them) below `info`.
const BODY_LOGGING_TARGETS: [&str; 1] = ["bollard"];

/// `filter`, with [`BODY_LOGGING_TARGETS`] held at `info` at most.
fn with_secret_safe_levels(filter: EnvFilter) -> EnvFilter {
    BODY_LOGGING_TARGETS.iter().fold(filter, |filter, target| {
        match format!("{target}=info").parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        }
    })
}

/// Resolves when the process receives SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_logging_libraries_stay_at_info_whatever_rust_log_says() {
        for asked in ["debug", "trace", "bollard=trace", "info,bollard=debug"] {
            let filter = with_secret_safe_levels(EnvFilter::new(asked));
            let text = filter.to_string();
            assert!(text.contains("bollard=info"), "{asked}: {text}");
            assert!(
                !text.contains("bollard=debug") && !text.contains("bollard=trace"),
                "{asked}: {text}"
            );
        }
    }
}
