//! `dossier projections rebuild` (all at once) against a running server:
//! the server keeps answering from the swapped-in models, and its projectors
//! go on from the rebuilt head.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{person_name, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_all_while_the_server_runs() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let token = env.token("t", "sales").await?;
    let server = env.serve(&token).await?;
    let c = &server.client;
    let mut ids = Vec::new();
    let mut last = 0;
    for n in 0..5 {
        let (id, seq) = server.create_ok(&person_name(n), "walk-in").await?;
        ids.push(id);
        last = seq;
    }
    let r = c
        .get(server.url(&format!("/v1/customers/{}?min_seq={last}", ids[4])))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);

    let out = env.run_ok(&["projections", "rebuild"]).await?;
    assert!(out.contains("rebuilt all projections to seq"), "{out}");
    assert!(out.contains("5 customers"), "{out}");
    let parts = out
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "writing, largest parts first (connection-seconds, two connections at once): ",
            )
        })
        .unwrap_or_else(|| panic!("no breakdown: {out}"));
    for part in parts.split(", ") {
        let (name, secs) = part.rsplit_once(' ').expect("name and seconds");
        assert!(!name.is_empty() && secs.parse::<f64>().is_ok(), "{part}");
    }
    assert_eq!(parts.split(", ").count(), 12, "{parts}");

    // The list comes from the rebuilt models.
    let r = c.get(server.url("/v1/customers?limit=50")).send().await?;
    assert_eq!(r.status(), StatusCode::OK);
    let page: Value = r.json().await?;
    let mut listed: Vec<String> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);

    // A write after the rebuild is projected by the running server.
    let (id, seq) = server.create_ok(&person_name(9), "walk-in").await?;
    let r = c
        .get(server.url(&format!("/v1/customers/{id}?min_seq={seq}")))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await?);

    let status = env.run_ok(&["projections", "status"]).await?;
    for name in [
        "customer_current",
        "customer_tier",
        "customer_risk",
        "follow_ups",
    ] {
        assert!(status.contains(name), "{status}");
    }
    server.terminate().await?;
    Ok(())
}
