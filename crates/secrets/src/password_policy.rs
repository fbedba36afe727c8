//! The tenant site's password policy, checked when a signup arrives.
//!
//! A fresh Frappe v15 site enforces `enable_password_policy=1` with
//! `minimum_password_score=2`: setting a password whose zxcvbn score is under 2 fails
//! with 417 "Invalid Password" (dev/bench-emulator/FACTS.md). The admin user step sets
//! the signup's password that way, so a weak one would only fail there, after a
//! database and a site were made and then rolled back. Checked here with the same rule
//! and the same user inputs, the signup is rejected before anything is created.
//!
//! The check takes the clear password as `&str`: the caller opens whatever form the
//! signup carried it in first.

use contracts::signup::split_full_name;
use contracts::Rejection;

/// The score Frappe v15's default `minimum_password_score` requires.
pub const MINIMUM_SCORE: u8 = 2;

/// Frappe truncates a password to this many characters before zxcvbn looks at it
/// (zxcvbn's cost grows fast with length).
const CHECKED_CHARS: usize = 128;

/// What Frappe knows of the user when it checks the password: zxcvbn's user inputs.
#[derive(Debug, Clone, Copy)]
pub struct PasswordOwner<'a> {
    /// The admin's full name, split as the user step makes the user.
    pub full_name: &'a str,
    /// The admin's email.
    pub email: &'a str,
}

impl PasswordOwner<'_> {
    /// `(first_name, middle_name, last_name, email, birth_date)` as Frappe passes them;
    /// Python's zxcvbn turns a missing one (`None`) into the word "none", so the
    /// missing middle name and birth date count as "None" here too.
    fn user_inputs(&self) -> Vec<String> {
        let (first, last) = split_full_name(self.full_name);
        vec![
            first,
            "None".into(),
            last.unwrap_or_else(|| "None".into()),
            self.email.to_string(),
            "None".into(),
        ]
    }
}

/// Whether `password` passes the site's password policy; when it does not, a
/// rejection `invalid_password` with zxcvbn's warning and suggestions (fixed texts:
/// never the password, nor any part of it).
pub fn check_password_strength(password: &str, owner: PasswordOwner<'_>) -> Result<(), Rejection> {
    let checked: String = password.chars().take(CHECKED_CHARS).collect();
    let inputs = owner.user_inputs();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(&checked, &inputs);
    let score = entropy.score() as u8;
    if score >= MINIMUM_SCORE {
        return Ok(());
    }
    let advice = entropy
        .feedback()
        .map(|f| {
            f.warning()
                .map(|w| w.to_string())
                .into_iter()
                .chain(f.suggestions().iter().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "Add another word or two. Uncommon words are better.".into());
    Err(Rejection {
        code: "invalid_password",
        message: format!(
            "admin_password is too easy to guess (strength {score} of 4, at least {MINIMUM_SCORE} needed): {advice}"
        ),
    })
}

/// Builds zxcvbn's dictionaries (lazily made on first use, a noticeable pause) so that
/// the first signup after a start does not wait for them. Run once at start-up, off
/// the async workers.
pub fn warm_up() {
    let owner = PasswordOwner {
        full_name: "Warm Up",
        email: "warm@up.invalid",
    };
    let _ = check_password_strength("warm-up-password", owner);
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: PasswordOwner<'static> = PasswordOwner {
        full_name: "Test Admin",
        email: "admin@test.com",
    };

    #[test]
    fn strong_passwords_pass_weak_ones_get_advice_without_the_password() {
        for strong in ["TestPass123!", "Sunny-Meadow-42-Kettle", "Tr0ub4dor&3"] {
            assert_eq!(check_password_strength(strong, OWNER), Ok(()), "{strong}");
        }
        for (weak, advice) in [
            ("password1", "This is a very common password."),
            ("abcdef12", "Sequences like abc or 6543 are easy to guess."),
            ("qwertyuiop", "This is a top-100 common password."),
        ] {
            let rejection = check_password_strength(weak, OWNER).expect_err(weak);
            assert_eq!(rejection.code, "invalid_password");
            assert!(rejection.message.contains(advice), "{}", rejection.message);
            assert!(!rejection.message.contains(weak), "{}", rejection.message);
        }
    }

    #[test]
    fn the_owners_own_data_counts_as_guessable() {
        // Strong for a stranger, weak when it is the user's name and email.
        let password = "Quarterfield!9";
        let stranger = PasswordOwner {
            full_name: "Ann Lee",
            email: "ann@lee.io",
        };
        assert_eq!(check_password_strength(password, stranger), Ok(()));
        let owner = PasswordOwner {
            full_name: "Zebulon Quarterfield",
            email: "zebulon@quarterfield.io",
        };
        let rejection = check_password_strength(password, owner).expect_err("own name");
        assert_eq!(rejection.code, "invalid_password");
    }
}
