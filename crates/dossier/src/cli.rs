//! The command line: global settings (flags or environment) and subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dossier_store::Role;

use crate::config::{DatabaseUrl, DEFAULT_DATABASE_URL};

const ENV_HELP: &str = "\
Environment:
  DATABASE_URL         PostgreSQL URL (same as --database-url)
  DOSSIER_APP_DATABASE_URL
                       URL for the restricted role dossier_app (with its password), if the
                       server does not let dossier_app log in with the owner's URL minus the
                       user; without either, sessions use SET ROLE (same as --app-database-url)
  DOSSIER_LISTEN       address of the HTTP API (same as --listen)
  DOSSIER_STATE_DIR    local state directory (same as --state-dir)
  DOSSIER_RULES        TOML file with the tier/risk/follow-up rules (same as --rules); serve
                       adopts it into the log at start if it differs from the rules in force.
                       Default: the built-in rules (docs/rules.md)
  DOSSIER_NO_PRIVATE_POSTGRES
                       if set (and not 0/false/no/off), never start a private PostgreSQL
                       server: fail with install instructions when DATABASE_URL is
                       unreachable (same as --no-private-postgres)
  DOSSIER_MASTER_KEY   base64 of the 32-byte master key that wraps every customer's data key.
                       Only read from the environment (never a flag, so it stays out of `ps`).
                       Create one with `dossier keygen`. If unset, <state-dir>/master.key is
                       used when present; `serve --demo` creates that file (mode 0600).
  RUST_LOG             log filter for stderr (default: info)";

const IMPORT_HELP: &str = "\
Columns (header row; order free, names exact):
  kind           person or company (required)
  external_id    your id of the row (required): re-importing the same external_id with
                 the same content is a no-op, with other content an error
  owner          the responsible salesperson
  tags           semicolon-separated, e.g. vip;华东
  name, phone, email, national_id, credit_code, region, industry, ...
                 any detail field of a customer file (docs/api.md); empty cells are omitted
A value in an unknown column fails its row (nothing is dropped silently).

Rows are numbered as in a spreadsheet (the header is row 1). Rows that fail are listed
with row, column and reason at the end and written to FILE.errors.csv next to FILE.csv.

Exit status:
  0  every row imported or already imported
  3  some rows failed (the others were imported)
  1  nothing imported: the file is unreadable, not CSV, or its header is wrong; or an error";

