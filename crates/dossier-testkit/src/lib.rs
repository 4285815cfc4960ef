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

/// `url` naming database `db`; user, password, host, port and parameters are
/// kept as written.
fn url_for_database(url: &str, db: &str) -> Result<String> {
    let mut url = url::Url::parse(url).context("not a valid postgres URL")?;
    url.set_path(db);
    // A `dbname` parameter overrides the path (sqlx reads parameters last).
    if url.query_pairs().any(|(k, _)| k == "dbname") {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "dbname" {
                    db.into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Ok(url.into())
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

    /// Connection URL of this test's database (as the owner): the server's URL
    /// with only the database changed, so a password or parameters in
    /// `DATABASE_URL` are kept.
    pub fn url(&self) -> String {
        url_for_database(&self.admin_url, &self.name).expect("the admin URL parsed before")
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

#[cfg(test)]
mod tests {
    use super::url_for_database;

    #[test]
    fn url_keeps_password_and_parameters() {
        assert_eq!(
            url_for_database(
                "postgres://app:s%40cret@db.example:6543/postgres?sslmode=require&application_name=ci",
                "dossier_test_1"
            )
            .unwrap(),
            "postgres://app:s%40cret@db.example:6543/dossier_test_1?sslmode=require&application_name=ci"
        );
    }

    #[test]
    fn url_without_database_or_port_gets_one() {
        assert_eq!(
            url_for_database("postgres://postgres:pw@127.0.0.1", "t").unwrap(),
            "postgres://postgres:pw@127.0.0.1/t"
        );
    }

    #[test]
    fn url_dbname_parameter_names_the_test_database() {
        assert_eq!(
            url_for_database(
                "postgres:///postgres?host=/run/postgresql&dbname=postgres",
                "t"
            )
            .unwrap(),
            "postgres:///t?host=%2Frun%2Fpostgresql&dbname=t"
        );
    }

    #[test]
    fn url_parses_back_to_the_same_server() {
        let url = url_for_database("postgres://u:p@h:1/postgres?sslmode=disable", "t").unwrap();
        let opts: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        assert_eq!(
            (opts.get_username(), opts.get_host(), opts.get_port()),
            ("u", "h", 1)
        );
        assert_eq!(opts.get_database(), Some("t"));
    }
}
