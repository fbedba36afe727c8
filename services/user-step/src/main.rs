//! `user-step`: serves the saga's `admin_user` step with bench.

use std::time::Duration;

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let bench =
            bench::Driver::from_lookup(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
        let web_app = user_step::web_app_key(|k| std::env::var(k).ok())?;
        Ok(user_step::UserStep::new(
            bench,
            Duration::from_secs(120),
            web_app,
        ))
    })
}
