//! `bench serve --port 0` of the emulator: the bench's web server, which user-step
//! sets the admin's password through (`BENCH_HTTP_URL`) and tests log in to, to see
//! who can get in.

use std::path::{Path, PathBuf};
use std::process::Child;

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
        let (child, url) = demo::programs::bench_serve(&crate::binary("bench-emulator"), root, log)
            .expect("bench serve starts");
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
