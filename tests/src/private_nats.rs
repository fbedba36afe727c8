//! A nats-server of a test's own: its own port and file store, stopped and started
//! again at will, with or without JetStream.

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

/// A nats-server of this test's own, killed when dropped.
pub struct PrivateNats {
    /// Whether it runs with JetStream (on by default).
    pub jetstream: bool,
    port: u16,
    store: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts one with JetStream, its store in `dir`.
    pub fn start(dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            jetstream: true,
            port,
            store: dir.join("jetstream"),
            log: dir.join("nats-server.log"),
            child: None,
        };
        nats.run();
        nats
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
        panic!("nats-server did not open port {}", self.port);
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
