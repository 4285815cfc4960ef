//! Projector tasks: each reads the log after its checkpoint, applies a batch
//! to its read-model tables and commits the checkpoint in the same
//! transaction, so a crash never loses or double-applies an event. One
//! instance per projection is active across all server processes (a
//! session advisory lock on a dedicated connection); the others stand by.

mod current;
mod insight;
mod insight_read;
mod list;
mod rebuild;

use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use sqlx::postgres::PgListener;
use sqlx::{Acquire, PgConnection, Postgres, Transaction};
use uuid::Uuid;

pub use current::{read_current, CurrentRow, CustomerCurrent};
use dossier_store::{Keyring, Store, StoreError, StoredEvent};
pub use insight::{Aspect, Insight};
pub use insight_read::{
    find_duplicates, follow_ups, read_risk, read_tier, risk_history, segments, tier_history,
    Duplicate, DuplicateKeys, FollowUpItem, FollowUpQuery, LabelCount, RiskRow, SegmentCount,
    SegmentQuery, Segments, TierRow,
};
pub use list::{
    list_customers, search_terms, BadCursor, Cursor, CursorKey, ListItem, ListPage, ListQuery,
    Search, Sort, SortKey,
};
pub use rebuild::{rebuild_all, RebuildReport};

/// Events applied per transaction.
pub const BATCH: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("unknown projection {0:?}; known: customer_current, customer_tier, customer_risk, follow_ups")]
    Unknown(String),
    #[error("event seq {seq} cannot be projected: {reason}")]
    BadEvent { seq: i64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A full rebuild could not run or finish: another one is running, a
    /// worker task failed, or a table has something it cannot copy.
    #[error("the rebuild failed: {0}")]
    Rebuild(String),
    /// A read-model row cannot be read back (a stored document that does not
    /// parse, or is not the shape the projector writes). Never answered as
    /// empty data; rebuilding the projection from the log replaces the row.
    #[error("the {table} row of customer {customer_id} is corrupt: {detail}")]
    Corrupt {
        table: &'static str,
        customer_id: Uuid,
        detail: String,
    },
}

/// The JSON document in column `column` of a read-model row, or `Corrupt`.
pub(crate) fn stored_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    customer_id: Uuid,
    column: &str,
    text: &str,
) -> Result<T, ProjectionError> {
    serde_json::from_str(text).map_err(|e| ProjectionError::Corrupt {
        table,
        customer_id,
        detail: format!("{column} does not parse: {e}"),
    })
}

/// A read model fed by the log.
pub trait Projection: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Applies events (in seq order) inside the runner's transaction.
    fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send;
    /// Empties the read model, inside the rebuild transaction.
    fn reset(
        &self,
        tx: &mut Transaction<'static, Postgres>,
    ) -> impl std::future::Future<Output = Result<(), ProjectionError>> + Send;
}

/// The names `dossier projections` accepts.
pub const NAMES: &[&str] = &[
    "customer_current",
    "customer_tier",
    "customer_risk",
    "follow_ups",
];

/// The leadership lock of a projection: FNV-1a of its name.
fn lock_key(name: &str) -> i64 {
    dossier_store::advisory_key(name.bytes())
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub name: String,
    pub checkpoint: i64,
    pub head: i64,
    pub lag_events: i64,
    /// Age of the oldest event not yet projected (0 when caught up).
    pub lag_seconds: f64,
}

pub async fn checkpoint(store: &Store, name: &str) -> Result<i64, ProjectionError> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await?;
    Ok(seq.unwrap_or(0))
}

/// The lowest checkpoint of all projections (0 for one that has none yet).
pub async fn lowest_checkpoint(store: &Store) -> Result<i64, ProjectionError> {
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN count(*) = cardinality($1::text[]) THEN min(seq) ELSE 0 END
         FROM projection_checkpoints WHERE name = ANY($1)",
    )
    .bind(NAMES)
    .fetch_one(store.pool())
    .await?;
    Ok(seq.unwrap_or(0))
}

pub async fn status(store: &Store, name: &str) -> Result<Status, ProjectionError> {
    let checkpoint = checkpoint(store, name).await?;
    let head = store.head().await?;
    let oldest: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT recorded_at FROM events WHERE seq = $1")
            .bind(checkpoint + 1)
            .fetch_optional(store.pool())
            .await?;
    Ok(Status {
        name: name.to_owned(),
        checkpoint,
        head: head.seq,
        lag_events: head.seq - checkpoint,
        lag_seconds: oldest.map_or(0.0, |t| {
            (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
        }),
    })
}

/// Applies the next batch after the checkpoint. Returns how many events were applied.
pub async fn step<P: Projection>(store: &Store, projection: &P) -> Result<usize, ProjectionError> {
    let started = std::time::Instant::now();
    let mut tx = store.pool().begin().await?;
    // The row lock orders this batch against a concurrent rebuild's reset.
    // The commit does not wait for the WAL flush (synchronous_commit off, for
    // this transaction only): a crash of the database server may undo the
    // last few batches, read-model rows and checkpoint together, and the
    // projector applies them again. Every later synchronous commit (any
    // append) flushes them too. See ARCHITECTURE.md.
    let seq: Option<i64> = sqlx::query_scalar(
        "SELECT (SELECT seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE),
                set_config('synchronous_commit', 'off', true)",
    )
    .bind(projection.name())
    .fetch_one(&mut *tx)
    .await?;
    let after = seq.unwrap_or(0);
    let events = store.read_log_shared(after, BATCH).await?;
    if events.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    projection.apply(&mut tx, &events).await?;
    let last = events.last().map(|e| e.record.seq).unwrap_or(after);
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, seq, updated_at) VALUES ($1, $2, now())
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
    )
    .bind(projection.name())
    .bind(last)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(
        projection = projection.name(),
        events = events.len(),
        last,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "batch applied"
    );
    Ok(events.len())
}

