//! Reading the log: one stream, the whole log after a position, the head.

use dossier_chain::{EventRecord, Hash, Timestamp};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::append::{find_idempotency, Appended};
use crate::error::StoreError;
use crate::Store;

/// A committed event: the decoded record and its hash.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub record: EventRecord,
    pub hash: Hash,
}

/// A stored event exactly as it is in the log: the hashed bytes and the
/// indexed link columns, undecoded (what auditors export and verify).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub seq: i64,
    pub stream_id: Uuid,
    pub stream_version: i64,
    pub prev_hash: Hash,
    pub stream_prev_hash: Hash,
    pub hash: Hash,
    pub body: Vec<u8>,
}

impl RawEvent {
    pub fn as_row(&self) -> dossier_chain::StoredRow<'_> {
        dossier_chain::StoredRow {
            seq: self.seq,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            prev_hash: self.prev_hash,
            stream_prev_hash: self.stream_prev_hash,
            hash: self.hash,
            body: &self.body,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LogHead {
    pub seq: i64,
    pub hash: Hash,
    pub recorded_at: Timestamp,
}

fn decode(row: &PgRow) -> Result<StoredEvent, StoreError> {
    stored_event(row.try_get("body")?, row.try_get("hash")?)
}

/// A stored event from its `body` and `hash` columns (every read path).
pub(crate) fn stored_event(body: &[u8], hash: &[u8]) -> Result<StoredEvent, StoreError> {
    let record: EventRecord = serde_json::from_slice(body)
        .map_err(|e| StoreError::Corrupt(format!("event body does not parse: {e}")))?;
    let hash =
        Hash::from_slice(hash).ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))?;
    Ok(StoredEvent { record, hash })
}

impl Store {
    /// The events of one stream in version order, up to and including `max_seq`.
    pub async fn read_stream(
        &self,
        stream_id: Uuid,
        max_seq: Option<i64>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, hash FROM events WHERE stream_id = $1 AND seq <= $2 ORDER BY stream_version",
        )
        .bind(stream_id)
        .bind(max_seq.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// The events of one stream, one page at a time in version order.
    pub async fn read_stream_page(
        &self,
        stream_id: Uuid,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, hash FROM events WHERE stream_id = $1 AND stream_version > $2
             ORDER BY stream_version LIMIT $3",
        )
        .bind(stream_id)
        .bind(after_version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Up to `limit` events with seq > `after`, in seq order.
    pub async fn read_log(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let rows =
            sqlx::query("SELECT body, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(decode).collect()
    }

    /// [`Store::read_log`] for projectors: the same batch asked for again
    /// soon after (the other projectors of this process, woken by the same
    /// notification) is handed out again instead of read and decoded again.
    /// Always a gap-free prefix of the events after `after` (see `tail.rs`).
    pub async fn read_log_shared(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<std::sync::Arc<[StoredEvent]>, StoreError> {
        let now = std::time::Instant::now();
        if let Some(batch) = self.tail.get(after, limit, now) {
            return Ok(batch);
        }
        let events: std::sync::Arc<[StoredEvent]> = self.read_log(after, limit).await?.into();
        self.tail.put(after, limit, now, events.clone());
        Ok(events)
    }

    /// Up to `limit` stored events with seq > `after`, undecoded, in seq order.
    pub async fn read_raw(&self, after: i64, limit: i64) -> Result<Vec<RawEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, stream_id, stream_version, prev_hash, stream_prev_hash, hash, body
             FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let hash = |row: &PgRow, col: &str| -> Result<Hash, StoreError> {
            let b: &[u8] = row.try_get(col)?;
            Hash::from_slice(b).ok_or_else(|| StoreError::Corrupt(format!("{col} is not 32 bytes")))
        };
        rows.iter()
            .map(|r| {
                Ok(RawEvent {
                    seq: r.try_get("seq")?,
                    stream_id: r.try_get("stream_id")?,
                    stream_version: r.try_get("stream_version")?,
                    prev_hash: hash(r, "prev_hash")?,
                    stream_prev_hash: hash(r, "stream_prev_hash")?,
                    hash: hash(r, "hash")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// The last seq whose `recorded_at` is at or before `t` (0 if none).
    /// recorded_at never decreases along seq, so this is the log "as known at t".
    pub async fn seq_known_at(&self, t: Timestamp) -> Result<i64, StoreError> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT max(seq) FROM events WHERE recorded_at <= $1")
                .bind(t.get())
                .fetch_one(&self.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    pub async fn head(&self) -> Result<LogHead, StoreError> {
        let row = sqlx::query("SELECT seq, hash, recorded_at FROM chain_head WHERE id")
            .fetch_one(&self.pool)
            .await?;
        let hash: Vec<u8> = row.get("hash");
        Ok(LogHead {
            seq: row.get("seq"),
            hash: Hash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt("head hash".into()))?,
            recorded_at: Timestamp::new(row.get("recorded_at")),
        })
    }

    /// The highest seq stored in `events` (0 when empty). Equal to the head's
    /// seq unless rows were inserted without dossier's writer moving the head:
    /// an export must carry those too, so that a verifier sees them.
    pub async fn last_stored_seq(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT max(seq) FROM events")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Current version of a stream (0 when it does not exist).
    pub async fn stream_version(&self, stream_id: Uuid) -> Result<i64, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT version FROM stream_heads WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// The stored result and request digest for an idempotency key, if used before.
    pub async fn find_idempotency(
        &self,
        key: &str,
    ) -> Result<Option<([u8; 32], Appended)>, StoreError> {
        find_idempotency(&self.pool, key).await
    }
}
