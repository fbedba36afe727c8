//! A site's users as the emulator keeps them, with Frappe's rules about them.
//!
//! - `emulator/users.json`: the `User` rows by name (email): `first_name`,
//!   `last_name`, `roles`, `enabled` (1 or 0, a Check field), `api_key`, and the
//!   `api_secret` column. Frappe shows a mask in that column and keeps the value in
//!   `__Auth`; the emulator writes the value there too, so tests can compare it with
//!   what a step returned.
//! - `emulator/auth.json`: the `__Auth` table, by user: `password` (the login password,
//!   hashed: a random salt and SHA-256, `sha256$<salt>$<hex>`; Frappe uses passlib's
//!   pbkdf2/argon2, the emulator only needs it never to be in clear) and `api_secret`
//!   (Frappe encrypts it with the site's key; either way the site can read it back).
//!   `frappe.db.set_value` on a User column never touches this table.
//! - `emulator/deleted_documents.json`: what `frappe.delete_doc` keeps of a deleted
//!   user (Frappe's `Deleted Document`: the whole row as JSON, `api_key` included).

use std::path::PathBuf;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::{read_json, write_json, Bench, Raised};

/// Frappe's users that can never be deleted or disabled.
pub const STANDARD_USERS: [&str; 2] = ["Administrator", "Guest"];

/// Where `User.on_trash` and `User.validate` raise.
const USER_PY: &str =
    "apps/frappe/frappe/core/doctype/user/user.py\", line 523, in a_system_manager_should_exist";

/// The users of one site, loaded from its `emulator/` folder.
pub struct SiteUsers {
    folder: PathBuf,
    /// `User` rows by name.
    pub users: Map<String, Value>,
    auth: Map<String, Value>,
}

