//! Per-customer sealing of personal data in event payloads (crypto-shredding).
//!
//! Every customer (event stream, identified by a [`Uuid`]) has its own random
//! 256-bit [`DataKey`]. Personal fields in that customer's event payloads are
//! replaced by sealed envelopes encrypted under the data key. The data key is
//! only ever stored wrapped under the [`MasterKey`]. Destroying the wrapped
//! key makes the customer's personal data unreadable, while the event hash
//! chain (which covers the ciphertext, not the plaintext) still verifies.
//!
//! This crate is pure: no I/O apart from the operating system's RNG.
//!
//! # Wrapped data key
//!
//! `wrap_key` produces exactly 60 bytes:
//!
//! ```text
//! nonce (12 bytes) || AES-256-GCM(master key, nonce, data key, AD) (32 bytes ciphertext || 16 bytes tag)
//! AD = "dossier-keywrap/1|" || stream id
//! ```
//!
//! # Sealed value envelope
//!
//! `seal_value` replaces a JSON value with the JSON object
//!
//! ```text
//! {"$sealed":"aes-256-gcm/1","n":"<nonce>","c":"<ciphertext || tag>"}
//! ```
//!
//! - `n`: the 12-byte nonce, base64url without padding (RFC 4648 §5).
//! - `c`: AES-256-GCM ciphertext followed by the 16-byte tag, base64url without padding.
//! - key: the customer's data key.
//! - plaintext: the value serialised as compact JSON (`serde_json::to_vec`).
//!   Openers only need it to be valid JSON; the exact bytes are not canonical.
//! - AD: `"dossier-seal/1|" || stream id || "|" || field`, where `field` is the
//!   path of the value in the payload (e.g. `phone`, `contacts/name`).
//!
//! Stream ids in associated data are the lowercase hyphenated form
//! (`6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b`), all strings UTF-8. The id has a
//! fixed length of 36 characters, so no length prefixes are needed to keep
//! the AD unambiguous even if a field name contains `|`.
//!
//! Binding the stream id and field into the AD means a ciphertext cannot be
//! moved to another customer or another field without failing authentication.
//! `open_value` accepts only envelopes with exactly these three members,
//! canonical base64url and a known `$sealed` version.
//!
//! # Nonces
//!
//! Nonces are 96 random bits from the OS RNG, fresh for every wrap and seal.
//! NIST SP 800-38D allows up to 2^32 random-nonce encryptions per key while
//! keeping the collision probability below 2^-32. A data key only seals one
//! customer's fields, and the master key wraps one data key per customer, so
//! both stay many orders of magnitude below that bound; a counter would add
//! state (and a persistence requirement) for no real gain.
//!
//! # Test vectors
//!
//! ```text
//! master key   000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
//!              (base64 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=, id 13ae7af4eee1ba4a)
//! data key     202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f
//! stream id    6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b
//!
//! wrap nonce   a0a1a2a3a4a5a6a7a8a9aaab
//! wrapped key  a0a1a2a3a4a5a6a7a8a9aaabc6395e0e61ee24984a4cadf82b57eef1
//!              409d6b23a682745ba4371cbd43964b3e140c8342aad5c3a31d9ba649
//!              49c18e8f
//!
//! field        phone
//! value        "+49 30 1234567"
//! seal nonce   b0b1b2b3b4b5b6b7b8b9babb
//! envelope     {"$sealed":"aes-256-gcm/1","n":"sLGys7S1tre4ubq7",
//!               "c":"FNEefrIQ-C4DPy7ONguqFLbQ5_3cdfk1xrbfOzdvXVw"}
//! ```

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Value of the `$sealed` member of envelopes written by this version.
pub const SEAL_VERSION: &str = "aes-256-gcm/1";
/// Length in bytes of the output of [`wrap_key`].
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Errors from this crate. Messages never contain key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("bad master key: {0}")]
    BadMasterKey(String),
    #[error("bad wrapped data key: {0}")]
    BadWrappedKey(String),
    #[error("bad sealed envelope: {0}")]
    BadEnvelope(String),
    #[error("authentication failed (wrong key, stream id or field, or tampered data)")]
    Unauthentic,
}

