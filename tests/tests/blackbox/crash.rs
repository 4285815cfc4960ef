//! SIGKILL under load loses no acknowledged write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{describe, id_seq, person_name, Env, Server};

const CLIENTS: usize = 16;
/// Creates per client at most (bounds the load if the server is fast).
const MAX_PER_CLIENT: usize = 2_000;
/// Load runs at least this long before the kill...
const LOAD_AT_LEAST: Duration = Duration::from_millis(1_500);
/// ...and the kill waits for this many acknowledgements, but no longer than LOAD_AT_MOST.
const MIN_ACKS: usize = 50;
const LOAD_AT_MOST: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let token = env.token("t", "sales").await?;
    let server = Arc::new(env.serve(&token).await?);

    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let ack_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (server, acked, ack_count, stop) = (
            server.clone(),
            acked.clone(),
            ack_count.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            for i in 0..MAX_PER_CLIENT {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(r) = server
                    .create_person(&person_name(client * MAX_PER_CLIENT + i), "load")
                    .await
                else {
                    // The server is gone: this request was not acknowledged.
                    break;
                };
                let status = r.status();
                // 5xx can happen while the server dies; anything else is a bug.
                assert!(
                    status == StatusCode::CREATED || status.is_server_error(),
                    "create answered {status}: {}",
                    r.text().await.unwrap_or_default()
                );
                if status != StatusCode::CREATED {
                    continue;
                }
                // Only a complete 201 response counts as acknowledged.
                let Ok(body) = r.json::<Value>().await else {
                    break;
                };
                let pair = id_seq(&body).expect("201 body has id and seq");
                acked.lock().unwrap().push(pair);
                ack_count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let started = Instant::now();
    while started.elapsed() < LOAD_AT_LEAST
        || (ack_count.load(Ordering::Relaxed) < MIN_ACKS && started.elapsed() < LOAD_AT_MOST)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before_kill = ack_count.load(Ordering::Relaxed);
    // Kill while the clients are still sending; then let them notice.
    server.sigkill()?;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(60), c).await??;
    }
    let server = Arc::into_inner(server).expect("the clients are done with the server");
    let status = server.wait_killed().await?;
    assert!(!status.success(), "a SIGKILLed server cannot exit 0");
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        before_kill > 0 && !acked.is_empty(),
        "no create was acknowledged before the kill"
    );
    eprintln!(
        "{} creates acknowledged ({} before the kill was decided)",
        acked.len(),
        before_kill
    );

    // Every acknowledged write survives: readable after a restart...
    let server = env.serve(&token).await?;
    check_readable(&server, &acked).await?;
    let head = server.head().await?;
    let max_acked = acked.iter().map(|(_, s)| *s).max().unwrap_or(0);
    assert!(head["seq"].as_i64().unwrap_or(0) >= max_acked, "{head}");
    let status = server.terminate().await?;
    assert!(status.success(), "restarted serve exited with {status}");

    // ...the chain verifies...
    let out = env.run(&["verify"]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));

    // ...and the export holds each acknowledged event for its customer.
    let file = env.state_dir.join("export.jsonl");
    let file_arg = file.to_str().expect("utf-8 path");
    env.run_ok(&["export", "--out", file_arg]).await?;
    let exported: HashMap<i64, String> = std::fs::read_to_string(&file)?
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("export line is JSON");
            (
                v["seq"].as_i64().expect("seq"),
                v["stream_id"].as_str().expect("stream_id").to_owned(),
            )
        })
        .collect();
    for (id, seq) in &acked {
        assert_eq!(
            exported.get(seq),
            Some(id),
            "acknowledged seq {seq} of customer {id} is not in the export"
        );
    }
    Ok(())
}

/// GET each acknowledged customer with min_seq (retrying while the read
/// model catches up after the restart): 200, and at that seq.
async fn check_readable(server: &Server, acked: &[(String, i64)]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for (id, seq) in acked {
        loop {
            let r = server
                .client
                .get(server.url(&format!("/v1/customers/{id}?min_seq={seq}")))
                .send()
                .await?;
            let status = r.status();
            if status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let body: Value = r.json().await?;
            assert_eq!(status, StatusCode::OK, "customer {id} (seq {seq}): {body}");
            assert_eq!(body["id"], id.as_str());
            assert_eq!(body["last_seq"], *seq, "{body}");
            break;
        }
    }
    Ok(())
}
