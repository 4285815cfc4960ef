use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use dossier_seal::{
    is_sealed, open_value, seal_value, unwrap_key, wrap_key, DataKey, MasterKey, SealError,
    SEAL_VERSION, WRAPPED_KEY_LEN,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Quarters are exact in binary and decimal, so equality after the JSON
        // round trip does not depend on serde_json's float parsing precision.
        any::<i32>().prop_map(|i| json!(f64::from(i) / 4.0)),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("phone".to_owned()),
        Just("contacts/name".to_owned()),
        any::<String>()
    ]
}

/// Replaces the envelope's `c` with `f(decoded c)`.
fn with_ciphertext(sealed: &Value, f: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut c = URL_SAFE_NO_PAD
        .decode(sealed["c"].as_str().unwrap())
        .unwrap();
    f(&mut c);
    let mut out = sealed.clone();
    out["c"] = URL_SAFE_NO_PAD.encode(c).into();
    out
}

proptest! {
    #[test]
    fn seal_open_round_trip(value in arb_json(), stream in arb_uuid(), field in arb_field()) {
        let key = DataKey::generate();
        let sealed = seal_value(&key, stream, &field, &value);
        prop_assert!(is_sealed(&sealed));
        prop_assert_eq!(&sealed["$sealed"], SEAL_VERSION);
        prop_assert_eq!(open_value(&key, stream, &field, &sealed).unwrap(), value);
    }

    #[test]
    fn open_with_other_stream_field_or_key_is_unauthentic(
        value in arb_json(),
        stream in arb_uuid(),
        other_stream in arb_uuid(),
        field in arb_field(),
        other_field in arb_field(),
    ) {
        let key = DataKey::generate();
        let sealed = seal_value(&key, stream, &field, &value);
        if other_stream != stream {
            prop_assert_eq!(open_value(&key, other_stream, &field, &sealed), Err(SealError::Unauthentic));
        }
        if other_field != field {
            prop_assert_eq!(open_value(&key, stream, &other_field, &sealed), Err(SealError::Unauthentic));
        }
        prop_assert_eq!(
            open_value(&DataKey::generate(), stream, &field, &sealed),
            Err(SealError::Unauthentic)
        );
    }

    #[test]
    fn flipping_any_ciphertext_bit_is_unauthentic(
        value in arb_json(),
        stream in arb_uuid(),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = DataKey::generate();
        let sealed = seal_value(&key, stream, "phone", &value);
        let tampered = with_ciphertext(&sealed, |c| {
            let i = pos.index(c.len());
            c[i] ^= 1 << bit;
        });
        prop_assert_eq!(open_value(&key, stream, "phone", &tampered), Err(SealError::Unauthentic));
    }

    #[test]
    fn flipping_any_nonce_bit_is_unauthentic(stream in arb_uuid(), pos in 0usize..12, bit in 0u8..8) {
        let key = DataKey::generate();
        let mut sealed = seal_value(&key, stream, "phone", &json!("+49 30 1234567"));
        let mut n = URL_SAFE_NO_PAD.decode(sealed["n"].as_str().unwrap()).unwrap();
        n[pos] ^= 1 << bit;
        sealed["n"] = URL_SAFE_NO_PAD.encode(n).into();
        prop_assert_eq!(open_value(&key, stream, "phone", &sealed), Err(SealError::Unauthentic));
    }

    #[test]
    fn wrap_unwrap_round_trip(stream in arb_uuid(), other_stream in arb_uuid()) {
        let master = MasterKey::generate();
        let key = DataKey::generate();
        let wrapped = wrap_key(&master, stream, &key);
        prop_assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);

        // Compare keys by behaviour: a value sealed with the original opens with the unwrapped one.
        let unwrapped = unwrap_key(&master, stream, &wrapped).unwrap();
        let sealed = seal_value(&key, stream, "phone", &json!("x"));
        prop_assert_eq!(open_value(&unwrapped, stream, "phone", &sealed).unwrap(), json!("x"));

        prop_assert_eq!(
            unwrap_key(&MasterKey::generate(), stream, &wrapped).unwrap_err(),
            SealError::Unauthentic
        );
        if other_stream != stream {
            prop_assert_eq!(
                unwrap_key(&master, other_stream, &wrapped).unwrap_err(),
                SealError::Unauthentic
            );
        }
    }

    #[test]
    fn flipping_any_wrapped_bit_is_unauthentic(stream in arb_uuid(), pos in 0usize..WRAPPED_KEY_LEN, bit in 0u8..8) {
        let master = MasterKey::generate();
        let mut wrapped = wrap_key(&master, stream, &DataKey::generate());
        wrapped[pos] ^= 1 << bit;
        prop_assert_eq!(unwrap_key(&master, stream, &wrapped).unwrap_err(), SealError::Unauthentic);
    }
}

