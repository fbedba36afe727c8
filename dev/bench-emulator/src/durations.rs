//! Real durations (`"durations": "real"` in `emulator.json`): how long each command
//! lasts on a quiet 2-core machine, as `FACTS.md` ("Durations") records them. They are
//! sleeps, no CPU, multiplied by `duration_scale` (1 by default), so that a test runs
//! the same shape faster.

use std::time::Duration;

use serde::Deserialize;

/// How long commands last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durations {
    /// As fast as the emulator goes: `delay_ms` between progress lines, nothing else.
    #[default]
    Fast,
    /// As long as on a quiet 2-core machine (below), times `duration_scale`.
    Real,
}

/// What every bench call costs before it does anything: Python starting and
/// importing Frappe (observed: about 0.25 s).
pub const START_MS: u64 = 250;

/// `new-site` with frappe alone, start included (observed: 14.3 s).
pub const NEW_SITE_MS: u64 = 14_300;

/// `install-app`, per app, start included. No figure was observed: ours (see FACTS.md).
pub const INSTALL_APP_MS: u64 = 30_000;

/// `PUT /api/resource/User/<email>` on `bench serve` (observed: 0.36 s).
pub const PUT_USER_MS: u64 = 360;

/// How long `command` lasts in all, start included (`detail`: the method of
/// `execute`). The 2.7 s observed for a claim (`set-config`, `add-system-manager`,
/// `generate_keys`, reading `api_key`) is split by us: 0.3 + 1.2 + 0.7 + 0.5 s.
pub fn total_ms(command: &str, detail: Option<&str>) -> u64 {
    match command {
        "new-site" => NEW_SITE_MS,
        "install-app" => INSTALL_APP_MS,
        "add-system-manager" => 1_200,
        // Saves the User document, as generate_keys does.
        "disable-user" => 700,
        "set-config" | "enable-scheduler" => 300,
        "version" => 500,
        "execute" => match detail.unwrap_or_default() {
            // Writes (a document saved, a row changed, sessions ended).
            "frappe.core.doctype.user.user.generate_keys"
            | "frappe.db.set_value"
            | "frappe.delete_doc"
            | "frappe.sessions.clear_sessions" => 700,
            // Reads.
            _ => 500,
        },
        // `serve`, usage errors, unknown commands: the start only.
        _ => START_MS,
    }
}

/// The timing `emulator.json` asks for.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub durations: Durations,
    pub scale: f64,
}

impl Timing {
    fn scaled(&self, ms: u64) -> Duration {
        match self.durations {
            Durations::Fast => Duration::ZERO,
            Durations::Real => {
                Duration::from_micros((ms as f64 * 1000.0 * self.scale.max(0.0)).round() as u64)
            }
        }
    }

    /// The start every call pays.
    pub fn start(&self) -> Duration {
        self.scaled(START_MS)
    }

    /// The rest of `command`'s time, after its start.
    pub fn work(&self, command: &str, detail: Option<&str>) -> Duration {
        self.scaled(total_ms(command, detail).saturating_sub(START_MS))
    }

    /// A `PUT /api/resource/User/...` request.
    pub fn put_user(&self) -> Duration {
        self.scaled(PUT_USER_MS)
    }

    /// Whether commands last their real time.
    pub fn real(&self) -> bool {
        self.durations == Durations::Real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_adds_up_to_what_was_observed() {
        let claim = total_ms("set-config", None)
            + total_ms("add-system-manager", None)
            + total_ms(
                "execute",
                Some("frappe.core.doctype.user.user.generate_keys"),
            )
            + total_ms("execute", Some("frappe.db.get_value"));
        assert_eq!(claim, 2_700);
        let fast = Timing {
            durations: Durations::Fast,
            scale: 1.0,
        };
        assert_eq!(fast.work("new-site", None), Duration::ZERO);
        let tenth = Timing {
            durations: Durations::Real,
            scale: 0.1,
        };
        assert_eq!(tenth.work("new-site", None), Duration::from_millis(1_405));
    }
}
