use dossier_chain::ChainError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the caller expected.
    #[error("concurrent write: expected {expected}, stream is at version {current}")]
    Conflict { expected: String, current: i64 },
    /// An idempotency key was reused for a different request.
    #[error("idempotency key {0:?} was already used for a different request")]
    IdempotencyMismatch(String),
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] ChainError),
    #[error("a principal named {0:?} already exists")]
    PrincipalExists(String),
    #[error("an append needs at least one event")]
    EmptyAppend,
    /// The writer gave up after repeated head changes by other processes.
    #[error("the log is too contended right now; retry")]
    Contended,
    /// The connection failed around the commit and the database could not be
    /// asked afterwards whether it happened: retry with the same idempotency key.
    #[error("the outcome of the write is unknown (the database connection failed); retry with the same Idempotency-Key")]
    OutcomeUnknown,
    #[error("the writer task has stopped")]
    WriterStopped,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// True when the database could not be reached (as opposed to a query failing).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_unreachable(e))
    }
}

/// True when `e` says the server is down, going down, refusing connections
/// or the connection broke: a condition to retry later, not a fault of the
/// request.
pub fn is_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exceptions; 57P01-57P03: the server is
        // shutting down, crashed or not yet accepting; 53300: too many
        // connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}
