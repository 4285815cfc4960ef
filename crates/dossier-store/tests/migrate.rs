//! Migrations: applied once, idempotent on re-run, safe to run concurrently,
//! and an applied migration that was edited afterwards is refused.

mod common;

use common::{events, read_all, req};
use dossier_store::{migrate, ExpectedVersion, StoreError, MIGRATIONS};
use dossier_testkit::TestDb;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool, Row};
use uuid::Uuid;

async fn applied(
    pool: &PgPool,
) -> anyhow::Result<Vec<(String, Vec<u8>, chrono::DateTime<chrono::Utc>)>> {
    Ok(
        sqlx::query("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.get("version"), r.get("checksum"), r.get("applied_at")))
            .collect(),
    )
}

/// An empty database beside the test's own, to migrate from scratch.
struct EmptyDb {
    admin: PgPool,
    name: String,
}

impl EmptyDb {
    async fn create(db: &TestDb, suffix: &str) -> anyhow::Result<EmptyDb> {
        let admin = db.owner_pool().await?;
        let name = format!("{}_{suffix}", db.name);
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        Ok(EmptyDb { admin, name })
    }

    fn options(&self, db: &TestDb) -> anyhow::Result<PgConnectOptions> {
        Ok(db.url().parse::<PgConnectOptions>()?.database(&self.name))
    }

    /// A one-connection pool on this database, left as a release before
    /// `version` left it: every migration before it applied and recorded.
    async fn before(&self, db: &TestDb, version: &str) -> anyhow::Result<PgPool> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(self.options(db)?)
            .await?;
        pool.execute(
            "CREATE TABLE schema_migrations (version text PRIMARY KEY, checksum bytea NOT NULL,
                                             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let split = MIGRATIONS
            .iter()
            .position(|(v, _)| *v == version)
            .expect("the migration is listed");
        for (version, sql) in &MIGRATIONS[..split] {
            pool.execute(*sql).await?;
            sqlx::query("INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)")
                .bind(version)
                .bind(Sha256::digest(sql.as_bytes()).to_vec())
                .execute(&pool)
                .await?;
        }
        Ok(pool)
    }

    async fn drop(self) -> anyhow::Result<()> {
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await?;
        Ok(())
    }
}

fn expected_rows() -> Vec<(String, Vec<u8>)> {
    let mut rows: Vec<(String, Vec<u8>)> = MIGRATIONS
        .iter()
        .map(|(v, sql)| (v.to_string(), Sha256::digest(sql.as_bytes()).to_vec()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_migrate_again_is_a_no_op() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let owner = db.owner_pool().await?;
    let store = db.store().await?;
    store
        .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, events(3)))
        .await?;
    let before = applied(&owner).await?;
    assert_eq!(
        before
            .iter()
            .map(|(v, c, _)| (v.clone(), c.clone()))
            .collect::<Vec<_>>(),
        expected_rows()
    );
    let log = read_all(&store).await?;

    migrate(&owner).await?;
    migrate(&owner).await?;

    assert_eq!(applied(&owner).await?, before, "nothing is re-applied");
    assert_eq!(read_all(&store).await?, log, "the log is untouched");
    store
        .append(req(Uuid::now_v7(), ExpectedVersion::NoStream, events(1)))
        .await?;
    store.verify(|_| {}).await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_migration_is_refused() -> anyhow::Result<()> {
    for (version, _) in MIGRATIONS {
        let db = TestDb::new().await?;
        let owner = db.owner_pool().await?;
        sqlx::query("UPDATE schema_migrations SET checksum = $1 WHERE version = $2")
            .bind(vec![0u8; 32])
            .bind(version)
            .execute(&owner)
            .await?;
        match migrate(&owner).await {
            Err(StoreError::Migration(msg)) => {
                assert!(msg.contains("edited"), "{msg}");
                assert!(msg.contains(version), "{msg}");
            }
            other => panic!("expected a migration error for {version}, got {other:?}"),
        }
        // The failed run released its lock: a later run fails the same way, not by hanging.
        assert!(matches!(
            migrate(&owner).await,
            Err(StoreError::Migration(_))
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_newer_than_the_build_is_refused() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let owner = db.owner_pool().await?;
    sqlx::query(
        "INSERT INTO schema_migrations (version, checksum) VALUES ('9999_from_the_future', $1)",
    )
    .bind(vec![1u8; 32])
    .execute(&owner)
    .await?;
    match migrate(&owner).await {
        Err(StoreError::Migration(msg)) => assert!(msg.contains("9999_from_the_future"), "{msg}"),
        other => panic!("expected a migration error, got {other:?}"),
    }
    Ok(())
}

/// Several processes migrating one empty database at once: every run
/// succeeds and each migration is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_of_an_empty_database_apply_once() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let empty = EmptyDb::create(&db, "fresh").await?;
    let result = async {
        let opts = empty.options(&db)?;
        let mut pools = Vec::new();
        for _ in 0..4 {
            pools.push(
                PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts.clone())
                    .await?,
            );
        }
        let mut handles = Vec::new();
        for pool in &pools {
            let pool = pool.clone();
            handles.push(tokio::spawn(async move { migrate(&pool).await }));
        }
        for h in handles {
            h.await??;
        }
        let rows = applied(&pools[0]).await?;
        assert_eq!(
            rows.into_iter().map(|(v, c, _)| (v, c)).collect::<Vec<_>>(),
            expected_rows()
        );
        let head: i64 = sqlx::query_scalar("SELECT seq FROM chain_head")
            .fetch_one(&pools[0])
            .await?;
        assert_eq!(head, 0);
        for pool in pools {
            pool.close().await;
        }
        anyhow::Ok(())
    }
    .await;
    empty.drop().await?;
    result
}

/// 0008 moves the search terms of existing `customer_list` rows into
/// `customer_search` and leaves the other facets where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0008_moves_search_terms_out_of_the_list() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let empty = EmptyDb::create(&db, "m8").await?;
    let result = async {
        let pool = empty.before(&db, "0008_customer_search").await?;
        let (person, pending) = (Uuid::new_v4(), Uuid::new_v4());
        sqlx::query(
            "INSERT INTO customer_list (customer_id, archived, name_key, base_facets, tier_facets)
             VALUES ($1, false, 'li wei', ARRAY['kind:person', 'q:li', 'q:wei', 'm:we', 'm:wei', 'tag:q:x'],
                     ARRAY['importance:general']),
                    ($2, NULL, NULL, NULL, ARRAY['importance:general'])",
        )
        .bind(person)
        .bind(pending)
        .execute(&pool)
        .await?;
        migrate(&pool).await?;
        let (facets, tier): (Vec<String>, Vec<String>) = sqlx::query_as(
            "SELECT base_facets, tier_facets FROM customer_list WHERE customer_id = $1",
        )
        .bind(person)
        .fetch_one(&pool)
        .await?;
        assert_eq!(facets, ["kind:person", "tag:q:x"]);
        assert_eq!(tier, ["importance:general"]);
        let rows: Vec<(Uuid, String, Vec<String>)> =
            sqlx::query_as("SELECT customer_id, name_key, terms FROM customer_search")
                .fetch_all(&pool)
                .await?;
        assert_eq!(
            rows,
            [(
                person,
                "li wei".to_owned(),
                vec!["q:li".to_owned(), "q:wei".to_owned(), "m:we".to_owned()]
            )],
            "a row not yet projected by customer_current gets no search row; \
             `m:` entries of more than two characters are dropped"
        );
        pool.close().await;
        anyhow::Ok(())
    }
    .await;
    empty.drop().await?;
    result
}

/// 0009 stores the read models' documents as text: the content is kept
/// (jsonb's rendering of the same document) and the current row's copies of
/// `details` and `contacts` are gone (they are keys of `file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0009_keeps_the_read_models_documents_as_text() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let empty = EmptyDb::create(&db, "m9").await?;
    let result = async {
        let pool = empty.before(&db, "0009_read_model_documents_text").await?;
        let id = Uuid::new_v4();
        let file = r#"{"kind": "person", "details": {"name": "李伟"}, "contacts": {}}"#;
        sqlx::query(
            "INSERT INTO customer_current (customer_id, kind, details, contacts, version, last_seq, last_hash,
                                           created_at, updated_at, file)
             VALUES ($1, 'person', '{\"name\": \"李伟\"}', '{}', 1, 1, '\\x00', now(), now(), $2::jsonb)",
        )
        .bind(id)
        .bind(file)
        .execute(&pool)
        .await?;
        sqlx::query(
            "INSERT INTO customer_tier (customer_id, value_tier, importance, importance_source, lifecycle, inputs,
                                        rules_version, evaluated_on, changed_seq, state)
             VALUES ($1, 'A', 'general', 'rules', 'new', '{\"b\": 2, \"a\": \"1.00\"}', 'v1', '2026-01-01', 1,
                     '{\"value_tier\": \"A\"}')",
        )
        .bind(id)
        .execute(&pool)
        .await?;
        sqlx::query(
            "INSERT INTO customer_risk_history (customer_id, seq, level, reasons, rules_version, evaluated_on)
             VALUES ($1, 1, 'high', '[{\"signal\": \"overdue\", \"evidence\": [1]}]', 'v1', '2026-01-01')",
        )
        .bind(id)
        .execute(&pool)
        .await?;
        migrate(&pool).await?;
        let types: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND data_type IN ('jsonb', 'json') ORDER BY 1, 2",
        )
        .fetch_all(&pool)
        .await?;
        let read_models: Vec<_> = types
            .iter()
            .filter(|(t, _, _)| t.starts_with("customer_") || t.starts_with("follow_up"))
            .collect();
        assert!(read_models.is_empty(), "read-model jsonb left: {read_models:?}");
        let (kept, gone): (String, i64) = sqlx::query_as(
            "SELECT file, (SELECT count(*) FROM information_schema.columns
                           WHERE table_name = 'customer_current' AND column_name IN ('details', 'contacts'))
             FROM customer_current WHERE customer_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await?;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&kept)?,
            serde_json::from_str::<serde_json::Value>(file)?
        );
        assert_eq!(gone, 0);
        let (inputs, state): (String, String) =
            sqlx::query_as("SELECT inputs, state FROM customer_tier WHERE customer_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
        assert_eq!(inputs, r#"{"a": "1.00", "b": 2}"#, "jsonb's rendering");
        assert_eq!(state, r#"{"value_tier": "A"}"#);
        let reasons: String = sqlx::query_scalar("SELECT reasons FROM customer_risk_history")
            .fetch_one(&pool)
            .await?;
        assert_eq!(reasons, r#"[{"signal": "overdue", "evidence": [1]}]"#);
        pool.close().await;
        anyhow::Ok(())
    }
    .await;
    empty.drop().await?;
    result
}
