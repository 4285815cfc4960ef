//! Customer events <-> payloads: the shape of each event type and which of
//! its values are sealed.

use std::collections::BTreeMap;

use dossier_domain::{
    Address, Channel, Contact, CreditRating, CustomerKind, Event, Field, FieldChange, FieldValue,
    Importance, LegalStatus, Outcome,
};
use dossier_seal::{is_sealed, open_value, seal_value, DataKey};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::schema::{schema_version, upcast};
use crate::wire::{self, malformed, Reader};
use crate::{CodecError, EncodedPayload, ERASED};

fn opt_field(v: &Option<FieldValue>) -> Value {
    wire::opt_str(v.as_ref().map(FieldValue::as_str))
}

pub(crate) fn contact_json(c: &Contact) -> Value {
    json!({"name": c.name.as_str(), "role": opt_field(&c.role), "phone": opt_field(&c.phone), "email": opt_field(&c.email)})
}

pub(crate) fn address_json(a: &Address) -> Value {
    json!({"label": wire::opt_str(a.label.as_deref()), "text": a.text.as_str()})
}

/// Members of a contact that identify a person (its role is a business fact).
const CONTACT_PERSONAL: [&str; 3] = ["name", "phone", "email"];
/// An address says where someone lives or works, and its label may name them.
const ADDRESS_PERSONAL: [&str; 2] = ["label", "text"];

/// The plaintext payload of `event` and the JSON Pointers of the values in it
/// that must be sealed. `kind` is the customer's kind (it decides whether a
/// name, preferences or interests are personal data).
fn plain_payload(event: &Event, kind: CustomerKind) -> (Value, Vec<String>) {
    let mut personal: Vec<String> = Vec::new();
    let payload = match event {
        Event::Registered {
            kind,
            details,
            owner,
            tags,
        } => {
            let mut d = Map::new();
            for (f, v) in details {
                d.insert(f.as_str().to_owned(), Value::String(v.as_str().to_owned()));
                if f.is_personal(*kind) {
                    personal.push(format!("/details/{}", f.as_str()));
                }
            }
            json!({
                "kind": kind.as_str(),
                "details": d,
                "owner": wire::opt_str(owner.as_deref()),
                "tags": wire::sorted_strings(tags),
            })
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
                    json!({"field": c.field.as_str(), "before": opt_field(&c.before), "after": opt_field(&c.after)})
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
            json!({"contact_id": wire::id(*contact_id), "contact": contact_json(contact)})
        }
        Event::AddressAdded {
            address_id,
            address,
        }
        | Event::AddressRemoved {
            address_id,
            address,
        } => {
            personal.extend(ADDRESS_PERSONAL.iter().map(|f| format!("/address/{f}")));
            json!({"address_id": wire::id(*address_id), "address": address_json(address)})
        }
        Event::OwnerAssigned { before, after } => {
            json!({"before": wire::opt_str(before.as_deref()), "after": after})
        }
        Event::TagsChanged { added, removed } => json!({
            "added": wire::sorted_strings(added),
            "removed": wire::sorted_strings(removed),
        }),
        Event::ImportanceSet { before, after } => json!({
            "before": wire::opt_name(*before, Importance::as_str),
            "after": wire::opt_name(*after, Importance::as_str),
        }),
        Event::OrderPlaced {
            order_id,
            product,
            amount,
            ordered_on,
        } => json!({
            "order_id": wire::id(*order_id),
            "product": product,
            "amount": wire::money(amount),
            "ordered_on": wire::date(*ordered_on),
        }),
        Event::InvoiceIssued {
            invoice_id,
            order_id,
            amount,
            issued_on,
            due_on,
        } => json!({
            "invoice_id": wire::id(*invoice_id),
            "order_id": wire::opt_id(*order_id),
            "amount": wire::money(amount),
            "issued_on": wire::date(*issued_on),
            "due_on": wire::date(*due_on),
        }),
        Event::PaymentReceived {
            payment_id,
            invoice_id,
            amount,
            received_on,
        } => json!({
            "payment_id": wire::id(*payment_id),
            "invoice_id": wire::opt_id(*invoice_id),
            "amount": wire::money(amount),
            "received_on": wire::date(*received_on),
        }),
        Event::CreditChanged {
            rating_before,
            rating_after,
            limit_before,
            limit_after,
        } => json!({
            "rating_before": wire::opt_name(*rating_before, CreditRating::as_str),
            "rating_after": wire::opt_name(*rating_after, CreditRating::as_str),
            "limit_before": wire::opt_money(limit_before.as_ref()),
            "limit_after": wire::opt_money(limit_after.as_ref()),
        }),
        Event::LegalStatusChanged {
            before,
            after,
            since,
        } => json!({
            "before": before.as_str(),
            "after": after.as_str(),
            "since": wire::date(*since),
        }),
        Event::InteractionLogged {
            interaction_id,
            channel,
            outcome,
            occurred_on,
            summary,
        } => {
            personal.push("/summary".into());
            json!({
                "interaction_id": wire::id(*interaction_id),
                "channel": channel.as_str(),
                "outcome": outcome.as_str(),
                "occurred_on": wire::date(*occurred_on),
                "summary": wire::opt_str(summary.as_deref()),
            })
        }
        Event::ComplaintOpened {
            complaint_id,
            category,
            summary,
            opened_on,
        } => {
            personal.push("/summary".into());
            json!({
                "complaint_id": wire::id(*complaint_id),
                "category": category,
                "summary": summary,
                "opened_on": wire::date(*opened_on),
            })
        }
        Event::ComplaintResolved {
            complaint_id,
            resolution,
            resolved_on,
        } => {
            personal.push("/resolution".into());
            json!({
                "complaint_id": wire::id(*complaint_id),
                "resolution": resolution,
                "resolved_on": wire::date(*resolved_on),
            })
        }
        Event::FeedbackRecorded {
            feedback_id,
            satisfaction,
            comment,
            received_on,
        } => {
            personal.push("/comment".into());
            json!({
                "feedback_id": wire::id(*feedback_id),
                "satisfaction": satisfaction,
                "comment": wire::opt_str(comment.as_deref()),
                "received_on": wire::date(*received_on),
            })
        }
        Event::ReviewCompleted {
            reviewed_on,
            summary,
        } => {
            personal.push("/summary".into());
            json!({
                "reviewed_on": wire::date(*reviewed_on),
                "summary": wire::opt_str(summary.as_deref()),
            })
        }
        Event::ConsentRecorded {
            purpose,
            granted,
            on,
        } => json!({"purpose": purpose, "granted": granted, "on": wire::date(*on)}),
        Event::MergedInto { survivor } => json!({"survivor": wire::id(*survivor)}),
        Event::DuplicateMerged { duplicate } => json!({"duplicate": wire::id(*duplicate)}),
        Event::Archived => json!({}),
    };
    (payload, personal)
}

