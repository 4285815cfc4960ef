use dossier_chain::Actor;
use dossier_store::{AppendRequest, ExpectedVersion, NewEvent};
use dossier_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "CustomerRegistered".into(),
        schema_version: 1,
        effective_at: None,
        actor: Actor {
            id: Uuid::nil(),
            name: "tester".into(),
            role: "admin".into(),
        },
        reason: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        payload: json!({"n": n}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_then_verify() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let s = Uuid::now_v7();
    let a = store
        .append(AppendRequest {
            stream_id: s,
            expected: ExpectedVersion::NoStream,
            events: vec![event(1), event(2)],
            idempotency: None,
        })
        .await?;
    assert_eq!((a.first_seq, a.last_seq, a.version), (1, 2, 2));
    let mut handles = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .append(AppendRequest {
                    stream_id: Uuid::now_v7(),
                    expected: ExpectedVersion::NoStream,
                    events: vec![event(i)],
                    idempotency: None,
                })
                .await
        }));
    }
    for h in handles {
        h.await??;
    }
    let verified = store.verify(|_| {}).await??;
    assert_eq!(verified.head_seq, 52);
    assert_eq!(store.read_stream(s, None).await?.len(), 2);
    Ok(())
}
