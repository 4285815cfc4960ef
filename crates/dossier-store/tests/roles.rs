//! The service's sessions are the restricted role itself, so nothing they run
//! can win back the owner's rights.

use dossier_store::{connect_app_with, AppLogin};
use dossier_testkit::TestDb;
use sqlx::Executor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_sessions_log_in_as_the_app_role_and_cannot_escalate() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let (pool, login) = connect_app_with(&db.url(), None, 2).await?;
    assert_eq!(
        login,
        AppLogin::Direct,
        "trust auth lets dossier_app log in"
    );
    let mut conn = pool.acquire().await?;
    let user: String = sqlx::query_scalar("SELECT session_user::text")
        .fetch_one(&mut *conn)
        .await?;
    assert_eq!(user, "dossier_app");
    conn.execute("RESET ROLE").await?;
    let err = conn
        .execute("UPDATE events SET event_type = 'x'")
        .await
        .expect_err("the app role must not update the log");
    assert!(err.to_string().contains("permission denied"), "{err}");
    let err = conn
        .execute("SET ROLE postgres")
        .await
        .expect_err("the app role must not become the owner");
    assert!(err.to_string().contains("permission denied"), "{err}");
    Ok(())
}
