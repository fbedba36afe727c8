//! The live dashboard at `/`: plain HTML, CSS and JavaScript modules from
//! `http/dashboard/`, compiled into the binary (`include_str!`), so nothing is built or
//! read from disk at run time. The page itself is public; every figure it shows comes
//! from the read endpoints, with the read token the operator types in (README,
//! "Security", "Over HTTP").
//!
//! Assets are served under `/assets/<version>/`, `<version>` a hash of every asset:
//! the page names the current one, so a browser may keep them for good (`immutable`)
//! and still never mixes two releases' files; the page itself is revalidated each time.
//! Every answer carries a Content Security Policy allowing only this origin's scripts,
//! styles and connections (no inline script or style, no frames).

use std::hash::{Hash as _, Hasher as _};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// What the browser may load and run: this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The page; `{{ASSETS}}` becomes `assets/<version>`.
const INDEX: &str = include_str!("dashboard/index.html");

/// The assets by file name, with their content types.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/api.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/format.js"),
    ),
    (
        "overview.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/overview.js"),
    ),
    (
        "saga.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/saga.js"),
    ),
    (
        "timeline.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/timeline.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("dashboard/icon.svg"),
    ),
];

/// A hash of the page and every asset: changes whenever one of them does.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    // SipHash with fixed keys: the same files give the same version in every process,
    // so instances of one release behind a load balancer agree.
    let mut hasher = std::hash::DefaultHasher::new();
    INDEX.hash(&mut hasher);
    for asset in ASSETS {
        asset.hash(&mut hasher);
    }
    format!("{:016x}", hasher.finish())
});

/// Relative links (`assets/<version>/...`), like the page's API calls: the dashboard
/// also works behind a reverse proxy that serves the orchestrator under a path.
static PAGE: LazyLock<String> =
    LazyLock::new(|| INDEX.replace("{{ASSETS}}", &format!("assets/{}", *VERSION)));

/// The dashboard's routes: `/` and `/assets/<version>/<file>`.
pub(crate) fn routes() -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/{version}/{file}", get(asset))
}

/// A response with the dashboard's security headers.
fn answer(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    body: &'static str,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn page() -> Response {
    answer(
        StatusCode::OK,
        "text/html; charset=utf-8",
        "no-cache",
        PAGE.as_str(),
    )
}

async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return answer(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "no-cache",
            "no such asset",
        );
    };
    // An older page (open across an upgrade) asks for its version: it gets today's
    // file, not to be kept.
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    answer(StatusCode::OK, content_type, cache, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_this_versions_assets_and_each_exists() {
        let prefix = format!("\"assets/{}/", *VERSION);
        assert!(!PAGE.contains("{{ASSETS}}"));
        let named: Vec<&str> = PAGE
            .split(&prefix)
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default())
            .collect();
        assert!(
            named.contains(&"app.js") && named.contains(&"style.css"),
            "{named:?}"
        );
        for file in named {
            assert!(ASSETS.iter().any(|(name, _, _)| *name == file), "{file}");
        }
    }

    #[test]
    fn no_asset_holds_inline_script_or_style() {
        // The policy refuses them; an inline one would silently not run.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
        assert!(!INDEX.contains("<style"));
    }
}
