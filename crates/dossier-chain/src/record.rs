use std::fmt;

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::hash::Hash;

/// Largest integer that every JSON implementation (and RFC 8785's ECMAScript
/// number rules) represents exactly: 2^53 - 1.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error(
        "number at {path} cannot be encoded exactly: only integers within ±(2^53-1) are allowed"
    )]
    InexactNumber { path: String },
    #[error("event body is not valid dossier-chain/1 JSON: {0}")]
    Malformed(String),
    #[error("event body is not in canonical form")]
    NotCanonical,
}

/// A UTC instant with microsecond precision (what PostgreSQL stores), always
/// written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn new(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t.trunc_subsecs(6))
    }

    pub fn now() -> Timestamp {
        Timestamp::new(Utc::now())
    }

    pub fn get(self) -> DateTime<Utc> {
        self.0
    }

    pub fn to_wire(self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    pub fn parse_wire(s: &str) -> Option<Timestamp> {
        let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
        // chrono accepts second 60 in any minute; PostgreSQL cannot store it (the
        // indexed column would disagree with the body) and most other languages
        // cannot parse it, so the format excludes leap seconds.
        if t.nanosecond() >= 1_000_000_000 {
            return None;
        }
        let ts = Timestamp::new(t);
        (ts.to_wire() == s).then_some(ts)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp::new(t)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_wire())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_wire(&s).ok_or_else(|| {
            serde::de::Error::custom("timestamp must be YYYY-MM-DDTHH:MM:SS.ffffffZ")
        })
    }
}

/// The authenticated principal that caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

/// Every field of an event except its `hash`. The serde names are the wire names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    pub seq: i64,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub recorded_at: Timestamp,
    pub effective_at: Timestamp,
    pub actor: Actor,
    pub reason: Option<String>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub payload: Value,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
}

/// An event together with the exact bytes that were hashed and its hash.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedEvent {
    pub record: EventRecord,
    pub body: Vec<u8>,
    pub hash: Hash,
}

/// How deep objects and arrays may nest in a body, the event object itself being
/// depth 1. serde_json refuses to parse more than 127 levels, so without a limit
/// encode could write bodies that decode (and so every verifier) rejects.
const MAX_DEPTH: usize = 64;

/// True if `value`, taken to be at depth `depth`, nests no deeper than `MAX_DEPTH`.
/// Iterative, so hostile nesting cannot overflow the stack.
fn within_depth(value: &Value, depth: usize) -> bool {
    let mut stack = vec![(value, depth)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(_) | Value::Object(_) if d > MAX_DEPTH => return false,
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    true
}

/// Checks that every number in `value` survives any JSON round trip exactly.
pub fn check_numbers(value: &Value) -> Result<(), ChainError> {
    fn walk(v: &Value, path: &mut String) -> Result<(), ChainError> {
        match v {
            Value::Number(n) => {
                let ok = n
                    .as_i64()
                    .map(|i| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i))
                    .unwrap_or(false);
                if ok {
                    Ok(())
                } else {
                    Err(ChainError::InexactNumber { path: path.clone() })
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("/{i}"));
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k);
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(value, &mut String::new())
}

/// The payload rules: a JSON object, nested at most `MAX_DEPTH` levels
/// (counting the event as 1), with only exactly representable numbers.
pub(crate) fn check_payload(payload: &Value) -> Result<(), ChainError> {
    if !payload.is_object() {
        return Err(ChainError::Malformed(
            "payload must be a JSON object".into(),
        ));
    }
    if !within_depth(payload, 2) {
        return Err(ChainError::Malformed(format!(
            "payload nests deeper than {MAX_DEPTH} levels (counting the event as 1)"
        )));
    }
    check_numbers(payload).map_err(|e| match e {
        ChainError::InexactNumber { path } => ChainError::InexactNumber {
            path: format!("payload{path}"),
        },
        other => other,
    })?;
    Ok(())
}

impl EventRecord {
    /// The rules serde types alone do not enforce. Checked on encode and on
    /// decode, so every body that encode writes decodes, and vice versa.
    fn validate(&self) -> Result<(), ChainError> {
        // The canonicalizer writes every number as an IEEE double (RFC 8785),
        // so a larger seq or version would be hashed as a different number.
        for (name, n) in [("seq", self.seq), ("stream_version", self.stream_version)] {
            if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) {
                return Err(ChainError::InexactNumber { path: name.into() });
            }
        }
        check_payload(&self.payload)?;
        // Years outside 0000..=9999 (and leap seconds) are representable in
        // chrono but have no YYYY-MM-DDTHH:MM:SS.ffffffZ spelling that parses back.
        for (name, t) in [
            ("recorded_at", self.recorded_at),
            ("effective_at", self.effective_at),
        ] {
            if Timestamp::parse_wire(&t.to_wire()) != Some(t) {
                return Err(ChainError::Malformed(format!(
                    "{name} {t} is not a YYYY-MM-DDTHH:MM:SS.ffffffZ instant"
                )));
            }
        }
        Ok(())
    }

    /// Everything but the payload, borrowed.
    pub fn envelope(&self) -> crate::body::Envelope<'_> {
        crate::body::Envelope {
            seq: self.seq,
            event_id: self.event_id,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            recorded_at: self.recorded_at,
            effective_at: self.effective_at,
            actor: &self.actor,
            reason: self.reason.as_deref(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            prev_hash: self.prev_hash,
            stream_prev_hash: self.stream_prev_hash,
        }
    }

    /// The canonical body (RFC 8785 JSON of this record) and its hash.
    pub fn encode(self) -> Result<EncodedEvent, ChainError> {
        // CanonicalPayload checks the payload rules and the envelope the rest.
        let payload = crate::body::CanonicalPayload::new(&self.payload)?;
        let (body, hash) = self.envelope().encode(&payload)?;
        Ok(EncodedEvent {
            record: self,
            body,
            hash,
        })
    }

    /// Parses a stored body. Rejects bodies that are not byte-for-byte canonical,
    /// so one event can never have two stored spellings.
    pub fn decode(body: &[u8]) -> Result<EventRecord, ChainError> {
        let record: EventRecord =
            serde_json::from_slice(body).map_err(|e| ChainError::Malformed(e.to_string()))?;
        record.validate()?;
        let payload = crate::body::CanonicalPayload::new(&record.payload)?;
        let (again, _) = record.envelope().encode(&payload)?;
        if again != body {
            return Err(ChainError::NotCanonical);
        }
        Ok(record)
    }
}