/// Applies batches until the projection has reached the head seen at the start.
pub async fn catch_up<P: Projection>(
    store: &Store,
    projection: &P,
    mut progress: impl FnMut(i64, i64),
) -> Result<(), ProjectionError> {
    let head = store.head().await?.seq;
    loop {
        let cp = checkpoint(store, projection.name()).await?;
        progress(cp, head);
        if cp >= head || step(store, projection).await? == 0 {
            return Ok(());
        }
    }
}

/// Empties the read model and sets its checkpoint back to 0 in one
/// transaction; the active runner then rebuilds it from the log.
pub async fn reset<P: Projection>(store: &Store, projection: &P) -> Result<(), ProjectionError> {
    let mut tx = store.pool().begin().await?;
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, seq) VALUES ($1, 0)
         ON CONFLICT (name) DO UPDATE SET seq = 0, updated_at = now()",
    )
    .bind(projection.name())
    .execute(&mut *tx)
    .await?;
    projection.reset(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn try_lead(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key(name))
        .fetch_one(&mut *conn)
        .await?;
    Ok(got)
}

/// Runs a projection forever: stand by until this process holds the
/// projection's lock, then apply batches, woken by NOTIFY and by a poll.
pub async fn run<P: Projection>(store: Store, projection: P, poll: Duration) {
    loop {
        if let Err(e) = lead_and_apply(&store, &projection, poll).await {
            tracing::warn!(projection = projection.name(), error = %e, "projector stopped; restarting");
            tokio::time::sleep(poll).await;
        }
    }
}

async fn lead_and_apply<P: Projection>(
    store: &Store,
    projection: &P,
    poll: Duration,
) -> Result<(), ProjectionError> {
    // A connection of its own: the lock lives as long as this session does.
    let mut leader = store.pool().acquire().await?.detach();
    while !try_lead(&mut leader, projection.name()).await? {
        tokio::time::sleep(poll).await;
    }
    tracing::info!(projection = projection.name(), "projector active");
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen(dossier_store::NOTIFY_CHANNEL).await?;
    loop {
        while step(store, projection).await? > 0 {}
        // Check the lock's session is still alive; if it died, the lock is gone.
        sqlx::query("SELECT 1")
            .execute(leader.acquire().await?)
            .await?;
        // Wake on a notification or after `poll` (notifications can be missed
        // while reconnecting, so polling is the fallback).
        let _ = tokio::time::timeout(poll, listener.try_recv()).await;
    }
}

/// Waits until the projection has applied `min_seq`, polling the checkpoint.
/// Returns the checkpoint reached, or `None` on timeout.
pub async fn wait_for(
    store: &Store,
    name: &str,
    min_seq: i64,
    timeout: Duration,
) -> Result<Option<i64>, ProjectionError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let cp = checkpoint(store, name).await?;
        if cp >= min_seq {
            return Ok(Some(cp));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Any of the projections, for code that picks one by name.
pub enum AnyProjection {
    Current(CustomerCurrent),
    Insight(Box<Insight>),
}

impl Projection for AnyProjection {
    fn name(&self) -> &'static str {
        match self {
            AnyProjection::Current(p) => p.name(),
            AnyProjection::Insight(p) => p.name(),
        }
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        match self {
            AnyProjection::Current(p) => p.apply(tx, events).await,
            AnyProjection::Insight(p) => p.apply(tx, events).await,
        }
    }

    async fn reset(&self, tx: &mut Transaction<'static, Postgres>) -> Result<(), ProjectionError> {
        match self {
            AnyProjection::Current(p) => p.reset(tx).await,
            AnyProjection::Insight(p) => p.reset(tx).await,
        }
    }
}

/// Looks a projection up by name.
pub fn by_name(
    name: &str,
    keyring: Keyring,
    store: Store,
) -> Result<AnyProjection, ProjectionError> {
    if name == "customer_current" {
        return Ok(AnyProjection::Current(CustomerCurrent::new(store, keyring)));
    }
    Aspect::ALL
        .into_iter()
        .find(|a| a.name() == name)
        .map(|a| AnyProjection::Insight(Box::new(Insight::new(a, store, keyring))))
        .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
}

/// Every projection, for a server to run.
pub fn all(keyring: &Keyring, store: &Store) -> Vec<AnyProjection> {
    NAMES
        .iter()
        .map(|n| by_name(n, keyring.clone(), store.clone()).expect("known name"))
        .collect()
}
