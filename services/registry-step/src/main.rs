//! `registry-step`: serves the saga's `registration` step against the Master site.

use registry_step::{Master, RegistryStep};

fn main() -> std::process::ExitCode {
    step_runtime::serve_from_env(|| async {
        let master = Master::from_lookup(|k| std::env::var(k).ok())?;
        RegistryStep::new(master)
    })
}
