use dossier_store::{Role, StoreError};
use dossier_testkit::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_are_found_by_token_digest_and_names_are_unique() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let p = store
        .create_principal("alice", Role::Sales, &[1; 32])
        .await?;
    assert_eq!(store.principal_by_token(&[1; 32]).await?, Some(p));
    assert_eq!(store.principal_by_token(&[2; 32]).await?, None);
    let again = store.create_principal("alice", Role::Admin, &[3; 32]).await;
    assert!(
        matches!(again, Err(StoreError::PrincipalExists(ref n)) if n == "alice"),
        "{again:?}"
    );
    Ok(())
}
