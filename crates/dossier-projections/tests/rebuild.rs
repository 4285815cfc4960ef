//! How a full rebuild (`rebuild_all`) replaces the read-model tables: the
//! new tables are defined exactly as the old ones (columns, constraints,
//! indexes, storage options, owner, grants), what an interrupted rebuild
//! left behind does not stop the next one, a reader in the swap's way is
//! answered, not cancelled, and the projectors keep running during a
//! rebuild, whose new tables then hold what they applied meanwhile.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dossier_projections::{catch_up, reset, step, Projection, ProjectionError, NAMES};
use dossier_service::{RegisterInput, Service, WriteMeta};
use dossier_store::{Keyring, Role, Store};
use dossier_testkit::TestDb;
use sqlx::PgPool;

use common::{Base, READ_MODEL_TABLES};

const TABLES: &[&str] = READ_MODEL_TABLES;

fn meta() -> WriteMeta {
    WriteMeta {
        reason: Some("rebuild test".into()),
        ..WriteMeta::default()
    }
}

/// A database with a few customers, projected.
struct Book {
    db: TestDb,
    store: Store,
    keyring: Keyring,
}

impl Book {
    async fn new() -> anyhow::Result<Book> {
        let Base {
            db,
            store,
            keyring,
            service,
            principal: admin,
        } = Base::new(Role::Admin).await?;
        for (name, kind) in [
            ("华为技术有限公司", "company"),
            ("Li Si", "person"),
            ("ACME Ltd", "company"),
        ] {
            let details = BTreeMap::from([("name".to_owned(), name.to_owned())]);
            let input = RegisterInput {
                kind: kind.to_owned(),
                details,
                owner: Some("alice".to_owned()),
                tags: vec!["vip".to_owned()],
                force: false,
            };
            service.register(&admin, input, meta()).await?;
        }
        for p in dossier_projections::all(&keyring, &store) {
            while step(&store, &p).await? > 0 {}
        }
        Ok(Book { db, store, keyring })
    }

    async fn rebuild_all(&self) -> anyhow::Result<()> {
        let owner = Store::new(self.db.owner_pool().await?);
        let report = dossier_projections::rebuild_all(&owner, &self.keyring, |_, _| {}).await?;
        assert_eq!(report.head, self.store.head().await?.seq);
        owner.pool().close().await;
        Ok(())
    }

    /// Every row of every read-model table.
    async fn rows(&self, pool: &PgPool) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for t in TABLES {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT '{t} ' || r::text FROM {t} r ORDER BY 1"))
                    .fetch_all(pool)
                    .await?;
            out.extend(rows);
        }
        Ok(out)
    }
}

