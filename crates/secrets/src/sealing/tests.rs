use secrecy::ExposeSecret;

use super::*;

fn keyring(text: &str) -> Keyring {
    Keyring::parse(text).expect("keyring")
}

fn entry(id: &str) -> String {
    Keyring::generate_entry(&KeyId::parse(id).expect("id"))
        .expose_secret()
        .to_string()
}

fn binding(field: Field) -> Binding {
    Binding::new(Uuid::from_u128(7), field)
}

#[test]
fn a_sealed_value_opens_for_its_saga_and_field_only() {
    let ring = keyring(&entry("k1"));
    let sealed = ring.seal("TestPass123!", binding(Field::AdminPassword));
    assert!(sealed.0.starts_with("v2:k1:"), "{}", sealed.0);
    assert!(!sealed.0.contains("TestPass123!"));
    assert_ne!(
        sealed,
        ring.seal("TestPass123!", binding(Field::AdminPassword)),
        "every seal uses a fresh ephemeral key"
    );
    let opened = ring
        .open(&sealed, binding(Field::AdminPassword))
        .expect("opens");
    assert_eq!(opened.expose_secret(), "TestPass123!");

    let other_field = ring.open(&sealed, binding(Field::DbPassword));
    assert!(
        matches!(other_field, Err(Error::CannotOpen)),
        "{other_field:?}"
    );
    let other_saga = ring.open(
        &sealed,
        Binding::new(Uuid::from_u128(8), Field::AdminPassword),
    );
    assert!(
        matches!(other_saga, Err(Error::CannotOpen)),
        "{other_saga:?}"
    );
}

#[test]
fn sealing_needs_only_the_public_key() {
    let ring = keyring(&entry("web-1"));
    let public = Recipient::parse(&ring.recipient().to_text()).expect("public key");
    let sealed = public.seal("secret", binding(Field::ApiSecret));
    assert_eq!(
        ring.open(&sealed, binding(Field::ApiSecret))
            .expect("opens")
            .expose_secret(),
        "secret"
    );
}

#[test]
fn another_key_under_the_same_id_and_tampering_are_refused() {
    let ring = keyring(&entry("k1"));
    let impostor = keyring(&entry("k1"));
    let sealed = ring.seal("x", binding(Field::DbPassword));
    let got = impostor.open(&sealed, binding(Field::DbPassword));
    assert!(matches!(got, Err(Error::CannotOpen)), "{got:?}");

    let body = sealed.0.strip_prefix("v2:k1:").expect("prefix");
    let mut bytes = STANDARD.decode(body).expect("base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = Sealed(format!("v2:k1:{}", STANDARD.encode(bytes)));
    assert!(matches!(
        ring.open(&tampered, binding(Field::DbPassword)),
        Err(Error::CannotOpen)
    ));
    for junk in ["plain", "v2:k1", "v2:k1:!!", "v2:k1:AAAA"] {
        let got = ring.open(&Sealed(junk.into()), binding(Field::DbPassword));
        assert!(matches!(got, Err(Error::Malformed)), "{junk}: {got:?}");
    }
}

/// The documented rotation: add a new key in front, new values use it, old ones still
/// open; once nothing sealed under the old id is left, drop it.
#[test]
fn rotation_adds_a_key_in_front_and_retires_the_old_one() {
    let old = entry("2026-06");
    let new = entry("2026-12");
    let before = keyring(&old);
    let sealed_before = before.seal("old secret", binding(Field::DbPassword));

    let during = keyring(&format!("{new},{old}"));
    let sealed_during = during.seal("new secret", binding(Field::DbPassword));
    assert!(sealed_during.0.starts_with("v2:2026-12:"));
    assert!(during.is_stale(&sealed_before));
    assert!(!during.is_stale(&sealed_during));
    assert_eq!(
        during
            .open(&sealed_before, binding(Field::DbPassword))
            .expect("old value opens during the rotation")
            .expose_secret(),
        "old secret"
    );
    assert_eq!(
        before.recipients()[0].to_text(),
        during.recipients()[1].to_text(),
        "the old key keeps its public half"
    );

    let after = keyring(&new);
    assert!(after
        .open(&sealed_during, binding(Field::DbPassword))
        .is_ok());
    let got = after.open(&sealed_before, binding(Field::DbPassword));
    assert!(
        matches!(&got, Err(Error::UnknownKey(id)) if id == "2026-06"),
        "{got:?}"
    );
}

#[test]
fn v1_values_open_only_with_the_legacy_key() {
    let legacy_text = LegacyKey::generate_base64();
    let legacy = LegacyKey::from_base64(&legacy_text).expect("legacy key");
    let v1 = legacy.seal("from before");
    let ring = keyring(&entry("k1"));
    assert!(matches!(
        ring.open(&v1, binding(Field::DbPassword)),
        Err(Error::NoLegacyKey)
    ));
    let ring = ring.with_legacy(LegacyKey::from_base64(&legacy_text).expect("legacy key"));
    assert_eq!(
        ring.open(&v1, binding(Field::DbPassword))
            .expect("opens")
            .expose_secret(),
        "from before"
    );
    assert!(ring.is_stale(&v1));
}

#[test]
fn bad_keyrings_say_what_is_wrong() {
    let good = entry("k1");
    let twice = format!("{good},{good}");
    for (text, says) in [
        ("", "holds no key"),
        ("k1", "must be written"),
        ("k1:short", "32 bytes"),
        ("bad id:AAAA", "key id"),
        (twice.as_str(), "twice"),
    ] {
        let err = Keyring::parse(text).expect_err(text).to_string();
        assert!(err.contains(says), "{text:?} gave {err:?}");
        assert!(
            !err.contains(&good[3..]),
            "an error must not repeat the key"
        );
    }
    assert!(Recipient::parse("k1:AAAA").is_err());
    // A low-order point (all zeros) would make every seal fail: refused when read.
    let zeros = format!("k1:{}", STANDARD.encode([0u8; 32]));
    let err = Recipient::parse(&zeros).expect_err("all zeros").to_string();
    assert!(err.contains("low-order"), "{err}");
}

#[test]
fn debug_shows_key_ids_only() {
    let text = entry("k1");
    let ring = keyring(&text);
    let shown = format!("{ring:?}");
    assert!(shown.contains("k1"), "{shown}");
    assert!(!shown.contains(&text[3..]), "{shown}");
}
