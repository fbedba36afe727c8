//! What `sagactl` prints for people: tables of sagas and dead letters, one saga with
//! its step timings and timeline. (`--json` prints the API's replies instead.)

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{presets, ContentArrangement, Table};
use contracts::admin::{DeadLetterEntry, GetReply, SagaSummary};
use contracts::{ErrorInfo, ProgressEvent};

/// A time as printed: UTC, to the second.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A duration in milliseconds as people read it: `850ms`, `4.2s`, `3m07s`, `1h02m`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    table
}

fn error_text(error: &Option<ErrorInfo>) -> String {
    error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message))
        .unwrap_or_default()
}

/// Sagas as a table, newest first.
pub fn sagas(sagas: &[SagaSummary]) -> String {
    let mut table = table(&[
        "SAGA",
        "SUBDOMAIN",
        "STATUS",
        "STEP",
        "RUN",
        "CREATED",
        "UPDATED",
        "ERROR",
    ]);
    for saga in sagas {
        table.add_row(vec![
            saga.saga_id.to_string(),
            saga.subdomain.clone(),
            saga.status.as_str().to_string(),
            saga.step.clone().unwrap_or_else(|| "-".into()),
            saga.run.to_string(),
            time(saga.created_at),
            time(saga.updated_at),
            error_text(&saga.error),
        ]);
    }
    trimmed(&table)
}

/// The standby pool: its size and where it comes from, counts, the last hour's
/// figures, then each standby.
pub fn pool(reply: &contracts::pool::PoolReply) -> String {
    use contracts::pool::PoolSizeSource;
    let mut out = String::new();
    let source = match reply.source {
        PoolSizeSource::Configured => "STANDBY_POOL_SIZE".to_string(),
        PoolSizeSource::Operator => format!(
            "set by an operator; STANDBY_POOL_SIZE is {}",
            reply.configured_size
        ),
    };
    let _ = writeln!(out, "size        {} ({source})", reply.size);
    if let Some(action) = &reply.last_action {
        let what = if action.action == "pool_size_cleared" {
            "cleared"
        } else {
            "set"
        };
        let why = if action.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", action.reason)
        };
        let _ = writeln!(
            out,
            "last change {what} by {} at {}{why}",
            action.operator,
            time(action.at)
        );
    }
    let c = &reply.counts;
    let _ = writeln!(
        out,
        "standbys    {} ready, {} building, {} claimed, {} discarding",
        c.ready, c.building, c.claimed, c.discarding
    );
    let _ = writeln!(
        out,
        "last hour   {} taken, {} missed (signups that found none ready)",
        reply.taken_last_hour, reply.missed_last_hour
    );
    if !reply.standbys.is_empty() {
        let mut table = table(&["STANDBY", "SITE", "STATE", "SINCE", "CLAIMED BY"]);
        for standby in &reply.standbys {
            let state = serde_json::to_value(standby.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            table.add_row(vec![
                standby.standby_id.to_string(),
                standby.site_name.clone(),
                state,
                time(standby.since),
                standby
                    .claimed_by
                    .map_or_else(|| "-".into(), |id| id.to_string()),
            ]);
        }
        let _ = writeln!(out, "\n{}", trimmed(&table));
    }
    out
}

