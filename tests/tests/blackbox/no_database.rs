//! Without a reachable PostgreSQL (and the private server disabled) the
//! binary fails and says what to install and what to set.

use crate::common::{describe, run_raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_database_message() -> anyhow::Result<()> {
    let state = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dossier-blackbox")
        .join(format!("no-db-{}", uuid::Uuid::new_v4().simple()));
    let out = run_raw(
        &["migrate"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x"),
            ("DOSSIER_NO_PRIVATE_POSTGRES", "1"),
            ("DOSSIER_STATE_DIR", state.to_str().expect("utf-8 path")),
        ],
    )
    .await?;
    assert!(!out.status.success(), "migrate: {}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PostgreSQL"), "{}", describe(&out));
    assert!(stderr.contains("DATABASE_URL"), "{}", describe(&out));
    // Nothing was started or created for a private server.
    assert!(!state.join("postgres").exists());
    let _ = std::fs::remove_dir_all(&state);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_the_environment() -> anyhow::Result<()> {
    let out = run_raw(&["--help"], &[]).await?;
    assert!(out.status.success(), "--help: {}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DATABASE_URL",
        "DOSSIER_LISTEN",
        "DOSSIER_STATE_DIR",
        "DOSSIER_MASTER_KEY",
        "DOSSIER_NO_PRIVATE_POSTGRES",
    ] {
        assert!(
            stdout.contains(var),
            "--help does not mention {var}:\n{stdout}"
        );
    }
    Ok(())
}
