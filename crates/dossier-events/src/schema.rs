//! Schema versions per event type and the upcaster: the one place where a
//! payload written under an older version is translated to the current shape.
//! Stored bytes are never rewritten (they are hashed); readers upcast on read.

use dossier_domain::Event;
use serde_json::Value;

use crate::system::is_system_type;
use crate::wire::malformed;
use crate::CodecError;

/// The schema version written today for `event_type`, or `None` for a type
/// this crate does not know.
pub fn schema_version(event_type: &str) -> Option<i32> {
    match event_type {
        // v2 added `tags`.
        "CustomerRegistered" => Some(2),
        t if Event::TYPES.contains(&t) || is_system_type(t) => Some(1),
        _ => None,
    }
}

/// Translates a payload of `event_type` written under `schema_version` into
/// the current shape of that type. The current version passes unchanged; an
/// unknown type is [`CodecError::UnknownType`], a version that was never
/// written (or is newer than this code) is [`CodecError::UnknownVersion`].
/// Works on opened payloads: every sealed value was opened at the pointer it
/// was sealed under, so an upcaster may move members freely.
pub fn upcast(event_type: &str, schema_version: i32, payload: Value) -> Result<Value, CodecError> {
    let current = self::schema_version(event_type)
        .ok_or_else(|| CodecError::UnknownType(event_type.to_owned()))?;
    match (event_type, schema_version) {
        (_, v) if v == current => Ok(payload),
        ("CustomerRegistered", 1) => registered_v1_to_v2(payload),
        (t, version) => Err(CodecError::UnknownVersion {
            event_type: t.to_owned(),
            version,
        }),
    }
}

/// Version 1 had no tags: a customer registered then had none.
fn registered_v1_to_v2(mut payload: Value) -> Result<Value, CodecError> {
    let obj = payload
        .as_object_mut()
        .ok_or_else(|| malformed("CustomerRegistered", "payload is not a JSON object"))?;
    obj.insert("tags".to_owned(), Value::Array(Vec::new()));
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_has_a_current_version() {
        for t in Event::TYPES {
            let v = schema_version(t).unwrap_or_else(|| panic!("{t} has no version"));
            assert_eq!(v, if t == "CustomerRegistered" { 2 } else { 1 }, "{t}");
        }
        assert_eq!(schema_version("RulesAdopted"), Some(1));
        assert_eq!(schema_version("EvaluationDateReached"), Some(1));
        assert_eq!(schema_version("CustomerDeleted"), None);
    }

    #[test]
    fn registered_v1_gains_empty_tags_and_v2_passes_unchanged() {
        let v1 = json!({"kind": "company", "details": {}, "owner": null});
        assert_eq!(
            upcast("CustomerRegistered", 1, v1).unwrap(),
            json!({"kind": "company", "details": {}, "owner": null, "tags": []})
        );
        let v2 = json!({"kind": "company", "details": {}, "owner": null, "tags": ["vip"]});
        assert_eq!(upcast("CustomerRegistered", 2, v2.clone()).unwrap(), v2);
    }

    #[test]
    fn versions_never_written_are_rejected() {
        for (t, v) in [
            ("CustomerRegistered", 0),
            ("CustomerRegistered", 3),
            ("OrderPlaced", 2),
            ("CustomerArchived", 0),
            ("RulesAdopted", -1),
        ] {
            assert_eq!(
                upcast(t, v, json!({})),
                Err(CodecError::UnknownVersion {
                    event_type: t.into(),
                    version: v
                })
            );
        }
        assert_eq!(
            upcast("Nope", 1, json!({})),
            Err(CodecError::UnknownType("Nope".into()))
        );
        assert!(matches!(
            upcast("CustomerRegistered", 1, json!([])),
            Err(CodecError::Malformed { .. })
        ));
    }
}
