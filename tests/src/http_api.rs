//! The orchestrator's HTTP API as its clients use it: an orchestrator started with the
//! API's secrets on a port of its own, and a reader of Server-Sent Events.

use std::time::Duration;

use serde_json::Value;

use crate::Harness;

/// The write secret the API tests configure (`PROVISIONING_API_SECRET`).
pub const API_SECRET: &str = "write-secret-0123456789";
/// The read token the API tests configure (`PROVISIONING_READ_TOKEN`).
pub const READ_TOKEN: &str = "read-token-0123456789";

/// A free loopback port (bound, then released) for a service to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Harness {
    /// Starts an orchestrator in this process with the API's secrets and `settings`;
    /// its base URL (`http://127.0.0.1:<port>`).
    pub fn start_api(&mut self, settings: &[(&str, String)]) -> String {
        let port = free_port();
        let mut all = vec![
            ("HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("PROVISIONING_API_SECRET", API_SECRET.to_string()),
            ("PROVISIONING_READ_TOKEN", READ_TOKEN.to_string()),
            ("MASTER_SITE_NAME", "master.example.test".to_string()),
        ];
        all.extend(settings.iter().cloned());
        self.start_orchestrator_with(&all);
        format!("http://127.0.0.1:{port}")
    }
}

/// `GET /health` of `base` until its `role` is `role`; the body.
pub async fn wait_for_role(client: &reqwest::Client, base: &str, role: &str) -> Value {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            let body: Value = r.json().await.expect("json");
            if body["role"] == role {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} never became {role}")
}

/// Reads an SSE response to its end: each event's `id` and `data`.
pub async fn read_sse(response: reqwest::Response) -> Vec<(u64, Value)> {
    read_sse_until(response, |_| false).await
}

/// Reads an SSE response until it ends or `enough` says so of the events read.
pub async fn read_sse_until(
    mut response: reqwest::Response,
    enough: impl Fn(&[(u64, Value)]) -> bool,
) -> Vec<(u64, Value)> {
    let (mut pending, mut events) = (String::new(), Vec::new());
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), response.chunk())
        .await
        .expect("the stream goes on or ends within a minute")
        .expect("chunk")
    {
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Only whole events (ended by a blank line) are read; the rest waits.
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                events.push((
                    id.parse().expect("id"),
                    serde_json::from_str(data).expect("data"),
                ));
            }
        }
        if enough(&events) {
            break;
        }
    }
    events
}
