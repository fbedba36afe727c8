//! `user-step`: serves the saga's `admin_user` step with bench.

use std::time::Duration;

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let bench =
            bench::Driver::from_lookup(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
        let web_app = user_step::web_app_key(|k| std::env::var(k).ok())?;
        // Where the bench's web server answers (frappe_docker: its frontend service).
        let url =
            std::env::var("BENCH_HTTP_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
        let http = user_step::frappe_http::FrappeHttp::new(&url)?;
        Ok(user_step::UserStep::new(
            bench,
            http,
            Duration::from_secs(120),
            web_app,
        ))
    })
}
