//! Turning a command's output bytes into [`Line`]s, as every driver must: segments
//! ended by `\n` or `\r` (bench redraws progress bars with `\r`), scrubbed of the
//! command's secrets, sent as they come, the last ones kept for error messages.

use std::collections::VecDeque;

use tokio::sync::mpsc;

use crate::{Channel, CommandLine, Line};

/// Enough for a site_config.json read with `cat`, and a traceback's end.
const TAIL_LINES: usize = 200;

/// Splits output into lines, forwards them and keeps the tail. One per command (the
/// Docker driver) or per channel (the local driver reads each pipe in its own task).
pub(crate) struct LineSink {
    command: CommandLine,
    lines: mpsc::UnboundedSender<Line>,
    pending_stdout: Vec<u8>,
    pending_stderr: Vec<u8>,
    tail_stdout: VecDeque<Line>,
    tail_stderr: VecDeque<Line>,
}

impl LineSink {
    pub(crate) fn new(command: CommandLine, lines: mpsc::UnboundedSender<Line>) -> Self {
        Self {
            command,
            lines,
            pending_stdout: Vec::new(),
            pending_stderr: Vec::new(),
            tail_stdout: VecDeque::new(),
            tail_stderr: VecDeque::new(),
        }
    }

    /// Takes the next bytes of `channel`; a line may span several calls.
    pub(crate) fn feed(&mut self, channel: Channel, bytes: &[u8]) {
        for byte in bytes {
            if *byte == b'\n' || *byte == b'\r' {
                let segment = std::mem::take(self.pending(channel));
                self.emit(channel, &segment);
            } else {
                self.pending(channel).push(*byte);
            }
        }
    }

    /// Emits what is left without a line end; returns the tail: stdout's last lines,
    /// then stderr's, so the last line is the error when there is one (the order
    /// between the two streams is lost in transit anyway).
    pub(crate) fn finish(mut self) -> Vec<Line> {
        for channel in [Channel::Stdout, Channel::Stderr] {
            let segment = std::mem::take(self.pending(channel));
            self.emit(channel, &segment);
        }
        self.tail_stdout.extend(self.tail_stderr);
        self.tail_stdout.into()
    }

    fn pending(&mut self, channel: Channel) -> &mut Vec<u8> {
        match channel {
            Channel::Stdout => &mut self.pending_stdout,
            Channel::Stderr => &mut self.pending_stderr,
        }
    }

    fn emit(&mut self, channel: Channel, bytes: &[u8]) {
        let text = self
            .command
            .scrub(String::from_utf8_lossy(bytes).trim_end());
        if text.is_empty() {
            return;
        }
        let line = Line { channel, text };
        let _ = self.lines.send(line.clone());
        let tail = match channel {
            Channel::Stdout => &mut self.tail_stdout,
            Channel::Stderr => &mut self.tail_stderr,
        };
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets::SecretString;

    #[test]
    fn lines_span_chunks_split_on_carriage_returns_and_lose_their_secrets() {
        let command = CommandLine::bench(["x"]).secret("--password", &SecretString::from("pw123"));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut sink = LineSink::new(command, tx);
        sink.feed(Channel::Stdout, b"Updating [=  ] 1");
        sink.feed(Channel::Stderr, b"error: pw");
        sink.feed(Channel::Stdout, b"0%\rUpdating [===] 100%\n\n");
        sink.feed(Channel::Stderr, b"123 refused");
        let tail = sink.finish();
        let texts: Vec<(Channel, String)> = tail.into_iter().map(|l| (l.channel, l.text)).collect();
        assert_eq!(
            texts,
            [
                (Channel::Stdout, "Updating [=  ] 10%".to_string()),
                (Channel::Stdout, "Updating [===] 100%".to_string()),
                (Channel::Stderr, "error: *** refused".to_string()),
            ]
        );
        assert_eq!(
            rx.try_recv().expect("sent as it came").text,
            "Updating [=  ] 10%"
        );
    }
}
