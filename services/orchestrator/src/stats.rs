//! The dashboard's headline figures, read from the store: success rate and time to
//! ready of the sagas created within a window, and the sagas in flight and needing
//! attention now. The figures mean what the metrics and alerts mean (README,
//! "Metrics"): success is completed among the sagas that ran (a rejected signup is the
//! user's input, not a provisioning failure), and "needing attention" is the gauge's
//! `compensation_failed` plus `stuck` ([`crate::observe::Snapshot`]).

use chrono::{DateTime, TimeDelta, Utc};
use contracts::admin::SagaKind;
use contracts::SagaStatus;
use serde::Serialize;

use crate::observe::Snapshot;
use crate::saga::Saga;
use crate::store::{ListCursor, ListQuery, SagaStore};

/// At most this many sagas of the window are read; past it the figures are those of
/// the newest ones and [`Stats::truncated`] says so.
const MAX_SAGAS: usize = 20_000;

/// The longest window asked for.
pub(crate) const MAX_WINDOW: TimeDelta = TimeDelta::days(30);

/// The headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct Stats {
    /// The window, as asked (`24h`, `90m`, `7d`).
    pub window: String,
    /// Its start: the figures of the window are over sagas created at or after it.
    pub since: DateTime<Utc>,
    /// Which sagas the window's figures are over: signups (the default) or the
    /// standby pool's builds. In flight and needing attention count every saga.
    pub kind: SagaKind,
    /// How many sagas of each outcome were created in the window, by status
    /// (`completed`, `rolled_back`, `rejected`, `compensation_failed`, and those still
    /// in flight under their current status).
    pub counts: Counts,
    /// Completed among those that ran and ended (`completed`, `rolled_back`,
    /// `compensation_failed`), 0 to 1; absent when none ended.
    pub success_rate: Option<f64>,
    /// From signup to ready (`created_at` to completion) of the completed sagas of the
    /// window.
    pub time_to_ready: TimeToReady,
    /// Sagas not ended now, whenever they started.
    pub in_flight: usize,
    /// Sagas an operator must look at now: `compensation_failed` ones and those stuck
    /// (their timer over 5 minutes past), as the `saga_needing_attention` gauge counts.
    pub needing_attention: NeedingAttention,
    /// Whether the window held more than 20000 sagas (the figures are then those of the
    /// newest 20000).
    pub truncated: bool,
}

/// Sagas of the window by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Counts {
    /// All of them.
    pub total: usize,
    /// Ended `completed`.
    pub completed: usize,
    /// Ended `rolled_back`.
    pub rolled_back: usize,
    /// Ended `compensation_failed`.
    pub compensation_failed: usize,
    /// Ended `rejected` (not counted in the success rate).
    pub rejected: usize,
    /// Not ended yet.
    pub in_flight: usize,
}

/// Time to ready of the completed sagas of the window, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct TimeToReady {
    /// How many completed sagas the figures are over.
    pub count: usize,
    /// The median (absent without completed sagas).
    pub median_ms: Option<i64>,
    /// The 90th percentile (nearest rank; absent without completed sagas).
    pub p90_ms: Option<i64>,
}

/// Sagas needing attention, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct NeedingAttention {
    /// Both reasons together.
    pub total: usize,
    /// Ended `compensation_failed` (until replayed).
    pub compensation_failed: usize,
    /// In flight with their timer over 5 minutes past.
    pub stuck: usize,
}

/// Reads a window such as `24h`, `90m` or `7d` (a whole number and a unit: `m`, `h`
/// or `d`), at most [`MAX_WINDOW`].
pub(crate) fn parse_window(text: &str) -> Result<TimeDelta, String> {
    let refuse = || format!("window {text:?} is not a duration such as 24h, 90m or 7d");
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(refuse)?;
    let amount: i64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| refuse())?;
    let window = match unit {
        'm' => TimeDelta::try_minutes(amount),
        'h' => TimeDelta::try_hours(amount),
        'd' => TimeDelta::try_days(amount),
        _ => None,
    }
    .ok_or_else(refuse)?;
    if window <= TimeDelta::zero() || window > MAX_WINDOW {
        return Err(format!("window {text:?} must be above 0 and at most 30d"));
    }
    Ok(window)
}

