//! Helpers shared by the integration tests of dossier-store.
#![allow(dead_code)]

use std::collections::HashMap;

use dossier_chain::Actor;
use dossier_store::{
    AppendRequest, Appended, ExpectedVersion, IdempotencyKey, NewEvent, Store, StoredEvent,
};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn actor() -> Actor {
    Actor {
        id: Uuid::nil(),
        name: "tester".into(),
        role: "admin".into(),
    }
}

/// An event with the given payload and a fresh event id.
pub fn event_with(payload: Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "NoteAdded".into(),
        schema_version: 1,
        effective_at: None,
        actor: actor(),
        reason: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        payload,
    }
}

pub fn event(n: i64) -> NewEvent {
    event_with(json!({ "n": n }))
}

/// `count` events with payloads `{"n": 0..count}`.
pub fn events(count: usize) -> Vec<NewEvent> {
    (0..count as i64).map(event).collect()
}

pub fn req(stream_id: Uuid, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream_id,
        expected,
        events,
        idempotency: None,
    }
}

pub fn idem_req(
    stream_id: Uuid,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    key: &str,
    request_hash: [u8; 32],
) -> AppendRequest {
    AppendRequest {
        stream_id,
        expected,
        events,
        idempotency: Some(IdempotencyKey {
            key: key.to_owned(),
            request_hash,
        }),
    }
}

/// The whole log in seq order, read in pages.
pub async fn read_all(store: &Store) -> anyhow::Result<Vec<StoredEvent>> {
    let mut out: Vec<StoredEvent> = Vec::new();
    loop {
        let after = out.last().map(|e| e.record.seq).unwrap_or(0);
        let page = store.read_log(after, 1000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Asserts the structural invariants of a log read back in seq order: seqs are
/// exactly 1..=N, every stream's versions are 1..=n in seq order, and the stored
/// stream heads agree with the events.
pub async fn assert_log_shape(store: &Store) -> anyhow::Result<Vec<StoredEvent>> {
    let log = read_all(store).await?;
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e.record.seq, i as i64 + 1, "seqs must be gapless from 1");
    }
    let mut versions: HashMap<Uuid, i64> = HashMap::new();
    for e in &log {
        let v = versions.entry(e.record.stream_id).or_insert(0);
        *v += 1;
        assert_eq!(
            e.record.stream_version, *v,
            "stream {} versions must be contiguous (at seq {})",
            e.record.stream_id, e.record.seq
        );
    }
    for (stream, v) in &versions {
        assert_eq!(
            store.stream_version(*stream).await?,
            *v,
            "stream head of {stream}"
        );
        let read = store.read_stream(*stream, None).await?;
        let got: Vec<i64> = read.iter().map(|e| e.record.stream_version).collect();
        assert_eq!(got, (1..=*v).collect::<Vec<_>>());
    }
    let head = store.head().await?;
    assert_eq!(head.seq, log.len() as i64);
    if let Some(last) = log.last() {
        assert_eq!(head.hash, last.hash);
    }
    Ok(log)
}

/// Asserts that an acknowledged append is in the log exactly as acknowledged.
pub fn assert_acknowledged(log: &[StoredEvent], ack: &Appended, event_ids: &[Uuid]) {
    let n = event_ids.len() as i64;
    assert_eq!(
        ack.last_seq - ack.first_seq + 1,
        n,
        "ack {ack:?} covers the wrong number of events"
    );
    for (i, id) in event_ids.iter().enumerate() {
        let seq = ack.first_seq + i as i64;
        let stored = log
            .get((seq - 1) as usize)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} is missing from the log"));
        assert_eq!(stored.record.seq, seq);
        assert_eq!(
            stored.record.event_id, *id,
            "acknowledged seq {seq} holds another event"
        );
        assert_eq!(stored.record.stream_id, ack.stream_id);
        assert_eq!(stored.record.stream_version, ack.version - n + 1 + i as i64);
        assert_eq!(stored.record.recorded_at, ack.recorded_at);
    }
    assert_eq!(
        log[(ack.last_seq - 1) as usize].hash,
        ack.hash,
        "acknowledged hash"
    );
}
