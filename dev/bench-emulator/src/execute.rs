//! `bench --site SITE execute METHOD [--args LIST] [--kwargs DICT]`: the Frappe
//! functions the steps call, with Python's argument binding, printing
//! `json.dumps(result)` only for a truthy result, and a traceback (exit 1) for an
//! exception. Nothing is written when a function raises (Frappe rolls the transaction
//! back).

use serde_json::{json, Map, Value};

use crate::cli::Parsed;
use crate::store::{generate_hash, truthy, SiteUsers, STANDARD_USERS};
use crate::{pyliteral, say, Bench, Raised};

/// A parameter: its name and, when optional, its default.
type Param = (&'static str, Option<Value>);

/// The functions the emulator knows, with their v15 signatures.
fn signature(method: &str) -> Option<Vec<Param>> {
    let required = |name| (name, None);
    let optional = |name, default: Value| (name, Some(default));
    Some(match method {
        "frappe.db.exists" => vec![
            required("dt"),
            optional("dn", Value::Null),
            optional("cache", json!(false)),
        ],
        "frappe.db.get_value" => vec![
            required("doctype"),
            optional("filters", Value::Null),
            optional("fieldname", json!("name")),
            optional("ignore", Value::Null),
            optional("as_dict", json!(false)),
        ],
        "frappe.db.set_value" => vec![
            required("dt"),
            required("dn"),
            required("field"),
            optional("val", Value::Null),
            optional("modified", Value::Null),
            optional("modified_by", Value::Null),
            optional("update_modified", json!(true)),
            optional("debug", json!(false)),
        ],
        "frappe.core.doctype.user.user.generate_keys" => vec![required("user")],
        "frappe.utils.password.get_decrypted_password" => vec![
            required("doctype"),
            required("name"),
            optional("fieldname", json!("password")),
            optional("raise_exception", json!(true)),
        ],
        "frappe.delete_doc" => vec![
            optional("doctype", Value::Null),
            optional("name", Value::Null),
            optional("force", json!(0)),
            optional("ignore_doctypes", Value::Null),
            optional("for_reload", json!(false)),
            optional("ignore_permissions", json!(false)),
            optional("flags", Value::Null),
            optional("ignore_on_trash", json!(false)),
            optional("ignore_missing", json!(true)),
            optional("delete_permanently", json!(false)),
        ],
        "frappe.sessions.clear_sessions" => vec![
            optional("user", Value::Null),
            optional("keep_current", json!(false)),
            optional("force", json!(false)),
        ],
        _ => return None,
    })
}

fn type_error(function: &str, message: String) -> Raised {
    Raised {
        frame: "apps/frappe/frappe/commands/utils.py\", line 266, in execute",
        exception: format!(
            "TypeError: {}() {message}",
            function.rsplit('.').next().unwrap_or(function)
        ),
    }
}

/// Binds positional and keyword arguments to `params` as Python does.
fn bind(
    function: &str,
    params: &[Param],
    args: Vec<Value>,
    kwargs: Map<String, Value>,
) -> Result<Map<String, Value>, Raised> {
    if args.len() > params.len() {
        return Err(type_error(
            function,
            format!(
                "takes {} positional arguments but {} were given",
                params.len(),
                args.len()
            ),
        ));
    }
    let mut bound = Map::new();
    for ((name, _), value) in params.iter().zip(args) {
        bound.insert((*name).to_string(), value);
    }
    for (name, value) in kwargs {
        if !params.iter().any(|(p, _)| *p == name) {
            return Err(type_error(
                function,
                format!("got an unexpected keyword argument '{name}'"),
            ));
        }
        if bound.contains_key(&name) {
            return Err(type_error(
                function,
                format!("got multiple values for argument '{name}'"),
            ));
        }
        bound.insert(name, value);
    }
    for (name, default) in params {
        if !bound.contains_key(*name) {
            match default {
                Some(value) => {
                    bound.insert((*name).to_string(), value.clone());
                }
                None => {
                    return Err(type_error(
                        function,
                        format!("missing 1 required positional argument: '{name}'"),
                    ))
                }
            }
        }
    }
    Ok(bound)
}

/// Runs `bench execute`; returns the exit code.
pub fn execute(bench: &Bench, site: &str, p: Parsed) -> u8 {
    let method = p.positionals[0].as_str();
    let literal_error = |message: String| Raised {
        frame: "apps/frappe/frappe/commands/utils.py\", line 252, in execute",
        exception: message,
    };
    let args = match p.value("--args").map(pyliteral::args).transpose() {
        Ok(args) => args.unwrap_or_default(),
        Err(e) => return literal_error(e).print(),
    };
    let kwargs = match p.value("--kwargs").map(pyliteral::kwargs).transpose() {
        Ok(kwargs) => kwargs.unwrap_or_default(),
        Err(e) => return literal_error(e).print(),
    };
    if let Some(code) = crate::site::scripted(bench, "execute", Some(site), Some(method)) {
        return code;
    }
    let Some(params) = signature(method) else {
        return Raised {
            frame: "apps/frappe/frappe/__init__.py\", line 1, in get_attr",
            exception: format!("AttributeError: the emulator does not know {method}"),
        }
        .print();
    };
    let result =
        bind(method, &params, args, kwargs).and_then(|bound| call(bench, site, method, &bound));
    match result {
        Ok(value) => {
            if truthy(&value) {
                say(&crate::python_dumps(&value));
            }
            0
        }
        Err(raised) => raised.print(),
    }
}

fn text(bound: &Map<String, Value>, name: &str) -> String {
    match &bound[name] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn does_not_exist(name: &str) -> Raised {
    Raised::frappe(
        "apps/frappe/frappe/model/document.py\", line 1, in load_from_db",
        "DoesNotExistError",
        format!("User {name} not found"),
    )
}

fn only_users(doctype: &str) -> Result<(), Raised> {
    if doctype == "User" {
        Ok(())
    } else {
        Err(Raised {
            frame: "apps/frappe/frappe/__init__.py\", line 1, in get_meta",
            exception: format!("NotImplementedError: the emulator keeps Users only, not {doctype}"),
        })
    }
}

/// Calls one function with bound arguments.
fn call(
    bench: &Bench,
    site: &str,
    method: &str,
    bound: &Map<String, Value>,
) -> Result<Value, Raised> {
    let mut users = SiteUsers::load(bench, site);
    match method {
        "frappe.db.exists" => {
            only_users(&text(bound, "dt"))?;
            let name = text(bound, "dn");
            Ok(if users.get(&name).is_some() {
                json!(name)
            } else {
                Value::Null
            })
        }
        "frappe.db.get_value" => {
            only_users(&text(bound, "doctype"))?;
            let row = users.get(&text(bound, "filters"));
            let field = text(bound, "fieldname");
            Ok(match (row, field.as_str()) {
                (Some(_), "name") => bound["filters"].clone(),
                (Some(row), field) => row.get(field).cloned().unwrap_or(Value::Null),
                (None, _) => Value::Null,
            })
        }
        "frappe.db.set_value" => {
            // An UPDATE without the document's checks: a missing row changes nothing.
            only_users(&text(bound, "dt"))?;
            let changes = match &bound["field"] {
                Value::Object(map) => map.clone(),
                field => {
                    let mut map = Map::new();
                    map.insert(text_of(field), bound["val"].clone());
                    map
                }
            };
            if let Some(row) = users.users.get_mut(&text(bound, "dn")) {
                for (field, value) in changes {
                    row[field.as_str()] = value;
                }
                users.save();
            }
            Ok(Value::Null)
        }
        "frappe.core.doctype.user.user.generate_keys" => {
            let name = text(bound, "user");
            let row = users
                .users
                .get_mut(&name)
                .ok_or_else(|| does_not_exist(&name))?;
            let secret = generate_hash(15);
            if !truthy(&row["api_key"]) {
                row["api_key"] = json!(generate_hash(15));
            }
            row["api_secret"] = json!(secret);
            // `user.save()`: a disabled last System Manager cannot be saved.
            users.validate(&name)?;
            users.set_encrypted(&name, "api_secret", &secret);
            users.save();
            Ok(json!({ "api_secret": secret }))
        }
        "frappe.utils.password.get_decrypted_password" => {
            let (doctype, name, field) = (
                text(bound, "doctype"),
                text(bound, "name"),
                text(bound, "fieldname"),
            );
            let found = (doctype == "User")
                .then(|| users.decrypted(&name, &field))
                .flatten();
            match found {
                Some(value) => Ok(json!(value)),
                None if truthy(&bound["raise_exception"]) => Err(Raised::frappe(
                    "apps/frappe/frappe/utils/password.py\", line 40, in get_decrypted_password",
                    "AuthenticationError",
                    format!("Password not found for {doctype} {name} {field}"),
                )),
                None => Ok(Value::Null),
            }
        }
        "frappe.delete_doc" => {
            only_users(&text(bound, "doctype"))?;
            let name = text(bound, "name");
            if users.get(&name).is_none() {
                return if truthy(&bound["ignore_missing"]) {
                    Ok(json!(false))
                } else {
                    Err(does_not_exist(&name))
                };
            }
            if !truthy(&bound["ignore_on_trash"]) {
                // `User.on_trash`.
                if STANDARD_USERS.contains(&name.as_str()) {
                    return Err(Raised::frappe(
                        "apps/frappe/frappe/core/doctype/user/user.py\", line 528, in on_trash",
                        "ValidationError",
                        format!("User {name} cannot be deleted"),
                    ));
                }
                users.a_system_manager_should_exist(&name)?;
            } else if STANDARD_USERS.contains(&name.as_str()) {
                // Frappe would go on to its link checks; the emulator keeps them.
                return Err(Raised::frappe(
                    "apps/frappe/frappe/model/delete_doc.py\", line 120, in delete_doc",
                    "LinkExistsError",
                    format!("Cannot delete or cancel because User {name} is linked"),
                ));
            }
            users.delete(&name);
            users.save();
            Ok(Value::Null)
        }
        // The emulator keeps no sessions: nothing to end, for any user.
        "frappe.sessions.clear_sessions" => Ok(Value::Null),
        other => Err(Raised {
            frame: "apps/frappe/frappe/__init__.py\", line 1, in get_attr",
            exception: format!("AttributeError: the emulator does not know {other}"),
        }),
    }
}

fn text_of(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_arguments_like_python() {
        let params = signature("frappe.utils.password.get_decrypted_password").expect("known");
        let kwargs = json!({"raise_exception": false});
        let bound = bind(
            "get_decrypted_password",
            &params,
            vec![json!("User"), json!("a@b.co"), json!("api_secret")],
            kwargs.as_object().cloned().unwrap_or_default(),
        )
        .expect("binds");
        assert_eq!(
            (bound["fieldname"].clone(), bound["raise_exception"].clone()),
            (json!("api_secret"), json!(false))
        );
        let unexpected = bind(
            "frappe.sessions.clear_sessions",
            &signature("frappe.sessions.clear_sessions").expect("known"),
            vec![],
            json!({"usr": "x"}).as_object().cloned().unwrap_or_default(),
        );
        assert_eq!(
            unexpected.map_err(|r| r.exception),
            Err("TypeError: clear_sessions() got an unexpected keyword argument 'usr'".into())
        );
        let twice = bind(
            "frappe.delete_doc",
            &signature("frappe.delete_doc").expect("known"),
            vec![json!("User")],
            json!({"doctype": "User"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        assert!(twice.is_err_and(|r| r.exception.contains("multiple values for argument")));
        let missing = bind(
            "frappe.core.doctype.user.user.generate_keys",
            &signature("frappe.core.doctype.user.user.generate_keys").expect("known"),
            vec![],
            Map::new(),
        );
        assert!(missing.is_err_and(|r| r.exception
            == "TypeError: generate_keys() missing 1 required positional argument: 'user'"));
    }
}
