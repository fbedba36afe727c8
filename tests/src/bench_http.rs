//! `bench serve --port 0` of the emulator: the bench's web server, which user-step
//! sets the admin's password through (`BENCH_HTTP_URL`) and tests log in to, to see
//! who can get in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `bench serve` for one bench folder, killed on drop (a panicking test
/// included).
pub struct BenchHttp {
    child: Child,
    /// The bench folder it serves.
    pub root: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl BenchHttp {
    /// Starts it in `root`, its output in `log`; returns once it says where it runs.
    pub fn start(root: &Path, log: &Path) -> Self {
        let mut child = Command::new(crate::binary("bench-emulator"))
            .args(["serve", "--port", "0"])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("bench serve log"))
            .spawn()
            .expect("bench serve starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let url = loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            // Whole lines only: the server may be caught halfway through writing it
            // (stderr is unbuffered), and a URL cut before its port names port 80.
            if let Some(url) = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .find_map(|l| l.trim().strip_prefix("* Running on "))
            {
                break url.to_string();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("bench serve did not start: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            root: root.to_path_buf(),
            url,
        }
    }

    /// The status `GET /api/method/frappe.auth.get_logged_user` answers with this token.
    pub async fn token(&self, site: &str, key: &str, secret: &str) -> u16 {
        reqwest::Client::new()
            .get(format!(
                "{}/api/method/frappe.auth.get_logged_user",
                self.url
            ))
            .header("X-Frappe-Site-Name", site)
            .header("Authorization", format!("token {key}:{secret}"))
            .send()
            .await
            .expect("bench serve answers")
            .status()
            .as_u16()
    }

    /// The status `POST /api/method/login` answers with these credentials.
    pub async fn login(&self, site: &str, usr: &str, pwd: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("{}/api/method/login", self.url))
            .header("X-Frappe-Site-Name", site)
            .json(&serde_json::json!({ "usr": usr, "pwd": pwd }))
            .send()
            .await
            .expect("bench serve answers")
            .status()
            .as_u16()
    }
}

impl Drop for BenchHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
