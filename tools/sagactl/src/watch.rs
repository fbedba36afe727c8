//! Following a saga to its end: one progress bar per step and one for the whole
//! saga (indicatif, on a terminal), or one line per event (when the output is not a
//! terminal, or with `--json` one JSON object per event); then the outcome, whose
//! exit code says how it ended.

use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::{ProgressEvent, SagaStatus, StepStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;

use crate::client::{Client, Follower};
use crate::error::{self, Error};
use crate::render;

/// The bars, or the lines, of one saga.
struct View {
    bars: MultiProgress,
    overall: ProgressBar,
    /// Each step's bar and when its current attempt or undo began (the event's time,
    /// so a saga watched after the fact shows its own durations).
    steps: Vec<(String, ProgressBar, DateTime<Utc>)>,
    json: bool,
    /// The saga's first event seen: lines show their time from it.
    start: Option<DateTime<Utc>>,
    /// The current run's first event: the outcome's time counts from it.
    run_start: Option<DateTime<Utc>>,
    last: Option<ProgressEvent>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl View {
    fn new(json: bool) -> Self {
        let target = if json {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bars = MultiProgress::with_draw_target(target);
        let overall = bars.add(ProgressBar::new(100));
        overall.set_style(style(
            "{prefix:<13.bold} [{bar:32.cyan/blue}] {pos:>3}%  {wide_msg}",
        ));
        overall.set_prefix("saga");
        Self {
            bars,
            overall,
            steps: Vec::new(),
            json,
            start: None,
            run_start: None,
            last: None,
        }
    }

    /// Whether bars are drawn (a terminal): else each event is printed as a line.
    fn drawn(&self) -> bool {
        !self.bars.is_hidden()
    }

    /// The step's bar (made when first seen) and the time its work began.
    fn step(&mut self, name: &str, at: DateTime<Utc>) -> (ProgressBar, &mut DateTime<Utc>) {
        let index = match self.steps.iter().position(|(n, _, _)| n == name) {
            Some(index) => index,
            None => {
                let bar = self.bars.add(ProgressBar::new(1));
                bar.set_style(style("{prefix:<13} {spinner} {wide_msg}"));
                bar.set_prefix(name.to_string());
                self.steps.push((name.to_string(), bar, at));
                self.steps.len() - 1
            }
        };
        let (_, bar, began) = &mut self.steps[index];
        (bar.clone(), began)
    }

    fn show(&mut self, event: &ProgressEvent) {
        // A replayed run starts after an ended one: its steps start again.
        if self.last.as_ref().is_some_and(|l| l.status.is_terminal()) && !event.status.is_terminal()
        {
            for (_, bar, _) in self.steps.drain(..) {
                bar.finish_and_clear();
            }
            self.run_start = Some(event.at);
        }
        let start = *self.start.get_or_insert(event.at);
        self.run_start.get_or_insert(event.at);
        if self.json {
            println!("{}", serde_json::to_string(event).unwrap_or_default());
        } else if !self.drawn() {
            println!("{}", render::event(event, start).trim_end());
        }
        self.overall.set_position(u64::from(event.percent));
        self.overall.set_message(event.message.clone());
        if let Some(name) = &event.step {
            let (bar, began) = self.step(name, event.at);
            if matches!(
                event.step_status,
                Some(StepStatus::Started | StepStatus::Compensating)
            ) {
                *began = event.at;
            }
            let took = render::duration((event.at - *began).num_milliseconds());
            match event.step_status {
                Some(StepStatus::Started) => {
                    bar.reset();
                    bar.set_style(style(
                        "{prefix:<13} {spinner:.cyan} {elapsed:>4} {wide_msg}",
                    ));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message(event.message.clone());
                }
                Some(StepStatus::Completed) => {
                    bar.set_style(style("{prefix:<13.green} ✔ {wide_msg}"));
                    bar.finish_with_message(format!("done in {took}"));
                }
                Some(StepStatus::Failed) => {
                    bar.set_style(style("{prefix:<13.red} ✘ {wide_msg}"));
                    let why = event
                        .error
                        .as_ref()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .unwrap_or_else(|| event.message.clone());
                    bar.finish_with_message(why);
                }
                Some(StepStatus::Compensating) => {
                    bar.reset();
                    bar.set_style(style(
                        "{prefix:<13.yellow} {spinner:.yellow} {elapsed:>4} {wide_msg}",
                    ));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message(event.message.clone());
                }
                Some(StepStatus::Compensated) => {
                    bar.set_style(style("{prefix:<13.yellow} ↺ {wide_msg}"));
                    bar.finish_with_message(format!("undone in {took}"));
                }
                Some(StepStatus::Output | StepStatus::Retrying) | None => {
                    bar.set_message(event.message.clone())
                }
            }
        }
        self.last = Some(event.clone());
    }

    /// Ends the bars and prints the outcome; the exit code. A saga not seen to end
    /// is an error: only a completed saga exits 0.
    fn finish(self, saga_id: Uuid) -> Result<u8, Error> {
        for (_, bar, _) in &self.steps {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        let Some(last) = self.last.filter(|l| l.status.is_terminal()) else {
            self.overall.abandon();
            return Err(Error::Unreachable(format!(
                "the event stream ended before the saga did; run `sagactl watch {saga_id}` again"
            )));
        };
        if last.status == SagaStatus::Completed {
            self.overall.finish();
        } else {
            self.overall.abandon();
        }
        if self.json {
            return Ok(error::for_status(last.status));
        }
        let took = self
            .run_start
            .map(|s| render::duration((last.at - s).num_milliseconds()))
            .unwrap_or_default();
        let why = last
            .error
            .as_ref()
            .map(|e| {
                let step = e
                    .step
                    .as_deref()
                    .map(|s| format!(" at {s}"))
                    .unwrap_or_default();
                format!("{}{step}: {}", e.code, e.message)
            })
            .unwrap_or_default();
        let outcome = match last.status {
            SagaStatus::Completed => {
                let site = last
                    .result
                    .as_ref()
                    .and_then(|r| r.get("site_url"))
                    .and_then(|u| u.as_str())
                    .unwrap_or(&last.site_name);
                format!("completed in {took}: {site}")
            }
            SagaStatus::RolledBack => format!(
                "rolled back in {took} ({why}); everything it made was removed: fix the cause, then sagactl replay {saga_id} --reason \"...\""
            ),
            SagaStatus::Rejected => format!("rejected ({why}): nothing was made"),
            SagaStatus::CompensationFailed => format!(
                "compensation_failed after {took} ({why}): an undo could not finish; fix it, then sagactl replay {saga_id} --reason \"...\" resumes the undo"
            ),
            // Not terminal: told above.
            other => other.as_str().to_string(),
        };
        println!("{outcome}");
        Ok(error::for_status(last.status))
    }
}

/// Follows `saga_id` until it ends (or, when it has ended, shows how); the exit code.
/// `latest` is the saga's last sequence when asked (0 for a new saga): its current
/// run's end is at or after it.
pub async fn watch(client: &Client, saga_id: Uuid, latest: u64, json: bool) -> Result<u8, Error> {
    let mut follower = client.follow(saga_id, latest).await?;
    let mut view = View::new(json);
    if !json && !view.drawn() {
        println!("saga {saga_id}");
    }
    for event in follower.stored().await? {
        view.show(&event);
    }
    let over = |view: &View| view.last.as_ref().is_some_and(|e| e.status.is_terminal());
    if !(matches!(follower, Follower::Nats(_)) && over(&view)) {
        while let Some(event) = follower.next().await? {
            view.show(&event);
            if matches!(follower, Follower::Nats(_)) && over(&view) {
                break;
            }
        }
    }
    view.finish(saga_id)
}
