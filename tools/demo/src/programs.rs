//! The programs a run starts: built beside this one, spawned with their logs in the
//! run's folder, killed when dropped; and the bench commands a killed step service
//! left running.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A service process; killed when dropped.
pub struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sibling executable of this one (cargo puts the workspace's binaries together).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// Starts program `name` with `env`, its output in `<dir>/<name>.log`.
pub(crate) fn spawn(dir: &Path, name: &str, env: &[(&str, String)]) -> anyhow::Result<Service> {
    let exe = sibling(name)?;
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = std::process::Command::new(&exe)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build the workspace's binaries first: cargo build --release --workspace --bins)",
                exe.display()
            )
        })?;
    Ok(Service(child))
}

/// `bench serve` of the emulator in `bench`: the bench's web server, which user-step
/// sets the admin's password through.
pub(crate) fn spawn_bench_serve(dir: &Path, bench: &Path, port: u16) -> anyhow::Result<Service> {
    let exe = sibling("bench-emulator")?;
    let log = std::fs::File::create(dir.join("bench-serve.log"))?;
    let child = std::process::Command::new(&exe)
        .args(["serve", "--port", &port.to_string()])
        .current_dir(bench)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    Ok(Service(child))
}

/// Starts `bench serve --port 0` of the emulator `exe` in `bench`, its output in `log`,
/// and returns it with the URL it listens on, read from the log (at most 10 s).
pub fn bench_serve(
    exe: &Path,
    bench: &Path,
    log: &Path,
) -> anyhow::Result<(std::process::Child, String)> {
    let mut child = std::process::Command::new(exe)
        .args(["serve", "--port", "0"])
        .current_dir(bench)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Whole lines only: a line caught halfway would name port 80.
        if let Some(url) = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .find_map(|l| l.trim().strip_prefix("* Running on "))
        {
            return Ok((child, url.to_string()));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("bench serve did not start: {text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// SIGKILLs every process whose working directory is inside `folder`: the bench
/// commands a killed step service left running in a bench folder. Returns how many.
pub fn kill_running_in(folder: &Path) -> usize {
    running_in(folder)
        .into_iter()
        .filter(|&pid| {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
        })
        .count()
}

/// The processes whose working directory is inside `folder`.
pub fn running_in(folder: &Path) -> Vec<i32> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter_map(|p| {
            let pid: i32 = p.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(p.path().join("cwd")).ok()?;
            cwd.starts_with(folder).then_some(pid)
        })
        .collect()
}

/// The programs a run starts.
const PROGRAMS: [&str; 7] = [
    "orchestrator",
    "db-step",
    "site-step",
    "user-step",
    "registry-step",
    "master-standin",
    "bench-emulator",
];

/// Builds the workspace's binaries beside this one, with this one's profile, unless
/// told not to; then checks the ones a run starts are there.
pub fn build_services(no_build: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().context("the executable's folder")?;
    if !no_build {
        let mut build = workspace_build(dir.file_name().is_some_and(|n| n == "release"));
        let status = build
            .stdout(std::process::Stdio::null())
            .status()
            .context("running cargo build for the service binaries")?;
        anyhow::ensure!(status.success(), "building the service binaries failed");
    }
    for program in PROGRAMS {
        let bin = dir.join(program);
        anyhow::ensure!(
            bin.is_file(),
            "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
            bin.display()
        );
    }
    Ok(())
}

/// `cargo build --quiet --workspace --bins` (`--release` when asked): the whole
/// workspace, like the outer build, since a subset would unify features differently
/// and rebuild half the dependency tree. Without the variables cargo set for the
/// package running it (`cargo run`, `cargo test`): passed on, they would reach the
/// inner build's build scripts (cargo sets them per package), and scripts that watch
/// them (ring's does, `CARGO_MANIFEST_DIR` and `CARGO_PKG_*`) would see a changed
/// environment and rebuild everything above them, in this build and the next outer one.
pub fn workspace_build(release: bool) -> std::process::Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "--workspace", "--bins"]);
    if release {
        build.arg("--release");
    }
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if set_by_cargo_for_this_package(key) {
            build.env_remove(key);
        }
    }
    build
}

/// Whether cargo set variable `key` for this package when it ran it (`cargo run`).
fn set_by_cargo_for_this_package(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_BIN_EXE_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}
