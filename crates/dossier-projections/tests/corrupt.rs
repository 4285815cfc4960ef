//! A read-model row that cannot be read back is an error for the reader and
//! for the projector, never empty data: rows damaged as the database owner.

mod common;

use std::collections::BTreeMap;

use dossier_projections::{
    read_current, read_risk, read_tier, risk_history, step, tier_history, CustomerCurrent,
    ProjectionError,
};
use dossier_service::{ChangeInput, RegisterInput, WriteMeta};
use dossier_store::Role;
use uuid::Uuid;

use common::Base;

fn meta() -> WriteMeta {
    WriteMeta {
        reason: Some("corrupt-row test".into()),
        ..WriteMeta::default()
    }
}

/// A customer registered and projected by every projection.
async fn projected_customer(b: &Base) -> anyhow::Result<Uuid> {
    let mut details = BTreeMap::new();
    details.insert("name".to_owned(), "ACME Ltd".to_owned());
    details.insert("region".to_owned(), "north".to_owned());
    let out = b
        .service
        .register(
            &b.principal,
            RegisterInput {
                kind: "company".into(),
                details,
                force: true,
                ..Default::default()
            },
            meta(),
        )
        .await?;
    for p in dossier_projections::all(&b.keyring, &b.store) {
        while step(&b.store, &p).await? > 0 {}
    }
    Ok(out.customer_id)
}

async fn damage(b: &Base, sql: &str, id: Uuid) -> anyhow::Result<()> {
    let owner = b.db.owner_pool().await?;
    let n = sqlx::query(sql)
        .bind(id)
        .execute(&owner)
        .await?
        .rows_affected();
    assert!(n > 0, "{sql} changed nothing");
    owner.close().await;
    Ok(())
}

fn assert_corrupt<T: std::fmt::Debug>(
    got: Result<T, ProjectionError>,
    table: &str,
    id: Uuid,
    column: &str,
) {
    match got {
        Err(ProjectionError::Corrupt {
            table: t,
            customer_id,
            detail,
        }) => {
            assert_eq!((t, customer_id), (table, id));
            assert!(detail.starts_with(column), "{detail}");
        }
        other => panic!("expected Corrupt for {table}.{column}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_current_file_is_an_error() -> anyhow::Result<()> {
    let b = Base::new(Role::Admin).await?;
    let id = projected_customer(&b).await?;
    let row = read_current(&b.store, id).await?.expect("projected");
    assert_eq!(row.details["region"], "north");

    for bad in ["{\"details\": {", "[]", "\"a string\""] {
        damage(
            &b,
            &format!("UPDATE customer_current SET file = '{bad}' WHERE customer_id = $1"),
            id,
        )
        .await?;
        assert_corrupt(
            read_current(&b.store, id).await,
            "customer_current",
            id,
            "file",
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_current_file_still_reads_as_empty() -> anyhow::Result<()> {
    // A row written before migration 0004 has no file until it is projected
    // again (migration 0009): that is a state, not damage.
    let b = Base::new(Role::Admin).await?;
    let id = projected_customer(&b).await?;
    damage(
        &b,
        "UPDATE customer_current SET file = NULL WHERE customer_id = $1",
        id,
    )
    .await?;
    let row = read_current(&b.store, id).await?.expect("row");
    assert_eq!(row.details, serde_json::json!({}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_stops_at_an_unreadable_file_instead_of_overwriting_it() -> anyhow::Result<()>
{
    let b = Base::new(Role::Admin).await?;
    let id = projected_customer(&b).await?;
    damage(
        &b,
        "UPDATE customer_current SET file = 'not json' WHERE customer_id = $1",
        id,
    )
    .await?;
    let version = b.store.stream_version(id).await?;
    b.service
        .change(
            &b.principal,
            id,
            version,
            ChangeInput {
                owner: Some("alice".into()),
                ..ChangeInput::default()
            },
            meta(),
        )
        .await?;
    let current = CustomerCurrent::new(b.store.clone(), b.keyring.clone());
    let before = dossier_projections::checkpoint(&b.store, "customer_current").await?;
    assert_corrupt(
        step(&b.store, &current).await,
        "customer_current",
        id,
        "file",
    );
    assert_eq!(
        dossier_projections::checkpoint(&b.store, "customer_current").await?,
        before,
        "nothing committed"
    );
    let file: String =
        sqlx::query_scalar("SELECT file FROM customer_current WHERE customer_id = $1")
            .bind(id)
            .fetch_one(b.store.pool())
            .await?;
    assert_eq!(file, "not json", "the damaged row is left for a rebuild");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_tier_and_risk_documents_are_errors() -> anyhow::Result<()> {
    let b = Base::new(Role::Admin).await?;
    let id = projected_customer(&b).await?;
    assert!(read_tier(&b.store, id).await?.is_some());
    assert!(read_risk(&b.store, id).await?.is_some());
    assert!(!tier_history(&b.store, id).await?.is_empty());
    assert!(!risk_history(&b.store, id).await?.is_empty());

    for (table, column) in [
        ("customer_tier", "inputs"),
        ("customer_tier_history", "inputs"),
        ("customer_risk", "reasons"),
        ("customer_risk_history", "reasons"),
    ] {
        damage(
            &b,
            &format!("UPDATE {table} SET {column} = '{{' WHERE customer_id = $1"),
            id,
        )
        .await?;
    }
    assert_corrupt(read_tier(&b.store, id).await, "customer_tier", id, "inputs");
    assert_corrupt(
        tier_history(&b.store, id).await,
        "customer_tier_history",
        id,
        "inputs",
    );
    assert_corrupt(
        read_risk(&b.store, id).await,
        "customer_risk",
        id,
        "reasons",
    );
    assert_corrupt(
        risk_history(&b.store, id).await,
        "customer_risk_history",
        id,
        "reasons",
    );
    Ok(())
}
