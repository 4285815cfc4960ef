//! The payload schema of each event type: domain events <-> JSON payloads,
//! with personal fields sealed under the customer's data key.
//!
//! Sealing is by position: every personal value is replaced by an envelope
//! whose associated data is its JSON Pointer inside the payload (for example
//! `/details/phone`), so a ciphertext cannot be moved to another field or
//! customer. Opening needs no schema: any envelope found is opened with its own
//! pointer. Documented per event type in docs/events.md.

use std::collections::BTreeMap;

use dossier_domain::{Contact, CustomerKind, Event, Field, FieldChange, FieldValue};
use dossier_seal::{is_sealed, open_value, seal_value, DataKey};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Payload schema version written today.
pub const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unsupported schema version {version} of {event_type}")]
    UnknownVersion { event_type: String, version: i32 },
    #[error("payload of {event_type} is malformed: {reason}")]
    Malformed { event_type: String, reason: String },
    #[error("sealed value at {0} cannot be opened with this customer's key")]
    Unopenable(String),
}

/// A domain event as stored: its type and a payload ready for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPayload {
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: Value,
}

fn opt(v: &Option<FieldValue>) -> Value {
    v.as_ref()
        .map_or(Value::Null, |v| Value::String(v.as_str().to_owned()))
}

fn contact_json(c: &Contact) -> Value {
    json!({"name": c.name.as_str(), "role": opt(&c.role), "phone": opt(&c.phone), "email": opt(&c.email)})
}

const CONTACT_PERSONAL: [&str; 3] = ["name", "phone", "email"];

/// Encodes a domain event, sealing personal values. `kind` is the customer's
/// kind (it decides whether a name is personal data).
pub fn encode(event: &Event, kind: CustomerKind, stream_id: Uuid, key: &DataKey) -> EncodedPayload {
    let mut personal: Vec<String> = Vec::new();
    let payload = match event {
        Event::Registered {
            kind,
            details,
            owner,
        } => {
            let mut d = Map::new();
            for (f, v) in details {
                d.insert(f.as_str().to_owned(), Value::String(v.as_str().to_owned()));
                if f.is_personal(*kind) {
                    personal.push(format!("/details/{}", f.as_str()));
                }
            }
            json!({"kind": kind.as_str(), "details": d, "owner": owner})
        }
        Event::DetailsChanged { changes } => {
            let list: Vec<Value> = changes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if c.field.is_personal(kind) {
                        personal.push(format!("/changes/{i}/before"));
                        personal.push(format!("/changes/{i}/after"));
                    }
                    json!({"field": c.field.as_str(), "before": opt(&c.before), "after": opt(&c.after)})
                })
                .collect();
            json!({ "changes": list })
        }
        Event::ContactAdded {
            contact_id,
            contact,
        }
        | Event::ContactRemoved {
            contact_id,
            contact,
        } => {
            personal.extend(CONTACT_PERSONAL.iter().map(|f| format!("/contact/{f}")));
            json!({"contact_id": contact_id, "contact": contact_json(contact)})
        }
        Event::OwnerAssigned { before, after } => json!({"before": before, "after": after}),
        Event::Archived => json!({}),
    };
    let mut payload = payload;
    for pointer in personal {
        if let Some(slot) = payload.pointer_mut(&pointer) {
            if !slot.is_null() {
                *slot = seal_value(key, stream_id, &pointer, slot);
            }
        }
    }
    EncodedPayload {
        event_type: event.event_type(),
        schema_version: SCHEMA_VERSION,
        payload,
    }
}

/// Replaces every sealed envelope in `payload` by its plaintext. With no key
/// (the customer was erased) each envelope becomes the string [`ERASED`].
/// Returns whether anything was erased.
pub fn open_payload(
    payload: &mut Value,
    stream_id: Uuid,
    key: Option<&DataKey>,
) -> Result<bool, CodecError> {
    fn walk(
        v: &mut Value,
        path: &mut String,
        stream_id: Uuid,
        key: Option<&DataKey>,
    ) -> Result<bool, CodecError> {
        if is_sealed(v) {
            return match key {
                Some(k) => {
                    *v = open_value(k, stream_id, path, v)
                        .map_err(|_| CodecError::Unopenable(path.clone()))?;
                    Ok(false)
                }
                None => {
                    *v = Value::String(ERASED.to_owned());
                    Ok(true)
                }
            };
        }
        let mut erased = false;
        match v {
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    erased |= walk(item, path, stream_id, key)?;
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    erased |= walk(item, path, stream_id, key)?;
                    path.truncate(len);
                }
            }
            _ => {}
        }
        Ok(erased)
    }
    walk(payload, &mut String::new(), stream_id, key)
}

