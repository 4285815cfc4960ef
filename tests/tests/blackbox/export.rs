//! The export verifies with the independent Python verifier, and its head is
//! the head the server reports.

use std::process::Stdio;

use crate::common::{person_name, workspace_root, Env};

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
    Ok(())
}
