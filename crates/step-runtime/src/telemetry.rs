//! Logging set-up shared by every binary: human-readable by default, JSON with
//! `LOG_FORMAT=json`, level from `RUST_LOG` (default `info`).
//!
//! Some libraries log whole request bodies at debug level, and ours carry secrets:
//! bollard logs each exec's command line (bench's `--password`, `--db-password`).
//! Those libraries are held at `info` whatever `RUST_LOG` says, so no level an
//! operator picks puts a secret in the logs.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = with_secret_safe_levels(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    );
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    // Before anything records: a gauge set at start-up (say, site-step's places)
    // must reach `/metrics`.
    crate::exposition::handle();
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
