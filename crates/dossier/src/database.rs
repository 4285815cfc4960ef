//! Finding the database server and making sure the database exists.
//!
//! Creating and dropping databases is server administration (it cannot run
//! inside the database it creates), not product SQL, so it lives here next to
//! the start-up logic rather than in `dossier-store`. All schema and data SQL
//! stays in the store crate.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dossier_store::{local_postgres, StoreError};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use crate::config::DatabaseUrl;

/// Port of the private server started when none is reachable.
pub const LOCAL_PORT: u16 = 55432;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a maintenance database of the server `url` points at.
async fn admin_connect(url: &DatabaseUrl) -> Result<PgConnection, sqlx::Error> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let opts = url.options().database(db).disable_statement_logging();
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts)).await {
            Err(_) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting timed out",
                )))
            }
            Ok(Ok(conn)) => return Ok(conn),
            // 3D000: that maintenance database does not exist; try the next one.
            Ok(Err(sqlx::Error::Database(e))) if e.code().as_deref() == Some("3D000") => {
                last = Some(sqlx::Error::Database(e));
            }
            Ok(Err(e)) => return Err(e),
        }
    }
    Err(last.unwrap_or(sqlx::Error::PoolClosed))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database if it does not exist (a concurrent creation is fine).
async fn create_if_missing(admin: &mut PgConnection, name: &str) -> Result<bool> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    match admin
        .execute(format!("CREATE DATABASE {}", quote_ident(name)).as_str())
        .await
    {
        Ok(_) => Ok(true),
        // 42P04 duplicate_database: another process was quicker.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating database {name}")),
    }
}

/// Resolves the server to use and makes sure the configured database exists on
/// it. Returns the URL to connect to: the configured one, or that of a private
/// server in `<state_dir>/postgres` when the configured server is unreachable
/// (only if `state_dir` is given; `None` disables the private server).
pub async fn ensure(url: &DatabaseUrl, state_dir: Option<&Path>) -> Result<DatabaseUrl> {
    let (url, mut admin) = match admin_connect(url).await.map_err(StoreError::Database) {
        Ok(conn) => (url.clone(), conn),
        // "No server there", as opposed to a refusal by a server: the store's
        // test, the one that makes the service answer 503.
        Err(ref e @ StoreError::Database(ref cause)) if e.is_unreachable() => {
            let local = start_local(url, state_dir, cause).await?;
            let conn = admin_connect(&local)
                .await
                .with_context(|| format!("connecting to the private server at {local}"))?;
            (local, conn)
        }
        Err(StoreError::Database(e)) => {
            return Err(e).with_context(|| format!("connecting to {url}"))
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {url}")),
    };
    if let Some(name) = url.database() {
        if create_if_missing(&mut admin, name).await? {
            tracing::info!(database = name, "created database");
        }
    }
    admin.close().await.ok();
    Ok(url)
}

async fn start_local(
    url: &DatabaseUrl,
    state_dir: Option<&Path>,
    error: &sqlx::Error,
) -> Result<DatabaseUrl> {
    let Some(state_dir) = state_dir else {
        bail!(
            "cannot reach PostgreSQL at {url}: {error} (starting a private server is disabled \
             by DOSSIER_NO_PRIVATE_POSTGRES / --no-private-postgres)\n\n{}",
            local_postgres::INSTALL_HINT
        );
    };
    let Some(bin) = local_postgres::find_server_binaries() else {
        bail!(
            "cannot reach PostgreSQL at {url}: {error}\n\n{}",
            local_postgres::INSTALL_HINT
        );
    };
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let data_dir = std::fs::canonicalize(state_dir)?.join("postgres");
    tracing::warn!(
        configured = %url,
        %error,
        bin = %bin.display(),
        data_dir = %data_dir.display(),
        port = LOCAL_PORT,
        "PostgreSQL is not reachable; starting a private server from the installed binaries"
    );
    let local = tokio::task::spawn_blocking(move || local_postgres::start(&bin, &data_dir, LOCAL_PORT))
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot reach PostgreSQL at {url} ({error}), and starting a private server failed: {e}\n\n{}",
                local_postgres::INSTALL_HINT
            )
        })?;
    let base = DatabaseUrl::parse(&local.url).map_err(anyhow::Error::msg)?;
    let local_url = base.with_database(url.database().unwrap_or("dossier"));
    tracing::info!(url = %local_url, data_dir = %local.data_dir.display(), "using the private PostgreSQL server");
    Ok(local_url)
}

/// Drops (terminating its sessions) and recreates a scratch database.
pub async fn recreate(url: &DatabaseUrl) -> Result<()> {
    let name = url
        .database()
        .context("the scratch database URL names no database")?;
    let mut admin = admin_connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)).as_str())
        .await
        .with_context(|| format!("dropping database {name}"))?;
    admin
        .execute(format!("CREATE DATABASE {}", quote_ident(name)).as_str())
        .await
        .with_context(|| format!("creating database {name}"))?;
    admin.close().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("dossier"), "\"dossier\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