fn malformed(event_type: &str, reason: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        event_type: event_type.to_owned(),
        reason: reason.into(),
    }
}

fn str_field(t: &str, v: &Value, name: &str) -> Result<Option<FieldValue>, CodecError> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(FieldValue::from_log(s.clone()))),
        Some(_) => Err(malformed(t, format!("{name} is not a string"))),
    }
}

fn uuid_field(t: &str, v: &Value, name: &str) -> Result<Uuid, CodecError> {
    v.get(name)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| malformed(t, format!("{name} is not a UUID")))
}

fn contact(t: &str, v: &Value) -> Result<Contact, CodecError> {
    let c = v
        .get("contact")
        .ok_or_else(|| malformed(t, "contact is missing"))?;
    Ok(Contact {
        name: str_field(t, c, "name")?.ok_or_else(|| malformed(t, "contact name is missing"))?,
        role: str_field(t, c, "role")?,
        phone: str_field(t, c, "phone")?,
        email: str_field(t, c, "email")?,
    })
}

/// Upcasts an older payload to the current schema. Version 1 is current; the
/// match is where a future version's translation goes, so that old events
/// keep replaying unchanged.
pub fn upcast(event_type: &str, schema_version: i32, payload: Value) -> Result<Value, CodecError> {
    match schema_version {
        SCHEMA_VERSION => Ok(payload),
        version => Err(CodecError::UnknownVersion {
            event_type: event_type.to_owned(),
            version,
        }),
    }
}

/// Decodes an opened (plaintext) payload into a domain event.
pub fn decode(event_type: &str, schema_version: i32, payload: Value) -> Result<Event, CodecError> {
    let t = event_type;
    let p = upcast(t, schema_version, payload)?;
    Ok(match t {
        "CustomerRegistered" => {
            let kind = p
                .get("kind")
                .and_then(Value::as_str)
                .and_then(CustomerKind::parse)
                .ok_or_else(|| malformed(t, "kind is not person or company"))?;
            let mut details = BTreeMap::new();
            for (k, v) in p
                .get("details")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let f =
                    Field::parse(k).ok_or_else(|| malformed(t, format!("unknown field {k}")))?;
                if let Some(s) = v.as_str() {
                    details.insert(f, FieldValue::from_log(s.to_owned()));
                }
            }
            Event::Registered {
                kind,
                details,
                owner: p.get("owner").and_then(Value::as_str).map(str::to_owned),
            }
        }
        "CustomerDetailsChanged" => {
            let mut changes = Vec::new();
            for c in p
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = c.get("field").and_then(Value::as_str).unwrap_or_default();
                let field = Field::parse(name)
                    .ok_or_else(|| malformed(t, format!("unknown field {name}")))?;
                changes.push(FieldChange {
                    field,
                    before: str_field(t, c, "before").unwrap_or(None),
                    after: str_field(t, c, "after").unwrap_or(None),
                });
            }
            Event::DetailsChanged { changes }
        }
        "ContactAdded" => Event::ContactAdded {
            contact_id: uuid_field(t, &p, "contact_id")?,
            contact: contact(t, &p)?,
        },
        "ContactRemoved" => Event::ContactRemoved {
            contact_id: uuid_field(t, &p, "contact_id")?,
            contact: contact(t, &p)?,
        },
        "OwnerAssigned" => Event::OwnerAssigned {
            before: p.get("before").and_then(Value::as_str).map(str::to_owned),
            after: p
                .get("after")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(t, "after is missing"))?
                .to_owned(),
        },
        "CustomerArchived" => Event::Archived,
        other => return Err(CodecError::UnknownType(other.to_owned())),
    })
}

/// Stands in for a personal value whose customer key was destroyed.
pub const ERASED: &str = "[erased]";

