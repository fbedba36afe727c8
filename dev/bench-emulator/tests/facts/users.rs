//! The admin user on a site where it is the only System Manager besides
//! Administrator: what Frappe refuses, what it lets through, and reading the API secret
//! back.

use super::{bench, drop_db, execute, fixture, last_line, site_with_admin};

const REFUSED: &str =
    "frappe.exceptions.ValidationError: There should remain at least one System Manager";

fn users_file(root: &std::path::Path, site: &str, name: &str) -> serde_json::Value {
    std::fs::read_to_string(root.join(format!("sites/{site}/emulator/{name}")))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

#[test]
fn the_last_system_manager_is_neither_deleted_nor_disabled_every_time() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "u1.localhost");
    site_with_admin(root, &db, site, "a@b.co", "Pw1-long-enough");
    let delete = || {
        execute(
            root,
            site,
            "frappe.delete_doc",
            Some("['User', 'a@b.co']"),
            None,
        )
    };
    let disable = || bench(root, &["--site", site, "disable-user", "a@b.co"]);
    let exists = || {
        execute(
            root,
            site,
            "frappe.db.exists",
            Some("['User', 'a@b.co']"),
            None,
        )
        .stdout
        .trim()
        .to_string()
    };
    for round in 0..2 {
        for run in [delete(), disable()] {
            assert_eq!(
                (run.code, last_line(&run.stderr)),
                (1, REFUSED),
                "round {round}: {}",
                run.stderr
            );
            assert!(run.stderr.starts_with("Traceback (most recent call last):"));
        }
    }
    assert_eq!(exists(), "\"a@b.co\"", "nothing was deleted");

    // Disabled through set_value (no checks): still refused, delete and disable alike.
    let set = execute(
        root,
        site,
        "frappe.db.set_value",
        Some("['User', 'a@b.co', 'enabled', 0]"),
        None,
    );
    assert_eq!((set.code, set.stdout.as_str()), (0, ""));
    assert_eq!(users_file(root, site, "users.json")["a@b.co"]["enabled"], 0);
    for run in [delete(), disable()] {
        assert_eq!((run.code, last_line(&run.stderr)), (1, REFUSED));
    }
    assert_eq!(exists(), "\"a@b.co\"");

    // Without on_trash the delete goes through: the user, its roles and __Auth rows go,
    // a Deleted Document keeps the row.
    let gone = execute(
        root,
        site,
        "frappe.delete_doc",
        None,
        Some("{'doctype': 'User', 'name': 'a@b.co', 'ignore_on_trash': True}"),
    );
    assert_eq!(
        (gone.code, gone.stdout.as_str()),
        (0, ""),
        "{}",
        gone.stderr
    );
    assert_eq!(exists(), "");
    assert!(users_file(root, site, "auth.json").get("a@b.co").is_none());
    assert_eq!(
        users_file(root, site, "deleted_documents.json")[0]["deleted_name"],
        "a@b.co"
    );
    // Deleting what is gone: nothing to do (ignore_missing).
    assert_eq!(delete().code, 0);
    drop_db(&db);
}

#[test]
fn with_another_system_manager_delete_and_disable_pass() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "u2.localhost");
    site_with_admin(root, &db, site, "a@b.co", "Pw1-long-enough");
    assert_eq!(
        bench(root, &["--site", site, "add-system-manager", "c@d.co"]).code,
        0
    );
    assert_eq!(
        bench(root, &["--site", site, "disable-user", "a@b.co"]).code,
        0
    );
    assert_eq!(users_file(root, site, "users.json")["a@b.co"]["enabled"], 0);
    let deleted = execute(
        root,
        site,
        "frappe.delete_doc",
        Some("['User', 'a@b.co']"),
        None,
    );
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    // Now c@d.co is the last one.
    let last = execute(
        root,
        site,
        "frappe.delete_doc",
        Some("['User', 'c@d.co']"),
        None,
    );
    assert_eq!((last.code, last_line(&last.stderr)), (1, REFUSED));
    let admin = execute(
        root,
        site,
        "frappe.delete_doc",
        Some("['User', 'Administrator']"),
        None,
    );
    assert_eq!(
        (admin.code, last_line(&admin.stderr)),
        (
            1,
            "frappe.exceptions.ValidationError: User Administrator cannot be deleted"
        )
    );
    drop_db(&db);
}

