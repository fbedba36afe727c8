//! `bench serve`: who can get in, by password and by API token, as the sites answer
//! over HTTP.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{drop_db, execute, fixture, site_with_admin};

/// `bench serve --port 0` in `root`, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(root: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bench-emulator"))
            .args(["serve", "--port", "0"])
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bench serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let url = lines
            .find_map(|line| {
                line.ok()?
                    .trim()
                    .strip_prefix("* Running on ")
                    .map(str::to_string)
            })
            .expect("bench serve says where it runs");
        Self { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status and body of a call to `site`.
async fn call(
    server: &Server,
    site: &str,
    request: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let response = request(&client, server.url.clone())
        .header("X-Frappe-Site-Name", site)
        .send()
        .await
        .expect("bench serve answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

async fn token(server: &Server, site: &str, key: &str, secret: &str) -> (u16, serde_json::Value) {
    call(server, site, |c, url| {
        c.get(format!("{url}/api/method/frappe.auth.get_logged_user"))
            .header("Authorization", format!("token {key}:{secret}"))
    })
    .await
}

async fn login(server: &Server, site: &str, usr: &str, pwd: &str) -> (u16, serde_json::Value) {
    call(server, site, |c, url| {
        c.post(format!("{url}/api/method/login"))
            .json(&serde_json::json!({ "usr": usr, "pwd": pwd }))
    })
    .await
}

fn run(root: &Path, site: &str, method: &str, args: &str) -> String {
    let ran = execute(root, site, method, Some(args), None);
    assert_eq!(ran.code, 0, "{method}: {}", ran.stderr);
    ran.stdout.trim().to_string()
}

#[tokio::test]
async fn tokens_and_passwords_let_in_whom_frappe_lets_in() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "h1.localhost");
    let password = "Pw1-long-enough";
    site_with_admin(root, &db, site, "a@b.co", password);
    let printed = run(
        root,
        site,
        "frappe.core.doctype.user.user.generate_keys",
        "['a@b.co']",
    );
    let secret = serde_json::from_str::<serde_json::Value>(&printed).expect("json")["api_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let key: String = serde_json::from_str(&run(
        root,
        site,
        "frappe.db.get_value",
        "['User', 'a@b.co', 'api_key']",
    ))
    .expect("key");
    let stored = std::fs::read_to_string(root.join(format!("sites/{site}/emulator/auth.json")))
        .expect("auth.json")
        + &std::fs::read_to_string(root.join(format!("sites/{site}/emulator/users.json")))
            .expect("users.json");
    assert!(
        !stored.contains(password),
        "the login password is kept hashed"
    );

    let server = Server::start(root);
    assert_eq!(
        token(&server, site, &key, &secret).await,
        (200, serde_json::json!({ "message": "a@b.co" }))
    );
    assert_eq!(token(&server, site, &key, "wrong").await.0, 401);
    let guest = call(&server, site, |c, url| {
        c.get(format!("{url}/api/method/frappe.auth.get_logged_user"))
    })
    .await;
    assert_eq!(guest.0, 403, "a guest may not ask");
    let (status, body) = login(&server, site, "a@b.co", password).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("Logged In")));
    let (status, body) = login(&server, site, "a@b.co", "Wrong-password-1").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("Invalid login credentials"))
    );
    assert_eq!(login(&server, site, "Administrator", "Adm1n").await.0, 200);
    let other = call(&server, "nowhere.localhost", |c, url| {
        c.get(format!("{url}/api/method/frappe.auth.get_logged_user"))
    })
    .await;
    assert_eq!(other.0, 404, "unknown site");
    let by_host = reqwest::Client::new()
        .post(format!("{}/api/method/login", server.url))
        .header("Host", format!("{site}:8000"))
        .form(&[("usr", "a@b.co"), ("pwd", password)])
        .send()
        .await
        .expect("answers");
    assert_eq!(
        by_host.status().as_u16(),
        200,
        "site picked from Host, form body"
    );

    // Disabled: the token still works, the password no longer does.
    run(
        root,
        site,
        "frappe.db.set_value",
        "['User', 'a@b.co', 'enabled', 0]",
    );
    assert_eq!(token(&server, site, &key, &secret).await.0, 200);
    let (status, body) = login(&server, site, "a@b.co", password).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("User disabled or missing"))
    );
    // Cleared api_secret column: __Auth still holds the secret, the token still works.
    run(
        root,
        site,
        "frappe.db.set_value",
        "['User', 'a@b.co', 'api_secret', None]",
    );
    assert_eq!(token(&server, site, &key, &secret).await.0, 200);
    // Cleared api_key: the token finds no user.
    run(
        root,
        site,
        "frappe.db.set_value",
        "['User', 'a@b.co', 'api_key', None]",
    );
    assert_eq!(token(&server, site, &key, &secret).await.0, 401);

    // Deleted: nothing works any more.
    let deleted = execute(
        root,
        site,
        "frappe.delete_doc",
        None,
        Some("{'doctype': 'User', 'name': 'a@b.co', 'ignore_on_trash': True}"),
    );
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(login(&server, site, "a@b.co", password).await.0, 401);
    drop(server);
    drop_db(&db);
}