/// The value at percentile `p` (0 to 100) of `sorted` by nearest rank.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The figures of `window` (its text as asked, and its length), read from `store`.
pub(crate) async fn read<S: SagaStore>(
    store: &S,
    window: (&str, TimeDelta),
    kind: SagaKind,
    now: DateTime<Utc>,
) -> Result<Stats, crate::store::Error> {
    let since = now - window.1;
    let (mut sagas, truncated) = created_since(store, since).await?;
    sagas.retain(|saga| crate::admin::kind_of(saga) == kind);
    let in_flight = store.in_flight().await?;
    let attention = Snapshot::read(store, &in_flight, now).await?;
    let mut stats = figures(window.0, since, &sagas, truncated, &attention);
    stats.kind = kind;
    Ok(stats)
}

/// Every saga created at or after `since`, newest first, up to [`MAX_SAGAS`]; whether
/// there were more.
async fn created_since<S: SagaStore>(
    store: &S,
    since: DateTime<Utc>,
) -> Result<(Vec<Saga>, bool), crate::store::Error> {
    let mut query = ListQuery {
        since: Some(since),
        limit: 500,
        ..ListQuery::default()
    };
    let mut sagas = Vec::new();
    loop {
        let page = store.list_page(&query).await?;
        let exhausted = page.len() < query.limit as usize;
        query.after = page.last().map(ListCursor::of);
        sagas.extend(page);
        if sagas.len() >= MAX_SAGAS {
            sagas.truncate(MAX_SAGAS);
            return Ok((sagas, !exhausted));
        }
        if exhausted {
            return Ok((sagas, false));
        }
    }
}