/// Customer files kept as an append-only, hash-chained event log in PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "dossier", version, after_help = ENV_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// PostgreSQL URL, used as the database owner. The database named in it is
    /// created if missing. If the server cannot be reached but PostgreSQL is
    /// installed on this machine, a private server is started in
    /// <state-dir>/postgres on port 55432 and used instead.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        global = true,
        value_parser = DatabaseUrl::parse
    )]
    pub database_url: DatabaseUrl,

    /// PostgreSQL URL for the restricted application role `dossier_app`.
    /// Default: the --database-url with the user replaced by dossier_app.
    #[arg(
        long,
        env = "DOSSIER_APP_DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_parser = DatabaseUrl::parse
    )]
    pub app_database_url: Option<DatabaseUrl>,

    /// Address the HTTP API listens on (serve).
    #[arg(
        long,
        env = "DOSSIER_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Directory for local state: master.key, demo-tokens.json and the data of
    /// a private PostgreSQL server, if one had to be started.
    #[arg(
        long,
        env = "DOSSIER_STATE_DIR",
        default_value = ".dossier",
        global = true
    )]
    pub state_dir: PathBuf,

    /// Tier, risk and follow-up rules (TOML, see docs/rules.md). Default: built in.
    #[arg(long, env = "DOSSIER_RULES", global = true)]
    pub rules: Option<PathBuf>,

    /// Never start a private PostgreSQL server: if the server of
    /// --database-url cannot be reached, fail with install instructions.
    #[arg(
        long,
        env = "DOSSIER_NO_PRIVATE_POSTGRES",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub no_private_postgres: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, then serve the HTTP API and run the projections until SIGINT/SIGTERM.
    Serve {
        /// Demo mode: create a master key in <state-dir>/master.key if none is
        /// configured, create tokens for one principal per role and seed sample
        /// customers into an empty database; print the tokens and curl examples.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and list the applied ones.
    Migrate,
    /// Verify the whole hash chain (exit 0 OK, 2 integrity violation, 1 error).
    Verify {
        /// Also check that every body is a canonical, valid dossier-chain/1
        /// event (conformance; slower). By default only integrity is checked.
        #[arg(long)]
        strict: bool,
        /// A head recorded earlier (e.g. from GET /v1/ledger/head), as SEQ:HASH.
        /// The event at SEQ must still have that hash: this detects a log that
        /// was rewritten consistently from some point on, which the chain alone
        /// cannot show. Repeatable.
        #[arg(long = "expect-head", value_parser = parse_expected_head)]
        expect_head: Vec<(i64, dossier_chain::Hash)>,
    },
    /// Write the log as JSON Lines (export format of docs/chain-format.md §7).
    Export {
        /// Output file (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print a fresh random master key (base64) for DOSSIER_MASTER_KEY.
    Keygen,
    /// Inspect and rebuild read models (projections).
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Onboard customers from a CSV file (re-runs are safe; exit 3 if rows failed).
    ///
    /// Each row goes through the same checks as POST /v1/customers (validation,
    /// sealing, duplicate detection). Rows already imported are skipped.
    #[command(after_help = IMPORT_HELP)]
    Import {
        /// The CSV file (UTF-8, optional BOM, RFC 4180 quoting, header row).
        file: PathBuf,
        /// Principal to act as (recorded as the actor; idempotency keys are
        /// scoped to it, so re-run an import as the same principal). Created as
        /// a service principal (role admin, no token) if no principal has this name.
        #[arg(long = "as", value_name = "NAME", default_value = dossier_tools::import::IMPORT_PRINCIPAL)]
        principal: String,
        /// Import rows that share a phone, e-mail, credit code or national ID
        /// with an existing customer or an earlier row (default: such rows fail).
        #[arg(long)]
        force_duplicates: bool,
        /// Rows in flight at once.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
        concurrency: u32,
    },
    /// Generate a large realistic data set fast, straight into the log.
    ///
    /// Appends to the store directly (not through HTTP): companies and persons
    /// with Chinese and Latin names, orders over three years, invoices (some
    /// overdue), payments, complaints, interactions, credit and legal changes.
    /// The same --seed gives the same content (dates relative to today).
    Seed {
        /// Number of customers.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        customers: u64,
        /// Events per customer, the registration included (total = customers x this).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        events_per_customer: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Concurrent append requests.
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
        writers: u32,
    },
    /// Record an evaluation run for today or --date.
    ///
    /// Every customer's tier, risk and follow-ups are evaluated at that date;
    /// `serve` does this once per business day. Prints the seq of the run, or
    /// that the date (or a later one) was already evaluated.
    Evaluate {
        /// Business date YYYY-MM-DD (default: today); not in the future.
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
    /// Benchmarks against scratch databases (<dbname>_bench, <dbname>_benchread).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a principal and print its bearer token (shown only this once).
    Create {
        /// Unique name of the principal, e.g. a person or a system.
        #[arg(long)]
        name: String,
        /// One of sales, manager, compliance, auditor, admin.
        #[arg(long)]
        role: Role,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Checkpoint, log head and lag of one or all projections.
    Status {
        /// Projection name (default: all).
        name: Option<String>,
    },
    /// Rebuild read models from the whole log.
    ///
    /// Without a name (or with `all`): every projection at once, folded in
    /// memory from one pass over the log and swapped in whole in one
    /// transaction (readers wait for it, then see the new models). With a
    /// name: empty that projection and let it catch up batch by batch (slow;
    /// readers see it fill up).
    Rebuild {
        /// Projection name, e.g. customer_current, or `all` (default).
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append throughput and latency against a raw-INSERT baseline, then verify throughput.
    Append {
        /// Events per phase (the single-customer phase writes a tenth of this).
        #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
        events: u64,
        /// Concurrent writers (connections for the baseline, tasks for appends).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
        writers: u32,
    },
    /// Read-side figures on a seeded scratch database <dbname>_benchread: full rebuild of all
    /// projections, single-customer and list query latency, projection lag under load.
    Read {
        /// Customers to seed.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
        customers: u64,
        /// Events per seeded customer.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        events_per_customer: u32,
        /// Samples per measured query kind.
        #[arg(long, default_value_t = 1000)]
        queries: usize,
        /// Keep the scratch database if it is already seeded (skip seeding).
        #[arg(long)]
        reuse: bool,
        /// Seconds of paced appends while measuring projection lag.
        #[arg(long, default_value_t = 20)]
        lag_seconds: u64,
        /// With --reuse: skip (a) and measure the read models as they are.
        #[arg(long, requires = "reuse")]
        skip_rebuild: bool,
        /// Append at this many orders/s while measuring lag, instead of half the measured
        /// maximum (for comparing builds at the same load; the target is at half the maximum).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        lag_rate: Option<u32>,
    },
}

/// Parses `SEQ:HASH` (HASH: 64 lowercase hex characters).
fn parse_expected_head(s: &str) -> Result<(i64, dossier_chain::Hash), String> {
    let (seq, hash) = s
        .split_once(':')
        .ok_or("expected SEQ:HASH, e.g. 42:0f3a...")?;
    // Seq 0 is the empty ledger's head (its hash is GENESIS, 64 zeros).
    let seq: i64 = seq
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or("SEQ must be a non-negative integer")?;
    // A hash copied from elsewhere may be in capitals; it names the same
    // bytes (only inside hashed bytes is the lowercase form the only one).
    let hash = hash
        .to_ascii_lowercase()
        .parse()
        .map_err(|e| format!("{e}"))?;
    Ok((seq, hash))
}