#[test]
fn sealing_twice_uses_fresh_nonces() {
    let key = DataKey::generate();
    let stream = Uuid::new_v4();
    let a = seal_value(&key, stream, "phone", &json!("+49 30 1234567"));
    let b = seal_value(&key, stream, "phone", &json!("+49 30 1234567"));
    assert_ne!(a["n"], b["n"]);
    assert_ne!(a["c"], b["c"]);

    let master = MasterKey::generate();
    assert_ne!(
        wrap_key(&master, stream, &key),
        wrap_key(&master, stream, &key)
    );
}

#[test]
fn master_key_base64_parsing() {
    let master = MasterKey::generate();
    let text = master.to_base64();
    let parsed = MasterKey::from_base64(&format!("  {text}\n")).unwrap();
    assert_eq!(parsed.id(), master.id());
    assert_eq!(master.id().len(), 16);

    for len in [0usize, 16, 31, 33, 64] {
        let err = MasterKey::from_base64(&STANDARD.encode(vec![7u8; len])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("bad master key: must decode to exactly 32 bytes, got {len}")
        );
    }
    for bad in [
        "not base64!",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "AAEC-_",
    ] {
        let err = MasterKey::from_base64(bad).unwrap_err();
        assert!(matches!(err, SealError::BadMasterKey(_)), "{err:?}");
        assert!(
            err.to_string().contains("not valid standard base64"),
            "{err}"
        );
        assert!(!err.to_string().contains(bad), "error echoes input: {err}");
    }
}

#[test]
fn debug_output_is_redacted() {
    let master = MasterKey::generate();
    let master_b64 = master.to_base64();
    let debug = format!("{master:?}");
    assert_eq!(debug, "MasterKey(<redacted>)");
    assert!(!debug.contains(&master_b64));

    let key = DataKey::generate();
    assert_eq!(format!("{key:?}"), "DataKey(<redacted>)");
    assert_eq!(
        format!("{:#?}", (&master, &key))
            .matches("<redacted>")
            .count(),
        2
    );
}

#[test]
fn error_messages_do_not_leak_plaintext() {
    let key = DataKey::generate();
    let stream = Uuid::new_v4();
    let secret = "+49 30 1234567";
    let sealed = seal_value(&key, stream, "phone", &json!(secret));
    let err = open_value(&DataKey::generate(), stream, "phone", &sealed).unwrap_err();
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
}

#[test]
fn malformed_envelopes_are_rejected() {
    let key = DataKey::generate();
    let stream = Uuid::new_v4();
    let good = seal_value(&key, stream, "phone", &json!("x"));
    let open = |v: &Value| open_value(&key, stream, "phone", v);

    let mut extra = good.clone();
    extra["note"] = json!("hi");
    let mut bad_b64 = good.clone();
    bad_b64["c"] = json!("***");
    let mut padded = good.clone();
    padded["n"] = json!(format!("{}=", good["n"].as_str().unwrap()));
    let mut short_nonce = good.clone();
    short_nonce["n"] = json!(URL_SAFE_NO_PAD.encode([0u8; 8]));
    let mut other_version = good.clone();
    other_version["$sealed"] = json!("aes-256-gcm/2");
    let truncated = with_ciphertext(&good, |c| c.truncate(15));

    for v in [
        json!("plain"),
        json!({"phone": "x"}),
        json!({"$sealed": 1, "n": good["n"], "c": good["c"]}),
        json!({"$sealed": SEAL_VERSION, "c": good["c"]}),
        extra,
        bad_b64,
        padded,
        short_nonce,
        other_version,
        truncated,
    ] {
        assert!(
            matches!(open(&v), Err(SealError::BadEnvelope(_))),
            "{v} -> {:?}",
            open(&v)
        );
    }
    assert_eq!(open(&good).unwrap(), json!("x"));
}

#[test]
fn is_sealed_detects_any_version() {
    assert!(is_sealed(
        &json!({"$sealed": "aes-256-gcm/1", "n": "", "c": ""})
    ));
    assert!(is_sealed(&json!({"$sealed": "future/9"})));
    assert!(!is_sealed(&json!({"$sealed": 1})));
    assert!(!is_sealed(&json!("$sealed")));
    assert!(!is_sealed(&json!(["$sealed"])));
    assert!(!is_sealed(&json!({"phone": "x"})));
}

#[test]
fn wrong_length_wrapped_key_is_rejected() {
    let master = MasterKey::generate();
    let stream = Uuid::new_v4();
    let wrapped = wrap_key(&master, stream, &DataKey::generate());
    for len in [0, 12, WRAPPED_KEY_LEN - 1] {
        assert!(matches!(
            unwrap_key(&master, stream, &wrapped[..len]),
            Err(SealError::BadWrappedKey(_))
        ));
    }
}