/// `PUT /api/resource/User/<email>` with `{"new_password": pw}` and this token.
async fn set_password(
    server: &Server,
    site: &str,
    email: &str,
    authorization: Option<&str>,
    password: &str,
) -> (u16, serde_json::Value) {
    call(server, site, |c, url| {
        let put = c
            .put(format!("{url}/api/resource/User/{email}"))
            .json(&serde_json::json!({ "new_password": password }));
        match authorization {
            Some(value) => put.header("Authorization", value),
            None => put,
        }
    })
    .await
}

/// The messages in a Frappe error's `_server_messages` (a JSON list of JSON strings).
fn server_messages(body: &serde_json::Value) -> Vec<serde_json::Value> {
    let list: Vec<String> =
        serde_json::from_str(body["_server_messages"].as_str().expect("_server_messages"))
            .expect("a JSON list");
    list.iter()
        .map(|m| serde_json::from_str(m).expect("a JSON message"))
        .collect()
}

#[tokio::test]
async fn a_password_is_set_over_rest_with_the_users_token_under_the_password_policy() {
    let (dir, db) = fixture(r#"{"delay_ms": 1}"#);
    let (root, site) = (dir.path(), "h2.localhost");
    let throwaway = "Throwaway-pass-1";
    site_with_admin(root, &db, site, "a@b.co", throwaway);
    let printed = run(
        root,
        site,
        "frappe.core.doctype.user.user.generate_keys",
        "['a@b.co']",
    );
    let secret = serde_json::from_str::<serde_json::Value>(&printed).expect("json")["api_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let key: String = serde_json::from_str(&run(
        root,
        site,
        "frappe.db.get_value",
        "['User', 'a@b.co', 'api_key']",
    ))
    .expect("key");
    let token_header = format!("token {key}:{secret}");
    let server = Server::start(root);

    // No token: 403; a wrong one: 401; unknown site: 404 HTML.
    let chosen = "Sunny-Meadow-42-Kettle";
    let (status, body) = set_password(&server, site, "a@b.co", None, chosen).await;
    assert_eq!(
        (status, body["exc_type"].as_str()),
        (403, Some("PermissionError"))
    );
    let (status, body) = set_password(
        &server,
        site,
        "a@b.co",
        Some(&format!("token {key}:wrong")),
        chosen,
    )
    .await;
    assert_eq!(
        (status, body["exc_type"].as_str()),
        (401, Some("AuthenticationError"))
    );
    let (status, body) = set_password(
        &server,
        "nowhere.localhost",
        "a@b.co",
        Some(&token_header),
        chosen,
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.as_str().is_some_and(|b| b.contains("<html")), "{body}");

    // Weak: 417 ValidationError "Invalid Password" with Frappe's advice; nothing changes.
    for (weak, advice) in [
        (
            "abcdefgh",
            " Avoid sequences like abc or 6543 as they are easy to guess",
        ),
        ("password1", "This is a very common password."),
    ] {
        let (status, body) = set_password(&server, site, "a@b.co", Some(&token_header), weak).await;
        assert_eq!(
            (status, body["exc_type"].as_str()),
            (417, Some("ValidationError")),
            "{body}"
        );
        let messages = server_messages(&body);
        assert_eq!(messages[0]["title"], "Invalid Password", "{body}");
        assert_eq!(messages[0]["message"], advice, "{body}");
        assert!(body["exception"]
            .as_str()
            .is_some_and(|e| e.starts_with("frappe.exceptions.ValidationError")));
        assert!(body["exc"].is_string());
    }
    assert_eq!(
        login(&server, site, "a@b.co", throwaway).await.0,
        200,
        "the old password stays"
    );

    // Strong: 200 with the document; the new password logs in, the old one no more, the
    // token still works.
    let (status, body) = set_password(&server, site, "a@b.co", Some(&token_header), chosen).await;
    assert_eq!(status, 200, "{body}");
    let doc = &body["data"];
    assert_eq!(
        (doc["name"].as_str(), doc["new_password"].as_str()),
        (Some("a@b.co"), Some(""))
    );
    assert_eq!(doc["api_key"].as_str(), Some(key.as_str()));
    let masked = doc["api_secret"].as_str().expect("api_secret");
    assert!(
        !masked.is_empty() && masked.chars().all(|c| c == '*'),
        "{masked}"
    );
    assert!(!body.to_string().contains(chosen));
    assert_eq!(login(&server, site, "a@b.co", chosen).await.0, 200);
    assert_eq!(login(&server, site, "a@b.co", throwaway).await.0, 401);
    assert_eq!(token(&server, site, &key, &secret).await.0, 200);

    // Nothing of it in bench.log; the password kept hashed.
    let log = std::fs::read_to_string(root.join("logs/bench.log")).expect("bench.log");
    assert!(
        log.contains(throwaway),
        "add-system-manager's line is logged"
    );
    assert!(!log.contains(chosen), "{log}");
    let auth = std::fs::read_to_string(root.join(format!("sites/{site}/emulator/auth.json")))
        .expect("auth.json");
    assert!(!auth.contains(chosen));

    drop(server);
    drop_db(&db);
}
