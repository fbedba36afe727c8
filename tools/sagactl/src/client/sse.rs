//! A saga's progress over the HTTP API: its Server-Sent Events, decoded from bytes
//! (a character may be split across chunks), resumed with `Last-Event-ID` when the
//! connection drops or the server ends the stream before the saga's end (an
//! orchestrator restarting ends it cleanly), a bounded number of times with backoff.
//!
//! Architecture Invariant: a watch ends without an error only after the terminal
//! event of the saga's current run; any other end is an error (exit 3), never exit 0.

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use contracts::ProgressEvent;
use reqwest::{Method, Response, StatusCode};
use uuid::Uuid;

use super::http::{Access, ApiError, HttpClient};
use crate::error::Error;

/// The waits between attempts to resume a stream: from half a second up to ten, about
/// a minute in all (time for an orchestrator to restart, or a standby to lead).
pub(super) fn resume_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(500))
        .with_max_delay(std::time::Duration::from_secs(10))
        .with_max_times(8)
        .with_jitter()
}

/// Server-Sent Events decoded from the bytes as they come: whole lines only, so a
/// character split across two chunks is read whole.
#[derive(Default)]
pub(super) struct SseDecoder {
    buffer: Vec<u8>,
    /// The `data` of the event being read (several `data:` lines join with `\n`).
    data: Option<String>,
}

impl SseDecoder {
    /// Adds bytes read from the stream.
    pub(super) fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole event, if the bytes so far hold one; an event that is not a
    /// progress event is an error (skipping it would hide a step of the saga).
    pub(super) fn next_event(&mut self) -> Result<Option<ProgressEvent>, Error> {
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).map_err(|e| unreadable(&e))?;
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    return serde_json::from_str(&data)
                        .map(Some)
                        .map_err(|e| unreadable(&e));
                }
                continue;
            }
            // `event:`, `id:`, `retry:` and comments (`:` keep-alives) need nothing:
            // the event's own `sequence` is its id.
            if let Some(value) = line.strip_prefix("data:") {
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                }
            }
        }
        Ok(None)
    }
}

fn unreadable(e: &dyn std::fmt::Display) -> Error {
    Error::Unreachable(format!(
        "an event of the saga's stream is unreadable ({e}): is --api the orchestrator's HTTP API, of this release?"
    ))
}

/// One saga's Server-Sent Events, read as they come.
pub struct SseEvents {
    client: HttpClient,
    saga_id: Uuid,
    response: Option<Response>,
    decoder: SseDecoder,
    /// The last event's id (its sequence), to resume after.
    last: u64,
    /// The saga's last sequence when the watch began: a terminal event before it is
    /// an earlier run's end (a replay follows), as the server counts it.
    latest: u64,
    /// Whether the last event handed out ended the current run.
    ended: bool,
    backoff: ExponentialBuilder,
    /// The waits left in the current series of resumes (none since the last event).
    resuming: Option<ExponentialBackoff>,
}

impl SseEvents {
    /// `GET /api/v1/sagas/{id}/events`; an error at once when it cannot be opened.
    pub(super) async fn open(
        client: HttpClient,
        saga_id: Uuid,
        latest: u64,
        backoff: ExponentialBuilder,
    ) -> Result<Self, Error> {
        let mut events = Self {
            client,
            saga_id,
            response: None,
            decoder: SseDecoder::default(),
            last: 0,
            latest,
            ended: false,
            backoff,
            resuming: None,
        };
        events.response = Some(events.connect().await?);
        Ok(events)
    }

    async fn connect(&self) -> Result<Response, Error> {
        let mut request = self.client.call(
            Method::GET,
            &format!("/api/v1/sagas/{}/events", self.saga_id),
            Access::Read,
        );
        if self.last > 0 {
            request = request.header("Last-Event-ID", self.last.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.client.unreachable(&e))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(Error::Unreachable(
                "401 Unauthorized from the saga's events: set PROVISIONING_READ_TOKEN (or PROVISIONING_API_SECRET) to the orchestrator's".into(),
            ));
        }
        if !response.status().is_success() {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            return Err(match serde_json::from_slice::<ApiError>(&body) {
                Ok(refusal) => Error::refused(&refusal.error),
                Err(_) => Error::Unreachable(format!("{status} from the saga's events")),
            });
        }
        Ok(response)
    }

