//! PostgreSQL persistence for the event log: migrations, the group-commit
//! append path, reads, streaming verification, data keys and principals.
//!
//! Only this crate and `dossier-projections` contain SQL. Only this crate writes
//! the `events` table, and only through `dossier_append_batch`.

mod append;
mod error;
mod keyring;
mod keys;
pub mod local_postgres;
mod migrate;
mod principals;
mod read;
mod verify;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

pub use append::{AppendRequest, Appended, ExpectedVersion, IdempotencyKey, NewEvent};
pub use error::StoreError;
pub use keyring::Keyring;
pub use keys::CustomerKey;
pub use migrate::{migrate, MIGRATIONS};
pub use principals::{Principal, Role};
pub use read::{LogHead, StoredEvent};
pub use verify::VerifyProgress;

/// The role the service runs as (see migrations/0001): SELECT/INSERT on the log only.
pub const APP_ROLE: &str = "dossier_app";

/// Channel on which the writer notifies committed positions.
pub const NOTIFY_CHANNEL: &str = "dossier_events";

/// Connects as the database owner (for migrations and administrative tasks).
pub async fn connect_owner(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // A ping per checkout would add a round trip to every batch; a broken
        // connection surfaces as an error on use and is replaced.
        .test_before_acquire(false)
        .connect_with(opts)
        .await?)
}

/// Connects with every session switched to the restricted application role, so
/// the service cannot change or delete events even through a bug.
pub async fn connect_app(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // A ping per checkout would add a round trip to every batch; a broken
        // connection surfaces as an error on use and is replaced.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET ROLE dossier_app").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await?)
}

/// The event store: an application-role pool plus the single writer task of
/// this process.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    writer: append::WriterHandle,
}

impl Store {
    /// Starts the writer task. Must be called inside a tokio runtime.
    pub fn new(pool: PgPool) -> Store {
        let writer = append::WriterHandle::spawn(pool.clone());
        Store { pool, writer }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends events to one stream. Many concurrent calls are committed
    /// together in one transaction; each gets its own result.
    pub async fn append(&self, req: AppendRequest) -> Result<Appended, StoreError> {
        self.writer.append(req).await
    }
}
