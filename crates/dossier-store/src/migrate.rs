//! Embedded migrations. Each is applied once, in order, in its own transaction,
//! by the database owner. A migration that changed after it was applied is an
//! error: landed migrations are never edited.

use sha2::{Digest, Sha256};
use sqlx::{Connection, Executor, PgPool, Row};

use crate::error::StoreError;

/// (version, SQL) in order of application.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_event_log",
        include_str!("../../../migrations/0001_event_log.sql"),
    ),
    (
        "0002_projections",
        include_str!("../../../migrations/0002_projections.sql"),
    ),
    (
        "0003_customer_search",
        include_str!("../../../migrations/0003_customer_search.sql"),
    ),
    (
        "0004_customer_file_and_insights",
        include_str!("../../../migrations/0004_customer_file_and_insights.sql"),
    ),
    (
        "0005_customer_list",
        include_str!("../../../migrations/0005_customer_list.sql"),
    ),
    (
        "0006_insight_facts_text",
        include_str!("../../../migrations/0006_insight_facts_text.sql"),
    ),
    (
        "0007_duplicate_claims",
        include_str!("../../../migrations/0007_duplicate_claims.sql"),
    ),
    (
        "0008_customer_search",
        include_str!("../../../migrations/0008_customer_search.sql"),
    ),
    (
        "0009_read_model_documents_text",
        include_str!("../../../migrations/0009_read_model_documents_text.sql"),
    ),
];

/// Lock key serialising migration runs of concurrent processes.
const MIGRATION_LOCK: i64 = 0x646f_7373_6965_7201;

pub fn checksum(sql: &str) -> Vec<u8> {
    Sha256::digest(sql.as_bytes()).to_vec()
}

/// Applies every migration not yet applied. Safe to call from several
/// processes at once.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version text PRIMARY KEY,
             checksum bytea NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let result = apply_pending(&mut conn).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    result
}

async fn apply_pending(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let applied: Vec<(String, Vec<u8>)> =
        sqlx::query("SELECT version, checksum FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|r| (r.get("version"), r.get("checksum")))
            .collect();
    for (version, sql) in MIGRATIONS {
        let sum = checksum(sql);
        if let Some((_, stored)) = applied.iter().find(|(v, _)| v == version) {
            if *stored != sum {
                return Err(StoreError::Migration(format!(
                    "migration {version} was edited after it was applied; add a new migration instead"
                )));
            }
            continue;
        }
        let mut tx = conn.begin().await?;
        tx.execute(*sql)
            .await
            .map_err(|e| StoreError::Migration(format!("{version}: {e}")))?;
        sqlx::query("INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)")
            .bind(version)
            .bind(sum)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
    }
    if let Some((v, _)) = applied
        .iter()
        .find(|(v, _)| !MIGRATIONS.iter().any(|(m, _)| m == v))
    {
        return Err(StoreError::Migration(format!(
            "the database has migration {v}, which this build does not know: it is older than the database"
        )));
    }
    Ok(())
}