    /// The next event; `None` once the server ended the stream after the end of the
    /// saga's current run. An earlier end is resumed; when it cannot be, an error.
    pub async fn next(&mut self) -> Result<Option<ProgressEvent>, Error> {
        loop {
            if let Some(event) = self.decoder.next_event()? {
                // No repeat, whatever the server does on a resume.
                if event.sequence <= self.last {
                    continue;
                }
                self.last = event.sequence;
                self.ended = event.status.is_terminal() && event.sequence >= self.latest;
                self.resuming = None;
                return Ok(Some(event));
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            let why = match response.chunk().await {
                Ok(Some(chunk)) => {
                    self.decoder.push(&chunk);
                    continue;
                }
                Ok(None) if self.ended => {
                    self.response = None;
                    return Ok(None);
                }
                Ok(None) => "ended before the saga did".to_string(),
                Err(e) => format!("dropped ({e})"),
            };
            self.resume(why).await?;
        }
    }

    /// Opens the stream again after the last event seen (no gap, no repeat), waiting
    /// longer each time; an error once the waits are used up.
    async fn resume(&mut self, mut why: String) -> Result<(), Error> {
        self.response = None;
        // What was read of an unfinished event comes again after `Last-Event-ID`.
        self.decoder = SseDecoder::default();
        let mut waits = self.resuming.take().unwrap_or_else(|| self.backoff.build());
        loop {
            let Some(wait) = waits.next() else {
                return Err(Error::Unreachable(format!(
                    "the event stream ended before the saga did (it {why}); run `sagactl watch {}` again",
                    self.saga_id
                )));
            };
            eprintln!(
                "sagactl: the event stream {why}; resuming after event {} in {:.1}s",
                self.last,
                wait.as_secs_f32()
            );
            tokio::time::sleep(wait).await;
            match self.connect().await {
                Ok(response) => {
                    self.response = Some(response);
                    self.resuming = Some(waits);
                    return Ok(());
                }
                // The saga is gone or the request is wrong: resuming will not help.
                Err(refused @ Error::Refused(_)) => return Err(refused),
                Err(e) => why = format!("could not be resumed: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::extract::State;
    use axum::http::{header, HeaderMap};
    use axum::routing::get;
    use contracts::SagaStatus;

    use super::*;
    use crate::client::Client;
    use crate::credentials::HttpCredentials;

    fn event(sequence: u64, status: SagaStatus, message: &str) -> ProgressEvent {
        ProgressEvent {
            saga_id: Uuid::nil(),
            sequence,
            subdomain: "acme".into(),
            site_name: "acme.example.test".into(),
            status,
            step: None,
            step_status: None,
            attempt: 1,
            percent: 10,
            message: message.into(),
            error: None,
            result: None,
            at: chrono::Utc::now(),
            operator_action: None,
        }
    }

    /// One event as the orchestrator sends it.
    fn block(event: &ProgressEvent) -> String {
        let data = serde_json::to_string(event).expect("json");
        format!("event: progress\nid: {}\ndata: {data}\n\n", event.sequence)
    }

    #[test]
    fn a_character_split_across_chunks_is_read_whole() {
        let sent = event(1, SagaStatus::Running, "Créé ✔ — 東京 ready");
        let bytes = block(&sent).replace('\n', "\r\n").into_bytes();
        // Cut inside the three bytes of 東.
        let cut = bytes
            .windows(3)
            .position(|w| w == "東".as_bytes())
            .expect("東")
            + 1;
        let mut decoder = SseDecoder::default();
        decoder.push(b":keep-alive\n\n");
        decoder.push(&bytes[..cut]);
        assert!(decoder.next_event().expect("no error yet").is_none());
        decoder.push(&bytes[cut..]);
        let read = decoder.next_event().expect("readable").expect("an event");
        assert_eq!(read, sent);
        assert!(decoder.next_event().expect("nothing more").is_none());
    }

    #[test]
    fn an_event_that_does_not_parse_is_an_error() {
        let mut decoder = SseDecoder::default();
        decoder.push(b"event: progress\nid: 1\ndata: {\"sequence\": 1, \"mess\n\n");
        assert!(matches!(decoder.next_event(), Err(Error::Unreachable(_))));
        let mut decoder = SseDecoder::default();
        decoder.push(b"data: {\"saga_id\": \"\xff\xfe\"}\n\n");
        assert!(matches!(decoder.next_event(), Err(Error::Unreachable(_))));
    }

    /// Each request's `Last-Event-ID`, in order.
    type Asked = Arc<Mutex<Vec<Option<u64>>>>;

    /// An events endpoint on 127.0.0.1 whose stream ends cleanly after what `script`
    /// gives for the request's `Last-Event-ID` (as an orchestrator restarting does).
    async fn serve(script: fn(Option<u64>) -> Vec<ProgressEvent>) -> (Client, Asked) {
        let asked = Asked::default();
        let handler = move |State(asked): State<Asked>, headers: HeaderMap| async move {
            let after = headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            asked.lock().expect("lock").push(after);
            let body: String = script(after).iter().map(block).collect();
            ([(header::CONTENT_TYPE, "text/event-stream")], body)
        };
        let app = axum::Router::new()
            .route("/api/v1/sagas/{id}/events", get(handler))
            .with_state(asked.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let credentials = HttpCredentials {
            read_token: None,
            secret: None,
        };
        let mut client =
            HttpClient::new(&base, credentials, Duration::from_secs(5)).expect("client");
        client.resume = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_millis(5))
            .with_max_times(3);
        (Client::Http(client), asked)
    }

    #[tokio::test]
    async fn a_stream_ended_before_the_saga_is_resumed_after_the_last_event() {
        let (client, asked) = serve(|after| match after {
            None => vec![
                event(1, SagaStatus::Running, "database"),
                event(2, SagaStatus::Compensating, "undoing"),
            ],
            Some(2) => vec![event(3, SagaStatus::RolledBack, "rolled back")],
            Some(_) => vec![],
        })
        .await;
        let code = crate::watch::watch(&client, Uuid::nil(), 0, true).await;
        assert_eq!(
            code.expect("watched to its end"),
            crate::error::code::ROLLED_BACK
        );
        assert_eq!(*asked.lock().expect("lock"), vec![None, Some(2)]);
    }

    #[tokio::test]
    async fn an_earlier_runs_end_is_not_the_end() {
        // Replayed at sequence 3: the first run's end (2) is history.
        let (client, asked) = serve(|after| match after {
            None => vec![
                event(1, SagaStatus::Running, "database"),
                event(2, SagaStatus::RolledBack, "rolled back"),
            ],
            Some(2) => vec![
                event(3, SagaStatus::Running, "replayed"),
                event(4, SagaStatus::Completed, "done"),
            ],
            Some(_) => vec![],
        })
        .await;
        let code = crate::watch::watch(&client, Uuid::nil(), 3, true).await;
        assert_eq!(code.expect("watched to its end"), crate::error::code::OK);
        assert_eq!(*asked.lock().expect("lock"), vec![None, Some(2)]);
    }

    #[tokio::test]
    async fn a_stream_that_keeps_ending_early_is_an_error_never_exit_0() {
        let (client, asked) = serve(|after| match after {
            None => vec![event(1, SagaStatus::Running, "database")],
            Some(_) => vec![],
        })
        .await;
        let saga = Uuid::new_v4();
        let refused = crate::watch::watch(&client, saga, 0, true)
            .await
            .expect_err("not seen to end");
        assert_eq!(refused.exit_code(), crate::error::code::UNREACHABLE);
        assert!(
            refused
                .to_string()
                .contains(&format!("run `sagactl watch {saga}` again")),
            "{refused}"
        );
        // The first request and three resumes after event 1.
        assert_eq!(
            *asked.lock().expect("lock"),
            vec![None, Some(1), Some(1), Some(1)]
        );
    }
}