fn load(path: &std::path::Path) -> Map<String, Value> {
    read_json(path)
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// A random lowercase alphanumeric string, as `frappe.generate_hash(length=n)`.
pub fn generate_hash(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect::<String>()
        .to_lowercase()
}

fn digest(salt: &str, password: &str) -> String {
    let hash = Sha256::digest(format!("{salt}{password}").as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256$<salt>$<hex>` of `password`: what `__Auth` keeps of a login password.
pub fn hash_password(password: &str) -> String {
    let salt = generate_hash(16);
    format!("sha256${salt}${}", digest(&salt, password))
}

/// Whether `password` matches a value made by [`hash_password`].
pub fn verify_password(password: &str, stored: &str) -> bool {
    match stored.split('$').collect::<Vec<_>>()[..] {
        ["sha256", salt, hex] => digest(salt, password) == hex,
        _ => false,
    }
}

/// Whether a JSON value counts as set in Python (`None`, `""`, `0`, `False` do not).
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl SiteUsers {
    /// The users of `site` (none when the site has no emulator state yet).
    pub fn load(bench: &Bench, site: &str) -> Self {
        let folder = bench.sites().join(site).join("emulator");
        Self {
            users: load(&folder.join("users.json")),
            auth: load(&folder.join("auth.json")),
            folder,
        }
    }

    /// Writes both tables back.
    pub fn save(&self) {
        let _ = write_json(
            &self.folder.join("auth.json"),
            &Value::Object(self.auth.clone()),
        );
        let _ = write_json(
            &self.folder.join("users.json"),
            &Value::Object(self.users.clone()),
        );
    }

    /// A user's row.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.users.get(name)
    }

    fn is_enabled(row: &Value) -> bool {
        truthy(&row["enabled"])
    }

    fn is_system_manager(row: &Value) -> bool {
        row["roles"]
            .as_array()
            .is_some_and(|roles| roles.contains(&json!("System Manager")))
    }

    /// Whether user `name` exists, is enabled and has System Manager.
    pub fn is_system_manager_user(&self, name: &str) -> bool {
        self.users
            .get(name)
            .is_some_and(|row| Self::is_enabled(row) && Self::is_system_manager(row))
    }

    /// `User.a_system_manager_should_exist`: some enabled System Manager other than
    /// Administrator and `name` must remain. Frappe asks this whenever a user is
    /// deleted (`on_trash`) or saved disabled (`validate`), whatever that user's own
    /// roles or state, so the last one is refused every time.
    pub fn a_system_manager_should_exist(&self, name: &str) -> Result<(), Raised> {
        let others = self.users.iter().any(|(other, row)| {
            other != "Administrator"
                && other != name
                && Self::is_enabled(row)
                && Self::is_system_manager(row)
        });
        if others {
            Ok(())
        } else {
            Err(Raised::frappe(
                USER_PY,
                "ValidationError",
                "There should remain at least one System Manager",
            ))
        }
    }

    /// `User.validate` as a document save runs it (`disable-user`, `generate_keys`).
    pub fn validate(&self, name: &str) -> Result<(), Raised> {
        let row = self.users.get(name).cloned().unwrap_or_default();
        if !Self::is_enabled(&row) {
            if STANDARD_USERS.contains(&name) {
                return Err(Raised::frappe(
                    USER_PY,
                    "ValidationError",
                    format!("User {name} cannot be disabled"),
                ));
            }
            self.a_system_manager_should_exist(name)?;
        }
        Ok(())
    }

    /// Stores `password` as the user's login password (hashed).
    pub fn set_password(&mut self, name: &str, password: &str) {
        self.auth_row(name)["password"] = json!(hash_password(password));
    }

    /// Stores an encrypted field (`api_secret`) in `__Auth`.
    pub fn set_encrypted(&mut self, name: &str, field: &str, value: &str) {
        self.auth_row(name)[field] = json!(value);
    }

    fn auth_row(&mut self, name: &str) -> &mut Value {
        self.auth
            .entry(name.to_string())
            .or_insert_with(|| json!({}))
    }

    /// `get_decrypted_password(doctype, name, field)` for a User: the stored value.
    pub fn decrypted(&self, name: &str, field: &str) -> Option<String> {
        self.auth
            .get(name)
            .and_then(|row| row.get(field))
            .filter(|_| field != "password")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Deletes a user as `delete_doc` does once its checks passed: its `__Auth` rows,
    /// its row and roles; a `Deleted Document` keeps the row.
    pub fn delete(&mut self, name: &str) {
        self.auth.remove(name);
        if let Some(row) = self.users.remove(name) {
            let path = self.folder.join("deleted_documents.json");
            let mut deleted = read_json(&path)
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            deleted.push(json!({ "deleted_doctype": "User", "deleted_name": name, "data": row }));
            let _ = write_json(&path, &Value::Array(deleted));
        }
    }

    /// Token auth (`validate_api_key_secret`): the user whose `api_key` column is
    /// `key` and whose `__Auth` secret is `secret`. Whether the user is enabled does
    /// not matter, as in Frappe.
    pub fn token_user(&self, key: &str, secret: &str) -> Option<String> {
        let (name, _) = self
            .users
            .iter()
            .find(|(_, row)| !key.is_empty() && row["api_key"].as_str() == Some(key))?;
        (self.decrypted(name, "api_secret").as_deref() == Some(secret)).then(|| name.clone())
    }

    /// Password login (`LoginManager.authenticate`): the user's full name, or the
    /// message Frappe answers 401 with.
    pub fn login(&self, user: &str, password: &str) -> Result<String, &'static str> {
        if user.is_empty() || password.is_empty() {
            return Err("Incomplete login details");
        }
        let row = self.users.get(user).ok_or("Invalid login credentials")?;
        let stored = self
            .auth
            .get(user)
            .and_then(|a| a["password"].as_str())
            .ok_or("Invalid login credentials")?;
        if !verify_password(password, stored) {
            return Err("Invalid login credentials");
        }
        if user != "Administrator" && !Self::is_enabled(row) {
            return Err("User disabled or missing");
        }
        let full_name = [row["first_name"].as_str(), row["last_name"].as_str()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(full_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_salted_hashes() {
        let stored = hash_password("Secret1!");
        assert!(stored.starts_with("sha256$") && !stored.contains("Secret1!"));
        assert_ne!(stored, hash_password("Secret1!"), "a fresh salt each time");
        assert!(verify_password("Secret1!", &stored));
        assert!(!verify_password("Secret2!", &stored));
        assert!(!verify_password("Secret1!", "Secret1!"));
    }

    #[test]
    fn python_truth() {
        for falsy in [json!(null), json!(0), json!(""), json!(false), json!([])] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for set in [json!(1), json!("x"), json!(true), json!({"a": 1})] {
            assert!(truthy(&set), "{set}");
        }
    }
}
