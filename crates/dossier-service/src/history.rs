//! Field-level history of one customer: who changed what, when and why.

use dossier_chain::{Actor, Hash, Timestamp};
use dossier_domain::{Contact, Event};
use dossier_events::SYSTEM_STREAM;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use dossier_store::Principal;

use crate::access::{authorize, Action};
use crate::customers::domain_event;
use crate::error::{invalid, Result, ServiceError};
use crate::Service;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Change {
    pub field: String,
    /// Any JSON value (a text, an object, null when the field was unset).
    #[schema(value_type = serde_json::Value)]
    pub before: Value,
    #[schema(value_type = serde_json::Value)]
    pub after: Value,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub seq: i64,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub effective_at: Timestamp,
    #[schema(value_type = crate::ActorDoc)]
    pub actor: Actor,
    pub reason: Option<String>,
    pub correlation_id: Uuid,
    pub changes: Vec<Change>,
    pub erased: bool,
    #[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
    pub hash: Hash,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub customer_id: Uuid,
    pub entries: Vec<HistoryEntry>,
    /// Pass as `after_version` to get the next page; `None` at the end.
    pub next_after_version: Option<i64>,
}

fn contact(c: &Contact) -> Value {
    let s = |v: &Option<dossier_domain::FieldValue>| v.as_ref().map(|x| x.as_str().to_owned());
    json!({"name": c.name.as_str(), "role": s(&c.role), "phone": s(&c.phone), "email": s(&c.email)})
}

fn changes(event: &Event) -> Vec<Change> {
    let ch = |field: String, before: Value, after: Value| Change {
        field,
        before,
        after,
    };
    match event {
        Event::Registered {
            kind,
            details,
            owner,
            tags,
        } => {
            let mut out = vec![ch("kind".into(), Value::Null, json!(kind.as_str()))];
            if !tags.is_empty() {
                out.push(ch("tags".into(), Value::Null, json!(tags)));
            }
            out.extend(
                details
                    .iter()
                    .map(|(f, v)| ch(f.as_str().into(), Value::Null, json!(v.as_str()))),
            );
            if let Some(o) = owner {
                out.push(ch("owner".into(), Value::Null, json!(o)));
            }
            out
        }
        Event::DetailsChanged { changes } => changes
            .iter()
            .map(|c| {
                ch(
                    c.field.as_str().into(),
                    c.before.as_ref().map_or(Value::Null, |v| json!(v.as_str())),
                    c.after.as_ref().map_or(Value::Null, |v| json!(v.as_str())),
                )
            })
            .collect(),
        Event::ContactAdded {
            contact_id,
            contact: c,
        } => {
            vec![ch(
                format!("contacts/{contact_id}"),
                Value::Null,
                contact(c),
            )]
        }
        Event::ContactRemoved {
            contact_id,
            contact: c,
        } => {
            vec![ch(
                format!("contacts/{contact_id}"),
                contact(c),
                Value::Null,
            )]
        }
        Event::OwnerAssigned { before, after } => {
            vec![ch("owner".into(), json!(before), json!(after))]
        }
        Event::Archived => vec![ch("archived".into(), json!(false), json!(true))],
        Event::AddressAdded {
            address_id,
            address,
        } => vec![ch(
            format!("addresses/{address_id}"),
            Value::Null,
            json!({"label": address.label, "text": address.text.as_str()}),
        )],
        Event::AddressRemoved {
            address_id,
            address,
        } => vec![ch(
            format!("addresses/{address_id}"),
            json!({"label": address.label, "text": address.text.as_str()}),
            Value::Null,
        )],
        Event::TagsChanged { added, removed } => {
            let mut out: Vec<Change> = added
                .iter()
                .map(|t| ch(format!("tags/{t}"), json!(false), json!(true)))
                .collect();
            out.extend(
                removed
                    .iter()
                    .map(|t| ch(format!("tags/{t}"), json!(true), json!(false))),
            );
            out
        }
        Event::ImportanceSet { before, after } => vec![ch(
            "importance".into(),
            json!(before.map(|i| i.as_str())),
            json!(after.map(|i| i.as_str())),
        )],
        Event::OrderPlaced {
            order_id,
            product,
            amount,
            ordered_on,
        } => vec![ch(
            format!("orders/{order_id}"),
            Value::Null,
            json!({"product": product, "amount": money(amount), "ordered_on": ordered_on}),
        )],
        Event::InvoiceIssued {
            invoice_id,
            order_id,
            amount,
            issued_on,
            due_on,
        } => vec![ch(
            format!("receivables/{invoice_id}"),
            Value::Null,
            json!({"order_id": order_id, "amount": money(amount), "issued_on": issued_on, "due_on": due_on}),
        )],
        Event::PaymentReceived {
            payment_id,
            invoice_id,
            amount,
            received_on,
        } => vec![ch(
            format!("payments/{payment_id}"),
            Value::Null,
            json!({"invoice_id": invoice_id, "amount": money(amount), "received_on": received_on}),
        )],
        Event::CreditChanged {
            rating_before,
            rating_after,
            limit_before,
            limit_after,
        } => {
            let mut out = Vec::new();
            if rating_before != rating_after {
                out.push(ch(
                    "credit/rating".into(),
                    json!(rating_before.map(|r| r.as_str())),
                    json!(rating_after.map(|r| r.as_str())),
                ));
            }
            if limit_before != limit_after {
                out.push(ch(
                    "credit/limit".into(),
                    limit_before.as_ref().map_or(Value::Null, money),
                    limit_after.as_ref().map_or(Value::Null, money),
                ));
            }
            out
        }
        Event::LegalStatusChanged {
            before,
            after,
            since,
        } => vec![ch(
            "legal_status".into(),
            json!(before.as_str()),
            json!({"status": after.as_str(), "since": since}),
        )],
        Event::InteractionLogged {
            interaction_id,
            channel,
            outcome,
            occurred_on,
            summary,
        } => vec![ch(
            format!("interactions/{interaction_id}"),
            Value::Null,
            json!({"channel": channel.as_str(), "outcome": outcome.as_str(), "occurred_on": occurred_on, "summary": summary}),
        )],
        Event::ComplaintOpened {
            complaint_id,
            category,
            summary,
            opened_on,
        } => vec![ch(
            format!("complaints/{complaint_id}"),
            Value::Null,
            json!({"status": "open", "category": category, "summary": summary, "opened_on": opened_on}),
        )],
        Event::ComplaintResolved {
            complaint_id,
            resolution,
            resolved_on,
        } => vec![ch(
            format!("complaints/{complaint_id}/status"),
            json!("open"),
            json!({"status": "resolved", "resolution": resolution, "resolved_on": resolved_on}),
        )],
        Event::FeedbackRecorded {
            feedback_id,
            satisfaction,
            comment,
            received_on,
        } => vec![ch(
            format!("feedback/{feedback_id}"),
            Value::Null,
            json!({"satisfaction": satisfaction, "comment": comment, "received_on": received_on}),
        )],
        Event::ReviewCompleted {
            reviewed_on,
            summary,
        } => vec![ch(
            "last_review".into(),
            Value::Null,
            json!({"reviewed_on": reviewed_on, "summary": summary}),
        )],
        Event::ConsentRecorded {
            purpose,
            granted,
            on,
        } => vec![ch(
            format!("consents/{purpose}"),
            Value::Null,
            json!({"granted": granted, "on": on}),
        )],
        Event::MergedInto { survivor } => {
            vec![ch("merged_into".into(), Value::Null, json!(survivor))]
        }
        Event::DuplicateMerged { duplicate } => {
            vec![ch(
                format!("absorbed/{duplicate}"),
                Value::Null,
                json!(true),
            )]
        }
    }
}

