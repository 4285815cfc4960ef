//! Per-customer data keys (wrapped by the master key; see dossier-seal).

use sqlx::Row;
use uuid::Uuid;

use crate::error::StoreError;
use crate::Store;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerKey {
    pub stream_id: Uuid,
    /// `None` once the key was destroyed (the customer's personal data is erased).
    pub wrapped_key: Option<Vec<u8>>,
    pub master_key_id: String,
}

impl Store {
    /// Stores a customer's wrapped data key. Returns the key that is stored
    /// afterwards: an existing key wins, so two racing creators agree.
    pub async fn put_customer_key(
        &self,
        stream_id: Uuid,
        wrapped_key: &[u8],
        master_key_id: &str,
    ) -> Result<CustomerKey, StoreError> {
        sqlx::query(
            "INSERT INTO customer_keys (stream_id, wrapped_key, master_key_id) VALUES ($1, $2, $3)
             ON CONFLICT (stream_id) DO NOTHING",
        )
        .bind(stream_id)
        .bind(wrapped_key)
        .bind(master_key_id)
        .execute(&self.pool)
        .await?;
        self.customer_key(stream_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("key of {stream_id} vanished")))
    }

    pub async fn customer_key(&self, stream_id: Uuid) -> Result<Option<CustomerKey>, StoreError> {
        Ok(self.customer_keys(&[stream_id]).await?.pop())
    }

    /// Every customer's key row (full rebuilds open the whole log).
    pub async fn all_customer_keys(&self) -> Result<Vec<CustomerKey>, StoreError> {
        let rows = sqlx::query("SELECT stream_id, wrapped_key, master_key_id FROM customer_keys")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    pub async fn customer_keys(&self, stream_ids: &[Uuid]) -> Result<Vec<CustomerKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT stream_id, wrapped_key, master_key_id FROM customer_keys WHERE stream_id = ANY($1)",
        )
        .bind(stream_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_row).collect())
    }
}

fn key_row(r: &sqlx::postgres::PgRow) -> CustomerKey {
    CustomerKey {
        stream_id: r.get("stream_id"),
        wrapped_key: r.get("wrapped_key"),
        master_key_id: r.get("master_key_id"),
    }
}
