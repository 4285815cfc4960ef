//! The export verifies with the independent Python verifier, and its head is
//! the head the server reports.

use std::process::Stdio;

use crate::common::{describe, person_name, workspace_root, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verifies_with_python() -> anyhow::Result<()> {
    // Fails without python3: a test that skips itself cannot catch a disagreement.
    let python = tokio::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match python {
        Ok(s) if s.success() => {}
        Ok(s) => anyhow::bail!("`python3 --version` exited with {s}: this test needs python3"),
        Err(e) => anyhow::bail!("cannot run python3 ({e}): this test needs python3 on PATH"),
    }

    let env = Env::new().await?;
    let token = env.token("t", "sales").await?;
    let server = env.serve(&token).await?;
    for i in 0..6 {
        server.create_ok(&person_name(i), "import").await?;
    }
    let head = server.head().await?;
    let (seq, hash) = (
        head["seq"].as_i64().expect("seq"),
        head["hash"].as_str().expect("hash").to_owned(),
    );
    assert!(seq >= 6, "{head}");

    let file = env.state_dir.join("export.jsonl");
    env.run_ok(&["export", "--out", file.to_str().expect("utf-8 path")])
        .await?;
    let script = workspace_root().join("ops/verify_chain.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg("--expect-head")
        .arg(format!("{seq}:{hash}"))
        .arg(&file)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "verify_chain.py: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("OK head_seq={seq} head_hash={hash}"));
    drop(server);

    // A row inserted with database credentials alone, past the chain head
    // (which it leaves alone): the export carries it, so an export-based
    // verifier sees it instead of saying OK.
    let pool = env.db.owner_pool().await?;
    sqlx::query(
        "INSERT INTO events (seq, event_id, stream_id, stream_version, event_type, recorded_at,
                             effective_at, actor_id, prev_hash, stream_prev_hash, hash, body)
         SELECT seq + 1, gen_random_uuid(), gen_random_uuid(), 1, 'CustomerRegistered', now(),
                now(), gen_random_uuid(), hash, decode(repeat('00', 32), 'hex'), sha256('forged'),
                convert_to('{\"forged\":true}', 'UTF8')
         FROM chain_head WHERE id",
    )
    .execute(&pool)
    .await?;
    pool.close().await;
    let out = env
        .command(&["export", "--out", file.to_str().expect("utf-8 path")])
        .output()
        .await?;
    assert!(out.status.success(), "export: {}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 rows beyond the chain head"),
        "{}",
        describe(&out)
    );
    let lines = std::fs::read_to_string(&file)?.lines().count() as i64;
    assert_eq!(lines, seq + 1, "the forged row is exported");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "verify_chain.py: {stdout}");
    assert!(
        stdout.starts_with(&format!("FAIL seq={}", seq + 1)),
        "{stdout}"
    );
    Ok(())
}
