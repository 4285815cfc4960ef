//! The `dossier-chain/1` event format: canonical bytes, hashes and verification.
//!
//! This crate is pure: it turns an [`EventRecord`] into the exact bytes that are
//! hashed and stored, and checks a sequence of stored rows for integrity. The
//! byte format is specified in `docs/chain-format.md`; the test vectors in
//! `docs/chain-vectors/` are checked by this crate's tests.

mod body;
mod hash;
mod links;
mod record;
mod verify;

pub use body::{CanonicalPayload, Envelope};
pub use hash::{hash_body, Hash, HashParseError};
pub use record::{
    check_numbers, Actor, ChainError, EncodedEvent, EventRecord, Timestamp, MAX_SAFE_INTEGER,
};
pub use verify::{
    export_line, RangeVerifier, StoredRow, UnlinkedRange, VerifiedHead, Verifier, Violation,
    ViolationKind,
};

/// The format tag; the first bytes of every hash preimage.
pub const FORMAT: &str = "dossier-chain/1";

/// `prev_hash` of seq 1 and `stream_prev_hash` of every stream's version 1.
pub const GENESIS: Hash = Hash::ZERO;