/// Every table, index and schema of the database as the catalog defines
/// them: columns in order (type, NOT NULL, default, generated), constraints,
/// indexes, storage options, owner and grants; physical details (OIDs,
/// column numbers) left out.
async fn definitions(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT format('table %s.%s owner %s options %s grants %s columns %s', n.nspname, c.relname,
                       c.relowner::regrole, c.reloptions,
                       (SELECT string_agg(format('%s:%s:%s', a.grantee::regrole, a.privilege_type,
                                                 a.is_grantable), ',' ORDER BY 1)
                        FROM aclexplode(c.relacl) a),
                       (SELECT string_agg(format('%s %s notnull=%s default=%s generated=%s', a.attname,
                                                 format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                                 pg_get_expr(d.adbin, d.adrelid), a.attgenerated),
                                          ', ' ORDER BY a.attnum)
                        FROM pg_attribute a
                        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION ALL
         SELECT format('constraint %s on %s: %s', k.conname, k.conrelid::regclass, pg_get_constraintdef(k.oid))
         FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
         UNION ALL
         SELECT format('index %s', pg_get_indexdef(i.indexrelid))
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
         UNION ALL
         SELECT format('schema %s', nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

async fn table_oids(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let tables: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
    Ok(
        sqlx::query_scalar("SELECT t::regclass::oid::int8 FROM unnest($1::text[]) AS t")
            .bind(&tables)
            .fetch_all(pool)
            .await?,
    )
}

/// The rebuild swaps in new tables, defined exactly as the ones they
/// replace, and leaves nothing of its own behind; the service's role can
/// still read and write them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_tables_are_defined_as_the_old_ones() -> anyhow::Result<()> {
    let book = Book::new().await?;
    let owner = book.db.owner_pool().await?;
    let (defined, oids, rows) = (
        definitions(&owner).await?,
        table_oids(&owner).await?,
        book.rows(&owner).await?,
    );
    assert!(
        defined.iter().any(|d| d.contains("fillfactor=85")),
        "{defined:#?}"
    );
    assert!(
        defined.iter().any(|d| d.contains("dossier_app:INSERT")),
        "{defined:#?}"
    );

    book.rebuild_all().await?;
    let after = definitions(&owner).await?;
    let changed: Vec<_> = defined
        .iter()
        .filter(|d| !after.contains(d))
        .chain(after.iter().filter(|d| !defined.contains(d)))
        .collect();
    assert!(changed.is_empty(), "{changed:#?}");
    let new_oids = table_oids(&owner).await?;
    assert!(
        oids.iter().zip(&new_oids).all(|(a, b)| a != b),
        "not replaced"
    );
    assert_eq!(book.rows(&owner).await?, rows);

    // The service (its own role) projects into the new tables.
    let service = Service::new(book.store.clone(), book.keyring.clone());
    let (admin, _) = service.create_token("admin2", Role::Admin).await?;
    let input = RegisterInput {
        kind: "person".to_owned(),
        details: BTreeMap::from([("name".to_owned(), "Wang Wu".to_owned())]),
        owner: None,
        tags: Vec::new(),
        force: false,
    };
    service.register(&admin, input, meta()).await?;
    for p in dossier_projections::all(&book.keyring, &book.store) {
        assert!(step(&book.store, &p).await? > 0, "{}", p.name());
    }
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_list")
        .fetch_one(book.store.pool())
        .await?;
    assert_eq!(listed, 4);
    Ok(())
}

/// Copies an interrupted rebuild left in its schema are dropped by the
/// next rebuild, which then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebuild_leaves_nothing_in_the_way() -> anyhow::Result<()> {
    let book = Book::new().await?;
    let owner = book.db.owner_pool().await?;
    let rows = book.rows(&owner).await?;
    sqlx::raw_sql(
        "CREATE SCHEMA dossier_rebuild;
         CREATE TABLE dossier_rebuild.customer_current (half_written int);
         INSERT INTO dossier_rebuild.customer_current VALUES (1)",
    )
    .execute(&owner)
    .await?;
    book.rebuild_all().await?;
    assert_eq!(book.rows(&owner).await?, rows);
    let left: Option<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = 'dossier_rebuild'",
    )
    .fetch_optional(&owner)
    .await?;
    assert_eq!(left, None);
    Ok(())
}

/// A reader holding one read-model table and then asking for another
/// while the swap waits for the first would close a lock cycle with the
/// swap; PostgreSQL would cancel one of them, the reader if its deadlock
/// check runs first (here it would: its `deadlock_timeout` is set below the
/// server's). The swap waits only a bounded time for its locks, gives way
/// and tries again: the reader gets its answer, the rebuild succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_in_the_way_of_the_swap_is_not_cancelled() -> anyhow::Result<()> {
    let book = Book::new().await?;
    let owner = book.db.owner_pool().await?;
    let rows = book.rows(&owner).await?;
    let mut reader = owner.begin().await?;
    // Needs a superuser, as the test database's owner is.
    sqlx::query("SET LOCAL deadlock_timeout = '600ms'")
        .execute(&mut *reader)
        .await?;
    sqlx::query("SELECT count(*) FROM customer_search")
        .execute(&mut *reader)
        .await?;
    let rebuild = tokio::spawn(async move {
        book.rebuild_all().await?;
        anyhow::Ok(book)
    });
    // The swap holds the tables before customer_search and waits for it.
    let started = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE %customer_search%'",
        )
        .fetch_one(&owner)
        .await?;
        if waiting == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the swap never waited"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let read = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM customer_current")
        .fetch_one(&mut *reader)
        .await;
    assert_eq!(read?, 3, "the reader should have been answered");
    // Still waiting for the reader to finish.
    assert!(!rebuild.is_finished());
    reader.rollback().await?;
    let book = rebuild.await??;
    assert_eq!(book.rows(&owner).await?, rows);
    let checkpoints: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM projection_checkpoints WHERE name = ANY($1)")
            .bind(NAMES)
            .fetch_all(&owner)
            .await?;
    let head = book.store.head().await?.seq;
    assert_eq!(checkpoints, vec![head; NAMES.len()]);
    Ok(())
}