/// The figures over `sagas` (those of the window) and the store's `attention` now.
fn figures(
    window: &str,
    since: DateTime<Utc>,
    sagas: &[Saga],
    truncated: bool,
    attention: &Snapshot,
) -> Stats {
    let mut counts = Counts {
        total: sagas.len(),
        ..Counts::default()
    };
    let mut ready = Vec::new();
    for saga in sagas {
        match saga.status {
            SagaStatus::Completed => {
                counts.completed += 1;
                // A completed saga changes no more: its last change is its completion.
                ready.push((saga.updated_at - saga.created_at).num_milliseconds());
            }
            SagaStatus::RolledBack => counts.rolled_back += 1,
            SagaStatus::CompensationFailed => counts.compensation_failed += 1,
            SagaStatus::Rejected => counts.rejected += 1,
            _ => counts.in_flight += 1,
        }
    }
    ready.sort_unstable();
    let ran = counts.completed + counts.rolled_back + counts.compensation_failed;
    Stats {
        window: window.to_string(),
        since,
        kind: SagaKind::Signup,
        success_rate: (ran > 0).then(|| counts.completed as f64 / ran as f64),
        counts,
        time_to_ready: TimeToReady {
            count: ready.len(),
            median_ms: percentile(&ready, 50),
            p90_ms: percentile(&ready, 90),
        },
        in_flight: attention.in_flight,
        needing_attention: NeedingAttention {
            total: attention.compensation_failed + attention.stuck,
            compensation_failed: attention.compensation_failed,
            stuck: attention.stuck,
        },
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use contracts::signup::AuthProvider;
    use contracts::TenantContext;
    use uuid::Uuid;

    use super::*;
    use crate::saga::Phase;
    use crate::store::MemoryStore;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
            .single()
            .expect("valid time")
    }

    /// A saga created `ago` before `t0`, ended (or not) `status` after `took`.
    fn saga(n: usize, ago: TimeDelta, status: SagaStatus, took: TimeDelta) -> Saga {
        let tenant = TenantContext {
            subdomain: format!("tenant{n}"),
            site_name: format!("tenant{n}.localhost"),
            organization_name: "Org".into(),
            admin_email: "admin@example.com".into(),
            admin_full_name: "Admin".into(),
            auth_provider: AuthProvider::Google,
            admin_password: None,
            standby: None,
            standby_build: false,
        };
        let mut saga = Saga::accepted(Uuid::new_v4(), tenant, t0() - ago);
        saga.status = status;
        saga.updated_at = saga.created_at + took;
        if status.is_terminal() {
            saga.phase = Phase::Finished;
        }
        saga
    }

    #[tokio::test]
    async fn the_figures_count_the_window_and_the_attention_now() {
        let store = MemoryStore::default();
        let (hour, second) = (TimeDelta::hours(1), TimeDelta::seconds(1));
        let sagas = [
            saga(1, hour, SagaStatus::Completed, second * 10),
            saga(2, hour * 2, SagaStatus::Completed, second * 20),
            saga(3, hour * 3, SagaStatus::Completed, second * 40),
            saga(4, hour * 4, SagaStatus::RolledBack, second * 5),
            saga(5, hour * 5, SagaStatus::Rejected, TimeDelta::zero()),
            saga(6, hour * 6, SagaStatus::CompensationFailed, second * 9),
            saga(7, TimeDelta::minutes(1), SagaStatus::Running, second),
            // Outside the day: counted only where the figure is "now".
            saga(8, hour * 30, SagaStatus::Completed, second * 1000),
            saga(9, hour * 30, SagaStatus::CompensationFailed, second),
        ];
        for saga in &sagas {
            store.insert(saga, &[]).await.expect("insert");
        }
        // A standby pool's build is no signup: counted apart.
        let mut build = saga(10, hour, SagaStatus::RolledBack, second);
        build.tenant.standby_build = true;
        store.insert(&build, &[]).await.expect("insert");
        let stats = read(
            &store,
            ("24h", TimeDelta::hours(24)),
            SagaKind::Signup,
            t0(),
        )
        .await
        .expect("stats");
        assert_eq!(stats.since, t0() - TimeDelta::hours(24));
        assert_eq!(
            stats.counts,
            Counts {
                total: 7,
                completed: 3,
                rolled_back: 1,
                compensation_failed: 1,
                rejected: 1,
                in_flight: 1,
            }
        );
        assert_eq!(stats.success_rate, Some(0.6), "3 of 5 that ran");
        assert_eq!(
            stats.time_to_ready,
            TimeToReady {
                count: 3,
                median_ms: Some(20_000),
                p90_ms: Some(40_000),
            }
        );
        assert_eq!(stats.in_flight, 1);
        assert_eq!(stats.needing_attention.compensation_failed, 2);
        assert!(!stats.truncated);
        let builds = read(
            &store,
            ("24h", TimeDelta::hours(24)),
            SagaKind::StandbyBuild,
            t0(),
        )
        .await
        .expect("stats");
        assert_eq!((builds.counts.total, builds.counts.rolled_back), (1, 1));

        let empty = read(
            &store,
            ("10m", TimeDelta::minutes(10)),
            SagaKind::Signup,
            t0() + hour * 100,
        )
        .await
        .expect("stats");
        assert_eq!(empty.counts.total, 0);
        assert_eq!(empty.success_rate, None);
        assert_eq!(empty.time_to_ready.median_ms, None);
    }

    #[test]
    fn windows_are_read_or_refused() {
        assert_eq!(parse_window("24h"), Ok(TimeDelta::hours(24)));
        assert_eq!(parse_window("90m"), Ok(TimeDelta::minutes(90)));
        assert_eq!(parse_window("7d"), Ok(TimeDelta::days(7)));
        for bad in [
            "",
            "h",
            "24",
            "0h",
            "-1h",
            "31d",
            "1w",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&values, 50), Some(5));
        assert_eq!(percentile(&values, 90), Some(9));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
