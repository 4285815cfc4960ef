//! Opening the database: migrations as the owner, the store as the app role.

use anyhow::{Context, Result};
use dossier_store::Store;

use crate::config::DatabaseUrl;

/// Applies pending migrations as the database owner.
pub async fn migrate(url: &DatabaseUrl) -> Result<()> {
    let owner = dossier_store::connect_owner(url.as_str(), 2)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let result = dossier_store::migrate(&owner).await;
    owner.close().await;
    result.context("migrating the database")
}

/// The store on an application-role pool. Fails with a hint if the database
/// has not been migrated (the role and tables come from the migrations).
pub async fn store(
    url: &DatabaseUrl,
    app_url: Option<&DatabaseUrl>,
    max_connections: u32,
) -> Result<Store> {
    let (pool, login) = dossier_store::connect_app_with(
        url.as_str(),
        app_url.map(DatabaseUrl::as_str),
        max_connections,
    )
    .await
    .with_context(|| {
        format!("connecting to {url} as the application role (has `dossier migrate` run?)")
    })?;
    tracing::debug!(?login, "connected as the application role");
    Ok(Store::new(pool))
}

/// Adds a hint to errors that come from an unmigrated database.
pub fn hint_unmigrated(e: anyhow::Error) -> anyhow::Error {
    let text = format!("{e:#}");
    if text.contains("does not exist") {
        e.context("the database looks unmigrated; run `dossier migrate` first")
    } else {
        e
    }
}
