//! Fast assembly of canonical bodies. The expensive part of RFC 8785 is the
//! payload (arbitrary JSON); the envelope around it has fixed, ASCII keys. So
//! the payload is canonicalised once, by whoever proposes the event (in
//! parallel, before the writer's queue), and the writer only splices it into
//! the envelope, whose members it writes in their canonical (sorted) order.
//! `EventRecord::encode` goes through this path too, and the tests check it
//! byte for byte against a general RFC 8785 canonicaliser.

use std::fmt::Write as _;

use serde_json::Value;
use uuid::Uuid;

use crate::hash::{hash_body, Hash};
use crate::record::{check_payload, Actor, ChainError, Timestamp, MAX_SAFE_INTEGER};

/// A validated payload (a JSON object within dossier's number and depth
/// rules) in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalPayload(Vec<u8>);

impl CanonicalPayload {
    pub fn new(payload: &Value) -> Result<CanonicalPayload, ChainError> {
        check_payload(payload)?;
        let mut out = String::with_capacity(256);
        write_value(&mut out, payload);
        Ok(CanonicalPayload(out.into_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes RFC 8785 JSON for values that passed `check_payload` (so every
/// number is an integer within ±(2^53-1), whose ECMAScript form is its plain
/// decimal form). Object members are sorted by their UTF-16 code units.
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Every member of an event except `payload`, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub seq: i64,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    pub actor: &'a Actor,
    pub reason: Option<&'a str>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
}

/// Writes `s` as an RFC 8785 string: `"` and `\` escaped, U+0000..U+001F as
/// the short escapes or `\u00xx` (lowercase hex), everything else literal.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_uuid(out: &mut String, id: Uuid) {
    out.push('"');
    out.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    out.push('"');
}

fn push_hash(out: &mut String, h: &Hash) {
    out.push('"');
    let mut buf = [0u8; 64];
    // Infallible: the buffer is exactly twice the hash length.
    let _ = hex::encode_to_slice(h.as_bytes(), &mut buf);
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    out.push('"');
}

fn check_instant(name: &str, t: Timestamp) -> Result<(), ChainError> {
    // Years outside 0000..=9999 (and leap seconds) exist in chrono but have no
    // YYYY-MM-DDTHH:MM:SS.ffffffZ spelling that parses back.
    if Timestamp::parse_wire(&t.to_wire()) != Some(t) {
        return Err(ChainError::Malformed(format!(
            "{name} {t} is not a YYYY-MM-DDTHH:MM:SS.ffffffZ instant"
        )));
    }
    Ok(())
}

impl Envelope<'_> {
    /// The canonical body of this envelope around `payload`, and its hash.
    pub fn encode(&self, payload: &CanonicalPayload) -> Result<(Vec<u8>, Hash), ChainError> {
        // Canonical numbers are IEEE doubles (RFC 8785): larger integers would
        // be hashed as different numbers.
        for (name, n) in [("seq", self.seq), ("stream_version", self.stream_version)] {
            if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) {
                return Err(ChainError::InexactNumber { path: name.into() });
            }
        }
        check_instant("recorded_at", self.recorded_at)?;
        check_instant("effective_at", self.effective_at)?;

        let p = payload.as_bytes();
        let mut s = String::with_capacity(p.len() + 700);
        // Members in canonical order: the keys are ASCII, so UTF-16 order is byte order.
        s.push_str("{\"actor\":{\"id\":");
        push_uuid(&mut s, self.actor.id);
        s.push_str(",\"name\":");
        push_str(&mut s, &self.actor.name);
        s.push_str(",\"role\":");
        push_str(&mut s, &self.actor.role);
        s.push_str("},\"causation_id\":");
        match self.causation_id {
            Some(id) => push_uuid(&mut s, id),
            None => s.push_str("null"),
        }
        s.push_str(",\"correlation_id\":");
        push_uuid(&mut s, self.correlation_id);
        s.push_str(",\"effective_at\":\"");
        s.push_str(&self.effective_at.to_wire());
        s.push_str("\",\"event_id\":");
        push_uuid(&mut s, self.event_id);
        s.push_str(",\"event_type\":");
        push_str(&mut s, self.event_type);
        s.push_str(",\"payload\":");
        let mut body = s.into_bytes();
        body.extend_from_slice(p);
        let mut s = String::with_capacity(400);
        s.push_str(",\"prev_hash\":");
        push_hash(&mut s, &self.prev_hash);
        s.push_str(",\"reason\":");
        match self.reason {
            Some(r) => push_str(&mut s, r),
            None => s.push_str("null"),
        }
        s.push_str(",\"recorded_at\":\"");
        s.push_str(&self.recorded_at.to_wire());
        let _ = write!(
            s,
            "\",\"schema_version\":{},\"seq\":{},\"stream_id\":",
            self.schema_version, self.seq
        );
        push_uuid(&mut s, self.stream_id);
        s.push_str(",\"stream_prev_hash\":");
        push_hash(&mut s, &self.stream_prev_hash);
        let _ = write!(s, ",\"stream_version\":{}}}", self.stream_version);
        body.extend_from_slice(s.as_bytes());
        let hash = hash_body(&body);
        Ok((body, hash))
    }
}
