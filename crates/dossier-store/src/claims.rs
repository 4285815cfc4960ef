//! Duplicate claims: a registration's identifiers, recorded (under their
//! locks) before it is appended, so that the next registration sharing one
//! finds it while `customer_current` has not projected the first yet. The
//! current-state projector deletes a customer's claims in the transaction
//! that projects it.

use uuid::Uuid;

use crate::{Store, StoreError};

/// An identifier of a new file as compared: its field and blind index.
#[derive(Clone, Debug)]
pub struct IdentifierTag {
    /// phone, email, credit_code or national_id.
    pub field: &'static str,
    /// HMAC of the normalised value (`Keyring::blind_index`).
    pub tag: Vec<u8>,
}

impl Store {
    /// Records that `customer_id` is being registered with these identifiers.
    pub async fn claim_identifiers(
        &self,
        customer_id: Uuid,
        tags: &[IdentifierTag],
    ) -> Result<(), StoreError> {
        let all: Vec<&[u8]> = tags.iter().map(|t| t.tag.as_slice()).collect();
        let fields: Vec<&str> = tags.iter().map(|t| t.field).collect();
        sqlx::query(
            "INSERT INTO duplicate_claims (tag, customer_id, field)
             SELECT t, $2, f FROM unnest($1::bytea[], $3::text[]) AS x(t, f)
             ON CONFLICT DO NOTHING",
        )
        .bind(&all)
        .bind(customer_id)
        .bind(&fields)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
