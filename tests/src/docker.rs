//! A real Docker engine for the Docker bench driver's tests: the engine `DOCKER_HOST`
//! names (`./dev/test` starts a private dockerd when none runs), an image built from
//! local files (no image can be pulled here), and a "backend" container per test that
//! plays frappe_docker's: user `frappe`, bench in `/home/frappe/frappe-bench` (a
//! folder of the test's, bind-mounted), the bench EMULATOR as `bench`, host
//! networking so it reaches MariaDB on 127.0.0.1.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::binary;

/// The image every test container runs.
pub const IMAGE: &str = "saga-test/frappe-backend-emulator:latest";

/// Where bench lives in the container, as in frappe_docker.
pub const BENCH_PATH: &str = "/home/frappe/frappe-bench";

/// The uid of user `frappe` in the image (and of the bind-mounted bench folder).
const FRAPPE_UID: u32 = 1000;

/// The engine, or `None` with the reason printed when there is none and the run
/// does not require one (`REQUIRE_DOCKER=1`, which `./dev/test` sets once dockerd
/// runs, turns a missing engine into a failure instead).
pub async fn engine() -> Option<Docker> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let reached = match connect() {
        Ok(docker) => match docker.negotiate_version().await {
            Ok(docker) => docker.ping().await.map(|_| docker),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match reached {
        Ok(docker) => Some(docker),
        Err(e) if std::env::var("REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("REQUIRE_DOCKER=1 but no Docker engine answers at {host:?}: {e}")
        }
        Err(e) => {
            println!(
                "SKIPPED: no Docker engine answers at {:?} ({e}); ./dev/test starts a private dockerd",
                if host.is_empty() { "the default socket" } else { &host }
            );
            None
        }
    }
}

/// A client for the engine `DOCKER_HOST` names, as the docker CLI finds it.
fn connect() -> Result<Docker, bollard::errors::Error> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => Docker::connect_with_host(&host),
        _ => Docker::connect_with_local_defaults(),
    }
}

static IMAGE_BUILT: OnceCell<()> = OnceCell::const_new();

/// Builds [`IMAGE`] once per test process, from a root filesystem made of the
/// machine's static busybox, the emulator and the shared libraries it loads.
pub async fn ensure_image(docker: &Docker) {
    IMAGE_BUILT
        .get_or_init(|| async {
            let staging = tempfile::tempdir().expect("tempdir");
            let tar = build_rootfs(staging.path());
            let (repo, tag) = IMAGE.split_once(':').expect("image tag");
            let options = CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(repo.into()),
                tag: Some(tag.into()),
                ..Default::default()
            };
            let mut progress =
                docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
            while let Some(step) = progress.next().await {
                step.expect("docker import of the test image");
            }
        })
        .await;
}

/// Lays out the root filesystem in `root` and returns it as a tar archive.
fn build_rootfs(root: &Path) -> Vec<u8> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("a static busybox (Debian: busybox-static)");
    for dir in [
        "bin",
        "usr/local/bin",
        "etc",
        "tmp",
        "home/frappe/frappe-bench",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("rootfs folder");
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("tmp mode");
    std::fs::copy(&busybox, root.join("bin/busybox")).expect("copy busybox");
    let applets = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&applets.stdout).split_whitespace() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    let emulator = binary("bench-emulator");
    std::fs::copy(&emulator, root.join("usr/local/bin/bench")).expect("copy emulator");
    for library in shared_libraries(&emulator) {
        let target = root.join(library.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("lib folder");
        std::fs::copy(&library, &target).expect("copy library");
    }
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\nfrappe:x:{FRAPPE_UID}:{FRAPPE_UID}:frappe:/home/frappe:/bin/sh\n"),
    )
    .expect("passwd");
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nfrappe:x:{FRAPPE_UID}:\n"),
    )
    .expect("group");
    chown_tree(&root.join("home/frappe"));
    let tar = Command::new("tar")
        .args(["-C"])
        .arg(root)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(tar.status.success(), "tar of the rootfs failed");
    tar.stdout
}

/// What `ldd` says `binary` loads, the dynamic loader included.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// Gives `path` and everything under it to user `frappe` of the image.
pub fn chown_tree(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", &format!("{FRAPPE_UID}:{FRAPPE_UID}")])
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {}", path.display());
}

/// A running test container, removed when dropped.
pub struct Backend {
    /// The engine.
    pub docker: Docker,
    /// Its name.
    pub name: String,
    /// The compose project its labels name.
    pub project: String,
}

impl Backend {
    /// Starts a container of [`IMAGE`] with `bench` (a folder on this machine) as the
    /// bench, labelled as service `backend` of a compose project of its own.
    pub async fn start(docker: &Docker, name: &str, bench: &Path) -> Self {
        ensure_image(docker).await;
        chown_tree(bench);
        let project = format!("{name}-project");
        let labels = HashMap::from([
            ("com.docker.compose.project".to_string(), project.clone()),
            (
                "com.docker.compose.service".to_string(),
                "backend".to_string(),
            ),
        ]);
        let body = ContainerCreateBody {
            image: Some(IMAGE.into()),
            // PID 1 leaves at once on SIGTERM, so stopping takes no grace period.
            cmd: Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "trap 'exit 0' TERM; while :; do sleep 1; done".into(),
            ]),
            env: Some(vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                binds: Some(vec![format!("{}:{BENCH_PATH}", bench.display())]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.into()),
            ..Default::default()
        };
        docker
            .create_container(Some(options), body)
            .await
            .expect("create the test container");
        let backend = Self {
            docker: docker.clone(),
            name: name.into(),
            project,
        };
        backend.resume().await;
        backend
    }

    /// `docker start`.
    pub async fn resume(&self) {
        self.docker
            .start_container(&self.name, None)
            .await
            .expect("start the test container");
    }

    /// `docker stop`.
    pub async fn stop(&self) {
        self.docker
            .stop_container(
                &self.name,
                Some(StopContainerOptions {
                    t: Some(5),
                    ..Default::default()
                }),
            )
            .await
            .expect("stop the test container");
    }

    /// Starts `script` in the container as `frappe` in the bench folder with the
    /// variables `env`, detached: no one waits for it, as for the commands of a step
    /// service that died.
    pub async fn detached(&self, script: &str, env: &[String]) {
        let options = bollard::exec::CreateExecOptions {
            cmd: Some(vec!["sh", "-c", script]),
            env: Some(env.iter().map(String::as_str).collect()),
            user: Some("frappe"),
            working_dir: Some(BENCH_PATH),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(&self.name, options)
            .await
            .expect("create the exec");
        self.docker
            .start_exec(
                &exec.id,
                Some(bollard::exec::StartExecOptions {
                    detach: true,
                    ..Default::default()
                }),
            )
            .await
            .expect("start the exec");
    }

    /// Whether it runs.
    pub async fn running(&self) -> bool {
        self.docker
            .inspect_container(&self.name, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The test's runtime is going away with its connections: remove it from a
        // thread and a client of its own.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let Ok(docker) = connect() else { return };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                let _ = docker
                    .remove_container(
                        &name,
                        Some(RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            });
        })
        .join()
        .ok();
    }
}