/// Encodes a domain event, sealing personal values. `kind` is the customer's
/// kind (it decides whether a name is personal data).
pub fn encode(event: &Event, kind: CustomerKind, stream_id: Uuid, key: &DataKey) -> EncodedPayload {
    let (mut payload, personal) = plain_payload(event, kind);
    for pointer in personal {
        if let Some(slot) = payload.pointer_mut(&pointer) {
            // Absence is not personal data; `null` stays readable as "none".
            if !slot.is_null() {
                *slot = seal_value(key, stream_id, &pointer, slot);
            }
        }
    }
    let event_type = event.event_type();
    EncodedPayload {
        event_type,
        schema_version: schema_version(event_type).expect("every domain event type has a version"),
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

fn field_value(s: Option<String>) -> Option<FieldValue> {
    s.map(FieldValue::from_log)
}

fn contact(r: &Reader<'_>) -> Result<Contact, CodecError> {
    let c = r.object("contact")?;
    Ok(Contact {
        name: FieldValue::from_log(c.string("name")?),
        role: field_value(c.opt_string("role")?),
        phone: field_value(c.opt_string("phone")?),
        email: field_value(c.opt_string("email")?),
    })
}

fn address(r: &Reader<'_>) -> Result<Address, CodecError> {
    let a = r.object("address")?;
    Ok(Address {
        label: a.opt_string("label")?,
        text: FieldValue::from_log(a.string("text")?),
    })
}

fn field(t: &str, name: &str) -> Result<Field, CodecError> {
    Field::parse(name).ok_or_else(|| malformed(t, "names an unknown field"))
}

/// Decodes an opened (plaintext) payload into a domain event, upcasting it
/// first if it was written under an older schema version.
/// Decodes one stored customer event into a domain event, opening its
/// sealed values with the customer's key (`None`: erased, the values stay
/// sealed). Returns the event and whether it was erased. The one decoder of
/// the write path, the reads and the projections.
pub fn open_event(
    record: &dossier_chain::EventRecord,
    key: Option<&DataKey>,
) -> Result<(Event, bool), CodecError> {
    let mut payload = record.payload.clone();
    let erased = open_payload(&mut payload, record.stream_id, key)?;
    Ok((
        decode(&record.event_type, record.schema_version, payload)?,
        erased,
    ))
}

pub fn decode(event_type: &str, schema_version: i32, payload: Value) -> Result<Event, CodecError> {
    let t = event_type;
    let p = upcast(t, schema_version, payload)?;
    let r = Reader::new(t, &p)?;
    Ok(match t {
        "CustomerRegistered" => {
            let kind = r.name("kind", CustomerKind::parse, || "person, company".into())?;
            let mut details = BTreeMap::new();
            for (k, v) in r.members("details")? {
                let v = v
                    .as_str()
                    .ok_or_else(|| malformed(t, "a detail is not a string"))?;
                details.insert(field(t, k)?, FieldValue::from_log(v.to_owned()));
            }
            Event::Registered {
                kind,
                details,
                owner: r.opt_string("owner")?,
                tags: r.strings("tags")?,
            }
        }
        "CustomerDetailsChanged" => {
            let mut changes = Vec::new();
            for c in r.array("changes")? {
                let c = Reader::new(t, c)?;
                changes.push(FieldChange {
                    field: field(t, &c.string("field")?)?,
                    before: field_value(c.opt_string("before")?),
                    after: field_value(c.opt_string("after")?),
                });
            }
            Event::DetailsChanged { changes }
        }
        "ContactAdded" => Event::ContactAdded {
            contact_id: r.uuid("contact_id")?,
            contact: contact(&r)?,
        },
        "ContactRemoved" => Event::ContactRemoved {
            contact_id: r.uuid("contact_id")?,
            contact: contact(&r)?,
        },
        "AddressAdded" => Event::AddressAdded {
            address_id: r.uuid("address_id")?,
            address: address(&r)?,
        },
        "AddressRemoved" => Event::AddressRemoved {
            address_id: r.uuid("address_id")?,
            address: address(&r)?,
        },
        "OwnerAssigned" => Event::OwnerAssigned {
            before: r.opt_string("before")?,
            after: r.string("after")?,
        },
        "TagsChanged" => Event::TagsChanged {
            added: r.strings("added")?,
            removed: r.strings("removed")?,
        },
        "ImportanceSet" => Event::ImportanceSet {
            before: r.opt_name("before", Importance::parse, Importance::names)?,
            after: r.opt_name("after", Importance::parse, Importance::names)?,
        },
        "OrderPlaced" => Event::OrderPlaced {
            order_id: r.uuid("order_id")?,
            product: r.string("product")?,
            amount: r.money("amount")?,
            ordered_on: r.date("ordered_on")?,
        },
        "InvoiceIssued" => Event::InvoiceIssued {
            invoice_id: r.uuid("invoice_id")?,
            order_id: r.opt_uuid("order_id")?,
            amount: r.money("amount")?,
            issued_on: r.date("issued_on")?,
            due_on: r.date("due_on")?,
        },
        "PaymentReceived" => Event::PaymentReceived {
            payment_id: r.uuid("payment_id")?,
            invoice_id: r.opt_uuid("invoice_id")?,
            amount: r.money("amount")?,
            received_on: r.date("received_on")?,
        },
        "CreditChanged" => Event::CreditChanged {
            rating_before: r.opt_name("rating_before", CreditRating::parse, CreditRating::names)?,
            rating_after: r.opt_name("rating_after", CreditRating::parse, CreditRating::names)?,
            limit_before: r.opt_money("limit_before")?,
            limit_after: r.opt_money("limit_after")?,
        },
        "LegalStatusChanged" => Event::LegalStatusChanged {
            before: r.name("before", LegalStatus::parse, LegalStatus::names)?,
            after: r.name("after", LegalStatus::parse, LegalStatus::names)?,
            since: r.date("since")?,
        },
        "InteractionLogged" => Event::InteractionLogged {
            interaction_id: r.uuid("interaction_id")?,
            channel: r.name("channel", Channel::parse, Channel::names)?,
            outcome: r.name("outcome", Outcome::parse, Outcome::names)?,
            occurred_on: r.date("occurred_on")?,
            summary: r.opt_string("summary")?,
        },
        "ComplaintOpened" => Event::ComplaintOpened {
            complaint_id: r.uuid("complaint_id")?,
            category: r.string("category")?,
            summary: r.string("summary")?,
            opened_on: r.date("opened_on")?,
        },
        "ComplaintResolved" => Event::ComplaintResolved {
            complaint_id: r.uuid("complaint_id")?,
            resolution: r.string("resolution")?,
            resolved_on: r.date("resolved_on")?,
        },
        "FeedbackRecorded" => Event::FeedbackRecorded {
            feedback_id: r.uuid("feedback_id")?,
            satisfaction: u8::try_from(r.integer("satisfaction", 1..=5)?).expect("at most 5"),
            comment: r.opt_string("comment")?,
            received_on: r.date("received_on")?,
        },
        "ReviewCompleted" => Event::ReviewCompleted {
            reviewed_on: r.date("reviewed_on")?,
            summary: r.opt_string("summary")?,
        },
        "ConsentRecorded" => Event::ConsentRecorded {
            purpose: r.string("purpose")?,
            granted: r.boolean("granted")?,
            on: r.date("on")?,
        },
        "MergedInto" => Event::MergedInto {
            survivor: r.uuid("survivor")?,
        },
        "DuplicateMerged" => Event::DuplicateMerged {
            duplicate: r.uuid("duplicate")?,
        },
        "CustomerArchived" => Event::Archived,
        other => return Err(CodecError::UnknownType(other.to_owned())),
    })
}
