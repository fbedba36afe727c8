//! Frappe v15's password policy as a fresh site has it (`enable_password_policy=1`,
//! `minimum_password_score=2`): zxcvbn with the user's data as user inputs, and
//! Frappe's own feedback texts (`frappe/utils/password_strength.py`), joined as
//! `handle_password_test_fail` joins them: `" ".join([warning, *suggestions])`, so an
//! empty warning leaves a leading space.
//!
//! zxcvbn is the Rust crate (the same algorithm as Python's `zxcvbn` Frappe uses). Its
//! feedback names the same matches Frappe's does; only the wording differs, so the
//! texts are mapped to Frappe's here.

use zxcvbn::feedback::{Suggestion, Warning};

/// The score a fresh v15 site requires.
pub const MINIMUM_SCORE: u8 = 2;

/// Frappe truncates to 128 characters before checking (zxcvbn gets slow past that).
const CHECKED_CHARS: usize = 128;

/// `None` when `password` passes; else the message Frappe throws ("Invalid Password").
/// `user_inputs` as Frappe gives them: first, middle and last name, email, birth date,
/// a missing one as the text `None` (Python's zxcvbn calls `str()` on each).
pub fn refusal(password: &str, user_inputs: &[&str]) -> Option<String> {
    let checked: String = password.chars().take(CHECKED_CHARS).collect();
    let entropy = zxcvbn::zxcvbn(&checked, user_inputs);
    // Frappe: `if result.get("score") and result.get("score") >= minimum_password_score`.
    if entropy.score() as u8 >= MINIMUM_SCORE {
        return None;
    }
    if entropy.sequence().is_empty() {
        // Frappe's `default_feedback` (an empty password).
        return Some(
            " Use a few words, avoid common phrases. No need for symbols, digits, or uppercase letters."
                .into(),
        );
    }
    let (warning, suggestions) = match entropy.feedback() {
        Some(feedback) => frappe_wording(feedback.warning(), feedback.suggestions()),
        None => (String::new(), Vec::new()),
    };
    let suggestions = if warning.is_empty() && suggestions.is_empty() {
        // Frappe's "no concrete feedback" fallback.
        vec!["Better add a few more letters or another word".to_string()]
    } else {
        suggestions
    };
    Some(
        std::iter::once(warning)
            .chain(suggestions)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// zxcvbn's feedback in Frappe's words: Frappe gives a sequence no warning, words
/// keyboard patterns and repeats its own way, and never adds zxcvbn's "Add another
/// word or two" (which zxcvbn puts first every time) nor the reversed-word hint.
fn frappe_wording(warning: Option<Warning>, suggestions: &[Suggestion]) -> (String, Vec<String>) {
    let warning_text = match warning {
        None | Some(Warning::SequencesLikeAbcAreEasyToGuess) => String::new(),
        Some(Warning::StraightRowsOfKeysAreEasyToGuess) => {
            "Straight rows of keys are easy to guess".into()
        }
        Some(Warning::ShortKeyboardPatternsAreEasyToGuess) => {
            "Short keyboard patterns are easy to guess".into()
        }
        Some(Warning::RepeatsLikeAaaAreEasyToGuess) => {
            "Repeats like \"aaa\" are easy to guess".into()
        }
        Some(Warning::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess) => {
            "Repeats like \"abcabcabc\" are only slightly harder to guess than \"abc\"".into()
        }
        Some(other) => other.to_string(),
    };
    let texts = suggestions
        .iter()
        .filter_map(|suggestion| match suggestion {
            Suggestion::AddAnotherWordOrTwo | Suggestion::ReversedWordsArentMuchHarderToGuess => {
                None
            }
            Suggestion::AvoidSequences => {
                Some("Avoid sequences like abc or 6543 as they are easy to guess".to_string())
            }
            Suggestion::UseALongerKeyboardPatternWithMoreTurns => Some(
                if warning == Some(Warning::StraightRowsOfKeysAreEasyToGuess) {
                    "Try to use a longer keyboard pattern with more turns"
                } else {
                    "Make use of longer keyboard patterns"
                }
                .to_string(),
            ),
            Suggestion::AvoidRepeatedWordsAndCharacters => Some(
                if warning == Some(Warning::RepeatsLikeAaaAreEasyToGuess) {
                    "Let's avoid repeated words and characters"
                } else {
                    "Try to avoid repeated words and characters"
                }
                .to_string(),
            ),
            other => Some(other.to_string()),
        })
        .collect();
    (warning_text, texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: [&str; 5] = ["A", "None", "None", "a@b.co", "None"];

    #[test]
    fn frappe_words_what_zxcvbn_finds() {
        assert_eq!(
            refusal("abcdefgh", &USER).as_deref(),
            Some(" Avoid sequences like abc or 6543 as they are easy to guess")
        );
        assert_eq!(
            refusal("password1", &USER).as_deref(),
            Some("This is a very common password.")
        );
        assert_eq!(refusal("TestPass123!", &USER), None);
        assert_eq!(refusal("Sunny-Meadow-42-Kettle", &USER), None);
    }
}
