//! What counts as "the database cannot be reached" (503 and retry) rather
//! than a fault of the request: a server shutting down tells each session
//! FATAL 57P01 before it closes it; the next use of that session must be
//! classified as unreachable, as must a refused connection.

use dossier_store::is_unreachable;
use dossier_testkit::TestDb;
use sqlx::{Connection, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_session_and_a_refused_connection_are_unreachable() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let mut victim = PgConnection::connect(&db.url()).await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await?;
    let owner = db.owner_pool().await?;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&owner)
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let err = sqlx::query("SELECT 1")
        .execute(&mut victim)
        .await
        .expect_err("the session was terminated");
    assert!(is_unreachable(&err), "a terminated session: {err:?}");

    // Nothing listens on port 1.
    let refused = PgConnection::connect("postgres://postgres@127.0.0.1:1/x")
        .await
        .expect_err("nothing listens there");
    assert!(
        is_unreachable(&refused),
        "a refused connection: {refused:?}"
    );

    // A query that is wrong is not an outage.
    let bad = sqlx::query("SELECT no_such_column")
        .execute(&owner)
        .await
        .expect_err("no such column");
    assert!(!is_unreachable(&bad), "a bad query: {bad:?}");
    Ok(())
}