#[test]
fn set_value_writes_the_row_without_checks() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "u3.localhost");
    site_with_admin(root, &db, site, "a@b.co", "Pw1-long-enough");
    let keys = execute(
        root,
        site,
        "frappe.core.doctype.user.user.generate_keys",
        Some("['a@b.co']"),
        None,
    );
    assert_eq!(keys.code, 0, "{}", keys.stderr);
    for field in ["api_key", "api_secret"] {
        let set = execute(
            root,
            site,
            "frappe.db.set_value",
            Some(&format!("['User', 'a@b.co', '{field}', None]")),
            None,
        );
        assert_eq!((set.code, set.stdout.as_str()), (0, ""), "{}", set.stderr);
    }
    let key = execute(
        root,
        site,
        "frappe.db.get_value",
        Some("['User', 'a@b.co', 'api_key']"),
        None,
    );
    assert_eq!(
        (key.code, key.stdout.as_str()),
        (0, ""),
        "a cleared key prints nothing"
    );
    let missing = execute(
        root,
        site,
        "frappe.db.set_value",
        Some("['User', 'nobody@b.co', 'enabled', 0]"),
        None,
    );
    assert_eq!(missing.code, 0, "an UPDATE of no row is no error");
    drop_db(&db);
}

#[test]
fn the_api_secret_reads_back_without_rotating() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "u4.localhost");
    site_with_admin(root, &db, site, "a@b.co", "Pw1-long-enough");
    let args = Some("['User', 'a@b.co', 'api_secret']");
    let read = |kwargs| {
        execute(
            root,
            site,
            "frappe.utils.password.get_decrypted_password",
            args,
            kwargs,
        )
    };
    let none = read(None);
    assert_eq!(
        (none.code, last_line(&none.stderr)),
        (
            1,
            "frappe.exceptions.AuthenticationError: Password not found for User a@b.co api_secret"
        )
    );
    let quiet = read(Some("{'raise_exception': False}"));
    assert_eq!(
        (quiet.code, quiet.stdout.as_str()),
        (0, ""),
        "{}",
        quiet.stderr
    );

    let keys = execute(
        root,
        site,
        "frappe.core.doctype.user.user.generate_keys",
        Some("['a@b.co']"),
        None,
    );
    let printed: serde_json::Value = serde_json::from_str(keys.stdout.trim()).expect("json");
    let secret = printed["api_secret"].as_str().expect("secret").to_string();
    for _ in 0..2 {
        let again = read(Some("{'raise_exception': False}"));
        assert_eq!(
            (again.code, again.stdout.trim()),
            (0, format!("\"{secret}\"").as_str()),
            "the same secret each read, printed as JSON"
        );
    }
    assert_eq!(read(None).stdout.trim(), format!("\"{secret}\""));
    drop_db(&db);
}

#[test]
fn execute_takes_kwargs_and_clear_sessions_always_passes() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "u5.localhost");
    site_with_admin(root, &db, site, "a@b.co", "Pw1-long-enough");
    for user in ["a@b.co", "nobody@b.co"] {
        let cleared = execute(
            root,
            site,
            "frappe.sessions.clear_sessions",
            None,
            Some(&format!("{{'user': '{user}', 'force': True}}")),
        );
        assert_eq!(
            (cleared.code, cleared.stdout.as_str()),
            (0, ""),
            "{}",
            cleared.stderr
        );
    }
    let exists = execute(
        root,
        site,
        "frappe.db.exists",
        None,
        Some("{'dt': 'User', 'dn': 'a@b.co'}"),
    );
    assert_eq!(exists.stdout.trim(), "\"a@b.co\"");
    let bad = execute(root, site, "frappe.db.exists", Some("['User', "), None);
    assert_eq!(bad.code, 1);
    assert!(
        last_line(&bad.stderr).starts_with("SyntaxError"),
        "{}",
        bad.stderr
    );
    let unexpected = execute(
        root,
        site,
        "frappe.sessions.clear_sessions",
        None,
        Some("{'usr': 'a@b.co'}"),
    );
    assert_eq!(
        (unexpected.code, last_line(&unexpected.stderr)),
        (
            1,
            "TypeError: clear_sessions() got an unexpected keyword argument 'usr'"
        )
    );
    drop_db(&db);
}
