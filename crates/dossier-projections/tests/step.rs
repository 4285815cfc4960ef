//! The runner's transaction around a projection's batch.

use std::sync::{Arc, Mutex};

use dossier_projections::{
    checkpoint, lowest_checkpoint, step, Projection, ProjectionError, NAMES,
};
use dossier_seal::MasterKey;
use dossier_service::Service;
use dossier_store::{Keyring, StoredEvent};
use dossier_testkit::TestDb;
use sqlx::{Postgres, Transaction};

/// Records, per batch, the transaction's `synchronous_commit`.
#[derive(Clone, Default)]
struct Probe(Arc<Mutex<Vec<(usize, String)>>>);

impl Projection for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut **tx)
            .await?;
        self.0.lock().unwrap().push((events.len(), setting));
        Ok(())
    }

    async fn reset(&self, _tx: &mut Transaction<'static, Postgres>) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// A batch commits without waiting for the WAL flush (its rows and its
/// checkpoint are re-derived from the log if a server crash undoes them),
/// and the setting ends with the batch's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_asynchronously_and_only_the_batch() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let service = Service::new(store.clone(), Keyring::new(MasterKey::generate()));
    service
        .adopt_rules_as_service(dossier_insights::Rules::default_text())
        .await?;
    let probe = Probe::default();
    assert_eq!(step(&store, &probe).await?, 1);
    assert_eq!(step(&store, &probe).await?, 0);
    assert_eq!(*probe.0.lock().unwrap(), [(1, "off".to_owned())]);
    assert_eq!(checkpoint(&store, "probe").await?, store.head().await?.seq);
    // Every pooled connection is back to the server's default.
    let mut conns = Vec::new();
    for _ in 0..store.pool().size() {
        let mut c = store.pool().acquire().await?;
        let s: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *c)
            .await?;
        assert_eq!(s, "on");
        conns.push(c);
    }
    Ok(())
}

/// The lowest checkpoint counts a projection without a checkpoint row as 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lowest_checkpoint_is_that_of_the_slowest_projection() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let store = db.store().await?;
    let owner = db.owner_pool().await?;
    sqlx::query("DELETE FROM projection_checkpoints")
        .execute(&owner)
        .await?;
    let set = |name: &'static str, seq: i64| {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, seq) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        )
        .bind(name)
        .bind(seq)
        .execute(&owner)
    };
    for (i, name) in NAMES.iter().take(3).enumerate() {
        set(name, 10 + i as i64).await?;
    }
    assert_eq!(lowest_checkpoint(&store).await?, 0, "one has none yet");
    set(NAMES[3], 40).await?;
    assert_eq!(lowest_checkpoint(&store).await?, 10);
    set(NAMES[0], 50).await?;
    set("probe", 1).await?;
    assert_eq!(
        lowest_checkpoint(&store).await?,
        11,
        "other names do not count"
    );
    owner.close().await;
    Ok(())
}