fn money(m: &dossier_domain::Money) -> Value {
    json!({"amount": m.amount_str(), "currency": m.currency()})
}

/// Most entries of one history page.
pub const MAX_HISTORY_LIMIT: i64 = 500;

pub(crate) async fn page(
    svc: &Service,
    id: Uuid,
    after_version: i64,
    limit: i64,
) -> Result<HistoryPage> {
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("must be 1 to {MAX_HISTORY_LIMIT}"),
        ));
    }
    if after_version < 0 {
        return Err(invalid("after_version", "must not be negative"));
    }
    if id == SYSTEM_STREAM {
        // The system stream (rules, evaluation runs) is not a customer.
        return Err(ServiceError::NotFound);
    }
    let events = svc
        .store
        .read_stream_page(id, after_version.max(0), limit + 1)
        .await?;
    if events.is_empty() && after_version <= 0 {
        return Err(ServiceError::NotFound);
    }
    let keys = svc.keyring.keys_for_read(&svc.store, &[id]).await?;
    let key = keys.get(&id).and_then(Option::as_ref);
    let more = events.len() as i64 > limit;
    let mut entries = Vec::new();
    for e in events.iter().take(limit as usize) {
        let (event, erased) = domain_event(e, key)?;
        let r = &e.record;
        entries.push(HistoryEntry {
            seq: r.seq,
            version: r.stream_version,
            event_id: r.event_id,
            event_type: r.event_type.clone(),
            recorded_at: r.recorded_at,
            effective_at: r.effective_at,
            actor: r.actor.clone(),
            reason: r.reason.clone(),
            correlation_id: r.correlation_id,
            changes: changes(&event),
            erased,
            hash: e.hash,
        });
    }
    Ok(HistoryPage {
        customer_id: id,
        next_after_version: if more {
            entries.last().map(|e| e.version)
        } else {
            None
        },
        entries,
    })
}

impl Service {
    pub async fn history(
        &self,
        caller: &Principal,
        id: Uuid,
        after_version: i64,
        limit: i64,
    ) -> Result<HistoryPage> {
        authorize(caller, Action::ReadHistory)?;
        page(self, id, after_version, limit).await
    }
}
