//! A nats-server of a test's own: its own port and file store, stopped and started
//! again at will, with or without JetStream, and with or without the deployment's
//! users and permissions (`deploy/nats/auth.conf`, loaded as it is, passwords made up
//! per server and handed to it in its environment, as compose does).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The nats-server executable: `NATS_SERVER_BIN`, else the one on PATH, else Debian's.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    let bin = on_path.unwrap_or_else(|| "/usr/sbin/nats-server".into());
    assert!(
        bin.is_file(),
        "this test needs a nats-server executable (dev/test installs one); set NATS_SERVER_BIN"
    );
    bin
}

/// The users `deploy/nats/auth.conf` defines, each with the variable its password
/// comes from.
pub const DEPLOY_USERS: [(&str, &str); 7] = step_runtime::bus::DEPLOYMENT_USERS;

/// A user the harness adds to its own servers only (never to `deploy/`), allowed
/// everything: the tests look inside streams with it (events left on a work queue,
/// commands published by hand, a stream deleted to break a service).
pub const TEST_USER: &str = "test-harness";

/// The NATS user that serves `step` (`database` → `db-step`, ...).
pub fn step_user(step: &str) -> &'static str {
    match step {
        "database" => "db-step",
        "site" => "site-step",
        "admin_user" => "user-step",
        "registration" => "registry-step",
        other => panic!("no NATS user serves step {other:?}"),
    }
}

/// A nats-server of this test's own, killed when dropped.
pub struct PrivateNats {
    /// Whether it runs with JetStream (on by default).
    pub jetstream: bool,
    port: u16,
    dir: PathBuf,
    store: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// The users' passwords when it runs with the deployment's users.
    passwords: Option<BTreeMap<String, String>>,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts one with JetStream and no users, its store in `dir`.
    pub fn start(dir: &Path) -> Self {
        Self::launch(dir, None)
    }

    /// Starts one with JetStream and the deployment's users and permissions
    /// (`deploy/nats/auth.conf`) plus [`TEST_USER`], its files in `dir`.
    pub fn start_with_auth(dir: &Path) -> Self {
        let passwords = DEPLOY_USERS
            .iter()
            .map(|(user, _)| *user)
            .chain([TEST_USER])
            // A letter first: nats-server parses a variable's value as a config value,
            // and one starting with digits may read as a number (README, "The bus").
            .map(|user| {
                let password = format!("p{}", uuid::Uuid::new_v4().simple());
                (user.to_string(), password)
            })
            .collect();
        Self::launch(dir, Some(passwords))
    }

    fn launch(dir: &Path, passwords: Option<BTreeMap<String, String>>) -> Self {
        std::fs::create_dir_all(dir).expect("nats folder");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            jetstream: true,
            port,
            dir: dir.to_path_buf(),
            store: dir.join("jetstream"),
            log: dir.join("nats-server.log"),
            passwords,
            child: None,
        };
        nats.run();
        nats
    }

    /// `user`'s password on this server (one with the deployment's users).
    pub fn password(&self, user: &str) -> String {
        self.passwords
            .as_ref()
            .and_then(|p| p.get(user))
            .unwrap_or_else(|| panic!("this nats-server has no user {user:?}"))
            .clone()
    }

    /// The variables a process connecting as `user` gets: `NATS_URL`, `NATS_USER`,
    /// `NATS_PASSWORD` (only the URL on a server without users).
    pub fn env_for(&self, user: &str) -> Vec<(String, String)> {
        let mut env = vec![("NATS_URL".to_string(), self.url())];
        if self.passwords.is_some() {
            env.push(("NATS_USER".into(), user.into()));
            env.push(("NATS_PASSWORD".into(), self.password(user)));
        }
        env
    }

    /// `user`'s client settings, as a service reads them from [`PrivateNats::env_for`].
    pub fn config_for(&self, user: &str) -> step_runtime::bus::NatsConfig {
        let env = self.env_for(user);
        step_runtime::bus::NatsConfig::from_lookup(|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .expect("nats config")
    }

    /// A client connected as `user`, through the services' own connect.
    pub async fn connect_as(&self, user: &str) -> async_nats::Client {
        step_runtime::bus::connect(&self.config_for(user), user)
            .await
            .unwrap_or_else(|e| panic!("connecting as {user}: {e:#}"))
    }

    /// Where it listens.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and store).
    pub fn run(&mut self) {
        let mut command = Command::new(nats_server_bin());
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            command.arg("-js").arg("-sd").arg(&self.store);
        }
        if let Some(passwords) = &self.passwords {
            command.arg("-c").arg(self.write_auth_config());
            for (user, variable) in DEPLOY_USERS {
                command.env(variable, &passwords[user]);
            }
            command.env("NATS_TEST_HARNESS_PASSWORD", &passwords[TEST_USER]);
        }
        let child = command
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "nats-server did not open port {}: {}",
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Writes `auth.conf` (the deployment's, with [`TEST_USER`] added first in its
    /// list) and a server config including it, as nats.conf does; returns the config.
    fn write_auth_config(&self) -> PathBuf {
        let deployed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/auth.conf"),
        )
        .expect("deploy/nats/auth.conf");
        let list = "users = [\n";
        assert!(deployed.contains(list), "auth.conf has its users list");
        let auth = deployed.replacen(
            list,
            &format!("{list}    {{ user: {TEST_USER}, password: $NATS_TEST_HARNESS_PASSWORD }}\n"),
            1,
        );
        std::fs::write(self.dir.join("auth.conf"), auth).expect("auth.conf");
        // Included by a relative path: nats-server resolves it next to the config.
        let config = self.dir.join("nats.conf");
        std::fs::write(&config, "include ./auth.conf\n").expect("nats.conf");
        config
    }

    /// Kills it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
    }
}
