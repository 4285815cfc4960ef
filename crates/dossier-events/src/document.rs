//! The JSON document of a customer's current file: what read models store
//! and the API shows, and what a read model rebuilds the decision state from.
//! The round trip is exact, including the id sets that only serve
//! de-duplication: a lossy document would let a retried command through twice.

use dossier_domain::{
    Address, Contact, CreditRating, Customer, CustomerKind, Field, FieldValue, Importance,
    LegalStatus, Receivable,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::codec::{address_json, contact_json};
use crate::wire;

/// A customer document as the API shows it: details and contacts apart, the
/// rest of the file beside them (kind, owner and archived are shown from
/// their own columns).
#[derive(Clone, Debug, PartialEq)]
pub struct FileParts {
    pub details: Value,
    pub contacts: Value,
    pub more: Map<String, Value>,
}

/// Splits a document made by [`customer_json`] into its shown parts. `None`
/// when it is not a JSON object.
pub fn split_file(file: Value) -> Option<FileParts> {
    let Value::Object(mut more) = file else {
        return None;
    };
    let mut take = |k: &str| more.remove(k).unwrap_or_else(|| Value::Object(Map::new()));
    let (details, contacts) = (take("details"), take("contacts"));
    for k in ["kind", "owner", "archived"] {
        more.remove(k);
    }
    Some(FileParts {
        details,
        contacts,
        more,
    })
}

/// The JSON document of a customer file. Documented in docs/events.md.
pub fn customer_json(c: &Customer) -> Value {
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
    let addresses: Map<String, Value> = c
        .addresses
        .iter()
        .map(|(id, a)| (id.to_string(), address_json(a)))
        .collect();
    let consents: Map<String, Value> = c
        .consents
        .iter()
        .map(|(purpose, granted)| (purpose.clone(), Value::Bool(*granted)))
        .collect();
    let receivables: Map<String, Value> = c
        .receivables
        .iter()
        .map(|(id, r)| {
            let v = json!({
                "amount": wire::money(&r.amount),
                "paid": wire::money(&r.paid),
                "due_on": wire::date(r.due_on),
            });
            (id.to_string(), v)
        })
        .collect();
    let complaints = |open: bool| {
        wire::ids(
            c.complaints
                .iter()
                .filter(move |(_, o)| **o == open)
                .map(|(id, _)| id),
        )
    };
    json!({
        "kind": c.kind.map(CustomerKind::as_str),
        "details": details,
        "contacts": contacts,
        "addresses": addresses,
        "owner": c.owner,
        "tags": wire::sorted_strings(&c.tags),
        "importance": wire::opt_name(c.importance, Importance::as_str),
        "credit": {
            "rating": wire::opt_name(c.credit_rating, CreditRating::as_str),
            "limit": wire::opt_money(c.credit_limit.as_ref()),
        },
        "legal_status": wire::opt_name(c.legal_status, LegalStatus::as_str),
        "consents": consents,
        "merged_into": wire::opt_id(c.merged_into),
        "absorbed": wire::ids(&c.absorbed),
        "open_complaints": complaints(true),
        "resolved_complaints": complaints(false),
        "receivables": receivables,
        "prepaid": c
            .prepaid
            .iter()
            .map(|(cur, m)| (cur.clone(), wire::money(m)))
            .collect::<Map<String, Value>>(),
        "last_review": wire::opt_date(c.last_review),
        "orders": wire::ids(&c.orders),
        "payments": wire::ids(&c.payments),
        "interactions": wire::ids(&c.interactions),
        "feedback": wire::ids(&c.feedback),
        "archived": c.archived,
    })
}

fn entries<'a>(doc: &'a Value, name: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    doc.get(name)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

fn id_list<'a>(doc: &'a Value, name: &str) -> impl Iterator<Item = Uuid> + 'a {
    doc.get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(wire::parse_id)
}

fn string_at(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn name_at<T>(v: Option<&Value>, parse: fn(&str) -> Option<T>) -> Option<T> {
    v.and_then(Value::as_str).and_then(parse)
}

/// Inverse of [`customer_json`]: `customer_from_json(&customer_json(&c)) == c`.
/// Members a document lacks (one stored before they existed) read as empty;
/// entries of the wrong shape are skipped, as the document is only ever
/// written by [`customer_json`].
pub fn customer_from_json(doc: &Value) -> Customer {
    let mut c = Customer {
        kind: name_at(doc.get("kind"), CustomerKind::parse),
        owner: string_at(doc, "owner"),
        importance: name_at(doc.get("importance"), Importance::parse),
        credit_rating: name_at(doc.pointer("/credit/rating"), CreditRating::parse),
        credit_limit: doc.pointer("/credit/limit").and_then(wire::parse_money),
        legal_status: name_at(doc.get("legal_status"), LegalStatus::parse),
        merged_into: doc.get("merged_into").and_then(wire::parse_id),
        last_review: doc.get("last_review").and_then(wire::parse_date),
        archived: doc
            .get("archived")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        orders: id_list(doc, "orders").collect(),
        payments: id_list(doc, "payments").collect(),
        interactions: id_list(doc, "interactions").collect(),
        feedback: id_list(doc, "feedback").collect(),
        absorbed: id_list(doc, "absorbed").collect(),
        ..Customer::default()
    };
    for (k, v) in entries(doc, "details") {
        if let (Some(f), Some(s)) = (Field::parse(k), v.as_str()) {
            c.details.insert(f, FieldValue::from_log(s.to_owned()));
        }
    }
    for (k, v) in entries(doc, "contacts") {
        if let (Ok(id), Some(name)) = (Uuid::parse_str(k), string_at(v, "name")) {
            let s = |n: &str| string_at(v, n).map(FieldValue::from_log);
            let contact = Contact {
                name: FieldValue::from_log(name),
                role: s("role"),
                phone: s("phone"),
                email: s("email"),
            };
            c.contacts.insert(id, contact);
        }
    }
    for (k, v) in entries(doc, "addresses") {
        if let (Ok(id), Some(text)) = (Uuid::parse_str(k), string_at(v, "text")) {
            let address = Address {
                label: string_at(v, "label"),
                text: FieldValue::from_log(text),
            };
            c.addresses.insert(id, address);
        }
    }
    c.tags = doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    for (purpose, granted) in entries(doc, "consents") {
        if let Some(g) = granted.as_bool() {
            c.consents.insert(purpose.clone(), g);
        }
    }
    for id in id_list(doc, "open_complaints") {
        c.complaints.insert(id, true);
    }
    for id in id_list(doc, "resolved_complaints") {
        c.complaints.insert(id, false);
    }
    for (k, v) in entries(doc, "prepaid") {
        if let Some(m) = wire::parse_money(v).filter(|m| m.currency() == k) {
            c.prepaid.insert(k.clone(), m);
        }
    }
    for (k, v) in entries(doc, "receivables") {
        let parts = (
            Uuid::parse_str(k).ok(),
            v.get("amount").and_then(wire::parse_money),
            v.get("paid").and_then(wire::parse_money),
            v.get("due_on").and_then(wire::parse_date),
        );
        if let (Some(id), Some(amount), Some(paid), Some(due_on)) = parts {
            c.receivables.insert(
                id,
                Receivable {
                    amount,
                    paid,
                    due_on,
                },
            );
        }
    }
    c
}
