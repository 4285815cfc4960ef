//! The payload schema of each event type: domain events <-> JSON payloads,
//! with personal values sealed under the customer's data key.
//!
//! Sealing is by position: every personal value is replaced by an envelope
//! whose associated data is its JSON Pointer inside the payload (for example
//! `/details/phone`), so a ciphertext cannot be moved to another field or
//! customer. Opening needs no schema: any envelope found is opened with its own
//! pointer. Documented per event type in docs/events.md.
//!
//! - `codec`: customer events ([`encode`], [`open_payload`], [`decode`]);
//! - `schema`: the schema version of each type and the upcaster;
//! - `document`: the JSON document of a customer's current file;
//! - `system`: the system stream (evaluation dates, adopted rule sets).

mod codec;
mod document;
mod schema;
mod system;
mod wire;

use serde_json::Value;

pub use codec::{decode, encode, open_event, open_payload};
pub use document::{customer_from_json, customer_json, split_file, FileParts};
pub use schema::{schema_version, upcast};
pub use system::{
    decode_system, encode_system, is_system_type, rules_sha256, SystemEvent, SYSTEM_STREAM,
};

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

/// An event as stored: its type, the schema version of that type it was
/// written under, and a payload ready for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPayload {
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: Value,
}

/// Stands in for a personal value whose customer key was destroyed.
pub const ERASED: &str = "[erased]";