/// 32 secret bytes, wiped when dropped.
#[derive(Clone)]
struct KeyBytes([u8; KEY_LEN]);

impl KeyBytes {
    fn random() -> Self {
        // Fill in place so no unwiped copy of the key is left on the stack.
        let mut key = KeyBytes([0; KEY_LEN]);
        OsRng.fill_bytes(&mut key.0);
        key
    }

    fn from_slice(bytes: &[u8]) -> Self {
        let mut key = KeyBytes([0; KEY_LEN]);
        key.0.copy_from_slice(bytes);
        key
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The key-encryption key from configuration. Wraps every customer's [`DataKey`].
#[derive(Clone)]
pub struct MasterKey(KeyBytes);

impl MasterKey {
    /// Parses standard (padded) base64 of exactly 32 bytes, ignoring surrounding whitespace.
    pub fn from_base64(s: &str) -> Result<MasterKey, SealError> {
        // Deliberately drop the decoder's error: it names the offending character,
        // which is a piece of the key.
        let bytes = Zeroizing::new(STANDARD.decode(s.trim()).map_err(|_| {
            SealError::BadMasterKey("not valid standard base64 (RFC 4648 §4, padded)".into())
        })?);
        if bytes.len() != KEY_LEN {
            return Err(SealError::BadMasterKey(format!(
                "must decode to exactly {KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        Ok(MasterKey(KeyBytes::from_slice(&bytes)))
    }

    pub fn generate() -> MasterKey {
        MasterKey(KeyBytes::random())
    }

    /// Standard padded base64 of the key. The result is secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0 .0)
    }

    /// Short public identifier of this master key: the first 8 bytes of
    /// SHA-256(`"dossier-master-key/1"` || key), lowercase hex. Lets operators
    /// tell which master key wrapped a data key without revealing it.
    pub fn id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"dossier-master-key/1")
            .chain_update(self.0 .0)
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl ZeroizeOnDrop for MasterKey {}

/// A customer's data key. Only leaves this crate wrapped (see [`wrap_key`]).
#[derive(Clone)]
pub struct DataKey(KeyBytes);

impl DataKey {
    pub fn generate() -> DataKey {
        DataKey(KeyBytes::random())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl ZeroizeOnDrop for DataKey {}

/// Wraps `key` for `stream_id` under `master`: AES-256-GCM with a fresh random
/// nonce, AD = `"dossier-keywrap/1|" || stream_id`. Returns
/// nonce (12) || ciphertext+tag (48), i.e. [`WRAPPED_KEY_LEN`] bytes.
pub fn wrap_key(master: &MasterKey, stream_id: Uuid, key: &DataKey) -> Vec<u8> {
    wrap_key_with_nonce(master, stream_id, key, random_nonce())
}

fn wrap_key_with_nonce(
    master: &MasterKey,
    stream_id: Uuid,
    key: &DataKey,
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    let ciphertext = encrypt(&master.0, nonce, &key.0 .0, &wrap_ad(stream_id));
    [&nonce[..], &ciphertext].concat()
}

/// Reverses [`wrap_key`]. Fails with [`SealError::Unauthentic`] under another
/// master key or stream id.
pub fn unwrap_key(
    master: &MasterKey,
    stream_id: Uuid,
    wrapped: &[u8],
) -> Result<DataKey, SealError> {
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(SealError::BadWrappedKey(format!(
            "expected {WRAPPED_KEY_LEN} bytes, got {}",
            wrapped.len()
        )));
    }
    let (nonce, ciphertext) = wrapped.split_at(NONCE_LEN);
    let plaintext = decrypt(&master.0, nonce, ciphertext, &wrap_ad(stream_id))?;
    // The length check above fixes the plaintext at KEY_LEN bytes.
    Ok(DataKey(KeyBytes::from_slice(&plaintext)))
}

/// Seals `value` (stored at path `field` of a payload of `stream_id`) under
/// `key` with a fresh random nonce. See the crate docs for the envelope format.
pub fn seal_value(key: &DataKey, stream_id: Uuid, field: &str, value: &Value) -> Value {
    seal_value_with_nonce(key, stream_id, field, value, random_nonce())
}

/// [`seal_value`] with a caller-chosen nonce, for test vectors only: reusing a
/// nonce under the same key breaks AES-GCM's confidentiality and integrity.
#[doc(hidden)]
pub fn seal_value_with_nonce(
    key: &DataKey,
    stream_id: Uuid,
    field: &str,
    value: &Value,
    nonce: [u8; NONCE_LEN],
) -> Value {
    let plaintext =
        Zeroizing::new(serde_json::to_vec(value).expect("a serde_json::Value always serialises"));
    let ciphertext = encrypt(&key.0, nonce, &plaintext, &seal_ad(stream_id, field));
    let mut envelope = Map::new();
    envelope.insert("$sealed".into(), SEAL_VERSION.into());
    envelope.insert("n".into(), URL_SAFE_NO_PAD.encode(nonce).into());
    envelope.insert("c".into(), URL_SAFE_NO_PAD.encode(ciphertext).into());
    Value::Object(envelope)
}

/// Opens an envelope produced by [`seal_value`] for the same `stream_id` and `field`.
pub fn open_value(
    key: &DataKey,
    stream_id: Uuid,
    field: &str,
    sealed: &Value,
) -> Result<Value, SealError> {
    let (nonce, ciphertext) = parse_envelope(sealed)?;
    let plaintext = decrypt(&key.0, &nonce, &ciphertext, &seal_ad(stream_id, field))?;
    // Authentic but not JSON means it was sealed by something other than
    // seal_value; serde's error would quote the plaintext, so it is dropped.
    serde_json::from_slice(&plaintext)
        .map_err(|_| SealError::BadEnvelope("authenticated plaintext is not valid JSON".into()))
}

/// True if `v` is an object whose `$sealed` member is a string (any version).
pub fn is_sealed(v: &Value) -> bool {
    v.get("$sealed").is_some_and(Value::is_string)
}

fn parse_envelope(v: &Value) -> Result<([u8; NONCE_LEN], Vec<u8>), SealError> {
    let bad = |msg: &str| SealError::BadEnvelope(msg.to_owned());
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    match obj.get("$sealed") {
        Some(Value::String(version)) if version == SEAL_VERSION => {}
        Some(Value::String(version)) => {
            return Err(SealError::BadEnvelope(format!(
                "unsupported version {version:?}, expected {SEAL_VERSION:?}"
            )))
        }
        _ => return Err(bad("missing string member \"$sealed\"")),
    }
    let member = |name: &str| -> Result<Vec<u8>, SealError> {
        let text = obj
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| SealError::BadEnvelope(format!("missing string member {name:?}")))?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| {
            SealError::BadEnvelope(format!("member {name:?} is not base64url without padding"))
        })
    };
    let nonce = member("n")?;
    let ciphertext = member("c")?;
    // Unauthenticated extra members could smuggle data past the seal.
    if obj.len() != 3 {
        return Err(bad(
            "unexpected members besides \"$sealed\", \"n\" and \"c\"",
        ));
    }
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|n: Vec<u8>| {
        SealError::BadEnvelope(format!("nonce must be {NONCE_LEN} bytes, got {}", n.len()))
    })?;
    if ciphertext.len() < TAG_LEN {
        return Err(bad("ciphertext is shorter than the 16-byte tag"));
    }
    Ok((nonce, ciphertext))
}

fn wrap_ad(stream_id: Uuid) -> Vec<u8> {
    format!("dossier-keywrap/1|{}", stream_id.hyphenated()).into_bytes()
}

fn seal_ad(stream_id: Uuid, field: &str) -> Vec<u8> {
    format!("dossier-seal/1|{}|{field}", stream_id.hyphenated()).into_bytes()
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

fn encrypt(key: &KeyBytes, nonce: [u8; NONCE_LEN], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    key.cipher()
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        // Only fails for messages beyond GCM's 64 GiB limit.
        .expect("AES-GCM encryption failed")
}

fn decrypt(
    key: &KeyBytes,
    nonce: &[u8],
    msg: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    key.cipher()
        .decrypt(Nonce::from_slice(nonce), Payload { msg, aad })
        .map(Zeroizing::new)
        .map_err(|_| SealError::Unauthentic)
}

/// HMAC-SHA-256 (RFC 2104) of `msg` under `key`.
fn hmac_sha256(key: &[u8], msg: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let mut inner = Sha256::new().chain_update(pad(0x36));
    for part in msg {
        inner.update(part);
    }
    let inner = inner.finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(
        &Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize(),
    );
    k.zeroize();
    out
}

/// A blind index of an identifier: HMAC-SHA-256 under a key derived from
/// the master key, of `field`, a NUL byte and the normalised `value`. Equal
/// identifiers give equal tags, so they can be matched without being
/// stored; without the master key a tag reveals nothing and cannot be
/// tested against guesses.
pub fn blind_index(master: &MasterKey, field: &str, value: &str) -> [u8; 32] {
    let mut derived: [u8; 32] = Sha256::new()
        .chain_update(b"dossier-blind-index/1")
        .chain_update(master.0 .0)
        .finalize()
        .into();
    let tag = hmac_sha256(&derived, &[field.as_bytes(), &[0], value.as_bytes()]);
    derived.zeroize();
    tag
}

#[cfg(test)]
mod tests {
    #[test]
    fn hmac_matches_rfc_4231_test_cases() {
        // Test case 2: a key shorter than the block.
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let tag = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex(&tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn blind_index_depends_on_key_field_and_value() {
        let m = MasterKey::generate();
        let t = blind_index(&m, "phone", "+8613812345678");
        assert_eq!(t, blind_index(&m, "phone", "+8613812345678"));
        assert_ne!(t, blind_index(&m, "phone", "+8613812345679"));
        assert_ne!(t, blind_index(&m, "email", "+8613812345678"));
        assert_ne!(
            t,
            blind_index(&MasterKey::generate(), "phone", "+8613812345678")
        );
        // The separator keeps field and value apart.
        assert_ne!(blind_index(&m, "ab", "c"), blind_index(&m, "a", "bc"));
    }

    use super::*;
    use serde_json::json;

    // Keep in sync with "Test vectors" in the crate docs. Computed independently
    // with Python's `cryptography` package (AESGCM), not with this crate.
    const MASTER_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const MASTER_ID: &str = "13ae7af4eee1ba4a";
    const STREAM: &str = "6f1c2a3e-8b4d-4e5f-9a0b-1c2d3e4f5a6b";
    const WRAPPED_HEX: &str = "a0a1a2a3a4a5a6a7a8a9aaabc6395e0e61ee24984a4cadf82b57eef1\
                               409d6b23a682745ba4371cbd43964b3e140c8342aad5c3a31d9ba649\
                               49c18e8f";

    fn seq(start: u8) -> [u8; 32] {
        std::array::from_fn(|i| start + i as u8)
    }

    fn nonce(start: u8) -> [u8; NONCE_LEN] {
        std::array::from_fn(|i| start + i as u8)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn master_key_vector() {
        let master = MasterKey::from_base64(MASTER_B64).unwrap();
        assert_eq!(master.0 .0, seq(0x00));
        assert_eq!(master.to_base64(), MASTER_B64);
        assert_eq!(master.id(), MASTER_ID);
    }

    #[test]
    fn wrap_vector() {
        let master = MasterKey(KeyBytes(seq(0x00)));
        let stream = Uuid::parse_str(STREAM).unwrap();
        let wrapped =
            wrap_key_with_nonce(&master, stream, &DataKey(KeyBytes(seq(0x20))), nonce(0xa0));
        assert_eq!(hex(&wrapped), WRAPPED_HEX);
        assert_eq!(
            unwrap_key(&master, stream, &wrapped).unwrap().0 .0,
            seq(0x20)
        );
    }

    #[test]
    fn seal_vector() {
        let key = DataKey(KeyBytes(seq(0x20)));
        let stream = Uuid::parse_str(STREAM).unwrap();
        let value = json!("+49 30 1234567");
        let sealed = seal_value_with_nonce(&key, stream, "phone", &value, nonce(0xb0));
        assert_eq!(
            sealed,
            json!({
                "$sealed": "aes-256-gcm/1",
                "n": "sLGys7S1tre4ubq7",
                "c": "FNEefrIQ-C4DPy7ONguqFLbQ5_3cdfk1xrbfOzdvXVw",
            })
        );
        assert_eq!(open_value(&key, stream, "phone", &sealed).unwrap(), value);
    }
}
