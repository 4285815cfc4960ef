//! The happy path over real TCP, a graceful shutdown, then `verify`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{describe, id_seq, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_over_tcp() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let token = env.token("t", "sales").await?;
    let server = env.serve(&token).await?;
    let c = &server.client;

    // Create.
    let r = server.create_person("王小明", "walk-in").await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let location = r.headers()["location"].to_str()?.to_owned();
    let body: Value = r.json().await?;
    let (id, seq) = id_seq(&body)?;
    assert_eq!(location, format!("/v1/customers/{id}"));
    assert_eq!(body["version"], 1);

    // Read your write.
    let r = c
        .get(server.url(&format!("/v1/customers/{id}?min_seq={seq}")))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "\"1\"");
    let file: Value = r.json().await?;
    assert_eq!(file["id"], id.as_str());
    assert_eq!(file["details"]["name"], "王小明");
    assert_eq!(file["details"]["phone"], "+8613812345678");
    assert_eq!(file["last_seq"], seq);

    // Change it, with If-Match.
    let r = c
        .patch(server.url(&format!("/v1/customers/{id}")))
        .header("If-Match", "\"1\"")
        .json(&json!({"reason": "customer called", "details": {"phone": "13987654321"}}))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let body: Value = r.json().await?;
    assert_eq!(body["version"], 2);
    let (_, seq2) = id_seq(&body)?;
    assert!(seq2 > seq);

    // History: who changed what and why.
    let r = c
        .get(server.url(&format!("/v1/customers/{id}/history")))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let history: Value = r.json().await?;
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "{history}");
    assert_eq!(entries[1]["version"], 2);
    assert_eq!(entries[1]["seq"], seq2);
    assert_eq!(entries[1]["reason"], "customer called");
    assert_eq!(entries[1]["actor"]["name"], "t");
    let changes = entries[1]["changes"].as_array().expect("changes");
    assert!(
        changes.iter().any(|ch| ch["field"] == "phone"
            && ch["before"] == "+8613812345678"
            && ch["after"] == "+8613987654321"),
        "{history}"
    );

    // The chain head is the last write.
    let head = server.head().await?;
    assert_eq!(head["seq"], seq2);
    assert_eq!(head["format"], "dossier-chain/1");
    let head_hash = head["hash"].as_str().expect("hash").to_owned();

    // SIGTERM: a graceful shutdown exits 0.
    let status = server.terminate().await?;
    assert!(status.success(), "serve exited with {status} after SIGTERM");

    // Offline verification agrees with the head the server reported.
    let out = env.run(&["verify"]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));
    let stdout = String::from_utf8(out.stdout)?;
    assert!(stdout.starts_with("OK head_seq="), "{stdout}");
    assert!(
        stdout.starts_with(&format!("OK head_seq={seq2} head_hash={head_hash} ")),
        "{stdout}"
    );
    Ok(())
}
