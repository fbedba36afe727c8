//! Python literals as `bench execute` receives them in `--args` and `--kwargs`.
//!
//! bench `eval`s both options: `--args "['User', 'a@b.co']"` becomes a list of
//! positional arguments, `--kwargs "{'user': 'a@b.co', 'force': True}"` a dict of
//! keyword arguments, and a bare word in `--args` (a `NameError` in `eval`) becomes a
//! one-item list. The emulator reads the literals the steps can send (strings, numbers,
//! `None`, `True`, `False`, lists, tuples, dicts with string keys) into JSON values;
//! anything else is the `SyntaxError` Python would raise.

use serde_json::{Map, Value};

/// What `eval` of the text gives, as JSON (`None` → `null`, tuples → arrays).
pub fn parse(text: &str) -> Result<Value, String> {
    let mut parser = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let value = parser.value()?;
    parser.blank();
    if parser.at < parser.chars.len() {
        return Err(parser.error());
    }
    Ok(value)
}

/// The positional arguments `--args` stands for: the items of a list or tuple, or the
/// text itself when it is a bare name (bench catches the `NameError`).
pub fn args(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim();
    let bare = !trimmed.is_empty()
        && trimmed.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !trimmed.starts_with(|c: char| c.is_ascii_digit())
        && !["None", "True", "False"].contains(&trimmed);
    if bare {
        return Ok(vec![Value::String(trimmed.to_string())]);
    }
    match parse(text)? {
        Value::Array(items) => Ok(items),
        // `func(*'abc')` spreads characters; nothing the steps send.
        other => Err(format!(
            "TypeError: the emulator takes --args as a list, got {other}"
        )),
    }
}

/// The keyword arguments `--kwargs` stands for: a dict.
pub fn kwargs(text: &str) -> Result<Map<String, Value>, String> {
    match parse(text)? {
        Value::Object(map) => Ok(map),
        _ => Err("TypeError: argument after ** must be a mapping".into()),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn error(&self) -> String {
        format!("SyntaxError: invalid syntax (at character {})", self.at + 1)
    }

    fn blank(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.blank();
        self.chars.get(self.at).copied()
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek().ok_or_else(|| self.error())? {
            '[' => self.sequence(']').map(Value::Array),
            '(' => self.sequence(')').map(Value::Array),
            '{' => self.dict(),
            '\'' | '"' => self.string().map(Value::String),
            _ => self.word(),
        }
    }

    /// Items up to `close`, commas between (a trailing one allowed).
    fn sequence(&mut self, close: char) -> Result<Vec<Value>, String> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            match self.peek() {
                Some(',') => self.at += 1,
                Some(c) if c == close => {}
                _ => return Err(self.error()),
            }
        }
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.at += 1;
        let mut map = Map::new();
        loop {
            if self.peek() == Some('}') {
                self.at += 1;
                return Ok(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(key) => key,
                _ => return Err("TypeError: the emulator takes string keys only".into()),
            };
            if self.peek() != Some(':') {
                return Err(self.error());
            }
            self.at += 1;
            let value = self.value()?;
            map.insert(key, value);
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {}
                _ => return Err(self.error()),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.chars[self.at];
        self.at += 1;
        let mut text = String::new();
        loop {
            let c = *self
                .chars
                .get(self.at)
                .ok_or_else(|| "SyntaxError: unterminated string literal".to_string())?;
            self.at += 1;
            match c {
                '\\' => {
                    let escaped = *self.chars.get(self.at).ok_or_else(|| self.error())?;
                    self.at += 1;
                    text.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                c if c == quote => return Ok(text),
                c => text.push(c),
            }
        }
    }

    /// `None`, `True`, `False` or a number.
    fn word(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '+'))
        {
            self.at += 1;
        }
        let word: String = self.chars[start..self.at].iter().collect();
        match word.as_str() {
            "None" => Ok(Value::Null),
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            _ => {
                if let Ok(int) = word.parse::<i64>() {
                    Ok(Value::from(int))
                } else if let Ok(float) = word.parse::<f64>() {
                    Ok(Value::from(float))
                } else if word.is_empty() {
                    Err(self.error())
                } else {
                    Err(format!("NameError: name '{word}' is not defined"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_the_steps_send() {
        assert_eq!(
            args("['User', 'a@b.co', 'enabled', 0]"),
            Ok(vec![
                json!("User"),
                json!("a@b.co"),
                json!("enabled"),
                json!(0)
            ])
        );
        assert_eq!(
            args("['User', \"it's\", None, True, False, ]"),
            Ok(vec![
                json!("User"),
                json!("it's"),
                Value::Null,
                json!(true),
                json!(false)
            ])
        );
        assert_eq!(args("['o\\'brien@x.io']"), Ok(vec![json!("o'brien@x.io")]));
        assert_eq!(args("('a', 1.5)"), Ok(vec![json!("a"), json!(1.5)]));
        assert_eq!(args("[]"), Ok(vec![]));
        assert_eq!(
            args("frappe"),
            Ok(vec![json!("frappe")]),
            "NameError caught"
        );
        assert_eq!(
            kwargs("{'doctype': 'User', 'name': 'a@b.co', 'ignore_on_trash': True}"),
            Ok(
                json!({"doctype": "User", "name": "a@b.co", "ignore_on_trash": true})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            )
        );
        assert_eq!(
            parse("{'a': [1, {'b': None}]}"),
            Ok(json!({"a": [1, {"b": null}]}))
        );
    }

    #[test]
    fn refuses_what_python_would() {
        assert!(args("['User'").is_err());
        assert!(args("['unterminated]").is_err());
        assert!(kwargs("['User']").is_err());
        assert!(parse("{'a' 1}").is_err());
        assert!(parse("[x]").is_err_and(|e| e.starts_with("NameError")));
    }
}
