//! Field-level history of one customer: who changed what, when and why.

use dossier_chain::{Actor, Hash, Timestamp};
use dossier_domain::{Contact, Event};
use dossier_projections::domain_event;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{Result, Service, ServiceError};

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub seq: i64,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    pub actor: Actor,
    pub reason: Option<String>,
    pub correlation_id: Uuid,
    pub changes: Vec<Change>,
    pub erased: bool,
    pub hash: Hash,
}

#[derive(Clone, Debug, Serialize)]
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
        } => {
            let mut out = vec![ch("kind".into(), Value::Null, json!(kind.as_str()))];
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
    }
}

pub(crate) async fn page(
    svc: &Service,
    id: Uuid,
    after_version: i64,
    limit: i64,
) -> Result<HistoryPage> {
    let limit = limit.clamp(1, 500);
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
