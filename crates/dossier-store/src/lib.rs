//! PostgreSQL persistence for the event log: migrations, the group-commit
//! append path, reads, streaming verification, data keys and principals.
//!
//! Only this crate and `dossier-projections` contain SQL. Only this crate writes
//! the `events` table, and only through `dossier_append_batch`.

mod append;
mod claims;
mod error;
mod keyring;
mod keys;
pub mod local_postgres;
mod locks;
mod migrate;
mod principals;
mod read;
mod scan;
mod tail;
mod verify;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

pub use append::{AppendRequest, Appended, ExpectedVersion, IdempotencyKey, NewEvent};
pub use claims::IdentifierTag;
pub use error::{is_unreachable, StoreError};
pub use keyring::Keyring;
pub use keys::CustomerKey;
pub use locks::{advisory_key, NameLocks};
pub use migrate::{migrate, MIGRATIONS};
pub use principals::{Principal, Role};
pub use read::{LogHead, RawEvent, StoredEvent};
pub use scan::LogScan;
pub use verify::VerifyProgress;

/// The role the service runs as (see migrations/0001): SELECT/INSERT on the log only.
pub const APP_ROLE: &str = "dossier_app";

/// Channel on which the writer notifies committed positions.
pub const NOTIFY_CHANNEL: &str = "dossier_events";

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // A ping per checkout would add a round trip to every batch; a broken
        // connection surfaces as an error on use and is replaced.
        .test_before_acquire(false)
}

/// Connects as the database owner (for migrations and administrative tasks).
pub async fn connect_owner(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let opts: PgConnectOptions = url.parse()?;
    Ok(pool_options(max_connections).connect_with(opts).await?)
}

/// How the service's sessions got the application role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppLogin {
    /// Logged in as `dossier_app` itself: the session can never regain more rights.
    Direct,
    /// Logged in as the owner and switched with `SET ROLE dossier_app` (used
    /// when the server does not let `dossier_app` log in, e.g. password auth).
    SetRole,
}

/// Connects as the restricted application role, so the service cannot change
/// or delete events even through a bug. `app_url`, if given, is the
/// connection URL for `dossier_app` (with its password); otherwise the owner's
/// URL is reused with the user replaced.
pub async fn connect_app(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    Ok(connect_app_with(url, None, max_connections).await?.0)
}

pub async fn connect_app_with(
    url: &str,
    app_url: Option<&str>,
    max_connections: u32,
) -> Result<(PgPool, AppLogin), StoreError> {
    let app_opts: PgConnectOptions = match app_url {
        Some(u) => u.parse()?,
        None => url.parse::<PgConnectOptions>()?.username(APP_ROLE),
    };
    match pool_options(max_connections).connect_with(app_opts).await {
        Ok(pool) => return Ok((pool, AppLogin::Direct)),
        Err(e) if app_url.is_some() => return Err(e.into()),
        Err(e) => tracing::warn!(
            error = %e,
            "dossier_app cannot log in; using SET ROLE on owner connections instead \
             (set DOSSIER_APP_DATABASE_URL to give the role its own login)"
        ),
    }
    let opts: PgConnectOptions = url.parse()?;
    let pool = pool_options(max_connections)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET ROLE dossier_app").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await?;
    Ok((pool, AppLogin::SetRole))
}

/// The event store: an application-role pool plus the single writer task of
/// this process.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    writer: append::WriterHandle,
    /// Bounds the connections held by [`NameLocks`].
    lock_holders: std::sync::Arc<tokio::sync::Semaphore>,
    /// The last batches the projectors read (`read_log_shared`).
    tail: std::sync::Arc<tail::Tail<StoredEvent>>,
}

impl Store {
    /// Starts the writer task. Must be called inside a tokio runtime.
    pub fn new(pool: PgPool) -> Store {
        let writer = append::WriterHandle::spawn(pool.clone());
        let lock_holders = locks::holders(pool.options().get_max_connections());
        Store {
            pool,
            writer,
            lock_holders,
            tail: std::sync::Arc::new(tail::Tail::new(tail::FRESH)),
        }
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