/// The JSON document of a customer file as read models and the API show it.
pub fn customer_json(c: &dossier_domain::Customer) -> Value {
    let details: Map<String, Value> = c
        .details
        .iter()
        .map(|(f, v)| (f.as_str().to_owned(), Value::String(v.as_str().to_owned())))
        .collect();
    let contacts: Map<String, Value> = c
        .contacts
        .iter()
        .map(|(id, ct)| (id.to_string(), contact_json(ct)))
        .collect();
    json!({
        "kind": c.kind.map(CustomerKind::as_str),
        "details": details,
        "contacts": contacts,
        "owner": c.owner,
        "archived": c.archived,
    })
}

/// Inverse of [`customer_json`] for the parts a read model stores.
pub fn customer_from_parts(
    kind: &str,
    details: &Value,
    contacts: &Value,
    owner: Option<String>,
    archived: bool,
) -> dossier_domain::Customer {
    let mut c = dossier_domain::Customer {
        kind: CustomerKind::parse(kind),
        owner,
        archived,
        ..Default::default()
    };
    for (k, v) in details.as_object().into_iter().flatten() {
        if let (Some(f), Some(s)) = (Field::parse(k), v.as_str()) {
            c.details.insert(f, FieldValue::from_log(s.to_owned()));
        }
    }
    for (k, v) in contacts.as_object().into_iter().flatten() {
        if let (Ok(id), Some(name)) = (Uuid::parse_str(k), v.get("name").and_then(Value::as_str)) {
            let s = |n: &str| {
                v.get(n)
                    .and_then(Value::as_str)
                    .map(|x| FieldValue::from_log(x.to_owned()))
            };
            c.contacts.insert(
                id,
                Contact {
                    name: FieldValue::from_log(name.to_owned()),
                    role: s("role"),
                    phone: s("phone"),
                    email: s("email"),
                },
            );
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use dossier_domain::{decide, Command, Customer};

    fn person_details() -> BTreeMap<Field, FieldValue> {
        let mut d = BTreeMap::new();
        d.insert(Field::Name, FieldValue::from_log("张三".into()));
        d.insert(Field::Phone, FieldValue::from_log("+8613812345678".into()));
        d.insert(Field::Region, FieldValue::from_log("华东".into()));
        d
    }

    #[test]
    fn registered_round_trips_and_seals_personal_fields_only() {
        let key = DataKey::generate();
        let id = Uuid::now_v7();
        let event = Event::Registered {
            kind: CustomerKind::Person,
            details: person_details(),
            owner: Some("alice".into()),
        };
        let enc = encode(&event, CustomerKind::Person, id, &key);
        let text = enc.payload.to_string();
        assert!(
            !text.contains("张三") && !text.contains("13812345678"),
            "personal data leaked: {text}"
        );
        assert!(text.contains("华东"), "business facts stay plain");
        let mut p = enc.payload.clone();
        assert!(!open_payload(&mut p, id, Some(&key)).unwrap());
        assert_eq!(
            decode(enc.event_type, enc.schema_version, p).unwrap(),
            event
        );
    }

    #[test]
    fn without_the_key_sealed_values_read_as_erased() {
        let key = DataKey::generate();
        let id = Uuid::now_v7();
        let state = Customer::default();
        let events = decide(
            &state,
            Command::Register {
                kind: CustomerKind::Person,
                details: person_details(),
                owner: None,
            },
        )
        .unwrap();
        let mut p = encode(&events[0], CustomerKind::Person, id, &key).payload;
        assert!(open_payload(&mut p, id, None).unwrap());
        assert_eq!(p["details"]["name"], json!(ERASED));
        assert_eq!(p["details"]["region"], json!("华东"));
    }

    #[test]
    fn a_ciphertext_moved_to_another_field_does_not_open() {
        let key = DataKey::generate();
        let id = Uuid::now_v7();
        let event = Event::Registered {
            kind: CustomerKind::Person,
            details: person_details(),
            owner: None,
        };
        let mut p = encode(&event, CustomerKind::Person, id, &key).payload;
        let name = p["details"]["name"].clone();
        p["details"]["phone"] = name;
        assert_eq!(
            open_payload(&mut p, id, Some(&key)),
            Err(CodecError::Unopenable("/details/phone".into()))
        );
    }

    #[test]
    fn unknown_versions_and_types_are_rejected() {
        assert!(matches!(
            decode("CustomerArchived", 99, json!({})),
            Err(CodecError::UnknownVersion { .. })
        ));
        assert!(matches!(
            decode("Nope", 1, json!({})),
            Err(CodecError::UnknownType(_))
        ));
    }
}
