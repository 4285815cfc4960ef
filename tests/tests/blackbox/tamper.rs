//! `dossier verify` names the first tampered seq and exits 2.

use crate::common::{describe, person_name, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_tampering_via_cli() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let token = env.token("t", "sales").await?;
    let server = env.serve(&token).await?;
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(server.create_ok(&person_name(i), "onboarding").await?.1);
    }
    let status = server.terminate().await?;
    assert!(status.success(), "serve exited with {status}");

    // Intact: exit 0.
    let out = env.run(&["verify"]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));

    // As the owner, with the append-only triggers off, flip one body byte.
    let target = seqs[2];
    let pool = env.db.owner_pool().await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    let mut body: Vec<u8> = sqlx::query_scalar("SELECT body FROM events WHERE seq = $1")
        .bind(target)
        .fetch_one(&mut *tx)
        .await?;
    let at = body.len() / 2;
    body[at] ^= 0x01;
    let updated = sqlx::query("UPDATE events SET body = $1 WHERE seq = $2")
        .bind(&body)
        .bind(target)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    assert_eq!(updated, 1);
    tx.commit().await?;
    pool.close().await;

    let out = env.run(&["verify"]).await?;
    assert_eq!(out.status.code(), Some(2), "verify: {}", describe(&out));
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        stdout.starts_with(&format!("FAIL seq={target} kind=bad_hash")),
        "{stdout}"
    );
    Ok(())
}

/// A head recorded earlier must still be in the log: `--expect-head` catches a
/// log that differs at or before it, and one that ends before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_heads_recorded_earlier() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let token = env.token("t", "sales").await?;
    let server = env.serve(&token).await?;
    for i in 0..3 {
        server.create_ok(&person_name(i), "onboarding").await?;
    }
    let status = server.terminate().await?;
    assert!(status.success(), "serve exited with {status}");

    let out = env.run(&["verify"]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));
    let stdout = String::from_utf8(out.stdout)?;
    let field = |name: &str| {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let (seq, hash) = (field("head_seq"), field("head_hash"));

    let recorded = format!("{seq}:{hash}");
    let out = env.run(&["verify", "--expect-head", &recorded]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));

    let wrong = format!("{seq}:{}", "ab".repeat(32));
    let out = env.run(&["verify", "--expect-head", &wrong]).await?;
    assert_eq!(out.status.code(), Some(2), "verify: {}", describe(&out));
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.starts_with(&format!("FAIL seq={seq} kind=head_mismatch")),
        "{text}"
    );

    // A log that ends before the expected head: the gap is at the first
    // missing seq, the one after the log's end.
    let last: i64 = seq.parse()?;
    let beyond = format!("{}:{hash}", last + 5);
    let out = env.run(&["verify", "--expect-head", &beyond]).await?;
    assert_eq!(out.status.code(), Some(2), "verify: {}", describe(&out));
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.starts_with(&format!("FAIL seq={} kind=gap", last + 1)),
        "{text}"
    );

    // Every head given is checked, not just the last.
    let out = env
        .run(&[
            "verify",
            "--expect-head",
            &wrong,
            "--expect-head",
            &recorded,
        ])
        .await?;
    assert_eq!(out.status.code(), Some(2), "verify: {}", describe(&out));

    // The empty ledger's head (seq 0, GENESIS) is a head like any other, and a
    // hash in capitals names the same bytes.
    let genesis = format!("0:{}", "0".repeat(64));
    let out = env.run(&["verify", "--expect-head", &genesis]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));
    let upper = format!("{seq}:{}", hash.to_uppercase());
    let out = env.run(&["verify", "--expect-head", &upper]).await?;
    assert!(out.status.success(), "verify: {}", describe(&out));

    // A usage error is an error (exit 1), never the code of a violation (2).
    let out = env.run(&["verify", "--expect-head", "nonsense"]).await?;
    assert_eq!(out.status.code(), Some(1), "verify: {}", describe(&out));
    assert!(String::from_utf8(out.stderr)?.contains("SEQ:HASH"));
    let out = env.run(&["verify", "--no-such-flag"]).await?;
    assert_eq!(out.status.code(), Some(1), "verify: {}", describe(&out));
    Ok(())
}
