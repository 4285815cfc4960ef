//! The subcommands other than `serve`; `bench`, `import` and `seed` open the
//! database and hand over to `dossier-tools`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dossier_seal::MasterKey;
use dossier_service::Service;
use dossier_store::{Keyring, Role, Store};
use dossier_tools::bench::ScratchDb;
use dossier_tools::progress::Progress;
use dossier_tools::{bench, bench_read, import, seed};

use crate::cli::{BenchCommand, Command, ProjectionsCommand, TokenCommand};
use crate::config::Config;
use crate::{database, open, serve};

/// Runs one subcommand; the exit code is for outcomes that are not errors.
pub async fn run(cfg: Config, command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve { demo } => serve::run(&cfg, demo).await?,
        Command::Migrate => migrate(&cfg).await?,
        Command::Verify {
            strict,
            expect_head,
        } => return verify(&cfg, strict, &expect_head).await,
        Command::Export { out } => export(&cfg, out).await?,
        Command::Token {
            command: TokenCommand::Create { name, role },
        } => create_token(&cfg, &name, role).await?,
        Command::Keygen => println!("{}", MasterKey::generate().to_base64()),
        Command::Projections { command } => match command {
            ProjectionsCommand::Status { name } => projection_status(&cfg, name).await?,
            ProjectionsCommand::Rebuild { name } => match name.as_deref() {
                None | Some("all") => rebuild_all(&cfg).await?,
                Some(name) => rebuild(&cfg, name).await?,
            },
        },
        Command::Import {
            file,
            principal,
            force_duplicates,
            concurrency,
        } => {
            return import(
                &cfg,
                import::Options {
                    file,
                    principal,
                    force_duplicates,
                    concurrency: concurrency as usize,
                },
            )
            .await
        }
        Command::Seed {
            customers,
            events_per_customer,
            seed,
            writers,
        } => {
            seed_customers(
                &cfg,
                seed::Options {
                    customers,
                    events_per_customer,
                    seed,
                    writers: writers as usize,
                },
            )
            .await?
        }
        Command::Evaluate { date } => evaluate(&cfg, date).await?,
        Command::Bench {
            command: BenchCommand::Append { events, writers },
        } => {
            let db = scratch(&cfg, "bench", true).await?;
            bench::append(&db, events, writers as usize).await?
        }
        Command::Bench {
            command:
                BenchCommand::Read {
                    customers,
                    events_per_customer,
                    queries,
                    reuse,
                    lag_seconds,
                    skip_rebuild,
                    lag_rate,
                },
        } => {
            let (master, _) = cfg.master_key_or_generate()?;
            let db = scratch(&cfg, "benchread", !reuse).await?;
            bench_read::read(
                &db,
                Keyring::new(master),
                bench_read::ReadOptions {
                    customers,
                    events_per_customer,
                    queries,
                    reuse,
                    lag_seconds,
                    skip_rebuild,
                    lag_rate,
                },
            )
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The server to use (with the database created), without migrating.
async fn read_store(cfg: &Config) -> Result<Store> {
    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::store(&url, cfg.app_database_url.as_ref(), 4).await
}

/// The server to use, migrated.
async fn write_store(cfg: &Config) -> Result<Store> {
    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::migrate(&url).await?;
    open::store(&url, cfg.app_database_url.as_ref(), 4).await
}

async fn migrate(cfg: &Config) -> Result<()> {
    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::migrate(&url).await?;
    println!("database {url} is migrated; applied migrations:");
    for (version, _) in dossier_store::MIGRATIONS {
        println!("  {version}");
    }
    Ok(())
}

async fn verify(
    cfg: &Config,
    strict: bool,
    expected: &[(i64, dossier_chain::Hash)],
) -> Result<ExitCode> {
    let store = read_store(cfg).await?;
    let start = Instant::now();
    let mut bar = Progress::stderr("verifying");
    let outcome = store
        .verify_with(strict, move |p| {
            bar.update(p.verified, p.total);
            if p.verified >= p.total {
                bar.finish();
            }
        })
        .await
        .map_err(|e| open::hint_unmigrated(e.into()))
        .context("verification could not run")?;
    let elapsed = start.elapsed().as_secs_f64();
    match outcome {
        Ok(head) => {
            // In seq order, so the first failure reported is the earliest,
            // whatever order the heads were given in (as ops/verify_chain.py).
            let mut expected = expected.to_vec();
            expected.sort_by_key(|(seq, _)| *seq);
            for (seq, hash) in &expected {
                let found = if *seq == 0 {
                    Some(dossier_chain::GENESIS)
                } else if *seq <= head.head_seq {
                    store.read_raw(seq - 1, 1).await?.pop().map(|e| e.hash)
                } else {
                    None
                };
                match found {
                    Some(h) if h == *hash => {}
                    Some(h) => {
                        println!(
                            "FAIL seq={seq} kind=head_mismatch the event at seq {seq} has hash {h}, \
                             not the expected {hash}: the log was rewritten from here or earlier"
                        );
                        return Ok(ExitCode::from(2));
                    }
                    None => {
                        // The first seq missing is the one after the log's
                        // end (docs/chain-format.md §8.3), not the expected one.
                        println!(
                            "FAIL seq={} kind=gap the log ends at seq {}, before the expected head {seq}",
                            head.head_seq + 1,
                            head.head_seq
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            println!(
                "OK head_seq={} head_hash={} events={} streams={} elapsed={:.2}s rate={:.0}ev/s",
                head.head_seq,
                head.head_hash,
                head.events,
                head.streams,
                elapsed,
                head.events as f64 / elapsed.max(1e-9)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(v) => {
            let kind = serde_json::to_value(v.kind)?
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.kind.as_str().replace(' ', "_"));
            println!("FAIL seq={} kind={kind} {}", v.seq, v.detail);
            Ok(ExitCode::from(2))
        }
    }
}

const EXPORT_PAGE: i64 = 10_000;

async fn export(cfg: &Config, out: Option<PathBuf>) -> Result<()> {
    let store = read_store(cfg).await?;
    // Export every row stored up to now: a well-defined prefix of the log,
    // rows beyond the chain head included (dossier's writer never leaves
    // any; whoever did, a verifier of the export must see them).
    let head = store
        .head()
        .await
        .map_err(|e| open::hint_unmigrated(e.into()))?;
    let upto = head.seq.max(store.last_stored_seq().await?);
    let sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, sink);
    let mut bar = Progress::stderr("exporting");
    let start = Instant::now();
    let mut after = 0;
    let mut last_hash = None;
    let mut beyond_head = 0;
    while after < upto {
        // The stored bytes as they are: verification is the reader's job.
        let page = store.read_raw(after, EXPORT_PAGE.min(upto - after)).await?;
        if page.is_empty() {
            // Rows missing before the head: the export ends there, and the
            // verifier reports the gap.
            eprintln!(
                "warning: the log ends at seq {after}, before the head seq {}",
                head.seq
            );
            break;
        }
        for ev in page {
            w.write_all(dossier_chain::export_line(&ev.as_row()).as_bytes())?;
            w.write_all(b"\n")?;
            after = ev.seq;
            last_hash = Some(ev.hash);
            beyond_head += usize::from(ev.seq > head.seq);
        }
        bar.update(after, upto);
    }
    w.flush()?;
    bar.finish();
    if beyond_head > 0 {
        eprintln!(
            "warning: {beyond_head} rows beyond the chain head (seq {}) are stored and exported: \
             dossier's writer did not append them; a verifier names the first",
            head.seq
        );
    }
    eprintln!(
        "exported {} events (head seq={} hash={}) in {:.2}s{}",
        after,
        head.seq,
        last_hash.unwrap_or(dossier_chain::GENESIS),
        start.elapsed().as_secs_f64(),
        out.map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

async fn create_token(cfg: &Config, name: &str, role: Role) -> Result<()> {
    let store = write_store(cfg).await?;
    // Creating a token touches no customer data; when no master key is
    // configured a throwaway one satisfies the service's constructor.
    let master = cfg
        .master_key()
        .map(|(k, _)| k)
        .unwrap_or_else(|_| MasterKey::generate());
    let service = Service::new(store, Keyring::new(master));
    let (p, token) = service
        .create_token(name, role)
        .await
        .with_context(|| format!("creating principal {name}"))?;
    println!("{token}");
    eprintln!(
        "created principal {} (role {}, id {}). The token above is shown only this once; \
         store it securely and send it as `Authorization: Bearer <token>`.",
        p.name, p.role, p.id
    );
    Ok(())
}

async fn import(cfg: &Config, opts: import::Options) -> Result<ExitCode> {
    let (master, _) = cfg.master_key()?;
    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::migrate(&url).await?;
    // Room for the rows in flight, the writer and the projection catch-up.
    let pool = (opts.concurrency as u32 + 4).min(64);
    let store = open::store(&url, cfg.app_database_url.as_ref(), pool).await?;
    import::run(&store, &Keyring::new(master), &opts).await
}

async fn seed_customers(cfg: &Config, opts: seed::Options) -> Result<()> {
    let (master, _) = cfg.master_key()?;
    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::migrate(&url).await?;
    // A connection per writer for its key lookups, and the store writer's own.
    let pool = (opts.writers as u32 + 4).clamp(4, 64);
    let store = open::store(&url, cfg.app_database_url.as_ref(), pool).await?;
    seed::run(&store, &Keyring::new(master), opts).await?;
    println!(
        "the read models catch up when `dossier serve` runs (or `dossier projections rebuild NAME`); \
         `dossier evaluate` records today's evaluation run"
    );
    Ok(())
}

/// The benchmark's scratch database `<dbname>_<suffix>` on the configured
/// server: dropped and created anew if `fresh`, else used as it is.
async fn scratch(cfg: &Config, suffix: &str, fresh: bool) -> Result<ScratchDb> {
    let server = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    let db = server.database().unwrap_or("dossier").to_owned();
    let url = server.with_database(&format!("{db}_{suffix}"));
    if fresh {
        database::recreate(&url).await?;
    }
    Ok(ScratchDb {
        url: url.as_str().to_owned(),
        shown: url.to_string(),
        sslmode: url.sslmode().map(str::to_owned),
    })
}

async fn evaluate(cfg: &Config, date: Option<chrono::NaiveDate>) -> Result<()> {
    let store = write_store(cfg).await?;
    // An evaluation run touches no customer data; as for tokens, a
    // throwaway master key satisfies the service's constructor.
    let master = cfg
        .master_key()
        .map(|(k, _)| k)
        .unwrap_or_else(|_| MasterKey::generate());
    let p = store
        .service_principal(dossier_service::SERVICE_PRINCIPAL, Role::Admin)
        .await?;
    let service = Service::new(store, Keyring::new(master));
    match service.evaluate(&p, date).await? {
        Some(seq) => println!(
            "recorded the evaluation run for {} at seq {seq}",
            date.map_or_else(|| "today".to_owned(), |d| d.to_string())
        ),
        None => println!(
            "already evaluated: a run for {} or a later date is in the log",
            date.map_or_else(|| "today".to_owned(), |d| d.to_string())
        ),
    }
    Ok(())
}

fn check_projection(name: &str) -> Result<()> {
    if !dossier_projections::NAMES.contains(&name) {
        bail!(
            "unknown projection {name:?}; known: {}",
            dossier_projections::NAMES.join(", ")
        );
    }
    Ok(())
}

async fn projection_status(cfg: &Config, name: Option<String>) -> Result<()> {
    let names: Vec<String> = match name {
        Some(n) => {
            check_projection(&n)?;
            vec![n]
        }
        None => dossier_projections::NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    let store = read_store(cfg).await?;
    println!(
        "{:<20} {:>12} {:>12} {:>12} {:>12}",
        "NAME", "CHECKPOINT", "HEAD", "LAG_EVENTS", "LAG_SECONDS"
    );
    for n in names {
        let s = dossier_projections::status(&store, &n)
            .await
            .map_err(|e| open::hint_unmigrated(e.into()))?;
        println!(
            "{:<20} {:>12} {:>12} {:>12} {:>12.1}",
            s.name, s.checkpoint, s.head, s.lag_events, s.lag_seconds
        );
    }
    Ok(())
}

/// Every projection at once, in memory (dossier_projections::rebuild_all);
/// as the database owner, since it replaces the tables.
async fn rebuild_all(cfg: &Config) -> Result<()> {
    let (master, _) = cfg.master_key()?;
    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::migrate(&url).await?;
    let owner = Store::new(
        dossier_store::connect_owner(url.as_str(), 4)
            .await
            .with_context(|| format!("connecting to {url}"))?,
    );
    let mut bar = Progress::stderr("rebuilding all projections (reading the log)");
    let report =
        dossier_projections::rebuild_all(&owner, &Keyring::new(master), move |done, head| {
            bar.update(done, head);
            if done == head {
                bar.finish();
            }
        })
        .await?;
    let total = report.fold + report.write;
    println!(
        "rebuilt all projections to seq {} (folded to seq {}, the rest applied after): {} customers in {:.2}s ({:.0} events/s; reading and folding {:.2}s, writing {:.2}s)",
        report.head,
        report.snapshot,
        report.customers,
        total.as_secs_f64(),
        report.head as f64 / total.as_secs_f64().max(1e-9),
        report.fold.as_secs_f64(),
        report.write.as_secs_f64(),
    );
    println!(
        "writing, largest parts first (connection-seconds, two connections at once): {}",
        report.write_summary()
    );
    Ok(())
}

async fn rebuild(cfg: &Config, name: &str) -> Result<()> {
    check_projection(name)?;
    let (master, _) = cfg.master_key()?;
    let store = write_store(cfg).await?;
    let projection = dossier_projections::by_name(name, Keyring::new(master), store.clone())?;
    dossier_projections::reset(&store, &projection).await?;
    let start = Instant::now();
    let mut bar = Progress::stderr(&format!("rebuilding {name}"));
    let mut reached = 0;
    dossier_projections::catch_up(&store, &projection, |cp, head| {
        reached = cp;
        bar.update(cp, head);
    })
    .await?;
    bar.finish();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rebuilt {name}: {reached} events in {secs:.2}s ({:.0} events/s)",
        reached as f64 / secs.max(1e-9)
    );
    Ok(())
}
