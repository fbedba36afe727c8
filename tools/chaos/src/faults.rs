//! The signups of a run and the failures injected into some of them, drawn from the
//! run's seed: which signups fail, and where (a bench command through the emulator's
//! `emulator.json`, filtered by site, or the Master stand-in).

use rand::rngs::StdRng;
use rand::Rng;
use uuid::Uuid;

/// A failure injected into one signup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// `bench new-site` fails for its site (permanent: the step fails at once).
    NewSite,
    /// `bench install-app` fails for its site, every attempt (retried, then undone).
    InstallApp,
    /// `bench add-system-manager` fails for its site, every attempt.
    AddSystemManager,
    /// The Master refuses the tenant record (417, permanent).
    MasterRefusal,
    /// The Master answers 503 twice around the time of this signup (transient: the
    /// saga may still complete; the two answers go to whichever POSTs come next).
    MasterUnavailable,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::NewSite,
        Fault::InstallApp,
        Fault::AddSystemManager,
        Fault::MasterRefusal,
        Fault::MasterUnavailable,
    ];

    /// Name in the figures.
    pub fn name(self) -> &'static str {
        match self {
            Fault::NewSite => "new-site",
            Fault::InstallApp => "install-app",
            Fault::AddSystemManager => "add-system-manager",
            Fault::MasterRefusal => "master-refusal",
            Fault::MasterUnavailable => "master-503",
        }
    }

    /// Whether every attempt of the step fails, so the saga can never complete.
    pub fn fails_every_attempt(self) -> bool {
        self != Fault::MasterUnavailable
    }

    /// Whether the fault is in building the site, which a signup that takes a standby
    /// over never does (its site is the standby's, built before).
    pub fn in_the_build(self) -> bool {
        matches!(self, Fault::NewSite | Fault::InstallApp)
    }
}

/// One signup of the run.
#[derive(Debug, Clone)]
pub struct Signup {
    /// `signup_id`, which is the saga id.
    pub id: Uuid,
    /// Unique to the run.
    pub subdomain: String,
    /// The admin password it carries (a secret the logs must not show).
    pub password: String,
    /// The failure injected, if any.
    pub fault: Option<Fault>,
}

impl Signup {
    /// The site it makes, under `parent` (the services' `PARENT_DOMAIN`).
    pub fn site(&self, parent: &str) -> String {
        format!("{}.{parent}", self.subdomain)
    }

    /// The payload, as the web app publishes it.
    pub fn payload(&self) -> serde_json::Value {
        serde_json::json!({
            "signup_id": self.id,
            "organization_name": format!("Chaos {}", self.subdomain),
            "subdomain": self.subdomain,
            "admin_email": format!("admin@{}.test", self.subdomain),
            "admin_full_name": "Chaos Admin",
            "admin_password": self.password,
            "auth_provider": "password",
        })
    }

    /// The admin user's email.
    pub fn admin_email(&self) -> String {
        format!("admin@{}.test", self.subdomain)
    }
}

/// `n` signups with subdomains `c<run_id>-<i>`; about `fault_percent` % of them get a
/// fault, the kinds in turn-free random order.
pub fn plan(rng: &mut StdRng, n: usize, run_id: &str, fault_percent: u32) -> Vec<Signup> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..n)
        .map(|i| {
            let fault = (rng.gen_range(0..100) < fault_percent)
                .then(|| Fault::ALL[rng.gen_range(0..Fault::ALL.len())]);
            let password: String = (0..20)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            Signup {
                id: uuid::Builder::from_random_bytes(rng.gen()).into_uuid(),
                subdomain: format!("c{run_id}-{i}"),
                password,
                fault,
            }
        })
        .collect()
}

/// `emulator.json` for the bench: a short pause between progress lines and one
/// scripted failure per bench fault, filtered by the signup's site.
pub fn emulator_settings(signups: &[Signup], parent: &str) -> serde_json::Value {
    let fail: Vec<serde_json::Value> = signups
        .iter()
        .filter_map(|s| {
            let command = match s.fault? {
                Fault::NewSite => "new-site",
                Fault::InstallApp => "install-app",
                Fault::AddSystemManager => "add-system-manager",
                Fault::MasterRefusal | Fault::MasterUnavailable => return None,
            };
            Some(serde_json::json!({ "command": command, "site": s.site(parent) }))
        })
        .collect();
    serde_json::json!({ "delay_ms": 5, "fail": fail })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_plan() {
        let a = plan(&mut StdRng::seed_from_u64(9), 50, "abc", 30);
        let b = plan(&mut StdRng::seed_from_u64(9), 50, "abc", 30);
        let shape = |p: &[Signup]| -> Vec<(Uuid, String, Option<Fault>)> {
            p.iter()
                .map(|s| (s.id, s.password.clone(), s.fault))
                .collect()
        };
        assert_eq!(shape(&a), shape(&b));
        assert!(a.iter().any(|s| s.fault.is_some()) && a.iter().any(|s| s.fault.is_none()));
    }

    #[test]
    fn bench_faults_name_their_site() {
        let mut signups = plan(&mut StdRng::seed_from_u64(1), 3, "x", 0);
        signups[1].fault = Some(Fault::InstallApp);
        signups[2].fault = Some(Fault::MasterRefusal);
        let settings = emulator_settings(&signups, "chaos.test");
        assert_eq!(
            settings["fail"],
            serde_json::json!([{"command": "install-app", "site": "cx-1.chaos.test"}])
        );
    }
}
