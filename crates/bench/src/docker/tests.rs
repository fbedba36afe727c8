//! Unit tests of the Docker driver: settings and error reading (the driver against a
//! real engine is tested in `tests/tests/docker_driver.rs`).

use super::*;
use crate::Driver;

fn docker_settings(pairs: &[(&str, &str)]) -> Result<DockerSettings, String> {
    let lookup = |k: &str| {
        pairs
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    match Driver::from_lookup(lookup)? {
        Driver::Docker(bench) => Ok(bench.settings),
        Driver::Local(_) => Err("local".into()),
    }
}

#[test]
fn settings_find_the_container_by_name_or_by_compose_project() {
    let defaults = docker_settings(&[("BENCH_DRIVER", "docker")]).expect("defaults");
    assert_eq!(defaults.target, Target::Container("frappe-backend".into()));
    assert_eq!(
        (
            defaults.user.as_str(),
            defaults.bench_bin.as_str(),
            defaults.bench_path.as_str()
        ),
        ("frappe", "bench", "/home/frappe/frappe-bench")
    );
    assert_eq!(defaults.host, None, "the default socket, as the docker CLI");
    let compose = docker_settings(&[
        ("BENCH_DRIVER", "docker"),
        ("BENCH_CONTAINER", "ignored"),
        ("BENCH_COMPOSE_PROJECT", "erp"),
        ("DOCKER_HOST", "tcp://127.0.0.1:2375"),
    ])
    .expect("compose");
    assert_eq!(compose.target, Target::ComposeProject("erp".into()));
    assert_eq!(compose.host.as_deref(), Some("tcp://127.0.0.1:2375"));
    assert_eq!(
        compose.target.to_string(),
        "the backend container of compose project \"erp\""
    );
}

#[test]
fn unusable_settings_are_refused_with_what_to_do() {
    let error = docker_settings(&[("BENCH_DRIVER", "podman")]).expect_err("no such driver");
    assert!(error.contains("\"local\" or \"docker\""), "{error}");
    let error = docker_settings(&[("BENCH_DRIVER", "docker"), ("DOCKER_HOST", "ssh://box")])
        .expect_err("ssh is not supported");
    assert!(error.contains("unix:///path or tcp://host:port"), "{error}");
}

#[test]
fn an_engine_error_shows_the_cause_hyper_wraps() {
    #[derive(Debug)]
    struct Connect(std::io::Error);
    impl std::fmt::Display for Connect {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Connect {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let denied = Connect(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    assert_eq!(causes(&denied), "client error (Connect): permission denied");
}

#[test]
fn an_exec_the_engine_refused_is_told_from_a_command_that_failed() {
    let finished = |exit_code, text: &str| Finished {
        exit_code,
        tail: vec![Line {
            channel: Channel::Stdout,
            text: text.into(),
        }],
    };
    assert!(exec_refused(&finished(
        126,
        "unable to find user frappe: no matching entries in passwd file"
    )));
    assert!(exec_refused(&finished(
        127,
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"bench\": executable file not found in $PATH: unknown"
    )));
    assert!(!exec_refused(&finished(1, "OCI runtime exec failed")));
    assert!(!exec_refused(&finished(127, "sh: foo: not found")));
}

#[test]
fn an_exec_adds_only_its_markers_to_the_container_environment() {
    let command = CommandLine::bench(["version"]);
    assert_eq!(
        exec_environment("BENCH_EXEC_ID=e1", &command),
        ["BENCH_EXEC_ID=e1"]
    );
    assert_eq!(
        exec_environment("BENCH_EXEC_ID=e1", &command.owned_by("s1/site")),
        ["BENCH_EXEC_ID=e1", "BENCH_OWNER=s1/site"]
    );
}
