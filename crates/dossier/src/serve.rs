//! `dossier serve`: migrate, start the projection runner and serve the HTTP API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use dossier_service::Service;
use dossier_store::{Keyring, Store};
use dossier_tools::demo::{self, DemoPrincipal, TokenFile};
use uuid::Uuid;

use crate::config::{replace_private_file, Config, KeySource};
use crate::{database, open};

const APP_POOL: u32 = 24;
/// Where `serve --demo` keeps the demo tokens, in the state directory.
const DEMO_TOKENS: &str = "demo-tokens.json";

pub async fn run(cfg: &Config, demo_mode: bool) -> Result<()> {
    let (master, source) = if demo_mode {
        cfg.master_key_or_generate()?
    } else {
        cfg.master_key()?
    };
    if let KeySource::Generated(path) = &source {
        tracing::warn!(
            path = %path.display(),
            "generated a demo master key; keep this file, or the customer data written with it cannot be read"
        );
    }
    tracing::info!(master_key_id = %master.id(), source = %source, "master key loaded");

    let url = database::ensure(&cfg.database_url, cfg.private_postgres_dir()).await?;
    open::migrate(&url).await?;
    let store = open::store(&url, cfg.app_database_url.as_ref(), APP_POOL).await?;
    let master_id = master.id();
    let keyring = Keyring::new(master);
    check_master_key(&store, &keyring, &master_id, &source).await?;
    let service = Service::new(store.clone(), keyring.clone());

    let rules = cfg.rules_text()?;
    match service.adopt_rules_as_service(&rules).await? {
        Some(seq) => tracing::info!(seq, "rules adopted into the log"),
        None => tracing::info!("rules unchanged"),
    }

    let demo_info = if demo_mode {
        Some(prepare_demo(cfg, &store, &service).await?)
    } else {
        None
    };

    for projection in dossier_projections::all(&keyring, &store) {
        tokio::spawn(dossier_projections::run(
            store.clone(),
            projection,
            Duration::from_millis(500),
        ));
    }
    tokio::spawn(daily_evaluation(service.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let base = base_url(addr);
    tracing::info!(%addr, database = %url, "dossier is listening");
    println!("dossier listening on {base}");
    if let Some(info) = demo_info {
        print_demo(cfg, &base, &info);
    }

    let app = dossier_api::app(dossier_api::AppState::new(service));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("shut down");
    Ok(())
}

/// Records each business day's evaluation run once (any instance may; the
/// log's expected-version check lets exactly one succeed).
async fn daily_evaluation(service: Service) {
    loop {
        match service.evaluate_as_service().await {
            Ok(Some(seq)) => tracing::info!(seq, "evaluation run recorded"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "evaluation run not recorded; will retry"),
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

struct DemoInfo {
    principals: Vec<DemoPrincipal>,
    /// Customers to show in the examples: the first is a key account, the
    /// second (when seeded now) a risky one.
    customers: Vec<Uuid>,
}

async fn prepare_demo(cfg: &Config, store: &Store, service: &Service) -> Result<DemoInfo> {
    let principals = demo_tokens(service, &demo_tokens_path(cfg)).await?;
    let customers = if first_customer(store).await?.is_none() {
        let started = std::time::Instant::now();
        let ids = demo::seed(service, &principals).await?;
        tracing::info!(
            customers = ids.len(),
            events = store.head().await?.seq,
            seconds = started.elapsed().as_secs_f64(),
            "seeded demo customers"
        );
        ids.into_iter().take(2).collect()
    } else {
        tracing::info!("the database already has customers; not seeding demo data");
        first_customer(store).await?.into_iter().collect()
    };
    Ok(DemoInfo {
        principals,
        customers,
    })
}

fn demo_tokens_path(cfg: &Config) -> PathBuf {
    cfg.state_dir.join(DEMO_TOKENS)
}

/// The demo principals, with the tokens kept in `path` by earlier runs
/// while they still authenticate; new ones are created and saved there.
async fn demo_tokens(service: &Service, path: &Path) -> Result<Vec<DemoPrincipal>> {
    let mut file = match std::fs::read(path) {
        Ok(bytes) => TokenFile::parse(&bytes)
            .with_context(|| format!("{} is not a demo token file", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenFile::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let read = file.clone();
    let principals = demo::ensure_tokens(service, &mut file).await?;
    if file != read {
        replace_private_file(path, &file.to_json()?)?;
        tracing::info!(path = %path.display(), "saved demo tokens");
    }
    Ok(principals)
}

/// Fails early if the master key cannot unwrap the data keys already stored
/// (e.g. the key file was lost and a new demo key was generated).
async fn check_master_key(
    store: &Store,
    keyring: &Keyring,
    master_id: &str,
    source: &KeySource,
) -> Result<()> {
    let Some(id) = first_customer(store).await? else {
        return Ok(());
    };
    keyring.keys_for_read(store, &[id]).await.map_err(|e| {
        anyhow::anyhow!(
            "the master key from {source} (id {master_id}) does not fit this database: {e}. \
             Use the master key the data was written with."
        )
    })?;
    Ok(())
}

async fn first_customer(store: &Store) -> Result<Option<Uuid>> {
    // The system stream (rules, evaluation runs) comes first in the log.
    Ok(store
        .read_log(0, 100)
        .await?
        .iter()
        .map(|e| e.record.stream_id)
        .find(|id| *id != dossier_events::SYSTEM_STREAM))
}

/// A URL clients on this machine can use (0.0.0.0 becomes 127.0.0.1).
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

fn print_demo(cfg: &Config, base: &str, info: &DemoInfo) {
    println!();
    println!("Demo tokens (kept in {}):", demo_tokens_path(cfg).display());
    for p in &info.principals {
        println!(
            "  {:<16} {:<11} {}",
            p.principal.name,
            p.principal.role.as_str(),
            p.token
        );
    }
    let token = info
        .principals
        .iter()
        .find(|p| p.principal.role == dossier_store::Role::Sales)
        .or(info.principals.first())
        .map(|p| p.token.as_str())
        .unwrap_or("<token>");
    println!();
    println!("Try:");
    println!("  TOKEN={token}");
    let h = "-H \"Authorization: Bearer $TOKEN\"";
    println!("  # whom to call today (the sales token's own customers), and the dashboard");
    println!("  curl {h} {base}/v1/follow-ups");
    println!("  curl {h} {base}/v1/segments");
    println!("  # East China customers with overdue payments; A-tier customers");
    println!(
        "  curl -G {h} {base}/v1/customers --data-urlencode region=华东 -d signal=overdue_receivables"
    );
    println!("  curl {h} '{base}/v1/customers?tier=A'");
    if let Some(id) = info.customers.first() {
        println!("  # one customer: its file, history, tier/risk and when its tier changed");
        println!("  curl {h} {base}/v1/customers/{id}");
        println!("  curl {h} {base}/v1/customers/{id}/history");
        println!("  curl {h} {base}/v1/customers/{id}/insights");
        println!("  curl {h} {base}/v1/customers/{id}/tier-history");
    }
    if let Some(id) = info.customers.get(1) {
        println!("  # a customer that is slipping: why its risk rose");
        println!("  curl {h} {base}/v1/customers/{id}/risk-history");
    }
    println!("  curl -X POST {h} {base}/v1/ledger/verify");
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing open requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            base_url("127.0.0.1:80".parse().unwrap()),
            "http://127.0.0.1:80"
        );
        assert_eq!(
            base_url("[::]:9000".parse().unwrap()),
            "http://127.0.0.1:9000"
        );
    }
}
