use super::*;

fn payload(extra: serde_json::Value) -> Vec<u8> {
    let mut base = serde_json::json!({
        "signup_id": "0192f1b4-0000-7000-8000-000000000001",
        "organization_name": "Test Org",
        "admin_email": "Admin@Test.com",
        "admin_full_name": "Test Admin",
        "admin_password": "TestPass123!",
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            base.as_object_mut().map(|o| o.remove(&k));
        } else {
            base[k] = v;
        }
    }
    serde_json::to_vec(&base).expect("json")
}

fn outcome(extra: serde_json::Value) -> Result<ValidSignup, Rejection> {
    match parse_signup(&payload(extra)) {
        ParsedSignup::Read { outcome, .. } => outcome,
        ParsedSignup::Unreadable { error } => panic!("unreadable: {error}"),
    }
}

#[test]
fn derives_subdomain_and_normalises() {
    let s = outcome(serde_json::json!({})).expect("valid");
    assert_eq!(s.subdomain, "test-org");
    assert_eq!(s.admin_email, "admin@test.com");
    assert_eq!(s.auth_provider, AuthProvider::Password);
}

#[test]
fn derivation_rules() {
    assert_eq!(derive_subdomain("  ACME, Inc. (EU) "), "acme-inc-eu");
    assert_eq!(derive_subdomain("Café Ünïcode"), "caf-n-code");
    assert_eq!(
        derive_subdomain("a very long organization name that goes on"),
        "a-very-long-organization-name-th"
    );
    assert_eq!(
        derive_subdomain("abcdefghijklmnopqrstuvwxyz abcde-x"),
        "abcdefghijklmnopqrstuvwxyz-abcde"
    );
}

#[test]
fn rejects_each_rule_with_a_code() {
    let cases = [
        (serde_json::json!({"subdomain": "ab"}), "invalid_subdomain"),
        (
            serde_json::json!({"subdomain": "-abc"}),
            "invalid_subdomain",
        ),
        (serde_json::json!({"subdomain": "Abc"}), "invalid_subdomain"),
        (
            serde_json::json!({"subdomain": "a_bc"}),
            "invalid_subdomain",
        ),
        (
            serde_json::json!({"subdomain": "x".repeat(33)}),
            "invalid_subdomain",
        ),
        (
            serde_json::json!({"subdomain": "admin"}),
            "reserved_subdomain",
        ),
        (serde_json::json!({"admin_email": "nope"}), "invalid_email"),
        (serde_json::json!({"admin_email": "a@b"}), "invalid_email"),
        (serde_json::json!({"admin_email": null}), "missing_field"),
        (
            serde_json::json!({"organization_name": "  "}),
            "missing_field",
        ),
        (
            serde_json::json!({"organization_name": "!!!"}),
            "invalid_subdomain",
        ),
        (
            serde_json::json!({"admin_password": "short"}),
            "invalid_password",
        ),
        (
            serde_json::json!({"admin_password": null, "auth_provider": "password"}),
            "missing_field",
        ),
        (
            serde_json::json!({"auth_provider": "github"}),
            "invalid_payload",
        ),
        (serde_json::json!({"admin_email": 42}), "invalid_payload"),
    ];
    for (extra, code) in cases {
        let got = outcome(extra.clone()).expect_err("should be rejected");
        assert_eq!(got.code, code, "for {extra}: {}", got.message);
        assert!(!got.message.is_empty());
    }
}

#[test]
fn full_names_split_at_the_first_space() {
    assert_eq!(
        split_full_name("Test Admin"),
        ("Test".into(), Some("Admin".into()))
    );
    assert_eq!(split_full_name("Madonna"), ("Madonna".into(), None));
    assert_eq!(
        split_full_name(" Jean  de la Fontaine "),
        ("Jean".into(), Some("de la Fontaine".into()))
    );
}

#[test]
fn google_signup_needs_no_password() {
    let s = outcome(serde_json::json!({"admin_password": null})).expect("valid");
    assert_eq!(s.auth_provider, AuthProvider::Google);
    assert_eq!(s.admin_password, None);
}

#[test]
fn rejection_messages_never_echo_the_password() {
    let secret = "Sup3r\"Secret'Pass\u{7}";
    let got = outcome(serde_json::json!({"admin_password": secret})).expect_err("control char");
    assert!(!got.message.contains("Sup3r"), "{}", got.message);
}

#[test]
fn unreadable_payloads() {
    for bytes in [
        &b"\xff\x00garbage"[..],
        b"[1,2]",
        b"{}",
        br#"{"signup_id":"nope"}"#,
    ] {
        assert!(matches!(
            parse_signup(bytes),
            ParsedSignup::Unreadable { .. }
        ));
    }
}
