//! The system stream: events that are not about one customer. They hold no
//! personal data, so nothing in them is sealed.

use chrono::NaiveDate;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::schema::{schema_version, upcast};
use crate::wire::{self, malformed, Reader};
use crate::{CodecError, EncodedPayload};

/// The stream id of the system stream, `00000000-0000-0000-0000-00000000d055`.
pub const SYSTEM_STREAM: Uuid = Uuid::from_u128(0xd055);

const EVALUATION_DATE_REACHED: &str = "EvaluationDateReached";
const RULES_ADOPTED: &str = "RulesAdopted";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemEvent {
    /// The business day an evaluation run looked at (time enters the log only through these).
    EvaluationDate { date: NaiveDate },
    /// A rule set taken into force: its declared version, SHA-256 (hex) of the exact text, and the text.
    RulesAdopted {
        version: String,
        sha256: String,
        text: String,
    },
}

impl SystemEvent {
    /// A [`SystemEvent::RulesAdopted`] with the digest computed from `text`.
    pub fn rules_adopted(version: impl Into<String>, text: impl Into<String>) -> SystemEvent {
        let text = text.into();
        SystemEvent::RulesAdopted {
            version: version.into(),
            sha256: rules_sha256(&text),
            text,
        }
    }

    /// The stable name stored as `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            SystemEvent::EvaluationDate { .. } => EVALUATION_DATE_REACHED,
            SystemEvent::RulesAdopted { .. } => RULES_ADOPTED,
        }
    }
}

/// Lowercase hex SHA-256 of the UTF-8 bytes of a rule set's text.
pub fn rules_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `event_type` belongs on the system stream.
pub fn is_system_type(event_type: &str) -> bool {
    matches!(event_type, EVALUATION_DATE_REACHED | RULES_ADOPTED)
}

pub fn encode_system(e: &SystemEvent) -> EncodedPayload {
    let payload = match e {
        SystemEvent::EvaluationDate { date } => json!({"date": wire::date(*date)}),
        SystemEvent::RulesAdopted {
            version,
            sha256,
            text,
        } => json!({"version": version, "sha256": sha256, "text": text}),
    };
    let event_type = e.event_type();
    EncodedPayload {
        event_type,
        schema_version: schema_version(event_type).expect("system event types have a version"),
        payload,
    }
}

/// Decodes a system event. A `RulesAdopted` whose `sha256` is not the digest
/// of its `text` is malformed: the digest is what rule evaluations cite.
pub fn decode_system(
    event_type: &str,
    schema_version: i32,
    payload: Value,
) -> Result<SystemEvent, CodecError> {
    if !is_system_type(event_type) {
        return Err(CodecError::UnknownType(event_type.to_owned()));
    }
    let t = event_type;
    let p = upcast(t, schema_version, payload)?;
    let r = Reader::new(t, &p)?;
    Ok(match t {
        EVALUATION_DATE_REACHED => SystemEvent::EvaluationDate {
            date: r.date("date")?,
        },
        _ => {
            let text = r.string("text")?;
            let sha256 = r.string("sha256")?;
            if sha256 != rules_sha256(&text) {
                return Err(malformed(t, "sha256 is not the SHA-256 of text"));
            }
            SystemEvent::RulesAdopted {
                version: r.string("version")?,
                sha256,
                text,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_stream_id_is_fixed() {
        assert_eq!(
            SYSTEM_STREAM.to_string(),
            "00000000-0000-0000-0000-00000000d055"
        );
    }

    #[test]
    fn rules_digest_is_sha256_hex_of_the_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            rules_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn system_events_round_trip() {
        for e in [
            SystemEvent::EvaluationDate {
                date: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            },
            SystemEvent::rules_adopted("2026.1", "importance:\n  important: revenue >= 1000000\n"),
        ] {
            let enc = encode_system(&e);
            assert_eq!(enc.schema_version, 1);
            assert!(is_system_type(enc.event_type));
            assert_eq!(
                decode_system(enc.event_type, enc.schema_version, enc.payload).unwrap(),
                e
            );
        }
    }

    #[test]
    fn wire_shapes_are_as_documented() {
        let enc = encode_system(&SystemEvent::EvaluationDate {
            date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        });
        assert_eq!(enc.event_type, "EvaluationDateReached");
        assert_eq!(enc.payload, json!({"date": "2026-03-01"}));
        let enc = encode_system(&SystemEvent::rules_adopted("1", "abc"));
        assert_eq!(enc.event_type, "RulesAdopted");
        assert_eq!(
            enc.payload,
            json!({
                "version": "1",
                "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "text": "abc",
            })
        );
    }

    #[test]
    fn a_digest_that_does_not_match_the_text_is_rejected() {
        let payload = json!({"version": "1", "sha256": rules_sha256("abc"), "text": "abd"});
        assert!(matches!(
            decode_system("RulesAdopted", 1, payload),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn customer_types_and_unknown_versions_are_not_system_events() {
        assert!(!is_system_type("CustomerRegistered"));
        assert_eq!(
            decode_system("CustomerArchived", 1, json!({})),
            Err(CodecError::UnknownType("CustomerArchived".into()))
        );
        assert!(matches!(
            decode_system("EvaluationDateReached", 2, json!({"date": "2026-01-01"})),
            Err(CodecError::UnknownVersion { version: 2, .. })
        ));
        assert!(matches!(
            decode_system("EvaluationDateReached", 1, json!({"date": "2026-1-1x"})),
            Err(CodecError::Malformed { .. })
        ));
    }
}