fn person(name: &str) -> RegisterInput {
    RegisterInput {
        kind: "person".to_owned(),
        details: BTreeMap::from([("name".to_owned(), name.to_owned())]),
        owner: Some("bob".to_owned()),
        tags: Vec::new(),
        force: false,
    }
}

/// Events applied by each projector during a rebuild, or why they were not.
type Applied = Arc<Mutex<Option<Result<Vec<usize>, String>>>>;

/// While the rebuild works (here: right after it folded its snapshot of
/// the log), customers are registered and the projectors apply them to the
/// live tables at once; the rebuild applies them to its new tables before
/// the swap and sets the checkpoints past them, so the swapped-in models
/// are exactly what an incremental rebuild of the whole log gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projectors_keep_running_during_a_rebuild_and_nothing_is_lost() -> anyhow::Result<()> {
    let book = Book::new().await?;
    let service = Service::new(book.store.clone(), book.keyring.clone());
    let (clerk, _) = service.create_token("clerk", Role::Admin).await?;
    let handle = tokio::runtime::Handle::current();
    let (store, keyring) = (book.store.clone(), book.keyring.clone());
    let applied: Applied = Arc::default();
    let out = applied.clone();
    // Called on the fold's own thread, which may block.
    let progress = move |done: i64, snapshot: i64| {
        if done != snapshot || out.lock().unwrap().is_some() {
            return;
        }
        let during = handle.block_on(async {
            for name in ["Zhao Yi", "Zhao Er", "Zhao San"] {
                service.register(&clerk, person(name), meta()).await?;
            }
            let mut applied = Vec::new();
            for p in dossier_projections::all(&keyring, &store) {
                applied.push(step(&store, &p).await?);
            }
            anyhow::Ok(applied)
        });
        *out.lock().unwrap() = Some(during.map_err(|e| format!("{e:#}")));
    };
    let owner = Store::new(book.db.owner_pool().await?);
    let report = dossier_projections::rebuild_all(&owner, &book.keyring, progress).await?;
    let applied = applied
        .lock()
        .unwrap()
        .take()
        .expect("the fold reported")
        .map_err(anyhow::Error::msg)?;
    assert!(applied.iter().all(|n| *n >= 3), "{applied:?}");
    let head = book.store.head().await?.seq;
    assert_eq!(report.head, head);
    assert!(report.snapshot <= head - 3, "{report:?}");
    let checkpoints: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM projection_checkpoints WHERE name = ANY($1)")
            .bind(NAMES)
            .fetch_all(owner.pool())
            .await?;
    assert_eq!(checkpoints, vec![head; NAMES.len()]);
    let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM customer_list")
        .fetch_one(owner.pool())
        .await?;
    assert_eq!(listed, 6);

    let rebuilt = book.rows(owner.pool()).await?;
    for p in dossier_projections::all(&book.keyring, &book.store) {
        reset(&book.store, &p).await?;
        catch_up(&book.store, &p, |_, _| {}).await?;
    }
    assert_eq!(book.rows(owner.pool()).await?, rebuilt);
    Ok(())
}

/// Two full rebuilds of one database never run at once (they would share
/// `dossier_rebuild`): the second fails at once, the first goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rebuild_fails_while_one_runs() -> anyhow::Result<()> {
    let book = Book::new().await?;
    let rows = book.rows(&book.db.owner_pool().await?).await?;
    let (folded, at_fold_end) = std::sync::mpsc::channel::<()>();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    // Holds the first rebuild right after its fold.
    let progress = move |done: i64, snapshot: i64| {
        if done == snapshot {
            let _ = folded.send(());
            let _ = wait.recv();
        }
    };
    let (first_owner, keyring) = (
        Store::new(book.db.owner_pool().await?),
        book.keyring.clone(),
    );
    let first = tokio::spawn(async move {
        dossier_projections::rebuild_all(&first_owner, &keyring, progress).await
    });
    tokio::task::spawn_blocking(move || at_fold_end.recv()).await??;
    let owner = Store::new(book.db.owner_pool().await?);
    let second = dossier_projections::rebuild_all(&owner, &book.keyring, |_, _| {}).await;
    match second {
        Err(ProjectionError::Rebuild(m)) => assert!(m.contains("another full rebuild"), "{m}"),
        other => panic!("the second rebuild ran: {other:?}"),
    }
    go.send(())?;
    first.await??;
    assert_eq!(book.rows(owner.pool()).await?, rows);
    Ok(())
}
