//! The JavaScript side of the tests: the TypeScript client (`clients/typescript`) and
//! the Next.js example (`examples/nextjs`) run with Node.js against a world of real
//! services, as a web app would use them: a [`WebAppWorld`] (its own nats-server with
//! the deployment's users, the five services as processes, the bench emulator and its
//! `bench serve`, the Master stand-in) and its web app's settings as environment
//! variables; `node` and `npm` run with their output in the test's log folder, killed
//! with the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrets::ExposeSecret as _;

use crate::{Harness, Processes};

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repository")
        .to_path_buf()
}

/// Checks that Node.js 20 or later is here and that `dir` (a folder of the repository)
/// has its npm packages; panics, saying how to get them, when not (never skips).
pub fn require_node_packages(dir: &str) -> PathBuf {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            panic!("this test needs Node.js 20 or later (`node`): dev/test installs it (dev/lib.sh ensure_npm_packages)")
        });
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(major >= 20, "Node.js {version} is too old: 20 or later");
    let folder = repo_root().join(dir);
    assert!(
        folder.join("node_modules").is_dir(),
        "{dir} has no node_modules: run `source dev/lib.sh; ensure_npm_packages {dir}` (dev/test does)"
    );
    folder
}

/// Runs `program args` in `dir` with `env`, its output to `log`, for at most `limit`
/// (then killed: a hung run fails the test rather than holding it); the exit status
/// and the output.
pub fn run_logged(
    program: &str,
    args: &[&str],
    dir: &Path,
    env: &[(String, String)],
    log: &Path,
    limit: Duration,
) -> (std::process::ExitStatus, String) {
    let file = std::fs::File::create(log).expect("log file");
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} starts: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{program} {args:?} in {} did not finish within {limit:?}: {}",
                dir.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// A world for a web app: every real service as a process on the harness's own
/// nats-server, the bench emulator (with `emulator.json` as given: faults, delay) and
/// the Master stand-in, and a key pair of the web app's own whose public half
/// user-step seals API secrets to.
pub struct WebAppWorld {
    /// The five services: declared first, so that they stop before the harness drops
    /// this world's tenants (fields drop in order), a panicking test included.
    pub services: Processes,
    /// The test's world.
    pub h: Harness,
    /// The bench folder.
    pub root: PathBuf,
    /// The Master stand-in's state.
    pub master: master_standin::Shared,
    /// The web app's private keyring entry (`WEB_APP_PRIVATE_KEYS`).
    pub web_app_private: String,
}

impl WebAppWorld {
    /// Starts it.
    pub async fn start(emulator: serde_json::Value) -> Self {
        let mut h = Harness::new().await;
        let root = h.bench_folder(emulator);
        let (url, master) = h.start_master().await;
        let web_app_private = secrets::Keyring::generate_entry(&crate::key_id("web-app"))
            .expose_secret()
            .to_string();
        let public = secrets::Keyring::parse(&web_app_private)
            .expect("keyring")
            .recipient()
            .to_text();
        let mut env = h.frappe_env(&root, &url);
        env.push(("WEB_APP_PUBLIC_KEY", public));
        let services = h.spawn_all(&env);
        Self {
            services,
            h,
            root,
            master,
            web_app_private,
        }
    }

    /// What a web app is configured with (README, "Integrating a Next.js app"): the bus
    /// as user `web-app`, the services' public key, its own private key; and, for the
    /// tests to check what the user would, the bench's web server
    /// (`BENCH_HTTP_URL`), the parent domain, a suffix for unique values and
    /// `SUBDOMAINS`: a JSON object from each of `names` to its subdomain, handed out
    /// (and recorded, so dropped afterwards) by the harness: the only subdomains the
    /// Node.js side may sign up with.
    pub fn web_app_env(&self, names: &[&str]) -> Vec<(String, String)> {
        let nats = &self.h.nats;
        let subdomains: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|name| (name.to_string(), self.h.subdomain(name).into()))
            .collect();
        [
            ("NATS_URL", nats.url()),
            ("NATS_USER", "web-app".to_string()),
            ("NATS_PASSWORD", nats.password("web-app")),
            ("SAGA_PUBLIC_KEY", self.h.key.recipient().to_text()),
            ("WEB_APP_PRIVATE_KEYS", self.web_app_private.clone()),
            ("BENCH_HTTP_URL", self.h.bench_http(&self.root).url.clone()),
            ("PARENT_DOMAIN", "example.test".to_string()),
            ("SUBDOMAIN_SUFFIX", self.h.suffix.clone()),
            (
                "SUBDOMAINS",
                serde_json::Value::Object(subdomains).to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl WebAppWorld {
    /// Stops everything; the harness drops the tenants of the names it handed out.
    pub async fn finish(self) {
        drop(self.services);
        self.h.finish().await;
    }
}

/// A long-running Node.js process of a test (`next start`), in a process group of its
/// own, killed with its children when dropped (a panicking test included).
pub struct NodeServer {
    child: std::process::Child,
    /// Where it writes its output.
    pub log: PathBuf,
}

impl NodeServer {
    /// Starts `program args` in `dir` with `env`, its output to `log`.
    pub fn start(
        program: &str,
        args: &[&str],
        dir: &Path,
        env: &[(String, String)],
        log: &Path,
    ) -> Self {
        use std::os::unix::process::CommandExt as _;
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        Self {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Waits until `url` answers 200 (at most `secs`), else panics with its log.
    pub async fn wait_ready(&mut self, url: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(answer) = reqwest::get(url).await {
                if answer.status().is_success() {
                    return;
                }
            }
            let exited = self.child.try_wait().expect("wait").is_some();
            if exited || Instant::now() > deadline {
                panic!(
                    "{url} did not answer ({}): {}",
                    if exited {
                        "the server exited"
                    } else {
                        "time out"
                    },
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        // The whole group: `next start` may have children of its own.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// `<target>/test-output/<name>/`, emptied: what a test leaves for people to look at
/// (screenshots), kept after the run.
pub fn test_output_folder(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binaries live in <target>/<profile>/deps");
    let folder = target.join("test-output").join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("test output folder");
    folder
}
