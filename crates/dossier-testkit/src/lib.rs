//! Test support: a fresh, migrated PostgreSQL database per test.
//!
//! The first test in any process builds a template database (named after a
//! digest of the migrations, so a changed migration gets a new template) under
//! an advisory lock; every test then clones it with `CREATE DATABASE ...
//! TEMPLATE`, which takes milliseconds. Tests never share state.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};

pub use dossier_store as store;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const TEMPLATE_LOCK: i64 = 0x646f_7373_7465_7374;
const PRIVATE_PORT: u16 = 55433;

/// The server the tests use: `DATABASE_URL`, else the local default, else a
/// private server started from installed PostgreSQL binaries.
async fn admin_url() -> Result<String> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let opts: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a valid postgres URL")?;
    let first_error = match opts.clone().connect().await {
        Ok(conn) => {
            conn.close().await.ok();
            return Ok(url);
        }
        Err(e) => e,
    };
    let Some(bin) = dossier_store::local_postgres::find_server_binaries() else {
        bail!(
            "tests need PostgreSQL: could not connect to {url} ({first_error}).\n{}",
            dossier_store::local_postgres::INSTALL_HINT
        );
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-postgres");
    let local = tokio::task::spawn_blocking(move || {
        dossier_store::local_postgres::start(&bin, &dir, PRIVATE_PORT)
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    Ok(local.url)
}

fn with_database(url: &str, db: &str) -> Result<PgConnectOptions> {
    Ok(url.parse::<PgConnectOptions>()?.database(db))
}

fn template_name() -> String {
    let mut h = Sha256::new();
    for (version, sql) in dossier_store::MIGRATIONS {
        h.update(version.as_bytes());
        h.update(sql.as_bytes());
    }
    format!("dossier_tmpl_{}", &hex::encode(h.finalize())[..16])
}

async fn ensure_template(admin: &mut PgConnection, url: &str, name: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *admin)
        .await?;
    let result = async {
        let ready: Option<bool> =
            sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut *admin)
                .await?;
        if ready == Some(true) {
            return Ok(());
        }
        if ready.is_some() {
            // A half-built template from a run that died: start over.
            admin
                .execute(format!("DROP DATABASE \"{name}\" WITH (FORCE)").as_str())
                .await?;
        }
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        let pool = PgPool::connect_with(with_database(url, name)?).await?;
        dossier_store::migrate(&pool).await?;
        pool.close().await;
        admin
            .execute(format!("ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true").as_str())
            .await?;
        anyhow::Ok(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *admin)
        .await?;
    result
}

/// A database of its own for one test; dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    admin_url: String,
}

impl TestDb {
    pub async fn new() -> Result<TestDb> {
        let admin_url = admin_url().await?;
        let mut admin = PgConnection::connect_with(&admin_url.parse()?).await?;
        let template = template_name();
        ensure_template(&mut admin, &admin_url, &template).await?;
        let name = format!("dossier_test_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        let mut attempts = 0;
        loop {
            match admin.execute(create.as_str()).await {
                Ok(_) => break,
                // Another process may be connected to the template for a moment.
                Err(e)
                    if attempts < 50 && e.to_string().contains("being accessed by other users") =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("creating the test database"),
            }
        }
        admin.close().await.ok();
        Ok(TestDb { name, admin_url })
    }

    /// Connection URL of this test's database (as the owner).
    pub fn url(&self) -> String {
        let opts = with_database(&self.admin_url, &self.name).expect("valid url");
        let mut url = format!(
            "postgres://{}@{}:{}/{}",
            opts.get_username(),
            opts.get_host(),
            opts.get_port(),
            self.name
        );
        if self.admin_url.contains('?') {
            url.push_str(&self.admin_url[self.admin_url.find('?').unwrap_or(0)..]);
        }
        url
    }

    /// A pool connected as the database owner (bypasses the app role).
    pub async fn owner_pool(&self) -> Result<PgPool> {
        Ok(dossier_store::connect_owner(&self.url(), 4).await?)
    }

    /// A pool running as the restricted application role, like the service.
    pub async fn app_pool(&self) -> Result<PgPool> {
        Ok(dossier_store::connect_app(&self.url(), 16).await?)
    }

    /// A store (with its writer task) on the application role.
    pub async fn store(&self) -> Result<dossier_store::Store> {
        Ok(dossier_store::Store::new(self.app_pool().await?))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("DOSSIER_KEEP_TEST_DB").is_some() {
            eprintln!("keeping test database {}", self.name);
            return;
        }
        let admin_url = self.admin_url.clone();
        let drop_sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop may run inside a runtime that is shutting down: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                admin.execute(drop_sql.as_str()).await.ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}
