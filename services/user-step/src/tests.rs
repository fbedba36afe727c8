//! The step's decisions over a scripted bench (a fake: each command line gets the
//! exit code and output a rule gives it). What real Frappe answers is checked in the
//! bench emulator's facts and end to end (tests/tests/admin_user.rs, full_saga.rs).

use std::sync::Mutex;
use std::time::Duration;

use bench::{Bench, Channel, CommandLine, Error, Finished, Line};
use secrets::ExposeSecret;
use tokio::sync::mpsc;

use super::*;

/// Answers each command with the first rule whose text it contains; exit 0 and no
/// output otherwise. Keeps every command line it ran.
#[derive(Default)]
struct ScriptedBench {
    rules: Vec<(&'static str, i32, &'static str)>,
    ran: Mutex<Vec<String>>,
}

impl ScriptedBench {
    fn answering(rules: &[(&'static str, i32, &'static str)]) -> UserStep<Self, NoPasswords> {
        UserStep::new(
            Self {
                rules: rules.to_vec(),
                ran: Mutex::default(),
            },
            NoPasswords,
            Duration::from_secs(5),
            secrets::Keyring::random(&secrets::KeyId::parse("web").expect("id"))
                .recipient()
                .clone(),
        )
    }
}

/// The undo and the keys never set a password: this one fails if asked.
struct NoPasswords;

impl SitePasswords for NoPasswords {
    async fn set_password(
        &self,
        _site: &str,
        _email: &str,
        _token: ApiToken<'_>,
        _password: &secrets::SecretString,
    ) -> Result<(), StepError> {
        Err(StepError::permanent(
            "unexpected",
            "no password is set here",
        ))
    }
}

impl Bench for ScriptedBench {
    async fn run(
        &self,
        command: &CommandLine,
        _timeout: Duration,
        _lines: mpsc::UnboundedSender<Line>,
    ) -> Result<Finished, Error> {
        let shown = command.to_string();
        self.ran.lock().expect("ran").push(shown.clone());
        let (exit_code, printed) = self
            .rules
            .iter()
            .find(|(needle, _, _)| shown.contains(needle))
            .map(|(_, code, printed)| (*code, *printed))
            .unwrap_or((0, ""));
        let channel = if exit_code == 0 {
            Channel::Stdout
        } else {
            Channel::Stderr
        };
        Ok(Finished {
            exit_code,
            tail: printed
                .lines()
                .map(|text| Line {
                    channel,
                    text: text.into(),
                })
                .collect(),
        })
    }

    async fn check(&self) -> Result<(), String> {
        Ok(())
    }

    async fn stop_owned(&self, _owner: &str) -> Result<usize, Error> {
        Ok(0)
    }
}

fn ran(step: &UserStep<ScriptedBench, NoPasswords>) -> Vec<String> {
    step.bench.ran.lock().expect("ran").clone()
}

const EXISTS: &str = "frappe.db.exists";
const REFUSED: &str = "Traceback (most recent call last):\nfrappe.exceptions.ValidationError: There should remain at least one System Manager";

#[tokio::test]
async fn the_undo_revokes_before_it_deletes_and_ends_sessions_after() {
    let step = ScriptedBench::answering(&[(EXISTS, 0, "\"a@b.co\"")]);
    assert_eq!(step.remove("s.test", "a@b.co").await, Ok(Undone::Removed));
    let ran = ran(&step);
    let position = |needle: &str| {
        ran.iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not run: {ran:#?}"))
    };
    let delete = position("frappe.delete_doc");
    for revoke in ["'api_key', None", "'api_secret', None", "'enabled', 0"] {
        assert!(position(revoke) < delete, "{revoke} before the delete");
    }
    assert!(
        ran[delete].contains("'ignore_on_trash': True"),
        "{}",
        ran[delete]
    );
    assert!(position("clear_sessions") > delete);
    assert!(ran[position("clear_sessions")].contains("{'user': 'a@b.co', 'force': True}"));
}

#[tokio::test]
async fn a_kept_last_system_manager_counts_only_when_locked_out() {
    // Refused, and get_value shows it disabled and without a key.
    let kept =
        ScriptedBench::answering(&[(EXISTS, 0, "\"a@b.co\""), ("frappe.delete_doc", 1, REFUSED)]);
    assert_eq!(
        kept.remove("s.test", "a@b.co").await,
        Ok(Undone::KeptLockedOut)
    );
    assert!(ran(&kept)
        .last()
        .is_some_and(|c| c.contains("clear_sessions")));

    // Refused, but the key is still there: not done.
    let still_in = ScriptedBench::answering(&[
        (EXISTS, 0, "\"a@b.co\""),
        ("frappe.delete_doc", 1, REFUSED),
        ("'api_key']", 0, "\"k3y\""),
    ]);
    let error = still_in.remove("s.test", "a@b.co").await;
    assert!(
        matches!(&error, Err(StepError::Transient { code, .. }) if code == "user_delete_failed"),
        "{error:?}"
    );

    // Refused for another reason: not done.
    let other = ScriptedBench::answering(&[
        (EXISTS, 0, "\"a@b.co\""),
        (
            "frappe.delete_doc",
            1,
            "frappe.exceptions.QueryTimeoutError: Lock wait timeout exceeded",
        ),
    ]);
    let error = other.remove("s.test", "a@b.co").await;
    assert!(
        matches!(&error, Err(StepError::Transient { message, .. }) if message.contains("Lock wait timeout")),
        "{error:?}"
    );
}

#[tokio::test]
async fn no_user_means_nothing_to_remove() {
    let step = ScriptedBench::answering(&[]);
    assert_eq!(step.remove("s.test", "a@b.co").await, Ok(Undone::NoUser));
    let ran = ran(&step);
    assert!(
        !ran.iter()
            .any(|c| c.contains("set_value") || c.contains("delete_doc")),
        "{ran:#?}"
    );
}

#[tokio::test]
async fn keys_are_read_back_not_rotated() {
    let held = ScriptedBench::answering(&[
        ("'api_key']", 0, "\"k3y\""),
        ("get_decrypted_password", 0, "\"s3cret\""),
    ]);
    let users = held.users("s.test");
    let (key, secret, kept) = held.keys(&users, "a@b.co", false).await.expect("keys");
    assert_eq!(
        (key.as_str(), secret.expose_secret(), kept),
        ("k3y", "s3cret", true)
    );
    let ran = ran(&held);
    assert!(!ran.iter().any(|c| c.contains("generate_keys")), "{ran:#?}");
    assert!(ran
        .iter()
        .any(|c| c.contains("--kwargs \"{'raise_exception': False}\"")));

    // No secret yet: generated once.
    let none = ScriptedBench::answering(&[
        ("'api_key']", 0, "\"k3y\""),
        ("generate_keys", 0, "{\"api_secret\": \"n3w\"}"),
    ]);
    let users = none.users("s.test");
    let (_, secret, kept) = none.keys(&users, "a@b.co", false).await.expect("keys");
    assert_eq!((secret.expose_secret(), kept), ("n3w", false));
}
