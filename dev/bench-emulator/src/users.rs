//! The user commands: `add-system-manager` and `disable-user`.

use serde_json::json;

use crate::cli::Parsed;
use crate::store::SiteUsers;
use crate::{traceback, Bench, Raised};

/// The roles `add-system-manager` gives: System Manager and others (Frappe gives
/// about twenty; these few stand for them).
const ROLES: [&str; 6] = [
    "System Manager",
    "Accounts Manager",
    "Sales Manager",
    "Purchase Manager",
    "Stock Manager",
    "HR Manager",
];

/// `bench --site SITE add-system-manager EMAIL --first-name F --last-name L --password P`:
/// no output; a second run is a `DuplicateEntryError`. The password is not checked
/// against the site's password policy, as in Frappe.
pub fn add_system_manager(bench: &Bench, site: &str, p: Parsed) -> u8 {
    let email = p.positionals[0].clone();
    if let Some(code) = crate::site::scripted(bench, "add-system-manager", Some(site), None) {
        return code;
    }
    let mut users = SiteUsers::load(bench, site);
    if users.get(&email).is_some() {
        traceback(
            &["apps/frappe/frappe/database/database.py\", line 1, in sql"],
            &format!("frappe.exceptions.DuplicateEntryError: ('User', '{email}', IntegrityError(1062, \"Duplicate entry '{email}' for key 'PRIMARY'\"))"),
        );
        return 1;
    }
    users.users.insert(
        email.clone(),
        json!({
            "first_name": p.value("--first-name").unwrap_or(&email),
            "last_name": p.value("--last-name"),
            "roles": ROLES,
            "enabled": 1,
            "api_key": null,
            "api_secret": null,
        }),
    );
    if let Some(password) = p.value("--password").filter(|v| !v.is_empty()) {
        users.set_password(&email, password);
    }
    users.save();
    0
}

/// `bench --site SITE disable-user EMAIL`: loads the user, sets `enabled` to 0 and saves
/// it, so the document's checks run: the last System Manager (besides Administrator) is
/// refused every time, even when it is disabled already.
pub fn disable_user(bench: &Bench, site: &str, p: Parsed) -> u8 {
    let email = p.positionals[0].clone();
    let mut users = SiteUsers::load(bench, site);
    let Some(row) = users.users.get_mut(&email) else {
        return Raised::frappe(
            "apps/frappe/frappe/model/document.py\", line 1, in load_from_db",
            "DoesNotExistError",
            format!("User {email} not found"),
        )
        .print();
    };
    row["enabled"] = json!(0);
    if let Err(raised) = users.validate(&email) {
        return raised.print();
    }
    users.save();
    0
}