/// A table without the spaces the preset leaves at the ends of lines.
fn trimmed(table: &Table) -> String {
    table
        .lines()
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn event_line(event: &ProgressEvent, start: DateTime<Utc>) -> String {
    let offset = (event.at - start).num_milliseconds();
    let step = match (&event.step, event.step_status) {
        (Some(step), Some(status)) => format!("{step} {}", format!("{status:?}").to_lowercase()),
        (Some(step), None) => step.clone(),
        _ => String::new(),
    };
    let attempt = if event.attempt > 0 {
        format!("#{}", event.attempt)
    } else {
        String::new()
    };
    format!(
        "{:>3}  +{:<8} {:<20} {:<26} {:<3} {}",
        event.sequence,
        duration(offset),
        event.status.as_str(),
        step,
        attempt,
        event.message
    )
}

/// The events of the last run: those after the last end that a new run followed.
pub fn last_run(timeline: &[ProgressEvent]) -> &[ProgressEvent] {
    let start = timeline
        .windows(2)
        .rposition(|pair| pair[0].status.is_terminal() && !pair[1].status.is_terminal())
        .map_or(0, |i| i + 1);
    &timeline[start..]
}

/// One event as `watch` prints it when there are no bars: its offset from `start`.
pub fn event(event: &ProgressEvent, start: DateTime<Utc>) -> String {
    event_line(event, start)
}

/// One saga in full: summary, steps, timeline, operator actions.
pub fn saga(reply: &GetReply) -> String {
    let mut out = String::new();
    let Some(saga) = &reply.saga else {
        return "no such saga\n".into();
    };
    let site = reply
        .timeline
        .first()
        .map(|e| format!(" ({})", e.site_name))
        .unwrap_or_default();
    let took = (saga.updated_at - saga.created_at).num_milliseconds();
    let _ = writeln!(out, "saga       {}", saga.saga_id);
    let _ = writeln!(out, "subdomain  {}{site}", saga.subdomain);
    let at = saga
        .step
        .as_deref()
        .map(|s| format!(" at {s}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "status     {} (run {}){at}",
        saga.status.as_str(),
        saga.run
    );
    if let Some(error) = &saga.error {
        let _ = writeln!(out, "error      {}: {}", error.code, error.message);
        if let Some(cause) = &error.cause {
            let _ = writeln!(out, "cause      {}: {}", cause.code, cause.message);
        }
    }
    let _ = writeln!(
        out,
        "created    {}   updated {}   ({} in all)",
        time(saga.created_at),
        time(saga.updated_at),
        duration(took)
    );
    if let Some(result) = reply
        .timeline
        .iter()
        .rev()
        .find_map(|e| e.result.as_ref())
        .filter(|_| saga.status == contracts::SagaStatus::Completed)
    {
        if let Some(url) = result.get("site_url").and_then(|u| u.as_str()) {
            let _ = writeln!(out, "site       {url}");
        }
    }

    // Each step's time in the run that counts, the last (the API's `steps` count
    // every run; --json shows them).
    let run = last_run(&reply.timeline);
    let timings = contracts::admin::step_timings(run);
    if !timings.is_empty() {
        if saga.run > 1 {
            let _ = writeln!(out, "\nsteps of run {}:", saga.run);
        }
        let mut steps = table(&["STEP", "LAST", "DURATION", "ATTEMPTS", "RETRIES", "UNDOS"]);
        for step in &timings {
            steps.add_row(vec![
                step.step.clone(),
                step.last_status
                    .map(|s| format!("{s:?}").to_lowercase())
                    .unwrap_or_else(|| "-".into()),
                duration(step.duration_ms),
                step.attempts.to_string(),
                step.retries.to_string(),
                step.undos.to_string(),
            ]);
        }
        let gap = if saga.run > 1 { "" } else { "\n" };
        let _ = writeln!(out, "{gap}{}", trimmed(&steps));
    }

    if let Some(first) = reply.timeline.first() {
        let _ = writeln!(out, "\ntimeline (from {})", time(first.at));
        for event in &reply.timeline {
            let _ = writeln!(out, "{}", event_line(event, first.at).trim_end());
        }
    }

    if !reply.operator_actions.is_empty() {
        let _ = writeln!(out, "\noperator actions");
        for action in &reply.operator_actions {
            let letter = action
                .dead_letter
                .map(|n| format!(" of dead letter {n}"))
                .unwrap_or_default();
            let reason = if action.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", action.reason)
            };
            let _ = writeln!(
                out,
                "  {}  {} by {}{letter}{reason}",
                time(action.at),
                action.action,
                action.operator
            );
        }
    }
    out
}

/// The `saga_id`, `reason` and `deliveries` a letter names, when it names them.
fn letter_field(letter: &serde_json::Value, name: &str) -> String {
    match letter.get(name) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Dead letters as a table, newest first.
pub fn dead_letters(letters: &[DeadLetterEntry]) -> String {
    let mut table = table(&["SEQ", "SUBJECT", "AT", "SAGA", "DELIVERIES", "REASON"]);
    for entry in letters {
        let saga = match letter_field(&entry.letter, "saga_id") {
            s if s.is_empty() => letter_field(&entry.letter, "signup_id"),
            s => s,
        };
        table.add_row(vec![
            entry.sequence.to_string(),
            entry.subject.clone(),
            letter_field(&entry.letter, "at"),
            saga,
            letter_field(&entry.letter, "deliveries"),
            letter_field(&entry.letter, "reason"),
        ]);
    }
    trimmed(&table)
}

/// One dead letter in full.
pub fn dead_letter(entry: &DeadLetterEntry) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sequence   {}", entry.sequence);
    let _ = writeln!(out, "subject    {}", entry.subject);
    let pretty = serde_json::to_string_pretty(&entry.letter).unwrap_or_default();
    let _ = writeln!(out, "letter\n{pretty}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::SagaStatus;

    fn event(sequence: u64, status: SagaStatus) -> ProgressEvent {
        ProgressEvent {
            saga_id: uuid::Uuid::nil(),
            sequence,
            subdomain: "acme".into(),
            site_name: "acme.example.test".into(),
            status,
            step: None,
            step_status: None,
            attempt: 0,
            percent: 0,
            message: String::new(),
            error: None,
            result: None,
            at: Utc::now(),
            operator_action: None,
        }
    }

    #[test]
    fn the_last_run_starts_after_the_last_end_a_run_followed() {
        use SagaStatus::*;
        let one = [event(1, Accepted), event(2, Running), event(3, RolledBack)];
        assert_eq!(last_run(&one).len(), 3);
        let two = [
            event(1, Running),
            event(2, RolledBack),
            event(3, Running),
            event(4, Completed),
        ];
        assert_eq!(last_run(&two).first().map(|e| e.sequence), Some(3));
        assert!(last_run(&[]).is_empty());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(4_200), "4.2s");
        assert_eq!(duration(187_000), "3m07s");
        assert_eq!(duration(3_720_000), "1h02m");
        assert_eq!(duration(-5), "0ms");
    }
}
