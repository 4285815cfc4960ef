//! What every write shares: its metadata, idempotent replay, sealing and
//! appending the decided events, and the outcome.

use dossier_chain::Timestamp;
use dossier_domain::{decide, evolve, Command, Customer, CustomerKind, Event};
use dossier_events::encode;
use dossier_store::{
    AppendRequest, Appended, ExpectedVersion, IdempotencyKey, NewEvent, Principal,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::access::actor;
use crate::customers::Snapshot;
use crate::error::{invalid, Result, ServiceError};
use crate::Service;

/// Context of a write: why, when it became true, and retry protection.
#[derive(Clone, Debug, Default)]
pub struct WriteMeta {
    pub reason: Option<String>,
    pub effective_at: Option<Timestamp>,
    /// Client key and a digest of the request it came with.
    pub idempotency: Option<(String, [u8; 32])>,
    pub correlation_id: Option<Uuid>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WriteOutcome {
    pub customer_id: Uuid,
    /// Stream version after the write.
    pub version: i64,
    /// Seq of the last event written (or of the last event, for a no-op).
    pub seq: i64,
    /// Number of events written (0 when nothing changed).
    pub events: usize,
    pub replayed: bool,
}

pub(crate) fn check_reason(reason: &Option<String>) -> Result<()> {
    if let Some(r) = reason {
        if r.trim().is_empty() || r.chars().count() > 500 {
            return Err(invalid("reason", "must be 1 to 500 characters"));
        }
    }
    Ok(())
}

impl Service {
    /// Answers a retried request from the stored result, before deciding anew.
    pub(crate) async fn replay(
        &self,
        caller: &Principal,
        meta: &WriteMeta,
    ) -> Result<Option<WriteOutcome>> {
        match &meta.idempotency {
            None => Ok(None),
            Some((key, digest)) => self.replayed(caller, key, digest).await,
        }
    }

    /// The outcome an earlier request of `caller` with this Idempotency-Key
    /// and request digest got (`replayed: true`), `None` if there was none;
    /// `IdempotencyMismatch` if the key came with a different request.
    pub async fn replayed(
        &self,
        caller: &Principal,
        key: &str,
        digest: &[u8; 32],
    ) -> Result<Option<WriteOutcome>> {
        match self
            .store
            .find_idempotency(&scoped_key(caller, key))
            .await?
        {
            Some((stored, a)) if stored == *digest => Ok(Some(outcome(&a, true))),
            Some(_) => Err(ServiceError::IdempotencyMismatch),
            None => Ok(None),
        }
    }

    pub(crate) async fn append(
        &self,
        caller: &Principal,
        id: Uuid,
        kind: CustomerKind,
        expected: ExpectedVersion,
        events: &[Event],
        meta: &WriteMeta,
    ) -> Result<Appended> {
        let key = self
            .keyring
            .key_for_write(&self.store, id)
            .await?
            .ok_or(ServiceError::Erased)?;
        let correlation_id = meta.correlation_id.unwrap_or_else(Uuid::now_v7);
        let mut causation_id = None;
        let mut new_events = Vec::with_capacity(events.len());
        for e in events {
            let enc = encode(e, kind, id, &key);
            let event_id = Uuid::now_v7();
            new_events.push(NewEvent {
                event_id,
                event_type: enc.event_type.to_owned(),
                schema_version: enc.schema_version,
                effective_at: meta.effective_at,
                actor: actor(caller),
                reason: meta.reason.clone(),
                correlation_id,
                causation_id,
                payload: enc.payload,
            });
            // Later events of one request were caused by the first.
            causation_id = causation_id.or(Some(event_id));
        }
        Ok(self
            .store
            .append(AppendRequest {
                stream_id: id,
                expected,
                events: new_events,
                idempotency: meta.idempotency.as_ref().map(|(k, h)| IdempotencyKey {
                    key: scoped_key(caller, k),
                    request_hash: *h,
                }),
            })
            .await?)
    }
}

/// Decides commands in order, each against the state the previous ones left.
pub(crate) fn decide_all(
    state: Customer,
    commands: impl IntoIterator<Item = Command>,
) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut s = state;
    for c in commands {
        for e in decide(&s, c)? {
            s = evolve(s, &e);
            events.push(e);
        }
    }
    Ok(events)
}

/// The answer to a write that changed nothing.
pub(crate) fn unchanged(id: Uuid, snap: &Snapshot) -> WriteOutcome {
    WriteOutcome {
        customer_id: id,
        version: snap.version,
        seq: snap.last_seq,
        events: 0,
        replayed: false,
    }
}

pub(crate) fn scoped_key(caller: &Principal, key: &str) -> String {
    // Keys are per principal: two clients choosing the same key never collide.
    format!("{}:{key}", caller.id)
}

pub(crate) fn outcome(a: &Appended, replayed: bool) -> WriteOutcome {
    WriteOutcome {
        customer_id: a.stream_id,
        version: a.version,
        seq: a.last_seq,
        events: (a.last_seq - a.first_seq + 1) as usize,
        replayed,
    }
}

/// Digest of a request for idempotency: method, path and body bytes.
pub fn request_digest(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}
